//! `weightspace taskvec`: extract and apply task vectors.

use std::path::PathBuf;

use weightspace_merge::taskvec;

use crate::exit::lift;
use crate::exit::{output_file, output_path, shard_size};

/// Task vectors: `extract` writes FINETUNED − BASE; `apply` writes BASE + scale · Σ TV (a
/// negative scale negates: forgetting a task).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: Cmd,
}

/// The two task-vector commands.
#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Write FINETUNED − BASE for every float tensor (f32 unless --dtype).
    #[command(after_help = "Examples:
  weightspace taskvec extract base.safetensors finetuned.safetensors -o tv.safetensors
  weightspace taskvec extract base/ ft/ -o tv.safetensors --dtype bf16")]
    Extract {
        /// The base checkpoint.
        base: PathBuf,
        /// The fine-tuned checkpoint.
        finetuned: PathBuf,
        /// Deprecated positional form of -o.
        #[arg(hide = true)]
        output_positional: Option<PathBuf>,
        /// Output `.safetensors` file, or an existing folder.
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Dtype of the task vector (f32/float32, f16/float16/half, bf16/bfloat16, f64/float64).
        #[arg(long, value_parser = crate::exit::float_dtype)]
        dtype: Option<weightspace_io::DType>,
        /// Shard the output when it exceeds this size.
        #[arg(long, value_name = "SIZE")]
        max_shard_size: Option<String>,
        #[command(flatten)]
        open: crate::open::OpenArgs,
    },
    /// Write BASE + scale · (TV1 + TV2 + …) in the base's dtypes.
    #[command(after_help = "Examples:
  weightspace taskvec apply base.safetensors tv.safetensors -o edited.safetensors
  weightspace taskvec apply base.safetensors tv-a.safetensors tv-b.safetensors -o multi.safetensors --scale 0.5
  weightspace taskvec apply base.safetensors tv.safetensors -o forgot.safetensors --scale -1")]
    Apply {
        /// The base checkpoint.
        base: PathBuf,
        /// Task vectors (without -o, the output last: deprecated).
        #[arg(required = true, num_args = 1..)]
        paths: Vec<PathBuf>,
        /// Output `.safetensors` file, or an existing folder.
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Multiplier of the summed task vectors (-1 negates).
        #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
        scale: f64,
        /// Shard the output when it exceeds this size.
        #[arg(long, value_name = "SIZE")]
        max_shard_size: Option<String>,
        #[command(flatten)]
        open: crate::open::OpenArgs,
    },
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let r = match a.command {
        Cmd::Extract {
            base,
            finetuned,
            output_positional,
            output,
            dtype,
            max_shard_size,
            open,
        } => {
            let output = output_path("taskvec extract", output, output_positional)?;
            let b = open.open(&base)?;
            let f = open.open(&finetuned)?;
            taskvec::extract(
                &b,
                &f,
                &output_file(&output),
                dtype,
                shard_size(max_shard_size.as_deref())?,
            )
            .map_err(lift)?
        }
        Cmd::Apply {
            base,
            mut paths,
            output,
            scale,
            max_shard_size,
            open,
        } => {
            let positional = match (&output, paths.len()) {
                (None, n) if n >= 2 => paths.pop(),
                _ => None,
            };
            let output = output_path("taskvec apply", output, positional)?;
            let b = open.open(&base)?;
            let tvs = paths
                .iter()
                .map(|p| open.open(p))
                .collect::<Result<Vec<_>, _>>()?;
            taskvec::apply(
                &b,
                &tvs,
                scale,
                &output_file(&output),
                shard_size(max_shard_size.as_deref())?,
            )
            .map_err(lift)?
        }
    };
    println!(
        "{} tensors computed, {} skipped or copied",
        r.tensors,
        r.skipped.len()
    );
    for f in &r.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
