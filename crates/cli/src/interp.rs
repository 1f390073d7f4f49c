//! `weightspace interp`: linear mode connectivity between two models.

use std::path::PathBuf;

use serde::Serialize;
use weightspace_symmetry::lmc::{
    Evaluator, LmcPath, interpolate, repair_targets, rescale_units, unit_stats,
};
use weightspace_symmetry::{MatchOptions, Weights, align, apply};
use weightspace_zoo::{Dataset, Net, State};

use crate::exit::bad_input;
use crate::spec::{load, sym_err};

/// How to align B to A before interpolating.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlignMethod {
    /// Git Re-Basin weight matching.
    Weight,
    /// Activation matching on the data.
    Activation,
}

/// What `--repair` does at every interior point of the path.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairMode {
    /// `bn` for networks with BatchNorm, `rescale` otherwise.
    Auto,
    /// BatchNorm reset: re-estimate the running statistics on the training data.
    Bn,
    /// REPAIR proper (Jordan et al. 2022), for MLPs: rescale each hidden unit's
    /// pre-activation so that its mean and std on the training data are the interpolation of
    /// the endpoints' statistics.
    Rescale,
}

/// Interpolate between two models, θλ = (1−λ)·θA + λ·θB, print loss and accuracy along the
/// path and the barrier max_λ L(θλ) − ((1−λ)L(θA) + λL(θB)); with `--align`, also after
/// aligning B to A; with `--repair`, re-estimate normalisation statistics at every point.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  weightspace interp zoo/models/a/epoch_8.safetensors zoo/models/b/epoch_8.safetensors --steps 11
  weightspace interp A.safetensors B.safetensors --align weight --repair --json")]
pub struct Args {
    /// First model.
    pub a: PathBuf,
    /// Second model.
    pub b: PathBuf,
    /// Dataset to score on: `digits` (the bundled digits, test split; the default). Models
    /// must be zoo checkpoints (their architecture is in the metadata).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Points on the path, endpoints included.
    #[arg(long, default_value_t = 25)]
    pub steps: usize,
    /// Also align B to A and report the barrier after alignment.
    #[arg(long, value_enum)]
    pub align: Option<AlignMethod>,
    /// REPAIR at every interior point: `--repair=bn` re-estimates BatchNorm running
    /// statistics on the training data (the reset baseline); `--repair=rescale` (REPAIR,
    /// Jordan et al. 2022; MLPs without normalisation) rescales each hidden unit's incoming
    /// weights and bias, layer by layer, so that its pre-activation mean and std on the
    /// training data are (1−λ)·(those of A) + λ·(those of B); `--repair` alone picks `bn` for
    /// nets with BatchNorm and `rescale` otherwise.
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "auto")]
    pub repair: Option<RepairMode>,
    /// Seed of the alignment.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// TOML spec file (see `weightspace spec --help`).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Print JSON: {"naive": path, "aligned": path?}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub open: crate::open::OpenArgs,
}

#[derive(Serialize)]
struct Report {
    naive: LmcPath,
    #[serde(skip_serializing_if = "Option::is_none")]
    aligned: Option<LmcPath>,
}

/// Copies `w`'s tensors into a zoo [`State`] for `net` (names and shapes must match).
pub fn zoo_state(net: &Net, w: &Weights) -> weightspace_symmetry::Result<State> {
    let mut st = net.zero_state();
    let get = |name: &str, shape: &[usize]| -> weightspace_symmetry::Result<Vec<f32>> {
        let t = w.float(name)?;
        if t.shape != shape {
            return Err(weightspace_symmetry::Error::Tensor {
                tensor: name.into(),
                msg: format!("shape {:?}, the zoo architecture needs {shape:?}", t.shape),
            });
        }
        Ok(t.data.clone())
    };
    for p in net.params() {
        let v = get(&p.name, &p.shape)?;
        st.params[p.offset..p.offset + p.numel()].copy_from_slice(&v);
    }
    for b in net.buffers() {
        let v = get(&b.name, &b.shape)?;
        st.buffers[b.offset..b.offset + b.numel()].copy_from_slice(&v);
    }
    Ok(st)
}

/// A zoo network scored on a dataset: the [`Evaluator`] of `interp`.
pub struct ZooEval {
    /// The network (architecture from the checkpoint's `weightspace.zoo.arch` metadata).
    pub net: Net,
    /// Scored on this data.
    pub data: Dataset,
    /// REPAIR re-estimates BatchNorm statistics (or activation statistics) on this data.
    pub train: Dataset,
    /// What [`Evaluator::repair`] does: `Bn` or `Rescale` (`Auto` is resolved by
    /// [`ZooEval::resolve_repair`]); `None` leaves the weights alone.
    pub repair: Option<RepairMode>,
}

/// The input of hidden layer `k`: the data for the first, the previous layer's activations
/// otherwise.
fn layer_input<'a>(x: &'a [f32], h: &'a [Vec<f32>], k: usize) -> &'a [f32] {
    if k == 0 { x } else { &h[k - 1] }
}

