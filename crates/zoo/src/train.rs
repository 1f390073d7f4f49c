//! Training a zoo: plan, shard, train models in parallel (rayon across models), write
//! checkpoints atomically, record finished models in a ledger, and rebuild the catalog.
//!
//! On-disk layout of a zoo folder:
//!
//! ```text
//! DIR/zoo.toml                          the exact config
//! DIR/models/<id>/epoch_<k>.safetensors one file per model state
//! DIR/ledger/<shard>.jsonl              one JSON line per finished model (its catalog rows)
//! DIR/catalog.parquet                   one row per model state, rebuilt from the ledgers
//! ```
//!
//! A model counts as finished only once its ledger line is on disk (written and fsynced
//! after all its checkpoints). A run killed at any point (even `kill -9` mid-write) leaves at
//! worst a partial last ledger line, which `--resume` drops, and temp files, which it
//! removes; unfinished models are trained again from scratch, deterministically, so the
//! result is the same bits as an uninterrupted run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::catalog::{self, CatalogRow, CatalogSummary};
use crate::config::{ModelPlan, ZooConfig, model_seed};
use crate::data::{self, Split};
use crate::error::{Error, Result};
use crate::net::{Net, State, loss_and_grad};
use crate::optim::Optimizer;
use crate::rng::Rng;
use crate::store;

/// Options of [`train`].
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Train only shard `i` of `n` (0-based `i`): whole fine-tune trees are assigned by the
    /// index of their root model, `root % n == i`. Shards may run at the same time, in the
    /// same folder, on different machines sharing it.
    pub shard: Option<(usize, usize)>,
    /// Continue a zoo whose folder already exists (same config required).
    pub resume: bool,
}

/// Progress reports from [`train`] (called from worker threads).
#[derive(Clone, Debug)]
pub enum Event {
    /// Planning done: `todo` of `total` models in this shard still need training.
    Start {
        /// Models in this shard.
        total: usize,
        /// Models left to train.
        todo: usize,
    },
    /// A model finished (its checkpoints and ledger line are on disk).
    ModelDone {
        /// Its id.
        id: String,
    },
}

/// What a [`train`] run did.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    /// Models in the zoo (all shards).
    pub models_planned: usize,
    /// Models trained by this run.
    pub models_trained: usize,
    /// Models of this shard already finished before this run (resume).
    pub models_skipped: usize,
    /// Rows in the catalog written at the end.
    pub catalog_rows: usize,
    /// Optimiser steps summed over the models trained by this run.
    pub model_steps: u64,
    /// Floating-point operations of those steps (forward 2·MAC, backward 4·MAC per sample).
    pub train_flops: f64,
    /// Wall-clock seconds of this run.
    pub seconds: f64,
    /// Summary of the catalog.
    pub catalog: CatalogSummary,
}

#[derive(Serialize, Deserialize)]
struct LedgerLine {
    model_id: String,
    rows: Vec<CatalogRow>,
}

fn ioe(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// Every finished model recorded in `DIR/ledger/*.jsonl` (partial or corrupt lines ignored).
pub fn read_ledgers(dir: &Path) -> Result<BTreeMap<String, Vec<CatalogRow>>> {
    let ldir = dir.join("ledger");
    let mut out = BTreeMap::new();
    if !ldir.exists() {
        return Ok(out);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ldir)
        .map_err(ioe(&ldir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(ioe(&f))?;
        for line in text.lines() {
            match serde_json::from_str::<LedgerLine>(line) {
                Ok(l) => {
                    out.insert(l.model_id, l.rows);
                }
                Err(_) => tracing::warn!("{}: ignoring a partial ledger line", f.display()),
            }
        }
    }
    Ok(out)
}

/// Opens this shard's ledger for appending, first cutting off a partial last line.
fn open_ledger(path: &Path) -> Result<std::fs::File> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(ioe(path))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(ioe(path))?;
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep != bytes.len() {
        f.set_len(keep as u64).map_err(ioe(path))?;
        f.seek(std::io::SeekFrom::End(0)).map_err(ioe(path))?;
    }
    Ok(f)
}

/// Removes temp files left by an interrupted atomic write under `dir` (recursively).
fn remove_temp_files(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for e in std::fs::read_dir(dir).map_err(ioe(dir))? {
        let e = e.map_err(ioe(dir))?;
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            remove_temp_files(&p)?;
        } else if name.starts_with('.') && name.ends_with(".tmp") {
            std::fs::remove_file(&p).map_err(ioe(&p))?;
        }
    }
    Ok(())
}

type DataCache = HashMap<String, Arc<Split>>;

fn source_key(p: &ModelPlan) -> String {
    format!("{:?}", p.hp.source())
}

