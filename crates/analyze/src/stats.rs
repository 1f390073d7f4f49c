//! Per-tensor statistics: count, mean, std (ddof 0), min, quartiles (linear interpolation, as
//! numpy's default), max, L2 norm, mean absolute value, share of exact zeros, NaN and Inf counts.

use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::{Checkpoint, Error};

/// Statistics of one tensor, computed over its values converted to `f32`, every sum
/// accumulated in `f64`. With any NaN present, mean/std/min/max/quantiles are NaN, as numpy gives them.
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
        // Every sum is accumulated in f64 (an f32 square never overflows there), in blocks of
        // four independent partial sums so the loop still vectorises.
        const L: usize = 4;
        let (mut s, mut a, mut q) = ([0f64; L], [0f64; L], [0f64; L]);
        let mut chunks = values.chunks_exact(L);
        for c in &mut chunks {
            for k in 0..L {
                let x = c[k];
                let x64 = x as f64;
                s[k] += x64;
                a[k] += x64.abs();
                q[k] += x64 * x64;
                m.min = m.min.min(x);
                m.max = m.max.max(x);
                m.zeros += (x == 0.0) as u64;
            }
        }
        for &x in chunks.remainder() {
            let x64 = x as f64;
            s[0] += x64;
            a[0] += x64.abs();
            q[0] += x64 * x64;
            m.min = m.min.min(x);
            m.max = m.max.max(x);
            m.zeros += (x == 0.0) as u64;
        }
        m.sum = s.iter().sum();
        m.abs = a.iter().sum();
        m.sq = q.iter().sum();
        if !(m.sum.is_finite() && m.sq.is_finite()) {
            // NaN or Inf inside: count them.
            for &x in values {
                m.nan += x.is_nan() as u64;
                m.inf += x.is_infinite() as u64;
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

/// Maps an `f32` to a `u32` whose unsigned order is the order of [`f32::total_cmp`]
/// (`-0.0` before `+0.0`).
#[inline(always)]
fn sort_key(x: f32) -> u32 {
    let b = x.to_bits();
    b ^ (((b as i32 >> 31) as u32) | 0x8000_0000)
}

/// Inverse of [`sort_key`].
#[inline]
fn from_sort_key(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 {
        k & 0x7fff_ffff
    } else {
        !k
    })
}

/// Buckets of a 16-bit radix histogram.
const BUCKETS: usize = 1 << 16;
/// Elements per histogram chunk (counts stay in `u32`; chunks run in parallel). Small in unit
/// tests so that they cover the parallel path quickly.
const HIST_CHUNK: usize = if cfg!(test) { 1 << 12 } else { 1 << 22 };

/// Counts the sort keys of `values` whose high 16 bits equal `targets[t]` (or, with no targets,
/// all of them) by their low (resp. high) 16 bits: one histogram per target.
fn histograms(values: &[f32], targets: &[u32]) -> Vec<Vec<u64>> {
    let count = |chunk: &[f32]| -> Vec<Vec<u64>> {
        let mut h: Vec<Box<[u32; BUCKETS]>> = (0..targets.len().max(1))
            .map(|_| {
                vec![0u32; BUCKETS]
                    .into_boxed_slice()
                    .try_into()
                    .expect("BUCKETS long")
            })
            .collect();
        if targets.is_empty() {
            let h0 = &mut h[0];
            for &x in chunk {
                h0[(sort_key(x) >> 16) as usize] += 1;
            }
        } else {
            for &x in chunk {
                let k = sort_key(x);
                for (t, &hi) in targets.iter().enumerate() {
                    if k >> 16 == hi {
                        h[t][(k & 0xffff) as usize] += 1;
                    }
                }
            }
        }
        h.iter()
            .map(|a| a.iter().map(|&c| c as u64).collect())
            .collect()
    };
    let add = |mut a: Vec<Vec<u64>>, b: Vec<Vec<u64>>| {
        for (x, y) in a.iter_mut().zip(b) {
            x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
        }
        a
    };
    if values.len() > HIST_CHUNK {
        values
            .par_chunks(HIST_CHUNK)
            .map(count)
            .reduce_with(add)
            .expect("non-empty")
    } else {
        count(values)
    }
}

/// The `ranks`-th smallest values of `values` (0-based, each < `values.len()`) in the order of
/// [`f32::total_cmp`], by a two-level 16-bit radix select: two passes over the data, no copy,
/// no reordering, and exactly the elements a sort would put at those ranks.
fn order_statistics<const K: usize>(values: &[f32], ranks: [usize; K]) -> [f32; K] {
    // Pass 1: which high-16-bit bucket holds each rank, and the rank inside it.
    let hi = histograms(values, &[]).pop().expect("one histogram");
    let mut bucket = [0u32; K];
    let mut inner = [0u64; K];
    for (k, &r) in ranks.iter().enumerate() {
        let mut below = 0u64;
        for (b, &c) in hi.iter().enumerate() {
            if below + c > r as u64 {
                bucket[k] = b as u32;
                inner[k] = r as u64 - below;
                break;
            }
            below += c;
        }
    }
    // Pass 2: low-16-bit histograms of the (few distinct) buckets that hold the ranks.
    let mut targets: Vec<u32> = bucket.to_vec();
    targets.sort_unstable();
    targets.dedup();
    let lo = histograms(values, &targets);
    let mut out = [0f32; K];
    for k in 0..K {
        let t = targets.binary_search(&bucket[k]).expect("target bucket");
        let mut below = 0u64;
        for (l, &c) in lo[t].iter().enumerate() {
            if below + c > inner[k] {
                out[k] = from_sort_key((bucket[k] << 16) | l as u32);
                break;
            }
            below += c;
        }
    }
    out
}

/// Quartiles by selection on a scratch copy (`values` is reordered): the method for small
/// tensors, where a radix select's fixed cost (two 65,536-bucket histograms) dominates. It
/// gives the same bits as [`quartiles_radix`].
fn quartiles_by_selection(values: &mut [f32]) -> [f64; 3] {
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
            right.iter().copied().fold(f32::INFINITY, f32::min) as f64
        } else {
            a
        };
        out[k] = a + frac * (b - a);
    }
    out
}

