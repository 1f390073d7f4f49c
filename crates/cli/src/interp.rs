//! `weightspace interp`: linear mode connectivity between two models.

use std::path::PathBuf;

use serde::Serialize;
use weightspace_symmetry::lmc::{Evaluator, LmcPath, interpolate};
use weightspace_symmetry::{Error as SymError, MatchOptions, Weights, align};

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
    /// Dataset to score on (default: the bundled digits, test split).
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Points on the path, endpoints included.
    #[arg(long, default_value_t = 25)]
    pub steps: usize,
    /// Also align B to A and report the barrier after alignment.
    #[arg(long, value_enum)]
    pub align: Option<AlignMethod>,
    /// REPAIR: re-estimate BatchNorm statistics (or rescale activations) at every point.
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

/// Loss and accuracy of zoo-architecture weights on a test set, through the zoo's small-net
/// runtime (the architecture comes from the checkpoint's zoo metadata).
struct ZooEval {
    net: weightspace_zoo::Net,
    data: weightspace_zoo::Dataset,
}

impl ZooEval {
    /// Copies `w`'s tensors into a runtime state for the network.
    fn state(&self, w: &Weights) -> weightspace_symmetry::Result<weightspace_zoo::State> {
        let mut st = self.net.zero_state();
        let specs = self.net.params().iter().map(|p| (p, true));
        let specs = specs.chain(self.net.buffers().iter().map(|b| (b, false)));
        for (p, is_param) in specs {
            let t = w.get(&p.name).ok_or_else(|| SymError::Tensor {
                tensor: p.name.clone(),
                msg: "missing (the network needs it)".into(),
            })?;
            if t.shape != p.shape || t.data.len() != p.numel() {
                return Err(SymError::Tensor {
                    tensor: p.name.clone(),
                    msg: format!("shape {:?}, the network needs {:?}", t.shape, p.shape),
                });
            }
            let dst = if is_param {
                &mut st.params
            } else {
                &mut st.buffers
            };
            dst[p.offset..p.offset + p.numel()].copy_from_slice(&t.data);
        }
        Ok(st)
    }
}

impl Evaluator for ZooEval {
    fn loss_acc(&self, w: &Weights) -> weightspace_symmetry::Result<(f64, f64)> {
        let m = self.net.evaluate(&self.state(w)?, &self.data);
        Ok((m.loss, m.accuracy))
    }
}

/// The evaluator for the models and data: the zoo's small-net runtime, on the test split of the
/// bundled digits, or of MNIST/Fashion-MNIST IDX files or CIFAR-10 binary batches in `data`.
fn evaluator(
    model: &std::path::Path,
    other: &std::path::Path,
    data: Option<&std::path::Path>,
) -> anyhow::Result<Box<dyn Evaluator>> {
    // Both ends must be the same architecture (activation included), or the path means nothing.
    let arch = |p: &std::path::Path| -> anyhow::Result<Option<serde_json::Value>> {
        let ck = weightspace_io::Checkpoint::open(p)?;
        Ok(ck.metadata().get("weightspace.zoo.arch").cloned())
    };
    if arch(model)? != arch(other)? {
        return Err(bad_input(format!(
            "{} and {} are different architectures (their `weightspace.zoo.arch` metadata differ)",
            model.display(),
            other.display()
        )));
    }
    let lift = |e: weightspace_zoo::Error| {
        if e.is_bad_input() {
            bad_input(e.to_string())
        } else {
            anyhow::Error::new(e)
        }
    };
    let (net, _) = weightspace_zoo::load_model(model).map_err(|e| {
        bad_input(format!(
            "{e} (interp evaluates networks made by `weightspace zoo`, whose checkpoints record their architecture)"
        ))
    })?;
    let split = match data {
        None => weightspace_zoo::data::digits().map_err(lift)?,
        Some(dir) if dir.join("test_batch.bin").exists() => {
            weightspace_zoo::data::read_cifar10_dir(dir).map_err(lift)?
        }
        Some(dir) => weightspace_zoo::data::read_idx_dir(dir).map_err(lift)?,
    };
    Ok(Box::new(ZooEval {
        net,
        data: split.test,
    }))
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
    let eval = evaluator(&a.a, &a.b, a.data.as_deref())?;
    let naive = interpolate(eval.as_ref(), &wa, &wb, a.steps, a.repair).map_err(sym_err)?;
    let aligned = match a.align {
        None => None,
        Some(AlignMethod::Activation) => {
            return Err(bad_input(
                "--align activation needs the zoo runtime; use --align weight",
            ));
        }
        Some(AlignMethod::Weight) => {
            let opts = MatchOptions {
                seed: a.seed,
                ..MatchOptions::default()
            };
            let (b2, _) = align(&spec, &wa, &wb, &opts).map_err(sym_err)?;
            Some(interpolate(eval.as_ref(), &wa, &b2, a.steps, a.repair).map_err(sym_err)?)
        }
    };
    let rep = Report { naive, aligned };
    if a.json {
        return crate::fmt::print_json(&rep);
    }
    print_path("naive interpolation", &rep.naive);
    if let Some(p) = &rep.aligned {
        print_path("after weight matching", p);
    }
    Ok(())
}
