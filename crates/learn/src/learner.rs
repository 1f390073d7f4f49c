//! Train, save, load, evaluate and apply a learned model: the one entry point the CLI uses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{Layout, LoadOptions, NetWeights, Sample, Split, Task, ZooData};
use crate::error::{Error, Result};
use crate::features::{Norm, stats_features};
use crate::gbm::{Gbm, GbmConfig, GbmTarget};
use crate::metrics;
use crate::train::{Progress, TrainConfig};

/// Every model name `learn` knows.
pub const MODEL_NAMES: &[&str] = &[
    "stats-gbm",
    "stats-mlp",
    "flat-mlp",
    "deepsets",
    "nfn-np",
    "nfn-hnp",
    "dws",
    "ng-gnn",
    "ng-transformer",
];

/// The file holding a learned model's description.
pub const META_FILE: &str = "learn.json";
/// The file holding a neural model's parameters.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The file holding a boosted ensemble.
pub const GBM_FILE: &str = "gbm.json";

/// Checks a model name.
pub fn check_model(name: &str) -> Result<()> {
    if !MODEL_NAMES.contains(&name) {
        return Err(Error::UnknownModel(name.to_string()));
    }
    crate::neural::check_available(name)
}

/// Metrics on one side of a split.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Model states evaluated.
    pub n: usize,
    /// Kendall τ-b (regression).
    pub tau: Option<f64>,
    /// R² (regression).
    pub r2: Option<f64>,
    /// Accuracy (classification).
    pub accuracy: Option<f64>,
}

/// Everything needed to use a learned model again (`learn.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// Model name (`stats-gbm`, `nfn-hnp`, ...).
    pub model: String,
    /// How the zoo was read (target, states, group).
    pub load: LoadOptions,
    /// Regression or classification (with the class names).
    pub task: Task,
    /// Architecture of the input networks.
    pub layout: Layout,
    /// Input normalisation fitted on the training split.
    pub norm: Norm,
    /// Training options.
    pub config: TrainConfig,
    /// Seed of the run (model init, shuffling, augmentation).
    pub seed: u64,
    /// Seed of the split.
    pub split_seed: u64,
    /// Model ids per side.
    pub split: Split,
    /// The zoo it was trained on.
    pub zoo: PathBuf,
    /// Validation metrics of the kept model.
    pub val: Metrics,
    /// Test metrics.
    pub test: Metrics,
    /// Epochs (or boosting rounds) run.
    pub epochs_run: usize,
    /// Seconds spent training.
    pub train_seconds: f64,
}

/// The learned model (one per run: the size difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Learned {
    /// Boosted trees on the statistics.
    Gbm(Gbm),
    /// A burn model: an MLP (`stats-mlp`, `flat-mlp`) or a weight-space network.
    Neural(crate::neural::Neural),
}

/// A trained model with its description.
pub struct Trained {
    /// The description.
    pub meta: Meta,
    /// The model.
    pub model: Learned,
}

/// Options of a training run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Model name.
    pub model: String,
    /// Training options.
    pub config: TrainConfig,
    /// Run seed.
    pub seed: u64,
    /// Split seed (the same for every run of a benchmark).
    pub split_seed: u64,
}

pub(crate) fn outputs(task: &Task) -> usize {
    match task {
        Task::Regression => 1,
        Task::Classification { classes } => classes.len(),
    }
}

pub(crate) fn classes(task: &Task) -> usize {
    match task {
        Task::Regression => 0,
        Task::Classification { classes } => classes.len(),
    }
}

fn evaluate_raw(task: &Task, norm: &Norm, y: &[f64], raw: &[f32]) -> Metrics {
    let n = y.len();
    match task {
        Task::Regression => {
            let pred: Vec<f64> = raw
                .iter()
                .map(|&v| v as f64 * norm.y_std + norm.y_mean)
                .collect();
            Metrics {
                n,
                tau: Some(metrics::kendall_tau_b(&pred, y)),
                r2: Some(metrics::r2(y, &pred)),
                accuracy: None,
            }
        }
        Task::Classification { classes } => {
            let k = classes.len();
            let pred: Vec<usize> = raw.chunks(k).map(argmax).collect();
            let yy: Vec<usize> = y.iter().map(|&v| v as usize).collect();
            Metrics {
                n,
                tau: None,
                r2: None,
                accuracy: Some(metrics::accuracy(&yy, &pred)),
            }
        }
    }
}

fn argmax(r: &[f32]) -> usize {
    (0..r.len())
        .max_by(|&a, &b| r[a].partial_cmp(&r[b]).unwrap_or(std::cmp::Ordering::Equal))
        .unwrap_or(0)
}

