//! mergekit's YAML merge configuration, parsed by walking the document so that every error names
//! the key it is about (`models[1].parameters.density[0].value`).
//!
//! Accepted top-level keys: `merge_method`, `base_model`, `models`, `slices`, `parameters`,
//! `dtype`, `out_dtype`, `tokenizer_source`, and weightspace's own `align` (mergekit has no such
//! key and would ignore it). Keys mergekit knows but weightspace does not act on (`name`,
//! `chat_template`, `residual_weight`) give warnings. An unknown key — at the top level, in a
//! model, a slice, a slice source, a `{filter, value}` entry, or a parameter name that no merge
//! method reads — is an error naming the key path and the closest known key (`densty` → did you
//! mean `density`?): mergekit (pydantic) ignores such typos silently and merges something else
//! than what was meant. [`ParseOptions::lenient`] turns these errors back into warnings.
//! `modules:`, `tokenizer:` (tokenizer building) and `tokenizer_source: union` are refused with
//! a clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

use crate::error::{Error, Result};
use crate::methods::Method;

/// A scalar parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A number (YAML ints and floats).
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A string (e.g. `rescale: l2`).
    Str(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Num(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// One `{filter, value}` entry of a conditional parameter list.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditional {
    /// Substring matched against the tensor name; `None` (or `*`) matches every tensor.
    pub filter: Option<String>,
    /// The value: a scalar or a gradient.
    pub value: Setting,
    /// YAML key path of this entry's `value`.
    pub key: String,
}

/// A parameter value in any of mergekit's three forms.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// One value for every tensor.
    Scalar(Scalar),
    /// A list of numbers: a gradient, linearly interpolated over the layers of a slice.
    Gradient(Vec<f64>),
    /// A list of non-numbers: stepped over the layers (`setting[int(t·(n−1))]`, as mergekit).
    Steps(Vec<Scalar>),
    /// `{filter, value}` entries: the first whose filter occurs in the tensor name wins.
    Filters(Vec<Conditional>),
}

impl Setting {
    /// The value for tensor `name` at layer position `t` ∈ [0, 1], with the key path of the
    /// entry that produced it; `None` when no filter matches. Same rules as mergekit's
    /// `evaluate_setting`.
    pub fn evaluate(&self, name: &str, t: f64, key: &str) -> Option<(Scalar, String)> {
        match self {
            Setting::Scalar(s) => Some((s.clone(), key.to_string())),
            Setting::Gradient(g) => {
                let scaled = t * (g.len() - 1) as f64;
                let i0 = scaled as usize;
                let i1 = (i0 + 1).min(g.len() - 1);
                let frac = scaled - i0 as f64;
                Some((
                    Scalar::Num((1.0 - frac) * g[i0] + frac * g[i1]),
                    key.to_string(),
                ))
            }
            Setting::Steps(s) => {
                let i = (t * (s.len() - 1) as f64) as usize;
                Some((s[i].clone(), format!("{key}[{i}]")))
            }
            Setting::Filters(conds) => conds.iter().find_map(|c| {
                let hit = match c.filter.as_deref() {
                    None | Some("*") => true,
                    Some(f) => !name.is_empty() && name.contains(f),
                };
                hit.then(|| c.value.evaluate(name, t, &c.key))?
            }),
        }
    }
}

/// A parameter set (`parameters:` at any level): name → setting and its key path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    /// Settings by parameter name, each with the key path of its value.
    pub map: BTreeMap<String, (Setting, String)>,
}

impl Params {
    /// The setting for `name`, if given here.
    pub fn get(&self, name: &str) -> Option<&(Setting, String)> {
        self.map.get(name)
    }
}

/// A model as named in the config, with the key that named it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRef {
    /// The text: a local path or a Hugging Face id.
    pub name: String,
    /// Key path, e.g. `models[0].model`.
    pub key: String,
}

/// One entry of `models:`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputModel {
    /// The model.
    pub model: ModelRef,
    /// Its parameters.
    pub parameters: Params,
}