/// Tensors up to this many elements use [`quartiles_by_selection`].
const SMALL: usize = 1 << 14;

/// Quartiles of `values` with numpy's linear interpolation.
fn quartiles(values: &[f32]) -> [f64; 3] {
    if values.len() <= SMALL {
        quartiles_by_selection(&mut values.to_vec())
    } else {
        quartiles_radix(values)
    }
}

/// Quartiles of `values` with numpy's linear interpolation, from exact order statistics found
/// by [`order_statistics`] (no copy).
fn quartiles_radix(values: &[f32]) -> [f64; 3] {
    let n = values.len();
    if n == 0 {
        return [f64::NAN; 3];
    }
    let qs = [0.25, 0.5, 0.75];
    let h = qs.map(|q| (n - 1) as f64 * q);
    let lo = h.map(|h| h.floor() as usize);
    // Ranks lo and lo + 1 (the next order statistic) of each quartile.
    let ranks = [0, 1, 2, 3, 4, 5].map(|i| (lo[i / 2] + i % 2).min(n - 1));
    let v = order_statistics(values, ranks);
    let mut out = [0f64; 3];
    for k in 0..3 {
        let a = v[2 * k] as f64;
        let frac = h[k] - lo[k] as f64;
        let b = if lo[k] + 1 < n && frac > 0.0 {
            v[2 * k + 1] as f64
        } else {
            a
        };
        out[k] = a + frac * (b - a);
    }
    out
}

/// Statistics of one tensor's values. (`values` is left as it is; it is `&mut` for
/// compatibility with callers that pass scratch buffers.)
pub fn summarize(name: &str, dtype: &str, shape: &[usize], values: &mut [f32]) -> TensorStats {
    summarize_values(name, dtype, shape, values)
}

