//! Lineage: which model was derived from which, from the weights alone (MoTHer, Horwitz et al.
//! 2024, "Unsupervised Model Tree Heritage Recovery").
//!
//! 1. Features per model, one pass over each tensor: its BLAKE3 content hash, squared norm,
//!    excess kurtosis, and the values at a seeded sample of positions (the same positions in
//!    every model, so samples compare).
//! 2. For every pair, over the float tensors they share (same name and shape): the relative
//!    distance ‖a − b‖ / mean(‖a‖, ‖b‖) (identical tensors, by hash, contribute 0; others are
//!    estimated from the samples, scaled to the tensor's size), and the direction vote: the share
//!    of differing weight matrices (≥ 2 axes) whose kurtosis is higher in b than in a — weight
//!    kurtosis grows with training, so a parent has the lower one.
//! 3. Unchanged values: over the sampled positions that are not the same in every model
//!    ([`Informative`]), the share where two models are bit-identical. Wherever a fine-tune
//!    does not touch a weight (a data subset that never activates an input, dead units, frozen
//!    layers, updates below half an ulp in bf16), the child keeps its parent's exact value; a
//!    sibling keeps it only where neither touched it. So the parent shares more exact values
//!    with each child than the children share with each other: bit-identity is additive along
//!    the tree (maximum parsimony) even where distances are not. Weight decay (SGD or momentum
//!    with L2, AdamW) leaves no value exact but multiplies every untouched weight by one
//!    common factor c < 1, so the largest spike of child/parent ratios below 1
//!    ([`common_factor_share`]) counts as explained too, for the arc parent → child only.
//! 4. Models whose distance chain exceeds `split` are unrelated: connected components under that
//!    threshold are separate trees.
//! 5. In each component, the minimum spanning arborescence (Chu–Liu/Edmonds) of the complete
//!    digraph with cost(a → b) = d(a, b)²/d²max·(1 + λ·(1 − vote(a → b))) + β·(1 − u(a → b)),
//!    u the explained share (bit-identical plus common-factor) and d²max the largest squared
//!    distance in the component, a single root forced by a virtual super-root. β (default
//!    1000) makes the explained values decide wherever they differ; where none are (every
//!    fine-tune changed every weight, e.g. Adam with a coupled L2 term, which moves untouched
//!    weights by about lr per step rather than by a factor) the term is the same constant for
//!    every arc and the tree is the distance-and-kurtosis one.
//!
//! Why the unchanged values: fine-tunes from one parent on the same task move the same way, so
//! siblings are nearer each other than either is to their parent, and a distance tree chains
//! them (a → b → c instead of a → b, a → c). On the zoo's real fine-tune trees of RESULTS.md
//! this term took directed-edge accuracy from 61.9 % to 82.1 % (and from 43.3 % to 81.1 % on a
//! wider tree shape), leaving the simulated trees, where no weight is bit-identical, at 96 %;
//! the common factor then took the wider shape from 77.8 % to 84.4 % (zoo seeds 0–5).
//!
//! Why squared distances: when fine-tuning steps are roughly independent, squared distances add
//! up along a lineage (as the variance of a random walk does), so the arborescence is a
//! minimum-evolution tree. With plain distances a sibling, about √2·d away, beats the true
//! parent (d away) as soon as the kurtosis vote on the parent's edge is wrong (cost 2·d); with
//! squared ones the two cost the same and the distances of the rest of the tree decide. On the
//! simulated 100-model trees of RESULTS.md this took directed-edge accuracy from 80.5 % to
//! 96.0 %.
//!
//! Each edge gets a confidence in [0, 1]: the direction vote times a parent margin,
//! vote · (½ + ½·(c₂ − c₁)/(c₂ + c₁)), where c₁ is the chosen edge's cost and c₂ the cheapest
//! other candidate parent's, both less the child's constant β·(1 − its best unchanged share).
//! It is a heuristic score, not a calibrated probability.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::Checkpoint;

use crate::error::Error;
use crate::rng::SplitMix64;

/// Options of [`lineage`].
#[derive(Debug, Clone)]
pub struct LineageOptions {
    /// Values sampled per tensor for distances (all of a smaller tensor).
    pub sample: usize,
    /// Relative distance above which two models are taken as unrelated.
    pub split: f64,
    /// Weight λ of a direction disagreement in the edge cost.
    pub direction_weight: f64,
    /// Weight matrices with fewer elements do not vote on direction.
    pub min_vote_numel: usize,
    /// Seed for the sample positions.
    pub seed: u64,
    /// Weight β of the unchanged-values term in the edge cost (0: distances and kurtosis
    /// only, the algorithm before this term).
    pub unchanged_weight: f64,
    /// Relative tolerance of the scaled-values part of that term: weights a child shrank by
    /// one common factor c < 1 (weight decay where no data gradient reached) count as
    /// explained by the parent when their ratios agree within it (0: off, bit-identical
    /// values only).
    pub scale_tolerance: f64,
}