/// One entry of a slice's `sources:`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSlice {
    /// The model.
    pub model: ModelRef,
    /// Layers `[start, end)` taken from it.
    pub layer_range: (usize, usize),
    /// Key path of `layer_range`.
    pub range_key: String,
    /// Its parameters.
    pub parameters: Params,
}

/// One entry of `slices:`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSlice {
    /// The inputs merged into these layers.
    pub sources: Vec<InputSlice>,
    /// A base model for this slice only.
    pub base_model: Option<ModelRef>,
    /// Parameters for this slice.
    pub parameters: Params,
    /// Key path of the slice, e.g. `slices[2]`.
    pub key: String,
}

/// Where the output's tokenizer files come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenizerSource {
    /// The base model.
    Base,
    /// A named model.
    Model(ModelRef),
}

/// `align:` — a weightspace extension (mergekit has no such key): align every model to the base
/// model (or to the first model when there is none) before merging, for models trained from
/// different initialisations. The merge crate only records the request; the aligning is done
/// by `weightspace-symmetry` before planning, and the merge reads the aligned copies
/// ([`crate::PlanOptions::sources`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Git Re-Basin weight matching (permutations only; the functions do not change).
    Weight,
}

impl Align {
    /// Parses `weight` (and `none` as "no alignment").
    pub fn parse(s: &str) -> Option<Option<Align>> {
        match s {
            "weight" | "weights" | "weight_matching" => Some(Some(Align::Weight)),
            "none" => Some(None),
            _ => None,
        }
    }
}

/// A parsed merge configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeConfig {
    /// The file it was read from (for error messages).
    pub file: PathBuf,
    /// The merge method.
    pub merge_method: Method,
    /// The base model, when given.
    pub base_model: Option<ModelRef>,
    /// `models:` entries (empty when `slices:` is used).
    pub models: Vec<InputModel>,
    /// `slices:` entries (empty when `models:` is used).
    pub slices: Vec<OutputSlice>,
    /// Global parameters.
    pub parameters: Params,
    /// `dtype`: the dtype results are written in unless `out_dtype` is given.
    pub dtype: Option<weightspace_io::DType>,
    /// `out_dtype`: the output dtype.
    pub out_dtype: Option<weightspace_io::DType>,
    /// `tokenizer_source`.
    pub tokenizer_source: Option<TokenizerSource>,
    /// `align` (weightspace extension): align the models to the base before merging.
    pub align: Option<Align>,
    /// Things accepted but not acted on, for the user to see.
    pub warnings: Vec<String>,
    /// The YAML text as read, verbatim (for the model card and `mergekit_config.yml`).
    pub text: String,
}

/// Parses mergekit's dtype names (`float32`, `bfloat16`, `float16`, `fp16`, `half`,
/// `torch.bfloat16`, ...): the one spelling rule of [`weightspace_io::DType::parse_float`].
pub fn parse_dtype(s: &str) -> Option<weightspace_io::DType> {
    weightspace_io::DType::parse_float(s)
}

/// How strictly [`MergeConfig::parse_with`] treats keys it does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Unknown keys are warnings (the key is ignored) instead of errors.
    pub lenient: bool,
}

/// Top-level keys.
pub const TOP_KEYS: [&str; 13] = [
    "merge_method",
    "base_model",
    "models",
    "slices",
    "parameters",
    "dtype",
    "out_dtype",
    "tokenizer_source",
    "tokenizer",
    "chat_template",
    "modules",
    "name",
    "align",
];
const MODEL_KEYS: [&str; 2] = ["model", "parameters"];
const SLICE_KEYS: [&str; 4] = ["sources", "base_model", "parameters", "residual_weight"];
const SOURCE_KEYS: [&str; 3] = ["model", "layer_range", "parameters"];
const FILTER_KEYS: [&str; 2] = ["filter", "value"];

