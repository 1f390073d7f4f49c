//! The zoo config (`zoo.toml`): groups of models, each a grid and/or random sample over
//! hyper-parameters, optionally fine-tuned from another group's models.
//!
//! ```toml
//! name = "tiny"
//! seed = 0                      # the zoo seed: random sampling and every model's streams
//!
//! [defaults]                    # applies to every group unless the group sets the key
//! dataset = "digits"
//! epochs = 10
//! checkpoints = [0, 5, 10]      # epochs whose state is saved (0 = before training)
//!
//! [[models]]
//! name = "mlp"                  # model ids are `mlp-0000`, `mlp-0001`, ...
//! arch = "mlp"
//! hidden = [32]                 # list-valued key: a grid is { grid = [[32], [64, 32]] }
//! activation = ["relu", "tanh"] # a list is a grid axis
//! lr = { log_uniform = [1e-4, 1e-2] }   # a table draws at random
//! seed = [0, 1]
//! samples = 2                   # random draws per grid point
//!
//! [[models]]
//! name = "ft"
//! init_from = "mlp"             # one child per model of group `mlp` (per grid point, sample)
//! init_epoch = 10               # which parent checkpoint (default: the parent's last)
//! classes = [0, 1, 2]           # everything not set is inherited from the parent
//! ```
//!
//! Value forms: a scalar is fixed; an array (for scalar keys) or `{ grid = [...] }` is a grid
//! axis (grids multiply); `{ choice = [...] }`, `{ uniform = [a, b] }`,
//! `{ log_uniform = [a, b] }` and `{ int_uniform = [a, b] }` (inclusive) are drawn per model
//! from the zoo seed. Every error names the key (`models[1].lr`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::data::{DataOptions, Source};
use crate::error::{Error, Result};
use crate::net::{Activation, Arch, Init};
use crate::optim::OptimizerKind;
use crate::rng::{Rng, derive_seed};

/// Hyper-parameter keys that hold lists (so a plain array is the value, not a grid).
const LIST_KEYS: [&str; 4] = ["hidden", "channels", "classes", "checkpoints"];

/// Every hyper-parameter key, in grid order, with a one-line description.
pub const KEYS: [(&str, &str); 33] = [
    (
        "dataset",
        "digits | mnist | fashion-mnist | cifar10 | blobs | moons | regression1d | regression2d",
    ),
    (
        "data_path",
        "folder with the IDX files (mnist, fashion-mnist) or CIFAR-10 binary batches",
    ),
    ("n_train", "synthetic datasets: training samples"),
    ("n_test", "synthetic datasets: test samples"),
    ("noise", "synthetic datasets: noise standard deviation"),
    ("data_seed", "synthetic datasets: generator seed"),
    ("blob_classes", "blobs: number of classes"),
    ("blob_dim", "blobs: input dimension"),
    (
        "classes",
        "keep only these classes, relabelled 0..k in this order",
    ),
    (
        "label_permutation",
        "permute labels with a permutation drawn from this seed (false = none)",
    ),
    (
        "label_noise",
        "fraction of training labels replaced at random",
    ),
    ("train_fraction", "fraction of the training set kept"),
    (
        "augment",
        "random ±1 pixel shifts (images) or input noise (vectors) while training",
    ),
    ("arch", "mlp | cnn"),
    ("hidden", "MLP hidden widths"),
    ("channels", "CNN conv channels"),
    ("kernel", "CNN kernel size"),
    ("stride", "CNN stride"),
    ("padding", "CNN zero padding"),
    ("batchnorm", "CNN BatchNorm2d after each conv"),
    ("activation", "relu | tanh | gelu | sigmoid | leaky-relu"),
    (
        "dropout",
        "dropout probability (MLP: after each hidden layer; CNN: before the dense layer)",
    ),
    ("init", "uniform | normal | xavier | he"),
    ("init_scale", "multiplies the initial weights"),
    ("optimizer", "sgd | momentum | adam"),
    ("lr", "learning rate"),
    ("batch_size", "minibatch size"),
    ("weight_decay", "L2 weight decay"),
    ("epochs", "training epochs"),
    (
        "seed",
        "model seed (initialisation, data order, dropout); default: the model's index in its group",
    ),
    (
        "checkpoints",
        "epochs whose state is saved, 0 = before training; default [0, epochs]",
    ),
    (
        "init_from",
        "name of an earlier group: each of its models gets children fine-tuned from it",
    ),
    (
        "init_epoch",
        "which checkpoint of the parent to start from (default: its last)",
    ),
];

