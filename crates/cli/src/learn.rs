//! `weightspace learn …`: train, evaluate, apply and benchmark models whose input is weights.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};
use weightspace_learn as learn;

use crate::exit::bad_input;
use crate::exit::lift;
use crate::progress;

/// Models whose input is weights.
#[derive(Subcommand, Debug)]
pub enum LearnCmd {
    /// Train a model on a zoo to predict a catalog column from the weights; writes OUT/learn.json
    /// and the model (safetensors, or gbm.json) and prints validation and test metrics.
    #[command(after_help = "Examples:
  weightspace learn train --zoo tiny-zoo --model stats-gbm -o gbm-run
  weightspace learn train --zoo cnn-zoo --model nfn-hnp --states last --epochs 20 -o nfn-run
  weightspace learn train --zoo tiny-zoo --model deepsets --target activation -o act-run")]
    Train(TrainArgs),
    /// Evaluate a trained model on a zoo: its test split (same zoo), or every state (--all).
    #[command(after_help = "Examples:
  weightspace learn eval gbm-run --zoo tiny-zoo
  weightspace learn eval nfn-run --zoo other-zoo --all --json")]
    Eval {
        /// Folder written by `learn train`.
        model: PathBuf,
        /// Zoo folder.
        #[arg(long)]
        zoo: PathBuf,
        /// Every state of the zoo, not only the test split's models.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Predict for checkpoints (any format, outside a zoo too) of the trained architecture.
    #[command(after_help = "Examples:
  weightspace learn predict gbm-run net.safetensors
  weightspace learn predict nfn-run checkpoints/*.safetensors --json")]
    Predict {
        /// Folder written by `learn train`.
        model: PathBuf,
        /// Checkpoints.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON: one `{"path", "target", "prediction"}` per checkpoint (the value, or the
        /// class name with its `"probability"`).
        #[arg(long)]
        json: bool,
    },
    /// Train several models on the same split with several seeds each (in parallel) and print
    /// the table of test metrics, mean ± std.
    #[command(after_help = "Examples:
  weightspace learn bench --zoo tiny-zoo --group pop --models stats-gbm,nfn-hnp --epochs 20 --seeds 1
  weightspace learn bench --zoo cnn-zoo --states last --seeds 3 -o table.md")]
    Bench(BenchArgs),
}

/// Options shared by `train` and `bench`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Common {
    /// Zoo folder: made by `weightspace zoo train`, or by another tool (catalog.parquet with at
    /// least model_id and file columns, and the weight files; see the README).
    #[arg(long)]
    pub zoo: PathBuf,
    /// What to predict: test_acc, gen_gap, or a catalog column (hyper-parameters; text columns
    /// such as activation are classification targets).
    #[arg(long, default_value = "test_acc")]
    pub target: String,
    /// Model states to use: all, last, or epochs like 4,8,16.
    #[arg(long, default_value = "all")]
    pub states: String,
    /// Only models of this catalog group (zoos that mix architectures).
    #[arg(long)]
    pub group: Option<String>,
    /// Maximum training epochs (neural models).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Maximum boosting rounds (stats-gbm).
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Mini-batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate (Adam, warm-up then cosine).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Hidden width.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Hidden layers / equivariant layers.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Early-stopping patience in epochs.
    #[arg(long)]
    pub patience: Option<usize>,
    /// dws: map the input networks' first-layer inputs down to N positions inside each layer
    /// (DWSNets' input_dim_downsample; default 16, 0 keeps them all).
    #[arg(long, value_name = "N")]
    pub input_downsample: Option<usize>,
    /// Symmetry augmentation of the input networks: perm, scale, perm,scale or none.
    #[arg(long, default_value = "none")]
    pub augment: String,
    /// Seed of the split by model id (70/15/15).
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
}

/// `learn train`.
#[derive(ClapArgs, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    common: Common,
    /// Model: stats-gbm, stats-mlp, flat-mlp, deepsets, nfn-np, nfn-hnp, dws, ng-gnn,
    /// ng-transformer.
    #[arg(long)]
    model: String,
    /// Seed of the run (init, shuffling, augmentation).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(short, long = "output", visible_alias = "out", value_name = "DIR")]
    out: PathBuf,
    /// Print the description (learn.json) as JSON.
    #[arg(long)]
    json: bool,
}

/// `learn bench`.
#[derive(ClapArgs, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Models, comma-separated (default: every model this build has).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Seeds per model (0..N).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Also write the table: .md (Markdown summary), .csv (one line per run) or .json (all).
    #[arg(short, long = "output", visible_alias = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn load(c: &Common) -> anyhow::Result<learn::ZooData> {
    let opts = learn::LoadOptions {
        target: c.target.clone(),
        states: c.states.parse().map_err(lift)?,
        group: c.group.clone(),
    };
    learn::load_zoo(&c.zoo, &opts, None).map_err(lift)
}

fn config(c: &Common, model: &str) -> anyhow::Result<learn::TrainConfig> {
    let mut cfg = learn::learner::default_config(model);
    if let Some(v) = c.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = c.rounds {
        cfg.rounds = v;
    }
    if let Some(v) = c.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = c.lr {
        cfg.lr = v;
    }
    if let Some(v) = c.hidden {
        cfg.hidden = v;
    }
    if let Some(v) = c.depth {
        cfg.depth = v;
    }
    if let Some(v) = c.patience {
        cfg.patience = v;
    }
    if let Some(v) = c.input_downsample {
        cfg.input_downsample = (v > 0).then_some(v);
    }
    cfg.augment = c.augment.parse().map_err(lift)?;
    if cfg.epochs == 0 || cfg.batch_size == 0 || cfg.rounds == 0 || cfg.hidden == 0 {
        return Err(bad_input(
            "--epochs, --rounds, --batch-size and --hidden must be positive",
        ));
    }
    Ok(cfg)
}

fn metrics_line(m: &learn::Metrics) -> String {
    let f = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.4}"));
    match m.accuracy {
        Some(a) => format!("n={} accuracy={a:.4}", m.n),
        None => format!("n={} tau={} r2={}", m.n, f(m.tau), f(m.r2)),
    }
}

/// Runs a `learn` subcommand.
pub fn run(cmd: LearnCmd) -> anyhow::Result<()> {
    match cmd {
        LearnCmd::Train(a) => {
            learn::learner::check_model(&a.model).map_err(lift)?;
            let cfg = config(&a.common, &a.model)?;
            let zoo = load(&a.common)?;
            let max = if a.model == "stats-gbm" {
                cfg.rounds
            } else {
                cfg.epochs
            };
            let bar = progress::bar(max as u64, &a.model);
            let opts = learn::RunOptions {
                model: a.model.clone(),
                config: cfg,
                seed: a.seed,
                split_seed: a.common.split_seed,
            };
            let t = learn::train(&zoo, &opts, &mut |p| match p {
                learn::Progress::Epoch {
                    epoch,
                    train_loss,
                    val_loss,
                    ..
                } => {
                    bar.set_position(epoch as u64);
                    bar.set_prefix(if train_loss.is_nan() {
                        format!("val loss {val_loss:.4}")
                    } else {
                        format!("loss {train_loss:.4} val {val_loss:.4}")
                    });
                }
            })
            .map_err(lift)?;
            bar.finish_and_clear();
            t.save(&a.out).map_err(lift)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&t.meta)?);
            } else {
                println!(
                    "{} on {} ({} states, {} skipped; models {}/{}/{} train/val/test), target {}: {} epochs in {:.1} s",
                    a.model,
                    zoo.dir.display(),
                    zoo.samples.len(),
                    zoo.skipped,
                    t.meta.split.train.len(),
                    t.meta.split.val.len(),
                    t.meta.split.test.len(),
                    zoo.target,
                    t.meta.epochs_run,
                    t.meta.train_seconds
                );
                println!("val:  {}", metrics_line(&t.meta.val));
                println!("test: {}", metrics_line(&t.meta.test));
                println!("saved -> {}", a.out.display());
            }
            Ok(())
        }
        LearnCmd::Eval {
            model,
            zoo,
            all,
            json,
        } => {
            let t = learn::Trained::load(&model).map_err(lift)?;
            let data = learn::load_zoo(&zoo, &t.meta.load, Some(&t.meta.task)).map_err(lift)?;
            if data.layout != t.meta.layout {
                return Err(bad_input(format!(
                    "{}: its networks' architecture differs from the one {} was trained on",
                    zoo.display(),
                    model.display()
                )));
            }
            let idx = if all {
                (0..data.samples.len()).collect()
            } else {
                learn::Split::indices(&data.samples, &t.meta.split.test)
            };
            if idx.is_empty() {
                return Err(bad_input(format!(
                    "{}: none of the model's test models are in this zoo; use --all to evaluate every state",
                    zoo.display()
                )));
            }
            let samples: Vec<&learn::Sample> = idx.iter().map(|&i| &data.samples[i]).collect();
            let m = t.evaluate(&samples);
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                println!(
                    "{} ({}), target {}, {}: {}",
                    t.meta.model,
                    model.display(),
                    t.meta.load.target,
                    if all { "all states" } else { "test split" },
                    metrics_line(&m)
                );
            }
            Ok(())
        }
        LearnCmd::Predict { model, paths, json } => {
            let t = learn::Trained::load(&model).map_err(lift)?;
            let nets = learn::read_nets(&paths, &t.meta.layout).map_err(lift)?;
            let refs: Vec<&learn::NetWeights> = nets.iter().collect();
            let preds = t.predict(&refs);
            if json {
                let out: Vec<_> = paths
                    .iter()
                    .zip(&preds)
                    .map(|(p, v)| {
                        let target = &t.meta.load.target;
                        match v {
                            learn::Prediction::Value(x) => {
                                serde_json::json!({"path": p, "target": target, "prediction": x})
                            }
                            learn::Prediction::Class { class, probability } => serde_json::json!({
                                "path": p,
                                "target": target,
                                "prediction": class,
                                "probability": probability,
                            }),
                        }
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                for (p, v) in paths.iter().zip(&preds) {
                    match v {
                        learn::Prediction::Value(x) => {
                            println!("{}\t{}\t{x:.4}", p.display(), t.meta.load.target)
                        }
                        learn::Prediction::Class { class, probability } => {
                            println!(
                                "{}\t{}\t{class}\t(p={probability:.3})",
                                p.display(),
                                t.meta.load.target
                            )
                        }
                    }
                }
            }
            Ok(())
        }
        LearnCmd::Bench(a) => {
            let models: Vec<String> = if a.models.is_empty() {
                learn::MODEL_NAMES
                    .iter()
                    .filter(|m| learn::learner::check_model(m).is_ok())
                    .map(|m| m.to_string())
                    .collect()
            } else {
                a.models.clone()
            };
            for m in &models {
                learn::learner::check_model(m).map_err(lift)?;
                config(&a.common, m)?;
            }
            if a.seeds == 0 {
                return Err(bad_input("--seeds must be at least 1"));
            }
            if let Some(o) = &a.out {
                let ext = o.extension().and_then(|e| e.to_str()).unwrap_or("");
                if !matches!(ext, "md" | "csv" | "json") {
                    return Err(bad_input(format!(
                        "{}: the table is written as .md, .csv or .json",
                        o.display()
                    )));
                }
            }
            let zoo = load(&a.common)?;
            let seeds: Vec<u64> = (0..a.seeds).collect();
            let bar = progress::bar((models.len() * seeds.len()) as u64, "runs");
            let common = a.common.clone();
            let cfg = move |m: &str| config(&common, m).expect("checked above");
            let report =
                learn::bench::bench(&zoo, &models, &seeds, a.common.split_seed, &cfg, &|r| {
                    bar.set_prefix(format!("{} seed {}", r.model, r.seed));
                    bar.inc(1);
                })
                .map_err(lift)?;
            bar.finish_and_clear();
            println!(
                "{} states of {} (models {}/{}/{} train/val/test), target {}, {} seeds per model",
                report.states,
                report.zoo,
                report.split.0,
                report.split.1,
                report.split.2,
                report.target,
                a.seeds
            );
            print!("{}", report.markdown());
            if let Some(o) = &a.out {
                let text = match o.extension().and_then(|e| e.to_str()) {
                    Some("md") => report.markdown(),
                    Some("csv") => report.csv(),
                    _ => serde_json::to_string_pretty(&report)?,
                };
                std::fs::write(o, text).map_err(|e| anyhow::anyhow!("{}: {e}", o.display()))?;
                println!("table -> {}", o.display());
            }
            Ok(())
        }
    }
}
