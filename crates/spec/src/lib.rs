//! # weightspace-spec
//!
//! A [`ModelSpec`] says what the tensors of a checkpoint *are*: which layer each belongs to, each
//! tensor's [`Role`], and — the point of this crate — the **symmetry groups** acting on them. A
//! [`Group`] is a set of units (hidden neurons, channels, residual-stream dimensions, attention
//! heads, within-head dimensions) that one permutation (and, where the activation allows it, one
//! per-unit scaling) moves together; its [`Member`]s list every `(tensor, axis)` slice the group
//! acts on, with a [`Layout`] saying where each unit's entries lie along that axis (blocks for
//! heads or flattened conv channels, repeats for fused QKV or within-head dimensions).
//!
//! Specs are derived from tensor names and shapes ([`derive()`]) for plain MLPs, CNNs (with
//! BatchNorm running statistics), torchvision-style ResNets, and transformers in BERT, GPT-2 and
//! LLaMA naming. Facts the shapes cannot tell (number of heads, activation, RoPE, tied
//! embeddings) come from [`Facts`]: a Hugging Face `config.json` beside the weights, checkpoint
//! metadata, or a TOML spec file ([`SpecFile`]) that can also describe groups outright.
//!
//! A derived spec is a guess, and it says what it cannot prove in [`ModelSpec::unproven`]: a
//! tensor no group moves that has an axis the size of a permuted group (it may read those
//! units, like an LSTM after a conv stack), a conv-to-dense flatten whose order is unknown
//! ([`Flatten`]), an unknown head count. [`ModelSpec::require_proven`] refuses such a spec;
//! whatever applies group elements to real weights should call it first.
//!
//! A neural-graph view of MLP/CNN chains (neurons as nodes, weights as edges) lives in
//! [`graph`].
//!
//! This crate owns the *description* of symmetries. It reads tensor names, shapes and metadata
//! through `weightspace-io` but never tensor values, and must not know about applying group
//! elements, matching, merging, training or the command line (that is `weightspace-symmetry`
//! and above).
#![warn(missing_docs)]

mod derive;
mod facts;
pub mod graph;

use serde::{Deserialize, Serialize};

pub use derive::derive;
pub use facts::{Facts, Flatten, SpecFile, config_json_for, spec_for_checkpoint};

/// Errors describing a spec that does not fit its checkpoint, or a spec file that cannot be
/// read. Every variant names the tensor or file concerned.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A group member names a tensor the checkpoint does not have.
    #[error("group `{group}`: tensor `{tensor}` is not in the checkpoint")]
    MissingTensor {
        /// Group name.
        group: String,
        /// Tensor name.
        tensor: String,
    },
    /// A member's layout does not fit the tensor's shape.
    #[error("group `{group}`: tensor `{tensor}` {shape:?}: {msg}")]
    BadMember {
        /// Group name.
        group: String,
        /// Tensor name.
        tensor: String,
        /// The tensor's shape.
        shape: Vec<usize>,
        /// What does not fit.
        msg: String,
    },
    /// Tensor names/shapes do not form an architecture the deriver understands.
    #[error(
        "cannot derive a spec: {0} (describe the model in a TOML spec file and pass `--spec FILE.toml`; README, \"Spec files\")"
    )]
    Underivable(String),
    /// The spec was guessed, and something the guess does not cover may read a permuted axis
    /// (or the head count is unknown): applying its groups could change the function.
    #[error(
        "cannot prove that the symmetry groups keep the function: `{tensor}` {reason}{more}. {HOW_TO_SPEC}"
    )]
    Unproven {
        /// The tensor whose consumer (or layout) is unknown.
        tensor: String,
        /// Why, in words.
        reason: String,
        /// `" (and N more: …)"` when several tensors are in doubt, else empty.
        more: String,
    },
    /// A spec or config file is unreadable or malformed.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// Reading the checkpoint failed.
    #[error(transparent)]
    Io(#[from] weightspace_io::Error),
}

/// How to tell the deriver more; ends every [`SpecError::Unproven`] message.
pub const HOW_TO_SPEC: &str = "Describe the model in a TOML spec file and pass `--spec FILE.toml` (README, \"Spec files\"; `weightspace spec PATH --json` shows what was derived)";

/// Result with a [`SpecError`].
pub type Result<T, E = SpecError> = std::result::Result<T, E>;