/// Loads every dataset the plans need and checks each model's architecture against it.
fn prepare(plans: &[&ModelPlan]) -> Result<DataCache> {
    let mut cache: DataCache = HashMap::new();
    for p in plans {
        let key = source_key(p);
        if !cache.contains_key(&key) {
            let split = p.hp.source().load()?;
            cache.insert(key.clone(), Arc::new(split));
        }
        let split = &cache[&key];
        let gpath = format!("models[{}]", p.group_index);
        let mut outputs = split.train.task.outputs();
        if let Some(c) = &p.hp.classes {
            if let crate::data::Task::Classification { classes } = split.train.task {
                if let Some(bad) = c.iter().find(|&&c| c >= classes) {
                    return Err(Error::config(
                        format!("{gpath}.classes"),
                        format!("class {bad} does not exist (dataset has {classes})"),
                    ));
                }
            } else {
                return Err(Error::config(
                    format!("{gpath}.classes"),
                    "class subsets need a classification dataset",
                ));
            }
            outputs = c.len();
        }
        Net::new(&p.hp.arch(), &split.train.shape, outputs).map_err(|e| {
            Error::config(
                format!(
                    "{gpath}.{}",
                    if p.hp.arch == "cnn" {
                        "channels"
                    } else {
                        "arch"
                    }
                ),
                format!("model {}: {e}", p.id),
            )
        })?;
    }
    Ok(cache)
}

/// A trained model whose states still have to be written: one pending save per catalog row
/// (`weights_hash` is filled in once the file is on disk).
struct Trained {
    id: String,
    net: Net,
    rows: Vec<CatalogRow>,
    saves: Vec<(PathBuf, State, BTreeMap<String, String>)>,
    steps: u64,
    flops: f64,
}

/// Writes a trained model's checkpoints (atomically, fsynced), hashes them, then appends and
/// fsyncs its ledger line: after this the model counts as finished.
fn persist_model(t: Trained, ledger: &Mutex<std::fs::File>, ledger_path: &Path) -> Result<()> {
    let Trained {
        id,
        net,
        mut rows,
        saves,
        ..
    } = t;
    for (row, (path, state, meta)) in rows.iter_mut().zip(&saves) {
        store::save_state(path, &net, state, meta)?;
        row.weights_hash = store::weights_hash(path)?;
    }
    let line = serde_json::to_string(&LedgerLine { model_id: id, rows }).expect("JSON");
    let mut f = ledger.lock().expect("ledger lock");
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(ioe(ledger_path))
}

/// Threads that write checkpoints while the rayon workers train: fsync latency (tens of ms
/// per file on a busy disk) overlaps with training instead of stalling a worker, and
/// concurrent fsyncs share journal commits.
const IO_THREADS: usize = 4;
/// Trained models waiting to be written, at most (back-pressure on the trainers).
const IO_QUEUE: usize = 64;

