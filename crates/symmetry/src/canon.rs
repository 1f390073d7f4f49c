//! Canonical forms: one deterministic representative per orbit of the symmetry group.
//!
//! 1. Scaling (optional): units of ReLU-family groups are rescaled so their incoming weights
//!    (members with exponent +1) have unit Euclidean norm; units of odd-activation groups are
//!    sign-flipped so the sum of their incoming weights is non-negative. Groups are processed
//!    in spec order.
//! 2. Permutation: every group's units are sorted by a key computed from the multiset of the
//!    unit's entries across all members (sum, then sum of squares, then max), descending.
//!
//! Every key is computed from the unit's entries **sorted by value** and summed in `f64`, so it
//! does not depend on how other groups ordered the other axes: canonicalising a permuted copy
//! gives the canonical form of the original bit for bit (and, after rescaling, to rounding).
//! Units with equal keys (e.g. dead, all-zero units) keep an order that depends on the input.

use weightspace_spec::{Group, ModelSpec, Scaling};

use crate::action::{GroupElement, Transform, apply, apply_group};
use crate::{Error, Result, Weights};

/// Options of [`canonicalize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonOptions {
    /// Normalise ReLU-unit scales (unit-norm incoming weights) and odd-unit signs.
    pub scale: bool,
}

impl Default for CanonOptions {
    fn default() -> Self {
        CanonOptions { scale: true }
    }
}

/// Entries of unit `u` of group `g`, over members selected by `pick`, unsorted.
fn unit_entries(
    g: &Group,
    w: &Weights,
    pick: impl Fn(i8) -> bool,
    out: &mut [Vec<f32>],
) -> Result<()> {
    for m in g.members.iter().filter(|m| pick(m.exp)) {
        let t = w.float(&m.tensor)?;
        if m.axis >= t.shape.len() {
            return Err(Error::Tensor {
                tensor: m.tensor.clone(),
                msg: format!("axis {} out of range", m.axis),
            });
        }
        let len = t.shape[m.axis];
        let pre: usize = t.shape[..m.axis].iter().product();
        let post: usize = t.shape[m.axis + 1..].iter().product();
        let l = &m.layout;
        for (u, o) in out.iter_mut().enumerate() {
            for p in 0..pre {
                for r in 0..l.repeats {
                    for i in 0..l.block {
                        let k = l.index(u, r, i);
                        let at = (p * len + k) * post;
                        o.extend_from_slice(&t.data[at..at + post]);
                    }
                }
            }
        }
    }
    Ok(())
}

fn sorted_sum(v: &mut [f32], f: impl Fn(f32) -> f64) -> f64 {
    v.sort_unstable_by(|a, b| a.total_cmp(b));
    v.iter().map(|&x| f(x)).sum()
}

/// The sort key of every unit of group `g`: `(Σx, Σx², max x)` over the unit's entries in all
/// members, each sum taken over the entries sorted by value (independent of their order).
pub fn unit_keys(g: &Group, w: &Weights) -> Result<Vec<[f64; 3]>> {
    let mut entries = vec![Vec::new(); g.size];
    unit_entries(g, w, |_| true, &mut entries)?;
    Ok(entries
        .into_iter()
        .map(|mut e| {
            let s = sorted_sum(&mut e, |x| x as f64);
            let q: f64 = e.iter().map(|&x| (x as f64) * (x as f64)).sum();
            let mx = e.last().copied().unwrap_or(0.0) as f64;
            [s, q, mx]
        })
        .collect())
}

/// Puts `w` into canonical form in place and returns the transform that was applied.
pub fn canonicalize(spec: &ModelSpec, w: &mut Weights, opts: &CanonOptions) -> Result<Transform> {
    let mut total = Transform::identity(spec);
    if opts.scale {
        for (gi, g) in spec.groups.iter().enumerate() {
            let scales: Option<Vec<f32>> = match g.scaling {
                Scaling::Positive => {
                    let mut e = vec![Vec::new(); g.size];
                    unit_entries(g, w, |x| x == 1, &mut e)?;
                    Some(
                        e.into_iter()
                            .map(|mut v| {
                                let n = sorted_sum(&mut v, |x| (x as f64) * (x as f64)).sqrt();
                                if n > 0.0 && n.is_finite() {
                                    (1.0 / n) as f32
                                } else {
                                    1.0
                                }
                            })
                            .collect(),
                    )
                }
                Scaling::Sign => {
                    let mut e = vec![Vec::new(); g.size];
                    unit_entries(g, w, |x| x == 1, &mut e)?;
                    Some(
                        e.into_iter()
                            .map(|mut v| {
                                if sorted_sum(&mut v, |x| x as f64) < 0.0 {
                                    -1.0
                                } else {
                                    1.0
                                }
                            })
                            .collect(),
                    )
                }
                Scaling::None | Scaling::Any => None,
            };
            if let Some(s) = scales {
                let e = GroupElement {
                    perm: (0..g.size).collect(),
                    scale: Some(s.clone()),
                };
                apply_group(g, &e, w)?;
                total.elements[gi].scale = Some(s);
            }
        }
    }
    // Keys of every group first (they do not depend on the other groups' orders), then sort.
    let mut perms = Transform::identity(spec);
    for (gi, g) in spec.groups.iter().enumerate() {
        let keys = unit_keys(g, w)?;
        let mut order: Vec<usize> = (0..g.size).collect();
        order.sort_by(|&a, &b| {
            let (ka, kb) = (keys[a], keys[b]);
            kb[0]
                .total_cmp(&ka[0])
                .then(kb[1].total_cmp(&ka[1]))
                .then(kb[2].total_cmp(&ka[2]))
        });
        perms.elements[gi].perm = order;
    }
    apply(spec, w, &perms)?;
    // Compose: first the scaling (identity permutation), then the permutation.
    for (t, p) in total.elements.iter_mut().zip(perms.elements) {
        t.scale = t
            .scale
            .as_ref()
            .map(|s| p.perm.iter().map(|&u| s[u]).collect());
        t.perm = p.perm;
    }
    Ok(total)
}