/// Statistics of one tensor's values, read only (no copy, no reordering).
pub fn summarize_values(name: &str, dtype: &str, shape: &[usize], values: &[f32]) -> TensorStats {
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
            // Borrowed straight from the memory map for aligned f32 tensors.
            let values = t
                .f32s()
                .map_err(|k| Error::new(ck.path(), k).with_tensor(t.name))?;
            let s = summarize_values(t.name, t.dtype.name(), t.shape, &values);
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
    fn sums_accumulate_in_f64() {
        // 2^24 followed by ones: an f32 running sum never moves past 2^24 (2^24 + 1 rounds back),
        // f64 counts every one. The mean and the L2 norm must be the exact ones.
        let n = 1000usize;
        let mut v = vec![1.0f32; n];
        v[0] = 16_777_216.0;
        let want_sum = 16_777_216.0 + (n - 1) as f64;
        let s = summarize("t", "F32", &[n], &mut v.clone());
        assert_eq!(s.mean, want_sum / n as f64);
        let want_sq = 16_777_216f64.powi(2) + (n - 1) as f64;
        assert_eq!(s.l2, want_sq.sqrt());
        // Past f32's range: squares of 1e20 overflow f32 but not f64.
        let mut big = vec![1e20f32; 8];
        let s = summarize("b", "F32", &[8], &mut big);
        assert!(
            (s.l2 / (1e20f64 * 8f64.sqrt()) - 1.0).abs() < 1e-6,
            "{}",
            s.l2
        );
        assert_eq!(s.inf, 0);
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

    /// Deterministic test data: xorshift values of several kinds.
    fn data(kind: u32, n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| {
                let r = next();
                let u = (r >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                match kind {
                    // Plain floats.
                    0 => u * 0.04,
                    // bf16-like: few distinct values, many ties.
                    1 => f32::from_bits(((u * 4.0).to_bits()) & 0xffff_0000),
                    // Specials: signed zeros, infinities, subnormals, extremes.
                    2 => match r % 9 {
                        0 => 0.0,
                        1 => -0.0,
                        2 => f32::INFINITY,
                        3 => f32::NEG_INFINITY,
                        4 => f32::from_bits(1 + (r >> 50) as u32),
                        5 => -f32::MAX,
                        _ => u,
                    },
                    // Random bit patterns (no NaN: quartiles are skipped when NaN is present).
                    _ => {
                        let f = f32::from_bits((r >> 32) as u32);
                        if f.is_nan() { 1.0 } else { f }
                    }
                }
            })
            .collect()
    }

    #[test]
    fn sort_keys_order_like_total_cmp() {
        let v = data(2, 2000, 3);
        for w in v.windows(2) {
            assert_eq!(
                sort_key(w[0]).cmp(&sort_key(w[1])),
                w[0].total_cmp(&w[1]),
                "{} {}",
                w[0],
                w[1]
            );
            assert_eq!(from_sort_key(sort_key(w[0])).to_bits(), w[0].to_bits());
        }
    }

    #[test]
    fn radix_select_matches_sorting() {
        for kind in 0..4 {
            for n in [1usize, 2, 3, 4, 5, 7, 8, 100, 1001, 2 * HIST_CHUNK + 1] {
                let v = data(kind, n, n as u64 + kind as u64);
                let mut sorted = v.clone();
                sorted.sort_by(f32::total_cmp);
                let ranks = [0, n / 3, n / 2, n - 1];
                let got = order_statistics(&v, ranks);
                for (g, r) in got.iter().zip(ranks) {
                    assert_eq!(
                        g.to_bits(),
                        sorted[r].to_bits(),
                        "kind {kind} n {n} rank {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn quartiles_identical_to_selection() {
        for kind in 0..4 {
            for n in [1usize, 2, 3, 4, 5, 6, 9, 10, 255, 1000, 3 * HIST_CHUNK + 5] {
                let v = data(kind, n, 7 * n as u64 + kind as u64);
                let new = quartiles_radix(&v);
                let old = quartiles_by_selection(&mut v.clone());
                for k in 0..3 {
                    assert!(
                        new[k].to_bits() == old[k].to_bits()
                            || (new[k].is_nan() && old[k].is_nan()),
                        "kind {kind} n {n} q{k}: {} vs {}",
                        new[k],
                        old[k]
                    );
                }
            }
        }
        // All equal, and all zeros of both signs.
        assert_eq!(quartiles_radix(&[0.5; 10]), [0.5; 3]);
        let z = [0.0, -0.0, 0.0, -0.0, -0.0];
        let (a, b) = (quartiles_radix(&z), quartiles_by_selection(&mut z.clone()));
        assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits));
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
