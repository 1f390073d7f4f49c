//! Random input networks, hidden-unit permutations of them, and batches for the tests.
#![allow(dead_code)]

use burn::tensor::{Device, Tensor, TensorData};
use weightspace_wsnets::{LayerShape, WsBatch, WsShape};

/// A small deterministic generator (SplitMix64), so tests need no RNG crate.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

/// One input network on the host: per layer, weights `[out, inp, kernel]` row-major and biases.
#[derive(Clone, Debug)]
pub struct HostNet {
    pub weights: Vec<Vec<f32>>,
    pub biases: Vec<Vec<f32>>,
}

pub fn random_net(shape: &WsShape, rng: &mut SplitMix) -> HostNet {
    HostNet {
        weights: shape
            .layers
            .iter()
            .map(|l| {
                (0..l.out * l.inp * l.kernel)
                    .map(|_| rng.uniform())
                    .collect()
            })
            .collect(),
        biases: shape
            .layers
            .iter()
            .map(|l| (0..l.out).map(|_| 0.5 * rng.uniform()).collect())
            .collect(),
    }
}

/// Permutes the hidden units with a random permutation `p` per hidden layer `i`: new row `r` of
/// layer `i` = old row `p[r]`, new bias `r` = old bias `p[r]`, new column `r` of layer `i+1` = old
/// column `p[r]`. The function computed by the net is unchanged.
pub fn permute_hidden(net: &HostNet, shape: &WsShape, rng: &mut SplitMix) -> HostNet {
    let mut out = net.clone();
    let n = shape.layers.len();
    for i in 0..n.saturating_sub(1) {
        let l = &shape.layers[i];
        let p = rng.permutation(l.out);
        let row = l.inp * l.kernel;
        let w = out.weights[i].clone();
        let b = out.biases[i].clone();
        for (r, &src) in p.iter().enumerate() {
            out.weights[i][r * row..(r + 1) * row].copy_from_slice(&w[src * row..(src + 1) * row]);
            out.biases[i][r] = b[src];
        }
        let nl = &shape.layers[i + 1];
        let k = nl.kernel;
        let w = out.weights[i + 1].clone();
        for o in 0..nl.out {
            for (c, &src) in p.iter().enumerate() {
                let dst = (o * nl.inp + c) * k;
                let s = (o * nl.inp + src) * k;
                out.weights[i + 1][dst..dst + k].copy_from_slice(&w[s..s + k]);
            }
        }
    }
    out
}

pub fn to_batch(nets: &[HostNet], shape: &WsShape, device: &Device) -> WsBatch {
    let bs = nets.len();
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    for (i, l) in shape.layers.iter().enumerate() {
        let w: Vec<f32> = nets
            .iter()
            .flat_map(|n| n.weights[i].iter().copied())
            .collect();
        let b: Vec<f32> = nets
            .iter()
            .flat_map(|n| n.biases[i].iter().copied())
            .collect();
        weights.push(Tensor::<4>::from_data(
            TensorData::new(w, [bs, l.out, l.inp, l.kernel]),
            device,
        ));
        biases.push(Tensor::<2>::from_data(
            TensorData::new(b, [bs, l.out]),
            device,
        ));
    }
    WsBatch { weights, biases }
}

pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 tensor")
}

/// MLP 12-8-6-3 (three layers, two hidden sets).
pub fn mlp_shape() -> WsShape {
    WsShape {
        layers: vec![
            LayerShape {
                out: 8,
                inp: 12,
                kernel: 1,
            },
            LayerShape {
                out: 6,
                inp: 8,
                kernel: 1,
            },
            LayerShape {
                out: 3,
                inp: 6,
                kernel: 1,
            },
        ],
    }
}

/// Like the zoo's CNN, smaller: conv 1->5 (3x3), conv 5->4 (3x3), conv 4->4 (3x3), dense 4->3.
pub fn cnn_shape() -> WsShape {
    WsShape {
        layers: vec![
            LayerShape {
                out: 5,
                inp: 1,
                kernel: 9,
            },
            LayerShape {
                out: 4,
                inp: 5,
                kernel: 9,
            },
            LayerShape {
                out: 4,
                inp: 4,
                kernel: 9,
            },
            LayerShape {
                out: 3,
                inp: 4,
                kernel: 1,
            },
        ],
    }
}

/// Two layers (one hidden set): the smallest shape HNP supports.
pub fn two_layer_shape() -> WsShape {
    WsShape {
        layers: vec![
            LayerShape {
                out: 7,
                inp: 5,
                kernel: 1,
            },
            LayerShape {
                out: 2,
                inp: 7,
                kernel: 1,
            },
        ],
    }
}