/// Trains one model on a loaded zoo and evaluates it on the test split.
pub fn train(
    zoo: &ZooData,
    opts: &RunOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Trained> {
    check_model(&opts.model)?;
    if opts.config.epochs == 0 || opts.config.batch_size == 0 {
        return Err(Error::Options(
            "epochs and batch size must be positive".into(),
        ));
    }
    let started = std::time::Instant::now();
    let split = Split::by_model(&zoo.samples, opts.split_seed)?;
    let tr = Split::indices(&zoo.samples, &split.train);
    let va = Split::indices(&zoo.samples, &split.val);
    let te = Split::indices(&zoo.samples, &split.test);
    if tr.is_empty() {
        return Err(Error::Zoo {
            path: zoo.dir.clone(),
            msg: "too few models to split into train/val/test".into(),
        });
    }
    let regression = zoo.task == Task::Regression;
    let stats: Vec<Vec<f32>> = zoo.samples.iter().map(|s| stats_features(&s.net)).collect();
    let norm = Norm::fit(&zoo.samples, &tr, &stats, regression);
    let y: Vec<f64> = zoo.samples.iter().map(|s| s.y).collect();
    let ys: Vec<f64> = if regression {
        y.iter().map(|v| (v - norm.y_mean) / norm.y_std).collect()
    } else {
        y.clone()
    };
    let cls = classes(&zoo.task);
    let cfg = &opts.config;
    let (model, epochs_run, raw_val, raw_test) = if opts.model == "stats-gbm" {
        let xs: Vec<Vec<f32>> = stats.iter().map(|s| norm.stats(s)).collect();
        let d = xs[0].len();
        let gather = |idx: &[usize]| -> Vec<f32> {
            idx.iter().flat_map(|&i| xs[i].iter().copied()).collect()
        };
        let (x_tr, x_va, x_te) = (gather(&tr), gather(&va), gather(&te));
        let y_tr: Vec<f64> = tr.iter().map(|&i| ys[i]).collect();
        let y_va: Vec<f64> = va.iter().map(|&i| ys[i]).collect();
        let c_tr: Vec<usize> = y_tr.iter().map(|&v| v as usize).collect();
        let c_va: Vec<usize> = y_va.iter().map(|&v| v as usize).collect();
        let (t_tr, t_va) = if regression {
            (GbmTarget::Regression(&y_tr), GbmTarget::Regression(&y_va))
        } else {
            (
                GbmTarget::Classes(&c_tr, cls),
                GbmTarget::Classes(&c_va, cls),
            )
        };
        let gcfg = GbmConfig {
            rounds: cfg.rounds,
            patience: cfg.patience.max(1) * 5,
            ..Default::default()
        };
        let m = Gbm::fit(
            &x_tr,
            d,
            &t_tr,
            &x_va,
            &t_va,
            &gcfg,
            opts.seed,
            &mut |r, l| {
                progress(Progress::Epoch {
                    epoch: r,
                    epochs: gcfg.rounds,
                    train_loss: f64::NAN,
                    val_loss: l,
                })
            },
        );
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let rv = f(m.predict_raw(&x_va));
        let rt = f(m.predict_raw(&x_te));
        let n = m.rounds.len();
        (Learned::Gbm(m), n, rv, rt)
    } else {
        crate::neural::train(zoo, opts, &norm, &ys, (&tr, &va, &te), progress)?
    };
    let yv: Vec<f64> = va.iter().map(|&i| y[i]).collect();
    let yt: Vec<f64> = te.iter().map(|&i| y[i]).collect();
    let meta = Meta {
        model: opts.model.clone(),
        load: zoo.load.clone(),
        task: zoo.task.clone(),
        layout: zoo.layout.clone(),
        val: evaluate_raw(&zoo.task, &norm, &yv, &raw_val),
        test: evaluate_raw(&zoo.task, &norm, &yt, &raw_test),
        norm,
        config: cfg.clone(),
        seed: opts.seed,
        split_seed: opts.split_seed,
        split,
        zoo: zoo.dir.clone(),
        epochs_run,
        train_seconds: started.elapsed().as_secs_f64(),
    };
    Ok(Trained { meta, model })
}

/// A prediction for one network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Prediction {
    /// A real value in the target's units.
    Value(f64),
    /// A class with its softmax probability.
    Class {
        /// Class name.
        class: String,
        /// Probability.
        probability: f64,
    },
}

impl Trained {
    /// Raw model outputs (`n × outputs`) for networks of the trained layout.
    pub fn raw(&self, nets: &[&NetWeights]) -> Vec<f32> {
        let norm = &self.meta.norm;
        match &self.model {
            Learned::Gbm(g) => {
                let x: Vec<f32> = nets
                    .iter()
                    .flat_map(|n| norm.stats(&stats_features(n)))
                    .collect();
                g.predict_raw(&x).into_iter().map(|v| v as f32).collect()
            }
            Learned::Neural(m) => m.raw(nets, &self.meta),
        }
    }

