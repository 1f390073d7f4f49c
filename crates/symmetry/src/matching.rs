//! Alignment: weight matching (Git Re-Basin, Ainsworth et al. 2023, `weight_matching.py`) and
//! activation matching, with the linear assignments solved by `lsap` (a translation of scipy's
//! `linear_sum_assignment`, so the same cost matrix gives the same permutation as scipy).
//!
//! Weight matching is coordinate descent: in each sweep the groups are visited in a random
//! order (a [`SplitMix64`] shuffle seeded with `seed`, re-drawn every sweep); for group `p` the
//! cost `C[u, v] = Σ_members ⟨ref unit u, other unit v⟩` is built with every *other* group's
//! current permutation applied to OTHER (and `p`'s own on the member's other axes, as the
//! reference does), the assignment maximising `Σ C[u, π(u)]` replaces `π_p`, and the sweep
//! records progress when the objective grew by more than 1e-12. It stops after a sweep without
//! progress or `max_iter` sweeps. Costs are accumulated in `f64`.
//!
//! Each assignment starts warm from the group's previous duals and assignment (an exact solver,
//! checked for optimality, falling back to `lsap`), so later sweeps cost a few augmentations
//! instead of a full solve. One more shortcut, which never changes the result: a group whose cost matrix cannot have changed
//! since its last assignment (no group sharing a tensor with it changed its permutation) is not
//! recomputed — the reference would rebuild the same matrix and get the same assignment.
//! Within a matrix, the terms of members whose other-side permutations did not change (the
//! residual stream's embeddings and norms; a layer whose groups kept their permutations) come
//! from a per-class cache (`CostPlan`), in a summation order fixed by the spec, so a cached
//! matrix equals a fresh one bit for bit.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;
use weightspace_spec::{Member, ModelSpec};

use crate::action::{GroupElement, Transform, apply, member_map};
use crate::rng::SplitMix64;
use crate::{Error, Result, Weights};

/// Options of [`weight_matching`].
#[derive(Debug, Clone)]
pub struct MatchOptions {
    /// Seed of the random group order.
    pub seed: u64,
    /// Most sweeps over all groups.
    pub max_iter: usize,
    /// Starting permutations (identity when `None`).
    pub init: Option<Transform>,
}

impl Default for MatchOptions {
    fn default() -> Self {
        MatchOptions {
            seed: 0,
            max_iter: 100,
            init: None,
        }
    }
}

/// What [`weight_matching`] found.
#[derive(Debug, Clone, Serialize)]
pub struct MatchResult {
    /// Permutations taking OTHER to REF (no scaling).
    pub transform: Transform,
    /// Sweeps run (the last one made no progress unless `max_iter` was hit).
    pub sweeps: usize,
    /// `Σ ⟨ref, other⟩` over the tensors the groups touch, before alignment.
    pub similarity_before: f64,
    /// The same after alignment.
    pub similarity_after: f64,
}

/// Solves a dense linear assignment (`n × n`, row-major), maximising or minimising; returns the
/// column assigned to each row.
pub fn solve_lap(n: usize, cost: &[f64], maximize: bool) -> Result<Vec<usize>> {
    if n == 0 {
        return Ok(vec![]);
    }
    if cost.len() != n * n || cost.iter().any(|c| !c.is_finite()) {
        return Err(Error::Invalid(
            "assignment cost matrix is not square or not finite (NaN/inf weights?)".into(),
        ));
    }
    let v = cost.to_vec();
    let (rows, cols) = lsap::solve(n, n, &v, maximize)
        .map_err(|e| Error::Invalid(format!("linear assignment failed: {e}")))?;
    let mut perm = vec![0; n];
    for (r, c) in rows.into_iter().zip(cols) {
        perm[r] = c;
    }
    Ok(perm)
}

/// The rows of one member (the plain version of [`unit_matrix_mapped`], kept as the
/// tests' reference): unit `u`'s entries (all other axes, every repeat and block entry) as
/// one row of an `size × cols` f64 matrix. Returns `(matrix, cols)`.
#[cfg(test)]
fn unit_matrix(data: &[f32], shape: &[usize], m: &Member, size: usize) -> (Vec<f64>, usize) {
    let len = shape[m.axis];
    let pre: usize = shape[..m.axis].iter().product();
    let post: usize = shape[m.axis + 1..].iter().product();
    let l = &m.layout;
    let cols = pre * l.repeats * l.block * post;
    let mut out = Vec::with_capacity(size * cols);
    for u in 0..size {
        for p in 0..pre {
            for r in 0..l.repeats {
                for i in 0..l.block {
                    let at = (p * len + l.index(u, r, i)) * post;
                    out.extend(data[at..at + post].iter().map(|&x| x as f64));
                }
            }
        }
    }
    (out, cols)
}

/// Source offsets of every index of the sub-tensor over `axes` (row-major over those axes),
/// with an optional source map per axis: `Σ_a map_a(k_a) · stride_a`.
fn axis_offsets(
    shape: &[usize],
    strides: &[usize],
    maps: &[Option<Vec<usize>>],
    axes: std::ops::Range<usize>,
) -> Vec<usize> {
    let mut offs = vec![0usize];
    for a in axes {
        let m = maps.get(a).and_then(|m| m.as_ref());
        offs = offs
            .iter()
            .flat_map(|&o| (0..shape[a]).map(move |k| o + m.map_or(k, |m| m[k]) * strides[a]))
            .collect();
    }
    offs
}

/// `unit_matrix(gather(data, shape, maps), shape, m, size)` in one pass, without the
/// gathered copy: unit `u`'s row holds, for every index `p` of the axes before `m.axis`,
/// repeat `r` and block entry `i`, the entries of the axes after it, read through `maps`.
/// Rows are filled in parallel; when `m.axis` is the last axis (a transposed read) the
/// leading axes are walked in tiles so that the source rows stay in cache.
fn unit_matrix_mapped(
    data: &[f32],
    shape: &[usize],
    maps: &[Option<Vec<usize>>],
    m: &Member,
    size: usize,
) -> (Vec<f64>, usize) {
    let mut out = Vec::new();
    let cols = unit_matrix_mapped_into(data, shape, maps, m, size, &mut out);
    (out, cols)
}

