//! `weightspace lineage`: which model was derived from which (MoTHer-style tree recovery).
//! Also holds the helpers the multi-model commands share (opening models, mapping errors).

use std::path::PathBuf;

use weightspace_analyze::discover::{discover, label};
use weightspace_analyze::lineage::{self, LineageOptions};
use weightspace_io::Checkpoint;

use crate::{exit, fmt, progress};

/// Recovers a directed forest of models: pairwise weight distances over shared tensors, edge
/// direction from weight kurtosis (which grows with training), a minimum spanning arborescence
/// (Chu–Liu/Edmonds) per group of related models. Edges carry a heuristic confidence.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace lineage checkpoints/
  weightspace lineage base.safetensors ft-*.safetensors --mermaid
  weightspace lineage zoo/models/*/epoch_8.safetensors --json")]
pub struct Args {
    /// Model files, model directories, or directories to search for models.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print JSON: {"nodes":[…],"edges":[{"parent","child","distance","confidence","direction"}],"roots":[…],"kurtosis":[…]}.
    #[arg(long, conflicts_with_all = ["dot", "mermaid"])]
    pub json: bool,
    /// Print Graphviz DOT.
    #[arg(long, conflicts_with = "mermaid")]
    pub dot: bool,
    /// Print a Mermaid flowchart.
    #[arg(long)]
    pub mermaid: bool,
    /// Values sampled per tensor for distances (all of smaller tensors).
    #[arg(long, default_value_t = 8192)]
    pub sample: usize,
    /// Relative distance above which models count as unrelated (separate trees).
    #[arg(long, default_value_t = 0.7)]
    pub split: f64,
    /// Weight of a kurtosis-direction disagreement in the edge cost.
    #[arg(long, default_value_t = 1.0)]
    pub direction_weight: f64,
    /// Weight of the unchanged-values term in the edge cost: a child keeps its parent's exact
    /// value wherever its own training did not touch a weight (0: distances and kurtosis only).
    #[arg(long, default_value_t = 1000.0)]
    pub unchanged_weight: f64,
    /// Relative tolerance for weights the child shrank by one common factor (weight decay
    /// under SGD/momentum + L2 or AdamW where no gradient reached): counted with the unchanged
    /// values when their child/parent ratios agree within it (0: exact values only).
    #[arg(long, default_value_t = 1e-5)]
    pub scale_tolerance: f64,
    /// Seed for the sample positions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Maps an analysis error: unreadable inputs keep their io error (exit code by kind), requests
/// that cannot be answered are bad input (exit 2).
pub fn analyze_err(e: weightspace_analyze::Error) -> anyhow::Error {
    match e {
        weightspace_analyze::Error::Io(io) => io.into(),
        other => exit::bad_input(other.to_string()),
    }
}

/// Opens the models named by `paths` (directories searched), labelled by their paths.
pub fn open_models(
    paths: &[PathBuf],
    open: &crate::open::OpenArgs,
) -> anyhow::Result<Vec<(String, Checkpoint)>> {
    let found = discover(paths)?;
    if found.is_empty() {
        return Err(exit::bad_input("no model files found in the given paths"));
    }
    found
        .iter()
        .map(|p| Ok((label(p), open.open(p)?)))
        .collect()
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.sample == 0
        || a.split.is_nan()
        || a.split < 0.0
        || a.direction_weight.is_nan()
        || a.unchanged_weight.is_nan()
        || a.unchanged_weight < 0.0
        || a.scale_tolerance.is_nan()
        || a.scale_tolerance < 0.0
    {
        return Err(exit::bad_input(
            "--sample must be positive and --split, --direction-weight, --unchanged-weight, --scale-tolerance numbers >= 0",
        ));
    }
    let models = open_models(&a.paths, &a.open)?;
    let opts = LineageOptions {
        sample: a.sample,
        split: a.split,
        direction_weight: a.direction_weight,
        unchanged_weight: a.unchanged_weight,
        scale_tolerance: a.scale_tolerance,
        seed: a.seed,
        ..Default::default()
    };
    let pb = progress::bar(models.len() as u64, "lineage");
    let rep = lineage::lineage(&models, &opts, &|| pb.inc(1)).map_err(analyze_err)?;
    pb.finish_and_clear();
    if a.json {
        return fmt::print_json(&rep);
    }
    if a.dot {
        print!("{}", lineage::to_dot(&rep));
        return Ok(());
    }
    if a.mermaid {
        print!("{}", lineage::to_mermaid(&rep));
        return Ok(());
    }
    print_tree(&rep);
    Ok(())
}

/// Prints an indented tree per root.
pub fn print_tree(rep: &lineage::LineageReport) {
    fn walk(rep: &lineage::LineageReport, node: &str, depth: usize) {
        for e in rep.edges.iter().filter(|e| e.parent == node) {
            println!(
                "{}└─ {}  (distance {}, confidence {:.2})",
                "   ".repeat(depth),
                e.child,
                fmt::num(Some(e.distance)),
                e.confidence
            );
            walk(rep, &e.child, depth + 1);
        }
    }
    for r in &rep.roots {
        println!("{r}");
        walk(rep, r, 0);
    }
    println!(
        "{} models, {} trees, {} edges",
        rep.nodes.len(),
        rep.roots.len(),
        rep.edges.len()
    );
}
