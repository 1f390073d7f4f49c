//! Zoo data: catalog rows and checkpoints turned into samples (one per model state) with a
//! target, a split by model id, and the layer layout the weight-space models need.
//!
//! All states of a zoo must share one architecture (the same layer chain: tensor shapes in
//! order; names may differ, as a dropout module shifts `nn.Sequential` indices); a zoo with
//! several (e.g. an MLP group and a CNN group) is narrowed with a group filter.
//!
//! The catalog is read through `weightspace_zoo::Catalog`, so a zoo from another tool (only
//! `catalog.parquet` with `model_id` and `file`, and the weight files) loads too; a catalog
//! that cannot be used is an error naming the column, row or file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weightspace_io::Checkpoint;
use weightspace_zoo::catalog::{Catalog, ColumnInfo, ColumnKind};
use weightspace_zoo::rng::Rng;

use crate::error::{Error, Result};

/// The shape of one dense or conv layer of an input network (the wsnets contract's
/// `LayerShape`, kept here so that data handling does not depend on the model crate).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Index of the weight tensor in [`Layout::tensors`].
    pub weight: usize,
    /// Index of the bias tensor.
    pub bias: usize,
    /// Output units (rows / output channels).
    pub out: usize,
    /// Input units (columns / input channels).
    pub inp: usize,
    /// Kernel elements (`kh·kw` for conv, 1 for dense).
    pub kernel: usize,
    /// BatchNorm after this layer: (weight, bias) tensor indices.
    pub batchnorm: Option<(usize, usize)>,
}

/// The tensors of an architecture (names and shapes, `state_dict` order) and its chain of
/// dense/conv layers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// (name, shape) of every parameter tensor.
    pub tensors: Vec<(String, Vec<usize>)>,
    /// The dense/conv layers in order.
    pub layers: Vec<LayerInfo>,
}

impl Layout {
    /// Derives the layer chain from PyTorch-style names and shapes: `X.weight` of rank 2
    /// (dense, `[out, in]`) or 4 (conv, `[out, in, kh, kw]`) with `X.bias` of `[out]`; a rank-1
    /// `X.weight`/`X.bias` pair right after a conv is its BatchNorm. Consecutive layers must
    /// chain (`inp` = previous `out`; a dense after global average pooling sees the channels).
    pub fn from_tensors(tensors: Vec<(String, Vec<usize>)>, path: &Path) -> Result<Layout> {
        let mismatch = |msg: String| Error::Mismatch {
            path: path.to_path_buf(),
            msg,
        };
        let find = |name: &str| tensors.iter().position(|t| t.0 == name);
        let mut layers: Vec<LayerInfo> = vec![];
        for (i, (name, shape)) in tensors.iter().enumerate() {
            let Some(prefix) = name.strip_suffix(".weight") else {
                continue;
            };
            let bias_name = format!("{prefix}.bias");
            let Some(bi) = find(&bias_name) else {
                return Err(mismatch(format!(
                    "tensor `{name}` has no `{bias_name}`: only layers with biases are supported"
                )));
            };
            match shape.len() {
                2 | 4 => {
                    let out = shape[0];
                    if tensors[bi].1 != [out] {
                        return Err(mismatch(format!(
                            "tensor `{bias_name}` has shape {:?}, expected [{out}]",
                            tensors[bi].1
                        )));
                    }
                    let kernel = if shape.len() == 4 {
                        shape[2] * shape[3]
                    } else {
                        1
                    };
                    layers.push(LayerInfo {
                        weight: i,
                        bias: bi,
                        out,
                        inp: shape[1],
                        kernel,
                        batchnorm: None,
                    });
                }
                1 => {
                    let Some(last) = layers.last_mut() else {
                        return Err(mismatch(format!("rank-1 tensor `{name}` before any layer")));
                    };
                    if shape[0] != last.out || last.kernel == 0 {
                        return Err(mismatch(format!(
                            "normalisation tensor `{name}` of shape {shape:?} does not follow a layer of {} units",
                            last.out
                        )));
                    }
                    last.batchnorm = Some((i, bi));
                }
                r => {
                    return Err(mismatch(format!(
                        "tensor `{name}` has rank {r}: only dense [out, in] and conv [out, in, kh, kw] layers are supported"
                    )));
                }
            }
        }
        if layers.is_empty() {
            return Err(mismatch("no dense or conv layers".into()));
        }
        for w in layers.windows(2) {
            if w[1].inp != w[0].out {
                return Err(mismatch(format!(
                    "layer `{}` takes {} inputs but `{}` has {} outputs: not a chain of layers",
                    tensors[w[1].weight].0, w[1].inp, tensors[w[0].weight].0, w[0].out
                )));
            }
        }
        Ok(Layout { tensors, layers })
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.tensors
            .iter()
            .map(|t| t.1.iter().product::<usize>())
            .sum()
    }
}

