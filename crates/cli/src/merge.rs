//! `weightspace merge`: merge checkpoints from a mergekit YAML config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use weightspace_merge::{
    Align, ExecOptions, MergeConfig, ParseOptions, Plan, PlanOptions, TOKENIZER_FILES, execute,
    plan,
};
use weightspace_symmetry::{MatchOptions, align};

use crate::exit::lift;
use crate::exit::{bad_input, shard_size};
use crate::progress;
use crate::spec::{load, sym_err, write_output};

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
///
/// An unknown key anywhere in the config (`densty`, `dtpye`) is an error (exit 2) naming the key
/// path and the closest known key; `--lenient` makes it a warning, as mergekit would ignore it.
/// OUT_DIR also gets `config.json` and the tokenizer files of `tokenizer_source` (`base` or a
/// model path; without it, of the base or first model), the config as `mergekit_config.yml`,
/// and a model card `README.md` (method, each source's path and BLAKE3 model hash as
/// `weightspace hash` prints it, the weightspace version, the YAML verbatim).
///
/// `--align weight` (or `align: weight` at the top of the config, a weightspace extension that
/// mergekit does not have) first permutes every model into the basin of the base model (the
/// first model when there is no base) by Git Re-Basin weight matching — for models trained
/// from different initialisations — and merges the aligned copies.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace merge examples/merge/ties.yaml -o merged/
  weightspace merge config.yaml -o merged/ --dry-run           # check the config and print the plan
  weightspace merge config.yaml -o merged/ --dtype bfloat16 --align weight --overwrite")]
