//! PEFT LoRA adapters: merge an adapter into its base model, and extract a low-rank adapter
//! from a fine-tune (truncated SVD of each weight difference, as mergekit-extract-lora).
//!
//! PEFT's conventions, followed here:
//! * `adapter_model.safetensors` holds, for a module `M` (e.g. `model.layers.0.self_attn.q_proj`),
//!   `base_model.model.M.lora_A.weight` `[r, in]` and `base_model.model.M.lora_B.weight`
//!   `[out, r]`; embeddings use `lora_embedding_A` `[r, num_embeddings]` and `lora_embedding_B`
//!   `[dim, r]` (no `.weight`). A `modules_to_save` module is stored whole as
//!   `base_model.model.M.weight` (mergekit) or `base_model.model.M.modules_to_save.weight`.
//! * `adapter_config.json` gives `r`, `lora_alpha`, `use_rslora`, `fan_in_fan_out`, and
//!   per-module `rank_pattern` / `alpha_pattern`. The update of `M.weight` is
//!   `scale · B·A` with `scale = alpha / r` (`alpha / √r` with rslora), transposed when
//!   `fan_in_fan_out` (GPT-2's `Conv1D` stores weights `[in, out]`) and for embeddings.
//!
//! Pattern keys are matched as module names (a key matches `M` when it equals `M` or is a
//! dot-separated suffix of it); PEFT reads them as regular expressions, so a key with regex
//! syntax other than `.` is refused rather than guessed at.
//!
//! Extraction follows mergekit's `extract_lora.py`: for each 2-D `*.weight` that changed,
//! `Δ = U S Vᵀ`, `A = √S_k V_kᵀ`, `B = U_k √S_k` with `k = min(rank, min(out, in))`, and
//! `r = lora_alpha = max k` (so the scale is 1) with `rank_pattern`/`alpha_pattern` for smaller
//! modules. Changed embeddings are saved whole as `modules_to_save` (mergekit's default without
//! `--embed-lora`). Other changed tensors (norms, biases) cannot be carried by a LoRA adapter
//! and are reported.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use faer::Mat;
use serde_json::{Value, json};
use weightspace_io::{Checkpoint, DType, TensorInfo, encode_f32, write_sharded};

use crate::error::{Error, Result};
use crate::plan::is_embed;

const PREFIX: &str = "base_model.model.";

/// An adapter's `adapter_config.json`, the fields that change the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    /// Default rank.
    pub r: usize,
    /// Default alpha.
    pub lora_alpha: f64,
    /// Scale by `alpha / √r` instead of `alpha / r`.
    pub use_rslora: bool,
    /// Target weights are stored `[in, out]` (GPT-2 `Conv1D`).
    pub fan_in_fan_out: bool,
    /// Per-module ranks.
    pub rank_pattern: BTreeMap<String, usize>,
    /// Per-module alphas.
    pub alpha_pattern: BTreeMap<String, f64>,
    /// `target_modules`, as given (a list, or a regex string), for reports.
    pub target_modules: Value,
}