/// The parameter tensors of one network, in [`Layout::tensors`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct NetWeights {
    /// Flat values per tensor.
    pub tensors: Vec<Vec<f32>>,
}

impl NetWeights {
    /// Reads the layout's tensors from any checkpoint `weightspace-io` opens; every tensor
    /// must be present with its shape (extra tensors, such as BatchNorm running statistics,
    /// are ignored). Tensors are found by name; when a name is missing, the checkpoint's own
    /// layer chain is matched role by role (layer k's weight, bias and normalisation), so that
    /// the same architecture under other names reads too: PyTorch's `nn.Sequential` numbers
    /// its modules, and a dropout module shifts every later index (`layers.2` vs `layers.3`).
    pub fn from_checkpoint(ck: &Checkpoint, layout: &Layout) -> Result<NetWeights> {
        // By name; otherwise by role; failing that, by name again, for the error below.
        let renamed = if layout.tensors.iter().all(|(n, _)| ck.info(n).is_some()) {
            None
        } else {
            structural_names(ck, layout)?
        };
        let mut tensors = Vec::with_capacity(layout.tensors.len());
        for (i, (layout_name, shape)) in layout.tensors.iter().enumerate() {
            let name = renamed
                .as_ref()
                .map_or(layout_name.as_str(), |r| r[i].as_str());
            let info = ck.info(name).ok_or_else(|| Error::Mismatch {
                path: ck.path().to_path_buf(),
                msg: format!(
                    "tensor `{name}` is missing (the learned model expects {shape:?}), and the checkpoint's layers do not have the learned layout's shapes under other names either"
                ),
            })?;
            if &info.shape != shape {
                return Err(Error::Mismatch {
                    path: ck.path().to_path_buf(),
                    msg: format!(
                        "tensor `{name}` has shape {:?}, the learned model expects {shape:?}",
                        info.shape
                    ),
                });
            }
            tensors.push(ck.tensor_f32(name)?);
        }
        Ok(NetWeights { tensors })
    }

    /// True when every value is finite.
    pub fn is_finite(&self) -> bool {
        self.tensors.iter().all(|t| t.iter().all(|v| v.is_finite()))
    }
}

/// Which model states (epochs) to use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum States {
    /// Every saved state.
    All,
    /// The last state of each model.
    Last,
    /// These epochs.
    Epochs(Vec<usize>),
}

impl std::str::FromStr for States {
    type Err = Error;
    fn from_str(s: &str) -> Result<States> {
        match s {
            "all" => Ok(States::All),
            "last" => Ok(States::Last),
            _ => s
                .split(',')
                .map(|e| e.trim().parse::<usize>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(States::Epochs)
                .map_err(|_| {
                    Error::Options(format!(
                        "states `{s}`: expected `all`, `last` or a list of epochs like `4,8,16`"
                    ))
                }),
        }
    }
}

/// Regression or classification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Task {
    /// A real-valued target.
    Regression,
    /// A categorical target with these class names (index = class id).
    Classification {
        /// Class names, sorted.
        classes: Vec<String>,
    },
}