/// The architecture family a spec was derived for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// A chain of dense layers.
    Mlp,
    /// A chain of conv layers, then (after flatten or global pooling) dense layers.
    Cnn,
    /// torchvision-style ResNet (`layerS.B.convK`, `downsample`).
    Resnet,
    /// BERT naming (`encoder.layer.N.attention.self.query`).
    Bert,
    /// GPT-2 naming (`h.N.attn.c_attn`, Conv1D weights stored `[in, out]`).
    Gpt2,
    /// LLaMA naming (`layers.N.self_attn.q_proj`, RMSNorm, SwiGLU, RoPE, grouped KV heads).
    Llama,
    /// Described by a TOML spec file.
    Custom,
}

/// What a tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Dense or conv weight (PyTorch layout `[out, in, ...]`; GPT-2 Conv1D `[in, out]`).
    Weight,
    /// Bias of a dense or conv layer.
    Bias,
    /// Scale of a BatchNorm/LayerNorm/RMSNorm.
    NormWeight,
    /// Shift of a BatchNorm/LayerNorm.
    NormBias,
    /// BatchNorm running mean.
    RunningMean,
    /// BatchNorm running variance.
    RunningVar,
    /// An integer counter (`num_batches_tracked`).
    Counter,
    /// Token/position embedding table `[rows, dim]`.
    Embedding,
    /// A constant buffer (attention masks, rotary caches).
    Buffer,
    /// Anything else.
    Other,
}

/// How units of a group may be rescaled without changing the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scaling {
    /// Permutations only.
    None,
    /// Positive per-unit scaling (ReLU, leaky ReLU: positively homogeneous activations).
    Positive,
    /// Sign flips (odd activations: tanh, identity).
    Sign,
    /// Any non-zero factor (the unit passes through a linear map only: value/output dims,
    /// query/key dims, the `up` branch of a gated MLP).
    Any,
}

impl Scaling {
    /// True when positive scaling is a symmetry.
    pub fn allows_positive(self) -> bool {
        matches!(self, Scaling::Positive | Scaling::Any)
    }

    /// True when sign flips are a symmetry.
    pub fn allows_sign(self) -> bool {
        matches!(self, Scaling::Sign | Scaling::Any)
    }
}

/// What kind of units a group permutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// Hidden units / channels between two layers.
    Hidden,
    /// Dimensions of a residual stream (shared by every tensor that reads or writes it).
    Residual,
    /// Whole attention heads (Q, K, V rows and O columns move together).
    Heads,
    /// Dimensions within every head, shared by query and key.
    QkDims,
    /// Dimensions within every head, shared by value and output.
    VoDims,
}

/// Where the entries of unit `u` lie along a member's axis: at
/// `offset + r·stride + u·block + i` for `r < repeats`, `i < block`.
///
/// * plain hidden unit: `block = 1`;
/// * attention head of dimension `d`: `block = d`; in a fused QKV tensor also `repeats = 3`,
///   `stride = hidden`;
/// * within-head dimension shared by `H` heads: `block = 1`, `repeats = H`, `stride = d`;
/// * conv channel flattened into a dense layer over `s` spatial positions: `block = s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// First index of the group's range.
    #[serde(default)]
    pub offset: usize,
    /// How many times the unit pattern repeats.
    #[serde(default = "one")]
    pub repeats: usize,
    /// Distance between repeats.
    #[serde(default)]
    pub stride: usize,
    /// Contiguous entries per unit.
    #[serde(default = "one")]
    pub block: usize,
}

fn one() -> usize {
    1
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            offset: 0,
            repeats: 1,
            stride: 0,
            block: 1,
        }
    }
}

impl Layout {
    /// Contiguous blocks of `block` entries per unit.
    pub fn block(block: usize) -> Layout {
        Layout {
            block,
            ..Layout::default()
        }
    }

    /// The unit pattern repeated `repeats` times, `stride` apart, from `offset`.
    pub fn tiled(offset: usize, repeats: usize, stride: usize, block: usize) -> Layout {
        Layout {
            offset,
            repeats,
            stride,
            block,
        }
    }

    /// Axis index of entry `i` of repeat `r` of unit `u`.
    #[inline]
    pub fn index(&self, u: usize, r: usize, i: usize) -> usize {
        self.offset + r * self.stride + u * self.block + i
    }

    /// One past the largest axis index touched by a group of `size` units.
    pub fn extent(&self, size: usize) -> usize {
        if size == 0 || self.block == 0 || self.repeats == 0 {
            return self.offset;
        }
        self.offset + (self.repeats - 1) * self.stride + size * self.block
    }

