//! `weightspace prune`: zero a fraction of a checkpoint's weights.

use std::path::PathBuf;

use weightspace_merge::prune::{PruneMethod, PruneOptions, prune};

use crate::exit::{bad_input, output_file, shard_size};

/// Prune a checkpoint: keep the `--density` fraction of weights by magnitude, at random
/// (seeded), or whole rows by L1 norm (l1-structured). Only float tensors with ≥ 2 dimensions
/// are pruned; biases and norms are copied. Kept weights keep their exact bits and dtype.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace prune model.safetensors -o pruned.safetensors --density 0.5
  weightspace prune model.safetensors -o out/ --density 0.3 --method random --seed 1
  weightspace prune model.safetensors -o rows.safetensors --density 0.8 --method l1-structured")]
pub struct Args {
    /// Input checkpoint (any readable format).
    pub input: PathBuf,
    /// Deprecated positional form of -o.
    #[arg(hide = true)]
    pub output_positional: Option<PathBuf>,
    /// Output `.safetensors` file, or an existing folder (then `DIR/model.safetensors`).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// magnitude, random or l1-structured.
    #[arg(long, default_value = "magnitude", value_parser = ["magnitude", "random", "l1-structured"])]
    pub method: String,
    /// Fraction kept, in (0, 1].
    #[arg(long)]
    pub density: f64,
    /// Rank per tensor, or over the whole model (magnitude; ties with the threshold are kept).
    #[arg(long, default_value = "tensor", value_parser = ["tensor", "global"])]
    pub scope: String,
    /// Seed for --method random.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Shard the output when it exceeds this size (e.g. 5GB).
    #[arg(long, value_name = "SIZE")]
    pub max_shard_size: Option<String>,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let method = PruneMethod::from_name(&a.method).expect("clap checked");
    let max_shard_bytes = shard_size(a.max_shard_size.as_deref())?;
    let ck = a.open.open(&a.input)?;
    let out = output_file(&crate::exit::output_path(
        "prune",
        a.output,
        a.output_positional,
    )?);
    let r = prune(
        &ck,
        &out,
        &PruneOptions {
            method,
            density: a.density,
            global: a.scope == "global",
            seed: a.seed,
            max_shard_bytes,
        },
    )
    .map_err(|e| {
        if e.is_bad_input() {
            bad_input(e.to_string())
        } else {
            anyhow::Error::new(e)
        }
    })?;
    println!(
        "pruned {} tensors ({} of {} weights kept, {:.4}), copied {}",
        r.pruned_tensors,
        r.kept,
        r.elements,
        if r.elements > 0 {
            r.kept as f64 / r.elements as f64
        } else {
            1.0
        },
        r.copied_tensors
    );
    for f in &r.files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