/// One model state.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Model id.
    pub model_id: String,
    /// Epoch of the state.
    pub epoch: usize,
    /// Target: the value, or the class index as f64.
    pub y: f64,
    /// True when the network's activation is positively homogeneous (ReLU, leaky ReLU), so
    /// positive rescaling of hidden units keeps its function.
    pub homogeneous: bool,
    /// The weights.
    pub net: NetWeights,
}

/// A zoo loaded for learning.
#[derive(Clone, Debug)]
pub struct ZooData {
    /// The zoo folder.
    pub dir: PathBuf,
    /// How it was read (target, states, group).
    pub load: LoadOptions,
    /// The target name asked for.
    pub target: String,
    /// Regression or classification.
    pub task: Task,
    /// Architecture of every state.
    pub layout: Layout,
    /// Samples, sorted by (model id, epoch).
    pub samples: Vec<Sample>,
    /// States skipped because their target was missing or their weights not finite.
    pub skipped: usize,
}

/// Options for loading a zoo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Target: `test_acc`, `gen_gap`, or a catalog column.
    pub target: String,
    /// Which states.
    pub states: States,
    /// Only models of this catalog group.
    pub group: Option<String>,
}

/// Catalog columns that identify a state rather than describe it: never targets.
const NOT_TARGETS: &[&str] = &[
    "model_id",
    "parent_id",
    "file",
    "weights_hash",
    "checkpoints",
];

/// The catalog column a target name refers to.
pub fn target_column(target: &str) -> &str {
    match target {
        "test_acc" => "test_accuracy",
        "train_acc" => "train_accuracy",
        "gen_gap" => "generalization_gap",
        t => t,
    }
}

fn activation_homogeneous(row: &serde_json::Map<String, Value>) -> bool {
    matches!(
        row.get("activation").and_then(|v| v.as_str()),
        Some("relu") | Some("leaky-relu") | Some("leaky_relu")
    )
}

