//! `weightspace interp`: linear mode connectivity between two models.

use std::path::PathBuf;

use serde::Serialize;
use weightspace_symmetry::lmc::{Evaluator, LmcPath, interpolate};
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

/// Interpolate between two models, θλ = (1−λ)·θA + λ·θB, print loss and accuracy along the
/// path and the barrier max_λ L(θλ) − ((1−λ)L(θA) + λL(θB)); with `--align`, also after
/// aligning B to A; with `--repair`, re-estimate normalisation statistics at every point.
#[derive(clap::Args, Debug)]
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
    /// REPAIR baseline: re-estimate BatchNorm running statistics on the training data at
    /// every interior point (no effect on networks without BatchNorm).
    #[arg(long)]
    pub repair: bool,
    /// Seed of the alignment.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// TOML spec file (see `weightspace spec --help`).
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Print JSON: {"naive": path, "aligned": path?}.
    #[arg(long)]
    pub json: bool,
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
    /// REPAIR re-estimates BatchNorm statistics on this data.
    pub train: Dataset,
}

impl Evaluator for ZooEval {
    fn loss_acc(&self, w: &Weights) -> weightspace_symmetry::Result<(f64, f64)> {
        let st = zoo_state(&self.net, w)?;
        let m = self.net.evaluate(&st, &self.data);
        Ok((m.loss, m.accuracy))
    }

    /// BatchNorm reset (the REPAIR baseline): running statistics re-estimated from 40
    /// training-mode batches of 256 training samples (momentum 0.1, so the old statistics
    /// weigh 0.9^40 ≈ 1.5 %). Networks without BatchNorm are returned unchanged.
    fn repair(&self, w: &Weights, _a: &Weights, _b: &Weights, _l: f64) -> Option<Weights> {
        if self.net.buffers().is_empty() || self.train.is_empty() {
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
    let (wa, spec, _) = load(&a.a, a.spec.as_deref())?;
    let (wb, _, _) = load(&a.b, a.spec.as_deref())?;
    wa.check_compatible(&wb).map_err(sym_err)?;
    let eval = evaluator(&a.a, a.data.as_deref())?;
    let naive = interpolate(&eval, &wa, &wb, a.steps, a.repair).map_err(sym_err)?;
    let aligned = match a.align {
        None => None,
        Some(AlignMethod::Activation) => {
            let t =
                crate::align::activation_transform(&spec, &a.a, &a.b, &wa, &wb, a.data.as_deref())?;
            let mut b2 = wb.clone();
            apply(&spec, &mut b2, &t).map_err(sym_err)?;
            Some(interpolate(&eval, &wa, &b2, a.steps, a.repair).map_err(sym_err)?)
        }
        Some(AlignMethod::Weight) => {
            let opts = MatchOptions {
                seed: a.seed,
                ..MatchOptions::default()
            };
            let (b2, _) = align(&spec, &wa, &wb, &opts).map_err(sym_err)?;
            Some(interpolate(&eval, &wa, &b2, a.steps, a.repair).map_err(sym_err)?)
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
