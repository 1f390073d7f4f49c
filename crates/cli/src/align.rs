//! `weightspace align`: permute one model into another's basin.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use weightspace_symmetry::{MatchOptions, align};

use crate::exit::bad_input;
use crate::spec::{load, sym_err, write_output};

/// Alignment method.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Git Re-Basin weight matching (no data needed).
    Weight,
    /// Activation matching on data (zoo MLPs/CNNs).
    Activation,
}

/// Align OTHER to REF: find the permutations of OTHER's symmetry groups that make it closest
/// to REF and write OTHER permuted (it computes exactly what OTHER computes). Works on
/// transformers through the head-aware spec. Weight matching is Git Re-Basin's coordinate
/// descent with a linear assignment per group, in a seeded random order, until no group
/// improves.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Reference checkpoint.
    pub reference: PathBuf,
    /// Checkpoint to permute.
    pub other: PathBuf,
    /// Output `.safetensors` file, or an existing directory.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Alignment method.
    #[arg(long, value_enum, default_value_t = Method::Weight)]
    pub method: Method,
    /// Dataset for activation matching (default: the bundled digits).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Seed of the random group order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most sweeps over all groups.
    #[arg(long, default_value_t = 100)]
    pub max_iter: usize,
    /// TOML spec file (see `weightspace spec --help`).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    output: PathBuf,
    method: &'static str,
    groups: usize,
    sweeps: usize,
    similarity_before: f64,
    similarity_after: f64,
    l2_before: f64,
    l2_after: f64,
    seconds: f64,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.method == Method::Activation {
        return Err(bad_input(
            "--method activation needs the zoo runtime, which this build does not include yet; use --method weight",
        ));
    }
    let _ = &a.data;
    let (r, spec, _) = load(&a.reference, a.spec.as_deref())?;
    let (o, _, ck) = load(&a.other, a.spec.as_deref())?;
    r.check_compatible(&o).map_err(sym_err)?;
    let start = Instant::now();
    let opts = MatchOptions {
        seed: a.seed,
        max_iter: a.max_iter,
        init: None,
    };
    let (aligned, res) = align(&spec, &r, &o, &opts).map_err(sym_err)?;
    let seconds = start.elapsed().as_secs_f64();
    let file = write_output(
        &aligned,
        &ck,
        &a.other,
        &a.output,
        &[("weightspace.align.seed", a.seed.to_string())],
    )?;
    let rep = Report {
        output: file,
        method: "weight",
        groups: spec.groups.len(),
        sweeps: res.sweeps,
        similarity_before: res.similarity_before,
        similarity_after: res.similarity_after,
        l2_before: r.l2_distance(&o).map_err(sym_err)?,
        l2_after: r.l2_distance(&aligned).map_err(sym_err)?,
        seconds,
    };
    if a.json {
        return crate::fmt::print_json(&rep);
    }
    println!(
        "aligned {} groups in {} sweeps ({:.3} s): L2 distance to REF {:.4} -> {:.4}, <REF, OTHER> {:.4} -> {:.4}",
        rep.groups,
        rep.sweeps,
        rep.seconds,
        rep.l2_before,
        rep.l2_after,
        rep.similarity_before,
        rep.similarity_after
    );
    println!("wrote {}", rep.output.display());
    Ok(())
}
