//! # weightspace-symmetry
//!
//! Acting on weights with the symmetry groups a [`weightspace_spec::ModelSpec`] describes:
//!
//! * [`Weights`]: a checkpoint's tensors as owned `f32` (integer tensors kept as bytes), read
//!   through `weightspace-io` and written back as safetensors in their original dtypes;
//! * [`Transform`]: one group element per spec group (a permutation and optional per-unit
//!   scaling); [`apply`] makes a checkpoint that computes the same function,
//!   [`Transform::random`] samples one (augmentation, `weightspace permute`);
//! * [`canonicalize`]: a deterministic representative of each orbit (units sorted by a key,
//!   ReLU units scaled to unit-norm incoming weights);
//! * [`weight_matching`] (Git Re-Basin, with a scipy-identical LAP solver) and
//!   [`activation_matching`], and [`align`] which returns OTHER permuted to REF;
//! * [`lmc`]: linear interpolation and loss/accuracy barriers against an [`lmc::Evaluator`];
//! * [`merge::align_to_base`] / [`merge::align_then_average`]: align a list of models before
//!   merging them.
//!
//! This crate owns the *math* of symmetries. It must not know about the command line, file
//! formats beyond `weightspace-io`'s readers and writer, merge configs, or any training runtime:
//! losses and accuracies come in through the [`lmc::Evaluator`] trait.
#![warn(missing_docs)]

mod action;
mod canon;
mod certify;
mod lap;
pub mod lmc;
mod matching;
pub mod merge;
mod rng;
mod weights;

pub use action::{GroupElement, RandomOptions, Transform, apply, apply_group};
pub use canon::{CanonOptions, canonicalize, unit_keys};
pub use matching::{
    MatchOptions, MatchResult, activation_matching, align, cost_matrix, solve_lap, weight_matching,
};
pub use rng::SplitMix64;
pub use weights::{Tensor, Weights};

/// Errors of this crate. Each names the tensor or group concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a checkpoint failed.
    #[error(transparent)]
    Io(#[from] weightspace_io::Error),
    /// The spec does not fit.
    #[error(transparent)]
    Spec(#[from] weightspace_spec::SpecError),
    /// A tensor is missing or has the wrong shape/dtype.
    #[error("tensor `{tensor}`: {msg}")]
    Tensor {
        /// Tensor name.
        tensor: String,
        /// What is wrong.
        msg: String,
    },
    /// A group element does not fit its group.
    #[error("group `{group}`: {msg}")]
    Group {
        /// Group name.
        group: String,
        /// What is wrong.
        msg: String,
    },
    /// Anything else the caller got wrong.
    #[error("{0}")]
    Invalid(String),
}

/// Result with an [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
