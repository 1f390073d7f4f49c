//! The default view of an ONNX model: its weights, under the names the source model gave them.
//!
//! An exported graph stores, beside the parameters, the constants its operators need: shape
//! plumbing (`Reshape`/`Unsqueeze`/`Slice`/`Gather` indices, int64), scalars (`sqrt(d)`, the `1`
//! of GELU, a `Pow` exponent). [`weights`] keeps a tensor when
//!
//! * it is floating-point with more than one element, unless every reader uses it as `Resize`
//!   `roi`/`scales` or `Upsample` `scales`; or
//! * it is floating-point and an operator reads it where that operator takes a parameter (any
//!   size, so the `[1]` bias of a one-output Conv or Linear and a single PReLU slope count):
//!   Conv/ConvTranspose `W`,`B`; Gemm `B`,`C`; MatMul either input; Layer/RMS/Instance/Group
//!   normalisation scale and bias; BatchNormalization scale, bias, mean, variance; LSTM/GRU/RNN
//!   `W`,`R`,`B`; PRelu slope; `Gather` data (embeddings); an `Add` operand whose other operand a
//!   MatMul/Gemm/Conv produced (a bias); or
//! * it is an 8-bit integer tensor with more than one element (a quantised weight: shape plumbing
//!   is int64/int32), or any tensor a quantisation operator reads (DequantizeLinear,
//!   QuantizeLinear, `*Integer`, `QLinear*`, MatMulNBits, ...: weights, scales, zero points).
//!
//! Booleans, wider integers and scalars read by no parameter slot are left out (the checkpoint
//! says how many under the metadata key `hidden_tensors`).
//!
//! The exporter deduplicates parameters with equal values, replacing the second by an `Identity`
//! of the first: such an `Identity` output is presented as a tensor of its own (sharing storage),
//! so that every parameter of the source model is there — unless its name is made up
//! (`onnx::…`, `/…`) and stays so after renaming.
//!
//! Then names. `torch.onnx.export` names a parameter it rewrote after the operator reading it
//! (`onnx::MatMul_470`, the transpose of a Linear weight folded into a constant) and names that
//! operator after its module path (`/encoder/layer.0/attention/self/query/MatMul`). Such a tensor
//! (a name starting `onnx::`) is renamed when exactly one node reads it, the node's name is a
//! module path, and its slot says the role: MatMul `B` (rank 2) is the Linear weight, presented
//! transposed (`[out, in]`, a strided view, nothing copied); Gemm `B` (transposed when `transB`
//! is 0) and `C`; the bias `Add` after such a MatMul/Gemm in the same module; LayerNormalization
//! scale and bias; a PRelu slope (presented as a vector, as PyTorch holds it); `Gather` data.
//! Conv inputs are never renamed: the exporter's `onnx::Conv_N` holds a BatchNorm folded into the
//! convolution, which is not the source's `conv.weight`. A path component repeating its
//! predecessor (`/ff/ff.0/` for the first child of a called `Sequential` `ff`) replaces it.
//!
//! A rename is refused — the stored name kept — when the new name exists already, when two
//! tensors would get the same name, or when the file contradicts the rule: when at least as many
//! named parameters (read by one node) have names outside their reader's module path as inside
//! it, nothing is renamed and the metadata key `names_kept` says why. The stored name and layout
//! stay available as an [`Alias`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};

use super::proto::NodeProto;
use crate::checkpoint::Alias;
use crate::dtype::DType;
use crate::tensor::{Data, Entry, TensorInfo, gather_strided};

/// One operator call, as far as selection and naming need it.
struct Node {
    op: String,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Gemm's `transB` attribute.
    trans_b: bool,
}

/// Every node of every graph (subgraphs included), with who reads and who writes each name.
#[derive(Default)]
pub(crate) struct Nodes {
    nodes: Vec<Node>,
    /// Name → (node, input slot) of every read.
    uses: HashMap<String, Vec<(usize, usize)>>,
    /// Name → the node writing it.
    producer: HashMap<String, usize>,
}

impl Nodes {
    /// Records a node.
    pub(crate) fn add(&mut self, n: &NodeProto) {
        let i = self.nodes.len();
        for (slot, input) in n.input.iter().enumerate() {
            if !input.is_empty() {
                self.uses.entry(input.clone()).or_default().push((i, slot));
            }
        }
        for out in &n.output {
            if !out.is_empty() {
                self.producer.entry(out.clone()).or_insert(i);
            }
        }
        let trans_b =
            n.op_type == "Gemm" && n.attribute.iter().any(|a| a.name == "transB" && a.i != 0);
        self.nodes.push(Node {
            op: n.op_type.clone(),
            name: n.name.clone(),
            inputs: n.input.clone(),
            outputs: n.output.clone(),
            trans_b,
        });
    }

