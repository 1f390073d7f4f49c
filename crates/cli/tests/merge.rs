//! End-to-end tests of `weightspace merge`: exit codes of bad configs, and align-then-merge on
//! zoo nets scored through the zoo runtime (`interp`).

use std::path::Path;

mod common;
use common::ws;

/// Everything in `dir`, for checking that a failed merge left nothing behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Trains two digits MLPs (seeds 1 and 2) and returns their final checkpoints.
fn zoo_pair(dir: &Path, hidden: usize, epochs: usize) -> (String, String) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(
        p("pair.toml"),
        format!("name = \"pair\"\nseed = 0\n[defaults]\ndataset = \"digits\"\nepochs = {epochs}\ncheckpoints = [{epochs}]\nbatch_size = 32\noptimizer = \"adam\"\n[[models]]\nname = \"mlp\"\narch = \"mlp\"\nhidden = [{hidden}]\nactivation = \"relu\"\nlr = 0.01\nseed = [1, 2]\n"),
    )
    .unwrap();
    let (rc, _, err) = ws(&["zoo", "train", &p("pair.toml"), "-o", &p("z"), "-q"]);
    assert_eq!(rc, 0, "{err}");
    (
        p(&format!("z/models/mlp-0000/epoch_{epochs}.safetensors")),
        p(&format!("z/models/mlp-0001/epoch_{epochs}.safetensors")),
    )
}

#[test]
fn bad_configs_exit_2_and_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let (a, b) = zoo_pair(d.path(), 8, 1);
    let before = entries(d.path());
    let cases = [
        (
            format!(
                "merge_method: ties\nbase_model: {a}\nmodels:\n  - model: {b}\n    parameters: {{weight: 1.0, density: 1.5}}\n"
            ),
            "models[0].parameters.density",
        ),
        (
            format!("merge_method: lineer\nmodels:\n  - model: {a}\n  - model: {b}\n"),
            "merge_method",
        ),
        (
            format!(
                "merge_method: linear\nalign: sideways\nmodels:\n  - model: {a}\n  - model: {b}\n"
            ),
            "align",
        ),
        (
            format!(
                "merge_method: passthrough\nalign: weight\nslices:\n  - sources:\n      - model: {a}\n        layer_range: [0, 1]\n"
            ),
            "align",
        ),
        (
            format!(
                "merge_method: linear\nparameters: {{weight: 1.0}}\nmodels:\n  - model: {a}\n  - model: {}\n",
                p("missing.safetensors")
            ),
            "models[1].model",
        ),
    ];
    for (yaml, key) in cases {
        std::fs::write(p("c.yaml"), &yaml).unwrap();
        let (rc, _, err) = ws(&["merge", &p("c.yaml"), &p("out"), "--align", "weight"]);
        // `--align weight` on the command line must not hide config errors either.
        assert_eq!(rc, 2, "{yaml}\n{err}");
        assert!(err.contains(key), "{key}: {err}");
        let (rc, _, err) = ws(&["merge", &p("c.yaml"), &p("out")]);
        assert_eq!(rc, 2, "{yaml}\n{err}");
        let mut now = entries(d.path());
        now.retain(|n| n != "c.yaml");
        assert_eq!(now, before, "a failed merge left files: {err}");
    }
}

#[test]
fn align_then_merge_recovers_a_permuted_copy_and_helps_different_seeds() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let (a, b) = zoo_pair(d.path(), 64, 3);
    // B' = a permuted copy of A: the same function far away in weight space.
    let (rc, _, err) = ws(&["permute", &a, "-o", &p("ap.safetensors"), "--seed", "5"]);
    assert_eq!(rc, 0, "{err}");
    // Loss and accuracy of a merged model through the zoo runtime (the λ = 1 end of `interp`).
    let score = |merged: &str| -> (f64, f64) {
        let (rc, out, err) = ws(&["interp", &a, merged, "--steps", "2", "--json"]);
        assert_eq!(rc, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let pt = &v["naive"]["points"][1];
        (pt["loss"].as_f64().unwrap(), pt["acc"].as_f64().unwrap())
    };
    let merge = |other: &str, out: &str, align: bool| {
        let yaml = format!(
            "merge_method: linear\n{}models:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {other}\n    parameters: {{weight: 0.5}}\ndtype: float32\n",
            if align { "align: weight\n" } else { "" }
        );
        let cfg = p(&format!("{out}.yaml"));
        std::fs::write(&cfg, yaml).unwrap();
        let (rc, stdout, err) = ws(&["merge", &cfg, &p(out)]);
        assert_eq!(rc, 0, "{err}");
        if align {
            assert!(stdout.contains("by weight matching"), "{stdout}");
        }
        p(&format!("{out}/model.safetensors"))
    };
    let (loss_a, acc_a) = score(&a);
    // A permuted copy: aligned, the merge is A itself; naive, it is much worse.
    let (loss_naive, acc_naive) = score(&merge(&p("ap.safetensors"), "naive", false));
    let (loss_al, acc_al) = score(&merge(&p("ap.safetensors"), "aligned", true));
    assert!((loss_al - loss_a).abs() < 1e-4, "{loss_al} vs {loss_a}");
    assert!((acc_al - acc_a).abs() < 1e-9, "{acc_al} vs {acc_a}");
    assert!(
        loss_naive > loss_al + 0.1 && acc_naive < acc_al,
        "naive {loss_naive}/{acc_naive}, aligned {loss_al}/{acc_al}"
    );
    // Two nets from different seeds: alignment lowers the merged model's loss.
    let (loss_n2, _) = score(&merge(&b, "naive2", false));
    let (loss_a2, _) = score(&merge(&b, "aligned2", true));
    assert!(loss_a2 < loss_n2, "aligned {loss_a2} vs naive {loss_n2}");
    // No aligned copies are left behind.
    assert!(
        !entries(d.path())
            .iter()
            .any(|n| n.starts_with(".weightspace-align")),
        "{:?}",
        entries(d.path())
    );
    // The same through the command-line flag.
    let cfg = p("flag.yaml");
    std::fs::write(
        &cfg,
        format!(
            "merge_method: linear\nparameters: {{weight: 1.0}}\nmodels:\n  - model: {a}\n  - model: {}\n",
            p("ap.safetensors")
        ),
    )
    .unwrap();
    let (rc, out, err) = ws(&["merge", &cfg, &p("flag"), "--align", "weight", "--json"]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["aligned"][0]["l2_after"].as_f64().unwrap(), 0.0, "{out}");
}
