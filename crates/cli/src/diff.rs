//! `weightspace diff`: what differs between two checkpoints, tensor by tensor.

use std::path::PathBuf;

use weightspace_analyze::diff;

use crate::fmt;

/// Compare two checkpoints by tensor name: tensors only in one, and for shared names whether
/// shapes/dtypes are equal, the L2 distance, cosine similarity and max |a − b|.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace diff base.safetensors finetuned.safetensors
  weightspace diff model.safetensors model.onnx --json      # an export against its source")]
pub struct Args {
    /// First checkpoint.
    pub a: PathBuf,
    /// Second checkpoint.
    pub b: PathBuf,
    /// Print JSON: {"a","b","only_in_a":[…],"only_in_b":[…],"shared":[{"name","shape_a","shape_b","dtype_a","dtype_b","shape_equal","dtype_equal","identical","l2","cosine","max_abs"}]}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let ca = a.open.open(&a.a)?;
    let cb = a.open.open(&a.b)?;
    let report = diff(&ca, &cb)?;
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["a"] = a.a.display().to_string().into();
        v["b"] = a.b.display().to_string().into();
        return fmt::print_json(&v);
    }
    let identical = report.shared.iter().filter(|d| d.identical).count();
    println!(
        "A {}: {} tensors; B {}: {} tensors",
        a.a.display(),
        ca.len(),
        a.b.display(),
        cb.len()
    );
    println!(
        "{} shared ({} identical), {} only in A, {} only in B",
        report.shared.len(),
        identical,
        report.only_in_a.len(),
        report.only_in_b.len()
    );
    for n in &report.only_in_a {
        println!("  only in A: {n}");
    }
    for n in &report.only_in_b {
        println!("  only in B: {n}");
    }
    let rows: Vec<Vec<String>> = report
        .shared
        .iter()
        .filter(|d| !d.identical)
        .map(|d| {
            let note = match (d.shape_equal, d.dtype_equal) {
                (false, _) => format!(
                    "shape {} vs {}",
                    fmt::shape(&d.shape_a),
                    fmt::shape(&d.shape_b)
                ),
                (true, false) => format!("dtype {} vs {}", d.dtype_a, d.dtype_b),
                _ => String::new(),
            };
            vec![
                d.name.clone(),
                fmt::num(d.l2),
                fmt::num(d.cosine),
                fmt::num(d.max_abs),
                note,
            ]
        })
        .collect();
    if !rows.is_empty() {
        print!(
            "{}",
            fmt::table(&["changed tensor", "l2", "cosine", "max_abs", ""], &rows)
        );
    }
    Ok(())
}
