//! Planning: find every model, work out the layer structure from tensor names, list the output
//! tensors with their inputs and resolved parameters, and validate all of it before any tensor
//! data is read.
//!
//! Layer structure: a tensor belongs to a layer when its name has a numeric component
//! (`model.layers.7.mlp.up_proj.weight`); the prefix with the most distinct indices is the layer
//! stack. Other tensors are "pre" weights when their name looks like an embedding (`embed`,
//! `wte`, `wpe`, `word_embeddings`, `tok_embeddings`) and "post" weights otherwise (final norm,
//! `lm_head`), as mergekit's architecture files classify them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use weightspace_io::{Checkpoint, DType, OpenOptions, TensorInfo};

use crate::config::{
    InputSlice, MergeConfig, ModelRef, OutputSlice, Params, Scalar, TokenizerSource,
};
use crate::error::{Error, Result};
use crate::methods::{GlobalParams, Method, ModelParams, check_value};

/// Where to look for Hugging Face cache folders, in order.
pub fn hf_cache_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(p) = std::env::var("HF_HUB_CACHE") {
        v.push(PathBuf::from(p));
    }
    if let Ok(p) = std::env::var("HUGGINGFACE_HUB_CACHE") {
        v.push(PathBuf::from(p));
    }
    if let Ok(p) = std::env::var("HF_HOME") {
        v.push(PathBuf::from(p).join("hub"));
    }
    if let Ok(p) = std::env::var("XDG_CACHE_HOME") {
        v.push(PathBuf::from(p).join("huggingface").join("hub"));
    }
    if let Ok(p) = std::env::var("HOME") {
        v.push(
            PathBuf::from(p)
                .join(".cache")
                .join("huggingface")
                .join("hub"),
        );
    }
    v
}

/// Finds a model: an existing local path (file, directory or index), or a Hugging Face id
/// (`org/name`, optionally `@revision`) in the local cache. Never downloads.
pub fn locate_model(name: &str, cache_dirs: &[PathBuf]) -> std::result::Result<PathBuf, String> {
    let p = Path::new(name);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    if name.contains('+') {
        return Err("LoRA references (`model+lora`) are not supported".into());
    }
    let (id, rev) = match name.split_once('@') {
        Some((a, b)) => (a, Some(b)),
        None => (name, None),
    };
    let parts: Vec<&str> = id.split('/').collect();
    let looks_like_id = parts.len() == 2
        && parts.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && *s != ".."
        });
    if !looks_like_id {
        return Err("no such file or directory".into());
    }
    let folder = format!("models--{}--{}", parts[0], parts[1]);
    for dir in cache_dirs {
        let repo = dir.join(&folder);
        let snaps = repo.join("snapshots");
        if !snaps.is_dir() {
            continue;
        }
        let wanted = rev.unwrap_or("main");
        let commit = std::fs::read_to_string(repo.join("refs").join(wanted))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| wanted.to_string());
        let snap = snaps.join(&commit);
        if snap.is_dir() {
            return Ok(snap);
        }
        if rev.is_none() {
            // No refs/main: the most recently modified snapshot.
            let mut all: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snaps)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| {
                    (
                        e.metadata()
                            .and_then(|m| m.modified())
                            .unwrap_or(std::time::UNIX_EPOCH),
                        e.path(),
                    )
                })
                .collect();
            all.sort();
            if let Some((_, p)) = all.pop() {
                return Ok(p);
            }
        }
    }
    Err(format!(
        "not a local path, and not in the Hugging Face cache (looked for {folder}{} in {}); weightspace never downloads: fetch it first (e.g. `huggingface-cli download {id}`) or give a path",
        rev.map(|r| format!(" at revision {r}")).unwrap_or_default(),
        cache_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A model of the merge, opened.
#[derive(Debug)]
pub struct Model {
    /// As written in the config.
    pub name: String,
    /// Where it was found.
    pub path: PathBuf,
    /// Its tensors (headers only).
    pub ck: Checkpoint,
    /// Its layer structure.
    pub layout: Layout,
}

/// The layer structure of a checkpoint, from its tensor names.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Prefix of the layer stack (`model.layers`), if any.
    pub prefix: Option<String>,
    /// Number of layers (highest index + 1).
    pub n_layers: usize,
    /// Per layer index: tensor name suffixes in file order.
    pub layers: Vec<Vec<String>>,
    /// Non-layer tensors before the stack (embeddings).
    pub pre: Vec<String>,
    /// Non-layer tensors after the stack.
    pub post: Vec<String>,
}

/// Splits `a.b.7.c.d` at its first numeric component.
fn split_layer(name: &str) -> Option<(&str, usize, &str)> {
    let mut pos = 0;
    for part in name.split('.') {
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) && pos > 0 {
            let idx: usize = part.parse().ok()?;
            let prefix = &name[..pos - 1];
            let rest = &name[pos + part.len()..];
            let rest = rest.strip_prefix('.').unwrap_or(rest);
            return Some((prefix, idx, rest));
        }
        pos += part.len() + 1;
    }
    None
}

