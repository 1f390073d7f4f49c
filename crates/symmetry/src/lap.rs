//! An exact dense linear-assignment solver that can start warm.
//!
//! It is scipy's shortest-augmenting-path algorithm (Crouse 2016; `lsap` is a translation of
//! the same code), with one change: instead of starting from zero duals and an empty
//! assignment, it starts from the column duals `v` of a previous solve (or column minima) and
//! keeps every previous assignment that is still tight under them, so only the rows whose
//! optimum moved need an augmenting path. A cold start of a problem with ≥ 256 rows takes its
//! duals from a short auction (Bertsekas, ε-scaling to 1e-6 of the cost range) instead of
//! column minima: on the BERT benchmark's 3072-unit groups that cut the cold solves by
//! about 3× (BENCHMARKS.md). Weight matching solves the same group again and
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
    let mut auction_hint = None;
    let mut v: Vec<f64> = match v0 {
        Some(v) if v.len() == n => v.to_vec(),
        _ => {
            let auction = if n >= AUCTION_MIN {
                auction_start(n, cost)
            } else {
                None
            };
            match auction {
                Some((v, a)) => {
                    auction_hint = Some(a);
                    v
                }
                None => (0..n)
                    .map(|j| (0..n).map(|i| c(i, j)).fold(f64::INFINITY, f64::min))
                    .collect(),
            }
        }
    };
    // The auction's assignment is the one its duals were made for.
    let hint = auction_hint.as_deref().or(hint);
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

/// Problems at least this large start cold from [`auction_start`]'s duals.
const AUCTION_MIN: usize = 256;

/// Most auction bids per row (each costs one pass over a row).
const AUCTION_BIDS: usize = 100;

/// Approximate duals for a cold start: Bertsekas' auction (Gauss–Seidel, ε-scaling from a
/// quarter of the cost range down to 1e-6 of it) on the benefits `−cost`. Returns the column
/// duals (`−prices`) and the auction's assignment, both ε-optimal; the exact solver then
/// only repairs what ε left open (the result is still checked for optimality there). `None`
/// (start from column minima instead) when the bids exceed [`AUCTION_BIDS`]` · n`, as in a
/// price war among near-identical rows.
fn auction_start(n: usize, cost: &[f64]) -> Option<(Vec<f64>, Vec<usize>)> {
    let (lo, hi) = cost
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
            (l.min(x), h.max(x))
        });
    let range = (hi - lo).max(f64::MIN_POSITIVE);
    let mut price = vec![0f64; n];
    let mut owner = vec![NONE; n];
    let mut assign = vec![NONE; n];
    let mut eps = range / 4.0;
    let eps_final = range * 1e-6;
    let mut queue: Vec<usize> = Vec::with_capacity(n);
    let mut bids = 0usize;
    loop {
        owner.iter_mut().for_each(|o| *o = NONE);
        assign.iter_mut().for_each(|a| *a = NONE);
        queue.clear();
        queue.extend((0..n).rev());
        while let Some(i) = queue.pop() {
            bids += 1;
            if bids > AUCTION_BIDS * n {
                tracing::debug!(n, bids, "auction start abandoned");
                return None;
            }
            let row = &cost[i * n..(i + 1) * n];
            // Best and second-best value −cost − price.
            let (mut b1, mut b2, mut j1) = (f64::NEG_INFINITY, f64::NEG_INFINITY, 0);
            for (j, (&x, &p)) in row.iter().zip(&price).enumerate() {
                let w = -x - p;
                if w > b1 {
                    b2 = b1;
                    b1 = w;
                    j1 = j;
                } else if w > b2 {
                    b2 = w;
                }
            }
            let inc = if b2.is_finite() { b1 - b2 } else { 0.0 };
            price[j1] += inc + eps;
            let prev = owner[j1];
            if prev != NONE {
                assign[prev] = NONE;
                queue.push(prev);
            }
            owner[j1] = i;
            assign[i] = j1;
        }
        if eps <= eps_final {
            break;
        }
        eps = (eps / 8.0).max(eps_final);
    }
    tracing::debug!(n, bids, "auction start");
    Some((price.iter().map(|p| -p).collect(), assign))
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
        for n in [1, 2, 3, 5, 17, 64, 150, 300] {
            for _ in 0..5 {
                let c = random(n, &mut r);
                let (a, _) = solve_min_warm(n, &c, None, None).unwrap();
                assert_eq!(a, lsap_min(n, &c), "n = {n}");
            }
        }
    }

    #[test]
    fn auction_start_survives_identical_rows() {
        // Every row the same: all assignments tie (a price war for the auction, which gives
        // up after its bid budget); the answer must still be an optimal permutation.
        let n = 300;
        let c: Vec<f64> = (0..n * n).map(|k| ((k % n) as f64 * 0.37).sin()).collect();
        let (a, _) = solve_min_warm(n, &c, None, None).unwrap();
        let mut seen = vec![false; n];
        a.iter().for_each(|&j| seen[j] = true);
        assert!(seen.iter().all(|&s| s));
        let total: f64 = (0..n).map(|i| c[i * n + a[i]]).sum();
        let best: f64 = (0..n).map(|j| c[j]).sum();
        assert!((total - best).abs() < 1e-9);
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