/// The (weight, bias) names of an MLP's hidden dense layers, in order; `None` for networks
/// that are not plain MLPs (convolutions, BatchNorm).
pub fn hidden_dense_layers(net: &Net) -> Option<Vec<(String, String)>> {
    if !net.buffers().is_empty() {
        return None;
    }
    let ps = net.params();
    if ps.len() % 2 != 0 || ps.len() < 4 {
        return None;
    }
    let mut layers = Vec::new();
    for pair in ps.chunks_exact(2) {
        let (w, b) = (&pair[0], &pair[1]);
        if w.shape.len() != 2 || b.shape != [w.shape[0]] {
            return None;
        }
        layers.push((w.name.clone(), b.name.clone()));
    }
    layers.pop(); // the output layer is not repaired
    Some(layers)
}

impl ZooEval {
    /// Resolves `Auto` against the network and refuses a mode the network cannot take.
    pub fn resolve_repair(&mut self, mode: Option<RepairMode>) -> anyhow::Result<()> {
        let bn = !self.net.buffers().is_empty();
        let mlp = hidden_dense_layers(&self.net).is_some();
        self.repair = match mode {
            None => None,
            Some(RepairMode::Auto) if bn => Some(RepairMode::Bn),
            Some(RepairMode::Auto) if mlp => Some(RepairMode::Rescale),
            Some(RepairMode::Auto) => {
                eprintln!(
                    "warning: --repair: this network has no BatchNorm and is not an MLP; nothing to repair"
                );
                None
            }
            Some(RepairMode::Bn) if !bn => {
                return Err(bad_input(
                    "--repair=bn: the network has no BatchNorm layers",
                ));
            }
            Some(RepairMode::Rescale) if !mlp => {
                return Err(bad_input(
                    "--repair=rescale is implemented for MLPs (dense layers without BatchNorm); use --repair=bn for nets with BatchNorm",
                ));
            }
            other => other,
        };
        Ok(())
    }

    /// REPAIR by activation rescaling: layer by layer, the interpolated net's hidden units are
    /// rescaled to the interpolated statistics of the endpoints, measured on the training data.
    fn rescale(
        &self,
        w: &Weights,
        a: &Weights,
        b: &Weights,
        lambda: f64,
    ) -> weightspace_symmetry::Result<Weights> {
        let layers = hidden_dense_layers(&self.net).unwrap_or_default();
        let n = self.train.len();
        let x = &self.train.x;
        let acts = |m: &Weights| -> weightspace_symmetry::Result<Vec<Vec<f32>>> {
            Ok(self.net.hidden_activations(&zoo_state(&self.net, m)?, x, n))
        };
        let (ha, hb) = (acts(a)?, acts(b)?);
        let mut out = w.clone();
        for (k, (wn, bn)) in layers.iter().enumerate() {
            let sa = unit_stats(layer_input(x, &ha, k), n, a.float(wn)?, a.get(bn))?;
            let sb = unit_stats(layer_input(x, &hb, k), n, b.float(wn)?, b.get(bn))?;
            let hw = if k == 0 { Vec::new() } else { acts(&out)? };
            let sw = unit_stats(layer_input(x, &hw, k), n, out.float(wn)?, out.get(bn))?;
            rescale_units(
                &mut out,
                wn,
                Some(bn),
                &sw,
                &repair_targets(&sa, &sb, lambda),
            )?;
        }
        Ok(out)
    }
}

impl Evaluator for ZooEval {
    fn loss_acc(&self, w: &Weights) -> weightspace_symmetry::Result<(f64, f64)> {
        let st = zoo_state(&self.net, w)?;
        let m = self.net.evaluate(&st, &self.data);
        Ok((m.loss, m.accuracy))
    }

    /// `Rescale`: REPAIR by activation rescaling ([`ZooEval::rescale`]). `Bn`: BatchNorm reset
    /// (the REPAIR baseline): running statistics re-estimated from 40 training-mode batches of
    /// 256 training samples (momentum 0.1, so the old statistics weigh 0.9^40 ≈ 1.5 %).
    fn repair(&self, w: &Weights, a: &Weights, b: &Weights, lambda: f64) -> Option<Weights> {
        if self.train.is_empty() {
            return None;
        }
        match self.repair {
            Some(RepairMode::Rescale) => {
                return match self.rescale(w, a, b, lambda) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!("REPAIR rescale failed at λ = {lambda}: {e}");
                        None
                    }
                };
            }
            Some(RepairMode::Bn) => {}
            _ => return None,
        }
        if self.net.buffers().is_empty() {
            return None;
        }
        let mut st = zoo_state(&self.net, w).ok()?;
        let batch = 256.min(self.train.len());
        let dim = self.train.dim();
        let mut ws = self.net.workspace(batch);
        let mut rng = weightspace_zoo::rng::Rng::new(0);
        for k in 0..40 {
            let start = (k * batch) % (self.train.len() - batch + 1);
            let x = &self.train.x[start * dim..(start + batch) * dim];
            self.net.forward(&st, &mut ws, x, batch, true, &mut rng);
            self.net.update_running_stats(&mut st, &ws);
        }
        let mut out = w.clone();
        for b in self.net.buffers() {
            if let Some(t) = out.get_mut(&b.name) {
                t.data
                    .copy_from_slice(&st.buffers[b.offset..b.offset + b.numel()]);
            }
        }
        Some(out)
    }
}

