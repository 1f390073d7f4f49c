//! Per-tensor statistics: count, mean, std (ddof 0), min, quartiles (linear interpolation, as
//! numpy's default), max, L2 norm, mean absolute value, share of exact zeros, NaN and Inf counts.

use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::{Checkpoint, Error};

/// Statistics of one tensor, computed over its values converted to `f32` (accumulated in
/// `f64`). With any NaN present, mean/std/min/max/quantiles are NaN, as numpy gives them.
/// Statistics of an empty tensor are NaN. NaN serialises as JSON `null`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorStats {
    /// Tensor name.
    pub name: String,
    /// Stored dtype name.
    pub dtype: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Number of elements.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation (ddof 0).
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// 25 % quantile.
    pub q25: f64,
    /// Median.
    pub median: f64,
    /// 75 % quantile.
    pub q75: f64,
    /// Maximum.
    pub max: f64,
    /// Euclidean norm.
    pub l2: f64,
    /// Mean of absolute values.
    pub abs_mean: f64,
    /// Share of elements exactly equal to zero.
    pub sparsity: f64,
    /// Number of NaN elements.
    pub nan: u64,
    /// Number of infinite elements.
    pub inf: u64,
}

/// Sums over a slice: (sum, sum of |x|, sum of x², zeros, nans, infs, min, max).
#[derive(Clone, Copy)]
struct Moments {
    sum: f64,
    abs: f64,
    sq: f64,
    zeros: u64,
    nan: u64,
    inf: u64,
    min: f32,
    max: f32,
}

impl Moments {
    const EMPTY: Moments = Moments {
        sum: 0.0,
        abs: 0.0,
        sq: 0.0,
        zeros: 0,
        nan: 0,
        inf: 0,
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
    };

    fn of(values: &[f32]) -> Moments {
        let mut m = Moments::EMPTY;
        // Blocks of f32 partial sums keep the inner loop vectorisable; f64 across blocks keeps
        // accuracy close to numpy's pairwise summation.
        for block in values.chunks(256) {
            let (mut s, mut a, mut q) = (0f32, 0f32, 0f32);
            for &x in block {
                s += x;
                a += x.abs();
                q += x * x;
                m.min = m.min.min(x);
                m.max = m.max.max(x);
                m.zeros += (x == 0.0) as u64;
            }
            if !(s.is_finite() && q.is_finite()) {
                // Overflowed (or NaN/Inf inside): redo this block in f64 and count specials.
                let (mut s, mut a, mut q) = (0f64, 0f64, 0f64);
                for &x in block {
                    let x64 = x as f64;
                    s += x64;
                    a += x64.abs();
                    q += x64 * x64;
                    m.nan += x.is_nan() as u64;
                    m.inf += x.is_infinite() as u64;
                }
                m.sum += s;
                m.abs += a;
                m.sq += q;
            } else {
                m.sum += s as f64;
                m.abs += a as f64;
                m.sq += q as f64;
            }
        }
        m
    }

    fn merge(a: Moments, b: Moments) -> Moments {
        Moments {
            sum: a.sum + b.sum,
            abs: a.abs + b.abs,
            sq: a.sq + b.sq,
            zeros: a.zeros + b.zeros,
            nan: a.nan + b.nan,
            inf: a.inf + b.inf,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
        }
    }
}

/// Chunk size above which a single tensor's sums run in parallel.
const PAR_CHUNK: usize = 1 << 20;

