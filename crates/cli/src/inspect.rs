//! `weightspace inspect`: format, metadata and the tensor list of a checkpoint (headers only).

use std::path::{Path, PathBuf};

use weightspace_io::Checkpoint;

use serde::Serialize;

use weightspace_io::{Holds, Section};

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
    /// "stored_shape" and "transposed". A PyTorch checkpoint wrapping
    /// its state dict with other things also has "keys":
    /// [{"key","selected","tensors","params"} or {"key","value"} or {"key","values"}].
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    keys: Vec<KeyRow<'a>>,
}

/// A top-level key of a wrapped PyTorch checkpoint.
#[derive(Serialize)]
struct KeyRow<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    selected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    optimizer: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tensors: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<usize>,
}

fn key_row(s: &Section) -> KeyRow<'_> {
    let mut row = KeyRow {
        key: &s.key,
        selected: None,
        optimizer: None,
        tensors: None,
        params: None,
        value: None,
        values: None,
    };
    match &s.holds {
        Holds::Tensors { count, params } => {
            row.selected = Some(s.selected);
            row.optimizer = Some(s.is_optimizer());
            row.tensors = Some(*count);
            row.params = Some(*params);
        }
        Holds::Value(v) => row.value = Some(v),
        Holds::Values(n) => row.values = Some(*n),
    }
    row
}

/// One line saying what a top-level key holds.
fn key_line(s: &Section) -> String {
    match &s.holds {
        Holds::Tensors { count, params } => {
            let what = format!("{count} tensors, {} parameters", fmt::count(*params));
            if s.selected {
                format!("{what} (the tensors below)")
            } else if s.is_optimizer() {
                format!("optimizer state: {what}, not analysed")
            } else {
                format!("{what}, not analysed")
            }
        }
        Holds::Value(serde_json::Value::String(v)) => v.clone(),
        Holds::Value(v) => v.to_string(),
        Holds::Values(n) => format!("{n} values"),
    }
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
        keys: ck.sections().iter().map(key_row).collect(),
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
            "  {renamed} tensors shown under another name than the file stores (a module's name, a copy, --key, --strip-prefix or --rename); --json gives the stored names"
        );
    }
    if !ck.sections().is_empty() {
        println!(
            "  top-level keys (--key NAME shows another's tensors, --all every tensor under its stored name):"
        );
        for sec in ck.sections() {
            let mut line = key_line(sec);
            if line.chars().count() > 100 {
                line = line.chars().take(97).collect::<String>() + "...";
            }
            println!("    {}: {line}", sec.key);
        }
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
