//! # weightspace-zoo
//!
//! Builds populations ("zoos") of small trained networks from one declarative TOML config:
//! datasets (the bundled 8×8 digits, MNIST/Fashion-MNIST IDX files, CIFAR-10 binaries,
//! synthetic tasks), small MLP and CNN architectures, hyper-parameter grids and random
//! samples, checkpoint schedules and fine-tune trees; and a catalog (`catalog.parquet`) with
//! one row per model state.
//!
//! Training is many small models at once: rayon across models, one single-threaded SGEMM per
//! layer per model, hand-written forward/backward and optimiser kernels (see [`net`] and
//! [`optim`]), checked against finite differences in the tests. Every random choice is seeded
//! per model, so a zoo is bit-identical whatever the thread count.
//!
//! This crate owns datasets, the small-network runtime, training and the zoo's on-disk layout.
//! It reads and writes checkpoints only through `weightspace-io`, and must not know about the
//! command line, symmetry, merging or analysis.
#![warn(missing_docs)]

pub mod data;
pub mod error;
mod kernels;
pub mod net;
pub mod optim;
pub mod rng;

pub use error::{Error, Result};
pub mod catalog;
pub mod config;
pub mod export;
pub mod store;
pub mod train;

pub use catalog::{CatalogRow, CatalogSummary, summary};
pub use config::{HyperParams, ModelPlan, ZooConfig};
pub use data::{Dataset, Source, Split, Task};
pub use net::{Activation, Arch, Init, Metrics, Net, State};
pub use store::{load_model, load_state, save_state};
pub use train::{Event, TrainOptions, TrainSummary, train};
