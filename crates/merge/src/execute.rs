//! Running a plan: tensors merged one at a time from the memory maps and streamed into
//! safetensors shards inside a hidden temporary folder beside the output, which is renamed to
//! the output folder only when everything (weights, index, `config.json`, tokenizer files, a
//! copy of the config) is written. A failed run leaves no output folder.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use weightspace_io::{DType, write_sharded};

use crate::error::{Error, Result};
use crate::kernels::{self, CHUNK, Hist, Src, mag_key, n_chunks};
use crate::methods::{self, Job, kept_count};
use crate::plan::{Plan, TensorPlan};

/// Options for [`execute`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Seed for the random methods (DARE, DELLA).
    pub seed: u64,
    /// Shard the output when it exceeds this many bytes.
    pub max_shard_bytes: Option<u64>,
    /// Replace an existing non-empty output folder.
    pub overwrite: bool,
    /// Top-k over the whole model (`--topk-scope global`).
    pub topk_global: bool,
}

/// What a merge wrote.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The output folder.
    pub out_dir: PathBuf,
    /// Files written, relative to the output folder.
    pub files: Vec<String>,
    /// Number of tensors.
    pub tensors: usize,
    /// Bytes of tensor data.
    pub bytes: u64,
}

/// Tokenizer files copied by `tokenizer_source`.
pub const TOKENIZER_FILES: [&str; 9] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "vocab.txt",
    "chat_template.jinja",
];

/// Checks that `out` can be written: it must not exist, or be an empty folder, or
/// `overwrite` must be set.
pub fn check_output(out: &Path, overwrite: bool) -> Result<()> {
    if out.exists() {
        if !out.is_dir() {
            return Err(Error::Output {
                path: out.to_path_buf(),
                msg: "exists and is not a folder".into(),
            });
        }
        let empty = std::fs::read_dir(out)
            .map_err(|e| Error::fs(out, e))?
            .next()
            .is_none();
        if !empty && !overwrite {
            return Err(Error::Output {
                path: out.to_path_buf(),
                msg: "exists and is not empty (pass --overwrite to replace it)".into(),
            });
        }
    }
    Ok(())
}

/// The folder of a model's files (`config.json`, tokenizer), when the model is a folder or a
/// sharded index inside one.
fn model_dir(p: &Path) -> Option<PathBuf> {
    if p.is_dir() {
        return Some(p.to_path_buf());
    }
    let name = p.file_name()?.to_str()?;
    if name.ends_with(".index.json") {
        return p.parent().map(Path::to_path_buf);
    }
    None
}

/// The views of a tensor's inputs.
fn sources<'p>(plan: &'p Plan, tp: &TensorPlan) -> Result<Vec<Src<'p>>> {
    tp.inputs
        .iter()
        .map(|(mi, name)| {
            let m = &plan.models[*mi];
            let v = m.ck.tensor(name)?;
            Src::new(v.bytes, v.dtype, v.shape, tp.crop).map_err(|msg| Error::Tensor {
                tensor: name.clone(),
                msg: format!("in `{}`: {msg}", m.name),
            })
        })
        .collect()
}

/// `--topk-scope global`: per model, the smallest task-vector magnitude key kept when the
/// model's `density` fraction of largest magnitudes is kept over all its tensors (two
/// histogram passes over every tensor). Elements tied with the threshold are all kept.
pub fn global_thresholds(plan: &Plan) -> Result<HashMap<usize, u32>> {
    let mut per_model: HashMap<usize, (u64, f64)> = HashMap::new();
    for tp in plan.tensors.iter().filter(|t| t.copy.is_none()) {
        let Some(b) = tp.base else { continue };
        let n = tp.out.numel() as u64;
        for (k, (mi, _)) in tp.inputs.iter().enumerate() {
            if k != b && tp.params[k].density < 1.0 {
                per_model.entry(*mi).or_insert((0, tp.params[k].density)).0 += n;
            }
        }
    }
    let mut out = HashMap::new();
    for (&mi, &(total, density)) in &per_model {
        let k = kept_count(density, total as usize);
        let rank = total - k;
        let pass = |visit: &(dyn Fn(&mut Hist, u32) + Sync)| -> Result<Hist> {
            let mut h = Hist::new(2);
            for tp in plan.tensors.iter().filter(|t| t.copy.is_none()) {
                let Some(b) = tp.base else { continue };
                let Some(k) = tp
                    .inputs
                    .iter()
                    .enumerate()
                    .position(|(k, (m, _))| *m == mi && k != b)
                else {
                    continue;
                };
                let srcs = sources(plan, tp)?;
                let n = tp.out.numel();
                let part = (0..n_chunks(n))
                    .into_par_iter()
                    .fold(
                        || Hist::new(2),
                        |mut h, c| {
                            let start = c * CHUNK;
                            let len = CHUNK.min(n - start);
                            let (mut x, mut y) = (vec![0f32; len], vec![0f32; len]);
                            srcs[k].read(start, &mut x);
                            srcs[b].read(start, &mut y);
                            for (a, bb) in x.iter().zip(&y) {
                                visit(&mut h, mag_key(a - bb));
                            }
                            h
                        },
                    )
                    .reduce(|| Hist::new(2), Hist::merged);
                h = h.merged(part);
            }
            Ok(h)
        };
        let err = std::cell::RefCell::new(None);
        let sel = kernels::select_ranks(&[rank], |visit| match pass(visit) {
            Ok(h) => h,
            Err(e) => {
                *err.borrow_mut() = Some(e);
                Hist::new(2)
            }
        });
        if let Some(e) = err.into_inner() {
            return Err(e);
        }
        out.insert(mi, sel[0].key);
    }
    Ok(out)
}

