//! `weightspace merge`: merge checkpoints from a mergekit YAML config.

use std::path::PathBuf;

use serde_json::json;
use weightspace_io::parse_size;
use weightspace_merge::{
    ExecOptions, MergeConfig, PlanOptions, config::parse_dtype, execute, plan,
};

use crate::exit::bad_input;
use crate::progress;

/// Merge checkpoints as a mergekit YAML config describes (linear, slerp, nuslerp, multislerp,
/// karcher, task_arithmetic, ties, dare_ties, dare_linear, breadcrumbs, breadcrumbs_ties,
/// della, della_linear, model_stock, sce, nearswap, passthrough).
///
/// Every model, tensor, shape and parameter is checked before any tensor is read; errors name
/// the YAML key. Tensors are merged one at a time from memory maps and written as safetensors
/// shards with an index into a hidden folder beside OUT_DIR, renamed to OUT_DIR at the end: a
/// failed merge leaves no output. `model:` is a local path (file, folder or
/// `*.index.json`) or a Hugging Face id found in the local cache ($HF_HOME/hub or
/// ~/.cache/huggingface/hub); nothing is downloaded.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The mergekit YAML config.
    pub config: PathBuf,
    /// Output folder (must not exist or be empty, unless --overwrite).
    pub out_dir: PathBuf,
    /// Seed for the random methods (dare_*, della*): same seed, same bits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Shard the output when it exceeds this size (e.g. 5GB, 500MB, 2GiB).
    #[arg(long, value_name = "SIZE", default_value = "5GB")]
    pub max_shard_size: String,
    /// Output dtype for merged tensors (float32, float16, bfloat16, float64); overrides the
    /// config's out_dtype/dtype.
    #[arg(long)]
    pub dtype: Option<String>,
    /// Top-k for TIES per tensor (mergekit) or over the whole model (the TIES paper and
    /// FusionBench; a first pass reads every tensor).
    #[arg(long, value_name = "SCOPE", default_value = "tensor", value_parser = ["tensor", "global"])]
    pub topk_scope: String,
    /// Validate the config against the models and print the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace OUT_DIR if it exists and is not empty.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
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
    let dtype = match a.dtype.as_deref() {
        None => None,
        Some(s) => Some(parse_dtype(s).ok_or_else(|| {
            bad_input(format!(
                "--dtype {s}: expected float32, float16, bfloat16 or float64"
            ))
        })?),
    };
    let max_shard_bytes = parse_size(&a.max_shard_size).ok_or_else(|| {
        bad_input(format!(
            "--max-shard-size {}: expected a size like 5GB, 500MB or 2GiB",
            a.max_shard_size
        ))
    })?;
    let topk_global = a.topk_scope == "global";
    let cfg = MergeConfig::from_file(&a.config).map_err(lift)?;
    let p = plan(
        cfg,
        &PlanOptions {
            dtype,
            topk_global,
            cache_dirs: None,
        },
    )
    .map_err(lift)?;
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    let total_params: u64 = p.tensors.iter().map(|t| t.out.numel() as u64).sum();
    let total_bytes: u64 = p.tensors.iter().map(|t| t.out.nbytes() as u64).sum();
    if a.dry_run {
        weightspace_merge::check_output(&a.out_dir, a.overwrite).map_err(lift)?;
        if a.json {
            let tensors: Vec<_> = p
                .tensors
                .iter()
                .map(|t| {
                    json!({
                        "name": t.out.name,
                        "dtype": t.out.dtype.name(),
                        "shape": t.out.shape,
                        "inputs": t.inputs.iter().map(|(m, n)| json!({"model": p.models[*m].name, "tensor": n})).collect::<Vec<_>>(),
                        "t": t.t,
                        "copy": t.copy.is_some(),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "method": p.method.name(),
                    "models": p.models.iter().map(|m| json!({"name": m.name, "path": m.path, "layers": m.layout.n_layers})).collect::<Vec<_>>(),
                    "layers": p.n_layers,
                    "params": total_params,
                    "bytes": total_bytes,
                    "warnings": p.warnings,
                    "tensors": tensors,
                }))?
            );
        } else {
            println!("merge_method: {}", p.method);
            for m in &p.models {
                println!(
                    "  model {} -> {} ({} layers, {} tensors)",
                    m.name,
                    m.path.display(),
                    m.layout.n_layers,
                    m.ck.len()
                );
            }
            println!(
                "output: {} tensors, {} layers, {} parameters, {} bytes",
                p.tensors.len(),
                p.n_layers,
                total_params,
                total_bytes
            );
            println!("config is valid; nothing written (--dry-run)");
        }
        return Ok(());
    }
    let pb = progress::bar(p.tensors.len() as u64, "merging");
    let summary = execute(
        &p,
        &a.out_dir,
        &ExecOptions {
            seed: a.seed,
            max_shard_bytes: Some(max_shard_bytes),
            overwrite: a.overwrite,
            topk_global,
        },
        |i, name| {
            pb.set_position(i as u64);
            pb.set_prefix(name.to_string());
        },
    )
    .map_err(lift)?;
    pb.finish_and_clear();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "out_dir": summary.out_dir,
                "files": summary.files,
                "tensors": summary.tensors,
                "bytes": summary.bytes,
                "method": p.method.name(),
            }))?
        );
    } else {
        println!(
            "merged {} tensors ({} bytes) with {} into {}",
            summary.tensors,
            summary.bytes,
            p.method,
            summary.out_dir.display()
        );
        for f in &summary.files {
            println!("  {f}");
        }
    }
    Ok(())
}