    fn uses(&self, name: &str) -> &[(usize, usize)] {
        self.uses.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// True when node `n` reads a parameter at input `slot`.
    fn param_slot(&self, n: usize, slot: usize) -> bool {
        let node = &self.nodes[n];
        match (node.op.as_str(), slot) {
            ("Conv" | "ConvTranspose" | "Gemm", 1 | 2)
            | ("MatMul", 0 | 1)
            | (
                "LayerNormalization"
                | "RMSNormalization"
                | "SimplifiedLayerNormalization"
                | "InstanceNormalization"
                | "GroupNormalization",
                1 | 2,
            )
            | ("SkipLayerNormalization", 2..=4)
            | ("BatchNormalization", 1..=4)
            | ("LSTM" | "GRU" | "RNN", 1..=3)
            | ("PRelu", 1)
            | ("Gather", 0) => true,
            ("Add", 0 | 1) => self.bias_of(n, slot).is_some(),
            _ => false,
        }
    }

    /// For an `Add` reading a bias at `slot`: the MatMul/Gemm/Conv node writing the other operand.
    fn bias_of(&self, n: usize, slot: usize) -> Option<usize> {
        let node = &self.nodes[n];
        if node.op != "Add" || node.inputs.len() != 2 || slot > 1 {
            return None;
        }
        let other = &node.inputs[1 - slot];
        let p = *self.producer.get(other)?;
        matches!(
            self.nodes[p].op.as_str(),
            "MatMul" | "Gemm" | "Conv" | "ConvTranspose"
        )
        .then_some(p)
    }

    /// True when every read of a tensor is a shape-like float input.
    fn only_shape_reads(&self, uses: &[(usize, usize)]) -> bool {
        !uses.is_empty()
            && uses.iter().all(|&(n, slot)| {
                matches!(
                    (self.nodes[n].op.as_str(), slot),
                    ("Resize", 1 | 2) | ("Upsample", 1)
                )
            })
    }
}

/// True for operators whose every constant input is quantisation data.
fn is_quant_op(op: &str) -> bool {
    matches!(
        op,
        "DequantizeLinear"
            | "QuantizeLinear"
            | "DynamicQuantizeMatMul"
            | "MatMulNBits"
            | "MatMulBnb4"
            | "QGemm"
            | "QAttention"
            | "GatherBlockQuantized"
    ) || op.starts_with("QLinear")
        || op.ends_with("Integer")
}

/// True when a stored tensor is a weight (see the module documentation).
fn is_weight(info: &TensorInfo, uses: &[(usize, usize)], nodes: &Nodes) -> bool {
    if uses.iter().any(|&(n, _)| is_quant_op(&nodes.nodes[n].op)) {
        return true;
    }
    let numel = info.numel();
    match info.dtype {
        DType::I8 | DType::U8 => numel > 1,
        d if d.is_float() => {
            uses.iter().any(|&(n, s)| nodes.param_slot(n, s))
                || (numel > 1 && !nodes.only_shape_reads(uses))
        }
        _ => false,
    }
}

/// True for names an exporter made up rather than took from the model.
fn made_up(name: &str) -> bool {
    name.starts_with("onnx::") || name.starts_with('/')
}

/// The module path of a node named like `/encoder/layer.0/attention/self/query/MatMul`
/// (`encoder.layer.0.attention.self.query`), or `None` when the name is not such a path.
fn module_path(node_name: &str) -> Option<String> {
    let rest = node_name.strip_prefix('/')?;
    let mut parts: Vec<&str> = rest.split('/').collect();
    parts.pop()?;
    if parts.is_empty() {
        return None;
    }
    let mut out: Vec<&str> = Vec::with_capacity(parts.len());
    for p in parts {
        let ok = !p.is_empty()
            && !p.starts_with('.')
            && !p.ends_with('.')
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !ok {
            return None;
        }
        match out.last_mut() {
            Some(last) if p.strip_prefix(*last).is_some_and(|r| r.starts_with('.')) => *last = p,
            _ => out.push(p),
        }
    }
    Some(out.join("."))
}

/// What a tensor read at `slot` of node `n` is to its module.
#[derive(Clone)]
struct Role {
    /// `weight` or `bias`.
    suffix: &'static str,
    /// The stored tensor is `[in, out]`: present its transpose.
    transpose: bool,
    /// Present as a vector (a PRelu slope stored broadcastable, `[C, 1, 1]`).
    flatten: bool,
}

/// The role of a tensor read at `slot` of node `n`, when it is one that may be renamed (never a
/// Conv input: see the module documentation).
fn role(nodes: &Nodes, n: usize, slot: usize, info: &TensorInfo) -> Option<Role> {
    let node = &nodes.nodes[n];
    let r = |suffix, transpose| {
        Some(Role {
            suffix,
            transpose,
            flatten: false,
        })
    };
    let rank = info.shape.len();
    match (node.op.as_str(), slot) {
        ("MatMul", 1) if rank == 2 => r("weight", true),
        ("Gemm", 1) if rank == 2 => r("weight", !node.trans_b),
        ("Gemm", 2) => r("bias", false),
        ("Add", 0 | 1) if rank == 1 => {
            let p = nodes.bias_of(n, slot)?;
            let linear = matches!(nodes.nodes[p].op.as_str(), "MatMul" | "Gemm");
            let same = module_path(&nodes.nodes[p].name) == module_path(&node.name);
            (linear && same).then_some(())?;
            r("bias", false)
        }
        ("LayerNormalization", 1) => r("weight", false),
        ("LayerNormalization", 2) => r("bias", false),
        ("PRelu", 1) => {
            let non_unit = info.shape.iter().filter(|&&d| d != 1).count();
            (non_unit <= 1).then_some(())?;
            Some(Role {
                suffix: "weight",
                transpose: false,
                flatten: rank != 1,
            })
        }
        ("Gather", 0) if rank == 2 => r("weight", false),
        _ => None,
    }
}

/// The one (node, slot) reading `name`, when exactly one does.
fn single_use(nodes: &Nodes, name: &str) -> Option<(usize, usize)> {
    match nodes.uses(name) {
        [u] => Some(*u),
        _ => None,
    }
}

/// A stored `[rows, cols]` tensor presented as its `[cols, rows]` transpose.
fn transposed(path: &Path, stored: Entry) -> Entry {
    let (rows, cols) = (stored.info.shape[0], stored.info.shape[1]);
    let info = TensorInfo {
        name: stored.info.name.clone(),
        dtype: stored.info.dtype,
        shape: vec![cols, rows],
    };
    let data = match stored.data {
        Data::Slice { buf, start, len } => Data::Strided {
            buf,
            storage_start: start,
            storage_len: len,
            offset: 0,
            strides: vec![1, cols],
        },
        _ => {
            let path: PathBuf = path.to_path_buf();
            let esize = stored.info.dtype.size().unwrap_or(1);
            Data::Lazy(Arc::new(move || {
                let bytes = stored.bytes(&path)?;
                Ok(gather_strided(&bytes, esize, 0, &[cols, rows], &[1, cols]))
            }))
        }
    };
    Entry { info, data }
}

/// The weights of a model read in full (`entries`, their stored names in `stored`), renamed as
/// the module documentation says, with the aliases of renamed and copied tensors. Adds
/// `hidden_tensors` (and `names_kept` when names were kept) to `metadata`.
pub(crate) fn weights(
    path: &Path,
    entries: Vec<Entry>,
    stored: &[String],
    nodes: &Nodes,
    metadata: &mut BTreeMap<String, Value>,
) -> (Vec<Entry>, BTreeMap<String, Alias>) {
    let total = entries.len();
    // (stored name, entry, shared-with) for kept tensors.
    let mut kept: Vec<(String, Entry, Option<String>)> = Vec::new();
    let mut by_stored: HashMap<&str, usize> = HashMap::new();
    for (e, s) in entries.into_iter().zip(stored) {
        if is_weight(&e.info, nodes.uses(s), nodes) {
            by_stored.entry(s.as_str()).or_insert(kept.len());
            kept.push((s.clone(), e, None));
        }
    }
    let hidden = total - kept.len();
    // Identity copies of weights (the exporter's deduplication).
    let mut names: HashSet<String> = kept.iter().map(|(_, e, _)| e.info.name.clone()).collect();
    let mut copies = Vec::new();
    for node in &nodes.nodes {
        if node.op != "Identity" || node.inputs.len() != 1 || node.outputs.len() != 1 {
            continue;
        }
        let (src, out) = (&node.inputs[0], &node.outputs[0]);
        let Some(&k) = by_stored.get(src.as_str()) else {
            continue;
        };
        if out.is_empty() || names.contains(out) || by_stored.contains_key(out.as_str()) {
            continue;
        }
        let mut e = kept[k].1.clone();
        e.info.name = out.clone();
        names.insert(out.clone());
        copies.push((out.clone(), e, Some(kept[k].1.info.name.clone())));
    }
    kept.extend(copies);

    // Does the file follow the path rule? Named parameters read by one node say: their names
    // must start with that node's module path. Weight tying makes a few disagree; when most do,
    // the rule does not fit this exporter and nothing is renamed.
    let (mut agree, mut disagree, mut example) = (0usize, 0usize, None);
    for (s, _, _) in &kept {
        if made_up(s) {
            continue;
        }
        let Some((n, _)) = single_use(nodes, s) else {
            continue;
        };
        let Some(m) = module_path(&nodes.nodes[n].name) else {
            continue;
        };
        if s.strip_prefix(m.as_str())
            .is_some_and(|r| r.starts_with('.'))
        {
            agree += 1;
        } else {
            disagree += 1;
            example.get_or_insert_with(|| {
                format!(
                    "tensor `{s}` is read by node `{}`, whose path names module `{m}`",
                    nodes.nodes[n].name
                )
            });
        }
    }
    let contradiction = (disagree > 0 && disagree >= agree).then(|| {
        format!(
            "{disagree} of {} named parameters do not match the node paths that read them \
             (e.g. {})",
            agree + disagree,
            example.unwrap_or_default()
        )
    });

    // Proposed renames: kept index → (new name, role).
    let mut proposed: Vec<(usize, String, Role)> = Vec::new();
    if contradiction.is_none() {
        for (i, (s, e, _)) in kept.iter().enumerate() {
            if !s.starts_with("onnx::") {
                continue;
            }
            let Some((n, slot)) = single_use(nodes, s) else {
                continue;
            };
            let Some(m) = module_path(&nodes.nodes[n].name) else {
                continue;
            };
            let Some(r) = role(nodes, n, slot, &e.info) else {
                continue;
            };
            proposed.push((i, format!("{m}.{}", r.suffix), r));
        }
    }
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, name, _) in &proposed {
        *count.entry(name.as_str()).or_default() += 1;
    }
    let mut renames: HashMap<usize, (String, Role)> = proposed
        .iter()
        .filter(|(_, name, _)| count[name.as_str()] == 1 && !names.contains(name))
        .map(|(i, name, r)| (*i, (name.clone(), r.clone())))
        .collect();

