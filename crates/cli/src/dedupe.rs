//! `weightspace dedupe`: exact (BLAKE3) and near (cosine) duplicate models and tensors.

use std::path::PathBuf;

use weightspace_analyze::dedupe::{self, DedupeOptions};

use crate::lineage::open_models;
use crate::{exit, fmt, progress};

/// Lists models and tensors that are exact duplicates (equal BLAKE3 content hashes) and near
/// duplicates (same name and shape, cosine similarity at or above a threshold), with the bytes
/// that storing each once would save.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace dedupe checkpoints/
  weightspace dedupe a.safetensors a-f16.safetensors --threshold 0.9999 --json")]
pub struct Args {
    /// Directories to search for models (or model files).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON: {"models","duplicate_models","duplicate_tensors","near_duplicate_models","near_duplicate_tensors","exact_bytes_saved","near_bytes_saved","total_bytes"}.
    #[arg(long)]
    pub json: bool,
    /// Cosine similarity at or above which tensors are near duplicates.
    #[arg(long, default_value_t = 0.999)]
    pub threshold: f64,
    /// Tensors with fewer elements are only compared exactly.
    #[arg(long, default_value_t = 256)]
    pub min_numel: usize,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    if !(-1.0..=1.0).contains(&a.threshold) {
        return Err(exit::bad_input("--threshold must be a cosine in [-1, 1]"));
    }
    let models = open_models(&a.paths, &a.open)?;
    let opts = DedupeOptions {
        threshold: a.threshold,
        min_numel: a.min_numel,
        ..Default::default()
    };
    let pb = progress::bar(1, "hashing");
    let rep = dedupe::dedupe(&models, &opts, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if a.json {
        return fmt::print_json(&rep);
    }
    println!(
        "{} models, {} in total",
        rep.models.len(),
        fmt::bytes(rep.total_bytes)
    );
    if rep.duplicate_models.is_empty() {
        println!("no identical models");
    }
    for g in &rep.duplicate_models {
        println!("identical models: {}", g.join(", "));
    }
    for m in &rep.near_duplicate_models {
        println!(
            "near-duplicate models: {} ~ {} (min cosine {:.6}, {} tensors equal, {} near)",
            m.a, m.b, m.min_cosine, m.exact_tensors, m.near_tensors
        );
    }
    if !rep.duplicate_tensors.is_empty() {
        let rows: Vec<Vec<String>> = rep
            .duplicate_tensors
            .iter()
            .take(20)
            .map(|d| {
                let first = &d.occurrences[0];
                vec![
                    format!("{}:{}", first.0, first.1),
                    d.occurrences.len().to_string(),
                    fmt::bytes(d.bytes),
                ]
            })
            .collect();
        println!("\nexact duplicate tensors (largest 20):");
        print!("{}", fmt::table(&["first copy", "copies", "size"], &rows));
    }
    if !rep.near_duplicate_tensors.is_empty() {
        let rows: Vec<Vec<String>> = rep
            .near_duplicate_tensors
            .iter()
            .take(20)
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.a.clone(),
                    t.b.clone(),
                    format!("{:.6}", t.cosine),
                    fmt::bytes(t.bytes),
                ]
            })
            .collect();
        println!("\nnear-duplicate tensors (largest 20):");
        print!(
            "{}",
            fmt::table(&["tensor", "a", "b", "cosine", "size"], &rows)
        );
    }
    println!(
        "\nsaving: {} by storing exact duplicates once, {} more with near duplicates",
        fmt::bytes(rep.exact_bytes_saved),
        fmt::bytes(rep.near_bytes_saved)
    );
    Ok(())
}
