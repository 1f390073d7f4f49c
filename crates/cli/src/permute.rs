//! `weightspace permute`: apply a random symmetry to a checkpoint.

use std::path::PathBuf;

use weightspace_symmetry::{RandomOptions, Transform, apply};

use crate::spec::{load, sym_err, write_output};

/// Apply a random element of the model's symmetry group — permutations of hidden units,
/// channels, residual dimensions and attention heads; with `--scale`, positive per-unit
/// scaling of ReLU-family units; with `--sign`, sign flips of odd-activation units — and write
/// a checkpoint that computes the same function. Same seed, same output.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input checkpoint (file or model directory).
    pub input: PathBuf,
    /// Output `.safetensors` file, or an existing directory (then `DIR/model.safetensors`,
    /// with the input's `config.json` copied beside it).
    pub output: PathBuf,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also rescale units by random positive factors in [1/2, 2] where the activation allows.
    #[arg(long)]
    pub scale: bool,
    /// Also flip signs of units where the activation is odd (tanh) or the unit is linear.
    #[arg(long)]
    pub sign: bool,
    /// TOML spec file (see `weightspace spec --help`).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Print the group element applied as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let (mut w, spec, ck) = load(&a.input, a.spec.as_deref(), &a.open)?;
    let opts = RandomOptions {
        scale: a.scale,
        sign: a.sign,
        ..RandomOptions::default()
    };
    if a.scale && !spec.groups.iter().any(|g| g.scaling.allows_positive()) {
        eprintln!(
            "warning: --scale: no group allows positive scaling (activation unknown or not ReLU-like; set `activation` in a spec file)"
        );
    }
    if a.sign && !spec.groups.iter().any(|g| g.scaling.allows_sign()) {
        eprintln!("warning: --sign: no group allows sign flips");
    }
    let t = Transform::random(&spec, a.seed, &opts);
    apply(&spec, &mut w, &t).map_err(sym_err)?;
    let file = write_output(
        &w,
        &ck,
        &a.input,
        &a.output,
        &[("weightspace.permute.seed", a.seed.to_string())],
    )?;
    if a.json {
        return crate::fmt::print_json(&serde_json::json!({
            "output": file, "groups": spec.groups.iter().map(|g| &g.name).collect::<Vec<_>>(),
            "transform": t,
        }));
    }
    let scaled = t.elements.iter().filter(|e| e.scale.is_some()).count();
    println!(
        "permuted {} groups ({} also rescaled), seed {} -> {}",
        spec.groups.len(),
        scaled,
        a.seed,
        file.display()
    );
    Ok(())
}
