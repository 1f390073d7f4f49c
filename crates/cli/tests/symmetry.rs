//! End-to-end tests of `spec`, `permute`, `canon`, `align` and `interp` on tiny checkpoints
//! written here.

use std::collections::BTreeMap;
use std::path::Path;

use weightspace_io::{DType, TensorInfo, encode_f32, write_safetensors};

mod common;
use common::ws;

/// A 5-16-12-3 MLP with pseudo-random weights, `activation = relu` in the metadata.
fn write_mlp(path: &Path, seed: u32) {
    let shapes: Vec<(&str, Vec<usize>)> = vec![
        ("layers.0.weight", vec![16, 5]),
        ("layers.0.bias", vec![16]),
        ("layers.2.weight", vec![12, 16]),
        ("layers.2.bias", vec![12]),
        ("layers.4.weight", vec![3, 12]),
        ("layers.4.bias", vec![3]),
    ];
    let infos: Vec<TensorInfo> = shapes
        .iter()
        .map(|(n, s)| TensorInfo {
            name: n.to_string(),
            dtype: DType::F32,
            shape: s.clone(),
        })
        .collect();
    let mut meta = BTreeMap::new();
    meta.insert("activation".to_string(), "relu".to_string());
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(12345);
    write_safetensors(path, &infos, &meta, |i| {
        let v: Vec<f32> = (0..infos[i].numel())
            .map(|_| {
                state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        Ok(encode_f32(&v, DType::F32).unwrap().into())
    })
    .unwrap();
}

#[test]
fn spec_lists_groups_and_json_parses() {
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("m.safetensors");
    write_mlp(&m, 1);
    let (rc, out, _) = ws(&["spec", m.to_str().unwrap()]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("hidden.0") && out.contains("positive"),
        "{out}"
    );
    assert!(out.contains("layers.4.bias"), "{out}");
    let (rc, out, _) = ws(&["spec", m.to_str().unwrap(), "--json"]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["groups"].as_array().unwrap().len(), 2);
}

#[test]
fn permute_canon_align_roundtrip() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    write_mlp(Path::new(&p("m.safetensors")), 2);
    assert_eq!(
        ws(&[
            "permute",
            &p("m.safetensors"),
            &p("p.safetensors"),
            "--seed",
            "7"
        ])
        .0,
        0
    );
    // Same seed, same bytes.
    assert_eq!(
        ws(&[
            "permute",
            &p("m.safetensors"),
            &p("p2.safetensors"),
            "--seed",
            "7"
        ])
        .0,
        0
    );
    assert_eq!(
        std::fs::read(p("p.safetensors")).unwrap(),
        std::fs::read(p("p2.safetensors")).unwrap()
    );
    assert_ne!(
        std::fs::read(p("p.safetensors")).unwrap(),
        std::fs::read(p("m.safetensors")).unwrap()
    );
    // Canonical forms of the original and the permuted copy: identical files.
    assert_eq!(
        ws(&["canon", &p("m.safetensors"), &p("c1.safetensors")]).0,
        0
    );
    assert_eq!(
        ws(&["canon", &p("p.safetensors"), &p("c2.safetensors")]).0,
        0
    );
    assert_eq!(
        std::fs::read(p("c1.safetensors")).unwrap(),
        std::fs::read(p("c2.safetensors")).unwrap()
    );
    // Aligning the permuted copy to the original recovers it.
    let (rc, out, err) = ws(&[
        "align",
        &p("m.safetensors"),
        &p("p.safetensors"),
        "-o",
        &p("a.safetensors"),
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["l2_after"].as_f64().unwrap() == 0.0, "{out}");
}

#[test]
fn similarity_after_alignment_sees_through_a_permutation() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    write_mlp(Path::new(&p("m.safetensors")), 4);
    let (rc, _, err) = ws(&[
        "permute",
        &p("m.safetensors"),
        &p("p.safetensors"),
        "--seed",
        "3",
    ]);
    assert_eq!(rc, 0, "{err}");
    let (rc, out, err) = ws(&[
        "similarity",
        &p("m.safetensors"),
        &p("p.safetensors"),
        "--align",
        "weight",
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pair = &v["pairs"][0];
    let before = pair["cosine"].as_f64().unwrap();
    let al = &pair["aligned"];
    assert_eq!(al["method"], "weight", "{out}");
    let after = al["cosine"].as_f64().unwrap();
    // Uniform weights centred on 0: unrelated units are nearly orthogonal.
    assert!(before < 0.5, "cosine before alignment {before}");
    assert!((after - 1.0).abs() < 1e-9, "cosine after alignment {after}");
    assert_eq!(al["rel_l2"].as_f64().unwrap(), 0.0, "{out}");
    assert_eq!(al["changed"].as_f64().unwrap(), 0.0, "{out}");
    let tensors = al["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 6);
    assert!(
        tensors
            .iter()
            .all(|t| (t["cosine"].as_f64().unwrap() - 1.0).abs() < 1e-9)
    );
    // The table has the aligned columns; without --align the JSON has no "aligned".
    let (rc, out, _) = ws(&[
        "similarity",
        &p("m.safetensors"),
        &p("p.safetensors"),
        "--align",
        "weight",
    ]);
    assert_eq!(rc, 0);
    assert!(out.contains("aligned_cosine"), "{out}");
    let (_, out, _) = ws(&[
        "similarity",
        &p("m.safetensors"),
        &p("p.safetensors"),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["pairs"][0].get("aligned").is_none(), "{out}");
    // Models that cannot be aligned: exit 2, naming both.
    let infos = vec![TensorInfo {
        name: "layers.0.weight".into(),
        dtype: DType::F32,
        shape: vec![16, 5],
    }];
    write_safetensors(
        Path::new(&p("o.safetensors")),
        &infos,
        &BTreeMap::new(),
        |_| Ok(vec![0u8; 320].into()),
    )
    .unwrap();
    let (rc, _, err) = ws(&[
        "similarity",
        &p("m.safetensors"),
        &p("o.safetensors"),
        "--align",
        "weight",
    ]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("o.safetensors"), "{err}");
}

#[test]
fn bad_inputs_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    write_mlp(Path::new(&p("m.safetensors")), 3);
    assert_eq!(ws(&["spec", &p("missing.safetensors")]).0, 2);
    std::fs::write(p("bad.toml"), "heads = \"x\"\n").unwrap();
    let (rc, _, err) = ws(&["spec", &p("m.safetensors"), "--spec", &p("bad.toml")]);
    assert_eq!(rc, 2);
    assert!(err.contains("bad.toml"), "{err}");
    // Models of different shapes cannot be aligned.
    let infos = vec![TensorInfo {
        name: "layers.0.weight".into(),
        dtype: DType::F32,
        shape: vec![2, 2],
    }];
    write_safetensors(
        Path::new(&p("o.safetensors")),
        &infos,
        &BTreeMap::new(),
        |_| Ok(vec![0u8; 16].into()),
    )
    .unwrap();
    let (rc, _, err) = ws(&[
        "align",
        &p("m.safetensors"),
        &p("o.safetensors"),
        "-o",
        &p("x.safetensors"),
    ]);
    assert_eq!(rc, 2, "{err}");
    assert!(!Path::new(&p("x.safetensors")).exists());
}

#[test]
fn interp_and_activation_matching_on_a_zoo_pair() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    std::fs::write(
        p("pair.toml"),
        "name = \"pair\"\nseed = 0\n[defaults]\ndataset = \"digits\"\nepochs = 2\ncheckpoints = [2]\nbatch_size = 32\noptimizer = \"adam\"\n[[models]]\nname = \"mlp\"\narch = \"mlp\"\nhidden = [16]\nactivation = \"relu\"\nlr = 0.01\nseed = [1, 2]\n",
    )
    .unwrap();
    let (rc, _, err) = ws(&["zoo", "train", &p("pair.toml"), "-o", &p("z"), "-q"]);
    assert_eq!(rc, 0, "{err}");
    let a = p("z/models/mlp-0000/epoch_2.safetensors");
    let b = p("z/models/mlp-0001/epoch_2.safetensors");
    let (rc, out, err) = ws(&[
        "interp", &a, &b, "--steps", "5", "--align", "weight", "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["naive"]["points"].as_array().unwrap().len(), 5);
    assert!(v["aligned"]["loss_barrier"].as_f64().unwrap().is_finite());
    // A permuted copy is in the same basin once aligned: barrier ~0.
    assert_eq!(
        ws(&["permute", &a, &p("p.safetensors"), "--seed", "3", "--scale"]).0,
        0
    );
    let (rc, out, err) = ws(&[
        "interp",
        &a,
        &p("p.safetensors"),
        "--steps",
        "3",
        "--align",
        "activation",
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["aligned"]["loss_barrier"].as_f64().unwrap().abs() < 1e-3,
        "{out}"
    );
    assert!(v["naive"]["loss_barrier"].as_f64().unwrap() > 1e-3, "{out}");
    let (rc, _, err) = ws(&[
        "align",
        &a,
        &b,
        "-o",
        &p("x.safetensors"),
        "--method",
        "activation",
    ]);
    assert_eq!(rc, 0, "{err}");
    // REPAIR by activation rescaling (the nets have no BatchNorm): the endpoints are left
    // alone, the interior points change and the naive barrier drops.
    let barrier = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["interp", a.as_str(), b.as_str(), "--steps", "5", "--json"];
        args.extend_from_slice(extra);
        let (rc, out, err) = ws(&args);
        assert_eq!(rc, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let plain = barrier(&[]);
    let rep = barrier(&["--repair"]);
    assert_eq!(rep, barrier(&["--repair=rescale"]));
    let pts = |v: &serde_json::Value| v["naive"]["points"].as_array().unwrap().clone();
    assert_eq!(pts(&plain)[0], pts(&rep)[0]);
    assert_eq!(pts(&plain)[4], pts(&rep)[4]);
    assert_ne!(pts(&plain)[2], pts(&rep)[2]);
    let lb = |v: &serde_json::Value| v["naive"]["loss_barrier"].as_f64().unwrap();
    assert!(
        lb(&rep) < lb(&plain),
        "REPAIR {} vs {}",
        lb(&rep),
        lb(&plain)
    );
    // BatchNorm reset on a net without BatchNorm: bad input.
    assert_eq!(ws(&["interp", &a, &b, "--repair=bn"]).0, 2);
    // Non-zoo checkpoints: bad input.
    write_mlp(Path::new(&p("m.safetensors")), 1);
    assert_eq!(
        ws(&["interp", &p("m.safetensors"), &p("m.safetensors")]).0,
        2
    );
}
