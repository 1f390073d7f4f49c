//! Times dense linear assignment (maximise Σ C[i, π(i)]) with three crates on the kind of
//! matrix weight matching produces (C = A Bᵀ of two random matrices plus a hidden permutation
//! signal), n = 64 … 2048. kuhn_munkres needs integer costs (scaled by 1e6).
use std::time::Instant;

fn splitmix(s: &mut u64) -> f64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

fn main() {
    let mut seed = 1u64;
    println!("| n | lsap (s) | lapjv (s) | pathfinding kuhn_munkres (s) | same assignment |");
    println!("|---|---|---|---|---|");
    for n in [64usize, 256, 512, 1024, 2048] {
        let k = 64;
        let a: Vec<f64> = (0..n * k).map(|_| splitmix(&mut seed) - 0.5).collect();
        let b: Vec<f64> = (0..n * k).map(|_| splitmix(&mut seed) - 0.5).collect();
        let mut c = vec![0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum::<f64>();
            }
        }
        let t = Instant::now();
        let (_, cols) = lsap::solve(n, n, &c, true).unwrap();
        let t_lsap = t.elapsed().as_secs_f64();

        let neg = lapjv::Matrix::from_shape_fn((n, n), |(i, j)| -c[i * n + j]);
        let t = Instant::now();
        let (rows_jv, _) = lapjv::lapjv(&neg).unwrap();
        let t_jv = t.elapsed().as_secs_f64();

        let (t_km, same_km) = if n <= 1024 {
            let w = pathfinding::matrix::Matrix::from_vec(
                n,
                n,
                c.iter().map(|x| (x * 1e6).round() as i64).collect(),
            )
            .unwrap();
            let t = Instant::now();
            let (_, assign) = pathfinding::kuhn_munkres::kuhn_munkres(&w);
            (format!("{:.4}", t.elapsed().as_secs_f64()), assign == cols)
        } else {
            ("(skipped)".to_string(), true)
        };
        println!(
            "| {n} | {t_lsap:.4} | {t_jv:.4} | {t_km} | {} |",
            if rows_jv == cols && same_km { "yes" } else { "no" }
        );
    }
}
