//! `prune` and `taskvec` on the fixture models, plus `--topk-scope global` and tokenizer copying.

use std::path::Path;

use weightspace_io::Checkpoint;
use weightspace_merge::prune::{PruneMethod, PruneOptions, prune};
use weightspace_merge::{ExecOptions, MergeConfig, PlanOptions, execute, plan, taskvec};

const A: &str = "tests/fixtures/models/a.safetensors";
const B: &str = "tests/fixtures/models/b.safetensors";
const BASE: &str = "tests/fixtures/models/base.safetensors";

fn opts(method: PruneMethod, density: f64, global: bool) -> PruneOptions {
    PruneOptions {
        method,
        density,
        global,
        seed: 3,
        max_shard_bytes: None,
    }
}

#[test]
fn magnitude_prune_keeps_the_largest_per_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let ck = Checkpoint::open(A).unwrap();
    let out = dir.path().join("p.safetensors");
    let r = prune(&ck, &out, &opts(PruneMethod::Magnitude, 0.25, false)).unwrap();
    let p = Checkpoint::open(&out).unwrap();
    for name in ck.names() {
        let x = ck.tensor_f32(name).unwrap();
        let y = p.tensor_f32(name).unwrap();
        if ck.info(name).unwrap().shape.len() < 2 {
            assert_eq!(x, y, "{name}: 1-D tensors are copied");
            continue;
        }
        let k = ((0.25 * x.len() as f64) as usize).max(1);
        let mut mags: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        mags.sort_by(|a, b| b.total_cmp(a));
        let kept: Vec<usize> = (0..x.len()).filter(|&i| y[i] != 0.0).collect();
        assert_eq!(kept.len(), k, "{name}");
        for &i in &kept {
            assert_eq!(x[i], y[i]);
            assert!(x[i].abs() >= mags[k - 1]);
        }
    }
    assert!(r.kept < r.elements);
}

#[test]
fn global_magnitude_prune_uses_one_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let ck = Checkpoint::open(A).unwrap();
    let out = dir.path().join("p.safetensors");
    let r = prune(&ck, &out, &opts(PruneMethod::Magnitude, 0.1, true)).unwrap();
    let k = (0.1 * r.elements as f64) as u64;
    assert_eq!(r.kept, k, "no ties in random data: exactly k kept");
    let p = Checkpoint::open(&out).unwrap();
    let (mut min_kept, mut max_dropped) = (f32::MAX, 0f32);
    for name in ck.names().filter(|n| ck.info(n).unwrap().shape.len() >= 2) {
        for (x, y) in ck
            .tensor_f32(name)
            .unwrap()
            .iter()
            .zip(p.tensor_f32(name).unwrap())
        {
            if y != 0.0 {
                min_kept = min_kept.min(x.abs())
            } else {
                max_dropped = max_dropped.max(x.abs())
            }
        }
    }
    assert!(min_kept > max_dropped);
}

#[test]
fn random_and_structured_prune() {
    let dir = tempfile::tempdir().unwrap();
    let ck = Checkpoint::open(A).unwrap();
    let out = dir.path().join("r.safetensors");
    let r = prune(&ck, &out, &opts(PruneMethod::Random, 0.5, false)).unwrap();
    let frac = r.kept as f64 / r.elements as f64;
    assert!(
        (frac - 0.5).abs() < 4.0 * (0.25 / r.elements as f64).sqrt(),
        "{frac}"
    );
    let out = dir.path().join("s.safetensors");
    prune(&ck, &out, &opts(PruneMethod::L1Structured, 0.5, false)).unwrap();
    let p = Checkpoint::open(&out).unwrap();
    let name = "model.layers.0.mlp.up_proj.weight"; // [16, 8]
    let (x, y) = (ck.tensor_f32(name).unwrap(), p.tensor_f32(name).unwrap());
    let l1 = |v: &[f32], r: usize| v[r * 8..(r + 1) * 8].iter().map(|x| x.abs()).sum::<f32>();
    let kept: Vec<usize> = (0..16).filter(|&r| l1(&y, r) > 0.0).collect();
    assert_eq!(kept.len(), 8);
    let min_kept = kept.iter().map(|&r| l1(&x, r)).fold(f32::MAX, f32::min);
    let max_dropped = (0..16)
        .filter(|r| !kept.contains(r))
        .map(|r| l1(&x, r))
        .fold(0f32, f32::max);
    assert!(min_kept >= max_dropped);
    assert!(prune(&ck, &out, &opts(PruneMethod::L1Structured, 0.5, true)).is_err());
    assert!(
        prune(&ck, &out, &opts(PruneMethod::Magnitude, 0.0, false))
            .unwrap_err()
            .is_bad_input()
    );
}

