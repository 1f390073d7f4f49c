//! `weightspace align`: permute one model into another's basin.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use weightspace_spec::ModelSpec;
use weightspace_symmetry::{MatchOptions, MatchResult, Weights, activation_matching, align, apply};

use crate::exit::bad_input;
use crate::spec::{heads_note, load_proven, load_weights, sym_err, write_output};

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
/// transformers through the head-aware spec (the head count from a `config.json` beside the
/// weights; without one, align refuses unless `--no-heads`). A spec derived from shapes that
/// does not account for every tensor is refused too (see `weightspace spec --help`). Weight matching is Git Re-Basin's coordinate
/// descent with a linear assignment per group, in a seeded random order, until no group
/// improves.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace align ref.safetensors other.safetensors -o aligned.safetensors
  weightspace align ref.safetensors other.safetensors -o aligned.safetensors --method activation --data digits
  weightspace align bert-a/ bert-b/ -o aligned/ --json")]
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
    /// Dataset for activation matching: `digits` (the bundled digits, first 1,000 training
    /// images; the default). Activation matching needs zoo checkpoints.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Seed of the random group order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Most sweeps over all groups.
    #[arg(long, default_value_t = 100)]
    pub max_iter: usize,
    /// TOML spec file (see `weightspace spec --help`): needed when the spec derived from names
    /// and shapes is refused as not proven.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Go on when the attention head count is unknown (a transformer without config.json):
    /// align the residual-stream and MLP groups only, leaving heads in place (and say so).
    #[arg(long)]
    pub no_heads: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
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
    /// Why head groups were left out (`--no-heads`), if they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    heads_missing: Option<String>,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let (r, spec, _) = load_proven(&a.reference, a.spec.as_deref(), a.no_heads, &a.open)?;
    // OTHER is permuted with REF's groups (same names and shapes, checked next).
    let (o, ck) = load_weights(&a.other, &a.open)?;
    r.check_compatible(&o).map_err(sym_err)?;
    let start = Instant::now();
    let opts = MatchOptions {
        seed: a.seed,
        max_iter: a.max_iter,
        init: None,
    };
    let (aligned, res) = if a.method == Method::Activation {
        let t = activation_transform(&spec, &a.reference, &a.other, &r, &o, a.data.as_deref())?;
        let mut aligned = o.clone();
        apply(&spec, &mut aligned, &t).map_err(sym_err)?;
        let res = MatchResult {
            transform: t,
            sweeps: 0,
            similarity_before: 0.0,
            similarity_after: 0.0,
        };
        (aligned, res)
    } else {
        align(&spec, &r, &o, &opts).map_err(sym_err)?
    };
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
        method: match a.method {
            Method::Weight => "weight",
            Method::Activation => "activation",
        },
        groups: spec.groups.len(),
        sweeps: res.sweeps,
        similarity_before: res.similarity_before,
        similarity_after: res.similarity_after,
        l2_before: r.l2_distance(&o).map_err(sym_err)?,
        l2_after: r.l2_distance(&aligned).map_err(sym_err)?,
        seconds,
        heads_missing: spec.heads_missing().map(|u| u.reason.clone()),
    };
    if a.json {
        return crate::fmt::print_json(&rep);
    }
    if a.method == Method::Activation {
        println!(
            "aligned {} groups by activation matching ({:.3} s): L2 distance to REF {:.4} -> {:.4}",
            rep.groups, rep.seconds, rep.l2_before, rep.l2_after
        );
        println!("wrote {}", rep.output.display());
        return Ok(());
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
    if let Some(n) = heads_note(&spec) {
        println!("{n}");
    }
    println!("wrote {}", rep.output.display());
    Ok(())
}

/// Activation matching of two zoo checkpoints: hidden activations of both on the same 1,000
/// training images, activation `i` matched as chain group `hidden.i`.
pub fn activation_transform(
    spec: &ModelSpec,
    ref_path: &std::path::Path,
    other_path: &std::path::Path,
    r: &Weights,
    o: &Weights,
    data: Option<&std::path::Path>,
) -> anyhow::Result<weightspace_symmetry::Transform> {
    let not_zoo = |p: &std::path::Path, e: weightspace_zoo::Error| {
        bad_input(format!(
            "{}: activation matching runs zoo checkpoints (architecture in the `weightspace.zoo.arch` metadata): {e}",
            p.display()
        ))
    };
    let (net, _) = weightspace_zoo::load_model(ref_path).map_err(|e| not_zoo(ref_path, e))?;
    weightspace_zoo::load_model(other_path).map_err(|e| not_zoo(other_path, e))?;
    let split = crate::interp::digits_split(data)?;
    let n = split.train.len().min(1000);
    let x = &split.train.x[..n * split.train.dim()];
    let sr = crate::interp::zoo_state(&net, r).map_err(sym_err)?;
    let so = crate::interp::zoo_state(&net, o).map_err(sym_err)?;
    let (ar, ao) = (
        net.hidden_activations(&sr, x, n),
        net.hidden_activations(&so, x, n),
    );
    if ar.len() != spec.groups.len() {
        return Err(bad_input(format!(
            "{} hidden activations but {} symmetry groups: activation matching needs a plain zoo MLP/CNN chain",
            ar.len(),
            spec.groups.len()
        )));
    }
    let acts: Vec<Option<(Vec<f32>, Vec<f32>)>> =
        ar.into_iter().zip(ao).map(|(a, b)| Some((a, b))).collect();
    activation_matching(spec, &acts).map_err(sym_err)
}