/// True for names that look like token embeddings or output heads: their rows may differ
/// between models (vocabulary sizes) and are cropped to the common rows.
pub fn is_embed(name: &str) -> bool {
    [
        "embed_tokens",
        "lm_head",
        "wte",
        "word_embeddings",
        "embed_in",
        "embed_out",
        "tok_embeddings",
    ]
    .iter()
    .any(|k| name.contains(k))
        || name == "output.weight"
}

fn is_pre(name: &str) -> bool {
    ["embed", "wte", "wpe", "tok_embeddings"]
        .iter()
        .any(|k| name.contains(k))
}

impl Layout {
    /// Works out the layer structure of a set of tensor names (in file order).
    pub fn of<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Layout {
        let mut counts: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
        let mut first_seen: Vec<&str> = Vec::new();
        for n in names.clone() {
            if let Some((p, i, _)) = split_layer(n) {
                if !counts.contains_key(p) {
                    first_seen.push(p);
                }
                counts.entry(p).or_default().insert(i);
            }
        }
        let prefix = first_seen.iter().copied().max_by_key(|p| {
            (
                counts[p].len(),
                std::cmp::Reverse(first_seen.iter().position(|q| q == p)),
            )
        });
        let mut l = Layout {
            prefix: prefix.map(str::to_string),
            ..Layout::default()
        };
        if let Some(p) = prefix {
            l.n_layers = counts[p].iter().max().map_or(0, |m| m + 1);
            l.layers = vec![Vec::new(); l.n_layers];
        }
        for n in names {
            match (split_layer(n), prefix) {
                (Some((p, i, rest)), Some(q)) if p == q => l.layers[i].push(rest.to_string()),
                _ if is_pre(n) => l.pre.push(n.to_string()),
                _ => l.post.push(n.to_string()),
            }
        }
        l
    }

    /// Full name of tensor `suffix` in layer `i`.
    pub fn layer_name(&self, i: usize, suffix: &str) -> String {
        let p = self.prefix.as_deref().unwrap_or("");
        if suffix.is_empty() {
            format!("{p}.{i}")
        } else {
            format!("{p}.{i}.{suffix}")
        }
    }
}

/// One output tensor: where its inputs come from and the parameters to merge them with.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    /// Name, output dtype and (cropped) shape.
    pub out: TensorInfo,
    /// Per input: (index into [`Plan::models`], tensor name in that model).
    pub inputs: Vec<(usize, String)>,
    /// Crop all inputs to these leading rows/columns (embeddings of different vocabularies).
    pub crop: Option<(usize, usize)>,
    /// Which input is the base model.
    pub base: Option<usize>,
    /// Method-wide parameters for this tensor.
    pub global: GlobalParams,
    /// Per-input parameters.
    pub params: Vec<ModelParams>,
    /// Copy this input's bytes unchanged (non-float tensors; passthrough without scale).
    pub copy: Option<usize>,
    /// Layer position `t` used for gradients.
    pub t: f64,
}

/// A validated merge: every model open, every output tensor planned.
#[derive(Debug)]
pub struct Plan {
    /// The config.
    pub config: MergeConfig,
    /// The method.
    pub method: Method,
    /// Every model, once.
    pub models: Vec<Model>,
    /// Output tensors in output order.
    pub tensors: Vec<TensorPlan>,
    /// Number of layers in the output.
    pub n_layers: usize,
    /// Model whose `config.json` is copied (the base model, else the first source).
    pub config_source: usize,
    /// Model whose tokenizer files are copied.
    pub tokenizer_source: Option<usize>,
    /// Warnings for the user (ignored keys, cropped embeddings, ...).
    pub warnings: Vec<String>,
    /// Planned with `--topk-scope global` (then [`crate::execute()`] computes global
    /// thresholds whatever its own option says).
    pub topk_global: bool,
}

