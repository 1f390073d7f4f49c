//! ONNX reading, checked against golden values that `tests/fixtures/onnx/make_fixtures.py`
//! extracted with the `onnx` package, on made models, a `torch.onnx.export` model and a published
//! model (silero-vad), plus hostile and corrupt inputs.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;
use weightspace_io::{Checkpoint, ErrorKind, Format, OpenOptions, sniff};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real")
}

/// Every stored tensor, under its stored name (`--all`).
fn open_all(p: impl AsRef<Path>) -> Checkpoint {
    Checkpoint::open_with(
        p,
        OpenOptions {
            all: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Compares a checkpoint with one golden record (`tensors`, `skipped`, `metadata`).
fn check_against(ck: &Checkpoint, golden: &Value, what: &str) {
    assert_eq!(ck.format(), Format::Onnx, "{what}");
    let tensors = golden["tensors"].as_array().unwrap();
    let names: Vec<&str> = ck.names().collect();
    let want: Vec<&str> = tensors
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, want, "{what}");
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let view = ck.tensor(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            view.dtype.name(),
            t["dtype"].as_str().unwrap(),
            "{what} {name}"
        );
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(view.shape, &shape[..], "{what} {name}");
        let got = ck.tensor_f32(name).unwrap();
        if let Some(values) = t.get("values") {
            let want: Vec<f32> = values
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(got, want, "{what} {name}");
        } else {
            let sum: f64 = got.iter().map(|&v| v as f64).sum();
            let abs: f64 = got.iter().map(|&v| (v as f64).abs()).sum();
            let tol = 1e-9 * t["abs_sum"].as_f64().unwrap().max(1.0);
            assert!(
                (sum - t["sum"].as_f64().unwrap()).abs() <= tol,
                "{what} {name} sum"
            );
            assert!(
                (abs - t["abs_sum"].as_f64().unwrap()).abs() <= tol,
                "{what} {name}"
            );
            let first: Vec<f32> = t["first"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(&got[..first.len()], &first[..], "{what} {name} first");
            assert_eq!(
                *got.last().unwrap(),
                t["last"].as_f64().unwrap() as f32,
                "{what} {name} last"
            );
        }
    }
    let skipped: Vec<&str> = ck
        .metadata()
        .get("skipped")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|s| s["name"].as_str().unwrap()).collect())
        .unwrap_or_default();
    let want_skipped: Vec<&str> = golden["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(skipped, want_skipped, "{what}");
    for (k, v) in golden["metadata"].as_object().unwrap() {
        if k == "producer_version" && v == "" {
            assert!(!ck.metadata().contains_key(k), "{what}");
            continue;
        }
        assert_eq!(ck.metadata().get(k), Some(v), "{what} metadata {k}");
    }
}

#[test]
fn made_models_match_onnx_numpy_helper() {
    let golden = read_json(&fixtures().join("golden.json"));
    let golden = golden.as_object().unwrap();
    assert_eq!(golden.len(), 4);
    for (file, g) in golden {
        check_against(&open_all(fixtures().join(file)), g, file);
    }
}

#[test]
fn torch_export_names() {
    let ck = Checkpoint::open(fixtures().join("torch_tiny.onnx")).unwrap();
    assert!(ck.contains("fc1.weight") && ck.contains("conv.weight"));
    assert_eq!(ck.info("fc1.weight").unwrap().shape, vec![6, 8]);
    assert_eq!(ck.metadata()["producer_name"], "pytorch");
}

#[test]
fn raw_data_is_zero_copy() {
    let ck = Checkpoint::open(fixtures().join("features.onnx")).unwrap();
    assert!(matches!(
        ck.tensor("fc.weight").unwrap().bytes,
        Cow::Borrowed(_)
    ));
    assert!(matches!(
        ck.tensor("then.w").unwrap().bytes,
        Cow::Borrowed(_)
    ));
    let ck = Checkpoint::open(fixtures().join("external.onnx")).unwrap();
    assert!(matches!(
        ck.tensor("ext.a").unwrap().bytes,
        Cow::Borrowed(_)
    ));
}

#[test]
fn quantised_weights_reported_as_stored() {
    let ck = Checkpoint::open(fixtures().join("features.onnx")).unwrap();
    assert_eq!(ck.info("q.weight").unwrap().dtype.name(), "I8");
    assert_eq!(ck.info("q.scale").unwrap().dtype.name(), "F32");
    assert_eq!(ck.info("q.zero_point").unwrap().dtype.name(), "I8");
    assert_eq!(ck.info("mmi.weight").unwrap().dtype.name(), "U8");
}

#[test]
fn metadata_of_made_model() {
    let ck = Checkpoint::open(fixtures().join("features.onnx")).unwrap();
    let m = ck.metadata();
    assert_eq!(m["ir_version"], 10);
    assert_eq!(m["opset_import"]["ai.onnx"], 21);
    assert_eq!(m["opset_import"]["com.microsoft"], 1);
    assert_eq!(m["metadata_props"]["author"], "weightspace tests");
    assert_eq!(m["graph_name"], "features");
    let reasons: Vec<&str> = m["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("STRING"), "{reasons:?}");
    assert!(reasons[1].contains("complex"), "{reasons:?}");
}

#[test]
fn published_silero_vad() {
    let path = real().join("silero_vad.onnx");
    let all = open_all(&path);
    let golden = read_json(&real().join("silero_vad.golden.json"));
    check_against(&all, &golden, "silero_vad.onnx");
    // Its weights are Constant nodes inside nested If branches.
    assert_eq!(all.len(), 341);
    let w = all
        .info("If_0_else_branch__Inline_0__encoder.0.reparam_conv.weight")
        .unwrap();
    assert_eq!(w.dtype.name(), "F32");
    assert_eq!(all.metadata()["producer_name"], "spox");

    // By default: the 15 parameters of each branch (16 kHz and 8 kHz), nothing else.
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.len(), 30, "{:?}", ck.names().collect::<Vec<_>>());
    assert_eq!(ck.metadata()["hidden_tensors"], 311);
    for i in ck.infos() {
        assert_eq!(i.dtype.name(), "F32", "{}", i.name);
        assert_eq!(
            ck.tensor(&i.name).unwrap().bytes,
            all.tensor(&i.name).unwrap().bytes
        );
    }
    // The one-output conv's bias has one element: kept because a Conv reads it as its bias.
    let b = ck
        .info("If_0_then_branch__Inline_0__decoder.decoder.2.bias")
        .unwrap();
    assert_eq!(b.shape, vec![1]);
    // The Pow exponents are scalar constants.
    assert!(all.contains("If_0_then_branch__Inline_0__/stft/Constant_22_output_0"));
    assert!(!ck.contains("If_0_then_branch__Inline_0__/stft/Constant_22_output_0"));
    // Nothing here is renamed: node names are not module paths.
    assert!(ck.infos().all(|i| ck.alias(&i.name).is_none()));
}

/// The default view of a `torch.onnx.export` is the source model's state_dict: the same names
/// and, bit for bit, the same tensors, though the export stores Linear weights transposed under
/// `onnx::MatMul_N`, deduplicates equal LayerNorm weights and adds shape plumbing.
#[test]
fn torch_export_matches_its_state_dict() {
    let onnx = Checkpoint::open(fixtures().join("bert_tiny.onnx")).unwrap();
    let source = Checkpoint::open(fixtures().join("bert_tiny.safetensors")).unwrap();
    let mut got: Vec<&str> = onnx.names().collect();
    let mut want: Vec<&str> = source.names().collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    for name in source.names() {
        let (a, b) = (onnx.tensor(name).unwrap(), source.tensor(name).unwrap());
        assert_eq!((a.dtype, a.shape), (b.dtype, b.shape), "{name}");
        assert_eq!(a.to_f32().unwrap(), b.to_f32().unwrap(), "{name}");
        assert_eq!(a.content_hash(), b.content_hash(), "{name}");
    }

    // A Linear weight: stored [in, out] under an exporter name, presented [out, in].
    let q = "encoder.layer.0.ff.0.weight";
    let alias = onnx.alias(q).unwrap();
    assert!(alias.name.starts_with("onnx::MatMul_"), "{alias:?}");
    assert_eq!(alias.stored_shape, vec![8, 16]);
    assert!(alias.transposed);
    assert_eq!(onnx.info(q).unwrap().shape, vec![16, 8]);
    assert_eq!(onnx.resolve(&alias.name), Some(q));
    assert_eq!(onnx.resolve(q), Some(q));
    assert_eq!(onnx.resolve("onnx::MatMul_0"), None);
    // Stored and presented values are each other's transpose.
    let all = open_all(fixtures().join("bert_tiny.onnx"));
    let stored = all.tensor_f32(&alias.name).unwrap();
    let shown = onnx.tensor_f32(q).unwrap();
    for o in 0..16 {
        for i in 0..8 {
            assert_eq!(shown[o * 8 + i], stored[i * 16 + o]);
        }
    }
    // The PReLU slope, stored broadcastable [1, 1], is PyTorch's [1].
    let act = onnx.alias("act.weight").unwrap();
    assert_eq!(
        (act.stored_shape.as_slice(), act.transposed),
        (&[1, 1][..], false)
    );
    // A LayerNorm weight the exporter replaced by an Identity of an equal one.
    let ln = onnx.alias("encoder.layer.1.LayerNorm.weight").unwrap();
    assert_eq!(ln.name, "embeddings.LayerNorm.weight");
    // Named parameters have no alias.
    assert!(onnx.alias("encoder.layer.0.attention.query.bias").is_none());
    assert!(onnx.metadata()["hidden_tensors"].as_u64().unwrap() > 0);
}

/// `--all` shows the file as stored: exporter names, stored layouts, shape plumbing, scalars.
#[test]
fn all_shows_what_the_file_stores() {
    let all = open_all(fixtures().join("bert_tiny.onnx"));
    let ck = Checkpoint::open(fixtures().join("bert_tiny.onnx")).unwrap();
    assert!(all.len() > ck.len());
    assert!(!all.contains("encoder.layer.0.ff.0.weight"));
    assert!(!all.contains("encoder.layer.1.LayerNorm.weight"));
    let alias = ck.alias("encoder.layer.0.ff.0.weight").unwrap();
    assert_eq!(all.info(&alias.name).unwrap().shape, vec![8, 16]);
    assert!(all.infos().any(|i| i.dtype.name() == "I64"));
    assert!(
        all.infos()
            .any(|i| i.shape.is_empty() && i.dtype.name() == "F32")
    );
    assert!(
        ck.infos()
            .all(|i| i.dtype.name() == "F32" && i.numel() >= 1)
    );
    assert!(!all.metadata().contains_key("hidden_tensors"));
    // Hidden = stored tensors not shown (the Identity copies are extra, not stored).
    let copies = ck
        .infos()
        .filter(|i| {
            ck.alias(&i.name).is_some_and(|a| {
                !a.transposed
                    && all.contains(&a.name)
                    && a.name != i.name
                    && !a.name.starts_with("onnx::")
            })
        })
        .count();
    let hidden = ck.metadata()["hidden_tensors"].as_u64().unwrap() as usize;
    assert_eq!(all.len() - hidden + copies, ck.len());
}

/// What the default view keeps of a made model: floats with more than one element, 8-bit
/// quantised weights and what DequantizeLinear reads; not int64, bools or scalar constants.
#[test]
fn default_view_keeps_weights_only() {
    let ck = Checkpoint::open(fixtures().join("features.onnx")).unwrap();
    let all = open_all(fixtures().join("features.onnx"));
    for kept in [
        "fc.weight",
        "half.raw",
        "q.weight",
        "q.scale",
        "q.zero_point",
        "mmi.weight",
        "then.w",
        "c.tensor",
        "c.floats",
        "sparse.w",
    ] {
        assert!(ck.contains(kept), "{kept}");
    }
    for hidden in [
        "i64.raw",
        "int64_data",
        "bool.raw",
        "c.int",
        "c.ints",
        "c.float",
        "i32.int32_data",
    ] {
        assert!(all.contains(hidden) && !ck.contains(hidden), "{hidden}");
    }
    assert_eq!(
        ck.metadata()["hidden_tensors"].as_u64().unwrap() as usize,
        all.len() - ck.len()
    );
}

/// Renames happen only when the node path names one module unambiguously.
#[test]
fn renaming_is_conservative() {
    let ck = Checkpoint::open(fixtures().join("naming.onnx")).unwrap();
    let names: Vec<&str> = ck.names().collect();
    assert_eq!(
        names,
        [
            "onnx::MatMul_1",
            "onnx::MatMul_2",
            "g.weight",
            "onnx::MatMul_3",
            "onnx::MatMul_4",
            "onnx::MatMul_5",
            "ok.weight",
            "tied.weight"
        ]
    );
    let tied = ck.alias("tied.weight").unwrap();
    assert_eq!((tied.name.as_str(), tied.transposed), ("g.weight", false));
    assert_eq!(
        ck.tensor("tied.weight").unwrap().bytes,
        ck.tensor("g.weight").unwrap().bytes
    );
    assert_eq!(ck.info("ok.weight").unwrap().shape, vec![3, 2]);
    assert_eq!(ck.alias("ok.weight").unwrap().name, "onnx::MatMul_6");
    assert!(!ck.metadata().contains_key("names_kept"));

    let ck = Checkpoint::open(fixtures().join("naming_contradicted.onnx")).unwrap();
    assert!(
        ck.contains("onnx::MatMul_1"),
        "{:?}",
        ck.names().collect::<Vec<_>>()
    );
    let why = ck.metadata()["names_kept"].as_str().unwrap();
    assert!(why.contains("a.weight") && why.contains("/x/Gemm"), "{why}");
}

#[test]
fn onnx_is_sniffed_from_bytes() {
    for f in ["features.onnx", "external.onnx", "torch_tiny.onnx"] {
        let head = std::fs::read(fixtures().join(f)).unwrap();
        assert_eq!(
            sniff(&head[..64.min(head.len())]),
            Some(Format::Onnx),
            "{f}"
        );
    }
    let head = std::fs::read(real().join("silero_vad.onnx")).unwrap();
    assert_eq!(sniff(&head[..64]), Some(Format::Onnx));
    // Other formats' fixtures are never taken for ONNX.
    for f in [
        "../npy/f4.npy",
        "../npy/stored.npz",
        "golden.json",
        "make_fixtures.py",
    ] {
        let head = std::fs::read(fixtures().join(f)).unwrap();
        assert_ne!(sniff(&head[..64]), Some(Format::Onnx), "{f}");
    }
    // An extension-less copy still opens as ONNX.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model");
    std::fs::copy(fixtures().join("torch_tiny.onnx"), &p).unwrap();
    assert_eq!(Checkpoint::open(&p).unwrap().format(), Format::Onnx);
}

fn open_err(file: &str) -> weightspace_io::Error {
    Checkpoint::open(fixtures().join(file)).unwrap_err()
}

#[test]
fn external_data_outside_the_folder_is_refused() {
    for file in ["ext_escape.onnx", "ext_absolute.onnx"] {
        let e = open_err(file);
        assert!(matches!(e.kind, ErrorKind::Invalid(_)), "{e}");
        assert_eq!(e.tensor.as_deref(), Some("w"));
        assert!(e.to_string().contains("inside the model's folder"), "{e}");
    }
}

#[test]
fn external_data_windows_style_escapes_are_refused() {
    let model = std::fs::read(fixtures().join("ext_escape.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (loc, why) in [
        (&b"..\\npy\\f4.npy"[..], "leaves"),
        (b"C:/npy/f4.npy", "absolute"),
        (b"./../npy/f4.n", "leaves"),
    ] {
        let p = dir.path().join("m.onnx");
        std::fs::write(&p, replace(&model, b"../npy/f4.npy", loc)).unwrap();
        let e = Checkpoint::open(&p).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
}

#[cfg(unix)]
#[test]
fn external_data_through_a_symlink_out_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.bin");
    std::fs::write(&secret, [0u8; 16]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = std::fs::read(fixtures().join("ext_escape.onnx")).unwrap();
    // Same length as "../npy/f4.npy", so the protobuf stays valid.
    let model = replace(&model, b"../npy/f4.npy", b"link/xxxx.bin");
    std::fs::create_dir(dir.path().join("link")).unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("link/xxxx.bin")).unwrap();
    let p = dir.path().join("m.onnx");
    std::fs::write(&p, model).unwrap();
    let e = Checkpoint::open(&p).unwrap_err();
    assert!(e.to_string().contains("through a link"), "{e}");
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let i = hay.windows(from.len()).position(|w| w == from).unwrap();
    let mut v = hay.to_vec();
    v[i..i + to.len()].copy_from_slice(to);
    v
}

#[test]
fn external_data_past_the_end_is_refused() {
    let e = open_err("ext_past_end.onnx");
    match e.kind {
        ErrorKind::OffsetOutOfBounds {
            start,
            end,
            available,
        } => assert_eq!((start, end, available), (150, 166, 154)),
        k => panic!("{k}"),
    }
    assert_eq!(e.tensor.as_deref(), Some("w"));
    assert!(e.path.ends_with("external.bin"));
}

#[test]
fn external_data_missing_or_wrong_length() {
    let e = open_err("ext_missing.onnx");
    assert!(matches!(e.kind, ErrorKind::Io(_)), "{e}");
    assert!(e.path.ends_with("no_such_file.bin"), "{e}");
    assert_eq!(e.tensor.as_deref(), Some("w"));
    let e = open_err("ext_length_mismatch.onnx");
    match e.kind {
        ErrorKind::SizeMismatch {
            bytes, expected, ..
        } => assert_eq!((bytes, expected), (12, 16)),
        k => panic!("{k}"),
    }
}

#[test]
fn raw_data_size_mismatch() {
    let e = open_err("raw_size_mismatch.onnx");
    match e.kind {
        ErrorKind::SizeMismatch {
            bytes, expected, ..
        } => assert_eq!((bytes, expected), (10, 12)),
        k => panic!("{k}"),
    }
    assert_eq!(e.tensor.as_deref(), Some("w"));
}

#[test]
fn truncated_model_is_one_clear_error() {
    let bytes = std::fs::read(fixtures().join("torch_tiny.onnx")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.onnx");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = Checkpoint::open(&p).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
}

/// Protobuf bytes for a hand-built model: ir_version 10, then `graph` holding `graph_body`.
fn model_with_graph(graph_body: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0x0a, 0x3a];
    put_varint(&mut v, graph_body.len() as u64);
    v.extend_from_slice(graph_body);
    v
}

fn put_varint(v: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        v.push((x as u8) | 0x80);
        x >>= 7;
    }
    v.push(x as u8);
}

fn field(v: &mut Vec<u8>, tag: u8, body: &[u8]) {
    v.push(tag);
    put_varint(v, body.len() as u64);
    v.extend_from_slice(body);
}

#[test]
fn huge_claimed_dims_allocate_nothing() {
    // An initializer claiming dims [2^40, 2^40] of f32 with 4 bytes of raw data.
    let mut t = Vec::new();
    for _ in 0..2 {
        t.push(0x08);
        put_varint(&mut t, 1 << 40);
    }
    t.extend_from_slice(&[0x10, 0x01]); // data_type FLOAT
    field(&mut t, 0x42, b"big"); // name
    field(&mut t, 0x4a, &[0, 0, 0, 0]); // raw_data
    let mut g = Vec::new();
    field(&mut g, 0x2a, &t); // initializer
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.onnx");
    std::fs::write(&p, model_with_graph(&g)).unwrap();
    let e = Checkpoint::open(&p).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
    assert_eq!(e.tensor.as_deref(), Some("big"));
    // A sparse initializer claiming a dense shape of 2^40 elements is skipped, not densified.
    let mut vals = Vec::new();
    vals.extend_from_slice(&[0x08, 0x01, 0x10, 0x01]); // dims [1], FLOAT
    field(&mut vals, 0x42, b"sp");
    field(&mut vals, 0x4a, &1f32.to_le_bytes());
    let mut idx = Vec::new();
    idx.extend_from_slice(&[0x08, 0x01, 0x10, 0x07]); // dims [1], INT64
    field(&mut idx, 0x4a, &0i64.to_le_bytes());
    let mut sp = Vec::new();
    field(&mut sp, 0x0a, &vals);
    field(&mut sp, 0x12, &idx);
    sp.push(0x18);
    put_varint(&mut sp, 1 << 40);
    let mut g = Vec::new();
    g.push(0x7a); // sparse_initializer = field 15, wire 2
    put_varint(&mut g, sp.len() as u64);
    g.extend_from_slice(&sp);
    std::fs::write(&p, model_with_graph(&g)).unwrap();
    let ck = Checkpoint::open(&p).unwrap();
    assert!(ck.is_empty());
    assert_eq!(ck.metadata()["skipped"][0]["name"], "sp");
}

#[test]
fn deeply_nested_subgraphs_are_an_error() {
    // graph { node { attribute { g: graph { node { ... } } } } }, 60 levels.
    let mut g: Vec<u8> = Vec::new();
    for _ in 0..60 {
        let mut attr = Vec::new();
        field(&mut attr, 0x0a, b"body");
        field(&mut attr, 0x32, &g); // g
        let mut node = Vec::new();
        field(&mut node, 0x22, b"Loop");
        field(&mut node, 0x2a, &attr); // attribute
        let mut outer = Vec::new();
        field(&mut outer, 0x0a, &node);
        g = outer;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("deep.onnx");
    std::fs::write(&p, model_with_graph(&g)).unwrap();
    let e = Checkpoint::open(&p).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
}

fn valid_models() -> Vec<Vec<u8>> {
    [
        "features.onnx",
        "torch_tiny.onnx",
        "external.onnx",
        "bert_tiny.onnx",
    ]
    .iter()
    .map(|f| std::fs::read(fixtures().join(f)).unwrap())
    .collect()
}

/// Writes `bytes` as a model next to a copy of `external.bin`, opens it and reads every tensor.
fn open_and_read_all(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("external.bin"),
        dir.path().join("external.bin"),
    )
    .unwrap();
    let p = dir.path().join("m.onnx");
    std::fs::write(&p, bytes).unwrap();
    for all in [false, true] {
        if let Ok(ck) = Checkpoint::open_with(
            &p,
            OpenOptions {
                all,
                ..Default::default()
            },
        ) {
            for i in 0..ck.len() {
                if let Ok(t) = ck.tensor_at(i) {
                    let _ = t.to_f32();
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The published model is larger and nests subgraphs: flip bytes anywhere in it.
    #[test]
    fn real_model_bit_flips_never_panic(
        flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..4),
    ) {
        let mut m = std::fs::read(real().join("silero_vad.onnx")).unwrap();
        for (pos, x) in flips {
            let i = ((m.len() as f64 * pos) as usize).min(m.len() - 1);
            m[i] ^= x | 1;
        }
        open_and_read_all(&m);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn truncation_never_panics(which in 0usize..4, cut in 0.0f64..1.0) {
        let m = &valid_models()[which];
        open_and_read_all(&m[..(m.len() as f64 * cut) as usize]);
    }

    #[test]
    fn bit_flips_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..6),
    ) {
        let mut m = valid_models()[which].clone();
        for (pos, x) in flips {
            let i = ((m.len() as f64 * pos) as usize).min(m.len() - 1);
            m[i] ^= x | 1;
        }
        open_and_read_all(&m);
    }

    #[test]
    fn sniff_never_panics(head in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = sniff(&head);
    }
}
