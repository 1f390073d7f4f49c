//! `weightspace stats`: per-tensor statistics, in parallel across tensors.

use std::path::PathBuf;

use weightspace_analyze::{checkpoint_stats, table};

use crate::{fmt, progress};

/// Per-tensor statistics: count, mean, std (ddof 0), min, quartiles (numpy's linear
/// interpolation), max, L2 norm, mean |x|, sparsity (share of exact zeros), NaN/Inf counts.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace stats model.safetensors
  weightspace stats pytorch_model.bin --json
  weightspace stats model.gguf --parquet stats.parquet")]
pub struct Args {
    /// A checkpoint (any supported format, a `*.index.json` or a model directory).
    pub path: PathBuf,
    /// Print JSON: {"tensors":[{"name","dtype","shape","count","mean","std","min","q25","median","q75","max","l2","abs_mean","sparsity","nan","inf"}]}.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV with the same columns.
    #[arg(long)]
    pub csv: bool,
    /// Also write the rows to this Parquet file.
    #[arg(long, value_name = "FILE")]
    pub parquet: Option<PathBuf>,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let ck = a.open.open(&a.path)?;
    let pb = progress::bar(ck.len() as u64, "stats");
    let rows = checkpoint_stats(&ck, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if let Some(p) = &a.parquet {
        table::write_parquet(p, &table::stats_batch(&rows))?;
    }
    if a.json {
        return fmt::print_json(&serde_json::json!({ "tensors": rows }));
    }
    if a.csv {
        print!("{}", table::stats_csv(&rows));
        return Ok(());
    }
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                fmt::shape(&r.shape),
                fmt::num(Some(r.mean)),
                fmt::num(Some(r.std)),
                fmt::num(Some(r.min)),
                fmt::num(Some(r.median)),
                fmt::num(Some(r.max)),
                fmt::num(Some(r.l2)),
                format!("{:.1}%", r.sparsity * 100.0),
            ]
        })
        .collect();
    print!(
        "{}",
        fmt::table(
            &[
                "tensor", "shape", "mean", "std", "min", "median", "max", "l2", "zeros"
            ],
            &body
        )
    );
    let flagged: Vec<&str> = rows
        .iter()
        .filter(|r| r.nan + r.inf > 0)
        .map(|r| r.name.as_str())
        .collect();
    if !flagged.is_empty() {
        println!("NaN/Inf values in: {}", flagged.join(", "));
    }
    Ok(())
}
