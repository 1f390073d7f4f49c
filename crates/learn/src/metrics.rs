//! Metrics: Kendall's τ-b and R² for regression targets, accuracy for classification.

/// Kendall's rank correlation τ-b (ties in either variable handled as scipy's `kendalltau`
/// does): `(C − D) / sqrt((n0 − n1)(n0 − n2))` with `n0 = n(n−1)/2` pairs, `n1`/`n2` the pairs
/// tied in `x`/`y`. NaN when either side is constant or fewer than two points. O(n²), which is
/// fine for the few thousand predictions a zoo gives.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "kendall_tau_b: lengths differ");
    let n = x.len();
    let (mut conc, mut disc, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i] - x[j];
            let dy = y[i] - y[j];
            let s = dx * dy;
            if dx == 0.0 && dy == 0.0 {
                tx += 1;
                ty += 1;
            } else if dx == 0.0 {
                tx += 1;
            } else if dy == 0.0 {
                ty += 1;
            } else if s > 0.0 {
                conc += 1;
            } else if s < 0.0 {
                disc += 1;
            }
        }
    }
    let n0 = (n as i64) * (n as i64 - 1) / 2;
    let denom = (((n0 - tx) as f64) * ((n0 - ty) as f64)).sqrt();
    if n < 2 || denom == 0.0 {
        return f64::NAN;
    }
    (conc - disc) as f64 / denom
}

/// Coefficient of determination `1 − SS_res / SS_tot` of predictions `pred` for targets `y`
/// (scikit-learn's `r2_score`): 1 is perfect, 0 is as good as predicting the mean, negative is
/// worse. NaN when `y` is constant.
pub fn r2(y: &[f64], pred: &[f64]) -> f64 {
    assert_eq!(y.len(), pred.len(), "r2: lengths differ");
    if y.is_empty() {
        return f64::NAN;
    }
    let mean = y.iter().sum::<f64>() / y.len() as f64;
    let ss_tot: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let ss_res: f64 = y.iter().zip(pred).map(|(a, b)| (a - b).powi(2)).sum();
    if ss_tot == 0.0 {
        return f64::NAN;
    }
    1.0 - ss_res / ss_tot
}

/// Fraction of `pred` equal to `y` (class indices). NaN when empty.
pub fn accuracy(y: &[usize], pred: &[usize]) -> f64 {
    assert_eq!(y.len(), pred.len(), "accuracy: lengths differ");
    if y.is_empty() {
        return f64::NAN;
    }
    y.iter().zip(pred).filter(|(a, b)| a == b).count() as f64 / y.len() as f64
}

/// Mean and (sample, n−1) standard deviation; std is 0 for a single value, NaN values are
/// skipped.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    if v.len() == 1 {
        return (m, 0.0);
    }
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    (m, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tau_perfect_and_reversed() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(kendall_tau_b(&x, &[10.0, 20.0, 30.0, 40.0]), 1.0);
        assert_eq!(kendall_tau_b(&x, &[4.0, 3.0, 2.0, 1.0]), -1.0);
    }

    #[test]
    fn tau_by_hand() {
        // x = 1 2 3 4 5, y = 3 1 2 5 4. Pairs (10): discordant are (1,2) (1,3) (4,5): D = 3,
        // C = 7 → τ = (7 − 3) / 10 = 0.4.
        let t = kendall_tau_b(&[1.0, 2.0, 3.0, 4.0, 5.0], &[3.0, 1.0, 2.0, 5.0, 4.0]);
        assert!((t - 0.4).abs() < 1e-12, "{t}");
    }

    #[test]
    fn tau_b_with_ties_by_hand() {
        // x = 1 1 2 3, y = 1 2 2 3. n0 = 6. Tied in x: (1,2) → n1 = 1. Tied in y: (2,3) → n2 = 1.
        // Remaining 4 pairs: (1,3) dx>0 dy>0 C; (1,4) C; (2,4) C; (3,4) C → C = 4, D = 0.
        // τ-b = 4 / sqrt(5 · 5) = 0.8 (scipy.stats.kendalltau gives 0.8).
        let t = kendall_tau_b(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 2.0, 3.0]);
        assert!((t - 0.8).abs() < 1e-12, "{t}");
    }

    #[test]
    fn tau_constant_is_nan() {
        assert!(kendall_tau_b(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        assert!(kendall_tau_b(&[1.0], &[1.0]).is_nan());
    }

    #[test]
    fn r2_by_hand() {
        // y = 1 2 3, mean 2, SS_tot = 2; pred = 1 2 4: SS_res = 1 → R² = 0.5.
        assert!((r2(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]) - 0.5).abs() < 1e-12);
        assert_eq!(r2(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0);
        // Predicting the mean gives 0.
        assert_eq!(r2(&[1.0, 2.0, 3.0], &[2.0, 2.0, 2.0]), 0.0);
        assert!(r2(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn accuracy_by_hand() {
        assert_eq!(accuracy(&[0, 1, 2, 1], &[0, 1, 1, 1]), 0.75);
    }

    #[test]
    fn mean_std_by_hand() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
    }
}
