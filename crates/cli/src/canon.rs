//! `weightspace canon`: the canonical form of a checkpoint.

use std::path::PathBuf;

use weightspace_symmetry::{CanonOptions, canonicalize};

use crate::spec::{load, sym_err, write_output};

/// Write the canonical form of a checkpoint: every group's units sorted by a deterministic
/// key, ReLU units rescaled to unit-norm incoming weights, tanh units sign-fixed. Two
/// checkpoints that differ by a permutation get bit-identical canonical forms (and, after
/// rescaling, equal to rounding). Same function as the input.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input checkpoint (file or model directory).
    pub input: PathBuf,
    /// Output `.safetensors` file, or an existing directory.
    pub output: PathBuf,
    /// Sort units only; do not normalise scales or signs.
    #[arg(long)]
    pub no_scale: bool,
    /// TOML spec file (see `weightspace spec --help`).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let (mut w, spec, ck) = load(&a.input, a.spec.as_deref(), &a.open)?;
    canonicalize(&spec, &mut w, &CanonOptions { scale: !a.no_scale }).map_err(sym_err)?;
    let file = write_output(
        &w,
        &ck,
        &a.input,
        &a.output,
        &[("weightspace.canon", "1".into())],
    )?;
    println!(
        "canonical form of {} groups -> {}",
        spec.groups.len(),
        file.display()
    );
    Ok(())
}