/// An element of a unit matrix: f64 (exact costs) or f32 (the certified fast path). Both hold
/// an f32 weight exactly.
pub(crate) trait Elem: Copy + Default + Send + Sync {
    fn of(x: f32) -> Self;
}

impl Elem for f64 {
    fn of(x: f32) -> Self {
        x as f64
    }
}

impl Elem for f32 {
    fn of(x: f32) -> Self {
        x
    }
}

/// [`unit_matrix_mapped`] into a reused buffer (resized to `size × cols`, every entry
/// written); returns `cols`.
pub(crate) fn unit_matrix_mapped_into<T: Elem>(
    data: &[f32],
    shape: &[usize],
    maps: &[Option<Vec<usize>>],
    m: &Member,
    size: usize,
    out: &mut Vec<T>,
) -> usize {
    let nd = shape.len();
    let ax = m.axis;
    let mut strides = vec![1usize; nd];
    for a in (0..nd.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    let pre_off = axis_offsets(shape, &strides, maps, 0..ax);
    let post_off = axis_offsets(shape, &strides, maps, ax + 1..nd);
    let (pre, post) = (pre_off.len(), post_off.len());
    let l = &m.layout;
    let rb = l.repeats * l.block;
    let cols = pre * rb * post;
    let amap = maps.get(ax).and_then(|m| m.as_ref());
    // Source offset along the unit axis of entry (r, i) of unit u: uoff[u * rb + r * block + i].
    let uoff: Vec<usize> = (0..size)
        .flat_map(|u| (0..l.repeats).flat_map(move |r| (0..l.block).map(move |i| l.index(u, r, i))))
        .map(|a| amap.map_or(a, |mp| mp[a]) * strides[ax])
        .collect();
    out.resize(size * cols, T::default());
    if size == 0 || cols == 0 {
        return cols;
    }
    let post_contig = post_off.iter().enumerate().all(|(q, &o)| o == q);
    let threads = rayon::current_num_threads().max(1);
    let urows = size.div_ceil(threads * 4).max(1);
    out.par_chunks_mut(urows * cols)
        .enumerate()
        .for_each(|(chunk, rows)| {
            let u0 = chunk * urows;
            let nu = rows.len() / cols;
            if post == 1 {
                const TILE: usize = 64;
                for p0 in (0..pre).step_by(TILE) {
                    let p1 = (p0 + TILE).min(pre);
                    for du in 0..nu {
                        let row = &mut rows[du * cols..(du + 1) * cols];
                        for (e, &uo) in uoff[(u0 + du) * rb..(u0 + du + 1) * rb].iter().enumerate()
                        {
                            let so = uo + post_off[0];
                            for p in p0..p1 {
                                row[p * rb + e] = T::of(data[pre_off[p] + so]);
                            }
                        }
                    }
                }
            } else {
                for du in 0..nu {
                    let row = &mut rows[du * cols..(du + 1) * cols];
                    let us = &uoff[(u0 + du) * rb..(u0 + du + 1) * rb];
                    let mut at = 0;
                    for &po in &pre_off {
                        for &uo in us {
                            let base = po + uo;
                            let dst = &mut row[at..at + post];
                            if post_contig {
                                dst.iter_mut()
                                    .zip(&data[base..base + post])
                                    .for_each(|(d, &x)| *d = T::of(x));
                            } else {
                                dst.iter_mut()
                                    .zip(&post_off)
                                    .for_each(|(d, &o)| *d = T::of(data[base + o]));
                            }
                            at += post;
                        }
                    }
                }
            }
        });
    cols
}

/// Gathers `data` (row-major `shape`) with an optional source map per axis (the tests'
/// reference for [`unit_matrix_mapped`]).
#[cfg(test)]
fn gather(data: &[f32], shape: &[usize], maps: &[Option<Vec<usize>>]) -> Vec<f32> {
    let nd = shape.len();
    if maps.iter().all(|m| m.is_none()) || nd == 0 {
        return data.to_vec();
    }
    let mut strides = vec![1usize; nd];
    for a in (0..nd.saturating_sub(1)).rev() {
        strides[a] = strides[a + 1] * shape[a + 1];
    }
    // Source offset contribution of each index on each axis.
    let offs: Vec<Vec<usize>> = (0..nd)
        .map(|a| {
            (0..shape[a])
                .map(|k| maps[a].as_ref().map_or(k, |m| m[k]) * strides[a])
                .collect()
        })
        .collect();
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let last = nd - 1;
    let mut idx = vec![0usize; nd];
    loop {
        let base: usize = (0..last).map(|a| offs[a][idx[a]]).sum();
        out.extend(offs[last].iter().map(|&o| data[base + o]));
        // Odometer over the outer axes.
        let mut a = last;
        loop {
            if a == 0 {
                return out;
            }
            a -= 1;
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

/// `c (n×n) += a (n×k) · bᵀ (b is n×k)`, row blocks in parallel.
fn add_abt(c: &mut [f64], a: &[f64], b: &[f64], n: usize, k: usize) {
    if n == 0 || k == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let rows = n.div_ceil(threads).max(8);
    c.par_chunks_mut(rows * n)
        .zip(a.par_chunks(rows * k))
        .for_each(|(cc, aa)| {
            let m = cc.len() / n;
            // SAFETY: dimensions and strides describe the slices exactly: `aa` is m×k
            // row-major, `b` is n×k row-major read as its transpose (k×n, strides 1 and k),
            // `cc` is m×n row-major.
            unsafe {
                matrixmultiply::dgemm(
                    m,
                    k,
                    n,
                    1.0,
                    aa.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    1,
                    k as isize,
                    1.0,
                    cc.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        });
}

/// Where each tensor axis is acted on: `(tensor, axis) -> [(group, member)]`.
type AxisUsers = HashMap<(String, usize), Vec<(usize, usize)>>;

fn axis_users(spec: &ModelSpec) -> AxisUsers {
    let mut users: AxisUsers = HashMap::new();
    for (gi, g) in spec.groups.iter().enumerate() {
        for (mi, m) in g.members.iter().enumerate() {
            users
                .entry((m.tensor.clone(), m.axis))
                .or_default()
                .push((gi, mi));
        }
    }
    users
}

/// The cost matrix of group `p` (`size × size`, row-major) given the current permutations of
/// every group: `C[u, v] = Σ_members ⟨ref unit u, perm(other) unit v⟩`. Computed exactly as
/// [`weight_matching`] computes it (same member terms, same summation order), without its
/// caches.
pub fn cost_matrix(
    spec: &ModelSpec,
    reference: &Weights,
    other: &Weights,
    perms: &Transform,
    p: usize,
) -> Result<Vec<f64>> {
    let users = axis_users(spec);
    let mut plan = CostPlan::new(spec, &users, other, p)?;
    let version = vec![0u64; spec.groups.len()];
    let mut c = Vec::new();
    let mut scratch = Scratch::default();
    plan.cost(
        &Ctx {
            spec,
            users: &users,
            reference,
            other,
        },
        perms,
        None,
        &version,
        &mut c,
        &mut scratch,
    )?;
    Ok(c)
}

/// What every cost computation reads.
struct Ctx<'a> {
    spec: &'a ModelSpec,
    users: &'a AxisUsers,
    reference: &'a Weights,
    other: &'a Weights,
}

/// Buffers reused from one cost matrix to the next (no fresh pages per step).
#[derive(Default)]
struct Scratch {
    /// OTHER's unit matrix of the member being added.
    op: Vec<f64>,
    /// REF's unit matrix when not given precomputed (`cost_matrix`).
    rop: Vec<f64>,
    /// A class sum being built without a cache slot (`cost_matrix`).
    sum: Vec<f64>,
}

/// A class of a group's members: those whose terms depend on the same other groups (`key`).
struct Class {
    key: Vec<usize>,
    members: Vec<usize>,
    /// Cached `Σ_members` term (`size × size`) and the versions of `key` it was built with.
    sum: Vec<f64>,
    seen: Option<Vec<u64>>,
}

/// How group `p`'s cost matrix is summed, and the per-class term cache.
///
/// A member term `A_ref · B_otherᵀ` depends only on the permutations acting on the member's
/// tensor in OTHER — every group with a member on that tensor, except `p` on the member's own
/// axis. Members with the same set of such groups form a class. When a group has at least two
/// classes worth caching (≥ [`CACHE_MIN_COLS`] inner columns), `C` is the sum, in class order,
/// of per-class sums (each `0 + Σ` its members' terms in member order); a class whose groups
/// kept their permutations since its sum was built is not recomputed. Small classes are
/// recomputed every time, at their place in the same order. With fewer than two cacheable
/// classes, `C = 0 + Σ` member terms in member order, as without any cache. The summation
/// order depends only on the spec, never on what is cached, so a cached and a fresh
/// computation give the same `f64` bits ([`cost_matrix`] is the fresh one).
struct CostPlan {
    p: usize,
    classes: Vec<Class>,
    /// Which classes keep a cached sum (empty: sum the members directly, in member order).
    cached: Vec<bool>,
}

/// Inner dimension (summed columns) below which a class's term is cheaper to recompute than
/// to keep and add.
const CACHE_MIN_COLS: usize = 64;

impl CostPlan {
    fn new(spec: &ModelSpec, users: &AxisUsers, other: &Weights, p: usize) -> Result<Self> {
        let g = &spec.groups[p];
        let mut classes: Vec<Class> = Vec::new();
        let mut cols = Vec::new();
        for (mi, m) in g.members.iter().enumerate() {
            let t = other.float(&m.tensor)?;
            let mut key: Vec<usize> = (0..t.shape.len())
                .flat_map(|ax| {
                    users
                        .get(&(m.tensor.clone(), ax))
                        .into_iter()
                        .flatten()
                        .filter(move |&&(gj, _)| !(ax == m.axis && gj == p))
                        .map(|&(gj, _)| gj)
                })
                .collect();
            key.sort_unstable();
            key.dedup();
            let n_cols = t.data.len() / t.shape.get(m.axis).copied().unwrap_or(1).max(1)
                * (m.layout.repeats * m.layout.block);
            match classes.iter().position(|c| c.key == key) {
                Some(ci) => {
                    classes[ci].members.push(mi);
                    cols[ci] += n_cols;
                }
                None => {
                    classes.push(Class {
                        key,
                        members: vec![mi],
                        sum: Vec::new(),
                        seen: None,
                    });
                    cols.push(n_cols);
                }
            }
        }
        let mut cached: Vec<bool> = cols.iter().map(|&c| c >= CACHE_MIN_COLS).collect();
        if cached.iter().filter(|&&c| c).count() < 2 {
            cached.clear();
        }
        Ok(CostPlan { p, classes, cached })
    }

    /// Writes group `p`'s cost matrix into `c`. `ref_ops[mi]`: REF's unit matrix of member
    /// `mi` (built here when `None`); `version[g]`: how often group `g` changed its
    /// permutation (a class is rebuilt when one of its groups' versions moved). Returns how
    /// many cached class sums were reused.
    #[allow(clippy::too_many_arguments)]
    fn cost(
        &mut self,
        ctx: &Ctx,
        perms: &Transform,
        ref_ops: Option<&[(Vec<f64>, usize)]>,
        version: &[u64],
        c: &mut Vec<f64>,
        scratch: &mut Scratch,
    ) -> Result<usize> {
        let n = ctx.spec.groups[self.p].size;
        c.clear();
        c.resize(n * n, 0.0);
        if self.cached.is_empty() {
            let members: Vec<usize> = (0..ctx.spec.groups[self.p].members.len()).collect();
            for mi in members {
                self.add_member(ctx, perms, ref_ops, mi, c, scratch)?;
            }
            return Ok(0);
        }
        let mut reused = 0;
        for ci in 0..self.classes.len() {
            let members = self.classes[ci].members.clone();
            if !self.cached[ci] {
                for mi in members {
                    self.add_member(ctx, perms, ref_ops, mi, c, scratch)?;
                }
                continue;
            }
            let now: Vec<u64> = self.classes[ci].key.iter().map(|&g| version[g]).collect();
            let fresh = ref_ops.is_none();
            if !fresh && self.classes[ci].seen.as_ref() == Some(&now) {
                reused += 1;
            } else {
                let mut sum = if fresh {
                    std::mem::take(&mut scratch.sum)
                } else {
                    std::mem::take(&mut self.classes[ci].sum)
                };
                sum.clear();
                sum.resize(n * n, 0.0);
                for mi in members {
                    self.add_member(ctx, perms, ref_ops, mi, &mut sum, scratch)?;
                }
                if fresh {
                    scratch.sum = sum;
                } else {
                    self.classes[ci].sum = sum;
                    self.classes[ci].seen = Some(now);
                }
            }
            let sum = if fresh {
                &scratch.sum
            } else {
                &self.classes[ci].sum
            };
            add_into(c, sum);
        }
        Ok(reused)
    }

    /// The source map of every axis of member `mi`'s tensor in OTHER: the composed
    /// permutations of every group acting on it, except `p` on the member's own axis.
    fn maps(&self, ctx: &Ctx, perms: &Transform, mi: usize) -> Result<Vec<Option<Vec<usize>>>> {
        let p = self.p;
        let m = &ctx.spec.groups[p].members[mi];
        let ot = ctx.other.float(&m.tensor)?;
        Ok((0..ot.shape.len())
            .map(|ax| {
                let us = ctx.users.get(&(m.tensor.clone(), ax))?;
                let mut comp: Option<Vec<usize>> = None;
                for &(gj, mj) in us {
                    if ax == m.axis && gj == p {
                        continue;
                    }
                    let e = &perms.elements[gj];
                    if e.perm.iter().enumerate().all(|(i, &x)| i == x) {
                        continue;
                    }
                    let gm = &ctx.spec.groups[gj];
                    let (src, _) = member_map(
                        ot.shape[ax],
                        &gm.members[mj],
                        gm.size,
                        &GroupElement {
                            perm: e.perm.clone(),
                            scale: None,
                        },
                    );
                    comp = Some(match comp {
                        None => src,
                        Some(c) => src.iter().map(|&k| c[k]).collect(),
                    });
                }
                comp
            })
            .collect())
    }

    /// `c += A_ref · B_otherᵀ` of member `mi`.
    fn add_member(
        &self,
        ctx: &Ctx,
        perms: &Transform,
        ref_ops: Option<&[(Vec<f64>, usize)]>,
        mi: usize,
        c: &mut [f64],
        scratch: &mut Scratch,
    ) -> Result<()> {
        let p = self.p;
        let g = &ctx.spec.groups[p];
        let n = g.size;
        let m = &g.members[mi];
        let ot = ctx.other.float(&m.tensor)?;
        let maps = self.maps(ctx, perms, mi)?;
        let cols = unit_matrix_mapped_into(&ot.data, &ot.shape, &maps, m, n, &mut scratch.op);
        match ref_ops {
            Some(r) => {
                let (am, acols) = &r[mi];
                debug_assert_eq!(*acols, cols);
                add_abt(c, am, &scratch.op, n, cols);
            }
            None => {
                let rt = ctx.reference.float(&m.tensor)?;
                unit_matrix_mapped_into(&rt.data, &rt.shape, &[], m, n, &mut scratch.rop);
                add_abt(c, &scratch.rop, &scratch.op, n, cols);
            }
        }
        Ok(())
    }
}

/// `c += s` elementwise (in parallel; each element is one addition, so the result does not
/// depend on the split).
fn add_into(c: &mut [f64], s: &[f64]) {
    c.par_chunks_mut(1 << 16)
        .zip(s.par_chunks(1 << 16))
        .for_each(|(c, s)| c.iter_mut().zip(s).for_each(|(c, s)| *c += s));
}

/// Groups at least this large (and without cached classes) get their cost matrix in f32,
/// certified by [`crate::certify`], when [`CERTIFIED_F32`] is on.
const F32_MIN_UNITS: usize = 256;

/// Whether [`weight_matching`] takes the certified f32 path. Off: it gives the same
/// permutations (tested), but on the BERT benchmark it was slower — the GEMM it halves costs
/// less than the extra assignment solves of the certificate (a second, penalised solve per
/// round, and rounds while rows move; BENCHMARKS.md has the numbers). Worth turning on once
/// the assignment itself is cheaper.
const CERTIFIED_F32: bool = false;

/// Buffers of the f32 path.
#[derive(Default)]
struct Scratch32 {
    /// OTHER's unit matrix of each member.
    ops: Vec<Vec<f32>>,
    /// f64 copies for recomputing rows.
    a64: Vec<f64>,
    b64: Vec<f64>,
    rows: Vec<f64>,
    /// The penalised cost matrix of the certificate.
    pen: Vec<f64>,
}

/// REF's f32 unit matrices of a group on the f32 path, and its units' norms over all members.
struct Ref32 {
    ops: Vec<(Vec<f32>, usize)>,
    alpha: Vec<f64>,
}

/// What a certified f32 step found.
struct Step32 {
    assignment: Vec<usize>,
    duals: Vec<f64>,
    progress: bool,
    /// Rows recomputed in f64.
    rows_f64: usize,
}

/// Group `p`'s assignment from an f32 cost matrix, certified to be the one the f64 matrix
/// gives (see [`crate::certify`]); `None` when it could not be certified (the caller then
/// takes the f64 path). `c` and `neg` are scratch.
#[allow(clippy::too_many_arguments)]
fn step_f32(
    ctx: &Ctx,
    plan: &CostPlan,
    perms: &Transform,
    r32: &Ref32,
    duals: Option<&[f64]>,
    c: &mut Vec<f64>,
    neg: &mut Vec<f64>,
    s32: &mut Scratch32,
) -> Result<Option<Step32>> {
    let p = plan.p;
    let g = &ctx.spec.groups[p];
    let n = g.size;
    c.clear();
    c.resize(n * n, 0.0);
    s32.ops.resize_with(g.members.len(), Vec::new);
    let mut beta = vec![0f64; n];
    let (mut k_total, mut chunks) = (0, 0);
    for (mi, m) in g.members.iter().enumerate() {
        let ot = ctx.other.float(&m.tensor)?;
        let maps = plan.maps(ctx, perms, mi)?;
        let cols = unit_matrix_mapped_into(&ot.data, &ot.shape, &maps, m, n, &mut s32.ops[mi]);
        chunks += crate::certify::add_abt_f32(c, &r32.ops[mi].0, &s32.ops[mi], n, cols);
        crate::certify::add_row_norms2(&mut beta, &s32.ops[mi], cols);
        k_total += cols;
    }
    if c.iter().any(|x| !x.is_finite()) {
        return Err(Error::Group {
            group: g.name.clone(),
            msg: "cost matrix is not finite (NaN/inf weights?)".into(),
        });
    }
    beta.iter_mut().for_each(|b| *b = b.sqrt());
    let mut gi = vec![crate::certify::g32(k_total, chunks); n];
    let g64 = crate::certify::g64(k_total);
    let mut v0: Option<Vec<f64>> = duals.map(<[f64]>::to_vec);
    let old = &perms.elements[p].perm;
    let mut hint = old.clone();
    let mut rows_f64 = 0;
    for round in 0..10 {
        neg.clear();
        neg.extend(c.iter().map(|x| -x));
        let Some((sigma, v)) = crate::lap::solve_min_warm(n, neg, v0.as_deref(), Some(&hint))
        else {
            tracing::debug!(group = %g.name, "f32 step: warm solver failed");
            return Ok(None);
        };
        // Solve again with every entry off `sigma` lowered by its error allowance: if `sigma`
        // stays optimal it is the f64 matrix's unique optimum; rows that move are recomputed.
        let sl = crate::certify::slack(neg, &v);
        crate::certify::penalised(n, neg, &sigma, &r32.alpha, &beta, &gi, sl, &mut s32.pen);
        let Some((sig2, v2)) = crate::lap::solve_min_warm(n, &s32.pen, Some(&v), Some(&sigma))
        else {
            tracing::debug!(group = %g.name, "f32 step: warm solver failed (penalised)");
            return Ok(None);
        };
        let fails: Vec<usize> = (0..n).filter(|&i| sig2[i] != sigma[i]).collect();
        tracing::debug!(group = %g.name, round, uncertified = fails.len(), "f32 step");
        if fails.is_empty() {
            if !crate::certify::is_optimal(n, &s32.pen, &sigma, &v2, sl) {
                tracing::debug!(group = %g.name, "f32 step: certificate check failed");
                return Ok(None);
            }
            let progress = if sigma == *old {
                false
            } else {
                let b =
                    crate::certify::improvement_bound(n, c, &sigma, old, &r32.alpha, &beta, &gi);
                // The f64 loop calls it progress when the sum grew by more than 1e-12.
                if b > 1e-12 {
                    true
                } else {
                    tracing::debug!(group = %g.name, bound = b, "f32 step: improvement not certified");
                    return Ok(None);
                }
            };
            return Ok(Some(Step32 {
                assignment: sigma,
                duals: v,
                progress,
                rows_f64,
            }));
        }
        if rows_f64 + fails.len() > n / 4 {
            return Ok(None);
        }
        // Recompute the failing rows in f64 (0 + member terms in member order, as the f64
        // path computes them) and solve again from here.
        let f = fails.len();
        s32.rows.clear();
        s32.rows.resize(f * n, 0.0);
        for (mi, (am, cols)) in r32.ops.iter().enumerate() {
            let k = *cols;
            s32.a64.clear();
            for &i in &fails {
                s32.a64
                    .extend(am[i * k..(i + 1) * k].iter().map(|&x| x as f64));
            }
            s32.b64.clear();
            s32.b64.extend(s32.ops[mi].iter().map(|&x| x as f64));
            add_abt(&mut s32.rows, &s32.a64, &s32.b64, n, k);
        }
        for (fi, &i) in fails.iter().enumerate() {
            c[i * n..(i + 1) * n].copy_from_slice(&s32.rows[fi * n..(fi + 1) * n]);
            gi[i] = g64;
        }
        rows_f64 += f;
        v0 = Some(v);
        hint = sigma;
    }
    Ok(None)
}

fn similarity(spec: &ModelSpec, a: &Weights, b: &Weights) -> Result<f64> {
    let mut names: Vec<&str> = spec
        .groups
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.tensor.as_str()))
        .collect();
    names.sort();
    names.dedup();
    let mut s = 0f64;
    for n in names {
        let (x, y) = (a.float(n)?, b.float(n)?);
        s += x
            .data
            .iter()
            .zip(&y.data)
            .map(|(&p, &q)| p as f64 * q as f64)
            .sum::<f64>();
    }
    Ok(s)
}

/// Git Re-Basin weight matching: the permutations that make OTHER closest to REF.
pub fn weight_matching(
    spec: &ModelSpec,
    reference: &Weights,
    other: &Weights,
    opts: &MatchOptions,
) -> Result<MatchResult> {
    Ok(matching_with(spec, reference, other, opts, CERTIFIED_F32)?.0)
}

/// Counters of one [`matching_with`] run (for tests and the debug log).
#[derive(Debug, Default, Clone, Copy)]
struct LoopStats {
    /// Group steps skipped (no dependency changed).
    skipped: usize,
    /// Cached class sums reused.
    reused: usize,
    /// Steps certified on the f32 path.
    f32_steps: usize,
    /// Rows recomputed in f64 inside certified steps.
    rows_f64: usize,
    /// f32 steps that fell back to the f64 path.
    fell_back: usize,
}

/// [`weight_matching`]; `fast`: large groups' cost matrices in certified f32 (else all f64).
fn matching_with(
    spec: &ModelSpec,
    reference: &Weights,
    other: &Weights,
    opts: &MatchOptions,
    fast: bool,
) -> Result<(MatchResult, LoopStats)> {
    reference.check_compatible(other)?;
    let users = axis_users(spec);
    let ctx = Ctx {
        spec,
        users: &users,
        reference,
        other,
    };
    let mut plans: Vec<CostPlan> = (0..spec.groups.len())
        .map(|p| CostPlan::new(spec, &users, other, p))
        .collect::<Result<_>>()?;
    // Reference unit matrices do not change: build them once, in f32 for the groups on the
    // certified f32 path (large groups without cached classes), else in f64.
    let on_f32: Vec<bool> = plans
        .iter()
        .map(|pl| fast && pl.cached.is_empty() && spec.groups[pl.p].size >= F32_MIN_UNITS)
        .collect();
    let cache: Vec<Vec<(Vec<f64>, usize)>> = spec
        .groups
        .iter()
        .zip(&on_f32)
        .map(|(g, &f)| {
            if f {
                return Ok(vec![]);
            }
            g.members
                .iter()
                .map(|m| {
                    let t = reference.float(&m.tensor)?;
                    Ok(unit_matrix_mapped(&t.data, &t.shape, &[], m, g.size))
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let ref32: Vec<Option<Ref32>> = spec
        .groups
        .iter()
        .zip(&on_f32)
        .map(|(g, &f)| {
            if !f {
                return Ok(None);
            }
            let mut alpha = vec![0f64; g.size];
            let ops = g
                .members
                .iter()
                .map(|m| {
                    let t = reference.float(&m.tensor)?;
                    let mut a: Vec<f32> = Vec::new();
                    let cols = unit_matrix_mapped_into(&t.data, &t.shape, &[], m, g.size, &mut a);
                    crate::certify::add_row_norms2(&mut alpha, &a, cols);
                    Ok((a, cols))
                })
                .collect::<Result<Vec<_>>>()?;
            alpha.iter_mut().for_each(|a| *a = a.sqrt());
            Ok(Some(Ref32 { ops, alpha }))
        })
        .collect::<Result<_>>()?;
    let mut perms = match &opts.init {
        Some(t) => {
            t.check(spec)?;
            let mut t = t.clone();
            t.elements.iter_mut().for_each(|e| e.scale = None);
            t
        }
        None => Transform::identity(spec),
    };
    let mut rng = SplitMix64::new(opts.seed);
    let mut sweeps = 0;
    // The groups each group's cost matrix depends on: the others sharing a tensor with it,
    // and itself when it acts on two axes of one tensor. When none of them changed since the
    // group's last assignment, its cost matrix — hence its assignment — is what it was: the
    // step is skipped (recomputing it would give the same permutation).
    let deps: Vec<Vec<usize>> = spec
        .groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            let self_dep = g.members.iter().any(|a| {
                g.members
                    .iter()
                    .any(|b| a.tensor == b.tensor && a.axis != b.axis)
            });
            let mut d: Vec<usize> = spec
                .groups
                .iter()
                .enumerate()
                .filter(|&(j, h)| {
                    (j != gi || self_dep)
                        && h.members
                            .iter()
                            .any(|m| g.members.iter().any(|x| x.tensor == m.tensor))
                })
                .map(|(j, _)| j)
                .collect();
            d.sort_unstable();
            d
        })
        .collect();
    let mut version = vec![0u64; spec.groups.len()];
    let mut seen: Vec<Option<Vec<u64>>> = vec![None; spec.groups.len()];
    let mut st = LoopStats::default();
    let mut s32 = Scratch32::default();
    let mut c: Vec<f64> = Vec::new();
    let mut neg: Vec<f64> = Vec::new();
    let mut scratch = Scratch::default();
    let mut duals: Vec<Option<Vec<f64>>> = vec![None; spec.groups.len()];
    for _ in 0..opts.max_iter {
        sweeps += 1;
        let mut progress = false;
        let order = rng.permutation(spec.groups.len());
        for p in order {
            let n = spec.groups[p].size;
            let now: Vec<u64> = deps[p].iter().map(|&j| version[j]).collect();
            if seen[p].as_ref() == Some(&now) {
                st.skipped += 1;
                continue;
            }
            let mut step = None;
            if let Some(r32) = &ref32[p] {
                step = step_f32(
                    &ctx,
                    &plans[p],
                    &perms,
                    r32,
                    duals[p].as_deref(),
                    &mut c,
                    &mut neg,
                    &mut s32,
                )?;
                match &step {
                    Some(s) => {
                        st.f32_steps += 1;
                        st.rows_f64 += s.rows_f64;
                    }
                    None => st.fell_back += 1,
                }
            }
            let (ci, improved) = if let Some(s) = step {
                duals[p] = Some(s.duals);
                (s.assignment, s.progress)
            } else {
                let ref_ops = (ref32[p].is_none()).then(|| cache[p].as_slice());
                st.reused +=
                    plans[p].cost(&ctx, &perms, ref_ops, &version, &mut c, &mut scratch)?;
                if c.iter().any(|x| !x.is_finite()) {
                    return Err(Error::Group {
                        group: spec.groups[p].name.clone(),
                        msg: "cost matrix is not finite (NaN/inf weights?)".into(),
                    });
                }
                // Warm start from this group's previous duals and assignment; scipy's algorithm
                // (lsap) when the warm solver's optimality check fails.
                neg.clear();
                neg.extend(c.iter().map(|x| -x));
                let warm = crate::lap::solve_min_warm(
                    n,
                    &neg,
                    duals[p].as_deref(),
                    Some(&perms.elements[p].perm),
                );
                let ci = match warm {
                    Some((a, v)) => {
                        duals[p] = Some(v);
                        a
                    }
                    None => {
                        duals[p] = None;
                        solve_lap(n, &c, true).map_err(|e| Error::Group {
                            group: spec.groups[p].name.clone(),
                            msg: e.to_string(),
                        })?
                    }
                };
                let old: f64 = (0..n).map(|u| c[u * n + perms.elements[p].perm[u]]).sum();
                let new: f64 = (0..n).map(|u| c[u * n + ci[u]]).sum();
                tracing::debug!(group = %spec.groups[p].name, old, new, "weight matching step");
                (ci, new > old + 1e-12)
            };
            if improved {
                progress = true;
            }
            if ci != perms.elements[p].perm {
                version[p] += 1;
                perms.elements[p].perm = ci;
            }
            seen[p] = Some(now);
        }
        if !progress {
            break;
        }
    }
    tracing::debug!(sweeps, stats = ?st, "weight matching done");
    let before = similarity(spec, reference, other)?;
    let mut aligned = other.clone();
    apply(spec, &mut aligned, &perms)?;
    let after = similarity(spec, reference, &aligned)?;
    Ok((
        MatchResult {
            transform: perms,
            sweeps,
            similarity_before: before,
            similarity_after: after,
        },
        st,
    ))
}

/// Weight-matches OTHER to REF and returns OTHER permuted (same function as OTHER) with the
/// result.
pub fn align(
    spec: &ModelSpec,
    reference: &Weights,
    other: &Weights,
    opts: &MatchOptions,
) -> Result<(Weights, MatchResult)> {
    let r = weight_matching(spec, reference, other, opts)?;
    let mut out = other.clone();
    apply(spec, &mut out, &r.transform)?;
    Ok((out, r))
}

/// Activation matching: for every group with activations given (`acts[g] = Some((ref,
/// other))`, each `samples × size` row-major, the same inputs through both models), the
/// permutation maximising the summed correlation of matched units. Groups without
/// activations get the identity.
pub fn activation_matching(
    spec: &ModelSpec,
    acts: &[Option<(Vec<f32>, Vec<f32>)>],
) -> Result<Transform> {
    if acts.len() != spec.groups.len() {
        return Err(Error::Invalid(format!(
            "activations for {} groups, the spec has {}",
            acts.len(),
            spec.groups.len()
        )));
    }
    let mut t = Transform::identity(spec);
    for (gi, (g, a)) in spec.groups.iter().zip(acts).enumerate() {
        let Some((ra, oa)) = a else { continue };
        let n = g.size;
        if n == 0 || ra.len() != oa.len() || ra.len() % n != 0 {
            return Err(Error::Group {
                group: g.name.clone(),
                msg: format!(
                    "activations of {} and {} values for {n} units",
                    ra.len(),
                    oa.len()
                ),
            });
        }
        let s = ra.len() / n;
        let z = |x: &[f32]| -> Vec<f64> {
            // Standardised, transposed to units × samples.
            let mut out = vec![0f64; n * s];
            for u in 0..n {
                let mean = (0..s).map(|i| x[i * n + u] as f64).sum::<f64>() / s as f64;
                let var = (0..s)
                    .map(|i| (x[i * n + u] as f64 - mean).powi(2))
                    .sum::<f64>()
                    / s as f64;
                let sd = var.sqrt().max(1e-12);
                for i in 0..s {
                    out[u * s + i] = (x[i * n + u] as f64 - mean) / sd;
                }
            }
            out
        };
        let (za, zb) = (z(ra), z(oa));
        let mut c = vec![0f64; n * n];
        add_abt(&mut c, &za, &zb, n, s);
        t.elements[gi].perm = solve_lap(n, &c, true)?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_permutes_axes() {
        // 2×3 matrix, swap rows, rotate columns.
        let d = [0., 1., 2., 3., 4., 5.];
        let g = gather(&d, &[2, 3], &[Some(vec![1, 0]), Some(vec![2, 0, 1])]);
        assert_eq!(g, vec![5., 3., 4., 2., 0., 1.]);
    }

    #[test]
    fn mapped_unit_matrix_is_gather_then_unit_matrix() {
        use weightspace_spec::Layout;
        let mut r = SplitMix64::new(7);
        let mut perm = |n: usize| r.permutation(n);
        // (shape, axis, layout, units): plain rows and columns, heads (block), within-head
        // dims (repeats), a 3-D tensor on its middle and last axis.
        let cases: Vec<(Vec<usize>, usize, Layout, usize)> = vec![
            (vec![6, 5], 0, Layout::default(), 6),
            (vec![6, 5], 1, Layout::default(), 5),
            (vec![300, 7], 1, Layout::default(), 7),
            (vec![12, 5], 0, Layout::block(4), 3),
            (vec![5, 12], 1, Layout::tiled(0, 3, 4, 1), 4),
            (vec![4, 6, 3], 1, Layout::tiled(1, 2, 3, 1), 2),
            (vec![4, 3, 6], 2, Layout::block(2), 3),
            (vec![70, 3, 4], 0, Layout::default(), 70),
        ];
        for (shape, axis, layout, units) in cases {
            let n: usize = shape.iter().product();
            let d: Vec<f32> = (0..n).map(|i| (i as f32 * 0.731).sin()).collect();
            let m = Member {
                tensor: "t".into(),
                axis,
                layout,
                exp: 1,
            };
            for with_maps in [false, true] {
                let maps: Vec<Option<Vec<usize>>> = shape
                    .iter()
                    .map(|&len| with_maps.then(|| perm(len)))
                    .collect();
                let want = unit_matrix(&gather(&d, &shape, &maps), &shape, &m, units);
                let got = unit_matrix_mapped(&d, &shape, &maps, &m, units);
                assert_eq!(got, want, "shape {shape:?} axis {axis} maps {with_maps}");
            }
        }
    }

    /// A two-layer BERT with random weights, its spec (12 groups) and a random transform.
    fn tiny_bert(seed: u64) -> (ModelSpec, Weights, Weights) {
        use crate::Tensor;
        use weightspace_spec::{Facts, derive};
        // Wide enough that the embedding and MLP classes reach CACHE_MIN_COLS.
        let (d, ff, v) = (8, 40, 70);
        let mut sh: Vec<(String, Vec<usize>)> = vec![
            ("bert.embeddings.word_embeddings.weight".into(), vec![v, d]),
            (
                "bert.embeddings.position_embeddings.weight".into(),
                vec![4, d],
            ),
            (
                "bert.embeddings.token_type_embeddings.weight".into(),
                vec![2, d],
            ),
            ("bert.embeddings.LayerNorm.weight".into(), vec![d]),
            ("bert.embeddings.LayerNorm.bias".into(), vec![d]),
        ];
        for i in 0..2 {
            for (n, s) in [
                ("attention.self.query.weight", vec![d, d]),
                ("attention.self.query.bias", vec![d]),
                ("attention.self.key.weight", vec![d, d]),
                ("attention.self.key.bias", vec![d]),
                ("attention.self.value.weight", vec![d, d]),
                ("attention.self.value.bias", vec![d]),
                ("attention.output.dense.weight", vec![d, d]),
                ("attention.output.dense.bias", vec![d]),
                ("attention.output.LayerNorm.weight", vec![d]),
                ("attention.output.LayerNorm.bias", vec![d]),
                ("intermediate.dense.weight", vec![ff, d]),
                ("intermediate.dense.bias", vec![ff]),
                ("output.dense.weight", vec![d, ff]),
                ("output.dense.bias", vec![d]),
                ("output.LayerNorm.weight", vec![d]),
                ("output.LayerNorm.bias", vec![d]),
            ] {
                sh.push((format!("bert.encoder.layer.{i}.{n}"), s));
            }
        }
        let spec = derive(
            &sh,
            &Facts {
                heads: Some(2),
                ..Facts::default()
            },
        )
        .unwrap();
        let mut r = SplitMix64::new(seed);
        let mut w = || {
            let mut w = Weights::new();
            for (name, shape) in &sh {
                let len: usize = shape.iter().product();
                let data = (0..len)
                    .map(|_| (r.next_f64() * 2.0 - 1.0) as f32)
                    .collect();
                w.insert(name, Tensor::f32(shape.clone(), data));
            }
            w
        };
        let (a, b) = (w(), w());
        (spec, a, b)
    }

    #[test]
    fn cached_class_sums_equal_a_fresh_cost_matrix() {
        let (spec, a, b) = tiny_bert(3);
        let users = axis_users(&spec);
        let ctx = Ctx {
            spec: &spec,
            users: &users,
            reference: &a,
            other: &b,
        };
        // The group with the most cached classes: the residual stream.
        let (p, mut plan) = (0..spec.groups.len())
            .map(|p| (p, CostPlan::new(&spec, &users, &b, p).unwrap()))
            .max_by_key(|(_, pl)| pl.cached.iter().filter(|&&c| c).count())
            .unwrap();
        let n_cached = plan.cached.iter().filter(|&&c| c).count();
        assert!(n_cached >= 3, "{n_cached} cached classes");
        let ref_ops: Vec<(Vec<f64>, usize)> = spec.groups[p]
            .members
            .iter()
            .map(|m| {
                let t = a.float(&m.tensor).unwrap();
                unit_matrix_mapped(&t.data, &t.shape, &[], m, spec.groups[p].size)
            })
            .collect();
        // A group that only one cached class depends on (a layer's MLP group).
        let only: Vec<usize> = (0..spec.groups.len())
            .filter(|&g| {
                g != p
                    && plan
                        .classes
                        .iter()
                        .zip(&plan.cached)
                        .filter(|(c, k)| **k && c.key.contains(&g))
                        .count()
                        == 1
            })
            .collect();
        let changed = only[0];
        let mut perms = Transform::random(&spec, 11, &Default::default());
        perms.elements.iter_mut().for_each(|e| e.scale = None);
        let mut version = vec![0u64; spec.groups.len()];
        let (mut c, mut scratch) = (Vec::new(), Scratch::default());
        let reused = plan
            .cost(&ctx, &perms, Some(&ref_ops), &version, &mut c, &mut scratch)
            .unwrap();
        assert_eq!(reused, 0);
        let fresh0 = cost_matrix(&spec, &a, &b, &perms, p).unwrap();
        assert!(c == fresh0);
        // Change that group's permutation (others keep theirs): one class is rebuilt, the rest
        // come from the cache, and the sum is the fresh matrix bit for bit.
        let size = spec.groups[changed].size;
        perms.elements[changed].perm = SplitMix64::new(5).permutation(size);
        perms.elements[changed].perm.rotate_left(1);
        let fresh1 = cost_matrix(&spec, &a, &b, &perms, p).unwrap();
        assert!(fresh1 != fresh0, "the change must matter");
        // Without bumping its version the cache is stale (so this test can fail).
        let stale = plan
            .cost(&ctx, &perms, Some(&ref_ops), &version, &mut c, &mut scratch)
            .unwrap();
        assert_eq!(stale, n_cached);
        assert!(c != fresh1);
        version[changed] += 1;
        let reused = plan
            .cost(&ctx, &perms, Some(&ref_ops), &version, &mut c, &mut scratch)
            .unwrap();
        assert_eq!(reused, n_cached - 1);
        assert!(c == fresh1);
        // And weight matching with its caches agrees with the same loop on fresh matrices:
        // checked end to end by the spec tests; here, the group's matrix after another
        // change of an unrelated group is still exact.
        let other_g = (0..spec.groups.len())
            .find(|&g| g != p && g != changed && plan.classes.iter().any(|c| c.key.contains(&g)))
            .unwrap();
        let s2 = spec.groups[other_g].size;
        perms.elements[other_g].perm = (0..s2).rev().collect();
        version[other_g] += 1;
        plan.cost(&ctx, &perms, Some(&ref_ops), &version, &mut c, &mut scratch)
            .unwrap();
        assert!(c == cost_matrix(&spec, &a, &b, &perms, p).unwrap());
    }

    #[test]
    fn certified_f32_path_gives_the_exact_paths_permutations() {
        use crate::Tensor;
        use weightspace_spec::{Facts, derive};
        // Two independent random MLPs 24-300-280-6: the hidden groups take the f32 path.
        let widths = [24, 300, 280, 6];
        let mut sh: Vec<(String, Vec<usize>)> = vec![];
        for i in 0..3 {
            sh.push((
                format!("layers.{}.weight", 2 * i),
                vec![widths[i + 1], widths[i]],
            ));
            sh.push((format!("layers.{}.bias", 2 * i), vec![widths[i + 1]]));
        }
        let spec = derive(&sh, &Facts::default()).unwrap();
        assert_eq!(spec.groups.len(), 2);
        let mut r = SplitMix64::new(9);
        let mut w = || {
            let mut w = Weights::new();
            for (name, shape) in &sh {
                let len: usize = shape.iter().product();
                let data = (0..len).map(|_| (r.next_f64() - 0.5) as f32).collect();
                w.insert(name, Tensor::f32(shape.clone(), data));
            }
            w
        };
        let (a, b) = (w(), w());
        for seed in 0..2 {
            let opts = MatchOptions {
                seed,
                ..MatchOptions::default()
            };
            let (fast, st) = matching_with(&spec, &a, &b, &opts, true).unwrap();
            let (exact, st0) = matching_with(&spec, &a, &b, &opts, false).unwrap();
            assert!(st.f32_steps > 0, "{st:?}");
            assert_eq!(st0.f32_steps + st0.fell_back, 0);
            assert_eq!(fast.transform, exact.transform, "seed {seed}");
            assert_eq!(fast.sweeps, exact.sweeps);
            assert!(fast.sweeps > 1);
        }
    }

    #[test]
    fn abt_matches_naive() {
        let n = 13;
        let k = 7;
        let a: Vec<f64> = (0..n * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..n * k).map(|i| (i as f64 * 0.11).cos()).collect();
        let mut c = vec![0f64; n * n];
        add_abt(&mut c, &a, &b, n, k);
        for i in 0..n {
            for j in 0..n {
                let e: f64 = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
                assert!((c[i * n + j] - e).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn lap_recovers_a_permutation() {
        let n = 6;
        let perm = [3, 0, 5, 1, 4, 2];
        let mut c = vec![0f64; n * n];
        for (i, &p) in perm.iter().enumerate() {
            c[i * n + p] = 1.0;
        }
        assert_eq!(solve_lap(n, &c, true).unwrap(), perm);
    }
}