pub struct Args {
    /// The mergekit YAML config.
    pub config: PathBuf,
    /// Deprecated positional form of -o.
    #[arg(hide = true)]
    pub out_dir_positional: Option<PathBuf>,
    /// Output folder (must not exist or be empty, unless --overwrite).
    #[arg(short, long = "output", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Seed for the random methods (dare_*, della*): same seed, same bits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Shard the output when it exceeds this size (e.g. 5GB, 500MB, 2GiB).
    #[arg(long, value_name = "SIZE", default_value = "5GB")]
    pub max_shard_size: String,
    /// Output dtype for merged tensors (float32/f32, float16/f16/half, bfloat16/bf16,
    /// float64/f64); overrides the config's out_dtype/dtype.
    #[arg(long, value_parser = crate::exit::float_dtype)]
    pub dtype: Option<weightspace_io::DType>,
    /// Top-k for TIES per tensor (mergekit) or over the whole model (the TIES paper and
    /// FusionBench; a first pass reads every tensor).
    #[arg(long, value_name = "SCOPE", default_value = "tensor", value_parser = ["tensor", "global"])]
    pub topk_scope: String,
    /// Align every model to the base (or the first model) before merging: `weight` (Git
    /// Re-Basin weight matching; models are read whole into memory, one at a time) or `none`.
    /// Overrides the config's `align:` key.
    #[arg(long, value_name = "METHOD", value_parser = ["weight", "none"])]
    pub align: Option<String>,
    /// Seed of the alignment's random group order.
    #[arg(long, default_value_t = 0)]
    pub align_seed: u64,
    /// Unknown config keys (typos such as `densty`, `dtpye`) are warnings and ignored, as in
    /// mergekit, instead of errors (exit 2) naming the closest known key.
    #[arg(long)]
    pub lenient: bool,
    /// Validate the config against the models and print the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Replace OUT_DIR if it exists and is not empty.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let dtype = a.dtype;
    let out_dir =
        crate::exit::output_path("merge", a.out_dir.clone(), a.out_dir_positional.clone())?;
    let max_shard_bytes = shard_size(Some(&a.max_shard_size))?.expect("given");
    let topk_global = a.topk_scope == "global";
    let mut cfg = MergeConfig::from_file_with(&a.config, ParseOptions { lenient: a.lenient })
        .map_err(lift)?;
    if let Some(s) = &a.align {
        cfg.align = Align::parse(s).expect("clap checked the value");
    }
    let targets = match cfg.align {
        Some(Align::Weight) => Some(cfg.align_targets().map_err(lift)?),
        None => None,
    };
    let opts = PlanOptions {
        dtype,
        topk_global,
        open: a.open.options(),
        ..PlanOptions::default()
    };
    // Validate the whole config (headers only) before aligning anything.
    let mut p = plan(cfg.clone(), &opts).map_err(lift)?;
    // Align-then-merge: aligned copies in a temp folder beside the output, merged in place of
    // the models (the plan keeps the config's names); the folder goes when `_aligned` drops.
    let mut _aligned = None;
    let mut align_report = Vec::new();
    if let (Some((reference, others)), false) = (&targets, a.dry_run) {
        weightspace_merge::check_output(&out_dir, a.overwrite).map_err(lift)?;
        let path_of = |p: &Plan, name: &str| {
            p.models
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.path.clone())
                .expect("planned")
        };
        let ref_path = path_of(&p, &reference.name);
        let (wr, spec, _) = load(&ref_path, None, &a.open)?;
        let parent = match out_dir.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)?;
        let tmp = tempfile::Builder::new()
            .prefix(".weightspace-align.")
            .tempdir_in(&parent)?;
        let mut sources = BTreeMap::new();
        for (k, o) in others.iter().enumerate() {
            let src = path_of(&p, &o.name);
            let (wo, _, ck) = load(&src, None, &a.open)?;
            wr.check_compatible(&wo).map_err(|e| {
                bad_input(format!(
                    "align: `{}` cannot be aligned to `{}`: {}",
                    o.name,
                    reference.name,
                    sym_err(e)
                ))
            })?;
            let mopts = MatchOptions {
                seed: a.align_seed,
                ..MatchOptions::default()
            };
            let (aligned, r) = align(&spec, &wr, &wo, &mopts).map_err(sym_err)?;
            let dir = tmp.path().join(k.to_string());
            std::fs::create_dir_all(&dir)?;
            let folder = copy_side_files(&src, &dir)?;
            let file = write_output(
                &aligned,
                &ck,
                &src,
                &dir.join("model.safetensors"),
                &[("weightspace.align.reference", reference.name.clone())],
            )?;
            let (before, after) = (
                wr.l2_distance(&wo).map_err(sym_err)?,
                wr.l2_distance(&aligned).map_err(sym_err)?,
            );
            align_report.push(json!({
                "model": o.name, "reference": reference.name, "groups": spec.groups.len(),
                "sweeps": r.sweeps, "l2_before": before, "l2_after": after,
            }));
            if !a.json {
                println!(
                    "aligned {} to {} by weight matching ({} groups, {} sweeps): L2 distance {before:.4} -> {after:.4}",
                    o.name,
                    reference.name,
                    spec.groups.len(),
                    r.sweeps
                );
            }
            // A folder input stays a folder (its config.json and tokenizer files beside it).
            sources.insert(o.name.clone(), if folder { dir } else { file });
        }
        p = plan(cfg, &PlanOptions { sources, ..opts }).map_err(lift)?;
        _aligned = Some(tmp);
    }
    for w in &p.warnings {
        eprintln!("warning: {w}");
    }
    let total_params: u64 = p.tensors.iter().map(|t| t.out.numel() as u64).sum();
    let total_bytes: u64 = p.tensors.iter().map(|t| t.out.nbytes() as u64).sum();
    if a.dry_run {
        weightspace_merge::check_output(&out_dir, a.overwrite).map_err(lift)?;
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
            if let Some((r, o)) = &targets {
                println!(
                    "would align {} model(s) to {} by weight matching first",
                    o.len(),
                    r.name
                );
            }
            println!("config is valid; nothing written (--dry-run)");
        }
        return Ok(());
    }
    let pb = progress::bar(p.tensors.len() as u64, "merging");
    let summary = execute(
        &p,
        &out_dir,
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
                "aligned": align_report,
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

/// Copies a model folder's `config.json` and tokenizer files beside its aligned copy, so that
/// `tokenizer_source` and the output's `config.json` work as with the original. Returns whether
/// the input was a model folder (or an index inside one).
fn copy_side_files(src: &Path, dir: &Path) -> anyhow::Result<bool> {
    let folder = if src.is_dir() {
        src.to_path_buf()
    } else if src.to_string_lossy().ends_with(".index.json") {
        match src.parent() {
            Some(p) => p.to_path_buf(),
            None => return Ok(false),
        }
    } else {
        return Ok(false);
    };
    for f in std::iter::once("config.json").chain(TOKENIZER_FILES) {
        let from = folder.join(f);
        if from.is_file() {
            std::fs::copy(&from, dir.join(f))?;
        }
    }
    Ok(true)
}
