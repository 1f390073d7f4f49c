//! An exact dense linear-assignment solver that can start warm.
//!
//! It is scipy's shortest-augmenting-path algorithm (Crouse 2016; `lsap` is a translation of
//! the same code), with one change: instead of starting from zero duals and an empty
//! assignment, it starts from the column duals `v` of a previous solve (or column minima) and
//! keeps every previous assignment that is still tight under them, so only the rows whose
//! optimum moved need an augmenting path. Weight matching solves the same group again and
//! again with slowly changing costs, which is where this pays.
//!
//! The result is checked for optimality (complementary slackness, to 1e-9 relative); if the
//! check fails, the caller falls back to `lsap`. With a unique optimum — the generic case for
//! real-valued costs — the answer is the one scipy gives.

const NONE: usize = usize::MAX;

/// Minimises `Σ cost[i·n + col[i]]`. `v0`: column duals to start from; `hint`: a previous
/// assignment to keep where still tight. Returns the assignment and the final column duals,
/// or `None` when the optimality check fails.
pub(crate) fn solve_min_warm(
    n: usize,
    cost: &[f64],
    v0: Option<&[f64]>,
    hint: Option<&[usize]>,
) -> Option<(Vec<usize>, Vec<f64>)> {
    let c = |i: usize, j: usize| cost[i * n + j];
    let mut v: Vec<f64> = match v0 {
        Some(v) if v.len() == n => v.to_vec(),
        _ => (0..n)
            .map(|j| (0..n).map(|i| c(i, j)).fold(f64::INFINITY, f64::min))
            .collect(),
    };
    let mut u = vec![0f64; n];
    let mut col4row = vec![NONE; n];
    let mut row4col = vec![NONE; n];
    for i in 0..n {
        let mut best = f64::INFINITY;
        let mut bj = NONE;
        for (j, &vj) in v.iter().enumerate() {
            let r = c(i, j) - vj;
            if r < best {
                best = r;
                bj = j;
            }
        }
        u[i] = best;
        let j = match hint.map(|h| h[i]) {
            Some(j0) if j0 < n && c(i, j0) - v[j0] <= best => j0,
            _ => bj,
        };
        if j != NONE && row4col[j] == NONE {
            row4col[j] = i;
            col4row[i] = j;
        }
    }
    let mut spc = vec![f64::INFINITY; n];
    let mut path = vec![NONE; n];
    let mut sr = vec![false; n];
    let mut sc = vec![false; n];
    let mut remaining = vec![0usize; n];
    for cur in 0..n {
        if col4row[cur] != NONE {
            continue;
        }
        // Shortest augmenting path from `cur` (scipy's augmenting_path).
        let mut min_val = 0f64;
        let mut num_remaining = n;
        for (it, r) in remaining.iter_mut().enumerate() {
            *r = n - it - 1;
        }
        sr.iter_mut().for_each(|x| *x = false);
        sc.iter_mut().for_each(|x| *x = false);
        spc.iter_mut().for_each(|x| *x = f64::INFINITY);
        let mut i = cur;
        let sink = loop {
            let mut index = NONE;
            let mut lowest = f64::INFINITY;
            sr[i] = true;
            for (it, &j) in remaining[..num_remaining].iter().enumerate() {
                let r = min_val + c(i, j) - u[i] - v[j];
                if r < spc[j] {
                    path[j] = i;
                    spc[j] = r;
                }
                if spc[j] < lowest || (spc[j] == lowest && row4col[j] == NONE) {
                    lowest = spc[j];
                    index = it;
                }
            }
            min_val = lowest;
            if !min_val.is_finite() || index == NONE {
                return None;
            }
            let j = remaining[index];
            sc[j] = true;
            num_remaining -= 1;
            remaining[index] = remaining[num_remaining];
            if row4col[j] == NONE {
                break j;
            }
            i = row4col[j];
        };
        // Dual update.
        u[cur] += min_val;
        for r in 0..n {
            if sr[r] && r != cur {
                u[r] += min_val - spc[col4row[r]];
            }
        }
        for j in 0..n {
            if sc[j] {
                v[j] -= min_val - spc[j];
            }
        }
        // Augment.
        let mut j = sink;
        loop {
            let r = path[j];
            row4col[j] = r;
            std::mem::swap(&mut col4row[r], &mut j);
            if r == cur {
                break;
            }
        }
    }
    // Optimality check: every reduced cost non-negative, assigned ones zero (to rounding).
    let scale = cost.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-300);
    let tol = 1e-9 * scale;
    for i in 0..n {
        let j = col4row[i];
        if j == NONE || (c(i, j) - u[i] - v[j]).abs() > tol {
            return None;
        }
        if v.iter()
            .enumerate()
            .any(|(jj, &vj)| c(i, jj) - u[i] - vj < -tol)
        {
            return None;
        }
    }
    Some((col4row, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random(n: usize, r: &mut SplitMix64) -> Vec<f64> {
        (0..n * n).map(|_| r.next_f64() * 2.0 - 1.0).collect()
    }

    fn lsap_min(n: usize, c: &[f64]) -> Vec<usize> {
        let (_, cols) = lsap::solve(n, n, &c.to_vec(), false).unwrap();
        cols
    }

    #[test]
    fn cold_matches_lsap() {
        let mut r = SplitMix64::new(1);
        for n in [1, 2, 3, 5, 17, 64, 150] {
            for _ in 0..5 {
                let c = random(n, &mut r);
                let (a, _) = solve_min_warm(n, &c, None, None).unwrap();
                assert_eq!(a, lsap_min(n, &c), "n = {n}");
            }
        }
    }

    #[test]
    fn warm_start_from_a_nearby_problem_matches_lsap() {
        let mut r = SplitMix64::new(2);
        for n in [4, 33, 120] {
            let mut c = random(n, &mut r);
            let (mut a, mut v) = solve_min_warm(n, &c, None, None).unwrap();
            for step in 0..8 {
                // Perturb (small and large changes), re-solve warm.
                let eps = if step % 2 == 0 { 0.01 } else { 0.5 };
                for x in c.iter_mut() {
                    *x += eps * (r.next_f64() - 0.5);
                }
                let (a2, v2) = solve_min_warm(n, &c, Some(&v), Some(&a)).unwrap();
                assert_eq!(a2, lsap_min(n, &c), "n = {n}, step {step}");
                (a, v) = (a2, v2);
            }
            // A bad hint is harmless.
            let hint: Vec<usize> = (0..n).rev().collect();
            let (a3, _) = solve_min_warm(n, &c, Some(&v), Some(&hint)).unwrap();
            assert_eq!(a3, lsap_min(n, &c));
        }
    }
}
