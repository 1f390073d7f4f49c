//! `weightspace report`: one self-contained HTML report.

use std::path::PathBuf;

use weightspace_analyze::report::{self, ReportOptions};
use weightspace_analyze::spectral::SpectralOptions;
use weightspace_io::write_atomic;

use crate::lineage::{analyze_err, open_models};
use crate::{exit, fmt, progress};

/// Writes one self-contained HTML file (inline SVG, no script, nothing loaded from the
/// network): the inspect and stats tables, spectral metrics with ESD plots (log-log histogram
/// and fitted power law) and α per layer for each model; with two models or more, a similarity
/// heat map and the recovered lineage tree.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace report model.safetensors -o report.html
  weightspace report zoo/models/*/epoch_8.safetensors -o zoo-report.html --max-plots 8
  weightspace report crepe.pth -o crepe.html --conv-layout oihw")]
pub struct Args {
    /// Model files, model directories, or directories to search for models.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The HTML file to write (atomically).
    #[arg(short, long = "output", visible_alias = "out", value_name = "FILE")]
    pub out: PathBuf,
    /// ESD plots per model at most (the rest of the layers are in the tables).
    #[arg(long, default_value_t = 24)]
    pub max_plots: usize,
    /// Sub-sample rows and columns of matrices with a side longer than this.
    #[arg(long, value_name = "N")]
    pub max_dim: Option<usize>,
    /// Skip correlation traps.
    #[arg(long)]
    pub no_traps: bool,
    /// Axis order of convolution kernels, overriding the one each file's framework implies
    /// (as in `spectral`; NumPy files need it for their kernels to be analysed).
    #[arg(long, value_enum, value_name = "LAYOUT")]
    pub conv_layout: Option<crate::spectral::LayoutArg>,
    /// Seed for the random choices (shuffles, samples).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.max_dim == Some(0) {
        return Err(exit::bad_input("--max-dim must be at least 1"));
    }
    let models = open_models(&a.paths, &a.open)?;
    let opts = ReportOptions {
        spectral: SpectralOptions {
            max_dim: a.max_dim,
            conv_layout: a.conv_layout.map(Into::into),
            randomize: !a.no_traps,
            seed: a.seed,
            ..Default::default()
        },
        lineage: weightspace_analyze::lineage::LineageOptions {
            seed: a.seed,
            ..Default::default()
        },
    };
    let steps = models.len() as u64 + if models.len() >= 2 { 2 } else { 0 };
    let pb = progress::bar(steps, "report");
    let data = report::build(&models, &opts, &|| pb.inc(1)).map_err(analyze_err)?;
    pb.finish_and_clear();
    let html = report::render(&data, a.max_plots);
    write_atomic(&a.out, html.as_bytes())?;
    println!(
        "wrote {} ({}, {} model(s))",
        a.out.display(),
        fmt::bytes(html.len() as u64),
        data.models.len()
    );
    Ok(())
}
