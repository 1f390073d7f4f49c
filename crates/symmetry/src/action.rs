//! Group elements and their action on weights.

use serde::{Deserialize, Serialize};
use weightspace_spec::{Group, Member, ModelSpec};

use crate::rng::SplitMix64;
use crate::{Error, Result, Tensor, Weights};

/// An element of one group: new unit `u` is old unit `perm[u]`, multiplied by `scale[u]`
/// (each member slice by `scale[u]^exp`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupElement {
    /// `perm[u]` = the old unit that becomes unit `u`.
    pub perm: Vec<usize>,
    /// Per-unit factors (none = all ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<Vec<f32>>,
}

impl GroupElement {
    /// The identity of a group of `n` units.
    pub fn identity(n: usize) -> GroupElement {
        GroupElement {
            perm: (0..n).collect(),
            scale: None,
        }
    }

    /// True when it changes nothing.
    pub fn is_identity(&self) -> bool {
        self.perm.iter().enumerate().all(|(i, &p)| i == p)
            && self
                .scale
                .as_ref()
                .is_none_or(|s| s.iter().all(|&x| x == 1.0))
    }

    /// The inverse element.
    pub fn inverse(&self) -> GroupElement {
        let mut inv = vec![0; self.perm.len()];
        for (u, &p) in self.perm.iter().enumerate() {
            inv[p] = u;
        }
        let scale = self
            .scale
            .as_ref()
            .map(|s| inv.iter().map(|&u| 1.0 / s[u]).collect());
        GroupElement { perm: inv, scale }
    }

    fn check(&self, g: &Group) -> Result<()> {
        let bad = |msg: String| Error::Group {
            group: g.name.clone(),
            msg,
        };
        if self.perm.len() != g.size {
            return Err(bad(format!(
                "permutation of {} units for a group of {}",
                self.perm.len(),
                g.size
            )));
        }
        let mut seen = vec![false; g.size];
        for &p in &self.perm {
            if p >= g.size || std::mem::replace(&mut seen[p], true) {
                return Err(bad("not a permutation".into()));
            }
        }
        if let Some(s) = &self.scale {
            if s.len() != g.size {
                return Err(bad(format!("{} scales for {} units", s.len(), g.size)));
            }
            if s.iter().any(|x| *x == 0.0 || !x.is_finite()) {
                return Err(bad("scales must be finite and non-zero".into()));
            }
        }
        Ok(())
    }
}

/// One element per group of a spec (same order as `spec.groups`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transform {
    /// The elements.
    pub elements: Vec<GroupElement>,
}

/// What [`Transform::random`] samples besides permutations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomOptions {
    /// Random positive per-unit scaling, log-uniform in `[1/max_scale, max_scale]`, on groups
    /// that allow it.
    pub scale: bool,
    /// Random sign flips on groups that allow them.
    pub sign: bool,
    /// Bound of the positive scales (default 2).
    pub max_scale: f32,
    /// Permute units (default true).
    pub permute: bool,
}

impl Default for RandomOptions {
    fn default() -> Self {
        RandomOptions {
            scale: false,
            sign: false,
            max_scale: 2.0,
            permute: true,
        }
    }
}

impl Transform {
    /// The identity.
    pub fn identity(spec: &ModelSpec) -> Transform {
        Transform {
            elements: spec
                .groups
                .iter()
                .map(|g| GroupElement::identity(g.size))
                .collect(),
        }
    }

    /// A random element, all choices from `seed` (same seed, same transform, on every
    /// machine).
    pub fn random(spec: &ModelSpec, seed: u64, opts: &RandomOptions) -> Transform {
        let mut rng = SplitMix64::new(seed);
        Self::random_with(spec, &mut rng, opts)
    }

    /// A random element drawn from `rng` (for augmentation inside a training loop).
    pub fn random_with(spec: &ModelSpec, rng: &mut SplitMix64, opts: &RandomOptions) -> Transform {
        let ln = opts.max_scale.max(1.0).ln() as f64;
        let elements = spec
            .groups
            .iter()
            .map(|g| {
                let perm = if opts.permute {
                    rng.permutation(g.size)
                } else {
                    (0..g.size).collect()
                };
                let pos = opts.scale && g.scaling.allows_positive();
                let sign = opts.sign && g.scaling.allows_sign();
                let scale = (pos || sign).then(|| {
                    (0..g.size)
                        .map(|_| {
                            let mut s = 1f32;
                            if pos {
                                s = ((rng.next_f64() * 2.0 - 1.0) * ln).exp() as f32;
                            }
                            if sign && rng.next_u64() & 1 == 1 {
                                s = -s;
                            }
                            s
                        })
                        .collect()
                });
                GroupElement { perm, scale }
            })
            .collect();
        Transform { elements }
    }