    /// Predictions for networks of the trained layout.
    pub fn predict(&self, nets: &[&NetWeights]) -> Vec<Prediction> {
        let raw = self.raw(nets);
        match &self.meta.task {
            Task::Regression => raw
                .iter()
                .map(|&v| {
                    Prediction::Value(v as f64 * self.meta.norm.y_std + self.meta.norm.y_mean)
                })
                .collect(),
            Task::Classification { classes } => raw
                .chunks(classes.len())
                .map(|r| {
                    let i = argmax(r);
                    let m = r[i];
                    let z: f32 = r.iter().map(|v| (v - m).exp()).sum();
                    Prediction::Class {
                        class: classes[i].clone(),
                        probability: (1.0 / z) as f64,
                    }
                })
                .collect(),
        }
    }

    /// Metrics on the given samples.
    pub fn evaluate(&self, samples: &[&Sample]) -> Metrics {
        let nets: Vec<&NetWeights> = samples.iter().map(|s| &s.net).collect();
        let y: Vec<f64> = samples.iter().map(|s| s.y).collect();
        let raw = self.raw(&nets);
        evaluate_raw(&self.meta.task, &self.meta.norm, &y, &raw)
    }

    /// Writes `learn.json` and the model file into `dir` (created if needed).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::File {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let meta = serde_json::to_string_pretty(&self.meta).expect("JSON");
        match &self.model {
            Learned::Gbm(g) => write_atomic(
                &dir.join(GBM_FILE),
                serde_json::to_string(g).expect("JSON").as_bytes(),
            )?,
            Learned::Neural(m) => {
                let mut md = std::collections::BTreeMap::new();
                md.insert(
                    "weightspace.learn.model".to_string(),
                    self.meta.model.clone(),
                );
                m.save(&dir.join(WEIGHTS_FILE), &md)?
            }
        }
        write_atomic(&dir.join(META_FILE), meta.as_bytes())
    }

    /// Reads a model written by [`Trained::save`].
    pub fn load(dir: &Path) -> Result<Trained> {
        let mp = dir.join(META_FILE);
        let text = std::fs::read_to_string(&mp).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Saved {
                path: dir.to_path_buf(),
                msg: format!("no {META_FILE}: not a folder written by `weightspace learn train`"),
            },
            _ => Error::File {
                path: mp.clone(),
                source: e,
            },
        })?;
        let meta: Meta = serde_json::from_str(&text).map_err(|e| Error::Saved {
            path: mp.clone(),
            msg: e.to_string(),
        })?;
        check_model(&meta.model)?;
        let model = match meta.model.as_str() {
            "stats-gbm" => {
                let p = dir.join(GBM_FILE);
                let t = std::fs::read_to_string(&p).map_err(|e| Error::File {
                    path: p.clone(),
                    source: e,
                })?;
                Learned::Gbm(serde_json::from_str(&t).map_err(|e| Error::Saved {
                    path: p,
                    msg: e.to_string(),
                })?)
            }
            _ => Learned::Neural(crate::neural::Neural::load(&meta, &dir.join(WEIGHTS_FILE))?),
        };
        Ok(Trained { meta, model })
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let r = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::File {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

/// Reads the networks of checkpoints outside a zoo for [`Trained::predict`]: each must have
/// the trained layout's tensors and shapes.
pub fn read_nets(paths: &[PathBuf], layout: &Layout) -> Result<Vec<NetWeights>> {
    paths
        .iter()
        .map(|p| {
            let ck = weightspace_io::Checkpoint::open(p)?;
            NetWeights::from_checkpoint(&ck, layout)
        })
        .collect()
}

/// Default training options per model: MLP baselines are wider and shallower than the
/// weight-space networks, whose cost grows with the input network's size.
pub fn default_config(model: &str) -> TrainConfig {
    match model {
        "stats-mlp" | "flat-mlp" => TrainConfig {
            hidden: 128,
            depth: 2,
            ..TrainConfig::default()
        },
        // HNP's first and last layers keep the input and output positions (not permutable):
        // on a 64-input MLP, 64 channels make a 109M-parameter model (436 MB, 54 s per epoch
        // on 192 states); 16 channels make 7M and 1.7 s. The reference NFN code has the same terms.
        "nfn-hnp" => TrainConfig {
            hidden: 16,
            ..TrainConfig::default()
        },
        // DWS has the same kind of term (the first layer's inputs folded into the channels):
        // 106M parameters on 64-input MLPs at 64 channels. Its reference's input
        // down-sampling to 16 positions makes that 17M (measured on the digits-mlp zoo).
        "dws" => TrainConfig {
            input_downsample: Some(16),
            ..TrainConfig::default()
        },
        _ => TrainConfig::default(),
    }
}
