//! Facts that shapes cannot tell — heads, activation, RoPE, tied embeddings — from a Hugging
//! Face `config.json`, checkpoint metadata, or a TOML spec file; and [`spec_for_checkpoint`],
//! which puts them together with [`crate::derive`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weightspace_io::Checkpoint;

use crate::{
    Excluded, Family, Group, ModelSpec, Result, Role, SpecError, TensorEntry, UnprovenKind,
};

/// Facts about a model that tensor shapes do not tell. Every field is optional; later sources
/// override earlier ones ([`Facts::merge`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facts {
    /// Force a family instead of guessing from names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Number of attention (query) heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    /// Number of key/value heads (grouped-query attention); defaults to `heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_heads: Option<usize>,
    /// Dimension of one head; defaults to `hidden / heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// Hidden activation (`relu`, `leaky-relu`, `tanh`, `gelu`, `silu`, `sigmoid`,
    /// `identity`, ...). Decides which rescalings are symmetries of MLP/CNN hidden units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<String>,
    /// Rotary position embeddings (query/key dimensions are then not permuted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope: Option<bool>,
    /// How a conv output is flattened into the dense layer after it, when that layer reads
    /// more than one entry per channel: `channels_first` (PyTorch `x.flatten(1)` of NCHW:
    /// channel-major) or `channels_last` (NHWC, or a permute before the reshape:
    /// position-major). Shapes cannot tell; a derived CNN with such a flatten and no
    /// `flatten` fact is refused by the symmetry commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flatten: Option<Flatten>,
    /// The output head shares the token-embedding matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tied_embeddings: Option<bool>,
    /// Where the facts came from (for display).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// The order of a conv output `[channels, positions…]` flattened into a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flatten {
    /// Channel-major: entry `c·P + p` (PyTorch `x.flatten(1)` of NCHW).
    ChannelsFirst,
    /// Position-major: entry `p·C + c` (TensorFlow NHWC, or `x.permute(…)` before the reshape).
    ChannelsLast,
}

impl Facts {
    /// Reads a Hugging Face `config.json` (keys `num_attention_heads`/`n_head`,
    /// `num_key_value_heads`, `head_dim`, `hidden_act`/`activation_function`,
    /// `tie_word_embeddings`, `model_type`, `rope_theta`/`rope_scaling`).
    pub fn from_config_json(path: &Path) -> Result<Facts> {
        let file_err = |msg: String| SpecError::File {
            path: path.display().to_string(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| file_err(format!("invalid JSON: {e}")))?;
        let u = |k: &str| v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize);
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let model_type = s("model_type").unwrap_or_default();
        let family = match model_type.as_str() {
            "bert" | "roberta" => Some(Family::Bert),
            "gpt2" => Some(Family::Gpt2),
            "llama" | "mistral" | "qwen2" | "qwen3" => Some(Family::Llama),
            _ => None,
        };
        let rope = v.get("rope_theta").is_some()
            || v.get("rope_scaling").is_some()
            || matches!(family, Some(Family::Llama));
        Ok(Facts {
            family,
            heads: u("num_attention_heads").or(u("n_head")).or(u("num_heads")),
            kv_heads: u("num_key_value_heads"),
            head_dim: u("head_dim"),
            activation: s("hidden_act").or(s("activation_function")),
            rope: Some(rope),
            flatten: None,
            tied_embeddings: v.get("tie_word_embeddings").and_then(|x| x.as_bool()),
            sources: vec![path.display().to_string()],
        })
    }

