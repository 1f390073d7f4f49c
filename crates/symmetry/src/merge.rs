//! Align-then-merge: bring models trained from different initialisations into one basin
//! before merging them. The merge crate calls [`align_to_base`] and merges the result with any
//! method; [`align_then_average`] is the plain weighted average.

use weightspace_spec::ModelSpec;

use crate::{Error, MatchOptions, MatchResult, Result, Tensor, Weights, align};

/// Aligns every model to `models[base]` by weight matching. The base is returned unchanged;
/// each other model is permuted (same function). Returns the models and one match result per
/// non-base model (in order).
pub fn align_to_base(
    spec: &ModelSpec,
    models: &[Weights],
    base: usize,
    opts: &MatchOptions,
) -> Result<(Vec<Weights>, Vec<MatchResult>)> {
    let b = models
        .get(base)
        .ok_or_else(|| Error::Invalid(format!("base index {base} for {} models", models.len())))?;
    let mut out = Vec::with_capacity(models.len());
    let mut results = Vec::new();
    for (i, m) in models.iter().enumerate() {
        if i == base {
            out.push(m.clone());
        } else {
            let (aligned, r) = align(spec, b, m, opts)?;
            out.push(aligned);
            results.push(r);
        }
    }
    Ok((out, results))
}

/// Aligns every model to `models[base]`, then averages the float tensors with `weights`
/// (uniform when `None`; normalised to sum 1). Integer tensors come from the base.
pub fn align_then_average(
    spec: &ModelSpec,
    models: &[Weights],
    base: usize,
    weights: Option<&[f64]>,
    opts: &MatchOptions,
) -> Result<Weights> {
    let (aligned, _) = align_to_base(spec, models, base, opts)?;
    average(&aligned, base, weights)
}

/// Weighted average of compatible models (integer tensors from `models[base]`).
pub fn average(models: &[Weights], base: usize, weights: Option<&[f64]>) -> Result<Weights> {
    let k = models.len();
    if k == 0 || base >= k {
        return Err(Error::Invalid("no models to average".into()));
    }
    let ws: Vec<f64> = match weights {
        Some(w) if w.len() == k => w.to_vec(),
        Some(w) => {
            return Err(Error::Invalid(format!(
                "{} weights for {k} models",
                w.len()
            )));
        }
        None => vec![1.0; k],
    };
    let total: f64 = ws.iter().sum();
    if total == 0.0 || !total.is_finite() {
        return Err(Error::Invalid(
            "merge weights must have a finite, non-zero sum".into(),
        ));
    }
    for m in models {
        models[base].check_compatible(m)?;
    }
    let mut out = Weights::new();
    for (n, t) in models[base].iter() {
        if !t.is_float() {
            out.insert(n, t.clone());
            continue;
        }
        let mut acc = vec![0f64; t.data.len()];
        for (m, &w) in models.iter().zip(&ws) {
            let x = &m.get(n).expect("checked").data;
            for (a, &v) in acc.iter_mut().zip(x) {
                *a += w / total * v as f64;
            }
        }
        out.insert(
            n,
            Tensor {
                data: acc.into_iter().map(|v| v as f32).collect(),
                ..t.clone()
            },
        );
    }
    Ok(out)
}