/// The bundled digits (train, test), or an error for other `--data` values.
pub fn digits_split(data: Option<&std::path::Path>) -> anyhow::Result<weightspace_zoo::Split> {
    if let Some(d) = data
        && d.as_os_str() != "digits"
    {
        return Err(bad_input(format!(
            "--data {}: only the bundled digits (`--data digits`, the default) are wired so far",
            d.display()
        )));
    }
    Ok(weightspace_zoo::data::digits()?)
}

/// How far apart two zoo checkpoints' functions are: the largest |Δ| between their outputs
/// (logits) on the digits test inputs, the number of inputs, and on how many of them the
/// predicted class agrees. `permute` and `align` must leave this at float rounding.
pub fn output_difference(
    a: &std::path::Path,
    b: &std::path::Path,
) -> anyhow::Result<(f64, usize, usize)> {
    let (na, sa) = weightspace_zoo::load_model(a)?;
    let (nb, sb) = weightspace_zoo::load_model(b)?;
    let test = digits_split(None)?.test;
    let n = test.len();
    let (ya, yb) = (na.predict(&sa, &test.x, n), nb.predict(&sb, &test.x, n));
    if ya.len() != yb.len() || n == 0 {
        return Err(bad_input(format!(
            "{} and {}: the networks have different outputs",
            a.display(),
            b.display()
        )));
    }
    let max = ya
        .iter()
        .zip(&yb)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max);
    let k = ya.len() / n;
    let argmax = |v: &[f32]| {
        (0..v.len())
            .max_by(|&i, &j| v[i].total_cmp(&v[j]))
            .unwrap_or(0)
    };
    let same = (0..n)
        .filter(|&i| argmax(&ya[i * k..(i + 1) * k]) == argmax(&yb[i * k..(i + 1) * k]))
        .count();
    Ok((max, n, same))
}

/// The evaluator for the models and data: the zoo's small-net runtime.
fn evaluator(path: &std::path::Path, data: Option<&std::path::Path>) -> anyhow::Result<ZooEval> {
    let (net, _) = weightspace_zoo::load_model(path).map_err(|e| {
        bad_input(format!(
            "{}: interp scores zoo checkpoints (architecture in the `weightspace.zoo.arch` metadata): {e}",
            path.display()
        ))
    })?;
    let split = digits_split(data)?;
    Ok(ZooEval {
        net,
        data: split.test,
        train: split.train,
        repair: None,
    })
}

fn print_path(title: &str, p: &LmcPath) {
    println!("{title}");
    let rows: Vec<Vec<String>> = p
        .points
        .iter()
        .map(|x| {
            vec![
                format!("{:.3}", x.lambda),
                format!("{:.5}", x.loss),
                format!("{:.4}", x.acc),
            ]
        })
        .collect();
    print!(
        "{}",
        crate::fmt::table(&["lambda", "loss", "accuracy"], &rows)
    );
    println!(
        "loss barrier {:.5} (at λ = {:.3}), accuracy barrier {:.4}\n",
        p.loss_barrier, p.argmax_lambda, p.acc_barrier
    );
}

/// Runs the command.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.steps < 2 {
        return Err(bad_input(format!("--steps {}: need at least 2", a.steps)));
    }
    let (wa, spec, _) = load(&a.a, a.spec.as_deref(), &a.open)?;
    let (wb, _, _) = load(&a.b, a.spec.as_deref(), &a.open)?;
    wa.check_compatible(&wb).map_err(sym_err)?;
    let mut eval = evaluator(&a.a, a.data.as_deref())?;
    eval.resolve_repair(a.repair)?;
    let repair = eval.repair.is_some();
    let naive = interpolate(&eval, &wa, &wb, a.steps, repair).map_err(sym_err)?;
    let aligned = match a.align {
        None => None,
        Some(AlignMethod::Activation) => {
            let t =
                crate::align::activation_transform(&spec, &a.a, &a.b, &wa, &wb, a.data.as_deref())?;
            let mut b2 = wb.clone();
            apply(&spec, &mut b2, &t).map_err(sym_err)?;
            Some(interpolate(&eval, &wa, &b2, a.steps, repair).map_err(sym_err)?)
        }
        Some(AlignMethod::Weight) => {
            let opts = MatchOptions {
                seed: a.seed,
                ..MatchOptions::default()
            };
            let (b2, _) = align(&spec, &wa, &wb, &opts).map_err(sym_err)?;
            Some(interpolate(&eval, &wa, &b2, a.steps, repair).map_err(sym_err)?)
        }
    };
    let rep = Report { naive, aligned };
    if a.json {
        return crate::fmt::print_json(&rep);
    }
    print_path("naive interpolation", &rep.naive);
    if let Some(p) = &rep.aligned {
        print_path(
            match a.align {
                Some(AlignMethod::Activation) => "after activation matching",
                _ => "after weight matching",
            },
            p,
        );
    }
    Ok(())
}