    /// Reads facts from checkpoint metadata: keys `activation`/`hidden_act`, `heads`
    /// (by hand into safetensors `__metadata__`), and the activation inside the zoo's
    /// `weightspace.zoo.arch` JSON.
    pub fn from_metadata(meta: &std::collections::BTreeMap<String, serde_json::Value>) -> Facts {
        let s = |k: &str| {
            meta.get(k).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                _ => None,
            })
        };
        // A zoo checkpoint describes its architecture as JSON, activation included.
        let zoo_act = s("weightspace.zoo.arch").and_then(|a| {
            serde_json::from_str::<serde_json::Value>(&a)
                .ok()?
                .get("activation")?
                .as_str()
                .map(str::to_string)
        });
        let is_zoo = s("weightspace.zoo.arch").is_some();
        let mut f = Facts {
            activation: s("activation").or(s("hidden_act")).or(zoo_act),
            heads: s("heads").and_then(|h| h.parse().ok()),
            flatten: match s("flatten").as_deref() {
                Some("channels_first") => Some(Flatten::ChannelsFirst),
                Some("channels_last") => Some(Flatten::ChannelsLast),
                // The zoo's nets are PyTorch-style: a CNN pools globally or flattens NCHW.
                _ if is_zoo => Some(Flatten::ChannelsFirst),
                _ => None,
            },
            ..Facts::default()
        };
        if is_zoo {
            f.sources.push("zoo metadata".into());
        } else if f.activation.is_some() || f.heads.is_some() || f.flatten.is_some() {
            f.sources.push("checkpoint metadata".into());
        }
        f
    }

    /// `self` with every field `other` sets replaced.
    pub fn merge(mut self, other: Facts) -> Facts {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            family,
            heads,
            kv_heads,
            head_dim,
            activation,
            rope,
            flatten,
            tied_embeddings
        );
        self.sources.extend(other.sources);
        self
    }

    /// The rescalings an activation allows for the units feeding it.
    pub fn activation_scaling(&self) -> crate::Scaling {
        use crate::Scaling;
        match self.activation.as_deref().map(|a| a.to_ascii_lowercase()) {
            Some(a) => match a.replace('_', "-").as_str() {
                "relu" | "leaky-relu" | "leakyrelu" | "relu6x" => Scaling::Positive,
                "tanh" | "identity" | "linear" | "none" | "sin" | "softsign" => Scaling::Sign,
                _ => Scaling::None,
            },
            None => Scaling::None,
        }
    }
}