/// Optimal-string-alignment edit distance (insertions, deletions, substitutions and swaps of
/// two neighbouring characters each cost 1), so `dtpye` is 1 from `dtype`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The known key closest to `key` by [`edit_distance`], when it is close enough to be a typo
/// (at most 3 edits, and fewer edits than `key` has characters); the earlier key wins ties.
pub fn did_you_mean<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|(d, _)| *d <= 3 && *d < key.chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Every parameter name some merge method reads, the given method's own first.
fn param_names(method: Option<Method>) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    let own = method.into_iter();
    for m in own.chain(Method::ALL) {
        for d in m.global_params().into_iter().chain(m.model_params()) {
            if !v.contains(&d.name) {
                v.push(d.name);
            }
        }
    }
    v
}

struct Walker<'a> {
    file: &'a Path,
    warnings: std::cell::RefCell<Vec<String>>,
    lenient: bool,
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

impl Walker<'_> {
    /// An unknown key `name` at `path`: an error with the closest of `known`, or (lenient) a
    /// warning.
    fn unknown(&self, path: &str, name: &str, what: &str, known: &[&str]) -> Result<()> {
        let hint = match did_you_mean(name, known) {
            Some(k) => format!("did you mean `{k}`?"),
            None => format!("known keys here: {}", known.join(", ")),
        };
        if self.lenient {
            self.warn(format!("`{path}`: unknown {what}, ignored ({hint})"));
            Ok(())
        } else {
            Err(self.err(
                path,
                format!(
                    "unknown {what} `{name}`; {hint} (--lenient ignores unknown keys with a warning)"
                ),
            ))
        }
    }

    fn warn(&self, msg: String) {
        self.warnings.borrow_mut().push(msg);
    }

    fn err(&self, key: &str, msg: impl Into<String>) -> Error {
        Error::Config {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            msg: msg.into(),
        }
    }

    /// The entries of a mapping with string keys, in document order.
    fn mapping<'v>(&self, v: &'v Value, key: &str) -> Result<Vec<(String, &'v Value)>> {
        let Value::Mapping(m) = v else {
            return Err(self.err(key, format!("expected a mapping, found {}", kind(v))));
        };
        m.iter()
            .map(|(k, v)| match k {
                Value::String(s) => Ok((s.clone(), v)),
                other => Err(self.err(key, format!("keys must be strings, found {}", kind(other)))),
            })
            .collect()
    }

    fn string(&self, v: &Value, key: &str) -> Result<String> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
            Value::String(_) => Err(self.err(key, "is empty")),
            other => Err(self.err(key, format!("expected a string, found {}", kind(other)))),
        }
    }

    fn scalar(&self, v: &Value, key: &str) -> Result<Scalar> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .map(Scalar::Num)
                .ok_or_else(|| self.err(key, "number out of range")),
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            Value::String(s) => Ok(Scalar::Str(s.clone())),
            other => Err(self.err(
                key,
                format!(
                    "expected a number, boolean or string, found {}",
                    kind(other)
                ),
            )),
        }
    }

    fn model(&self, v: &Value, key: &str) -> Result<ModelRef> {
        match v {
            Value::String(_) => Ok(ModelRef {
                name: self.string(v, key)?,
                key: key.to_string(),
            }),
            Value::Mapping(_) => Err(self.err(
                key,
                "model references given as mappings (LoRA, revision overrides) are not supported; use a path or a Hugging Face id",
            )),
            other => Err(self.err(key, format!("expected a model path or id, found {}", kind(other)))),
        }
    }

    fn setting(&self, v: &Value, key: &str, allow_filters: bool) -> Result<Setting> {
        match v {
            Value::Sequence(items) => {
                if items.is_empty() {
                    return Err(self.err(key, "is an empty list"));
                }
                if items.iter().all(|x| matches!(x, Value::Number(_))) {
                    let g = items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| match self.scalar(x, &format!("{key}[{i}]"))? {
                            Scalar::Num(n) => Ok(n),
                            _ => unreachable!("checked numeric"),
                        })
                        .collect::<Result<Vec<f64>>>()?;
                    return Ok(Setting::Gradient(g));
                }
                if items
                    .iter()
                    .all(|x| matches!(x, Value::Number(_) | Value::Bool(_) | Value::String(_)))
                {
                    let s = items
                        .iter()
                        .enumerate()
                        .map(|(i, x)| self.scalar(x, &format!("{key}[{i}]")))
                        .collect::<Result<Vec<_>>>()?;
                    return Ok(Setting::Steps(s));
                }
                if !allow_filters {
                    return Err(self.err(
                        key,
                        "a filter's value must be a scalar or a list of numbers",
                    ));
                }
                if let Some(i) = items.iter().position(|x| !matches!(x, Value::Mapping(_))) {
                    return Err(self.err(
                        key,
                        format!(
                            "mixes {{filter, value}} entries with {} (item {i}); use only numbers (a gradient) or only {{filter, value}} entries",
                            kind(&items[i])
                        ),
                    ));
                }
                let mut conds = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    conds.push(self.conditional(item, &format!("{key}[{i}]"))?);
                }
                Ok(Setting::Filters(conds))
            }
            Value::Mapping(_) if allow_filters => {
                Ok(Setting::Filters(vec![self.conditional(v, key)?]))
            }
            Value::Mapping(_) => Err(self.err(
                key,
                "a filter's value must be a scalar or a list of numbers",
            )),
            other => Ok(Setting::Scalar(self.scalar(other, key)?)),
        }
    }

    fn conditional(&self, v: &Value, key: &str) -> Result<Conditional> {
        let Value::Mapping(_) = v else {
            return Err(self.err(
                key,
                format!(
                    "a parameter list mixes {} with other values; use numbers (a gradient) or {{filter, value}} entries",
                    kind(v)
                ),
            ));
        };
        let mut filter = None;
        let mut value = None;
        for (k, x) in self.mapping(v, key)? {
            let kk = format!("{key}.{k}");
            match k.as_str() {
                "filter" => {
                    filter = match x {
                        Value::Null => None,
                        _ => Some(self.string(x, &kk)?),
                    }
                }
                "value" => value = Some(self.setting(x, &kk, false)?),
                _ => self.unknown(&kk, &k, "key in a {filter, value} entry", &FILTER_KEYS)?,
            }
        }
        let value = value.ok_or_else(|| self.err(key, "a {filter, value} entry needs `value`"))?;
        Ok(Conditional {
            filter,
            value,
            key: format!("{key}.value"),
        })
    }

    fn params(&self, v: &Value, key: &str) -> Result<Params> {
        if matches!(v, Value::Null) {
            return Ok(Params::default());
        }
        let mut p = Params::default();
        for (k, x) in self.mapping(v, key)? {
            let kk = format!("{key}.{k}");
            if matches!(x, Value::Null) {
                continue;
            }
            let s = self.setting(x, &kk, true)?;
            p.map.insert(k, (s, kk));
        }
        Ok(p)
    }

    fn layer_range(&self, v: &Value, key: &str) -> Result<(usize, usize)> {
        let Value::Sequence(items) = v else {
            return Err(self.err(key, format!("expected [start, end], found {}", kind(v))));
        };
        let nums: Vec<u64> = items.iter().filter_map(|x| x.as_u64()).collect();
        if items.len() != 2 || nums.len() != 2 {
            return Err(self.err(key, "expected two non-negative integers [start, end]"));
        }
        if nums[0] > nums[1] {
            return Err(self.err(key, format!("start {} is after end {}", nums[0], nums[1])));
        }
        Ok((nums[0] as usize, nums[1] as usize))
    }
}

