//! Cost matrices in f32, certified by the assignment's duals.
//!
//! The weights are f32, so an f32 GEMM multiplies them exactly and only its sums round. Each
//! product of a unit matrix pair is summed in f32 over chunks of at most [`CHUNK`] inner
//! columns and the chunks are added in f64, so an entry of the computed matrix `C̃` is within
//!
//! ```text
//! E[i, j] = g · α_i · β_j,   g = γ₃₂(CHUNK) + γ₆₄(k + chunks) + γ₆₄(k)
//! ```
//!
//! of the exact cost `C[i, j]`, *and* of any f64 evaluation `Ĉ` of it (numpy's, or the f64
//! path's): `Σ_t |a_t b_t| ≤ α_i β_j` (Cauchy–Schwarz over all members' columns, `α`, `β` the
//! unit rows' norms) and `|fl(Σ) − Σ| ≤ γ_k Σ|terms|` for any summation order (Higham, Thm 3.1),
//! with `γ_k = k·u / (1 − k·u)`.
//!
//! The assignment `σ` is solved on `C̃` (as a minimisation of `K = −C̃`). Then every other
//! entry of a row is made cheaper by what the errors could take from it —
//! `K'[i, j] = K[i, j] − a[i, j]` for `j ≠ σ_i`, `a[i, j] = 1.01·(E[i, j] + E[i, σ_i]) + 2s`
//! (`s` a rounding slack), `K'[i, σ_i] = K[i, σ_i]` — and solved again (warm). If `σ` is still
//! optimal for `K'`, checked with the duals `u'`, `v'` (every reduced cost
//! `K'[i, j] − u'_i − v'_j ≥ −s`, `u'_i = K'[i, σ_i] − v'_{σ_i}`), then for any other
//! assignment `τ`, with `D = {i: τ_i ≠ σ_i}`:
//!
//! ```text
//! K(τ) − K(σ) = Σ_D (K'[i, τ_i] − u'_i − v'_{τ_i}) + Σ_D a[i, τ_i] > Σ_D (E[i, τ_i] + E[i, σ_i])
//! ```
//!
//! (the `v'` terms cancel because `τ` and `σ` use the same columns on `D`), so `σ` is the
//! unique optimum of every matrix within `E` of `C̃`: of `Ĉ` too, and scipy's solver (or the
//! f64 path) would return it. (A row-by-row margin test is not enough: the duals of an
//! assignment problem are degenerate, about half the rows have a second zero reduced cost.)
//! Where the second solve moves rows, those rows are recomputed in f64 (their `g` becomes
//! the f64 bound) and the assignment is solved again; when too many move, the caller computes
//! the whole matrix in f64.

use rayon::prelude::*;

/// Inner columns summed in f32 before the partial sum goes to f64.
pub(crate) const CHUNK: usize = 256;

const U32: f64 = 1.0 / (1u64 << 24) as f64;
const U64: f64 = 1.0 / (1u64 << 53) as f64;

fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    ku / (1.0 - ku)
}

/// Bound factor `g` of an f32-chunked product over `k` inner columns (in `chunks` chunks),
/// against any f64 evaluation of the same sum.
pub(crate) fn g32(k: usize, chunks: usize) -> f64 {
    (gamma(CHUNK, U32) + gamma(k + chunks, U64) + gamma(k, U64)) * 1.0001
}

/// Bound factor of an f64 evaluation against any other f64 evaluation.
pub(crate) fn g64(k: usize) -> f64 {
    2.0 * gamma(k + 1, U64) * 1.0001
}

