//! # weightspace-zoo
//!
//! Builds populations ("zoos") of small trained networks from one declarative TOML config:
//! datasets (the bundled 8×8 digits, MNIST/Fashion-MNIST IDX files, CIFAR-10 binaries,
//! synthetic tasks), small MLP and CNN architectures, hyper-parameter grids and random
//! samples, checkpoint schedules and fine-tune trees; and a catalog (`catalog.parquet`) with
//! one row per model state.
//!
//! Training is many small models at once: rayon across models, one single-threaded
//! packing-free GEMM per layer per model, hand-written forward/backward and optimiser kernels
//! (see [`net`] and [`optim`]), checked against finite differences in the tests. Every random
//! choice is seeded per model, so a zoo is bit-identical whatever the thread count.
//!
//! This crate owns datasets, the small-network runtime, training and the zoo's on-disk layout.
//! It reads and writes checkpoints only through `weightspace-io`, and must not know about the
//! command line, symmetry, merging or analysis.
//!
//! ```no_run
//! use weightspace_zoo::{TrainOptions, ZooConfig};
//! let cfg = ZooConfig::from_file("zoos/tiny.toml".as_ref())?;
//! let run = weightspace_zoo::train(&cfg, "tiny-zoo".as_ref(), &TrainOptions::default(), &|_| {})?;
//! println!("{}", run.catalog); // or weightspace_zoo::catalog_summary(dir)
//!
//! // The small-net runtime, for any zoo checkpoint:
//! let (net, state) = weightspace_zoo::load_model("tiny-zoo/models/mlp-0000/epoch_8.safetensors".as_ref())?;
//! let test = weightspace_zoo::data::digits()?.test;
//! let m = net.evaluate(&state, &test); // loss, accuracy
//! let hidden = net.hidden_activations(&state, &test.x, test.len());
//! # Ok::<(), weightspace_zoo::Error>(())
//! ```
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

pub use catalog::{
    Catalog, CatalogProblem, CatalogRow, CatalogSummary, ColumnInfo, ColumnKind, summary,
};
pub use config::{HyperParams, ModelPlan, ZooConfig};
pub use data::{Dataset, Source, Split, Task};
pub use export::{catalog_summary, eval_zoo, export_npz, read_catalog};
pub use net::{Activation, Arch, Init, Metrics, Net, State};
pub use store::{load_model, load_state, save_state};
pub use train::{Event, TrainOptions, TrainSummary, train};