impl Default for LineageOptions {
    fn default() -> Self {
        LineageOptions {
            sample: 8192,
            split: 0.7,
            direction_weight: 1.0,
            min_vote_numel: 64,
            seed: 0,
            unchanged_weight: 1000.0,
            scale_tolerance: 1e-5,
        }
    }
}

/// What [`lineage`] keeps of one tensor.
#[derive(Debug, Clone)]
pub struct TensorFeatures {
    /// Shape.
    pub shape: Vec<usize>,
    /// BLAKE3 content hash.
    pub hash: [u8; 32],
    /// Σ x².
    pub norm2: f64,
    /// Excess kurtosis m₄/m₂² − 3 (NaN for constant tensors).
    pub kurtosis: f64,
    /// Values at the sampled positions.
    pub sample: Vec<f32>,
    /// Elements.
    pub numel: usize,
    /// Votes on direction (a weight matrix large enough).
    pub votes: bool,
}

/// What [`lineage`] keeps of one model: its float tensors by name.
#[derive(Debug, Clone, Default)]
pub struct ModelFeatures {
    /// Tensor name → features.
    pub tensors: BTreeMap<String, TensorFeatures>,
}

/// A recovered edge.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LineageEdge {
    /// The parent, as given.
    pub parent: String,
    /// The child, as given.
    pub child: String,
    /// Relative weight distance between them.
    pub distance: f64,
    /// Heuristic confidence in [0, 1] (see the module doc).
    pub confidence: f64,
    /// Share of differing weight matrices whose kurtosis is higher in the child (0.5: no
    /// evidence).
    pub direction: f64,
}

/// The recovered forest.
#[derive(Debug, Clone, Serialize)]
pub struct LineageReport {
    /// Models as given.
    pub nodes: Vec<String>,
    /// One edge per non-root model, parents before children where possible.
    pub edges: Vec<LineageEdge>,
    /// The root of each tree.
    pub roots: Vec<String>,
    /// Mean excess kurtosis of each model's voting tensors (NaN without any).
    pub kurtosis: Vec<f64>,
}

fn name_seed(seed: u64, name: &str, numel: usize) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h ^ (numel as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Excess kurtosis (Fisher, population moments) and Σx² of values.
pub fn kurtosis(values: &[f32]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, 0.0);
    }
    let mean = values.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (mut m2, mut m4, mut sq) = (0f64, 0f64, 0f64);
    for &x in values {
        let x = x as f64;
        let d = x - mean;
        let d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
        sq += x * x;
    }
    m2 /= n;
    m4 /= n;
    let k = if m2 > 0.0 {
        m4 / (m2 * m2) - 3.0
    } else {
        f64::NAN
    };
    (k, sq)
}

/// The features of one checkpoint (float tensors only).
pub fn model_features(ck: &Checkpoint, opts: &LineageOptions) -> Result<ModelFeatures, Error> {
    let idx: Vec<usize> = ck
        .infos()
        .enumerate()
        .filter(|(_, t)| t.dtype.is_float() && t.numel() > 0)
        .map(|(i, _)| i)
        .collect();
    let tensors = idx
        .par_iter()
        .map(|&i| {
            let t = ck.tensor_at(i)?;
            let v = t
                .f32s()
                .map_err(|k| weightspace_io::Error::new(ck.path(), k).with_tensor(t.name))?;
            let (k, norm2) = kurtosis(&v);
            let mut g = SplitMix64::new(name_seed(opts.seed, t.name, v.len()));
            let pos = g.sample_sorted(v.len(), opts.sample.max(1));
            let sample = pos.iter().map(|&p| v[p]).collect();
            let feats = TensorFeatures {
                shape: t.shape.to_vec(),
                hash: *t.content_hash().as_bytes(),
                norm2,
                kurtosis: k,
                sample,
                numel: v.len(),
                votes: t.shape.len() >= 2 && v.len() >= opts.min_vote_numel,
            };
            Ok((t.name.to_string(), feats))
        })
        .collect::<Result<BTreeMap<_, _>, Error>>()?;
    Ok(ModelFeatures { tensors })
}

/// Distance and direction between two models.
#[derive(Debug, Clone, Copy)]
pub struct PairEvidence {
    /// Relative distance (NaN when nothing is shared).
    pub distance: f64,
    /// Share of the informative weights (see [`Informative`]) that are bit-identical in both
    /// models (0 when none are informative).
    pub unchanged: f64,
    /// Share of the informative weights where the second model is the first times one common
    /// factor c < 1, within the scale tolerance (see [`common_factor_share`]; 0 when off).
    pub scaled_fwd: f64,
    /// The same with the models swapped: the first is the second times a common c < 1.
    pub scaled_bwd: f64,
    /// Share of differing voting tensors with higher kurtosis in the second model.
    pub vote: f64,
}

