//! The neural-graph view of an MLP/CNN chain (as in *Graph Neural Networks for Learning
//! Equivariant Representations of Neural Networks*, Kofinas et al. 2024): every neuron (input
//! feature, hidden unit or channel, output) is a node whose features are its bias (and, after a
//! BatchNorm, γ, β, running mean and variance); every weight is an edge whose features are the
//! weight (a whole kernel for conv layers, or the `s` weights of a channel flattened over `s`
//! positions). Permuting hidden units permutes nodes; the graph is the same up to isomorphism.
//!
//! Values come from the caller (a closure returning a tensor's values as `f32`): this crate
//! never reads tensor data itself.

use serde::Serialize;

use crate::{ModelSpec, SpecError};

/// A neural graph: nodes layer by layer, edges between consecutive layers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeuralGraph {
    /// Nodes per layer: input features, hidden units of each layer, outputs.
    pub layer_sizes: Vec<usize>,
    /// Features per node (`1` = bias only; `5` = bias, γ, β, running mean, running var).
    pub node_dim: usize,
    /// `n_nodes × node_dim`, row-major; input nodes have zero bias.
    pub node_features: Vec<f32>,
    /// Features per edge: the largest kernel size × flatten block; smaller ones are zero-padded.
    pub edge_dim: usize,
    /// Source and destination node of every edge.
    pub edges: Vec<(u32, u32)>,
    /// `n_edges × edge_dim`, row-major.
    pub edge_features: Vec<f32>,
}

impl NeuralGraph {
    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.layer_sizes.iter().sum()
    }

    /// Index of the first node of layer `l`.
    pub fn layer_start(&self, l: usize) -> usize {
        self.layer_sizes[..l].iter().sum()
    }

    /// Builds the graph of a chain spec; `values(name)` returns a tensor's values (`None` when
    /// absent).
    pub fn build(
        spec: &ModelSpec,
        mut values: impl FnMut(&str) -> Option<Vec<f32>>,
    ) -> Result<NeuralGraph, SpecError> {
        if spec.chain.is_empty() {
            return Err(SpecError::Underivable(format!(
                "the neural-graph view needs an MLP/CNN chain, this is a {:?} spec",
                spec.family
            )));
        }
        let shape = |n: &str| {
            spec.tensor(n)
                .map(|t| t.shape.clone())
                .ok_or_else(|| SpecError::Underivable(format!("expected tensor `{n}`")))
        };
        // Sizes and per-layer edge sizes.
        let mut sizes = Vec::new();
        let mut edge_sizes = Vec::new();
        for (i, link) in spec.chain.iter().enumerate() {
            let s = shape(&format!("{}.weight", link.layer))?;
            let kernel: usize = s[2..].iter().product();
            if i == 0 {
                sizes.push(s[1]);
                edge_sizes.push((1, kernel));
            } else {
                let prev = *sizes.last().unwrap_or(&1);
                let block = s[1] / prev.max(1);
                edge_sizes.push((block, kernel));
            }
            sizes.push(s[0]);
        }
        let has_norm = spec.chain.iter().any(|l| l.norm.is_some());
        let node_dim = if has_norm { 5 } else { 1 };
        let edge_dim = edge_sizes.iter().map(|(b, k)| b * k).max().unwrap_or(1);
        let n_nodes: usize = sizes.iter().sum();
        let mut node_features = vec![0f32; n_nodes * node_dim];
        if has_norm {
            for n in 0..n_nodes {
                node_features[n * node_dim + 1] = 1.0;
                node_features[n * node_dim + 4] = 1.0;
            }
        }
        let mut edges = Vec::new();
        let mut edge_features = Vec::new();
        let mut start = 0usize;
        for (l, link) in spec.chain.iter().enumerate() {
            let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
            let dst0 = start + fan_in;
            let w = values(&format!("{}.weight", link.layer)).ok_or_else(|| {
                SpecError::Underivable(format!("no values for `{}.weight`", link.layer))
            })?;
            let (block, kernel) = edge_sizes[l];
            let per_out = fan_in * block * kernel;
            if w.len() != fan_out * per_out {
                return Err(SpecError::Underivable(format!(
                    "`{}.weight` has {} values, expected {}",
                    link.layer,
                    w.len(),
                    fan_out * per_out
                )));
            }
            for j in 0..fan_out {
                for i in 0..fan_in {
                    edges.push(((start + i) as u32, (dst0 + j) as u32));
                    let at = j * per_out + i * block * kernel;
                    let mut f = w[at..at + block * kernel].to_vec();
                    f.resize(edge_dim, 0.0);
                    edge_features.extend(f);
                }
            }
            if let Some(b) = values(&format!("{}.bias", link.layer)) {
                for (j, v) in b.iter().enumerate().take(fan_out) {
                    node_features[(dst0 + j) * node_dim] = *v;
                }
            }
            if let Some(np) = &link.norm {
                for (k, t) in ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .enumerate()
                {
                    if let Some(v) = values(&format!("{np}.{t}")) {
                        for (j, x) in v.iter().enumerate().take(fan_out) {
                            node_features[(dst0 + j) * node_dim + 1 + k] = *x;
                        }
                    }
                }
            }
            start += fan_in;
        }
        Ok(NeuralGraph {
            layer_sizes: sizes,
            node_dim,
            node_features,
            edge_dim,
            edges,
            edge_features,
        })
    }
}