fn moments(values: &[f32]) -> Moments {
    if values.len() > 2 * PAR_CHUNK {
        values
            .par_chunks(PAR_CHUNK)
            .map(Moments::of)
            .reduce(|| Moments::EMPTY, Moments::merge)
    } else {
        Moments::of(values)
    }
}

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted values with numpy's default linear interpolation.
pub fn quantile_sorted(sorted: &[f32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let (a, b) = (sorted[lo] as f64, sorted[hi] as f64);
    a + (h - lo as f64) * (b - a)
}

/// Quartiles of `values` (reordered in place) by selection, O(n): numpy's linear method.
fn quartiles(values: &mut [f32]) -> [f64; 3] {
    let n = values.len();
    if n == 0 {
        return [f64::NAN; 3];
    }
    let mut out = [0f64; 3];
    for (k, q) in [0.25, 0.5, 0.75].into_iter().enumerate() {
        let h = (n - 1) as f64 * q;
        let lo = h.floor() as usize;
        let (_, &mut a, right) = values.select_nth_unstable_by(lo, f32::total_cmp);
        let a = a as f64;
        let frac = h - lo as f64;
        let b = if lo + 1 < n && frac > 0.0 {
            // The next order statistic is the minimum of the right part.
            right.iter().copied().fold(f32::INFINITY, f32::min) as f64
        } else {
            a
        };
        out[k] = a + frac * (b - a);
    }
    out
}

/// Statistics of one tensor's values. `values` is reordered (used as scratch for quantiles).
pub fn summarize(name: &str, dtype: &str, shape: &[usize], values: &mut [f32]) -> TensorStats {
    let n = values.len();
    let m = moments(values);
    let nf = n as f64;
    let mean = m.sum / nf;
    // Second pass for the variance: numerically stable like numpy's.
    let var = if n > 2 * PAR_CHUNK {
        values
            .par_chunks(PAR_CHUNK)
            .map(|c| c.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>())
            .sum::<f64>()
            / nf
    } else {
        values
            .iter()
            .map(|&x| (x as f64 - mean).powi(2))
            .sum::<f64>()
            / nf
    };
    let has_nan = m.nan > 0;
    let [q25, median, q75] = if has_nan {
        [f64::NAN; 3]
    } else {
        quartiles(values)
    };
    let nan_if = |v: f64| if has_nan || n == 0 { f64::NAN } else { v };
    TensorStats {
        name: name.to_string(),
        dtype: dtype.to_string(),
        shape: shape.to_vec(),
        count: n as u64,
        mean: nan_if(mean),
        std: nan_if(var.sqrt()),
        min: nan_if(m.min as f64),
        q25,
        median,
        q75,
        max: nan_if(m.max as f64),
        l2: if n == 0 { f64::NAN } else { m.sq.sqrt() },
        abs_mean: if n == 0 { f64::NAN } else { m.abs / nf },
        sparsity: if n == 0 {
            f64::NAN
        } else {
            m.zeros as f64 / nf
        },
        nan: m.nan,
        inf: m.inf,
    }
}

/// Statistics of every tensor of a checkpoint, in file order, computed in parallel across
/// tensors (and within large tensors). `progress` is called once per finished tensor.
pub fn checkpoint_stats(
    ck: &Checkpoint,
    progress: &(dyn Fn() + Sync),
) -> Result<Vec<TensorStats>, Error> {
    (0..ck.len())
        .into_par_iter()
        .map(|i| {
            let t = ck.tensor_at(i)?;
            let mut values = t
                .to_f32()
                .map_err(|k| Error::new(ck.path(), k).with_tensor(t.name))?;
            let s = summarize(t.name, t.dtype.name(), t.shape, &mut values);
            progress();
            Ok(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_quantiles() {
        // np.quantile([3, 1, 4, 1, 5, 9, 2, 6], [.25, .5, .75]) == [1.75, 3.5, 5.25]
        let mut v = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        let s = summarize("t", "F32", &[8], &mut v);
        assert_eq!((s.q25, s.median, s.q75), (1.75, 3.5, 5.25));
        assert_eq!((s.min, s.max), (1.0, 9.0));
        assert!((s.mean - 3.875).abs() < 1e-12);
        // np.std(..., ddof=0)
        assert!((s.std - 2.5708704751503917).abs() < 1e-12);
        let sorted = [1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0];
        assert_eq!(quantile_sorted(&sorted, 0.25), 1.75);
    }

    #[test]
    fn specials() {
        let mut v = [0.0, f32::NAN, f32::INFINITY, 1.0];
        let s = summarize("t", "F32", &[4], &mut v);
        assert_eq!((s.nan, s.inf), (1, 1));
        assert!(s.mean.is_nan() && s.median.is_nan());
        assert_eq!(s.sparsity, 0.25);
        let s = summarize("e", "F32", &[0], &mut []);
        assert_eq!(s.count, 0);
        assert!(s.mean.is_nan());
    }

    #[test]
    fn large_parallel_matches_serial() {
        let mut v: Vec<f32> = (0..(5u64 << 20))
            .map(|i| ((i * 7919) % 1000) as f32 - 500.0)
            .collect();
        let mut w = v.clone();
        let par = summarize("t", "F32", &[v.len()], &mut v);
        let m = Moments::of(&w);
        assert!((par.mean - m.sum / w.len() as f64).abs() < 1e-9);
        w.sort_by(f32::total_cmp);
        assert_eq!(par.median, quantile_sorted(&w, 0.5));
        assert_eq!(par.q25, quantile_sorted(&w, 0.25));
    }
}
