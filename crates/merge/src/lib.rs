//! # weightspace-merge
//!
//! Model merging from mergekit's YAML configs, pruning and task vectors, one tensor at a time.
//!
//! * [`MergeConfig`] parses a mergekit config (`merge_method`, `base_model`, `models`, `slices`
//!   with `layer_range`, `parameters` as scalars, gradients or `{filter, value}` lists, `dtype`,
//!   `out_dtype`, `tokenizer_source`); every error names the YAML key.
//! * [`plan()`] opens every model (local paths, or Hugging Face ids found in the local cache —
//!   never downloaded), infers the layer stack from tensor names, resolves every parameter for
//!   every tensor with mergekit's precedence (slice source > slice > global) and validates
//!   shapes, ranges and arity before any tensor data is read.
//! * [`execute()`] merges tensor by tensor from the memory maps (rayon inside a tensor) and
//!   streams shards with a Hugging Face index into a temporary folder that is renamed to the
//!   output only at the end.
//! * [`methods`] holds the math of every mergekit method; [`prune`] and [`taskvec`] the
//!   `prune` and `taskvec` commands; [`lora`] merges PEFT LoRA adapters into their base and
//!   extracts them from fine-tunes (truncated SVD, as mergekit-extract-lora).
//! * The output folder of a merge gets the weights, `config.json` (the base's, layer count and
//!   dtype updated), the tokenizer files (`tokenizer_source`, else the base's), the config as
//!   `mergekit_config.yml` and a model card `README.md` with every source's model hash.
//!
//! Random methods (DARE, DELLA) draw from a ChaCha8 stream keyed by the seed, the tensor and the
//! model, addressed by element index: the same seed gives the same bits on any thread count.
//!
//! This crate owns merge semantics. It reads and writes weights only through
//! `weightspace-io`, and must not know about file formats, the command line, progress bars or
//! symmetries (aligning models before merging is the symmetry crate's job).
//!
//! ```no_run
//! use std::path::Path;
//! use weightspace_merge::{ExecOptions, MergeConfig, PlanOptions, execute, plan};
//! let cfg = MergeConfig::from_file(Path::new("merge.yaml"))?;
//! let p = plan(cfg, &PlanOptions::default())?;
//! let summary = execute(&p, Path::new("merged"), &ExecOptions::default(), |_, _| {})?;
//! println!("{} tensors", summary.tensors);
//! # Ok::<(), weightspace_merge::Error>(())
//! ```
#![warn(missing_docs)]

pub mod config;
mod error;
mod execute;
pub mod kernels;
pub mod lora;
pub mod methods;
mod plan;
pub mod prune;
pub mod taskvec;

pub use config::{Align, MergeConfig, ParseOptions, Scalar, Setting};
pub use error::{Error, Result};
pub use execute::{
    ExecOptions, Summary, TOKENIZER_FILES, check_output, execute, global_thresholds, merge_tensor,
    model_card, source_hashes,
};
pub use methods::{Method, Rescale};
pub use plan::{
    Layout, Model, Plan, PlanOptions, TensorPlan, hf_cache_dirs, is_embed, locate_model, plan,
};