    let mut aliases = BTreeMap::new();
    let mut out = Vec::with_capacity(kept.len());
    for (i, (s, mut e, shared)) in kept.into_iter().enumerate() {
        let stored_shape = e.info.shape.clone();
        let renamed = renames.remove(&i);
        if shared.is_some() && renamed.is_none() && made_up(&s) {
            // A copy under an exporter's name adds nothing but noise.
            continue;
        }
        if let Some((name, r)) = renamed {
            if r.transpose {
                e = transposed(path, e);
            } else if r.flatten {
                e.info.shape = vec![e.info.numel()];
            }
            e.info.name = name.clone();
            aliases.insert(
                name,
                Alias {
                    name: s,
                    stored_shape,
                    transposed: r.transpose,
                },
            );
        } else if let Some(src) = shared {
            aliases.insert(
                e.info.name.clone(),
                Alias {
                    name: src,
                    stored_shape,
                    transposed: false,
                },
            );
        }
        out.push(e);
    }
    if hidden > 0 {
        metadata.insert("hidden_tensors".into(), json!(hidden));
    }
    if let Some(why) = contradiction {
        metadata.insert(
            "names_kept".into(),
            json!(format!("exporter names kept as stored: {why}")),
        );
    }
    (out, aliases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths() {
        assert_eq!(
            module_path("/encoder/layer.0/attention/self/query/MatMul").as_deref(),
            Some("encoder.layer.0.attention.self.query")
        );
        assert_eq!(
            module_path("/model/model.0/auto_model/encoder/layer.2/output/dense/MatMul_1")
                .as_deref(),
            Some("model.0.auto_model.encoder.layer.2.output.dense")
        );
        assert_eq!(
            module_path("/layer.0/ff/ff.0/MatMul").as_deref(),
            Some("layer.0.ff.0")
        );
        assert_eq!(module_path("/MatMul"), None);
        assert_eq!(module_path("MatMul_3"), None);
        assert_eq!(module_path("If_0_then_branch__Inline_0__/stft/Conv"), None);
        assert_eq!(module_path("/a//MatMul"), None);
        assert_eq!(module_path("/a b/MatMul"), None);
        assert_eq!(module_path("/ff/ffx/MatMul").as_deref(), Some("ff.ffx"));
    }
}