/// `c (n×n, f64) += a (n×k) · bᵀ (b is n×k)` with the products summed in f32 over chunks of
/// [`CHUNK`] columns, each chunk's partial sum added to `c` in f64 (in chunk order). Row
/// blocks in parallel; the result does not depend on the split. Returns the number of chunks.
pub(crate) fn add_abt_f32(c: &mut [f64], a: &[f32], b: &[f32], n: usize, k: usize) -> usize {
    if n == 0 || k == 0 {
        return 0;
    }
    let threads = rayon::current_num_threads().max(1);
    let rows = n.div_ceil(threads * 2).clamp(8, 512);
    c.par_chunks_mut(rows * n)
        .zip(a.par_chunks(rows * k))
        .for_each(|(cc, aa)| {
            let m = cc.len() / n;
            let mut tmp = vec![0f32; m * n];
            for k0 in (0..k).step_by(CHUNK) {
                let kc = CHUNK.min(k - k0);
                // SAFETY: `aa` is m×k row-major (the kc columns from k0: row stride k), `b` is
                // n×k row-major read as its transpose (kc×n from row k0: strides 1 and k),
                // `tmp` is m×n row-major; every index stays inside its slice.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        kc,
                        n,
                        1.0,
                        aa.as_ptr().add(k0),
                        k as isize,
                        1,
                        b.as_ptr().add(k0),
                        1,
                        k as isize,
                        0.0,
                        tmp.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                cc.iter_mut().zip(&tmp).for_each(|(c, &t)| *c += t as f64);
            }
        });
    k.div_ceil(CHUNK)
}

/// Squared norms of the `n` rows of an `n × k` matrix, added to `out`.
pub(crate) fn add_row_norms2(out: &mut [f64], a: &[f32], k: usize) {
    if k == 0 {
        return;
    }
    out.par_iter_mut()
        .zip(a.par_chunks(k))
        .for_each(|(o, r)| *o += r.iter().map(|&x| x as f64 * x as f64).sum::<f64>());
}

/// Rounding slack of reduced costs built from `neg` and duals `v` (a few ulps of the largest
/// magnitude involved).
pub(crate) fn slack(neg: &[f64], v: &[f64]) -> f64 {
    let m = neg.iter().fold(0f64, |m, x| m.max(x.abs()));
    let vm = v.iter().fold(0f64, |m, x| m.max(x.abs()));
    32.0 * f64::EPSILON * (m + 2.0 * vm)
}

/// `K'` of the module docs into `out`: `neg` with every entry off `sigma` lowered by its error
/// allowance. `g[i]` is row `i`'s bound factor, `alpha`/`beta` the unit norms.
#[allow(clippy::too_many_arguments)]
pub(crate) fn penalised(
    n: usize,
    neg: &[f64],
    sigma: &[usize],
    alpha: &[f64],
    beta: &[f64],
    g: &[f64],
    s: f64,
    out: &mut Vec<f64>,
) {
    out.clear();
    out.resize(n * n, 0.0);
    out.par_chunks_mut(n)
        .zip(neg.par_chunks(n))
        .enumerate()
        .for_each(|(i, (o, row))| {
            let ea = 1.01 * g[i] * alpha[i];
            let es = ea * beta[sigma[i]] + 2.0 * s;
            for (j, ((o, &x), &b)) in o.iter_mut().zip(row).zip(beta).enumerate() {
                *o = if j == sigma[i] { x } else { x - (ea * b + es) };
            }
        });
}

/// Whether `sigma` is optimal for `k` (n×n, minimisation) with column duals `v`: every
/// reduced cost `k[i, j] − u_i − v_j ≥ −s`, `u_i = k[i, σ_i] − v_{σ_i}`.
pub(crate) fn is_optimal(n: usize, k: &[f64], sigma: &[usize], v: &[f64], s: f64) -> bool {
    k.par_chunks(n).enumerate().all(|(i, row)| {
        let u = row[sigma[i]] - v[sigma[i]];
        row.iter().zip(v).all(|(&x, &vj)| x - u - vj >= -s)
    })
}