    /// True when every unit is a single index (`block == 1`, `repeats == 1`).
    pub fn is_plain(&self) -> bool {
        self.block == 1 && self.repeats == 1
    }
}

/// One `(tensor, axis)` slice a group acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Tensor name.
    pub tensor: String,
    /// Axis the units lie along.
    pub axis: usize,
    /// Where each unit's entries lie along the axis.
    #[serde(default, flatten)]
    pub layout: Layout,
    /// Under a per-unit scaling `s`, this slice is multiplied by `s^exp` (1 for a unit's
    /// incoming weights and bias, -1 for its outgoing weights, 0 for slices that only move).
    #[serde(default = "one_i8")]
    pub exp: i8,
}

fn one_i8() -> i8 {
    1
}

impl Member {
    /// A member with a plain layout.
    pub fn new(tensor: impl Into<String>, axis: usize, exp: i8) -> Member {
        Member {
            tensor: tensor.into(),
            axis,
            layout: Layout::default(),
            exp,
        }
    }

    /// A member with the given layout.
    pub fn with_layout(tensor: impl Into<String>, axis: usize, layout: Layout, exp: i8) -> Member {
        Member {
            tensor: tensor.into(),
            axis,
            layout,
            exp,
        }
    }
}

/// A set of units that one group element (permutation, optionally per-unit scaling) acts on,
/// and every tensor slice it moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// A readable, unique name (`hidden.0`, `residual`, `layer.3.heads`, ...).
    pub name: String,
    /// What the units are.
    pub kind: GroupKind,
    /// Number of units.
    pub size: usize,
    /// Which rescalings are symmetries.
    pub scaling: Scaling,
    /// Every slice the group acts on.
    pub members: Vec<Member>,
}

/// A tensor and its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorEntry {
    /// Name in the checkpoint.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Role.
    pub role: Role,
    /// The layer it belongs to (its name without the last component).
    pub layer: String,
}

/// A tensor no group acts on, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    /// Tensor name.
    pub tensor: String,
    /// Why it is left as it is.
    pub reason: String,
}

/// What kind of doubt an [`Unproven`] entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnprovenKind {
    /// A tensor no group moves has an axis the size of a permuted group: it may read those
    /// units (an LSTM after a conv stack, a layer the deriver does not know).
    Consumer,
    /// A dense layer reads a flattened conv output and the flatten order (channel-major or
    /// position-major) is not known.
    Flatten,
    /// The number of attention heads is unknown (or does not fit): head and within-head groups
    /// are missing. Applying the other groups is still correct, but incomplete.
    Heads,
}

/// Something a derived spec does not prove, on one tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unproven {
    /// The tensor concerned.
    pub tensor: String,
    /// What kind of doubt.
    pub kind: UnprovenKind,
    /// Why, in words (starts with the tensor's shape where that helps).
    pub reason: String,
}

/// The symmetry description of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The family it was derived for.
    pub family: Family,
    /// The facts used (heads, activation, ...).
    pub facts: Facts,
    /// Every tensor with its role and layer, in checkpoint order.
    pub tensors: Vec<TensorEntry>,
    /// The symmetry groups. Groups acting on the same axis of the same tensor commute.
    pub groups: Vec<Group>,
    /// Tensors some group could act on only partly or not at all, and the reason
    /// (network inputs/outputs, vocabularies, buffers, ...): every tensor that no group
    /// touches is listed.
    pub excluded: Vec<Excluded>,
    /// Symmetries that exist but are not described, and why (e.g. heads unknown).
    pub notes: Vec<String>,
    /// What a derived spec cannot prove (see [`ModelSpec::require_proven`]): tensors that may
    /// read a permuted axis but that no group moves, flatten orders that shapes cannot tell,
    /// an unknown head count. Empty for a spec that is proven: a known family whose every
    /// tensor is accounted for, or groups declared in a spec file (`replace = true`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unproven: Vec<Unproven>,
    /// For MLP/CNN chains: the weight layers (name prefixes) from input to output, each with
    /// the norm layer that follows it, if any. Empty for other families.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<ChainLink>,
}

/// One weight layer of an MLP/CNN chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// Prefix of the layer (`layers.0` for `layers.0.weight`).
    pub layer: String,
    /// Prefix of the BatchNorm/LayerNorm that follows it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm: Option<String>,
}