/// Merges one planned tensor; returns its bytes in the output dtype.
pub fn merge_tensor<'p>(
    plan: &'p Plan,
    tp: &TensorPlan,
    seed: u64,
    global: Option<&HashMap<usize, u32>>,
) -> Result<Cow<'p, [u8]>> {
    if let Some(k) = tp.copy {
        let (mi, name) = &tp.inputs[k];
        return Ok(plan.models[*mi].ck.tensor(name)?.bytes);
    }
    let srcs = sources(plan, tp)?;
    let job = Job {
        name: &tp.out.name,
        method: plan.method,
        srcs,
        labels: tp
            .inputs
            .iter()
            .map(|(mi, _)| plan.models[*mi].name.clone())
            .collect(),
        base: tp.base,
        models: tp.params.clone(),
        global: tp.global.clone(),
        shape: tp.out.shape.clone(),
        dtype: tp.out.dtype,
        seed,
        global_keep: global.map(|g| tp.inputs.iter().map(|(mi, _)| g.get(mi).copied()).collect()),
    };
    methods::merge(&job)
        .map(Cow::Owned)
        .map_err(|msg| Error::Compute {
            tensor: tp.out.name.clone(),
            method: plan.method.to_string(),
            msg,
        })
}

/// The tokenizer files for the output: with `tokenizer_source`, that model's (an error when it
/// is not a folder or holds none); without, the base model's (else the first model's) when it
/// is a folder, as mergekit copies them — none is fine then.
fn tokenizer_files(plan: &Plan) -> Result<Vec<(String, Vec<u8>)>> {
    let (mi, explicit) = match plan.tokenizer_source {
        Some(ti) => (ti, true),
        None => (plan.config_source, false),
    };
    let m = &plan.models[mi];
    let Some(dir) = model_dir(&m.path) else {
        if !explicit {
            return Ok(Vec::new());
        }
        return Err(Error::Config {
            file: plan.config.file.clone(),
            key: "tokenizer_source".into(),
            msg: format!(
                "`{}` is a single weights file, not a model folder with tokenizer files",
                m.name
            ),
        });
    };
    let mut side = Vec::new();
    for f in TOKENIZER_FILES {
        let p = dir.join(f);
        if p.is_file() {
            side.push((
                f.to_string(),
                std::fs::read(&p).map_err(|e| Error::fs(&p, e))?,
            ));
        }
    }
    if side.is_empty() && explicit {
        return Err(Error::Config {
            file: plan.config.file.clone(),
            key: "tokenizer_source".into(),
            msg: format!("`{}` ({}) holds no tokenizer files", m.name, dir.display()),
        });
    }
    Ok(side)
}

/// A hidden temp folder beside the output folder (`.<leaf>.XXXX.partial`) in which the output
/// is built, then renamed into place by [`PartialDir::finish`]; dropped unfinished, it is
/// removed. The finished folder gets what `mkdir` gives (0777 less the umask), not a temp
/// folder's 0700.
pub(crate) struct PartialDir {
    dir: tempfile::TempDir,
    parent: PathBuf,
    leaf: String,
}