fn train_model(
    cfg: &ZooConfig,
    plan: &ModelPlan,
    plans: &[ModelPlan],
    split: &Split,
    dir: &Path,
) -> Result<Trained> {
    let hp = &plan.hp;
    let seed = |purpose: &str| model_seed(cfg.seed, hp.seed, purpose);
    let view = data::apply_options(split, &hp.data_options(), &mut Rng::new(seed("data")));
    let (train, test) = (&view.train, &view.test);
    let net = Net::new(&hp.arch(), &train.shape, train.task.outputs())
        .map_err(|e| Error::config(format!("models[{}]", plan.group_index), e.to_string()))?;
    let parent = plan.parent.map(|(pi, pe)| (&plans[pi], pe));
    let mut state = match parent {
        None => net.init(hp.init_scheme(), hp.init_scale, &mut Rng::new(seed("init"))),
        Some((p, pe)) => {
            let path = dir.join(checkpoint_file(&p.id, pe));
            let ck = weightspace_io::Checkpoint::open(&path)?;
            store::load_state(&net, &ck)?
        }
    };
    let mut opt = Optimizer::new(
        hp.optimizer_kind(),
        hp.lr,
        hp.weight_decay,
        net.num_params(),
    );
    let mut rng = Rng::new(seed("train"));
    let bs = hp.batch_size.min(train.len()).max(1);
    let mut ws = net.workspace(bs);
    let d = train.dim();
    let tw = train.task.target_width();
    let mut xb = vec![0.0f32; bs * d];
    let mut yb = vec![0.0f32; bs * tw];
    let mut dout = vec![0.0f32; bs * net.outputs];
    let mut order: Vec<usize> = (0..train.len()).collect();
    let model_dir = dir.join("models").join(&plan.id);
    std::fs::create_dir_all(&model_dir).map_err(ioe(&model_dir))?;
    let hp_json = serde_json::to_string(hp).expect("JSON");
    let mut rows = Vec::new();
    let mut saves = Vec::new();
    let mut steps = 0u64;
    let macs = net.macs_per_sample() as f64;
    let mut flops = 0.0;
    for epoch in 0..=hp.epochs {
        if epoch > 0 {
            rng.shuffle(&mut order);
            for chunk in order.chunks(bs) {
                let n = chunk.len();
                // The batch goes straight into the workspace's input buffer (through `xb`
                // only when it is augmented).
                let gather = if hp.augment {
                    &mut xb[..n * d]
                } else {
                    &mut ws.input_mut()[..n * d]
                };
                for (j, &i) in chunk.iter().enumerate() {
                    gather[j * d..(j + 1) * d].copy_from_slice(&train.x[i * d..(i + 1) * d]);
                    yb[j * tw..(j + 1) * tw].copy_from_slice(&train.y[i * tw..(i + 1) * tw]);
                }
                if hp.augment {
                    let input = &mut ws.input_mut()[..n * d];
                    data::augment_batch(&train.shape, &xb[..n * d], input, &mut rng);
                }
                let out = net.forward_input(&state, &mut ws, n, true, &mut rng);
                loss_and_grad(
                    train.task,
                    out,
                    &yb[..n * tw],
                    n,
                    &mut dout[..n * net.outputs],
                );
                net.backward(&state, &mut ws, &dout[..n * net.outputs], n);
                net.update_running_stats(&mut state, &ws);
                opt.step(&mut state.params, ws.grads());
                steps += 1;
                flops += 6.0 * macs * n as f64;
            }
        }
        if hp.checkpoints.contains(&epoch) {
            let tr = net.evaluate(&state, train);
            let te = net.evaluate(&state, test);
            let file = checkpoint_file(&plan.id, epoch);
            let path = dir.join(&file);
            let mut meta = BTreeMap::new();
            meta.insert("model_id".to_string(), plan.id.clone());
            meta.insert(
                "parent_id".to_string(),
                parent.map(|p| p.0.id.clone()).unwrap_or_default(),
            );
            meta.insert("epoch".to_string(), epoch.to_string());
            meta.insert("group".to_string(), plan.group.clone());
            meta.insert("zoo".to_string(), cfg.name.clone());
            meta.insert("hyperparameters".to_string(), hp_json.clone());
            saves.push((path, state.clone(), meta));
            rows.push(CatalogRow {
                model_id: plan.id.clone(),
                parent_id: parent.map(|p| p.0.id.clone()),
                parent_epoch: parent.map(|p| p.1),
                group: plan.group.clone(),
                epoch,
                hp: hp.clone(),
                train_loss: tr.loss,
                train_accuracy: tr.accuracy,
                test_loss: te.loss,
                test_accuracy: te.accuracy,
                generalization_gap: tr.accuracy - te.accuracy,
                num_params: net.num_params(),
                file,
                weights_hash: String::new(),
            });
        }
    }
    Ok(Trained {
        id: plan.id.clone(),
        net,
        rows,
        saves,
        steps,
        flops,
    })
}

/// Path of a model state relative to the zoo folder.
pub fn checkpoint_file(id: &str, epoch: usize) -> String {
    format!("models/{id}/epoch_{epoch}.safetensors")
}