/// Which sampled positions of each tensor (by name and shape) are informative: not the same
/// value in every model that has the tensor. Weights that no model ever changed say nothing
/// about who derives from whom.
#[derive(Debug, Clone, Default)]
pub struct Informative {
    /// Tensor name → (shape, per sampled position: informative).
    masks: BTreeMap<String, Vec<ShapeMask>>,
}

/// A shape and, per sampled position, whether it is informative.
type ShapeMask = (Vec<usize>, Vec<bool>);

impl Informative {
    /// The informative positions over `feats`.
    pub fn new(feats: &[ModelFeatures]) -> Informative {
        let mut masks: BTreeMap<String, Vec<ShapeMask>> = BTreeMap::new();
        // First holder of each (name, shape): its sample is the reference.
        let mut first: BTreeMap<(&str, &[usize]), &[f32]> = BTreeMap::new();
        for f in feats {
            for (name, t) in &f.tensors {
                first.entry((name, &t.shape)).or_insert(&t.sample);
            }
        }
        let mut mask: BTreeMap<(&str, &[usize]), Vec<bool>> = first
            .iter()
            .map(|(k, s)| (*k, vec![false; s.len()]))
            .collect();
        for f in feats {
            for (name, t) in &f.tensors {
                let key = (name.as_str(), t.shape.as_slice());
                let r = first[&key];
                let m = mask.get_mut(&key).expect("same keys");
                for ((x, y), m) in t.sample.iter().zip(r).zip(m.iter_mut()) {
                    *m |= x.to_bits() != y.to_bits();
                }
            }
        }
        for ((name, shape), m) in mask {
            masks
                .entry(name.to_string())
                .or_default()
                .push((shape.to_vec(), m));
        }
        Informative { masks }
    }

    fn get(&self, name: &str, shape: &[usize]) -> Option<&[bool]> {
        self.masks
            .get(name)?
            .iter()
            .find(|(s, _)| s == shape)
            .map(|(_, m)| m.as_slice())
    }
}

/// Fewer bit-identical informative sampled values than this between two models count as none:
/// unrelated f32 weights coincide by chance now and then (one value in a thousand-weight model
/// in the simulated trees of RESULTS.md), and at β = 1000 even one would outweigh the distances.
pub const MIN_UNCHANGED: usize = 8;

/// Fewer ratios than this in a common-factor spike count as none (see
/// [`common_factor_share`]).
pub const MIN_SCALED: usize = 16;

/// Compares two models' features; `informative` (from all the models compared) enables the
/// unchanged-values share.
pub fn pair_evidence(
    a: &ModelFeatures,
    b: &ModelFeatures,
    informative: Option<&Informative>,
    scale_tolerance: f64,
) -> PairEvidence {
    let (mut d2, mut na, mut nb) = (0f64, 0f64, 0f64);
    let (mut up, mut votes) = (0f64, 0usize);
    let (mut same, mut inf, mut same_raw) = (0f64, 0f64, 0usize);
    // Screens the ratios b/a as they go by; they are gathered only if a spike may be there.
    let mut screen = SpikeScreen::new(2.0 * scale_tolerance);
    let mut shared = 0usize;
    for (name, ta) in &a.tensors {
        let Some(tb) = b.tensors.get(name) else {
            continue;
        };
        if ta.shape != tb.shape {
            continue;
        }
        shared += 1;
        na += ta.norm2;
        nb += tb.norm2;
        let scale = ta.numel as f64 / ta.sample.len().max(1) as f64;
        if let Some(m) = informative.and_then(|i| i.get(name, &ta.shape)) {
            let (mut s, mut k) = (0usize, 0usize);
            for ((x, y), &m) in ta.sample.iter().zip(&tb.sample).zip(m) {
                if m {
                    k += 1;
                    if x.to_bits() == y.to_bits() {
                        s += 1;
                    } else if scale_tolerance > 0.0 {
                        screen.add(*y as f64 / *x as f64);
                    }
                }
            }
            same += s as f64 * scale;
            same_raw += s;
            inf += k as f64 * scale;
        }
        if ta.hash == tb.hash {
            continue;
        }
        let s: f64 = ta
            .sample
            .iter()
            .zip(&tb.sample)
            .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
            .sum();
        d2 += s * scale;
        if ta.votes && ta.kurtosis.is_finite() && tb.kurtosis.is_finite() {
            votes += 1;
            up += match tb.kurtosis.partial_cmp(&ta.kurtosis) {
                Some(std::cmp::Ordering::Greater) => 1.0,
                Some(std::cmp::Ordering::Less) => 0.0,
                _ => 0.5,
            };
        }
    }
    let mean_norm = (na.sqrt() + nb.sqrt()) / 2.0;
    let distance = if shared == 0 {
        f64::NAN
    } else if d2 == 0.0 {
        0.0
    } else if mean_norm > 0.0 {
        d2.sqrt() / mean_norm
    } else {
        f64::INFINITY
    };
    let (fwd, bwd) = if inf > 0.0 && scale_tolerance > 0.0 && screen.hit {
        let ratios = ratios(a, b, informative);
        let (below, above): (Vec<_>, Vec<_>) = ratios.into_iter().partition(|&(r, _)| r < 1.0);
        let inverted = above.into_iter().map(|(r, w)| (1.0 / r, w)).collect();
        (
            common_factor_share(below, scale_tolerance) / inf,
            common_factor_share(inverted, scale_tolerance) / inf,
        )
    } else {
        (0.0, 0.0)
    };
    PairEvidence {
        distance,
        unchanged: if inf > 0.0 && same_raw >= MIN_UNCHANGED {
            same / inf
        } else {
            0.0
        },
        scaled_fwd: fwd,
        scaled_bwd: bwd,
        vote: if votes == 0 { 0.5 } else { up / votes as f64 },
    }
}