/// The concrete hyper-parameters of one model (one catalog row's configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HyperParams {
    /// Dataset name.
    pub dataset: String,
    /// Folder of a file-based dataset.
    pub data_path: Option<String>,
    /// Synthetic: training samples.
    pub n_train: usize,
    /// Synthetic: test samples.
    pub n_test: usize,
    /// Synthetic: noise.
    pub noise: f64,
    /// Synthetic: generator seed.
    pub data_seed: u64,
    /// Blobs: classes.
    pub blob_classes: usize,
    /// Blobs: dimension.
    pub blob_dim: usize,
    /// Class subset.
    pub classes: Option<Vec<usize>>,
    /// Label permutation seed.
    pub label_permutation: Option<u64>,
    /// Label noise fraction.
    pub label_noise: f64,
    /// Training fraction.
    pub train_fraction: f64,
    /// Augmentation on/off.
    pub augment: bool,
    /// `mlp` or `cnn`.
    pub arch: String,
    /// MLP hidden widths.
    pub hidden: Vec<usize>,
    /// CNN channels.
    pub channels: Vec<usize>,
    /// CNN kernel.
    pub kernel: usize,
    /// CNN stride.
    pub stride: usize,
    /// CNN padding.
    pub padding: usize,
    /// CNN BatchNorm.
    pub batchnorm: bool,
    /// Activation name.
    pub activation: String,
    /// Dropout probability.
    pub dropout: f64,
    /// Initialisation scheme name.
    pub init: String,
    /// Initialisation scale.
    pub init_scale: f64,
    /// Optimiser name.
    pub optimizer: String,
    /// Learning rate.
    pub lr: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Weight decay.
    pub weight_decay: f64,
    /// Epochs.
    pub epochs: usize,
    /// Model seed.
    pub seed: u64,
    /// Checkpoint epochs (sorted, unique).
    pub checkpoints: Vec<usize>,
}

impl HyperParams {
    /// The network architecture these hyper-parameters describe.
    pub fn arch(&self) -> Arch {
        let activation = Activation::parse(&self.activation).expect("validated");
        if self.arch == "cnn" {
            Arch::Cnn {
                channels: self.channels.clone(),
                kernel: self.kernel,
                stride: self.stride,
                padding: self.padding,
                batchnorm: self.batchnorm,
                activation,
                dropout: self.dropout as f32,
            }
        } else {
            Arch::Mlp {
                hidden: self.hidden.clone(),
                activation,
                dropout: self.dropout as f32,
            }
        }
    }

    /// The dataset source.
    pub fn source(&self) -> Source {
        let path = || std::path::PathBuf::from(self.data_path.clone().unwrap_or_default());
        match self.dataset.as_str() {
            "mnist" | "fashion-mnist" => Source::Idx(path()),
            "cifar10" => Source::Cifar10(path()),
            "blobs" => Source::Blobs {
                classes: self.blob_classes,
                dim: self.blob_dim,
                n_train: self.n_train,
                n_test: self.n_test,
                seed: self.data_seed,
            },
            "moons" => Source::Moons {
                noise: self.noise,
                n_train: self.n_train,
                n_test: self.n_test,
                seed: self.data_seed,
            },
            "regression1d" | "regression2d" => Source::Regression {
                dim: if self.dataset == "regression1d" { 1 } else { 2 },
                noise: self.noise,
                n_train: self.n_train,
                n_test: self.n_test,
                seed: self.data_seed,
            },
            _ => Source::Digits,
        }
    }

    /// The per-model data options.
    pub fn data_options(&self) -> DataOptions {
        DataOptions {
            classes: self.classes.clone(),
            label_permutation: self.label_permutation,
            label_noise: self.label_noise,
            train_fraction: self.train_fraction,
            augment: self.augment,
        }
    }

    /// Initialisation scheme.
    pub fn init_scheme(&self) -> Init {
        Init::parse(&self.init).expect("validated")
    }