/// Trains the zoo `cfg` into `out` (see the module docs for the layout) and returns what it
/// did. Runs on the current rayon pool (install a pool to choose the thread count: the
/// result is the same bits whatever it is). `progress` is called from worker threads.
pub fn train(
    cfg: &ZooConfig,
    out: &Path,
    opts: &TrainOptions,
    progress: &(dyn Fn(&Event) + Sync),
) -> Result<TrainSummary> {
    let t0 = Instant::now();
    let plans = cfg.plan()?;
    if let Some((i, n)) = opts.shard
        && (n == 0 || i >= n)
    {
        return Err(Error::OutputDir {
            path: out.to_path_buf(),
            msg: format!("shard {i}/{n} does not exist (use i/N with 0 ≤ i < N)"),
        });
    }
    std::fs::create_dir_all(out).map_err(ioe(out))?;
    let cfg_path = out.join("zoo.toml");
    let ledger_dir = out.join("ledger");
    if cfg_path.exists() {
        let old = std::fs::read_to_string(&cfg_path).map_err(ioe(&cfg_path))?;
        if old != cfg.text {
            return Err(Error::OutputDir {
                path: out.to_path_buf(),
                msg:
                    "holds a zoo made from a different config (zoo.toml differs); use a new folder"
                        .into(),
            });
        }
    } else {
        weightspace_io::write_atomic(&cfg_path, cfg.text.as_bytes())?;
    }
    std::fs::create_dir_all(&ledger_dir).map_err(ioe(&ledger_dir))?;
    let shard_name = match opts.shard {
        Some((i, n)) => format!("shard-{i}-of-{n}"),
        None => "all".to_string(),
    };
    let ledger_path = ledger_dir.join(format!("{shard_name}.jsonl"));
    let done = read_ledgers(out)?;
    let mine: Vec<&ModelPlan> = plans
        .iter()
        .filter(|p| opts.shard.is_none_or(|(i, n)| p.root % n == i))
        .collect();
    let finished_mine = mine.iter().filter(|p| done.contains_key(&p.id)).count();
    if finished_mine > 0 && !opts.resume {
        return Err(Error::OutputDir {
            path: out.to_path_buf(),
            msg: format!(
                "already holds {finished_mine} finished models of this zoo; pass --resume to continue it"
            ),
        });
    }
    remove_temp_files(&out.join("models"))?;
    let todo: Vec<&ModelPlan> = mine
        .iter()
        .copied()
        .filter(|p| !done.contains_key(&p.id))
        .collect();
    let cache = prepare(&todo)?;
    progress(&Event::Start {
        total: mine.len(),
        todo: todo.len(),
    });
    let ledger = Mutex::new(open_ledger(&ledger_path)?);
    let max_depth = todo.iter().map(|p| p.depth).max().unwrap_or(0);
    let mut steps = 0u64;
    let mut flops = 0.0f64;
    for depth in 0..=max_depth {
        let level: Vec<&ModelPlan> = todo.iter().copied().filter(|p| p.depth == depth).collect();
        let (tx, rx) = std::sync::mpsc::sync_channel::<Trained>(IO_QUEUE);
        let rx = Mutex::new(rx);
        let io_error: Mutex<Option<Error>> = Mutex::new(None);
        let results: Vec<Result<(u64, f64)>> = std::thread::scope(|sc| {
            for _ in 0..IO_THREADS {
                sc.spawn(|| {
                    loop {
                        let job = rx.lock().expect("I/O queue").recv();
                        let Ok(t) = job else { break };
                        let id = t.id.clone();
                        match persist_model(t, &ledger, &ledger_path) {
                            Ok(()) => progress(&Event::ModelDone { id }),
                            Err(e) => {
                                io_error.lock().expect("I/O error").get_or_insert(e);
                            }
                        }
                    }
                });
            }
            level
                .par_iter()
                .map_with(tx, |tx, p| {
                    if io_error.lock().expect("I/O error").is_some() {
                        return Ok((0, 0.0));
                    }
                    let split = &cache[&source_key(p)];
                    let t = train_model(cfg, p, &plans, split, out)?;
                    let done = (t.steps, t.flops);
                    // Fails only if every I/O thread is gone, which they never are early.
                    tx.send(t).expect("I/O threads alive");
                    Ok(done)
                })
                .collect()
        });
        if let Some(e) = io_error.into_inner().expect("I/O error") {
            return Err(e);
        }
        for r in results {
            let (s, f) = r?;
            steps += s;
            flops += f;
        }
    }
    drop(ledger);
    let rows = rebuild_catalog(out, &plans)?;
    let flat: Vec<_> = rows.iter().map(CatalogRow::to_flat).collect();
    Ok(TrainSummary {
        models_planned: plans.len(),
        models_trained: todo.len(),
        models_skipped: finished_mine,
        catalog_rows: rows.len(),
        model_steps: steps,
        train_flops: flops,
        seconds: t0.elapsed().as_secs_f64(),
        catalog: catalog::summary(&flat),
    })
}

/// Rewrites `DIR/catalog.parquet` from every ledger in the folder (all shards), rows in plan
/// order then epoch. Returns the rows.
pub fn rebuild_catalog(dir: &Path, plans: &[ModelPlan]) -> Result<Vec<CatalogRow>> {
    let done = read_ledgers(dir)?;
    let order: HashMap<&str, usize> = plans.iter().map(|p| (p.id.as_str(), p.index)).collect();
    let known: HashSet<&str> = order.keys().copied().collect();
    let mut rows: Vec<CatalogRow> = done
        .into_iter()
        .filter(|(id, _)| known.contains(id.as_str()))
        .flat_map(|(_, r)| r)
        .collect();
    rows.sort_by_key(|r| (order[r.model_id.as_str()], r.epoch));
    catalog::write_parquet(&dir.join("catalog.parquet"), &rows)?;
    Ok(rows)
}