/// The weight of the largest spike of `ratios` (value, weight), all below 1: a group that
/// agrees within a relative `tol` (all in [r, r·(1 + 2·tol)] for some r) and stands out of
/// its neighbourhood, less that neighbourhood's level. 0 without such a group.
///
/// Why: weight decay shrinks every weight no data gradient reached by one common factor. With
/// SGD or SGD-momentum and an L2 term (`g + wd·p`), such a weight obeys a linear recurrence
/// with the same coefficients for every position (p_T = c·p_0, c < 1, set by lr, wd and the
/// step count); with decoupled decay (AdamW: p ← (1 − lr·wd)·p − lr·update, and Adam's update
/// is 0 where the gradient always was) likewise. So where bit-identical values vanish, the
/// child is its parent times c on those positions, and the ratio child/parent piles up at c
/// far tighter (float rounding, ~1e-6) than ratios of trained weights coincide. c < 1 also
/// says which of the two is the child. Adam with a coupled L2 term does not give this
/// signature: Adam normalises the decay gradient, so untouched weights move by about lr per
/// step toward 0, not by a common factor.
///
/// Guards against ratios that pile up for other reasons: weights a fine-tune barely touched
/// have ratios near 1 (a density that rises steeply toward 1), so a window must end at least
/// one window width below 1, hold at least [`MIN_SCALED`] ratios and four times as many as
/// either window beside it (a smooth density has no such spike); their mean is subtracted.
/// On the zoo trees of RESULTS.md chance spikes held 8 ratios, true ones hundreds.
pub fn common_factor_share(mut ratios: Vec<(f64, f64)>, tol: f64) -> f64 {
    if ratios.len() < MIN_SCALED || tol <= 0.0 {
        return 0.0;
    }
    let width = 2.0 * tol;
    let mut screen = SpikeScreen::new(width);
    for &(r, _) in &ratios {
        screen.add(r);
    }
    if !screen.hit {
        return 0.0;
    }
    ratios.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let mut prefix = Vec::with_capacity(ratios.len() + 1);
    prefix.push(0f64);
    for &(_, w) in &ratios {
        prefix.push(prefix.last().unwrap() + w);
    }
    let mut best = 0f64;
    // Window [r, r·(1 + width)] = lo..hi, beside it left..lo and hi..right; all four bounds
    // only move forward as r grows.
    let (mut hi, mut left, mut right) = (0usize, 0usize, 0usize);
    for lo in 0..ratios.len() {
        let r = ratios[lo].0;
        if r * (1.0 + 2.0 * width) > 1.0 {
            break;
        }
        while hi < ratios.len() && ratios[hi].0 <= r * (1.0 + width) {
            hi += 1;
        }
        while ratios[left].0 < r * (1.0 - width) {
            left += 1;
        }
        right = right.max(hi);
        while right < ratios.len() && ratios[right].0 <= r * (1.0 + 2.0 * width) {
            right += 1;
        }
        let n_in = hi - lo;
        if n_in < MIN_SCALED {
            continue;
        }
        let (n_left, n_right) = (lo - left, right - hi);
        if (n_in as f64) < 4.0 * n_left.max(n_right) as f64 {
            continue;
        }
        let w_in = prefix[hi] - prefix[lo];
        let w_bg = (prefix[lo] - prefix[left] + prefix[right] - prefix[hi]) / 2.0;
        best = best.max(w_in - w_bg);
    }
    best
}