impl PartialDir {
    /// Starts a folder for `out_dir` (its parent is created).
    pub(crate) fn new(out_dir: &Path, default_leaf: &str) -> Result<PartialDir> {
        let parent = match out_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::fs(&parent, e))?;
        let leaf = out_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| default_leaf.into());
        let prefix = format!(".{leaf}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o777));
        }
        let dir = builder
            .tempdir_in(&parent)
            .map_err(|e| Error::fs(&parent, e))?;
        Ok(PartialDir { dir, parent, leaf })
    }

    /// The folder to write into.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Renames the finished folder to `out_dir`, replacing an existing `out_dir` (already
    /// checked to be empty or allowed to be replaced); on failure the folder is removed.
    pub(crate) fn finish(self, out_dir: &Path) -> Result<()> {
        let (parent, leaf) = (self.parent, self.leaf);
        let tmp_path = self.dir.keep();
        let replace = || -> std::io::Result<()> {
            if out_dir.exists() {
                let trash = parent.join(format!(".{leaf}.old-{}", std::process::id()));
                std::fs::rename(out_dir, &trash)?;
                std::fs::rename(&tmp_path, out_dir)?;
                std::fs::remove_dir_all(&trash)?;
            } else {
                std::fs::rename(&tmp_path, out_dir)?;
            }
            if let Ok(d) = std::fs::File::open(&parent) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        if let Err(e) = replace() {
            let _ = std::fs::remove_dir_all(&tmp_path);
            return Err(Error::fs(out_dir, e));
        }
        Ok(())
    }
}

/// Each planned model's `weightspace hash` model hash (BLAKE3 over each tensor's name and
/// content hash, tensors hashed in parallel), in plan order.
pub fn source_hashes(plan: &Plan) -> Result<Vec<String>> {
    plan.models.iter().map(|m| model_hash(&m.ck)).collect()
}

/// A checkpoint's model hash as hex (as `weightspace hash` prints it), tensors hashed in
/// parallel.
pub(crate) fn model_hash(ck: &weightspace_io::Checkpoint) -> Result<String> {
    let hashes = (0..ck.len())
        .into_par_iter()
        .map(|i| ck.tensor_at(i).map(|t| t.content_hash()))
        .collect::<weightspace_io::Result<Vec<_>>>()?;
    Ok(weightspace_io::combine_hashes(ck.names().zip(&hashes))
        .to_hex()
        .to_string())
}

/// A code fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat(longest.max(2) + 1)
}

/// The model card (`README.md`) of a merge: Hugging Face front matter, the method, every source
/// with the path read and its model hash, the weightspace version and the config verbatim.
/// `hashes` are [`source_hashes`] of the plan.
pub fn model_card(plan: &Plan, out_dir: &Path, hashes: &[String]) -> String {
    let title = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "merged".into());
    // Hugging Face ids only: models the plan found in the Hugging Face cache
    // (`…/models--org--name/snapshots/…`). A local path (even one shaped like `org/name`,
    // resolved beside the config) means nothing on the Hub.
    let hub: Vec<&str> = plan
        .models
        .iter()
        .filter(|m| {
            m.name.matches('/').count() == 1
                && m.path
                    .to_string_lossy()
                    .contains(&format!("models--{}", m.name.replace('/', "--")))
        })
        .map(|m| m.name.as_str())
        .collect();
    let mut s = String::from("---\n");
    if !hub.is_empty() {
        s.push_str("base_model:\n");
        for n in &hub {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s.push_str("library_name: transformers\ntags:\n- weightspace\n- merge\n---\n");
    s.push_str(&format!("# {title}\n\n"));
    let version = env!("CARGO_PKG_VERSION");
    s.push_str(&format!(
        "This is a merge of pre-trained models made with weightspace {version} from a \
         mergekit-compatible configuration.\n\n## Merge details\n\n### Merge method\n\n"
    ));
    let base = plan.config.base_model.as_ref().map(|b| b.name.as_str());
    match base {
        Some(b) => s.push_str(&format!(
            "This model was merged using the `{}` merge method with `{b}` as the base.\n\n",
            plan.method
        )),
        None => s.push_str(&format!(
            "This model was merged using the `{}` merge method.\n\n",
            plan.method
        )),
    }
    s.push_str("### Models merged\n\n| model (as in the config) | path read | BLAKE3 model hash |\n|---|---|---|\n");
    for (m, h) in plan.models.iter().zip(hashes) {
        let role = if Some(m.name.as_str()) == base {
            " (base)"
        } else {
            ""
        };
        s.push_str(&format!(
            "| `{}`{role} | `{}` | `{h}` |\n",
            m.name.replace('|', "\\|"),
            m.path.display().to_string().replace('|', "\\|")
        ));
    }
    s.push_str(
        "\nA model hash is `weightspace hash`'s: BLAKE3 over every tensor's name and content hash \
         (dtype, shape and bytes), in file order.\n",
    );
    if plan.config.align.is_some() {
        s.push_str(
            "The models were aligned to the base (or the first model) by weight matching \
             before merging; the paths and hashes are those of the aligned copies that were \
             merged.\n",
        );
    }
    let text = plan.config.text.trim_end();
    let f = fence(text);
    s.push_str(&format!(
        "\n### Configuration\n\nThe following YAML configuration was used to produce this \
         model:\n\n{f}yaml\n{text}\n{f}\n"
    ));
    s
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F16 => "float16",
        DType::BF16 => "bfloat16",
        DType::F64 => "float64",
        _ => "float32",
    }
}