/// Options that change planning.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Overrides the output dtype (`--dtype`).
    pub dtype: Option<DType>,
    /// Top-k over the whole model instead of per tensor (`--topk-scope global`).
    pub topk_global: bool,
    /// Where to look for Hugging Face ids (defaults to [`hf_cache_dirs`]).
    pub cache_dirs: Option<Vec<PathBuf>>,
    /// Read the model named (as in the config) by a key from this path instead: align-then-merge
    /// merges aligned copies of the models while errors and the plan keep the config's names.
    pub sources: BTreeMap<String, PathBuf>,
    /// How every model is opened (`--strip-prefix`, `--rename`, `--key`, ... applied to all
    /// inputs alike), except those read from [`PlanOptions::sources`], which are weightspace's
    /// own outputs already under the view's names.
    pub open: OpenOptions,
}

struct Planner {
    sources: BTreeMap<String, PathBuf>,
    open: OpenOptions,
    models: Vec<Model>,
    by_name: HashMap<String, usize>,
    cache: Vec<PathBuf>,
    warnings: Vec<String>,
}

impl Planner {
    fn model(&mut self, r: &ModelRef) -> Result<usize> {
        if let Some(&i) = self.by_name.get(&r.name) {
            return Ok(i);
        }
        let err = |msg: String| Error::Model {
            key: r.key.clone(),
            model: r.name.clone(),
            msg,
        };
        let (path, opts) = match self.sources.get(&r.name) {
            Some(p) => (p.clone(), OpenOptions::default()),
            None => (
                locate_model(&r.name, &self.cache).map_err(err)?,
                self.open.clone(),
            ),
        };
        let ck = Checkpoint::open_with(&path, opts).map_err(|e| err(e.to_string()))?;
        let names: Vec<&str> = ck.names().collect();
        let layout = Layout::of(names.iter().copied());
        self.models.push(Model {
            name: r.name.clone(),
            path,
            ck,
            layout,
        });
        self.by_name.insert(r.name.clone(), self.models.len() - 1);
        Ok(self.models.len() - 1)
    }
}

/// The value of parameter `name` for a tensor, with mergekit's precedence: slice source (when
/// `source` is given) > slice > global.
fn lookup(
    cfg: &MergeConfig,
    slice: &OutputSlice,
    source: Option<usize>,
    name: &str,
    tensor: &str,
    t: f64,
) -> Option<(Scalar, String)> {
    let levels: [Option<&Params>; 3] = [
        source.map(|s| &slice.sources[s].parameters),
        Some(&slice.parameters),
        Some(&cfg.parameters),
    ];
    for p in levels.into_iter().flatten() {
        if let Some((setting, key)) = p.get(name)
            && let Some(v) = setting.evaluate(tensor, t, key)
        {
            return Some(v);
        }
    }
    None
}

