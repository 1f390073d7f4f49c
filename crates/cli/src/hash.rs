//! `weightspace hash`: content hashes per tensor and per model, and duplicated tensors.

use std::path::PathBuf;

use weightspace_analyze::hash_files;

use crate::fmt;

/// BLAKE3 content hashes: per tensor over (dtype, shape, bytes), one model hash per file, and
/// tensors whose hashes are equal across (or within) the given files.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace hash model.safetensors
  weightspace hash base.safetensors finetuned.safetensors --tensors
  weightspace hash checkpoints/ --json      # every model in the folder, and what they share")]
pub struct Args {
    /// Checkpoints to hash: files, model directories or directories to search (each model
    /// found is hashed as one).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON: {"files":[{"path","model_hash","tensors":[{"name","hash","bytes"}]}],"duplicates":[{"hash","bytes","occurrences":[[path,name],…]}]}.
    #[arg(long)]
    pub json: bool,
    /// Also list every tensor's hash (human output).
    #[arg(long)]
    pub tensors: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let cks = crate::exit::model_paths(&a.paths)?
        .iter()
        .map(|p| Ok((p.display().to_string(), a.open.open(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = hash_files(&cks)?;
    if a.json {
        return fmt::print_json(&report);
    }
    for f in &report.files {
        println!("{}  {}", f.model_hash, f.path);
        if a.tensors {
            for t in &f.tensors {
                println!("  {}  {}", &t.hash[..16], t.name);
            }
        }
    }
    if report.duplicates.is_empty() {
        println!("no duplicated tensors");
    } else {
        let saved: u64 = report
            .duplicates
            .iter()
            .map(|d| d.bytes * (d.occurrences.len() as u64 - 1))
            .sum();
        println!(
            "{} tensor contents appear more than once ({} could be saved by storing each once):",
            report.duplicates.len(),
            fmt::bytes(saved)
        );
        for d in report.duplicates.iter().take(20) {
            let occ: Vec<String> = d
                .occurrences
                .iter()
                .map(|(p, n)| format!("{p}:{n}"))
                .collect();
            println!(
                "  {} ({}): {}",
                &d.hash[..16],
                fmt::bytes(d.bytes),
                occ.join(", ")
            );
        }
        if report.duplicates.len() > 20 {
            println!("  … {} more (see --json)", report.duplicates.len() - 20);
        }
    }
    Ok(())
}
