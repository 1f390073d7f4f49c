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
    let mut out = vec![0f64; size * cols];
    if size == 0 || cols == 0 {
        return (out, cols);
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
                                row[p * rb + e] = data[pre_off[p] + so] as f64;
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
                                    .for_each(|(d, &x)| *d = x as f64);
                            } else {
                                dst.iter_mut()
                                    .zip(&post_off)
                                    .for_each(|(d, &o)| *d = data[base + o] as f64);
                            }
                            at += post;
                        }
                    }
                }
            }
        });
    (out, cols)
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
/// every group: `C[u, v] = Σ_members ⟨ref unit u, perm(other) unit v⟩`.
pub fn cost_matrix(
    spec: &ModelSpec,
    reference: &Weights,
    other: &Weights,
    perms: &Transform,
    p: usize,
) -> Result<Vec<f64>> {
    let users = axis_users(spec);
    cost_with(spec, &users, reference, other, perms, p, None)
}

#[allow(clippy::too_many_arguments)]
fn cost_with(
    spec: &ModelSpec,
    users: &AxisUsers,
    reference: &Weights,
    other: &Weights,
    perms: &Transform,
    p: usize,
    cache: Option<&[(Vec<f64>, usize)]>,
) -> Result<Vec<f64>> {
    let g = &spec.groups[p];
    let n = g.size;
    let mut c = vec![0f64; n * n];
    for (mi, m) in g.members.iter().enumerate() {
        let ot = other.float(&m.tensor)?;
        let maps: Vec<Option<Vec<usize>>> = (0..ot.shape.len())
            .map(|ax| {
                let us = users.get(&(m.tensor.clone(), ax))?;
                let mut comp: Option<Vec<usize>> = None;
                for &(gj, mj) in us {
                    if ax == m.axis && gj == p {
                        continue;
                    }
                    let e = &perms.elements[gj];
                    if e.perm.iter().enumerate().all(|(i, &x)| i == x) {
                        continue;
                    }
                    let gm = &spec.groups[gj];
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
            .collect();
        let (bm, cols) = unit_matrix_mapped(&ot.data, &ot.shape, &maps, m, n);
        match cache {
            Some(c_) => {
                let (am, acols) = &c_[mi];
                debug_assert_eq!(*acols, cols);
                add_abt(&mut c, am, &bm, n, cols);
            }
            None => {
                let rt = reference.float(&m.tensor)?;
                let (am, _) = unit_matrix_mapped(&rt.data, &rt.shape, &[], m, n);
                add_abt(&mut c, &am, &bm, n, cols);
            }
        }
    }
    Ok(c)
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
    reference.check_compatible(other)?;
    let users = axis_users(spec);
    // Reference unit matrices do not change: build them once.
    let cache: Vec<Vec<(Vec<f64>, usize)>> = spec
        .groups
        .iter()
        .map(|g| {
            g.members
                .iter()
                .map(|m| {
                    let t = reference.float(&m.tensor)?;
                    Ok(unit_matrix_mapped(&t.data, &t.shape, &[], m, g.size))
                })
                .collect::<Result<Vec<_>>>()
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
    let mut skipped = 0usize;
    let mut duals: Vec<Option<Vec<f64>>> = vec![None; spec.groups.len()];
    for _ in 0..opts.max_iter {
        sweeps += 1;
        let mut progress = false;
        let order = rng.permutation(spec.groups.len());
        for p in order {
            let n = spec.groups[p].size;
            let now: Vec<u64> = deps[p].iter().map(|&j| version[j]).collect();
            if seen[p].as_ref() == Some(&now) {
                skipped += 1;
                continue;
            }
            let c = cost_with(spec, &users, reference, other, &perms, p, Some(&cache[p]))?;
            if c.iter().any(|x| !x.is_finite()) {
                return Err(Error::Group {
                    group: spec.groups[p].name.clone(),
                    msg: "cost matrix is not finite (NaN/inf weights?)".into(),
                });
            }
            // Warm start from this group's previous duals and assignment; scipy's algorithm
            // (lsap) when the warm solver's optimality check fails.
            let neg: Vec<f64> = c.iter().map(|x| -x).collect();
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
            if new > old + 1e-12 {
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
    tracing::debug!(sweeps, skipped, "weight matching done");
    let before = similarity(spec, reference, other)?;
    let mut aligned = other.clone();
    apply(spec, &mut aligned, &perms)?;
    let after = similarity(spec, reference, &aligned)?;
    Ok(MatchResult {
        transform: perms,
        sweeps,
        similarity_before: before,
        similarity_after: after,
    })
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