impl MergeConfig {
    /// Reads and parses a config file strictly (unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<MergeConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::fs(path, e))?;
        MergeConfig::parse(&text, path)
    }

    /// Reads and parses a config file with options (`lenient`).
    pub fn from_file_with(path: &Path, opts: ParseOptions) -> Result<MergeConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::fs(path, e))?;
        MergeConfig::parse_with(&text, path, opts)
    }

    /// Parses config text strictly (unknown keys are errors); `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<MergeConfig> {
        MergeConfig::parse_with(text, file, ParseOptions::default())
    }

    /// Parses config text; `file` is used in error messages.
    pub fn parse_with(text: &str, file: &Path, opts: ParseOptions) -> Result<MergeConfig> {
        let doc: Value = serde_norway::from_str(text).map_err(|e| Error::Yaml {
            file: file.to_path_buf(),
            msg: e.to_string(),
        })?;
        let w = Walker {
            file,
            warnings: Default::default(),
            lenient: opts.lenient,
        };
        if matches!(doc, Value::Null) {
            return Err(w.err("(document)", "the config is empty"));
        }
        let mut method = None;
        let mut cfg = MergeConfig {
            file: file.to_path_buf(),
            merge_method: Method::Linear,
            base_model: None,
            models: Vec::new(),
            slices: Vec::new(),
            parameters: Params::default(),
            dtype: None,
            out_dtype: None,
            tokenizer_source: None,
            align: None,
            warnings: Vec::new(),
            text: text.to_string(),
        };
        let mut has_models = false;
        let mut has_slices = false;
        for (k, v) in w.mapping(&doc, "(document)")? {
            let key = k.as_str();
            match key {
                "merge_method" => {
                    let s = w.string(v, key)?;
                    method = Some(Method::from_name(&s).ok_or_else(|| {
                        w.err(
                            key,
                            format!(
                                "unknown method `{s}`; known: {}",
                                Method::ALL
                                    .iter()
                                    .map(|m| m.name())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })?);
                }
                "base_model" => {
                    if !matches!(v, Value::Null) {
                        cfg.base_model = Some(w.model(v, key)?)
                    }
                }
                "parameters" => cfg.parameters = w.params(v, key)?,
                "dtype" | "out_dtype" => {
                    if matches!(v, Value::Null) {
                        continue;
                    }
                    let s = w.string(v, key)?;
                    let d = parse_dtype(&s).ok_or_else(|| {
                        w.err(
                            key,
                            format!(
                                "unknown dtype `{s}`; use float32, float16, bfloat16 or float64"
                            ),
                        )
                    })?;
                    if key == "dtype" {
                        cfg.dtype = Some(d)
                    } else {
                        cfg.out_dtype = Some(d)
                    }
                }
                "tokenizer_source" => {
                    cfg.tokenizer_source = match v {
                        Value::Null => None,
                        Value::String(s) if s == "base" => Some(TokenizerSource::Base),
                        Value::String(s) if s == "union" => {
                            return Err(w.err(
                                key,
                                "`union` (a merged vocabulary, with every model's embedding rows remapped to it) is not supported; use `base` or a model path to copy that model's tokenizer, and merge models that share a vocabulary",
                            ));
                        }
                        _ => Some(TokenizerSource::Model(w.model(v, key)?)),
                    }
                }
                "align" => {
                    cfg.align = match v {
                        Value::Null => None,
                        _ => {
                            let s = w.string(v, key)?;
                            Align::parse(&s).ok_or_else(|| {
                                w.err(
                                    key,
                                    format!("unknown alignment `{s}`; use `weight` (weight matching) or `none`"),
                                )
                            })?
                        }
                    }
                }
                "tokenizer" => {
                    return Err(w.err(
                        key,
                        "tokenizer building (`tokenizer:` with added tokens) is not supported; use `tokenizer_source: <model>` to copy a tokenizer",
                    ));
                }
                "modules" => {
                    return Err(w.err(key, "`modules:` (multi-module architectures) is not supported; use `models:` or `slices:`"));
                }
                "models" => {
                    has_models = true;
                    let Value::Sequence(items) = v else {
                        return Err(w.err(key, format!("expected a list, found {}", kind(v))));
                    };
                    for (i, item) in items.iter().enumerate() {
                        let ik = format!("models[{i}]");
                        let mut model = None;
                        let mut params = Params::default();
                        for (mk, mv) in w.mapping(item, &ik)? {
                            let kk = format!("{ik}.{mk}");
                            match mk.as_str() {
                                "model" => model = Some(w.model(mv, &kk)?),
                                "parameters" => params = w.params(mv, &kk)?,
                                _ => w.unknown(&kk, &mk, "key in a model entry", &MODEL_KEYS)?,
                            }
                        }
                        let model = model.ok_or_else(|| w.err(&ik, "needs `model`"))?;
                        cfg.models.push(InputModel {
                            model,
                            parameters: params,
                        });
                    }
                }
                "slices" => {
                    has_slices = true;
                    let Value::Sequence(items) = v else {
                        return Err(w.err(key, format!("expected a list, found {}", kind(v))));
                    };
                    for (i, item) in items.iter().enumerate() {
                        let sk = format!("slices[{i}]");
                        let mut out = OutputSlice {
                            sources: Vec::new(),
                            base_model: None,
                            parameters: Params::default(),
                            key: sk.clone(),
                        };
                        let mut saw_sources = false;
                        for (k2, v2) in w.mapping(item, &sk)? {
                            let kk = format!("{sk}.{k2}");
                            match k2.as_str() {
                                "sources" => {
                                    saw_sources = true;
                                    let Value::Sequence(srcs) = v2 else {
                                        return Err(w.err(&kk, format!("expected a list, found {}", kind(v2))));
                                    };
                                    if srcs.is_empty() {
                                        return Err(w.err(&kk, "is empty"));
                                    }
                                    for (j, s) in srcs.iter().enumerate() {
                                        let jk = format!("{kk}[{j}]");
                                        let mut model = None;
                                        let mut range = None;
                                        let mut params = Params::default();
                                        for (k3, v3) in w.mapping(s, &jk)? {
                                            let k3k = format!("{jk}.{k3}");
                                            match k3.as_str() {
                                                "model" => model = Some(w.model(v3, &k3k)?),
                                                "layer_range" => range = Some(w.layer_range(v3, &k3k)?),
                                                "parameters" => params = w.params(v3, &k3k)?,
                                                _ => w.unknown(&k3k, &k3, "key in a slice source", &SOURCE_KEYS)?,
                                            }
                                        }
                                        out.sources.push(InputSlice {
                                            model: model.ok_or_else(|| w.err(&jk, "needs `model`"))?,
                                            layer_range: range
                                                .ok_or_else(|| w.err(&jk, "needs `layer_range: [start, end]`"))?,
                                            range_key: format!("{jk}.layer_range"),
                                            parameters: params,
                                        });
                                    }
                                }
                                "base_model" => {
                                    if !matches!(v2, Value::Null) {
                                        out.base_model = Some(w.model(v2, &kk)?)
                                    }
                                }
                                "parameters" => out.parameters = w.params(v2, &kk)?,
                                "residual_weight" => w
                                    .warn(format!("`{kk}`: residual_weight is not used by mergekit's planner either; ignored")),
                                _ => w.unknown(&kk, &k2, "key in a slice", &SLICE_KEYS)?,
                            }
                        }
                        if !saw_sources {
                            return Err(w.err(&sk, "needs `sources`"));
                        }
                        cfg.slices.push(out);
                    }
                }
                "name" | "chat_template" => w.warn(format!("`{key}`: accepted and ignored")),
                _ => w.unknown(key, key, "top-level key", &TOP_KEYS)?,
            }
        }
        cfg.merge_method = method.ok_or_else(|| {
            w.err(
                "merge_method",
                "missing: say which method to use, e.g. `merge_method: linear`",
            )
        })?;
        match (has_models, has_slices) {
            (true, true) => {
                return Err(w.err("slices", "give either `models:` or `slices:`, not both"));
            }
            (false, false) => {
                return Err(w.err(
                    "models",
                    "missing: list the models to merge under `models:` (or use `slices:`)",
                ));
            }
            _ => {}
        }
        if has_models && cfg.models.is_empty() {
            return Err(w.err("models", "is empty"));
        }
        if has_slices && cfg.slices.is_empty() {
            return Err(w.err("slices", "is empty"));
        }
        // Parameter names no method reads (`densty`): typos mergekit would silently ignore. A
        // name another method reads stays a planning warning (`linear` does not use `density`).
        if !w.lenient {
            let all = param_names(None);
            let own = param_names(Some(cfg.merge_method));
            let mut sets: Vec<&Params> = vec![&cfg.parameters];
            sets.extend(cfg.models.iter().map(|m| &m.parameters));
            for s in &cfg.slices {
                sets.push(&s.parameters);
                sets.extend(s.sources.iter().map(|x| &x.parameters));
            }
            for ps in sets {
                for (name, (_, key)) in &ps.map {
                    if !all.contains(&name.as_str()) {
                        w.unknown(key, name, "parameter", &own)?;
                    }
                }
            }
        }
        cfg.warnings = w.warnings.into_inner();
        Ok(cfg)
    }

    /// The models `align` acts on: the reference (the base model, else the first model) and
    /// every other model of `models:`, each once. Alignment needs `models:`: layer slices of
    /// different models (frankenmerges) have no common basin to align to.
    pub fn align_targets(&self) -> Result<(ModelRef, Vec<ModelRef>)> {
        if !self.slices.is_empty() {
            return Err(self.err(
                "align",
                "alignment needs `models:`; `slices:` (layer ranges of different models) cannot be aligned as whole models",
            ));
        }
        let reference = match &self.base_model {
            Some(b) => b.clone(),
            None => self.models[0].model.clone(),
        };
        let mut others: Vec<ModelRef> = Vec::new();
        for m in &self.models {
            if m.model.name != reference.name && !others.iter().any(|o| o.name == m.model.name) {
                others.push(m.model.clone());
            }
        }
        Ok((reference, others))
    }

    /// An error about `key` of this config.
    pub fn err(&self, key: &str, msg: impl Into<String>) -> Error {
        Error::Config {
            file: self.file.clone(),
            key: key.to_string(),
            msg: msg.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<MergeConfig> {
        MergeConfig::parse(s, Path::new("c.yaml"))
    }

    #[test]
    fn gradient_interpolates_like_mergekit() {
        let g = Setting::Gradient(vec![0.0, 0.5, 1.0]);
        let v = |t| match g.evaluate("x", t, "k").unwrap().0 {
            Scalar::Num(n) => n,
            _ => panic!(),
        };
        assert_eq!(v(0.0), 0.0);
        assert_eq!(v(0.25), 0.25);
        assert_eq!(v(1.0), 1.0);
        assert!((v(0.8) - 0.8).abs() < 1e-12);
    }

    #[test]
    fn filters_first_match_wins() {
        let c = parse(
            "merge_method: linear\nmodels:\n  - model: a\nparameters:\n  weight:\n    - filter: mlp\n      value: 0.2\n    - filter: self_attn\n      value: [0, 1]\n    - value: 0.7\n",
        )
        .unwrap();
        let (s, key) = c.parameters.get("weight").unwrap();
        assert_eq!(key, "parameters.weight");
        let ev = |n: &str, t| s.evaluate(n, t, key).unwrap();
        assert_eq!(ev("l.0.mlp.w", 0.3).0, Scalar::Num(0.2));
        assert_eq!(ev("l.0.mlp.w", 0.3).1, "parameters.weight[0].value");
        assert_eq!(ev("l.0.self_attn.q", 1.0).0, Scalar::Num(1.0));
        assert_eq!(ev("norm", 0.0).0, Scalar::Num(0.7));
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("merge_method: lineer\nmodels: [{model: a}]").unwrap_err();
        assert!(e.to_string().contains("`merge_method`"), "{e}");
        let e = parse("merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weight: [0.1, {filter: x}]\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`models[0].parameters.weight`: mixes"),
            "{e}"
        );
        let e = parse("merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: [4, 2]\n")
            .unwrap_err();
        assert!(
            e.to_string().contains("slices[0].sources[0].layer_range"),
            "{e}"
        );
        let e = parse("merge_method: linear\n").unwrap_err();
        assert!(e.to_string().contains("`models`"), "{e}");
        let e = parse("merge_method: [linear\n").unwrap_err();
        assert!(matches!(e, Error::Yaml { .. }), "{e}");
    }

    #[test]
    fn align_key() {
        let c = parse(
            "merge_method: linear\nalign: weight\nmodels: [{model: a}, {model: b}, {model: a}]",
        )
        .unwrap();
        assert_eq!(c.align, Some(Align::Weight));
        let (r, o) = c.align_targets().unwrap();
        assert_eq!(r.name, "a");
        assert_eq!(o.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["b"]);
        let c =
            parse("merge_method: ties\nbase_model: z\nalign: none\nmodels: [{model: a}]").unwrap();
        assert_eq!(c.align, None);
        let (r, o) = c.align_targets().unwrap();
        assert_eq!((r.name.as_str(), o.len()), ("z", 1));
        let e =
            parse("merge_method: linear\nalign: activations\nmodels: [{model: a}]").unwrap_err();
        assert!(e.to_string().contains("`align`: unknown alignment"), "{e}");
        let c = parse("merge_method: passthrough\nalign: weight\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 2]\n").unwrap();
        assert!(
            c.align_targets()
                .unwrap_err()
                .to_string()
                .contains("`align`")
        );
    }

    fn lenient(s: &str) -> Result<MergeConfig> {
        MergeConfig::parse_with(s, Path::new("c.yaml"), ParseOptions { lenient: true })
    }

    #[test]
    fn unknown_keys_are_errors_with_a_suggestion() {
        let cases = [
            (
                "merge_method: linear\ndtpye: float16\nmodels: [{model: a}]",
                "c.yaml: `dtpye`: unknown top-level key `dtpye`; did you mean `dtype`?",
            ),
            (
                "merge_method: ties\nbase_model: z\nmodels:\n  - model: a\n    parameters: {weight: 1, densty: 0.5}",
                "`models[0].parameters.densty`: unknown parameter `densty`; did you mean `density`?",
            ),
            (
                "merge_method: linear\nmodels:\n  - model: a\n    parametrs: {weight: 1}\n",
                "`models[0].parametrs`: unknown key in a model entry `parametrs`; did you mean `parameters`?",
            ),
            (
                "merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_rnage: [0, 1]\n",
                "`slices[0].sources[0].layer_rnage`: unknown key in a slice source `layer_rnage`; did you mean `layer_range`?",
            ),
            (
                "merge_method: passthrough\nslices:\n  - sorces:\n      - model: a\n        layer_range: [0, 1]\n",
                "`slices[0].sorces`: unknown key in a slice `sorces`; did you mean `sources`?",
            ),
            (
                "merge_method: linear\nmodels: [{model: a}]\nparameters:\n  weight:\n    - filtr: mlp\n      value: 1\n",
                "`parameters.weight[0].filtr`: unknown key in a {filter, value} entry `filtr`; did you mean `filter`?",
            ),
            (
                "merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}]\nparameters: {tt: 0.5}",
                "`parameters.tt`: unknown parameter `tt`; did you mean `t`?",
            ),
            (
                "merge_method: linear\nzzzzzzzz: 1\nmodels: [{model: a}]",
                "known keys here: merge_method, base_model",
            ),
        ];
        for (yaml, want) in cases {
            let e = parse(yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}\n{e}");
            assert!(e.contains("--lenient"), "{e}");
            // Lenient: the key is ignored with a warning (the config may then miss a required
            // key, which is its own error).
            match lenient(yaml) {
                Ok(c) => assert!(
                    !c.warnings.is_empty() || yaml.contains("densty") || yaml.contains("tt:"),
                    "{yaml}"
                ),
                Err(e) => assert!(e.to_string().contains("needs"), "{yaml}: {e}"),
            }
        }
    }

    #[test]
    fn lenient_keeps_warnings() {
        let c = lenient("merge_method: linear\nname: x\nfoo: 1\nmodels: [{model: a}]").unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        // Known mergekit keys weightspace does not act on warn in both modes; so does a
        // parameter another method reads.
        let c = parse("merge_method: linear\nname: x\nchat_template: y\nmodels: [{model: a, parameters: {density: 0.5}}]").unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    }

    #[test]
    fn edit_distance_counts_swaps_once() {
        assert_eq!(edit_distance("dtpye", "dtype"), 1);
        assert_eq!(edit_distance("densty", "density"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(did_you_mean("xyz", &["dtype", "models"]), None);
    }
}