/// A lower bound of `Ĉ(σ) − Ĉ(old)` (maximisation) for every `Ĉ` within `E` of `c`, minus the
/// rounding of the two f64 sums `Σ_i Ĉ[i, π_i]` the f64 loop compares.
pub(crate) fn improvement_bound(
    n: usize,
    c: &[f64],
    sigma: &[usize],
    old: &[usize],
    alpha: &[f64],
    beta: &[f64],
    g: &[f64],
) -> f64 {
    let (mut d, mut e, mut mag) = (0f64, 0f64, 0f64);
    for i in 0..n {
        let (x, y) = (c[i * n + sigma[i]], c[i * n + old[i]]);
        mag += x.abs() + y.abs();
        if sigma[i] != old[i] {
            d += x - y;
            e += g[i] * alpha[i] * (beta[sigma[i]] + beta[old[i]]);
        }
    }
    // Rounding of `d` here and of both sums there: at most (n + 1)·ε·mag each.
    d - 1.01 * e - 4.0 * (n as f64 + 1.0) * f64::EPSILON * (mag + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn chunked_f32_product_is_within_its_bound() {
        let mut r = SplitMix64::new(4);
        let (n, k) = (37, 700);
        let a: Vec<f32> = (0..n * k).map(|_| (r.next_f64() - 0.5) as f32).collect();
        let b: Vec<f32> = (0..n * k).map(|_| (r.next_f64() - 0.3) as f32).collect();
        let mut c = vec![0f64; n * n];
        let chunks = add_abt_f32(&mut c, &a, &b, n, k);
        assert_eq!(chunks, 3);
        let (mut al, mut be) = (vec![0f64; n], vec![0f64; n]);
        add_row_norms2(&mut al, &a, k);
        add_row_norms2(&mut be, &b, k);
        let g = g32(k, chunks);
        let mut worst = 0f64;
        for i in 0..n {
            for j in 0..n {
                let exact: f64 = (0..k)
                    .map(|t| a[i * k + t] as f64 * b[j * k + t] as f64)
                    .sum();
                let e = g * al[i].sqrt() * be[j].sqrt();
                let err = (c[i * n + j] - exact).abs();
                assert!(err <= e, "({i}, {j}): error {err} > bound {e}");
                worst = worst.max(err);
            }
        }
        // The f32 sums did round (the bound is not vacuous).
        assert!(worst > 0.0);
    }

    #[test]
    fn certification_fails_on_a_near_tie_and_passes_with_a_margin() {
        // 3×3 maximisation: the diagonal wins by `d` over the best other assignment, and the
        // duals are degenerate (row 2 has two zero reduced costs).
        let n = 3;
        let (alpha, beta) = (vec![1.0; 3], vec![1.0; 3]);
        let g = vec![g32(1000, 4); 3];
        let sigma = [0, 1, 2];
        for (d, ok) in [(1e-7, false), (1e-2, true)] {
            let c = [1.0 + d, 1.0, 0.0, 1.0, 1.0 + d, 0.0, 0.0, 0.0, 1.0];
            let neg: Vec<f64> = c.iter().map(|x| -x).collect();
            // Optimal duals of −c at σ (u = 0 on rows 0, 1; v = −1 − d, −1 − d, −1).
            let v = vec![-1.0 - d, -1.0 - d, -1.0];
            let s = slack(&neg, &v);
            assert!(is_optimal(n, &neg, &sigma, &v, s));
            let mut k = Vec::new();
            penalised(n, &neg, &sigma, &alpha, &beta, &g, s, &mut k);
            // The penalised problem's best assignment swaps rows 0 and 1 when d is small.
            let (rows, cols) = lsap::solve(n, n, &k, false).unwrap();
            let mut sig2 = vec![0; n];
            for (r, c) in rows.into_iter().zip(cols) {
                sig2[r] = c;
            }
            assert_eq!(sig2 == sigma, ok, "d = {d}");
            let imp = improvement_bound(n, &c, &sigma, &[1, 0, 2], &alpha, &beta, &g);
            assert_eq!(imp > 0.0, ok, "d = {d}");
        }
    }
}