/// The ratios b/a (value, weight: the tensor's elements per sample) over the informative
/// sampled positions where the two differ, both non-zero with the same sign.
fn ratios(
    a: &ModelFeatures,
    b: &ModelFeatures,
    informative: Option<&Informative>,
) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (name, ta) in &a.tensors {
        let Some(tb) = b.tensors.get(name).filter(|tb| tb.shape == ta.shape) else {
            continue;
        };
        let Some(m) = informative.and_then(|i| i.get(name, &ta.shape)) else {
            continue;
        };
        let scale = ta.numel as f64 / ta.sample.len().max(1) as f64;
        for ((x, y), &m) in ta.sample.iter().zip(&tb.sample).zip(m) {
            if m && x.to_bits() != y.to_bits() {
                let r = *y as f64 / *x as f64;
                if r > 0.0 && r.is_finite() {
                    out.push((r, scale));
                }
            }
        }
    }
    out
}

/// Cheap screen before [`common_factor_share`] gathers and sorts ratios: `hit` stays false
/// only when no window of relative `width` can hold [`MIN_SCALED`] of the ratios added.
/// Positive f64s order as their bits, so the exponent and the top `b` mantissa bits cut the
/// axis into bins of relative width ≥ `width` (2^-b/2 ≥ width); a window (or its image under
/// r ↦ 1/r) then lies in at most two neighbouring bins, counted in 1,024 slots (bins that share
/// a slot only add up, so a spike is never missed). Trained weights' ratios spread thinly and
/// almost every pair is screened out: gathering and sorting them all made lineage on the
/// 100-model simulated trees 5× slower.
struct SpikeScreen {
    slots: [u32; SpikeScreen::SLOTS],
    shift: Option<u32>,
    hit: bool,
}

impl SpikeScreen {
    const SLOTS: usize = 1024;

    fn new(width: f64) -> SpikeScreen {
        let b = (-(2.0 * width).log2()).floor();
        SpikeScreen {
            slots: [0; Self::SLOTS],
            shift: (0.0..=52.0).contains(&b).then(|| 52 - b as u32),
            // Without a usable bin width (tolerance 0 or huge), do not screen anything out.
            hit: !(0.0..=52.0).contains(&b),
        }
    }

    fn add(&mut self, r: f64) {
        if self.hit || !(r > 0.0 && r.is_finite()) {
            return;
        }
        let Some(shift) = self.shift else { return };
        let n = Self::SLOTS;
        let k = ((r.to_bits() >> shift) as usize) % n;
        self.slots[k] += 1;
        let near = self.slots[(k + n - 1) % n].max(self.slots[(k + 1) % n]);
        self.hit = self.slots[k] + near >= MIN_SCALED as u32;
    }
}

/// A directed edge for [`min_arborescence`].
#[derive(Debug, Clone, Copy)]
pub struct Arc {
    /// Tail.
    pub from: usize,
    /// Head.
    pub to: usize,
    /// Cost.
    pub cost: f64,
}

/// Chu–Liu/Edmonds: the minimum-cost spanning arborescence of nodes `0..n` rooted at `root`.
/// Returns, per node, the index in `arcs` of its incoming arc (`None` for the root), or `None`
/// when some node cannot be reached.
pub fn min_arborescence(n: usize, root: usize, arcs: &[Arc]) -> Option<Vec<Option<usize>>> {
    let ids: Vec<usize> = (0..arcs.len()).collect();
    let chosen = edmonds(n, root, arcs, &ids)?;
    let mut parent = vec![None; n];
    for id in chosen {
        parent[arcs[id].to] = Some(id);
    }
    Some(parent)
}

