//! DARE and DELLA draw from weightspace's own seeded ChaCha8 stream, not torch's generator, so
//! their outputs cannot be compared with mergekit bit for bit. These tests check them
//! statistically (kept fractions, DELLA's rank-dependent probabilities) and structurally (the
//! rescale factor, determinism under a seed and across thread counts).

use std::path::Path;

use weightspace_io::Checkpoint;
use weightspace_merge::{ExecOptions, MergeConfig, PlanOptions, execute, plan};

const A: &str = "tests/fixtures/models/a.safetensors";
const B: &str = "tests/fixtures/models/b.safetensors";
const BASE: &str = "tests/fixtures/models/base.safetensors";

fn run(yaml: &str, seed: u64, dir: &Path, name: &str) -> Checkpoint {
    let cfg = MergeConfig::parse(yaml, Path::new("c.yaml")).unwrap();
    let p = plan(cfg, &PlanOptions::default()).unwrap();
    let out = dir.join(name);
    execute(
        &p,
        &out,
        &ExecOptions {
            seed,
            ..Default::default()
        },
        |_, _| {},
    )
    .unwrap();
    Checkpoint::open(&out).unwrap()
}

fn bytes(ck: &Checkpoint) -> Vec<Vec<u8>> {
    ck.names()
        .map(|n| ck.tensor(n).unwrap().bytes.into_owned())
        .collect()
}

fn dare_linear(density: f64, rescale: &str) -> String {
    format!(
        "merge_method: dare_linear\nbase_model: {BASE}\nparameters: {{rescale: {rescale}}}\nmodels:\n  - model: {A}\n    parameters: {{weight: 1.0, density: {density}}}\n"
    )
}

#[test]
fn dare_keeps_density_and_rescales_by_l1() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&dare_linear(0.3, "true"), 7, dir.path(), "o");
    let base = Checkpoint::open(BASE).unwrap();
    let a = Checkpoint::open(A).unwrap();
    let (mut kept, mut total) = (0usize, 0usize);
    for name in out.names() {
        let o = out.tensor_f32(name).unwrap();
        let b = base.tensor_f32(name).unwrap();
        let x = a.tensor_f32(name).unwrap();
        let d: Vec<f32> = x.iter().zip(&b).map(|(x, b)| x - b).collect();
        let m: Vec<bool> = o.iter().zip(&b).map(|(o, b)| o != b).collect();
        let k = m.iter().filter(|v| **v).count();
        kept += k;
        total += m.len();
        if k == 0 {
            continue;
        }
        // mergekit's rescale: |δ|₁ / |mask·δ|₁, one factor per tensor.
        let l1: f64 = d.iter().map(|v| v.abs() as f64).sum();
        let l1m: f64 = d
            .iter()
            .zip(&m)
            .filter(|(_, m)| **m)
            .map(|(v, _)| v.abs() as f64)
            .sum();
        let f = l1 / l1m;
        for i in 0..o.len() {
            if m[i] {
                let want = b[i] as f64 + f * d[i] as f64;
                assert!(
                    (o[i] as f64 - want).abs() < 1e-5,
                    "{name}[{i}]: {} vs {want}",
                    o[i]
                );
            }
        }
    }
    // Binomial(total, 0.3): within 4 standard deviations.
    let p = kept as f64 / total as f64;
    let sd = (0.3 * 0.7 / total as f64).sqrt();
    assert!((p - 0.3).abs() < 4.0 * sd, "kept fraction {p} over {total}");
}

#[test]
fn dare_paper_rescale_divides_by_density() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&dare_linear(0.5, "dare"), 1, dir.path(), "o");
    let base = Checkpoint::open(BASE).unwrap();
    let a = Checkpoint::open(A).unwrap();
    let name = "model.layers.0.mlp.up_proj.weight";
    let (o, b, x) = (
        out.tensor_f32(name).unwrap(),
        base.tensor_f32(name).unwrap(),
        a.tensor_f32(name).unwrap(),
    );
    for i in 0..o.len() {
        if o[i] != b[i] {
            assert!((o[i] - (b[i] + 2.0 * (x[i] - b[i]))).abs() < 1e-5);
        }
    }
}

#[test]
fn same_seed_same_bits_any_thread_count() {
    let yaml = format!(
        "merge_method: dare_ties\nbase_model: {BASE}\nmodels:\n  - model: {A}\n    parameters: {{weight: 0.6, density: 0.4}}\n  - model: {B}\n    parameters: {{weight: 0.4, density: 0.6}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let one = bytes(&run(&yaml, 42, dir.path(), "a"));
    let again = bytes(&run(&yaml, 42, dir.path(), "b"));
    assert_eq!(one, again);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let serial = single.install(|| bytes(&run(&yaml, 42, dir.path(), "c")));
    assert_eq!(one, serial, "thread count must not change the bits");
    let other = bytes(&run(&yaml, 43, dir.path(), "d"));
    assert_ne!(one, other, "another seed draws other masks");
}

#[test]
fn della_keeps_large_magnitudes_more_often() {
    // density 0.5, epsilon 0.4: the smallest of a row is kept with p = 0.1, the largest 0.9.
    let yaml = format!(
        "merge_method: della_linear\nbase_model: {BASE}\nparameters: {{rescale: false}}\nmodels:\n  - model: {A}\n    parameters: {{weight: 1.0, density: 0.5, epsilon: 0.4}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let base = Checkpoint::open(BASE).unwrap();
    let a = Checkpoint::open(A).unwrap();
    let (mut top, mut bottom, mut n) = (0usize, 0usize, 0usize);
    for seed in 0..8 {
        let out = run(&yaml, seed, dir.path(), &format!("s{seed}"));
        for name in out
            .names()
            .filter(|n| out.info(n).unwrap().shape.len() == 2)
        {
            let cols = out.info(name).unwrap().shape[1];
            let (o, b, x) = (
                out.tensor_f32(name).unwrap(),
                base.tensor_f32(name).unwrap(),
                a.tensor_f32(name).unwrap(),
            );
            for r in 0..o.len() / cols {
                let row = r * cols..(r + 1) * cols;
                let d: Vec<f32> = row.clone().map(|i| (x[i] - b[i]).abs()).collect();
                let hi = (0..cols).max_by(|&p, &q| d[p].total_cmp(&d[q])).unwrap();
                let lo = (0..cols).min_by(|&p, &q| d[p].total_cmp(&d[q])).unwrap();
                top += (o[r * cols + hi] != b[r * cols + hi]) as usize;
                bottom += (o[r * cols + lo] != b[r * cols + lo]) as usize;
                n += 1;
            }
        }
    }
    let (pt, pb) = (top as f64 / n as f64, bottom as f64 / n as f64);
    let sd = (0.09 / n as f64).sqrt();
    assert!(
        (pt - 0.9).abs() < 4.0 * sd,
        "largest kept {pt} over {n} rows"
    );
    assert!(
        (pb - 0.1).abs() < 4.0 * sd,
        "smallest kept {pb} over {n} rows"
    );
}