/// Plans a merge: opens every model and validates the whole config against them. Reads
/// headers only.
pub fn plan(cfg: MergeConfig, opts: &PlanOptions) -> Result<Plan> {
    let method = cfg.merge_method;
    let mut p = Planner {
        sources: opts.sources.clone(),
        open: opts.open.clone(),
        models: Vec::new(),
        by_name: HashMap::new(),
        cache: opts.cache_dirs.clone().unwrap_or_else(hf_cache_dirs),
        warnings: cfg.warnings.clone(),
    };
    // Open every model first, so that a missing one is reported before anything else.
    if let Some(b) = &cfg.base_model {
        p.model(b)?;
    }
    for m in &cfg.models {
        p.model(&m.model)?;
    }
    for s in &cfg.slices {
        if let Some(b) = &s.base_model {
            p.model(b)?;
        }
        for src in &s.sources {
            p.model(&src.model)?;
        }
    }
    // `models:` becomes one slice over every layer, with the base added when missing.
    let slices: Vec<OutputSlice> = if cfg.slices.is_empty() {
        let mut sources: Vec<InputSlice> = Vec::new();
        let mut refs: Vec<(ModelRef, Params)> = cfg
            .models
            .iter()
            .map(|m| (m.model.clone(), m.parameters.clone()))
            .collect();
        if let Some(b) = &cfg.base_model
            && !refs.iter().any(|(r, _)| r.name == b.name)
        {
            refs.push((b.clone(), Params::default()));
        }
        let first = p.by_name[&refs[0].0.name];
        let n0 = p.models[first].layout.n_layers;
        for (r, params) in refs {
            let i = p.by_name[&r.name];
            let n = p.models[i].layout.n_layers;
            if n != n0 {
                return Err(cfg.err(
                    &r.key,
                    format!(
                        "has {n} layers but `{}` has {n0}: models merged layer by layer need the same depth (use slices: for frankenmerges)",
                        p.models[first].name
                    ),
                ));
            }
            sources.push(InputSlice {
                range_key: r.key.clone(),
                model: r,
                layer_range: (0, n),
                parameters: params,
            });
        }
        vec![OutputSlice {
            sources,
            base_model: None,
            parameters: Params::default(),
            key: "models".into(),
        }]
    } else {
        cfg.slices.clone()
    };
    // Per-slice checks: ranges, arity, base model.
    for s in &slices {
        let len0 = s.sources[0].layer_range.1 - s.sources[0].layer_range.0;
        let mut seen = BTreeSet::new();
        for src in &s.sources {
            let m = &p.models[p.by_name[&src.model.name]];
            let (a, b) = src.layer_range;
            if b > m.layout.n_layers {
                return Err(cfg.err(
                    &src.range_key,
                    format!(
                        "[{a}, {b}] goes past the last layer: `{}` has {} layers",
                        src.model.name, m.layout.n_layers
                    ),
                ));
            }
            if b - a != len0 {
                return Err(cfg.err(
                    &src.range_key,
                    format!("covers {} layers but the slice's first source covers {len0}; every source of a slice needs the same count", b - a),
                ));
            }
            if !seen.insert(src.model.name.clone()) {
                return Err(cfg.err(
                    &src.model.key,
                    "the same model appears twice in one slice (mergekit would silently merge the two into one input)",
                ));
            }
        }
        let base = s.base_model.as_ref().or(cfg.base_model.as_ref());
        let base_in = base.and_then(|b| s.sources.iter().position(|x| x.model.name == b.name));
        let n_src = s.sources.len();
        let n_other = n_src - base_in.is_some() as usize;
        let key = if cfg.slices.is_empty() {
            "models".to_string()
        } else {
            format!("{}.sources", s.key)
        };
        if method.needs_base() {
            match (base, base_in) {
                (None, _) => {
                    return Err(cfg.err("base_model", format!("`{method}` needs a base_model")));
                }
                (Some(b), None) => {
                    return Err(cfg.err(
                        &b.key,
                        format!("the base model is not among the sources of `{}`", s.key),
                    ));
                }
                _ => {}
            }
        }
        let arity = match method {
            Method::Passthrough if n_src != 1 => {
                Some("takes exactly one model per slice".to_string())
            }
            Method::Slerp if n_src != 2 => Some(format!(
                "needs exactly 2 models (the base and one other), got {n_src}"
            )),
            Method::Nearswap if n_src != 2 => Some(format!(
                "needs exactly 2 models (the base and one other), got {n_src}"
            )),
            Method::Nuslerp if n_other != 2 => Some(format!(
                "needs exactly 2 models besides an optional base model, got {n_other}"
            )),
            Method::ModelStock if n_other < 2 => Some(format!(
                "needs a base model and at least 2 others, got {n_other}"
            )),
            Method::Multislerp if n_other < 1 => {
                Some("needs at least one model besides the base".to_string())
            }
            _ => None,
        };
        if let Some(msg) = arity {
            return Err(cfg.err(&key, format!("`{method}` {msg}")));
        }
    }
    if opts.topk_global && method != Method::Ties {
        return Err(Error::Usage(format!(
            "--topk-scope global applies to magnitude top-k (ties), not to `{method}`"
        )));
    }
    // Unused parameters.
    let known: BTreeSet<&str> = method
        .global_params()
        .iter()
        .chain(method.model_params().iter())
        .map(|d| d.name)
        .collect();
    let mut all_params: Vec<&Params> = vec![&cfg.parameters];
    for s in &slices {
        all_params.push(&s.parameters);
        all_params.extend(s.sources.iter().map(|x| &x.parameters));
    }
    for ps in all_params {
        for (name, (_, key)) in &ps.map {
            if !known.contains(name.as_str()) {
                let known: Vec<&str> = known.iter().copied().collect();
                let hint = match crate::config::did_you_mean(name, &known) {
                    Some(k) => format!(" (did you mean `{k}`?)"),
                    None => String::new(),
                };
                p.warnings.push(format!(
                    "`{key}`: `{method}` does not use `{name}`; ignored{hint}"
                ));
            }
        }
    }
    // Output tensors.
    let mut tensors = Vec::new();
    let first_src = |s: &OutputSlice| p.by_name[&s.sources[0].model.name];
    let m0 = first_src(&slices[0]);
    let pre = p.models[m0].layout.pre.clone();
    let mlast = first_src(slices.last().unwrap());
    let post = p.models[mlast].layout.post.clone();
    let mut planned = Vec::new();
    for name in &pre {
        planned.push((
            0usize,
            name.clone(),
            slices[0]
                .sources
                .iter()
                .map(|_| name.clone())
                .collect::<Vec<_>>(),
            0.0,
        ));
    }
    let mut out_layer = 0usize;
    let out_layout = p.models[m0].layout.clone();
    for (si, s) in slices.iter().enumerate() {
        let len = s.sources[0].layer_range.1 - s.sources[0].layer_range.0;
        for off in 0..len {
            let t = if len > 1 {
                off as f64 / (len - 1) as f64
            } else {
                1.0
            };
            let m_first = &p.models[first_src(s)];
            let suffixes = m_first.layout.layers[s.sources[0].layer_range.0 + off].clone();
            for suf in &suffixes {
                let inputs: Vec<String> = s
                    .sources
                    .iter()
                    .map(|src| {
                        p.models[p.by_name[&src.model.name]]
                            .layout
                            .layer_name(src.layer_range.0 + off, suf)
                    })
                    .collect();
                planned.push((si, out_layout.layer_name(out_layer, suf), inputs, t));
            }
            out_layer += 1;
        }
    }
    for name in &post {
        planned.push((
            slices.len() - 1,
            name.clone(),
            slices
                .last()
                .unwrap()
                .sources
                .iter()
                .map(|_| name.clone())
                .collect(),
            0.0,
        ));
    }
    let mut out_names = BTreeSet::new();
    for (si, out_name, inputs, t) in planned {
        let s = &slices[si];
        if !out_names.insert(out_name.clone()) {
            return Err(Error::Tensor {
                tensor: out_name,
                msg: "two slices write the same output tensor".into(),
            });
        }
        let midx: Vec<usize> = s.sources.iter().map(|x| p.by_name[&x.model.name]).collect();
        // Presence and shapes.
        let mut infos = Vec::new();
        for (k, (&mi, name)) in midx.iter().zip(&inputs).enumerate() {
            let m = &p.models[mi];
            match m.ck.info(name) {
                Some(i) => infos.push(i.clone()),
                None => {
                    return Err(Error::Tensor {
                        tensor: name.clone(),
                        msg: format!(
                            "missing from model `{}` ({}) named at `{}`",
                            m.name,
                            m.path.display(),
                            s.sources[k].model.key
                        ),
                    });
                }
            }
        }
        let shape0 = infos[0].shape.clone();
        let mut crop = None;
        let mut shape = shape0.clone();
        if infos.iter().any(|i| i.shape != shape0) {
            let all2 = infos.iter().all(|i| i.shape.len() == 2);
            if is_embed(&out_name) && all2 {
                let r = infos.iter().map(|i| i.shape[0]).min().unwrap();
                let c = infos.iter().map(|i| i.shape[1]).min().unwrap();
                crop = Some((r, c));
                shape = vec![r, c];
                p.warnings.push(format!(
                    "tensor `{out_name}`: shapes differ ({}); using the common sub-matrix [{r}, {c}] as mergekit does",
                    infos.iter().zip(&midx).map(|(i, &m)| format!("{} in `{}`", fmt_shape(&i.shape), p.models[m].name)).collect::<Vec<_>>().join(", ")
                ));
            } else {
                let k = infos.iter().position(|i| i.shape != shape0).unwrap();
                return Err(Error::Tensor {
                    tensor: out_name,
                    msg: format!(
                        "shape {} in `{}` but {} in `{}`",
                        fmt_shape(&shape0),
                        p.models[midx[0]].name,
                        fmt_shape(&infos[k].shape),
                        p.models[midx[k]].name
                    ),
                });
            }
        }
        let base_ref = s.base_model.as_ref().or(cfg.base_model.as_ref());
        let base = base_ref.and_then(|b| s.sources.iter().position(|x| x.model.name == b.name));
        // Parameters.
        let mut global = GlobalParams::default();
        for d in method.global_params() {
            match lookup(&cfg, s, None, d.name, &out_name, t) {
                Some((v, key)) => {
                    let x = check_value(d.kind, &v).map_err(|m| cfg.err(&key, m))?;
                    global.set(d.name, x);
                }
                None => match &d.default {
                    Some(v) => global.set(d.name, check_value(d.kind, v).expect("valid default")),
                    None => {
                        return Err(cfg.err(
                            "parameters",
                            format!(
                                "`{method}` needs `{}` (missing for tensor `{out_name}`)",
                                d.name
                            ),
                        ));
                    }
                },
            }
        }
        let mut params = Vec::new();
        for (k, name) in inputs.iter().enumerate() {
            let mut mp = ModelParams::default();
            let is_base = Some(k) == base;
            for d in method.model_params() {
                match lookup(&cfg, s, Some(k), d.name, name, t) {
                    Some((v, key)) => {
                        let x = check_value(d.kind, &v).map_err(|m| cfg.err(&key, m))?;
                        mp.set(d.name, x);
                        if d.name == "epsilon" || d.name == "density" {
                            check_della(method, &mp).map_err(|m| cfg.err(&key, m))?;
                        }
                    }
                    None => match &d.default {
                        Some(v) => mp.set(d.name, check_value(d.kind, v).expect("valid default")),
                        None if d.name == "scale" => {}
                        None if is_base && method != Method::Linear => {}
                        None => {
                            return Err(cfg.err(
                                &s.sources[k].model.key,
                                format!(
                                    "`{method}` needs a `{}` for this model (tensor `{name}`)",
                                    d.name
                                ),
                            ));
                        }
                    },
                }
            }
            check_della(method, &mp).map_err(|m| cfg.err(&s.sources[k].model.key, m))?;
            params.push(mp);
        }
        if method == Method::Linear && global.normalize {
            let sum: f64 = params.iter().map(|m| m.weight.unwrap_or(0.0)).sum();
            if sum.abs() < 1e-12 {
                return Err(cfg.err(
                    "parameters.normalize",
                    format!("the weights of tensor `{out_name}` sum to 0, so normalising divides by zero; set normalize: false or change the weights"),
                ));
            }
        }
        if method == Method::Multislerp && global.normalize_weights {
            let sum: f64 = params
                .iter()
                .enumerate()
                .filter(|(k, _)| Some(*k) != base)
                .map(|(_, m)| m.weight.unwrap_or(0.0))
                .sum();
            if sum.abs() < 1e-12 {
                return Err(cfg.err(
                    "parameters.normalize_weights",
                    format!("the weights of tensor `{out_name}` sum to 0"),
                ));
            }
        }
        // Output dtype; non-float tensors are copied.
        let ref_input = base.unwrap_or(0);
        let in_dtype = infos[ref_input].dtype;
        let mut copy = None;
        let dtype = if !in_dtype.is_float() {
            copy = Some(ref_input);
            in_dtype
        } else {
            let d = opts
                .dtype
                .or(cfg.out_dtype)
                .or(cfg.dtype)
                .unwrap_or(in_dtype);
            if matches!(d, DType::F32 | DType::F16 | DType::BF16 | DType::F64) {
                d
            } else {
                DType::F32
            }
        };
        if copy.is_some() && infos.len() > 1 {
            p.warnings.push(format!(
                "tensor `{out_name}` is {in_dtype}, not a float: copied from `{}` unmerged",
                p.models[midx[ref_input]].name
            ));
        }
        if method == Method::Passthrough
            && params[0].scale.is_none()
            && dtype == in_dtype
            && crop.is_none()
        {
            copy = Some(0);
        }
        tensors.push(TensorPlan {
            out: TensorInfo {
                name: out_name,
                dtype,
                shape,
            },
            inputs: midx.into_iter().zip(inputs).collect(),
            crop,
            base,
            global,
            params,
            copy,
            t,
        });
    }
    if opts.topk_global {
        // One density per model over the whole merge.
        let mut dens: HashMap<usize, f64> = HashMap::new();
        for tp in &tensors {
            for (k, (mi, name)) in tp.inputs.iter().enumerate() {
                if Some(k) == tp.base {
                    continue;
                }
                let d = tp.params[k].density;
                if let Some(prev) = dens.insert(*mi, d)
                    && prev != d
                {
                    return Err(Error::Usage(format!(
                        "--topk-scope global needs one density per model, but `{}` gets {prev} and {d} (tensor `{name}`)",
                        p.models[*mi].name
                    )));
                }
            }
        }
    }
    let config_source = cfg
        .base_model
        .as_ref()
        .map(|b| p.by_name[&b.name])
        .unwrap_or(m0);
    let tokenizer_source = match &cfg.tokenizer_source {
        None => None,
        Some(TokenizerSource::Base) => Some(match &cfg.base_model {
            Some(b) => p.by_name[&b.name],
            None => return Err(cfg.err("tokenizer_source", "`base` needs a base_model")),
        }),
        Some(TokenizerSource::Model(r)) => Some(p.model(r)?),
    };
    let warnings = std::mem::take(&mut p.warnings);
    let models = std::mem::take(&mut p.models);
    Ok(Plan {
        method,
        models,
        tensors,
        n_layers: out_layer,
        config_source,
        tokenizer_source,
        warnings,
        topk_global: opts.topk_global,
        config: cfg,
    })
}

