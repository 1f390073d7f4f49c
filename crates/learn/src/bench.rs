//! `learn bench`: every model on the same split, several seeds each, runs in parallel
//! (rayon; burn's CPU backend barely uses a second core per run), mean ± std per model.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Task, ZooData};
use crate::error::Result;
use crate::learner::{self, Metrics, RunOptions};
use crate::metrics::mean_std;
use crate::train::TrainConfig;

/// One run of a benchmark.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// Model name.
    pub model: String,
    /// Run seed.
    pub seed: u64,
    /// Test metrics.
    pub test: Metrics,
    /// Validation metrics.
    pub val: Metrics,
    /// Epochs (rounds) run.
    pub epochs_run: usize,
    /// Wall seconds of the run.
    pub seconds: f64,
    /// Training samples per second (samples × epochs / seconds).
    pub samples_per_second: f64,
}

/// One model's summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// Model name.
    pub model: String,
    /// Runs (seeds).
    pub runs: usize,
    /// Test τ mean and std (regression).
    pub tau: Option<(f64, f64)>,
    /// Test R² mean and std (regression).
    pub r2: Option<(f64, f64)>,
    /// Test accuracy mean and std (classification).
    pub accuracy: Option<(f64, f64)>,
    /// Mean seconds per run.
    pub seconds: f64,
    /// Mean epochs run.
    pub epochs_run: f64,
    /// Mean training samples per second.
    pub samples_per_second: f64,
}

/// A finished benchmark.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The zoo.
    pub zoo: String,
    /// The target.
    pub target: String,
    /// Model states used (all sides).
    pub states: usize,
    /// Models per side (train, val, test).
    pub split: (usize, usize, usize),
    /// The training options (per model name, those that differ from the default).
    pub config: Vec<(String, TrainConfig)>,
    /// Summary per model, in the order asked.
    pub rows: Vec<Row>,
    /// Every run.
    pub runs: Vec<Run>,
}

/// Trains every (model, seed) pair on the same split (`split_seed`), in parallel. `config`
/// gives the options per model; `done` is called (from worker threads) after each run.
pub fn bench(
    zoo: &ZooData,
    models: &[String],
    seeds: &[u64],
    split_seed: u64,
    config: &(dyn Fn(&str) -> TrainConfig + Sync),
    done: &(dyn Fn(&Run) + Sync),
) -> Result<Report> {
    for m in models {
        learner::check_model(m)?;
    }
    let jobs: Vec<(String, u64)> = models
        .iter()
        .flat_map(|m| seeds.iter().map(move |&s| (m.clone(), s)))
        .collect();
    let runs: Vec<Result<Run>> = jobs
        .par_iter()
        .map(|(m, s)| {
            let opts = RunOptions {
                model: m.clone(),
                config: config(m),
                seed: *s,
                split_seed,
            };
            let t = learner::train(zoo, &opts, &mut |_| {})?;
            let n_train = t.meta.split.train.len();
            let states_train = crate::data::Split::indices(&zoo.samples, &t.meta.split.train).len();
            let _ = n_train;
            let run = Run {
                model: m.clone(),
                seed: *s,
                test: t.meta.test.clone(),
                val: t.meta.val.clone(),
                epochs_run: t.meta.epochs_run,
                seconds: t.meta.train_seconds,
                samples_per_second: (states_train * t.meta.epochs_run) as f64
                    / t.meta.train_seconds.max(1e-9),
            };
            done(&run);
            Ok(run)
        })
        .collect();
    let runs: Vec<Run> = runs.into_iter().collect::<Result<_>>()?;
    let split = crate::data::Split::by_model(&zoo.samples, split_seed)?;
    let rows = models
        .iter()
        .map(|m| {
            let rs: Vec<&Run> = runs.iter().filter(|r| &r.model == m).collect();
            let pick = |f: &dyn Fn(&Metrics) -> Option<f64>| -> Option<(f64, f64)> {
                let v: Vec<f64> = rs.iter().filter_map(|r| f(&r.test)).collect();
                (!v.is_empty()).then(|| mean_std(&v))
            };
            let n = rs.len().max(1) as f64;
            Row {
                model: m.clone(),
                runs: rs.len(),
                tau: pick(&|x| x.tau),
                r2: pick(&|x| x.r2),
                accuracy: pick(&|x| x.accuracy),
                seconds: rs.iter().map(|r| r.seconds).sum::<f64>() / n,
                epochs_run: rs.iter().map(|r| r.epochs_run as f64).sum::<f64>() / n,
                samples_per_second: rs.iter().map(|r| r.samples_per_second).sum::<f64>() / n,
            }
        })
        .collect();
    Ok(Report {
        zoo: zoo.dir.display().to_string(),
        target: zoo.target.clone(),
        states: zoo.samples.len(),
        split: (split.train.len(), split.val.len(), split.test.len()),
        config: models.iter().map(|m| (m.clone(), config(m))).collect(),
        rows,
        runs,
    })
}

fn pm(v: Option<(f64, f64)>) -> String {
    match v {
        Some((m, s)) => format!("{m:.3} ± {s:.3}"),
        None => "–".into(),
    }
}

impl Report {
    fn regression(&self) -> bool {
        self.rows.iter().any(|r| r.tau.is_some())
    }

    /// The summary as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        if self.regression() {
            s.push_str("| model | runs | test τ (mean ± std) | test R² (mean ± std) | epochs | s/run |\n|---|---|---|---|---|---|\n");
            for r in &self.rows {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {:.0} | {:.1} |\n",
                    r.model,
                    r.runs,
                    pm(r.tau),
                    pm(r.r2),
                    r.epochs_run,
                    r.seconds
                ));
            }
        } else {
            s.push_str("| model | runs | test accuracy (mean ± std) | epochs | s/run |\n|---|---|---|---|---|\n");
            for r in &self.rows {
                s.push_str(&format!(
                    "| {} | {} | {} | {:.0} | {:.1} |\n",
                    r.model,
                    r.runs,
                    pm(r.accuracy),
                    r.epochs_run,
                    r.seconds
                ));
            }
        }
        s
    }

    /// One line per run as CSV.
    pub fn csv(&self) -> String {
        let f = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        let mut s = String::from(
            "model,seed,test_tau,test_r2,test_accuracy,val_tau,val_r2,val_accuracy,epochs_run,seconds,samples_per_second\n",
        );
        for r in &self.runs {
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{:.3},{:.1}\n",
                r.model,
                r.seed,
                f(r.test.tau),
                f(r.test.r2),
                f(r.test.accuracy),
                f(r.val.tau),
                f(r.val.r2),
                f(r.val.accuracy),
                r.epochs_run,
                r.seconds,
                r.samples_per_second
            ));
        }
        s
    }
}

/// True for regression tasks.
pub fn is_regression(task: &Task) -> bool {
    *task == Task::Regression
}