fn class_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Loads the states of a zoo with their target. `task` fixes the task (and the class list)
/// when evaluating a learned model on a zoo; `None` infers it from the column (numbers →
/// regression; strings and booleans → classification).
pub fn load_zoo(dir: &Path, opts: &LoadOptions, task: Option<&Task>) -> Result<ZooData> {
    if !dir.is_dir() {
        return Err(Error::Zoo {
            path: dir.to_path_buf(),
            msg: "not a folder (expected a zoo folder holding catalog.parquet)".into(),
        });
    }
    let cat = Catalog::open(dir)?;
    let col = target_column(&opts.target).to_string();
    if let Some(g) = &opts.group
        && cat.column("group").is_none()
    {
        return Err(Error::Zoo {
            path: cat.path.clone(),
            msg: format!("no column `group`, so the group filter `{g}` cannot be applied"),
        });
    }
    let mut rows: Vec<_> = cat
        .rows
        .iter()
        .filter(|r| {
            opts.group
                .as_ref()
                .is_none_or(|g| r.get("group").and_then(|v| v.as_str()) == Some(g))
        })
        .collect();
    if rows.is_empty() {
        return Err(Error::Zoo {
            path: dir.to_path_buf(),
            msg: match &opts.group {
                Some(g) => format!("no model states in group `{g}`"),
                None => "the catalog has no model states".into(),
            },
        });
    }
    let usable =
        |c: &ColumnInfo| !NOT_TARGETS.contains(&c.name.as_str()) && c.kind != ColumnKind::Other;
    match cat.column(&col) {
        Some(c) if usable(c) => {}
        found => {
            let cands: Vec<&str> = cat
                .columns
                .iter()
                .filter(|c| usable(c))
                .map(|c| c.name.as_str())
                .collect();
            let why = match found {
                Some(c) if c.kind == ColumnKind::Other => format!(
                    "column `{col}` has Arrow type {}; a target is a number, text or a boolean",
                    c.arrow_type
                ),
                Some(_) => format!("column `{col}` identifies a model state, it is not a target"),
                None => format!("{} has no column `{col}`", cat.path.display()),
            };
            return Err(Error::Target {
                target: opts.target.clone(),
                msg: format!(
                    "{why}; expected test_acc, gen_gap or a catalog column: {}",
                    cands.join(", ")
                ),
            });
        }
    }
    // Which states.
    let last: BTreeMap<&str, i64> = rows.iter().fold(BTreeMap::new(), |mut m, r| {
        let e = Catalog::epoch(r);
        let v = m.entry(Catalog::model_id(r)).or_insert(e);
        *v = (*v).max(e);
        m
    });
    rows.retain(|r| {
        let e = Catalog::epoch(r);
        match &opts.states {
            States::All => true,
            States::Last => last.get(Catalog::model_id(r)) == Some(&e),
            States::Epochs(es) => es.iter().any(|&x| x as i64 == e),
        }
    });
    if rows.is_empty() {
        return Err(Error::Options(format!(
            "{}: no model state has the epochs asked for ({:?})",
            dir.display(),
            opts.states
        )));
    }
    // The task.
    let task = match task {
        Some(t) => t.clone(),
        None => {
            let vals: Vec<&Value> = rows
                .iter()
                .filter_map(|r| r.get(&col))
                .filter(|v| !v.is_null())
                .collect();
            if vals.is_empty() {
                return Err(Error::Target {
                    target: opts.target.clone(),
                    msg: "the column is empty in this zoo".into(),
                });
            }
            if vals.iter().all(|v| v.is_number()) {
                Task::Regression
            } else if vals.iter().all(|v| v.is_string() || v.is_boolean()) {
                let classes: BTreeSet<String> = vals.iter().filter_map(|v| class_name(v)).collect();
                if classes.len() < 2 {
                    return Err(Error::Target {
                        target: opts.target.clone(),
                        msg: format!("only one class ({classes:?}) in this zoo"),
                    });
                }
                Task::Classification {
                    classes: classes.into_iter().collect(),
                }
            } else {
                return Err(Error::Target {
                    target: opts.target.clone(),
                    msg: "the column mixes numbers and text".into(),
                });
            }
        }
    };
    // Target values; rows without one are skipped.
    let mut skipped = 0usize;
    let mut todo = Vec::new();
    for r in &rows {
        let v = r.get(&col).unwrap_or(&Value::Null);
        let y = match &task {
            Task::Regression => v.as_f64(),
            Task::Classification { classes } => class_name(v)
                .and_then(|c| classes.iter().position(|k| *k == c))
                .map(|i| i as f64),
        };
        match y {
            Some(y) if y.is_finite() => todo.push((r, y)),
            _ => skipped += 1,
        }
    }
    // Layout from the first checkpoint; every other must match it.
    let first = todo.first().ok_or_else(|| Error::Target {
        target: opts.target.clone(),
        msg: "no model state has a value for it".into(),
    })?;
    let file = |r: &serde_json::Map<String, Value>| dir.join(Catalog::file(r));
    let layout = {
        let p = file(first.0);
        let ck = Checkpoint::open(&p)?;
        let tensors = zoo_param_tensors(&ck)?;
        Layout::from_tensors(tensors, &p)?
    };
    let loaded: Vec<Result<Option<Sample>>> = todo
        .par_iter()
        .map(|(r, y)| {
            let p = file(r);
            let ck = Checkpoint::open(&p)?;
            let net = NetWeights::from_checkpoint(&ck, &layout).map_err(|e| match e {
                Error::Mismatch { path, msg } => Error::Zoo {
                    path,
                    msg: format!(
                        "{msg}; the zoo mixes architectures: pick one with a group filter (--group)"
                    ),
                },
                e => e,
            })?;
            if !net.is_finite() {
                return Ok(None);
            }
            Ok(Some(Sample {
                model_id: Catalog::model_id(r).to_string(),
                epoch: Catalog::epoch(r) as usize,
                y: *y,
                homogeneous: activation_homogeneous(r),
                net,
            }))
        })
        .collect();
    let mut samples = Vec::with_capacity(loaded.len());
    for s in loaded {
        match s? {
            Some(s) => samples.push(s),
            None => skipped += 1,
        }
    }
    samples.sort_by(|a, b| (&a.model_id, a.epoch).cmp(&(&b.model_id, b.epoch)));
    Ok(ZooData {
        dir: dir.to_path_buf(),
        load: opts.clone(),
        target: opts.target.clone(),
        task,
        layout,
        samples,
        skipped,
    })
}