/// Recursive contraction; `ids[k]` is the original index of `arcs[k]`. Returns original ids.
fn edmonds(n: usize, root: usize, arcs: &[Arc], ids: &[usize]) -> Option<Vec<usize>> {
    // Cheapest incoming arc of every node (first on ties, for determinism).
    let mut best: Vec<Option<usize>> = vec![None; n];
    for (k, a) in arcs.iter().enumerate() {
        if a.to == root || a.from == a.to {
            continue;
        }
        if best[a.to].is_none_or(|b| a.cost < arcs[b].cost) {
            best[a.to] = Some(k);
        }
    }
    if (0..n).any(|v| v != root && best[v].is_none()) {
        return None;
    }
    // Find cycles among the chosen arcs.
    let mut comp = vec![usize::MAX; n];
    let mut visit = vec![usize::MAX; n];
    let mut ncomp = 0;
    let mut in_cycle = vec![false; n];
    for start in 0..n {
        let mut v = start;
        while v != root && visit[v] == usize::MAX && comp[v] == usize::MAX {
            visit[v] = start;
            v = arcs[best[v].unwrap()].from;
        }
        if v != root && visit[v] == start && comp[v] == usize::MAX {
            // A new cycle through v.
            let mut u = v;
            loop {
                comp[u] = ncomp;
                in_cycle[u] = true;
                u = arcs[best[u].unwrap()].from;
                if u == v {
                    break;
                }
            }
            ncomp += 1;
        }
    }
    if ncomp == 0 {
        return Some(
            (0..n)
                .filter(|&v| v != root)
                .map(|v| ids[best[v].unwrap()])
                .collect(),
        );
    }
    for c in comp.iter_mut() {
        if *c == usize::MAX {
            *c = ncomp;
            ncomp += 1;
        }
    }
    let mut sub_arcs = Vec::new();
    let mut sub_ids = Vec::new();
    let mut origin = Vec::new(); // index into `arcs` of each contracted arc
    for (k, a) in arcs.iter().enumerate() {
        let (cu, cv) = (comp[a.from], comp[a.to]);
        if cu == cv {
            continue;
        }
        let cost = if in_cycle[a.to] {
            a.cost - arcs[best[a.to].unwrap()].cost
        } else {
            a.cost
        };
        sub_arcs.push(Arc {
            from: cu,
            to: cv,
            cost,
        });
        sub_ids.push(sub_ids.len());
        origin.push(k);
    }
    let sub = edmonds(ncomp, comp[root], &sub_arcs, &sub_ids)?;
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    let mut entered = vec![false; n];
    for s in sub {
        let k = origin[s];
        entered[arcs[k].to] = true;
        chosen.push(ids[k]);
    }
    // Keep every cycle arc except the one into the node where the cycle is entered.
    for v in 0..n {
        if in_cycle[v] && !entered[v] {
            chosen.push(ids[best[v].unwrap()]);
        }
    }
    Some(chosen)
}