fn cfg_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Adapter {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// A pattern key matches a module when it equals the module name or a dot-separated suffix.
fn pattern_matches(key: &str, module: &str) -> bool {
    module == key || module.ends_with(&format!(".{key}"))
}

impl AdapterConfig {
    /// Parses `adapter_config.json` text; `path` names the file in errors. Refuses adapters
    /// that are not plain LoRA (DoRA, LoHa, IA3, ...).
    pub fn parse(text: &str, path: &Path) -> Result<AdapterConfig> {
        let v: Value =
            serde_json::from_str(text).map_err(|e| cfg_err(path, format!("invalid JSON: {e}")))?;
        let o = v
            .as_object()
            .ok_or_else(|| cfg_err(path, "expected a JSON object"))?;
        if let Some(t) = o.get("peft_type").and_then(Value::as_str)
            && t != "LORA"
        {
            return Err(cfg_err(
                path,
                format!("peft_type `{t}` is not supported; only LORA adapters can be merged"),
            ));
        }
        if o.get("use_dora").and_then(Value::as_bool) == Some(true) {
            return Err(cfg_err(
                path,
                "use_dora: DoRA adapters (a learned magnitude vector) are not supported",
            ));
        }
        let r = o
            .get("r")
            .and_then(Value::as_u64)
            .filter(|&r| r > 0)
            .ok_or_else(|| cfg_err(path, "`r` must be a positive integer"))?
            as usize;
        let lora_alpha = match o.get("lora_alpha") {
            None | Some(Value::Null) => 8.0, // PEFT's default
            Some(x) => x
                .as_f64()
                .filter(|a| a.is_finite())
                .ok_or_else(|| cfg_err(path, "`lora_alpha` must be a number"))?,
        };
        let flag = |k: &str| -> Result<bool> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(cfg_err(path, format!("`{k}` must be true or false"))),
            }
        };
        let check_key = |k: &str, field: &str| -> Result<()> {
            if k.chars().any(|c| "*+?()[]{}|^$\\".contains(c)) {
                return Err(cfg_err(
                    path,
                    format!(
                        "`{field}` key `{k}` is a regular expression; only module names are supported"
                    ),
                ));
            }
            Ok(())
        };
        let mut rank_pattern = BTreeMap::new();
        if let Some(Value::Object(m)) = o.get("rank_pattern") {
            for (k, x) in m {
                check_key(k, "rank_pattern")?;
                let r = x.as_u64().filter(|&r| r > 0).ok_or_else(|| {
                    cfg_err(
                        path,
                        format!("`rank_pattern.{k}` must be a positive integer"),
                    )
                })?;
                rank_pattern.insert(k.clone(), r as usize);
            }
        }
        let mut alpha_pattern = BTreeMap::new();
        if let Some(Value::Object(m)) = o.get("alpha_pattern") {
            for (k, x) in m {
                check_key(k, "alpha_pattern")?;
                let a = x.as_f64().ok_or_else(|| {
                    cfg_err(path, format!("`alpha_pattern.{k}` must be a number"))
                })?;
                alpha_pattern.insert(k.clone(), a);
            }
        }
        Ok(AdapterConfig {
            r,
            lora_alpha,
            use_rslora: flag("use_rslora")?,
            fan_in_fan_out: flag("fan_in_fan_out")?,
            rank_pattern,
            alpha_pattern,
            target_modules: o.get("target_modules").cloned().unwrap_or(Value::Null),
        })
    }

    /// The rank and alpha of `module` (pattern entries first, the longest matching key wins).
    pub fn rank_alpha(&self, module: &str) -> (usize, f64) {
        let best = |keys: &mut dyn Iterator<Item = &String>| -> Option<String> {
            keys.filter(|k| pattern_matches(k, module))
                .max_by_key(|k| k.len())
                .cloned()
        };
        let r = best(&mut self.rank_pattern.keys())
            .map(|k| self.rank_pattern[&k])
            .unwrap_or(self.r);
        let a = best(&mut self.alpha_pattern.keys())
            .map(|k| self.alpha_pattern[&k])
            .unwrap_or(self.lora_alpha);
        (r, a)
    }

    /// The scale of `module`'s update: `alpha / r`, or `alpha / √r` with rslora.
    pub fn scale(&self, module: &str) -> f64 {
        let (r, a) = self.rank_alpha(module);
        if self.use_rslora {
            a / (r as f64).sqrt()
        } else {
            a / r as f64
        }
    }
}

/// What one adapter module does to the base.
#[derive(Debug, Clone, Default)]
struct Module {
    a: Option<String>,
    b: Option<String>,
    bias: Option<String>,
    embedding: bool,
}

/// One base tensor an adapter changes.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedTensor {
    /// The base tensor's name.
    pub tensor: String,
    /// `lora` (W += scale·B·A), `lora_bias` (b += scale·b_B) or `replaced` (modules_to_save).
    pub kind: &'static str,
    /// The adapter rank (0 for replaced tensors).
    pub rank: usize,
    /// The scale applied.
    pub scale: f64,
}