/// A TOML spec file: facts, plus optionally groups described outright.
///
/// ```toml
/// heads = 4              # any field of Facts
/// activation = "relu"
/// flatten = "channels_first"   # or "channels_last": how a conv output feeds a dense layer
/// exclude = ["lstm.weight_ih"] # leave alone (and vouch that it reads no permuted axis)
/// replace = false        # true: use only the groups below; false: add them to derived ones
///
/// [[groups]]
/// name = "hidden.0"
/// kind = "hidden"        # hidden | residual | heads | qk_dims | vo_dims
/// size = 32
/// scaling = "positive"   # none | positive | sign | any
/// members = [
///   { tensor = "fc1.weight", axis = 0 },
///   { tensor = "fc1.bias", axis = 0 },
///   { tensor = "fc2.weight", axis = 1, exp = -1 },
/// ]
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Facts (flattened: `heads = 4` at the top level).
    #[serde(flatten)]
    pub facts: Facts,
    /// Use only the groups of this file (no derivation).
    #[serde(default)]
    pub replace: bool,
    /// Groups described outright.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// Tensors to leave alone whatever the derivation says.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl SpecFile {
    /// Parses a TOML spec file.
    pub fn read(path: &Path) -> Result<SpecFile> {
        let text = std::fs::read_to_string(path).map_err(|e| SpecError::File {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
        Self::parse(&text).map_err(|msg| SpecError::File {
            path: path.display().to_string(),
            msg,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> std::result::Result<SpecFile, String> {
        // `flatten` and `deny_unknown_fields` do not mix in serde; check unknown keys by hand.
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        const KEYS: [&str; 12] = [
            "family",
            "heads",
            "kv_heads",
            "head_dim",
            "activation",
            "rope",
            "flatten",
            "tied_embeddings",
            "sources",
            "replace",
            "groups",
            "exclude",
        ];
        for k in table.keys() {
            if !KEYS.contains(&k.as_str()) {
                return Err(format!("unknown key `{k}` (expected one of {KEYS:?})"));
            }
        }
        let mut f: SpecFile = toml::from_str(text).map_err(|e| e.to_string())?;
        f.facts.sources = vec!["spec file".into()];
        Ok(f)
    }
}

/// The `config.json` that describes `path`: `path/config.json` for a directory, else
/// `config.json` beside the file.
pub fn config_json_for(path: &Path) -> Option<PathBuf> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()?.to_path_buf()
    };
    let c = dir.join("config.json");
    c.is_file().then_some(c)
}

/// The spec of an opened checkpoint: facts from its metadata, a `config.json` beside it
/// (when `path` is a directory or a file inside one), then `spec_file` (a TOML [`SpecFile`])
/// when given, in that order of precedence; groups derived from names and shapes unless the
/// spec file replaces them. The result is validated against the checkpoint.
pub fn spec_for_checkpoint(
    ck: &Checkpoint,
    path: &Path,
    spec_file: Option<&Path>,
) -> Result<ModelSpec> {
    let mut facts = Facts::from_metadata(ck.metadata());
    if let Some(c) = config_json_for(path) {
        facts = facts.merge(Facts::from_config_json(&c)?);
    }
    let file = match spec_file {
        Some(p) => Some(SpecFile::read(p)?),
        None => None,
    };
    if let Some(f) = &file {
        facts = facts.merge(f.facts.clone());
    }
    let infos: Vec<(String, Vec<usize>)> = ck
        .infos()
        .map(|i| (i.name.clone(), i.shape.clone()))
        .collect();
    let mut spec = match &file {
        Some(f) if f.replace => ModelSpec {
            family: Family::Custom,
            facts: facts.clone(),
            tensors: infos
                .iter()
                .map(|(n, s)| TensorEntry {
                    name: n.clone(),
                    shape: s.clone(),
                    role: crate::derive::role_of(n, s),
                    layer: crate::layer_of(n).to_string(),
                })
                .collect(),
            groups: vec![],
            excluded: vec![],
            notes: vec![],
            unproven: vec![],
            chain: vec![],
        },
        _ => derive(&infos, &facts)?,
    };
    // Integer tensors (position ids, counters, masks) hold no weights a unit could read.
    spec.unproven.retain(|u| {
        u.kind != UnprovenKind::Consumer
            || ck
                .infos()
                .find(|i| i.name == u.tensor)
                .is_none_or(|i| i.dtype.is_float())
    });
    if let Some(f) = file {
        if !f.exclude.is_empty() {
            for g in &mut spec.groups {
                g.members.retain(|m| !f.exclude.contains(&m.tensor));
            }
            spec.groups.retain(|g| !g.members.is_empty());
            for t in &f.exclude {
                spec.excluded.retain(|e| &e.tensor != t);
                spec.excluded.push(Excluded {
                    tensor: t.clone(),
                    reason: "excluded by the spec file".into(),
                });
            }
        }
        // What the file declares is proven: the tensors it says to leave alone, and a tensor its
        // own groups move on *every* axis that has a permuted group's size (a group on one axis
        // says nothing about another: an LSTM's hidden units on axis 0 do not vouch for the conv
        // channels it reads on axis 1).
        let sizes: Vec<usize> = spec
            .groups
            .iter()
            .chain(&f.groups)
            .map(|g| g.size)
            .filter(|&n| n > 1)
            .collect();
        let moved: std::collections::HashSet<(&str, usize)> = f
            .groups
            .iter()
            .flat_map(|g| g.members.iter().map(|m| (m.tensor.as_str(), m.axis)))
            .collect();
        let settled = |tensor: &str| -> bool {
            if f.exclude.iter().any(|t| t == tensor) {
                return true;
            }
            let Some(t) = spec.tensors.iter().find(|t| t.name == tensor) else {
                return false;
            };
            let mut axes = t
                .shape
                .iter()
                .enumerate()
                .filter(|(_, n)| sizes.contains(n))
                .map(|(ax, _)| ax)
                .peekable();
            axes.peek().is_some() && axes.all(|ax| moved.contains(&(tensor, ax)))
        };
        let keep: Vec<bool> = spec
            .unproven
            .iter()
            .map(|u| u.kind != UnprovenKind::Consumer || !settled(&u.tensor))
            .collect();
        let mut k = keep.into_iter();
        spec.unproven.retain(|_| k.next().unwrap_or(true));
        spec.groups.extend(f.groups);
        if f.replace {
            spec.excluded.retain(|e| {
                spec.groups
                    .iter()
                    .all(|g| g.members.iter().all(|m| m.tensor != e.tensor))
            });
        }
    }
    spec.fill_excluded("not touched by any group");
    // Integer tensors cannot be permuted.
    for t in &spec.tensors {
        if t.role == Role::Counter {
            for g in &spec.groups {
                if g.members.iter().any(|m| m.tensor == t.name) {
                    return Err(SpecError::BadMember {
                        group: g.name.clone(),
                        tensor: t.name.clone(),
                        shape: t.shape.clone(),
                        msg: "an integer counter cannot be part of a group".into(),
                    });
                }
            }
        }
    }
    spec.validate()?;
    Ok(spec)
}

use crate::derive;
