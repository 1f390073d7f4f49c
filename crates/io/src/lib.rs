//! # weightspace-io
//!
//! Reads neural-network weights from every common format into one type, [`Checkpoint`], and
//! writes safetensors. Formats are detected from the bytes, never the file extension:
//!
//! * safetensors (single files, directories of shards, `*.safetensors.index.json`);
//! * PyTorch `torch.save` zip archives, the legacy pre-1.6 stream and TorchScript archives,
//!   through an allowlist unpickler that never executes code;
//! * GGUF v2/v3, including the block-quantised types, dequantised exactly as ggml does;
//! * NumPy `.npy` / `.npz`;
//! * ONNX initializers and `Constant` nodes (subgraphs and external data included); by default
//!   the weights only, under the source model's names ([`OpenOptions`] says how to see all).
//!
//! Opening a checkpoint reads headers only. Tensor bytes are borrowed from a memory map where
//! the file stores them contiguously and little-endian ([`TensorView::bytes`] is then
//! `Cow::Borrowed`), and produced on demand otherwise; [`TensorView::to_f32`] converts any dtype.
//!
//! Every error is an [`Error`] naming the file, the tensor when there is one, and an
//! [`ErrorKind`] saying what is wrong. Bad input never panics.
//!
//! This crate owns bytes and formats. It must not know about layers, symmetries, training or
//! any analysis: those crates build on it.
//!
//! ```no_run
//! use weightspace_io::Checkpoint;
//! let ck = Checkpoint::open("model.safetensors")?;
//! for info in ck.infos() {
//!     println!("{} {} {:?}", info.name, info.dtype, info.shape);
//! }
//! let w: Vec<f32> = ck.tensor_f32("fc.weight")?;
//! # Ok::<(), weightspace_io::Error>(())
//! ```
#![warn(missing_docs)]

mod checkpoint;
mod dtype;
mod error;
mod gguf;
mod npy;
mod onnx;
mod pytorch;
mod quant;
mod safetensors;
mod tensor;
mod view;
mod writer;
mod zipfs;

pub use checkpoint::{
    Alias, Checkpoint, Format, Framework, Holds, OpenOptions, Parsed, Section, sniff,
};
pub use dtype::{DType, encode_f32, f8_e4m3_to_f32, f8_e5m2_to_f32};
pub use error::{Error, ErrorKind, Result};
pub use gguf::{GGUF_MAX_ARRAY_LEN, GGUF_MAX_DEPTH, GGUF_MAX_KEPT_ELEMENTS};
pub use safetensors::MAX_HEADER_SIZE;
pub use tensor::{Buf, Data, Entry, Producer, TensorInfo, TensorView, combine_hashes};
pub use writer::{
    AtomicFile, ConvertOptions, convert, parse_size, plan_shards, write_atomic,
    write_f32_safetensors, write_safetensors, write_sharded,
};