/// What [`merge_adapter`] wrote.
#[derive(Debug, Clone, Default)]
pub struct MergeReport {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// The changed tensors, in base order.
    pub changed: Vec<MergedTensor>,
    /// Tensors copied unchanged.
    pub unchanged: usize,
}

/// The adapter's weights file in `dir`: `adapter_model.safetensors`, else `adapter_model.bin`.
pub fn adapter_weights(dir: &Path) -> Result<PathBuf> {
    for f in ["adapter_model.safetensors", "adapter_model.bin"] {
        let p = dir.join(f);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Usage(format!(
        "{}: no adapter_model.safetensors (or adapter_model.bin) in this folder",
        dir.display()
    )))
}

/// Reads a tensor as a row-major f64 matrix `[rows, cols]` (1-D tensors as one row).
fn matrix(ck: &Checkpoint, name: &str) -> Result<(Vec<usize>, Mat<f64>)> {
    let v = ck.tensor(name)?;
    let shape = v.shape.to_vec();
    let x = v
        .to_f32()
        .map_err(|k| Error::Io(weightspace_io::Error::new(ck.path(), k).with_tensor(name)))?;
    let (r, c) = match shape.len() {
        1 => (1, shape[0]),
        2 => (shape[0], shape[1]),
        _ => {
            return Err(Error::Tensor {
                tensor: name.to_string(),
                msg: format!(
                    "in {}: shape {shape:?}; only 1-D and 2-D LoRA tensors are supported (no conv LoRA)",
                    ck.path().display()
                ),
            });
        }
    };
    Ok((shape, Mat::from_fn(r, c, |i, j| x[i * c + j] as f64)))
}

