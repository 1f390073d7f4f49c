//! `weightspace spectral`: WeightWatcher-style spectral metrics per layer.

use std::path::PathBuf;

use weightspace_analyze::spectral::{self, ConvLayout, ConvMode, SpectralOptions, SpectralReport};
use weightspace_analyze::table;

use crate::{exit, fmt, progress};

/// Spectral metrics of every weight matrix (WeightWatcher 0.7.7 definitions): eigenvalues
/// λ = σ² of each matrix (conv kernels sliced per kernel position, or flattened), power-law fit
/// of the tail (xmin by minimum KS distance, MLE α), alpha_weighted = α·log10 λmax, log_norm,
/// log_spectral_norm, stable_rank, Marchenko–Pastur soft rank and spikes, correlation traps.
///
/// Convolution kernels are read in their framework's axis order (PyTorch, ONNX, GGUF and
/// safetensors: [out, in, kh, kw]; safetensors marked `format: tf`/`flax`: [kh, kw, in, out]);
/// NumPy files do not say, so their kernels are skipped unless --conv-layout is given. Every
/// tensor left out (1-D, integer, too small, unknown layout) is listed with the reason.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace spectral model.safetensors
  weightspace spectral pytorch_model.bin --json --parquet layers.parquet
  weightspace spectral kernels.npz --conv-layout hwio")]
pub struct Args {
    /// A checkpoint (any supported format, a `*.index.json` or a model directory).
    pub path: PathBuf,
    /// Print JSON: {"conv_layout","layers":[{"name","shape","alpha","alpha_weighted","xmin","D","num_evals","lambda_max","log_norm","log_spectral_norm","stable_rank","mp_softrank","num_spikes",…}],"skipped":[{"name","shape","dtype","reason"}],"summary":{…}}.
    #[arg(long)]
    pub json: bool,
    /// Also write the per-layer rows to this Parquet file.
    #[arg(long, value_name = "FILE")]
    pub parquet: Option<PathBuf>,
    /// Sub-sample rows and columns of matrices with a side longer than this (approximate
    /// metrics, much faster on huge matrices).
    #[arg(long, value_name = "N")]
    pub max_dim: Option<usize>,
    /// Flatten convolution kernels to out × (in·k·k) instead of pooling per-position slices.
    #[arg(long)]
    pub flatten_conv: bool,
    /// Axis order of convolution kernels, overriding the one the file's framework implies
    /// (PyTorch, TorchScript, ONNX, GGUF, safetensors: oihw; safetensors marked format tf or
    /// flax: hwio; .npy/.npz do not say, so their kernels are skipped unless this is given).
    #[arg(long, value_enum, value_name = "LAYOUT")]
    pub conv_layout: Option<LayoutArg>,
    /// Skip matrices whose smaller side is below this.
    #[arg(long, default_value_t = 8)]
    pub min_evals: usize,
    /// Skip correlation traps (saves one eigen-decomposition per layer).
    #[arg(long)]
    pub no_traps: bool,
    /// Seed for the shuffles (traps) and sub-sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

/// `--conv-layout` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutArg {
    /// [out, in, kh, kw] ([out, in, k] for 1-D kernels): PyTorch, ONNX, GGUF.
    Oihw,
    /// [kh, kw, in, out] ([k, in, out] for 1-D kernels): TensorFlow/Keras, Flax.
    Hwio,
}

impl From<LayoutArg> for ConvLayout {
    fn from(a: LayoutArg) -> ConvLayout {
        match a {
            LayoutArg::Oihw => ConvLayout::Oihw,
            LayoutArg::Hwio => ConvLayout::Hwio,
        }
    }
}

impl Args {
    /// The library options these flags ask for.
    pub fn options(&self) -> anyhow::Result<SpectralOptions> {
        if self.max_dim == Some(0) {
            return Err(exit::bad_input("--max-dim must be at least 1"));
        }
        Ok(SpectralOptions {
            conv: if self.flatten_conv {
                ConvMode::Flatten
            } else {
                ConvMode::Slices
            },
            conv_layout: self.conv_layout.map(ConvLayout::from),
            max_dim: self.max_dim,
            min_evals: self.min_evals,
            randomize: !self.no_traps,
            seed: self.seed,
        })
    }
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    let opts = a.options()?;
    let ck = a.open.open(&a.path)?;
    let pb = progress::bar(spectral::candidate_count(&ck, &opts) as u64, "spectral");
    let rep = spectral::spectral(&ck, &opts, &|| pb.inc(1))?;
    pb.finish_and_clear();
    if let Some(p) = &a.parquet {
        table::write_parquet(p, &spectral::spectral_batch(&rep.layers))?;
    }
    if a.json {
        return fmt::print_json(&rep);
    }
    if rep.layers.is_empty() {
        println!(
            "no weight matrices with at least {} rows and columns",
            opts.min_evals
        );
        print_skipped(&rep);
        return Ok(());
    }
    let opt = |v: Option<usize>| v.map_or("-".to_string(), |v| v.to_string());
    let body: Vec<Vec<String>> = rep
        .layers
        .iter()
        .map(|l| {
            vec![
                l.name.clone(),
                fmt::shape(&l.shape),
                fmt::num(Some(l.alpha)),
                fmt::num(Some(l.alpha_weighted)),
                fmt::num(Some(l.d)),
                fmt::num(Some(l.lambda_max)),
                fmt::num(Some(l.log_norm)),
                fmt::num(Some(l.stable_rank)),
                fmt::num(Some(l.mp_softrank)),
                opt(l.num_spikes),
                opt(l.num_traps),
            ]
        })
        .collect();
    print!(
        "{}",
        fmt::table(
            &[
                "layer",
                "shape",
                "alpha",
                "alpha_w",
                "D",
                "lambda_max",
                "log_norm",
                "stable_rank",
                "mp_softrank",
                "spikes",
                "traps",
            ],
            &body
        )
    );
    print_skipped(&rep);
    let s = &rep.summary;
    println!(
        "summary: {} layers ({} tensors skipped), mean alpha {}, mean alpha_weighted {}, mean log_norm {}, mean stable_rank {}, spikes {}{}",
        s.num_layers,
        s.num_skipped,
        fmt::num(Some(s.alpha)),
        fmt::num(Some(s.alpha_weighted)),
        fmt::num(Some(s.log_norm)),
        fmt::num(Some(s.stable_rank)),
        s.num_spikes,
        s.num_traps
            .map_or(String::new(), |t| format!(", correlation traps {t}"))
    );
    let well = rep
        .layers
        .iter()
        .filter(|l| (2.0..=6.0).contains(&l.alpha))
        .count();
    println!(
        "{well}/{} layers have 2 <= alpha <= 6 (WeightWatcher's well-trained range)",
        rep.layers.len()
    );
    Ok(())
}

/// The tensors without metrics, one line each: name, shape, reason (left-aligned).
fn print_skipped(rep: &SpectralReport) {
    if let Some(l) = rep.conv_layout {
        println!("convolution kernels read as {}", l.name());
    }
    if rep.skipped.is_empty() {
        return;
    }
    println!("skipped {} tensor(s):", rep.skipped.len());
    let shapes: Vec<String> = rep.skipped.iter().map(|s| fmt::shape(&s.shape)).collect();
    let wn = rep
        .skipped
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    let ws = shapes.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    for (s, shape) in rep.skipped.iter().zip(&shapes) {
        println!("  {:wn$}  {:ws$}  {}", s.name, shape, s.reason);
    }
}
