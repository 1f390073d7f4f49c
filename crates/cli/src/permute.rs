//! `weightspace permute`: apply a random symmetry to a checkpoint.

use std::path::PathBuf;

use weightspace_symmetry::{RandomOptions, Transform, apply};

use crate::spec::{heads_note, load_proven, sym_err, write_output};

/// Apply a random element of the model's symmetry group — permutations of hidden units,
/// channels, residual dimensions and attention heads; with `--scale`, positive per-unit
/// scaling of ReLU-family units; with `--sign`, sign flips of odd-activation units — and write
/// a checkpoint that computes the same function. Same seed, same output. A spec guessed from
/// names and shapes that does not account for every tensor (an LSTM after a conv stack, a
/// flatten of unknown order, an unknown head count) is refused with exit 2; see
/// `weightspace spec --help`.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace permute model.safetensors -o permuted.safetensors --seed 1
  weightspace permute mlp.safetensors -o out/ --scale --json
  weightspace permute bert/ -o bert-permuted/          # config.json gives the heads")]
pub struct Args {
    /// Input checkpoint (file or model directory).
    pub input: PathBuf,
    /// Deprecated positional form of -o.
    #[arg(hide = true)]
    pub output_positional: Option<PathBuf>,
    /// Output `.safetensors` file, or an existing directory (then `DIR/model.safetensors`,
    /// with the input's `config.json` copied beside it).
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also rescale units by random positive factors in [1/2, 2] where the activation allows.
    #[arg(long)]
    pub scale: bool,
    /// Also flip signs of units where the activation is odd (tanh) or the unit is linear.
    #[arg(long)]
    pub sign: bool,
    /// TOML spec file (see `weightspace spec --help`): needed when the spec derived from names
    /// and shapes is refused as not proven.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Go on when the attention head count is unknown (a transformer without config.json):
    /// leave the head and within-head groups out and use the others.
    #[arg(long)]
    pub no_heads: bool,
    /// Print the group element applied as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let (mut w, spec, ck) = load_proven(&a.input, a.spec.as_deref(), a.no_heads, &a.open)?;
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
    let output =
        crate::exit::output_path("permute", a.output.clone(), a.output_positional.clone())?;
    let t = Transform::random(&spec, a.seed, &opts);
    apply(&spec, &mut w, &t).map_err(sym_err)?;
    let file = write_output(
        &w,
        &ck,
        &a.input,
        &output,
        &[("weightspace.permute.seed", a.seed.to_string())],
    )?;
    let note = heads_note(&spec);
    if a.json {
        return crate::fmt::print_json(&serde_json::json!({
            "output": file, "groups": spec.groups.iter().map(|g| &g.name).collect::<Vec<_>>(),
            "transform": t, "heads_missing": spec.heads_missing().map(|u| &u.reason),
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
    if let Some(n) = note {
        println!("{n}");
    }
    Ok(())
}
