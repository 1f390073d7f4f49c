//! # weightspace-learn
//!
//! Models whose input is another model's weights: predicting a zoo model's test accuracy,
//! generalisation gap or hyper-parameters from its checkpoint. Baselines written here —
//! `stats-gbm` (Unterthiner et al.'s seven statistics per tensor into gradient-boosted
//! trees), `stats-mlp`, `flat-mlp` — and the weight-space networks of `weightspace-wsnets`
//! (DeepSets, NFN-NP/HNP, DWS, neural-graph GNN/transformer), all trained the same way
//! (burn, Adam, warm-up + cosine schedule, early stopping on a validation split by model id),
//! with optional symmetry augmentation of the input networks, and scored by Kendall τ and
//! R² (regression) or accuracy (classification).
//!
//! This crate reads zoos only through `weightspace-zoo` (catalog) and `weightspace-io`
//! (checkpoints), and takes its equivariant models from `weightspace-wsnets`; it knows nothing
//! of the command line.
//!
//! ```no_run
//! use weightspace_learn::{LoadOptions, RunOptions, States, TrainConfig};
//! let zoo = weightspace_learn::load_zoo(
//!     "digits-cnn".as_ref(),
//!     &LoadOptions { target: "test_acc".into(), states: States::All, group: None },
//!     None,
//! )?;
//! let run = RunOptions { model: "stats-gbm".into(), config: TrainConfig::default(), seed: 0, split_seed: 0 };
//! let trained = weightspace_learn::train(&zoo, &run, &mut |_| {})?;
//! println!("test τ = {:?}", trained.meta.test.tau);
//! trained.save("gbm-out".as_ref())?;
//! # Ok::<(), weightspace_learn::Error>(())
//! ```
#![warn(missing_docs)]

pub mod augment;
pub mod bench;
pub mod data;
pub mod error;
pub mod features;
pub mod fit;
pub mod gbm;
pub mod learner;
pub mod metrics;
pub mod neural;
pub mod nn;
pub mod train;
pub mod ws;

pub use augment::Augment;
pub use data::{Layout, LoadOptions, NetWeights, Sample, Split, States, Task, ZooData, load_zoo};
pub use error::{Error, Result};
pub use learner::{MODEL_NAMES, Meta, Metrics, Prediction, RunOptions, Trained, read_nets, train};
pub use train::{Progress, TrainConfig};