#[test]
fn task_vectors_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let base = Checkpoint::open(BASE).unwrap();
    let a = Checkpoint::open(A).unwrap();
    let tv_path = dir.path().join("tv.safetensors");
    taskvec::extract(&base, &a, &tv_path, None, None).unwrap();
    let tv = Checkpoint::open(&tv_path).unwrap();
    let back = dir.path().join("back.safetensors");
    taskvec::apply(&base, std::slice::from_ref(&tv), 1.0, &back, None).unwrap();
    let back = Checkpoint::open(&back).unwrap();
    for name in a.names() {
        for (x, y) in a
            .tensor_f32(name)
            .unwrap()
            .iter()
            .zip(back.tensor_f32(name).unwrap())
        {
            assert!((x - y).abs() <= 1e-6 * (1.0 + x.abs()), "{name}");
        }
    }
    // Negation and sums: base + (-1)(tv + tv) = base - 2 tv.
    let neg = dir.path().join("neg.safetensors");
    taskvec::apply(
        &base,
        &[Checkpoint::open(&tv_path).unwrap(), tv],
        -1.0,
        &neg,
        None,
    )
    .unwrap();
    let neg = Checkpoint::open(&neg).unwrap();
    let name = "model.norm.weight";
    let (b, x, y) = (
        base.tensor_f32(name).unwrap(),
        a.tensor_f32(name).unwrap(),
        neg.tensor_f32(name).unwrap(),
    );
    for i in 0..b.len() {
        assert!((y[i] - (b[i] - 2.0 * (x[i] - b[i]))).abs() < 1e-5);
    }
    // b has more embedding rows than the base: a clear shape error.
    let e = taskvec::extract(
        &base,
        &Checkpoint::open(B).unwrap(),
        &dir.path().join("x.safetensors"),
        None,
        None,
    )
    .unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("shape [14, 8]"),
        "{e}"
    );
}

#[test]
fn global_topk_ties() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "merge_method: ties\nbase_model: {BASE}\nmodels:\n  - model: {A}\n    parameters: {{weight: 1.0, density: 0.2}}\n"
    );
    let cfg = MergeConfig::parse(&yaml, Path::new("c.yaml")).unwrap();
    let p = plan(
        cfg,
        &PlanOptions {
            topk_global: true,
            ..Default::default()
        },
    )
    .unwrap();
    let out = dir.path().join("g");
    execute(
        &p,
        &out,
        &ExecOptions {
            topk_global: true,
            ..Default::default()
        },
        |_, _| {},
    )
    .unwrap();
    let (o, base, a) = (
        Checkpoint::open(&out).unwrap(),
        Checkpoint::open(BASE).unwrap(),
        Checkpoint::open(A).unwrap(),
    );
    let (mut kept, mut total, mut min_kept, mut max_dropped) = (0usize, 0usize, f32::MAX, 0f32);
    for name in o.names() {
        let (y, b, x) = (
            o.tensor_f32(name).unwrap(),
            base.tensor_f32(name).unwrap(),
            a.tensor_f32(name).unwrap(),
        );
        for i in 0..y.len() {
            let d = (x[i] - b[i]).abs();
            total += 1;
            if y[i] != b[i] {
                kept += 1;
                min_kept = min_kept.min(d);
            } else {
                max_dropped = max_dropped.max(d);
            }
        }
    }
    assert_eq!(kept, (0.2 * total as f64) as usize);
    assert!(min_kept > max_dropped);
    // Global scope is refused for other methods.
    let cfg = MergeConfig::parse(&yaml.replace("ties", "dare_ties"), Path::new("c.yaml")).unwrap();
    assert!(
        plan(
            cfg,
            &PlanOptions {
                topk_global: true,
                ..Default::default()
            }
        )
        .is_err()
    );
}

#[test]
fn tokenizer_and_config_are_copied_from_model_folders() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("hub/models--org--tiny/snapshots/abc");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(A, src.join("model.safetensors")).unwrap();
    std::fs::write(src.join("tokenizer.json"), "{\"tok\": 1}").unwrap();
    std::fs::write(
        src.join("config.json"),
        "{\"num_hidden_layers\": 3, \"torch_dtype\": \"bfloat16\"}",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("hub/models--org--tiny/refs")).unwrap();
    std::fs::write(dir.path().join("hub/models--org--tiny/refs/main"), "abc").unwrap();
    // A frankenmerge of 2 + 2 layers from a model found by its Hugging Face id in the cache.
    let yaml = format!(
        "merge_method: passthrough\nbase_model: org/tiny\ntokenizer_source: base\nslices:\n  - sources:\n      - model: org/tiny\n        layer_range: [0, 2]\n  - sources:\n      - model: {A}\n        layer_range: [1, 3]\n"
    );
    let cfg = MergeConfig::parse(&yaml, Path::new("c.yaml")).unwrap();
    let p = plan(
        cfg,
        &PlanOptions {
            cache_dirs: Some(vec![dir.path().join("hub")]),
            ..Default::default()
        },
    )
    .unwrap();
    let out = dir.path().join("out");
    execute(
        &p,
        &out,
        &ExecOptions {
            max_shard_bytes: Some(2_000),
            ..Default::default()
        },
        |_, _| {},
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        "{\"tok\": 1}"
    );
    let cfg_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg_json["num_hidden_layers"], 4);
    assert_eq!(cfg_json["torch_dtype"], "float32");
    assert!(
        out.join("model.safetensors.index.json").exists(),
        "sharded at 2 kB"
    );
    // The card's front matter names the Hub id found in the cache, and no local path.
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    let front = card.split("\n---\n").next().unwrap();
    assert!(front.contains("base_model:\n- org/tiny\n"), "{front}");
    assert_eq!(
        front.matches("\n- ").count(),
        3,
        "org/tiny and two tags: {front}"
    );
    let merged = Checkpoint::open(&out).unwrap();
    assert!(merged.contains("model.layers.3.mlp.up_proj.weight"));
    let a = Checkpoint::open(A).unwrap();
    assert_eq!(
        merged
            .tensor_f32("model.layers.3.mlp.up_proj.weight")
            .unwrap(),
        a.tensor_f32("model.layers.2.mlp.up_proj.weight").unwrap()
    );
}
