//! `weightspace convert`: any readable checkpoint to safetensors.

use std::path::PathBuf;

use weightspace_io::{ConvertOptions, DType, convert};

use crate::exit::{check_safetensors_output, output_file, output_path, shard_size};

/// Convert any readable checkpoint (safetensors, PyTorch, GGUF, npy/npz, ONNX) to
/// safetensors, one tensor at a time. Float tensors can be cast; quantised GGUF tensors are
/// dequantised; integer tensors keep their dtype. Written atomically; never over its own input,
/// nor over an existing file without --overwrite.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace convert pytorch_model.bin -o model.safetensors
  weightspace convert model.gguf -o out/ --dtype f16 --max-shard-size 2GB
  weightspace convert model.safetensors -o model.bf16.safetensors --dtype bfloat16 --overwrite")]
pub struct Args {
    /// Input checkpoint.
    pub input: PathBuf,
    /// Deprecated positional form of -o.
    #[arg(hide = true)]
    pub output_positional: Option<PathBuf>,
    /// Output `.safetensors` file, or an existing directory (then `DIR/model.safetensors`).
    /// When sharded, shards `<stem>-0000i-of-0000n.safetensors` and
    /// `<stem>.safetensors.index.json` are written beside it.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    pub overwrite: bool,
    /// Cast float tensors to f32, f16, bf16 or f64 (also float32, float16/half, bfloat16,
    /// float64/double, torch.* names).
    #[arg(long, value_parser = crate::exit::float_dtype)]
    pub dtype: Option<DType>,
    /// Shard the output when it exceeds this size (e.g. 2GB, 500MB, 1GiB).
    #[arg(long, value_name = "SIZE")]
    pub max_shard_size: Option<String>,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let dtype = a.dtype;
    let max_shard_bytes = shard_size(a.max_shard_size.as_deref())?;
    let out = output_file(&output_path("convert", a.output, a.output_positional)?);
    check_safetensors_output(&out, &[a.input.as_path()], a.overwrite)?;
    let ck = a.open.open(&a.input)?;
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