/// Merges the PEFT LoRA adapter in `adapter_dir` into `base` and writes every base tensor (in
/// the base's order and dtypes) to `out`: `W += scale · B·A` for every adapted module (`(B·A)ᵀ`
/// with `fan_in_fan_out` and for embeddings), `b += scale · b_B` for LoRA biases, and whole
/// `modules_to_save` tensors replaced. Every adapter tensor must name a base tensor of a
/// matching shape; the missing ones are all listed in the error. Nothing is written on error.
pub fn merge_adapter(
    base: &Checkpoint,
    adapter_dir: &Path,
    out: &Path,
    max_shard_bytes: Option<u64>,
) -> Result<MergeReport> {
    let cfg_path = adapter_dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::fs(&cfg_path, e))?;
    let cfg = AdapterConfig::parse(&text, &cfg_path)?;
    let wpath = adapter_weights(adapter_dir)?;
    let ad = Checkpoint::open(&wpath)?;
    let bad = |name: &str, msg: String| Error::Tensor {
        tensor: name.to_string(),
        msg: format!("in {}: {msg}", wpath.display()),
    };
    // Group adapter tensors by module.
    let mut modules: BTreeMap<String, Module> = BTreeMap::new();
    let mut replaced: BTreeMap<String, String> = BTreeMap::new(); // base tensor -> adapter tensor
    for name in ad.names() {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            return Err(bad(
                name,
                format!("does not start with `{PREFIX}`; not a PEFT LoRA tensor name"),
            ));
        };
        if rest.contains("lora_magnitude_vector") {
            return Err(bad(name, "DoRA magnitude vectors are not supported".into()));
        }
        let parts: Vec<&str> = rest.split('.').collect();
        if let Some(pos) = parts.iter().position(|p| {
            matches!(
                *p,
                "lora_A" | "lora_B" | "lora_embedding_A" | "lora_embedding_B"
            )
        }) {
            let module = parts[..pos].join(".");
            // After the kind: optional adapter name, then `weight`/`bias` (none for embeddings).
            let tail = &parts[pos + 1..];
            let last = tail.last().copied();
            let m = modules.entry(module.clone()).or_default();
            match (parts[pos], last) {
                ("lora_A", Some("weight")) => m.a = Some(name.to_string()),
                ("lora_B", Some("weight")) => m.b = Some(name.to_string()),
                ("lora_B", Some("bias")) => m.bias = Some(name.to_string()),
                ("lora_embedding_A", _) if last != Some("bias") => {
                    m.a = Some(name.to_string());
                    m.embedding = true;
                }
                ("lora_embedding_B", _) if last != Some("bias") => {
                    m.b = Some(name.to_string());
                    m.embedding = true;
                }
                _ => return Err(bad(name, "unrecognised LoRA tensor".into())),
            }
        } else {
            // modules_to_save: `M.modules_to_save[.adapter].weight` or plain `M.weight`.
            let target = match parts.iter().position(|p| *p == "modules_to_save") {
                Some(pos) => {
                    let mut t: Vec<&str> = parts[..pos].to_vec();
                    t.push(parts[parts.len() - 1]);
                    t.join(".")
                }
                None => rest.to_string(),
            };
            replaced.insert(target, name.to_string());
        }
    }
    // Resolve every module against the base before writing anything.
    let mut missing = Vec::new();
    let mut plan: BTreeMap<String, (String, &'static str)> = BTreeMap::new(); // base tensor -> (module, kind)
    for (module, m) in &modules {
        let (Some(a), Some(b)) = (&m.a, &m.b) else {
            let have = m.a.as_ref().or(m.b.as_ref()).or(m.bias.as_ref());
            return Err(bad(
                have.map(String::as_str).unwrap_or(module),
                format!("module `{module}` needs both lora_A and lora_B"),
            ));
        };
        let target = format!("{module}.weight");
        let Some(info) = base.info(&target) else {
            missing.push(target);
            continue;
        };
        let (ash, bsh) = (
            &ad.info(a).expect("listed").shape,
            &ad.info(b).expect("listed").shape,
        );
        if ash.len() != 2 || bsh.len() != 2 || ash[0] != bsh[1] {
            return Err(bad(
                module,
                format!("lora_A {ash:?} and lora_B {bsh:?} are not [r, in] and [out, r]"),
            ));
        }
        let (r, _) = cfg.rank_alpha(module);
        if ash[0] != r {
            return Err(bad(
                a,
                format!(
                    "rank {} but adapter_config.json says r = {r} for `{module}` (r / rank_pattern)",
                    ash[0]
                ),
            ));
        }
        // The product B·A is [out, in]; it lands on W transposed for fan_in_fan_out and embeddings.
        let want = if m.embedding || cfg.fan_in_fan_out {
            vec![ash[1], bsh[0]]
        } else {
            vec![bsh[0], ash[1]]
        };
        if info.shape != want {
            return Err(bad(
                module,
                format!(
                    "B·A gives {want:?} but the base's `{target}` is {:?}{}",
                    info.shape,
                    if cfg.fan_in_fan_out {
                        " (fan_in_fan_out is set)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        plan.insert(target, (module.clone(), "lora"));
        if let Some(bias) = &m.bias {
            let t = format!("{module}.bias");
            match base.info(&t) {
                None => missing.push(t),
                Some(i) if i.shape != ad.info(bias).expect("listed").shape => {
                    return Err(bad(bias, format!("shape differs from the base's `{t}`")));
                }
                Some(_) => {
                    plan.insert(t, (module.clone(), "lora_bias"));
                }
            }
        }
    }
    for (target, src) in &replaced {
        match base.info(target) {
            None => missing.push(target.clone()),
            Some(i) if i.shape != ad.info(src).expect("listed").shape => {
                return Err(bad(
                    src,
                    format!(
                        "shape {:?} but the base's `{target}` is {:?}",
                        ad.info(src).expect("listed").shape,
                        i.shape
                    ),
                ));
            }
            Some(_) => {
                if plan.contains_key(target) {
                    return Err(bad(
                        src,
                        format!("`{target}` is both LoRA-adapted and saved whole"),
                    ));
                }
                plan.insert(target.clone(), (src.clone(), "replaced"));
            }
        }
    }
    if !missing.is_empty() {
        let n = missing.len();
        missing.truncate(10);
        return Err(Error::Usage(format!(
            "{}: {n} adapter target(s) not in the base {}: {}{}",
            wpath.display(),
            base.path().display(),
            missing.join(", "),
            if n > 10 { ", ..." } else { "" }
        )));
    }
    let infos: Vec<TensorInfo> = base.infos().cloned().collect();
    let mut report = MergeReport::default();
    for i in &infos {
        match plan.get(&i.name) {
            Some((module, kind)) => report.changed.push(MergedTensor {
                tensor: i.name.clone(),
                kind,
                rank: if *kind == "replaced" {
                    0
                } else {
                    cfg.rank_alpha(module).0
                },
                scale: if *kind == "replaced" {
                    1.0
                } else {
                    cfg.scale(module)
                },
            }),
            None => report.unchanged += 1,
        }
    }
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("weightspace.kind".to_string(), "lora_merged".to_string()),
        ("base".to_string(), base.path().display().to_string()),
        ("adapter".to_string(), adapter_dir.display().to_string()),
    ]);
    let failure = std::cell::RefCell::new(None);
    let keep = |e: Error| {
        let p = weightspace_io::Error::invalid(out, e.to_string());
        *failure.borrow_mut() = Some(e);
        p
    };
    let compute = |info: &TensorInfo, module: &str, kind: &str| -> Result<Vec<u8>> {
        if kind == "replaced" {
            let v = ad.tensor(module)?;
            let x = v.to_f32().map_err(|k| {
                Error::Io(weightspace_io::Error::new(ad.path(), k).with_tensor(module))
            })?;
            return encode(&x, info);
        }
        let m = &modules[module];
        let scale = cfg.scale(module);
        let (_, mut w) = matrix(base, &info.name)?;
        if kind == "lora_bias" {
            let (_, bb) = matrix(&ad, m.bias.as_ref().expect("planned"))?;
            w += faer::Scale(scale) * &bb;
        } else {
            let (_, a) = matrix(&ad, m.a.as_ref().expect("planned"))?;
            let (_, b) = matrix(&ad, m.b.as_ref().expect("planned"))?;
            let ba = &b * &a;
            if m.embedding || cfg.fan_in_fan_out {
                w += faer::Scale(scale) * ba.transpose();
            } else {
                w += faer::Scale(scale) * &ba;
            }
        }
        let flat: Vec<f32> = (0..w.nrows())
            .flat_map(|i| (0..w.ncols()).map(move |j| (i, j)))
            .map(|(i, j)| w[(i, j)] as f32)
            .collect();
        encode(&flat, info)
    };
    report.files = write_sharded(out, &infos, &metadata, max_shard_bytes, |i| {
        let info = &infos[i];
        match plan.get(&info.name) {
            None => Ok(base.tensor(&info.name)?.bytes),
            Some((module, kind)) => compute(info, module, kind).map(Cow::Owned).map_err(keep),
        }
    })
    .map_err(|e| failure.borrow_mut().take().unwrap_or(Error::Io(e)))?;
    Ok(report)
}

fn encode(x: &[f32], info: &TensorInfo) -> Result<Vec<u8>> {
    encode_f32(x, info.dtype).ok_or_else(|| Error::Tensor {
        tensor: info.name.clone(),
        msg: format!(
            "is {}, not a float tensor; a LoRA cannot change it",
            info.dtype
        ),
    })
}

/// Options for [`extract`].
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Maximum rank per module.
    pub rank: usize,
    /// Dtype of the written factors (float32 by default).
    pub dtype: DType,
    /// `base_model_name_or_path` in `adapter_config.json` (the base as the user named it).
    pub base_name: String,
    /// Replace an existing non-empty output folder.
    pub overwrite: bool,
    /// The 2-D weights are stored `[in, out]` (GPT-2's `Conv1D`): factor `Δᵀ` and set
    /// `fan_in_fan_out` in the config, so that `lora_A` is `[r, in]` as PEFT expects.
    pub fan_in_fan_out: bool,
}

/// Embedding-like 2-D weights (token, position and type embeddings, tied heads): PEFT adapts
/// them with `lora_embedding_*` or saves them whole, so extraction saves them whole.
fn is_embedding_like(name: &str) -> bool {
    is_embed(name) || name.contains("embed") || name.split('.').any(|p| p == "wpe")
}

/// One extracted module.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedModule {
    /// The module (`model.layers.0.mlp.up_proj`); the weight is `<module>.weight`.
    pub module: String,
    /// The weight's shape as stored (`[out, in]`, or `[in, out]` with `fan_in_fan_out`).
    pub shape: Vec<usize>,
    /// The rank kept.
    pub rank: usize,
    /// Share of the difference's energy (squared Frobenius norm, Σσ²) the kept rank retains.
    pub energy: f64,
    /// The kept singular values, largest first.
    pub singular_values: Vec<f64>,
}

/// What [`extract`] wrote.
#[derive(Debug, Clone, Default)]
pub struct ExtractReport {
    /// The output folder.
    pub out_dir: PathBuf,
    /// Files written, relative to it.
    pub files: Vec<String>,
    /// Decomposed modules, in the fine-tune's order.
    pub modules: Vec<ExtractedModule>,
    /// Changed embeddings saved whole (`modules_to_save`).
    pub saved_whole: Vec<String>,
    /// Changed tensors a LoRA adapter cannot carry (1-D norms and biases, other shapes), with
    /// the relative size of their change ‖Δ‖/‖W‖.
    pub not_captured: Vec<(String, f64)>,
    /// 2-D weights whose difference is exactly zero (left out of the adapter).
    pub unchanged: usize,
}

/// Extracts a rank-`rank` LoRA adapter from `ft − base` into the folder `out_dir`
/// (`adapter_model.safetensors`, `adapter_config.json`, a card `README.md` with both models'
/// hashes and each module's retained energy), following mergekit-extract-lora (see
/// the module docs). Every float tensor of `ft` must exist in `base` with the same shape.
/// The folder is written beside `out_dir` and renamed into place at the end.
pub fn extract(
    base: &Checkpoint,
    ft: &Checkpoint,
    out_dir: &Path,
    opts: &ExtractOptions,
    mut progress: impl FnMut(usize, &str),
) -> Result<ExtractReport> {
    if opts.rank == 0 {
        return Err(Error::Usage("--rank must be at least 1".into()));
    }
    crate::execute::check_output(out_dir, opts.overwrite)?;
    let mut report = ExtractReport {
        out_dir: out_dir.to_path_buf(),
        ..ExtractReport::default()
    };
    let mut tensors: Vec<(String, DType, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut module_ranks: BTreeMap<String, usize> = BTreeMap::new();
    let total = ft.len();
    for (idx, i) in ft.infos().enumerate() {
        progress(idx, &i.name);
        if !i.dtype.is_float() {
            continue;
        }
        crate::taskvec::same_in_base(base, ft, i)?;
        let read = |ck: &Checkpoint| -> Result<Vec<f32>> {
            ck.tensor(&i.name)?.to_f32().map_err(|k| {
                Error::Io(weightspace_io::Error::new(ck.path(), k).with_tensor(&i.name))
            })
        };
        let (x, y) = (read(ft)?, read(base)?);
        // The difference in f32, as mergekit (and `taskvec extract`) forms it.
        let d: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
        if let Some(p) = d.iter().position(|v| !v.is_finite()) {
            // No factorisation (and no energy share) of a NaN or infinite difference means
            // anything: refuse instead of reporting one.
            return Err(Error::Tensor {
                tensor: i.name.clone(),
                msg: format!(
                    "the difference is not finite at element {p} (fine-tuned {}, base {})",
                    x[p], y[p]
                ),
            });
        }
        if d.iter().all(|v| *v == 0.0) {
            if i.shape.len() == 2 {
                report.unchanged += 1;
            }
            continue;
        }
        let module = i.name.strip_suffix(".weight");
        if i.shape.len() == 2 && is_embedding_like(&i.name) {
            tensors.push((
                format!("{PREFIX}{}", i.name),
                opts.dtype,
                i.shape.clone(),
                x,
            ));
            report.saved_whole.push(i.name.clone());
            continue;
        }
        let Some(module) = module.filter(|m| i.shape.len() == 2 && !m.is_empty()) else {
            let nd: f64 = d.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            let nw: f64 = y.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            report.not_captured.push((
                i.name.clone(),
                if nw > 0.0 { nd / nw } else { f64::INFINITY },
            ));
            continue;
        };
        // Δ as [out, in]: transposed for fan_in_fan_out storage.
        let (rows, cols) = if opts.fan_in_fan_out {
            (i.shape[1], i.shape[0])
        } else {
            (i.shape[0], i.shape[1])
        };
        let delta = if opts.fan_in_fan_out {
            Mat::from_fn(rows, cols, |r, c| d[c * rows + r] as f64)
        } else {
            Mat::from_fn(rows, cols, |r, c| d[r * cols + c] as f64)
        };
        let svd = delta.thin_svd().map_err(|e| Error::Compute {
            tensor: i.name.clone(),
            method: "svd".into(),
            msg: format!("{e:?}"),
        })?;
        let s = svd.S().column_vector();
        let k = opts.rank.min(rows.min(cols));
        let all: f64 = (0..s.nrows()).map(|j| s[j] * s[j]).sum();
        let kept: f64 = (0..k).map(|j| s[j] * s[j]).sum();
        let (u, v) = (svd.U(), svd.V());
        // A = √S_k V_kᵀ [k, in]; B = U_k √S_k [out, k] (mergekit's distribute_scale).
        let mut a = Vec::with_capacity(k * cols);
        for j in 0..k {
            let sq = s[j].sqrt();
            a.extend((0..cols).map(|c| (sq * v[(c, j)]) as f32));
        }
        let mut bm = Vec::with_capacity(rows * k);
        for r in 0..rows {
            bm.extend((0..k).map(|j| (u[(r, j)] * s[j].sqrt()) as f32));
        }
        tensors.push((
            format!("{PREFIX}{module}.lora_A.weight"),
            opts.dtype,
            vec![k, cols],
            a,
        ));
        tensors.push((
            format!("{PREFIX}{module}.lora_B.weight"),
            opts.dtype,
            vec![rows, k],
            bm,
        ));
        module_ranks.insert(module.to_string(), k);
        report.modules.push(ExtractedModule {
            module: module.to_string(),
            shape: i.shape.clone(),
            rank: k,
            energy: if all == 0.0 { 1.0 } else { kept / all },
            singular_values: (0..k).map(|j| s[j]).collect(),
        });
    }
    progress(total, "");
    if report.modules.is_empty() && report.saved_whole.is_empty() {
        return Err(Error::Usage(format!(
            "{} and {} differ in no 2-D weight: there is nothing to extract",
            ft.path().display(),
            base.path().display()
        )));
    }
    let max_rank = module_ranks.values().copied().max().unwrap_or(opts.rank);
    let smaller: serde_json::Map<String, Value> = module_ranks
        .iter()
        .filter(|(_, r)| **r != max_rank)
        .map(|(m, r)| (m.clone(), json!(r)))
        .collect();
    let mut targets: Vec<&str> = module_ranks
        .keys()
        .map(|m| m.rsplit('.').next().expect("non-empty"))
        .collect();
    targets.sort();
    targets.dedup();
    let config = json!({
        "base_model_name_or_path": opts.base_name,
        "peft_type": "LORA",
        "use_rslora": false,
        "target_modules": targets,
        "modules_to_save": report.saved_whole.iter().map(|n| n.strip_suffix(".weight").unwrap_or(n)).collect::<Vec<_>>(),
        "task_type": Value::Null,
        "r": max_rank,
        "lora_alpha": max_rank,
        "rank_pattern": smaller.clone(),
        "alpha_pattern": smaller,
        "lora_dropout": 0.0,
        "fan_in_fan_out": opts.fan_in_fan_out,
        "inference_mode": true,
    });
    let infos: Vec<TensorInfo> = tensors
        .iter()
        .map(|(n, d, s, _)| TensorInfo {
            name: n.clone(),
            dtype: *d,
            shape: s.clone(),
        })
        .collect();
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("weightspace.kind".to_string(), "lora_extracted".to_string()),
    ]);
    let tmp = crate::execute::PartialDir::new(out_dir, "adapter")?;
    weightspace_io::write_safetensors(
        &tmp.path().join("adapter_model.safetensors"),
        &infos,
        &metadata,
        |i| {
            encode_f32(&tensors[i].3, tensors[i].1)
                .map(Cow::Owned)
                .ok_or_else(|| {
                    weightspace_io::Error::invalid(out_dir, "factors must be a float dtype")
                })
        },
    )?;
    weightspace_io::write_atomic(
        &tmp.path().join("adapter_config.json"),
        &serde_json::to_vec_pretty(&config).expect("JSON"),
    )?;
    let card = adapter_card(base, ft, opts, &report, max_rank)?;
    weightspace_io::write_atomic(&tmp.path().join("README.md"), card.as_bytes())?;
    report.files = vec![
        "adapter_model.safetensors".into(),
        "adapter_config.json".into(),
        "README.md".into(),
    ];
    tmp.finish(out_dir)?;
    Ok(report)
}

