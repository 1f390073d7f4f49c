//! `weightspace canon`: the canonical form of a checkpoint.

use std::path::PathBuf;

use weightspace_symmetry::{CanonOptions, canonicalize};

use crate::spec::{heads_note, load_proven, sym_err, write_output};

/// Write the canonical form of a checkpoint: every group's units sorted by a deterministic
/// key, ReLU units rescaled to unit-norm incoming weights, tanh units sign-fixed. Two
/// checkpoints that differ by a permutation get bit-identical canonical forms (and, after
/// rescaling, equal to rounding). Same function as the input. Refuses a spec it cannot prove,
/// as `permute` does (see `weightspace spec --help`).
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace canon model.safetensors -o canonical.safetensors
  weightspace canon model.safetensors -o sorted.safetensors --no-scale
  weightspace canon net.safetensors -o out/ --spec net.spec.toml")]
pub struct Args {
    /// Input checkpoint (file or model directory).
    pub input: PathBuf,
    /// Deprecated positional form of -o.
    #[arg(hide = true)]
    pub output_positional: Option<PathBuf>,
    /// Output `.safetensors` file, or an existing directory.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Sort units only; do not normalise scales or signs.
    #[arg(long)]
    pub no_scale: bool,
    /// TOML spec file (see `weightspace spec --help`): needed when the spec derived from names
    /// and shapes is refused as not proven.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Go on when the attention head count is unknown (a transformer without config.json):
    /// leave the head and within-head groups out and use the others.
    #[arg(long)]
    pub no_heads: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let output = crate::exit::output_path("canon", a.output, a.output_positional)?;
    let (mut w, spec, ck) = load_proven(&a.input, a.spec.as_deref(), a.no_heads, &a.open)?;
    canonicalize(&spec, &mut w, &CanonOptions { scale: !a.no_scale }).map_err(sym_err)?;
    let file = write_output(
        &w,
        &ck,
        &a.input,
        &output,
        &[("weightspace.canon", "1".into())],
    )?;
    println!(
        "canonical form of {} groups -> {}",
        spec.groups.len(),
        file.display()
    );
    if let Some(n) = heads_note(&spec) {
        println!("{n}");
    }
    Ok(())
}