    /// Optimiser.
    pub fn optimizer_kind(&self) -> OptimizerKind {
        OptimizerKind::parse(&self.optimizer).expect("validated")
    }
}

/// How a key's values are chosen.
#[derive(Clone, Debug, PartialEq)]
enum Spec {
    Fixed(Value),
    Grid(Vec<Value>),
    Choice(Vec<Value>),
    Uniform(f64, f64),
    LogUniform(f64, f64),
    IntUniform(i64, i64),
}

/// One `[[models]]` group.
#[derive(Clone, Debug, PartialEq)]
struct Group {
    name: String,
    samples: usize,
    specs: BTreeMap<String, (Spec, String)>, // key -> (spec, config key path)
    init_from: Option<String>,
    init_epoch: Option<usize>,
}

/// A parsed, validated zoo config.
#[derive(Clone, Debug, PartialEq)]
pub struct ZooConfig {
    /// The exact text it was parsed from (written to `DIR/zoo.toml`).
    pub text: String,
    /// Zoo name.
    pub name: String,
    /// Zoo seed.
    pub seed: u64,
    groups: Vec<Group>,
}

/// One model to train: its id, lineage and hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPlan {
    /// Index in plan order (parents before children).
    pub index: usize,
    /// Model id (`<group>-<nnnn>`), also its folder name under `models/`.
    pub id: String,
    /// The group it comes from.
    pub group: String,
    /// Index of its group in the config (`models[i]`).
    pub group_index: usize,
    /// Parent model index and the parent epoch it starts from.
    pub parent: Option<(usize, usize)>,
    /// Index of the root of its fine-tune tree (itself for roots): shards split by tree.
    pub root: usize,
    /// Depth in the fine-tune tree (0 for roots).
    pub depth: usize,
    /// Hyper-parameters.
    pub hp: HyperParams,
}

fn defaults() -> Table {
    let t: Table = toml::from_str(
        r#"
dataset = "digits"
n_train = 1000
n_test = 500
noise = 0.1
data_seed = 0
blob_classes = 3
blob_dim = 2
label_permutation = false
label_noise = 0.0
train_fraction = 1.0
augment = false
arch = "mlp"
hidden = [32]
channels = [16, 16, 16]
kernel = 3
stride = 2
padding = 1
batchnorm = false
activation = "relu"
dropout = 0.0
init = "uniform"
init_scale = 1.0
optimizer = "adam"
lr = 0.001
batch_size = 32
weight_decay = 0.0
epochs = 10
"#,
    )
    .expect("valid defaults");
    t
}

fn known(key: &str) -> bool {
    KEYS.iter().any(|(k, _)| *k == key)
}