impl ModelSpec {
    /// The entry for `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Checks that every member fits its tensor: the tensor exists, the axis exists and the
    /// layout stays within the axis.
    pub fn validate(&self) -> Result<()> {
        for g in &self.groups {
            for m in &g.members {
                let Some(t) = self.tensor(&m.tensor) else {
                    return Err(SpecError::MissingTensor {
                        group: g.name.clone(),
                        tensor: m.tensor.clone(),
                    });
                };
                let bad = |msg: String| SpecError::BadMember {
                    group: g.name.clone(),
                    tensor: m.tensor.clone(),
                    shape: t.shape.clone(),
                    msg,
                };
                if m.axis >= t.shape.len() {
                    return Err(bad(format!("axis {} does not exist", m.axis)));
                }
                let len = t.shape[m.axis];
                let l = &m.layout;
                if l.block == 0 || l.repeats == 0 {
                    return Err(bad("block and repeats must be positive".into()));
                }
                if l.repeats > 1 && l.stride < g.size * l.block {
                    return Err(bad(format!(
                        "repeats overlap: stride {} < {} units × block {}",
                        l.stride, g.size, l.block
                    )));
                }
                if l.extent(g.size) > len {
                    return Err(bad(format!(
                        "{} units of {} entries (offset {}, {} repeats, stride {}) do not fit axis {} of length {len}",
                        g.size, l.block, l.offset, l.repeats, l.stride, m.axis
                    )));
                }
                if !matches!(m.exp, -1..=2) {
                    return Err(bad(format!("scale exponent {} not in -1..=2", m.exp)));
                }
            }
        }
        Ok(())
    }

    /// Refuses a spec whose groups could change the function: `Err(SpecError::Unproven)`
    /// naming the first tensor in doubt. With `allow_missing_heads`, an unknown head count is
    /// accepted (the head groups are then simply missing; [`ModelSpec::heads_missing`] says so).
    pub fn require_proven(&self, allow_missing_heads: bool) -> Result<()> {
        let doubts: Vec<&Unproven> = self
            .unproven
            .iter()
            .filter(|u| !(allow_missing_heads && u.kind == UnprovenKind::Heads))
            .collect();
        let Some(first) = doubts.first() else {
            return Ok(());
        };
        let mut reason = first.reason.clone();
        if first.kind == UnprovenKind::Heads {
            reason.push_str(
                " (or pass `--no-heads` to align/permute/canonicalise the other groups only)",
            );
        }
        let rest: Vec<&str> = doubts[1..].iter().map(|u| u.tensor.as_str()).collect();
        let more = match rest.len() {
            0 => String::new(),
            n if n <= 4 => format!(" (also in doubt: {})", rest.join(", ")),
            n => format!(
                " (also in doubt: {}, and {} more)",
                rest[..4].join(", "),
                n - 4
            ),
        };
        Err(SpecError::Unproven {
            tensor: first.tensor.clone(),
            reason,
            more,
        })
    }

    /// The reason head groups are missing (head count unknown or not fitting), if they are.
    pub fn heads_missing(&self) -> Option<&Unproven> {
        self.unproven.iter().find(|u| u.kind == UnprovenKind::Heads)
    }

    /// Recomputes [`ModelSpec::excluded`] for tensors no group touches (keeping reasons
    /// already given).
    pub fn fill_excluded(&mut self, default_reason: &str) {
        let touched: std::collections::HashSet<&str> = self
            .groups
            .iter()
            .flat_map(|g| g.members.iter().map(|m| m.tensor.as_str()))
            .collect();
        let known: std::collections::HashSet<String> =
            self.excluded.iter().map(|e| e.tensor.clone()).collect();
        let mut add = Vec::new();
        for t in &self.tensors {
            if !touched.contains(t.name.as_str()) && !known.contains(&t.name) {
                let reason = match t.role {
                    Role::Counter => "integer counter, not per unit".to_string(),
                    Role::Buffer => "constant buffer".to_string(),
                    _ => default_reason.to_string(),
                };
                add.push(Excluded {
                    tensor: t.name.clone(),
                    reason,
                });
            }
        }
        self.excluded.extend(add);
    }

    /// Number of free parameters of the symmetry group's permutation part, as
    /// `Σ log10(size!)` (a readable measure of how much symmetry there is).
    pub fn log10_group_order(&self) -> f64 {
        self.groups
            .iter()
            .map(|g| (1..=g.size).map(|k| (k as f64).log10()).sum::<f64>())
            .sum()
    }
}

/// The layer of a tensor name: everything before the last `.`.
pub fn layer_of(name: &str) -> &str {
    name.rsplit_once('.').map(|(a, _)| a).unwrap_or("")
}
