//! `weightspace inspect`: format, metadata and the tensor list of a checkpoint (headers only).

use std::path::PathBuf;

use serde::Serialize;
use weightspace_io::Checkpoint;

use crate::fmt;

/// Show a checkpoint's format, metadata and tensors. Reads headers only, never tensor data.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A weights file (safetensors, PyTorch, GGUF, npy/npz, ONNX), a `*.index.json` or a model
    /// directory.
    pub path: PathBuf,
    /// Print JSON: {"path","format","total_params","total_bytes","metadata","tensors":[{"name","dtype","shape","params","bytes"}]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct TensorRow<'a> {
    name: &'a str,
    dtype: &'a str,
    shape: &'a [usize],
    params: u64,
    bytes: u64,
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
    let ck = Checkpoint::open(&a.path)?;
    let report = Report {
        path: a.path.display().to_string(),
        format: ck.format().name(),
        total_params: ck.total_params(),
        total_bytes: ck.total_bytes(),
        metadata: ck.metadata(),
        tensors: ck
            .infos()
            .map(|i| TensorRow {
                name: &i.name,
                dtype: i.dtype.name(),
                shape: &i.shape,
                params: i.numel() as u64,
                bytes: i.nbytes() as u64,
            })
            .collect(),
    };
    if a.json {
        return fmt::print_json(&report);
    }
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
    Ok(())
}