fn fmt_shape(s: &[usize]) -> String {
    format!("{s:?}")
}

fn check_della(method: Method, mp: &ModelParams) -> std::result::Result<(), String> {
    if matches!(method, Method::Della | Method::DellaLinear)
        && mp.density < 1.0
        && (mp.density + mp.epsilon >= 1.0 || mp.density - mp.epsilon <= 0.0)
    {
        return Err(format!(
            "density {} ± epsilon {} must stay inside (0, 1)",
            mp.density, mp.epsilon
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_split() {
        assert_eq!(
            split_layer("model.layers.12.mlp.w"),
            Some(("model.layers", 12, "mlp.w"))
        );
        assert_eq!(
            split_layer("layers.0.weight"),
            Some(("layers", 0, "weight"))
        );
        assert_eq!(split_layer("lm_head.weight"), None);
        assert_eq!(split_layer("0.weight"), None);
    }

    #[test]
    fn layout_finds_the_stack() {
        let names = [
            "lm_head.weight",
            "model.embed_tokens.weight",
            "model.layers.0.a",
            "model.layers.0.b",
            "model.layers.1.a",
            "model.layers.1.b",
            "model.norm.weight",
        ];
        let l = Layout::of(names.iter().copied());
        assert_eq!(l.prefix.as_deref(), Some("model.layers"));
        assert_eq!(l.n_layers, 2);
        assert_eq!(l.pre, vec!["model.embed_tokens.weight"]);
        assert_eq!(l.post, vec!["lm_head.weight", "model.norm.weight"]);
        assert_eq!(l.layer_name(5, "a"), "model.layers.5.a");
    }

    #[test]
    fn hf_ids_are_looked_up_in_the_cache_only() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("models--org--tiny/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(dir.path().join("models--org--tiny/refs")).unwrap();
        std::fs::write(dir.path().join("models--org--tiny/refs/main"), "abc123").unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        assert_eq!(locate_model("org/tiny", &dirs).unwrap(), snap);
        assert_eq!(locate_model("org/tiny@abc123", &dirs).unwrap(), snap);
        let e = locate_model("org/other", &dirs).unwrap_err();
        assert!(e.contains("never downloads"), "{e}");
        assert!(
            locate_model("./nope/x", &dirs)
                .unwrap_err()
                .contains("no such file")
        );
    }
}
