//! `weightspace taskvec`: extract and apply task vectors.

use std::path::PathBuf;

use weightspace_merge::config::parse_dtype;
use weightspace_merge::taskvec;

use crate::exit::{bad_input, output_file, shard_size};

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
    Extract {
        /// The base checkpoint.
        base: PathBuf,
        /// The fine-tuned checkpoint.
        finetuned: PathBuf,
        /// Output `.safetensors` file, or an existing folder.
        output: PathBuf,
        /// Dtype of the task vector (float32, float16, bfloat16, float64).
        #[arg(long)]
        dtype: Option<String>,
        /// Shard the output when it exceeds this size.
        #[arg(long, value_name = "SIZE")]
        max_shard_size: Option<String>,
        #[command(flatten)]
        open: crate::open::OpenArgs,
    },
    /// Write BASE + scale · (TV1 + TV2 + …) in the base's dtypes.
    Apply {
        /// The base checkpoint.
        base: PathBuf,
        /// Task vectors, then the output file or folder last.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<PathBuf>,
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

fn lift(e: weightspace_merge::Error) -> anyhow::Error {
    if e.is_bad_input() {
        bad_input(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let r = match a.command {
        Cmd::Extract {
            base,
            finetuned,
            output,
            dtype,
            max_shard_size,
            open,
        } => {
            let dtype = match dtype.as_deref() {
                None => None,
                Some(s) => Some(parse_dtype(s).ok_or_else(|| {
                    bad_input(format!(
                        "--dtype {s}: expected float32, float16, bfloat16 or float64"
                    ))
                })?),
            };
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
            scale,
            max_shard_size,
            open,
        } => {
            let output = paths.pop().expect("clap requires 2");
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
