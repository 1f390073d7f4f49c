//! # weightspace-analyze
//!
//! Analysis of weights from the weights alone: per-tensor statistics (the features used by the
//! weight-space learning literature, e.g. Unterthiner et al.'s seven per tensor, plus norms),
//! comparisons between checkpoints, and content hashes for deduplication. Outputs are plain
//! structs that serialise to JSON, CSV and Parquet.
//!
//! This crate reads weights through `weightspace-io` and must not know about file formats,
//! training or symmetries.

#![warn(missing_docs)]

pub mod compare;
pub mod dedupe;
pub mod discover;
pub mod error;
pub mod hash;
pub mod lineage;
pub mod report;
pub mod rng;
pub mod similarity;
pub mod spectral;
pub mod stats;
pub mod table;

pub use compare::{TensorDiff, diff};
pub use error::Error;
pub use hash::{HashReport, hash_files};
pub use spectral::{LayerSpectrum, SpectralOptions, SpectralReport, spectral};
pub use stats::{TensorStats, checkpoint_stats, quantile_sorted, summarize};