/// The checkpoint's tensor names for the layout's tensors, matched by role when the checkpoint
/// has the same layer chain (the same shapes in the same order, normalisation layers in the same
/// places) under other names; `None` when it does not.
fn structural_names(ck: &Checkpoint, layout: &Layout) -> Result<Option<Vec<String>>> {
    let Ok(own) = Layout::from_tensors(zoo_param_tensors(ck)?, ck.path()) else {
        return Ok(None);
    };
    if own.tensors.len() != layout.tensors.len() || own.layers.len() != layout.layers.len() {
        return Ok(None);
    }
    let mut names: Vec<Option<String>> = vec![None; layout.tensors.len()];
    for (want, have) in layout.layers.iter().zip(&own.layers) {
        let mut pairs = vec![(want.weight, have.weight), (want.bias, have.bias)];
        match (want.batchnorm, have.batchnorm) {
            (Some((w, b)), Some((hw, hb))) => pairs.extend([(w, hw), (b, hb)]),
            (None, None) => {}
            _ => return Ok(None),
        }
        for (w, h) in pairs {
            if layout.tensors[w].1 != own.tensors[h].1 {
                return Ok(None);
            }
            names[w] = Some(own.tensors[h].0.clone());
        }
    }
    Ok(names.into_iter().collect())
}

/// The parameter tensors of a zoo checkpoint in file order: everything but BatchNorm running
/// statistics and batch counters.
pub fn zoo_param_tensors(ck: &Checkpoint) -> Result<Vec<(String, Vec<usize>)>> {
    Ok(ck
        .infos()
        .filter(|t| {
            !(t.name.ends_with(".running_mean")
                || t.name.ends_with(".running_var")
                || t.name.ends_with(".num_batches_tracked"))
        })
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect())
}

/// Model ids of each side of a split.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// Training models.
    pub train: Vec<String>,
    /// Validation models (early stopping).
    pub val: Vec<String>,
    /// Test models (reported metrics).
    pub test: Vec<String>,
}

impl Split {
    /// Splits the distinct model ids of `samples` 70/15/15 (at least one model on each side),
    /// fixed by `seed`: all states of a model are on one side. Fewer than three models cannot
    /// be split (validation or test would be empty and every metric NaN): an error.
    pub fn by_model(samples: &[Sample], seed: u64) -> crate::Result<Split> {
        let ids: BTreeSet<&str> = samples.iter().map(|s| s.model_id.as_str()).collect();
        if ids.len() < 3 {
            return Err(crate::Error::Options(format!(
                "learning needs at least 3 models (one each for training, validation and test); the zoo has {}",
                ids.len()
            )));
        }
        let mut ids: Vec<String> = ids.into_iter().map(String::from).collect();
        Rng::derived(seed, &["learn", "split"]).shuffle(&mut ids);
        let n = ids.len();
        let mut n_test = ((n as f64) * 0.15).round() as usize;
        let mut n_val = ((n as f64) * 0.15).round() as usize;
        if n >= 3 {
            n_test = n_test.max(1);
            n_val = n_val.max(1);
        }
        let test = ids.split_off(n - n_test.min(n));
        let val = ids.split_off(ids.len() - n_val.min(ids.len()));
        let mut s = Split {
            train: ids,
            val,
            test,
        };
        s.train.sort();
        s.val.sort();
        s.test.sort();
        Ok(s)
    }

    /// Indices of `samples` whose model is in `ids`.
    pub fn indices(samples: &[Sample], ids: &[String]) -> Vec<usize> {
        let set: BTreeSet<&str> = ids.iter().map(|s| s.as_str()).collect();
        (0..samples.len())
            .filter(|&i| set.contains(samples[i].model_id.as_str()))
            .collect()
    }
}