fn unknown_key(path: &str, key: &str, allowed: &[&str]) -> Error {
    Error::config(
        path,
        format!("unknown key `{key}`; known keys: {}", allowed.join(", ")),
    )
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn parse_spec(key: &str, path: &str, v: &Value) -> Result<Spec> {
    let list_key = LIST_KEYS.contains(&key);
    match v {
        Value::Array(a) if !list_key => {
            if a.is_empty() {
                return Err(Error::config(path, "an empty grid"));
            }
            Ok(Spec::Grid(a.clone()))
        }
        Value::Table(t) => {
            if t.len() != 1 {
                return Err(Error::config(
                    path,
                    "a table value needs exactly one of grid, choice, uniform, log_uniform, int_uniform",
                ));
            }
            let (kind, arg) = t.iter().next().unwrap();
            let p = format!("{path}.{kind}");
            let arr = arg
                .as_array()
                .ok_or_else(|| Error::config(&p, "expected an array"))?;
            if arr.is_empty() {
                return Err(Error::config(&p, "an empty array"));
            }
            let pair = || -> Result<(f64, f64)> {
                if arr.len() != 2 {
                    return Err(Error::config(&p, "expected [low, high]"));
                }
                let lo = num(&arr[0]).ok_or_else(|| Error::config(&p, "expected numbers"))?;
                let hi = num(&arr[1]).ok_or_else(|| Error::config(&p, "expected numbers"))?;
                if lo > hi {
                    return Err(Error::config(&p, "low is greater than high"));
                }
                Ok((lo, hi))
            };
            match kind.as_str() {
                "grid" => Ok(Spec::Grid(arr.clone())),
                "choice" => Ok(Spec::Choice(arr.clone())),
                "uniform" => pair().map(|(a, b)| Spec::Uniform(a, b)),
                "log_uniform" => {
                    let (a, b) = pair()?;
                    if a <= 0.0 {
                        return Err(Error::config(&p, "log_uniform needs positive bounds"));
                    }
                    Ok(Spec::LogUniform(a, b))
                }
                "int_uniform" => {
                    let (a, b) = pair()?;
                    if a.fract() != 0.0 || b.fract() != 0.0 {
                        return Err(Error::config(&p, "int_uniform needs integers"));
                    }
                    Ok(Spec::IntUniform(a as i64, b as i64))
                }
                other => Err(Error::config(
                    path,
                    format!(
                        "unknown sampling `{other}` (use grid, choice, uniform, log_uniform or int_uniform)"
                    ),
                )),
            }
        }
        other => Ok(Spec::Fixed(other.clone())),
    }
}

fn parse_specs(t: &Table, path: &str, extra: &[&str]) -> Result<BTreeMap<String, (Spec, String)>> {
    let mut out = BTreeMap::new();
    for (k, v) in t {
        if extra.contains(&k.as_str()) {
            continue;
        }
        let p = format!("{path}.{k}");
        if !known(k) || k == "init_from" || k == "init_epoch" {
            let mut allowed: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            allowed.retain(|k| *k != "init_from" && *k != "init_epoch");
            allowed.extend_from_slice(extra);
            return Err(unknown_key(&p, k, &allowed));
        }
        out.insert(k.clone(), (parse_spec(k, &p, v)?, p));
    }
    Ok(out)
}

impl ZooConfig {
    /// Parses and validates a config (every model is planned once, so every value is
    /// checked). Errors name the key.
    pub fn from_toml_str(text: &str) -> Result<ZooConfig> {
        let top: Table = text
            .parse()
            .map_err(|e: toml::de::Error| Error::Toml(e.to_string()))?;
        let top_keys = ["name", "seed", "defaults", "models"];
        for k in top.keys() {
            if !top_keys.contains(&k.as_str()) {
                return Err(unknown_key(k, k, &top_keys));
            }
        }
        let name = match top.get("name") {
            None => "zoo".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(Error::config("name", "expected a string")),
        };
        let seed = match top.get("seed") {
            None => 0,
            Some(Value::Integer(i)) if *i >= 0 => *i as u64,
            Some(_) => return Err(Error::config("seed", "expected a non-negative integer")),
        };
        let mut base = BTreeMap::new();
        if let Some(d) = top.get("defaults") {
            let t = d
                .as_table()
                .ok_or_else(|| Error::config("defaults", "expected a table"))?;
            base = parse_specs(t, "defaults", &[])?;
        }
        let models = top
            .get("models")
            .ok_or_else(|| Error::config("models", "missing: add at least one [[models]] group"))?
            .as_array()
            .ok_or_else(|| Error::config("models", "expected [[models]] tables"))?;
        if models.is_empty() {
            return Err(Error::config("models", "no model groups"));
        }
        let mut groups: Vec<Group> = Vec::new();
        for (gi, m) in models.iter().enumerate() {
            let path = format!("models[{gi}]");
            let t = m
                .as_table()
                .ok_or_else(|| Error::config(&path, "expected a table"))?;
            let extra = ["name", "samples", "init_from", "init_epoch"];
            let mut specs = base.clone();
            specs.extend(parse_specs(t, &path, &extra)?);
            let gname = match t.get("name") {
                None => format!("g{gi}"),
                Some(Value::String(s))
                    if !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    s.clone()
                }
                Some(_) => {
                    return Err(Error::config(
                        format!("{path}.name"),
                        "expected a name of letters, digits, '-' and '_'",
                    ));
                }
            };
            if groups.iter().any(|g| g.name == gname) {
                return Err(Error::config(
                    format!("{path}.name"),
                    format!("duplicate group name `{gname}`"),
                ));
            }
            let samples = match t.get("samples") {
                None => 1,
                Some(Value::Integer(i)) if *i >= 1 => *i as usize,
                Some(_) => {
                    return Err(Error::config(
                        format!("{path}.samples"),
                        "expected an integer ≥ 1",
                    ));
                }
            };
            let init_from = match t.get("init_from") {
                None => None,
                Some(Value::String(s)) => {
                    if !groups.iter().any(|g| &g.name == s) {
                        return Err(Error::config(
                            format!("{path}.init_from"),
                            format!("no earlier group named `{s}` (parents must come first)"),
                        ));
                    }
                    Some(s.clone())
                }
                Some(_) => {
                    return Err(Error::config(
                        format!("{path}.init_from"),
                        "expected a group name",
                    ));
                }
            };
            let init_epoch = match t.get("init_epoch") {
                None => None,
                Some(Value::Integer(i)) if *i >= 0 && init_from.is_some() => Some(*i as usize),
                Some(_) => {
                    return Err(Error::config(
                        format!("{path}.init_epoch"),
                        "expected a non-negative integer, with init_from",
                    ));
                }
            };
            if init_from.is_some() {
                // Children inherit from their parent, not from [defaults].
                specs = parse_specs(t, &path, &extra)?;
            }
            groups.push(Group {
                name: gname,
                samples,
                specs,
                init_from,
                init_epoch,
            });
        }
        let cfg = ZooConfig {
            text: text.to_string(),
            name,
            seed,
            groups,
        };
        cfg.plan()?;
        Ok(cfg)
    }

    /// Reads and parses a config file.
    pub fn from_file(path: &std::path::Path) -> Result<ZooConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        ZooConfig::from_toml_str(&text)
    }

    /// Expands the config into the list of models, parents before children.
    pub fn plan(&self) -> Result<Vec<ModelPlan>> {
        let mut out: Vec<ModelPlan> = Vec::new();
        for (gi, g) in self.groups.iter().enumerate() {
            let parents: Vec<Option<usize>> = match &g.init_from {
                None => vec![None],
                Some(pg) => out
                    .iter()
                    .filter(|m| &m.group == pg)
                    .map(|m| Some(m.index))
                    .collect(),
            };
            let axes: Vec<(&String, &Vec<Value>)> = KEYS
                .iter()
                .filter_map(|(k, _)| match g.specs.get_key_value(*k) {
                    Some((name, (Spec::Grid(v), _))) => Some((name, v)),
                    _ => None,
                })
                .collect();
            let points: usize = axes.iter().map(|(_, v)| v.len()).product();
            let mut k = 0usize;
            for parent in parents {
                for point in 0..points {
                    for _ in 0..g.samples {
                        let mut vals: BTreeMap<String, (Value, String)> = BTreeMap::new();
                        if let Some(pi) = parent {
                            let inherited = Value::try_from(&out[pi].hp).expect("serialisable");
                            for (key, v) in inherited.as_table().unwrap() {
                                if key == "seed" {
                                    continue; // children get their own seeds
                                }
                                vals.insert(
                                    key.clone(),
                                    (v.clone(), format!("models[{gi}].{key}")),
                                );
                            }
                        }
                        let mut rem = point;
                        let mut grid_vals = BTreeMap::new();
                        for (name, v) in axes.iter().rev() {
                            grid_vals.insert((*name).clone(), v[rem % v.len()].clone());
                            rem /= v.len();
                        }
                        let mut rng = Rng::derived(self.seed, &["sample", &g.name, &k.to_string()]);
                        for (key, (spec, path)) in &g.specs {
                            let v = match spec {
                                Spec::Fixed(v) => v.clone(),
                                Spec::Grid(_) => grid_vals[key].clone(),
                                Spec::Choice(c) => c[rng.below(c.len() as u64) as usize].clone(),
                                Spec::Uniform(a, b) => Value::Float(rng.uniform(*a, *b)),
                                Spec::LogUniform(a, b) => {
                                    Value::Float(rng.uniform(a.ln(), b.ln()).exp())
                                }
                                Spec::IntUniform(a, b) => {
                                    Value::Integer(a + rng.below((b - a + 1) as u64) as i64)
                                }
                            };
                            vals.insert(key.clone(), (v, path.clone()));
                        }
                        let index = out.len();
                        let hp = resolve(vals, k, &format!("models[{gi}]"))?;
                        let (parent_link, root, depth) = match parent {
                            None => (None, index, 0),
                            Some(pi) => {
                                let p = &out[pi];
                                let pe = g.init_epoch.unwrap_or(*p.hp.checkpoints.last().unwrap());
                                if !p.hp.checkpoints.contains(&pe) {
                                    return Err(Error::config(
                                        format!("models[{gi}].init_epoch"),
                                        format!(
                                            "epoch {pe} is not a checkpoint of group `{}` ({:?})",
                                            p.group, p.hp.checkpoints
                                        ),
                                    ));
                                }
                                (Some((pi, pe)), p.root, p.depth + 1)
                            }
                        };
                        out.push(ModelPlan {
                            index,
                            id: format!("{}-{k:04}", g.name),
                            group: g.name.clone(),
                            group_index: gi,
                            parent: parent_link,
                            root,
                            depth,
                            hp,
                        });
                        k += 1;
                    }
                }
            }
        }
        Ok(out)
    }
}