    /// The inverse transform (groups commute, so element-wise inverses).
    pub fn inverse(&self) -> Transform {
        Transform {
            elements: self.elements.iter().map(GroupElement::inverse).collect(),
        }
    }

    /// Checks that each element fits its group.
    pub fn check(&self, spec: &ModelSpec) -> Result<()> {
        if self.elements.len() != spec.groups.len() {
            return Err(Error::Invalid(format!(
                "{} group elements for {} groups",
                self.elements.len(),
                spec.groups.len()
            )));
        }
        for (e, g) in self.elements.iter().zip(&spec.groups) {
            e.check(g)?;
        }
        Ok(())
    }
}

/// Applies `t` to `w` in place: the result computes the same function (for a spec that
/// describes the model correctly).
pub fn apply(spec: &ModelSpec, w: &mut Weights, t: &Transform) -> Result<()> {
    t.check(spec)?;
    for (g, e) in spec.groups.iter().zip(&t.elements) {
        if !e.is_identity() {
            apply_group(g, e, w)?;
        }
    }
    Ok(())
}

/// Applies one group element to every member of `g`.
pub fn apply_group(g: &Group, e: &GroupElement, w: &mut Weights) -> Result<()> {
    e.check(g)?;
    for m in &g.members {
        let t = w.get_mut(&m.tensor).ok_or_else(|| Error::Tensor {
            tensor: m.tensor.clone(),
            msg: format!("missing (member of group `{}`)", g.name),
        })?;
        if !t.is_float() {
            return Err(Error::Tensor {
                tensor: m.tensor.clone(),
                msg: "integer tensors cannot be permuted".into(),
            });
        }
        apply_member(t, m, g.size, e).map_err(|msg| Error::Tensor {
            tensor: m.tensor.clone(),
            msg,
        })?;
    }
    Ok(())
}

/// Source index and factor for every position along the member's axis.
pub(crate) fn member_map(
    len: usize,
    m: &Member,
    size: usize,
    e: &GroupElement,
) -> (Vec<usize>, Option<Vec<f32>>) {
    let l = &m.layout;
    let mut src: Vec<usize> = (0..len).collect();
    let mut fac = match (&e.scale, m.exp) {
        (Some(_), x) if x != 0 => Some(vec![1f32; len]),
        _ => None,
    };
    for u in 0..size {
        let f = match (&e.scale, &fac) {
            (Some(s), Some(_)) => {
                let s = s[u];
                match m.exp {
                    1 => s,
                    -1 => 1.0 / s,
                    2 => s * s,
                    _ => 1.0,
                }
            }
            _ => 1.0,
        };
        for r in 0..l.repeats {
            for i in 0..l.block {
                let dst = l.index(u, r, i);
                src[dst] = l.index(e.perm[u], r, i);
                if let Some(fa) = &mut fac {
                    fa[dst] = f;
                }
            }
        }
    }
    (src, fac)
}

fn apply_member(
    t: &mut Tensor,
    m: &Member,
    size: usize,
    e: &GroupElement,
) -> std::result::Result<(), String> {
    if m.axis >= t.shape.len() {
        return Err(format!(
            "axis {} out of range for shape {:?}",
            m.axis, t.shape
        ));
    }
    let len = t.shape[m.axis];
    if m.layout.extent(size) > len {
        return Err(format!(
            "group of {size} units does not fit axis {} of length {len}",
            m.axis
        ));
    }
    let pre: usize = t.shape[..m.axis].iter().product();
    let post: usize = t.shape[m.axis + 1..].iter().product();
    let (src, fac) = member_map(len, m, size, e);
    let old = std::mem::take(&mut t.data);
    let mut new = vec![0f32; old.len()];
    for p in 0..pre {
        let base = p * len * post;
        for k in 0..len {
            let from = &old[base + src[k] * post..base + (src[k] + 1) * post];
            let to = &mut new[base + k * post..base + (k + 1) * post];
            match &fac {
                Some(f) if f[k] != 1.0 => {
                    let f = f[k];
                    for (a, b) in to.iter_mut().zip(from) {
                        *a = *b * f;
                    }
                }
                _ => to.copy_from_slice(from),
            }
        }
    }
    t.data = new;
    Ok(())
}