/// Recovers the forest from features (the core of [`lineage`]).
pub fn recover(labels: &[String], feats: &[ModelFeatures], opts: &LineageOptions) -> LineageReport {
    let k = feats.len();
    let pairs: Vec<(usize, usize)> = (0..k)
        .flat_map(|i| (i + 1..k).map(move |j| (i, j)))
        .collect();
    let informative = (opts.unchanged_weight > 0.0).then(|| Informative::new(feats));
    let ev: Vec<PairEvidence> = pairs
        .par_iter()
        .map(|&(i, j)| {
            pair_evidence(
                &feats[i],
                &feats[j],
                informative.as_ref(),
                opts.scale_tolerance,
            )
        })
        .collect();
    let mut dist = vec![vec![0f64; k]; k];
    let mut same = vec![vec![0f64; k]; k];
    let mut vote = vec![vec![0.5f64; k]; k]; // vote[i][j]: evidence for i → j
    for (&(i, j), e) in pairs.iter().zip(&ev) {
        dist[i][j] = e.distance;
        dist[j][i] = e.distance;
        // Explained by the parent: bit-identical, or the child shrunk by a common factor.
        same[i][j] = e.unchanged + e.scaled_fwd;
        same[j][i] = e.unchanged + e.scaled_bwd;
        vote[i][j] = e.vote;
        vote[j][i] = 1.0 - e.vote;
    }
    // Components under the split threshold (union-find).
    let mut parent: Vec<usize> = (0..k).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for &(i, j) in &pairs {
        if dist[i][j] <= opts.split {
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            if a != b {
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut comps: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..k {
        let r = find(&mut parent, i);
        comps.entry(r).or_default().push(i);
    }
    let mut edges = Vec::new();
    let mut roots = Vec::new();
    for members in comps.values() {
        if members.len() == 1 {
            roots.push(members[0]);
            continue;
        }
        let m = members.len();
        // Squared distances relative to the largest in the component, so that β weighs the
        // unchanged-values term the same at any scale. The arcs cost `cost + β·(1 − best_same)`
        // = d²/d²max·(…) + β·(1 − same): every model pays for the values its parent does not
        // explain, and the root, which has no parent, is the model that would pay the most.
        // `cost` itself (less a constant per child) gives the parent margin of the confidence,
        // unchanged from before where no weights are bit-identical.
        let mut d2max = 0f64;
        let mut best_same = vec![0f64; k];
        for &i in members {
            for &j in members {
                if i != j {
                    let d2 = dist[i][j] * dist[i][j];
                    if d2.is_finite() {
                        d2max = d2max.max(d2);
                    }
                    best_same[j] = best_same[j].max(same[i][j]);
                }
            }
        }
        let d2max = if d2max > 0.0 { d2max } else { 1.0 };
        let cost = |i: usize, j: usize| {
            dist[i][j] * dist[i][j] / d2max * (1.0 + opts.direction_weight * (1.0 - vote[i][j]))
                + opts.unchanged_weight * (best_same[j] - same[i][j])
        };
        let mut arcs = Vec::with_capacity(m * m);
        let mut max_cost = 0f64;
        for (a, &i) in members.iter().enumerate() {
            for (b, &j) in members.iter().enumerate() {
                if a != b {
                    let c = cost(i, j) + opts.unchanged_weight * (1.0 - best_same[j]);
                    let c = if c.is_finite() { c } else { f64::MAX / 4.0 };
                    max_cost = max_cost.max(c);
                    arcs.push(Arc {
                        from: a,
                        to: b,
                        cost: c,
                    });
                }
            }
        }
        // The virtual root (index m): one edge to every member, dearer than any tree.
        let root_cost = (max_cost + 1.0) * m as f64 * 4.0;
        for b in 0..m {
            arcs.push(Arc {
                from: m,
                to: b,
                cost: root_cost,
            });
        }
        let tree = min_arborescence(m + 1, m, &arcs).expect("complete digraph");
        for (b, &j) in members.iter().enumerate() {
            let arc = arcs[tree[b].expect("non-root has a parent")];
            if arc.from == m {
                roots.push(j);
                continue;
            }
            let i = members[arc.from];
            let c1 = cost(i, j);
            let c2 = members
                .iter()
                .filter(|&&x| x != i && x != j)
                .map(|&x| cost(x, j))
                .fold(f64::INFINITY, f64::min);
            let margin = if c2.is_finite() && c1 + c2 > 0.0 {
                ((c2 - c1) / (c2 + c1)).clamp(0.0, 1.0)
            } else {
                1.0
            };
            edges.push((
                i,
                j,
                LineageEdge {
                    parent: labels[i].clone(),
                    child: labels[j].clone(),
                    distance: dist[i][j],
                    confidence: vote[i][j] * (0.5 + 0.5 * margin),
                    direction: vote[i][j],
                },
            ));
        }
    }
    roots.sort_unstable();
    // Order edges by depth (breadth-first from the roots), then by child index.
    let mut depth = vec![usize::MAX; k];
    for &r in &roots {
        depth[r] = 0;
    }
    let mut changed = true;
    while changed {
        changed = false;
        for (i, j, _) in &edges {
            if depth[*i] != usize::MAX && depth[*j] == usize::MAX {
                depth[*j] = depth[*i] + 1;
                changed = true;
            }
        }
    }
    edges.sort_by_key(|(_, j, _)| (depth[*j], *j));
    let kurt = feats
        .iter()
        .map(|f| {
            let v: Vec<f64> = f
                .tensors
                .values()
                .filter(|t| t.votes && t.kurtosis.is_finite())
                .map(|t| t.kurtosis)
                .collect();
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        })
        .collect();
    LineageReport {
        nodes: labels.to_vec(),
        edges: edges.into_iter().map(|(_, _, e)| e).collect(),
        roots: roots.into_iter().map(|r| labels[r].clone()).collect(),
        kurtosis: kurt,
    }
}

/// Recovers the model forest of `models` (label, checkpoint). `progress` is called once per
/// model whose features are done. At least two models are needed.
pub fn lineage(
    models: &[(String, Checkpoint)],
    opts: &LineageOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<LineageReport, Error> {
    if models.len() < 2 {
        return Err(Error::invalid(format!(
            "lineage needs at least two models, got {}",
            models.len()
        )));
    }
    let feats = models
        .iter()
        .map(|(_, ck)| {
            let f = model_features(ck, opts);
            progress();
            f
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if let Some((i, _)) = feats.iter().enumerate().find(|(_, f)| f.tensors.is_empty()) {
        return Err(Error::invalid(format!(
            "{}: no float tensors to compare",
            models[i].0
        )));
    }
    let labels: Vec<String> = models.iter().map(|(l, _)| l.clone()).collect();
    Ok(recover(&labels, &feats, opts))
}

fn quote_dot(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The forest in Graphviz DOT.
pub fn to_dot(r: &LineageReport) -> String {
    let mut out = String::from("digraph lineage {\n  rankdir=TB;\n  node [shape=box];\n");
    for n in &r.nodes {
        out.push_str(&format!("  {};\n", quote_dot(n)));
    }
    for e in &r.edges {
        out.push_str(&format!(
            "  {} -> {} [label=\"d={:.4} c={:.2}\"];\n",
            quote_dot(&e.parent),
            quote_dot(&e.child),
            e.distance,
            e.confidence
        ));
    }
    out.push_str("}\n");
    out
}

/// The forest as a Mermaid flowchart.
pub fn to_mermaid(r: &LineageReport) -> String {
    let id: BTreeMap<&str, usize> = r
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut out = String::from("flowchart TD\n");
    for (i, n) in r.nodes.iter().enumerate() {
        out.push_str(&format!("  n{i}[\"{}\"]\n", n.replace('"', "#quot;")));
    }
    for e in &r.edges {
        out.push_str(&format!(
            "  n{} -->|\"d={:.4} c={:.2}\"| n{}\n",
            id[e.parent.as_str()],
            e.distance,
            e.confidence,
            id[e.child.as_str()]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edmonds_contracts_a_cycle() {
        // Classic example: greedy picks the 1 <-> 2 cycle; the optimum enters it from 0.
        let arcs = [
            Arc {
                from: 0,
                to: 1,
                cost: 10.0,
            },
            Arc {
                from: 0,
                to: 2,
                cost: 12.0,
            },
            Arc {
                from: 1,
                to: 2,
                cost: 1.0,
            },
            Arc {
                from: 2,
                to: 1,
                cost: 2.0,
            },
            Arc {
                from: 2,
                to: 3,
                cost: 3.0,
            },
            Arc {
                from: 1,
                to: 3,
                cost: 7.0,
            },
        ];
        let p = min_arborescence(4, 0, &arcs).unwrap();
        let cost: f64 = p.iter().flatten().map(|&k| arcs[k].cost).sum();
        assert_eq!(cost, 14.0); // 0->1, 1->2, 2->3
        assert_eq!(p[0], None);
        assert_eq!(arcs[p[1].unwrap()].from, 0);
        assert_eq!(arcs[p[3].unwrap()].from, 2);
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn edmonds_matches_brute_force() {
        let mut g = SplitMix64::new(5);
        for n in 2..6usize {
            for _ in 0..20 {
                let mut arcs = Vec::new();
                for i in 0..n {
                    for j in 0..n {
                        if i != j && j != 0 {
                            arcs.push(Arc {
                                from: i,
                                to: j,
                                cost: (g.below(20) + 1) as f64,
                            });
                        }
                    }
                }
                let p = min_arborescence(n, 0, &arcs).unwrap();
                let got: f64 = p.iter().flatten().map(|&k| arcs[k].cost).sum();
                // Brute force over parent choices.
                let mut best = f64::INFINITY;
                let total = (n as u64).pow(n as u32 - 1);
                for code in 0..total {
                    let mut par = vec![0usize; n];
                    let mut c = code;
                    for v in 1..n {
                        par[v] = (c % n as u64) as usize;
                        c /= n as u64;
                    }
                    if (1..n).any(|v| par[v] == v) {
                        continue;
                    }
                    let ok = (1..n).all(|v| {
                        let mut u = v;
                        for _ in 0..n {
                            if u == 0 {
                                return true;
                            }
                            u = par[u];
                        }
                        u == 0
                    });
                    if !ok {
                        continue;
                    }
                    let s: f64 = (1..n)
                        .map(|v| {
                            arcs.iter()
                                .find(|a| a.from == par[v] && a.to == v)
                                .unwrap()
                                .cost
                        })
                        .sum();
                    best = best.min(s);
                }
                assert_eq!(got, best, "n={n}");
                for v in 1..n {
                    assert!(p[v].is_some());
                }
            }
        }
    }

    #[test]
    fn common_factor_spike_counts_and_a_smooth_density_does_not() {
        let mut g = SplitMix64::new(3);
        // 500 ratios spread over (0.5, 1.5), 40 at one factor 0.9995 (±1e-7), weight 2 each.
        let mut r: Vec<(f64, f64)> = (0..500).map(|_| (0.5 + g.uniform(), 2.0)).collect();
        r.extend((0..40).map(|_| (0.9995 * (1.0 + 1e-7 * (g.uniform() - 0.5)), 2.0)));
        let below: Vec<(f64, f64)> = r.iter().copied().filter(|x| x.0 < 1.0).collect();
        let got = common_factor_share(below, 1e-5);
        assert!((78.0..=80.0).contains(&got), "{got}");
        assert_eq!(common_factor_share(r.clone(), 0.0), 0.0);
        // Barely touched weights: ratios that crowd toward 1 (density rising steeply) are
        // no common factor.
        // (About 50 ratios per window at the first allowed one, 1 − 4e-5.)
        let near_one: Vec<(f64, f64)> = (1..20000)
            .map(|i| (1.0 - 1e-9 * (i as f64).powi(2), 1.0))
            .collect();
        assert_eq!(common_factor_share(near_one, 1e-5), 0.0);
        // Too few to count.
        let few: Vec<(f64, f64)> = (0..MIN_SCALED - 1).map(|_| (0.9, 1.0)).collect();
        assert_eq!(common_factor_share(few, 1e-5), 0.0);
    }

    #[test]
    fn kurtosis_of_known_values() {
        // scipy.stats.kurtosis([1, 2, 3, 4, 10]) == 278.8 / 10² − 3 == −0.212
        let (k, sq) = kurtosis(&[1.0, 2.0, 3.0, 4.0, 10.0]);
        assert!((k + 0.212).abs() < 1e-12, "{k}");
        assert_eq!(sq, 130.0);
    }
}