/// The adapter's card (`README.md`): what it was extracted from (paths and model hashes), the
/// rank, and each module's retained energy share.
fn adapter_card(
    base: &Checkpoint,
    ft: &Checkpoint,
    opts: &ExtractOptions,
    report: &ExtractReport,
    max_rank: usize,
) -> Result<String> {
    let (hb, hf) = (
        crate::execute::model_hash(base)?,
        crate::execute::model_hash(ft)?,
    );
    let mut s =
        String::from("---\nlibrary_name: peft\ntags:\n- weightspace\n- peft\n- lora\n---\n");
    s.push_str(&format!(
        "# {}\n\nA LoRA adapter extracted by weightspace {} (`weightspace lora extract`, \
         mergekit-extract-lora's convention: truncated SVD of each weight difference, \
         `lora_A = √S_k V_kᵀ`, `lora_B = U_k √S_k`, scale 1).\n\n",
        report
            .out_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "adapter".into()),
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str("| | path | BLAKE3 model hash |\n|---|---|---|\n");
    s.push_str(&format!(
        "| base | `{}` | `{hb}` |\n| fine-tune | `{}` | `{hf}` |\n\n",
        base.path().display(),
        ft.path().display()
    ));
    s.push_str(&format!(
        "Requested rank {}, largest rank kept {max_rank}.\n\n| module | shape | rank | energy kept |\n|---|---|---|---|\n",
        opts.rank
    ));
    for m in &report.modules {
        s.push_str(&format!(
            "| `{}` | {:?} | {} | {:.2}% |\n",
            m.module,
            m.shape,
            m.rank,
            100.0 * m.energy
        ));
    }
    if !report.saved_whole.is_empty() {
        s.push_str(&format!(
            "\nSaved whole (modules_to_save): {}.\n",
            report
                .saved_whole
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !report.not_captured.is_empty() {
        s.push_str(&format!(
            "\nChanged but not carried by this adapter: {}.\n",
            report
                .not_captured
                .iter()
                .map(|(n, _)| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(s)
}