/// Runs the merge into `out_dir`. `progress(i, name)` is called before tensor `i` is merged.
pub fn execute(
    plan: &Plan,
    out_dir: &Path,
    opts: &ExecOptions,
    mut progress: impl FnMut(usize, &str),
) -> Result<Summary> {
    check_output(out_dir, opts.overwrite)?;
    // Side files first, so that a missing tokenizer fails before the heavy work.
    let mut side: Vec<(String, Vec<u8>)> = tokenizer_files(plan)?;
    let cs = &plan.models[plan.config_source];
    if let Some(dir) = model_dir(&cs.path) {
        let p = dir.join("config.json");
        if p.is_file() {
            let text = std::fs::read(&p).map_err(|e| Error::fs(&p, e))?;
            if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&text) {
                if let Some(o) = v.as_object_mut() {
                    for key in ["num_hidden_layers", "n_layer", "num_layers", "n_layers"] {
                        if o.get(key).and_then(|x| x.as_u64()) == Some(cs.layout.n_layers as u64) {
                            o.insert(key.into(), plan.n_layers.into());
                        }
                    }
                    if let Some(t) = plan.tensors.iter().find(|t| t.out.dtype.is_float())
                        && o.contains_key("torch_dtype")
                    {
                        o.insert("torch_dtype".into(), dtype_name(t.out.dtype).into());
                    }
                }
                side.push((
                    "config.json".into(),
                    serde_json::to_vec_pretty(&v).expect("JSON"),
                ));
            }
        }
    }
    side.push((
        "mergekit_config.yml".into(),
        plan.config.text.clone().into_bytes(),
    ));
    let tmp = PartialDir::new(out_dir, "merged")?;
    tracing::info!(
        method = %plan.method,
        tensors = plan.tensors.len(),
        out = %out_dir.display(),
        "merge starts"
    );
    let global = if opts.topk_global || plan.topk_global {
        Some(global_thresholds(plan)?)
    } else {
        None
    };
    let infos: Vec<_> = plan.tensors.iter().map(|t| t.out.clone()).collect();
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("merge_method".to_string(), plan.method.to_string()),
        (
            "producer".to_string(),
            format!("weightspace {}", env!("CARGO_PKG_VERSION")),
        ),
    ]);
    let failure: std::cell::RefCell<Option<Error>> = std::cell::RefCell::new(None);
    let written = write_sharded(
        &tmp.path().join("model.safetensors"),
        &infos,
        &metadata,
        opts.max_shard_bytes,
        |i| {
            progress(i, &plan.tensors[i].out.name);
            tracing::debug!(tensor = %plan.tensors[i].out.name, "merging");
            merge_tensor(plan, &plan.tensors[i], opts.seed, global.as_ref()).map_err(|e| {
                let placeholder = weightspace_io::Error::invalid(&plan.config.file, e.to_string());
                *failure.borrow_mut() = Some(e);
                placeholder
            })
        },
    )
    .map_err(|e| failure.borrow_mut().take().unwrap_or(Error::Io(e)))?;
    let mut files: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    side.push((
        "README.md".into(),
        model_card(plan, out_dir, &source_hashes(plan)?).into_bytes(),
    ));
    for (name, bytes) in &side {
        weightspace_io::write_atomic(&tmp.path().join(name), bytes)?;
        files.push(name.clone());
    }
    tmp.finish(out_dir)?;
    Ok(Summary {
        out_dir: out_dir.to_path_buf(),
        files,
        tensors: infos.len(),
        bytes: infos.iter().map(|t| t.nbytes() as u64).sum(),
    })
}
