//! `weightspace convert`: any readable checkpoint to safetensors.

use std::path::PathBuf;

use weightspace_io::{ConvertOptions, DType, convert};

use crate::exit::{bad_input, output_file, shard_size};

/// Convert any readable checkpoint (safetensors, PyTorch, GGUF, npy/npz, ONNX) to
/// safetensors, one tensor at a time. Float tensors can be cast; quantised GGUF tensors are
/// dequantised; integer tensors keep their dtype. Written atomically.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input checkpoint.
    pub input: PathBuf,
    /// Output `.safetensors` file, or an existing directory (then `DIR/model.safetensors`).
    /// When sharded, shards `<stem>-0000i-of-0000n.safetensors` and
    /// `<stem>.safetensors.index.json` are written beside it.
    pub output: PathBuf,
    /// Cast float tensors to f32, f16, bf16 or f64.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Shard the output when it exceeds this size (e.g. 2GB, 500MB, 1GiB).
    #[arg(long, value_name = "SIZE")]
    pub max_shard_size: Option<String>,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let dtype = match a.dtype.as_deref() {
        None => None,
        Some(s) => match DType::from_name(s) {
            Some(d @ (DType::F32 | DType::F16 | DType::BF16 | DType::F64)) => Some(d),
            _ => {
                return Err(bad_input(format!(
                    "--dtype {s}: expected f32, f16, bf16 or f64"
                )));
            }
        },
    };
    let max_shard_bytes = shard_size(a.max_shard_size.as_deref())?;
    let ck = a.open.open(&a.input)?;
    let out = output_file(&a.output);
    let written = convert(
        &ck,
        &out,
        &ConvertOptions {
            dtype,
            max_shard_bytes,
        },
    )?;
    for p in &written {
        println!("wrote {}", p.display());
    }
    Ok(())
}
