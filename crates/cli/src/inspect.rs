//! `weightspace inspect`: format, metadata and the tensor list of a checkpoint (headers only).

use std::path::PathBuf;

use serde::Serialize;

use crate::fmt;

/// Show a checkpoint's format, metadata and tensors. Reads headers only, never tensor data.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A weights file (safetensors, PyTorch, GGUF, npy/npz, ONNX), a `*.index.json` or a model
    /// directory.
    pub path: PathBuf,
    /// Print JSON: {"path","format","total_params","total_bytes","metadata","tensors":[{"name","dtype","shape","params","bytes"}]};
    /// a tensor presented under another name than the file stores (ONNX `onnx::MatMul_N`) also
    /// has "alias" (the stored name), "stored_shape" and "transposed".
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
    let ck = a.open.open(&a.path)?;
    let report = Report {
        path: a.path.display().to_string(),
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
    Ok(())
}