fn resolve(
    mut vals: BTreeMap<String, (Value, String)>,
    index: usize,
    gpath: &str,
) -> Result<HyperParams> {
    for (k, v) in defaults() {
        vals.entry(k.clone()).or_insert((v, format!("{gpath}.{k}")));
    }
    let get = |k: &str| vals.get(k).expect("defaulted");
    let err = |k: &str, msg: &str| Error::config(&get(k).1, msg);
    let s = |k: &str| -> Result<String> {
        get(k)
            .0
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| err(k, "expected a string"))
    };
    let f = |k: &str| -> Result<f64> {
        let v = num(&get(k).0).ok_or_else(|| err(k, "expected a number"))?;
        if !v.is_finite() {
            return Err(err(k, "expected a finite number"));
        }
        Ok(v)
    };
    let u = |k: &str| -> Result<usize> {
        match get(k).0 {
            Value::Integer(i) if i >= 0 => Ok(i as usize),
            _ => Err(err(k, "expected a non-negative integer")),
        }
    };
    let b = |k: &str| -> Result<bool> {
        get(k)
            .0
            .as_bool()
            .ok_or_else(|| err(k, "expected true or false"))
    };
    let list = |k: &str| -> Result<Vec<usize>> {
        let a = get(k)
            .0
            .as_array()
            .ok_or_else(|| err(k, "expected a list of integers"))?;
        a.iter()
            .map(|v| match v {
                Value::Integer(i) if *i >= 0 => Ok(*i as usize),
                _ => Err(err(k, "expected a list of non-negative integers")),
            })
            .collect()
    };
    let dataset = s("dataset")?;
    const DATASETS: [&str; 8] = [
        "digits",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "blobs",
        "moons",
        "regression1d",
        "regression2d",
    ];
    if !DATASETS.contains(&dataset.as_str()) {
        return Err(err(
            "dataset",
            &format!(
                "unknown dataset `{dataset}`; use one of {}",
                DATASETS.join(", ")
            ),
        ));
    }
    let data_path = match vals.get("data_path") {
        Some(_) => Some(s("data_path")?),
        None => None,
    };
    if matches!(dataset.as_str(), "mnist" | "fashion-mnist" | "cifar10") && data_path.is_none() {
        return Err(Error::config(
            format!("{gpath}.data_path"),
            format!("dataset `{dataset}` is read from files: set data_path to their folder"),
        ));
    }
    let classes = match vals.get("classes") {
        Some(_) => {
            let c = list("classes")?;
            let mut d = c.clone();
            d.sort_unstable();
            d.dedup();
            if c.len() < 2 || d.len() != c.len() {
                return Err(err("classes", "expected at least two distinct classes"));
            }
            Some(c)
        }
        None => None,
    };
    let label_permutation = match &get("label_permutation").0 {
        Value::Boolean(false) => None,
        Value::Integer(i) if *i >= 0 => Some(*i as u64),
        _ => {
            return Err(err(
                "label_permutation",
                "expected false or a seed (non-negative integer)",
            ));
        }
    };
    let label_noise = f("label_noise")?;
    if !(0.0..=1.0).contains(&label_noise) {
        return Err(err("label_noise", "expected a fraction in [0, 1]"));
    }
    let train_fraction = f("train_fraction")?;
    if !(train_fraction > 0.0 && train_fraction <= 1.0) {
        return Err(err("train_fraction", "expected a fraction in (0, 1]"));
    }
    let arch = s("arch")?;
    if arch != "mlp" && arch != "cnn" {
        return Err(err("arch", "expected `mlp` or `cnn`"));
    }
    let hidden = list("hidden")?;
    if hidden.contains(&0) {
        return Err(err("hidden", "widths must be positive"));
    }
    let channels = list("channels")?;
    if channels.is_empty() || channels.contains(&0) {
        return Err(err(
            "channels",
            "expected at least one positive channel count",
        ));
    }
    let activation = s("activation")?;
    if Activation::parse(&activation).is_none() {
        return Err(err(
            "activation",
            "expected relu, tanh, gelu, sigmoid or leaky-relu",
        ));
    }
    let dropout = f("dropout")?;
    if !(0.0..1.0).contains(&dropout) {
        return Err(err("dropout", "expected a probability in [0, 1)"));
    }
    let init = s("init")?;
    if Init::parse(&init).is_none() {
        return Err(err("init", "expected uniform, normal, xavier or he"));
    }
    let optimizer = s("optimizer")?;
    if OptimizerKind::parse(&optimizer).is_none() {
        return Err(err("optimizer", "expected sgd, momentum or adam"));
    }
    let lr = f("lr")?;
    if lr <= 0.0 {
        return Err(err("lr", "expected a positive learning rate"));
    }
    let batch_size = u("batch_size")?;
    if batch_size == 0 {
        return Err(err("batch_size", "expected a positive batch size"));
    }
    let weight_decay = f("weight_decay")?;
    if weight_decay < 0.0 {
        return Err(err("weight_decay", "expected a non-negative number"));
    }
    let epochs = u("epochs")?;
    let seed = match vals.get("seed") {
        Some(_) => u("seed")? as u64,
        None => index as u64,
    };
    let mut checkpoints = match vals.get("checkpoints") {
        Some(_) => list("checkpoints")?,
        None => vec![0, epochs],
    };
    checkpoints.sort_unstable();
    checkpoints.dedup();
    if checkpoints.is_empty() {
        return Err(Error::config(
            format!("{gpath}.checkpoints"),
            "expected at least one epoch",
        ));
    }
    if let Some(&last) = checkpoints.last()
        && last > epochs
    {
        return Err(Error::config(
            &get("checkpoints").1,
            format!("checkpoint epoch {last} is after the last epoch ({epochs})"),
        ));
    }
    let kernel = u("kernel")?;
    let stride = u("stride")?;
    if arch == "cnn" && (kernel == 0 || stride == 0) {
        return Err(err(
            if kernel == 0 { "kernel" } else { "stride" },
            "expected a positive integer",
        ));
    }
    let blob_classes = u("blob_classes")?;
    let blob_dim = u("blob_dim")?;
    if dataset == "blobs" && (blob_classes < 2 || blob_dim == 0) {
        return Err(err(
            "blob_classes",
            "blobs need ≥ 2 classes and dimension ≥ 1",
        ));
    }
    let n_train = u("n_train")?;
    let n_test = u("n_test")?;
    if n_train == 0 {
        return Err(err("n_train", "expected a positive number of samples"));
    }
    Ok(HyperParams {
        dataset,
        data_path,
        n_train,
        n_test,
        noise: f("noise")?,
        data_seed: u("data_seed")? as u64,
        blob_classes,
        blob_dim,
        classes,
        label_permutation,
        label_noise,
        train_fraction,
        augment: b("augment")?,
        arch,
        hidden,
        channels,
        kernel,
        stride,
        padding: u("padding")?,
        batchnorm: b("batchnorm")?,
        activation,
        dropout,
        init,
        init_scale: f("init_scale")?,
        optimizer,
        lr,
        batch_size,
        weight_decay,
        epochs,
        seed,
        checkpoints,
    })
}

/// The seed of a model's stream for `purpose` (`init`, `data`, `train`).
pub(crate) fn model_seed(zoo_seed: u64, model_seed: u64, purpose: &str) -> u64 {
    derive_seed(zoo_seed, &["model", &model_seed.to_string(), purpose])
}
