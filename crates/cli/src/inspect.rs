//! `weightspace inspect`: format, metadata and the tensor list of a checkpoint (headers only).

use std::path::{Path, PathBuf};

use weightspace_io::Checkpoint;

use serde::Serialize;

use crate::fmt;

/// Show a checkpoint's format, metadata and tensors. Reads headers only, never tensor data.
/// A folder of several models (as `similarity` finds them) shows each model in turn.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace inspect model.safetensors
  weightspace inspect checkpoints/ --json          # every model found in the folder
  weightspace inspect model.onnx --all             # also the ONNX shape plumbing")]
pub struct Args {
    /// Weights files (safetensors, PyTorch, GGUF, npy/npz, ONNX), `*.index.json` files, model
    /// directories or directories to search.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON: {"path","format","total_params","total_bytes","metadata","tensors":[{"name","dtype","shape","params","bytes"}]}
    /// for one model, an array of them for several; a tensor presented under another name than
    /// the file stores (ONNX `onnx::MatMul_N`) also has "alias" (the stored name),
    /// "stored_shape" and "transposed".
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

#[derive(Serialize)]
struct TensorRow<'a> {
    name: &'a str,
    dtype: &'a str,
    shape: &'a [usize],
    params: u64,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_shape: Option<&'a [usize]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transposed: Option<bool>,
}

#[derive(Serialize)]
struct Report<'a> {
    path: String,
    format: &'a str,
    total_params: u64,
    total_bytes: u64,
    metadata: &'a std::collections::BTreeMap<String, serde_json::Value>,
    tensors: Vec<TensorRow<'a>>,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let paths = crate::exit::model_paths(&a.paths)?;
    let cks = paths
        .iter()
        .map(|p| Ok((p, a.open.open(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let reports: Vec<Report<'_>> = cks.iter().map(|(p, ck)| report(p, ck)).collect();
    if a.json {
        return match reports.as_slice() {
            [one] => fmt::print_json(one),
            several => fmt::print_json(&several),
        };
    }
    for (i, (r, (_, ck))) in reports.iter().zip(&cks).enumerate() {
        if i > 0 {
            println!();
        }
        print_report(r, ck);
    }
    Ok(())
}

fn report<'a>(path: &Path, ck: &'a Checkpoint) -> Report<'a> {
    Report {
        path: path.display().to_string(),
        format: ck.format().name(),
        total_params: ck.total_params(),
        total_bytes: ck.total_bytes(),
        metadata: ck.metadata(),
        tensors: ck
            .infos()
            .map(|i| {
                let alias = ck.alias(&i.name);
                TensorRow {
                    name: &i.name,
                    dtype: i.dtype.name(),
                    shape: &i.shape,
                    params: i.numel() as u64,
                    bytes: i.nbytes() as u64,
                    alias: alias.map(|a| a.name.as_str()),
                    stored_shape: alias.map(|a| a.stored_shape.as_slice()),
                    transposed: alias.map(|a| a.transposed),
                }
            })
            .collect(),
    }
}

fn print_report(report: &Report<'_>, ck: &Checkpoint) {
    println!("{}", report.path);
    println!(
        "  format {}, {} tensors, {} parameters, {}",
        report.format,
        ck.len(),
        fmt::count(report.total_params),
        fmt::bytes(report.total_bytes)
    );
    if ck.files().len() > 1 {
        println!("  {} shard files", ck.files().len());
    }
    if let Some(n) = report.metadata.get("hidden_tensors") {
        println!(
            "  {n} more stored tensors are not weights (shape plumbing, scalar constants): --all shows them"
        );
    }
    let renamed = report.tensors.iter().filter(|t| t.alias.is_some()).count();
    if renamed > 0 {
        println!(
            "  {renamed} tensors shown under their module's name or as copies; --json gives the stored names"
        );
    }
    if !report.metadata.is_empty() {
        println!("  metadata:");
        for (k, v) in report.metadata {
            let mut s = match v {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            if s.chars().count() > 100 {
                s = s.chars().take(97).collect::<String>() + "...";
            }
            println!("    {k}: {s}");
        }
    }
    let rows: Vec<Vec<String>> = report
        .tensors
        .iter()
        .map(|t| {
            vec![
                t.name.to_string(),
                t.dtype.to_string(),
                fmt::shape(t.shape),
                t.params.to_string(),
                fmt::bytes(t.bytes),
            ]
        })
        .collect();
    print!(
        "{}",
        fmt::table(&["tensor", "dtype", "shape", "params", "bytes"], &rows)
    );
}
