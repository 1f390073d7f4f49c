//! safetensors reading through `Checkpoint::open`.
//!
//! Fixtures in `tests/fixtures/safetensors/` are written by the real Python `safetensors`
//! package (`make_fixtures.py` beside them); `golden.json` holds every tensor's dtype, shape,
//! raw bytes and expected f32 values (as bit patterns, from torch/numpy), compared exactly.
//! Hostile files are built byte by byte below; each asserts the precise [`ErrorKind`] and that
//! the message names the file (and the tensor, where the problem is local to one).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Value, json};
use weightspace_io::{Checkpoint, DType, Error, ErrorKind, Format, MAX_HEADER_SIZE};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/safetensors")
        .join(name)
}

fn golden() -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(fixture("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A safetensors file: length prefix, `header` verbatim, `data`.
fn build(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// Writes `bytes` to a fresh temp dir as `name`.
fn write_tmp(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    (dir, p)
}

/// Opens `bytes` as a file and returns the error (panics if it opens), after checking the error
/// names the file in its fields and its message, and names `tensor` when given.
fn open_err(bytes: &[u8], tensor: Option<&str>) -> Error {
    let (_dir, p) = write_tmp("hostile.safetensors", bytes);
    let e = Checkpoint::open(&p).expect_err("hostile file must not open");
    assert_eq!(e.path, p);
    let msg = e.to_string();
    assert!(msg.contains(&p.display().to_string()), "{msg}");
    assert_eq!(e.tensor.as_deref(), tensor, "{msg}");
    if let Some(t) = tensor {
        assert!(msg.contains(&format!("tensor `{t}`")), "{msg}");
    }
    e
}

/// Every tensor of every fixture matches the golden values exactly: dtype, row-major shape,
/// raw bytes (borrowed from the map, zero-copy) and the f32 conversion bit for bit (NaN as NaN).
#[test]
fn fixtures_match_torch_and_numpy_exactly() {
    let mut dtypes_seen = std::collections::BTreeSet::new();
    let mut scalars = 0;
    let mut empties = 0;
    for (file, g) in golden() {
        let ck = Checkpoint::open(fixture(&file)).unwrap();
        let want_format = if file.starts_with("sharded/") {
            Format::ShardedSafetensors
        } else {
            Format::Safetensors
        };
        assert_eq!(ck.format(), want_format, "{file}");
        let meta: BTreeMap<String, Value> = serde_json::from_value(g["metadata"].clone()).unwrap();
        assert_eq!(ck.metadata(), &meta, "{file} metadata");
        let tensors = g["tensors"].as_object().unwrap();
        assert_eq!(ck.len(), tensors.len(), "{file}");
        for (name, t) in tensors {
            let view = ck.tensor(name).unwrap();
            let dtype = t["dtype"].as_str().unwrap();
            assert_eq!(view.dtype.name(), dtype, "{file}:{name}");
            dtypes_seen.insert(dtype.to_string());
            let shape: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
            assert_eq!(view.shape, &shape[..], "{file}:{name}");
            scalars += shape.is_empty() as usize;
            empties += shape.contains(&0) as usize;
            assert!(matches!(view.bytes, Cow::Borrowed(_)), "{file}:{name}");
            assert_eq!(
                &view.bytes[..],
                &unhex(t["hex"].as_str().unwrap())[..],
                "{file}:{name} bytes"
            );
            let want: Vec<u32> = serde_json::from_value(t["f32_bits"].clone()).unwrap();
            let got = ck.tensor_f32(name).unwrap();
            assert_eq!(got.len(), want.len(), "{file}:{name}");
            for (i, (&a, &w)) in got.iter().zip(&want).enumerate() {
                let w = f32::from_bits(w);
                if w.is_nan() {
                    assert!(a.is_nan(), "{file}:{name}[{i}]: got {a:e}, want NaN");
                } else {
                    assert_eq!(
                        a.to_bits(),
                        w.to_bits(),
                        "{file}:{name}[{i}]: got {a:e}, want {w:e}"
                    );
                }
            }
        }
    }
    let all = [
        "BOOL", "U8", "U16", "U32", "U64", "I8", "I16", "I32", "I64", "F16", "BF16", "F32", "F64",
        "F8_E4M3", "F8_E5M2",
    ];
    for d in all {
        assert!(dtypes_seen.contains(d), "no fixture covers {d}");
    }
    assert!(
        scalars >= 3 && empties >= 3,
        "{scalars} scalars, {empties} empty tensors"
    );
}

/// Tensors come out in data order (the order the writer laid them out), not JSON key order.
#[test]
fn tensors_are_in_file_order() {
    let bytes = std::fs::read(fixture("all_dtypes.safetensors")).unwrap();
    let ck = Checkpoint::open(fixture("all_dtypes.safetensors")).unwrap();
    let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let order = meta.offset_keys();
    let names: Vec<&str> = ck.names().collect();
    assert_eq!(names, order);
    assert_eq!(ck.len(), reference.len());
}

/// Our reader and the reference crate agree on every package-written fixture.
#[test]
fn reference_crate_agrees_on_fixtures() {
    for file in [
        "all_dtypes.safetensors",
        "numpy.safetensors",
        "small.safetensors",
        "padded.safetensors",
    ] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        let reference = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let ck = Checkpoint::open(fixture(file)).unwrap();
        for (name, rt) in reference.tensors() {
            let t = ck.tensor(&name).unwrap();
            assert_eq!(t.dtype.name(), rt.dtype().to_string(), "{file}:{name}");
            assert_eq!(t.shape, rt.shape(), "{file}:{name}");
            assert_eq!(&t.bytes[..], rt.data(), "{file}:{name}");
        }
        let rmeta: BTreeMap<String, Value> = meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        assert_eq!(ck.metadata(), &rmeta, "{file}");
    }
}

/// The header may be followed by spaces that the length prefix counts.
#[test]
fn space_padded_header() {
    let bytes = std::fs::read(fixture("padded.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = &bytes[8..8 + n];
    assert!(header.ends_with(&[b' '; 29]), "fixture must be padded");
    let ck = Checkpoint::open(fixture("padded.safetensors")).unwrap();
    assert_eq!(ck.tensor_f32("x").unwrap(), vec![0., 1., 2., 3., 4., 5.]);
    assert_eq!(ck.tensor("y").unwrap().bytes.as_ref(), &[1, 2]);
    // Hand-made: padding of every length 0..16 around a tiny header.
    for pad in 0..16 {
        let mut h = br#"{"t":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}}"#.to_vec();
        h.extend(std::iter::repeat_n(b' ', pad));
        let (_d, p) = write_tmp("p.safetensors", &build(&h, &[1, 0, 0xff, 0xff]));
        assert_eq!(
            Checkpoint::open(&p).unwrap().tensor_f32("t").unwrap(),
            vec![1.0, -1.0]
        );
    }
}

#[test]
fn empty_checkpoint_and_metadata_only() {
    let (_d, p) = write_tmp("e.safetensors", &build(b"{}", &[]));
    let ck = Checkpoint::open(&p).unwrap();
    assert!(ck.is_empty());
    let (_d, p) = write_tmp(
        "m.safetensors",
        &build(br#"{"__metadata__":{"a":"b"}}"#, &[]),
    );
    let ck = Checkpoint::open(&p).unwrap();
    assert!(ck.is_empty());
    assert_eq!(ck.metadata()["a"], json!("b"));
}

// ---------------------------------------------------------------------------------------------
// Hostile files

fn one_tensor(dtype: &str, shape: &[i64], offsets: [u64; 2]) -> Vec<u8> {
    serde_json::to_vec(&json!({"w": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}))
        .unwrap()
}

#[test]
fn offsets_out_of_range() {
    let e = open_err(&build(&one_tensor("F32", &[2], [0, 8]), &[0; 4]), Some("w"));
    assert!(
        matches!(
            e.kind,
            ErrorKind::OffsetOutOfBounds {
                start: 0,
                end: 8,
                available: 4
            }
        ),
        "{e}"
    );
    // Offsets far beyond anything addressable.
    let e = open_err(
        &build(&one_tensor("F32", &[2], [u64::MAX - 8, u64::MAX]), &[0; 8]),
        Some("w"),
    );
    assert!(matches!(e.kind, ErrorKind::OffsetOutOfBounds { .. }), "{e}");
    // End before start.
    let e = open_err(&build(&one_tensor("U8", &[0], [8, 0]), &[0; 8]), Some("w"));
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
}

#[test]
fn overlapping_tensors() {
    let h = json!({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    });
    let e = open_err(
        &build(&serde_json::to_vec(&h).unwrap(), &[0; 12]),
        Some("b"),
    );
    match &e.kind {
        ErrorKind::NotContiguous(m) => assert!(m.contains("overlap tensor `a`"), "{e}"),
        _ => panic!("{e}"),
    }
    // Two tensors on the very same bytes (aliasing).
    let h = json!({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]},
    });
    let e = open_err(&build(&serde_json::to_vec(&h).unwrap(), &[0; 8]), Some("b"));
    assert!(matches!(e.kind, ErrorKind::NotContiguous(_)), "{e}");
}

#[test]
fn gap_between_tensors() {
    let h = json!({
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]},
    });
    let e = open_err(
        &build(&serde_json::to_vec(&h).unwrap(), &[0; 20]),
        Some("b"),
    );
    match &e.kind {
        ErrorKind::NotContiguous(m) => assert!(m.contains("4 unused bytes"), "{e}"),
        _ => panic!("{e}"),
    }
    // A hole at the very start.
    let e = open_err(&build(&one_tensor("U8", &[4], [4, 8]), &[0; 8]), Some("w"));
    assert!(matches!(e.kind, ErrorKind::NotContiguous(_)), "{e}");
}

#[test]
fn trailing_bytes() {
    let e = open_err(&build(&one_tensor("F32", &[2], [0, 8]), &[0; 10]), None);
    match &e.kind {
        ErrorKind::NotContiguous(m) => {
            assert!(m.contains("2 bytes after the last tensor"), "{e}")
        }
        _ => panic!("{e}"),
    }
}

#[test]
fn shape_size_mismatch() {
    let e = open_err(&build(&one_tensor("F32", &[3], [0, 8]), &[0; 8]), Some("w"));
    assert!(
        matches!(
            &e.kind,
            ErrorKind::SizeMismatch {
                bytes: 8,
                expected: 12,
                ..
            }
        ),
        "{e}"
    );
    // numel overflows usize: never a panic, the size cannot match.
    let e = open_err(
        &build(
            &one_tensor("F32", &[1 << 40, 1 << 40, 1 << 40], [0, 8]),
            &[0; 8],
        ),
        Some("w"),
    );
    assert!(matches!(e.kind, ErrorKind::SizeMismatch { .. }), "{e}");
    // Negative or fractional dimensions.
    let e = open_err(
        &build(&one_tensor("F32", &[-2], [0, 8]), &[0; 8]),
        Some("w"),
    );
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
    let h = br#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#;
    let e = open_err(&build(h, &[0; 4]), Some("w"));
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
}

#[test]
fn unknown_dtype() {
    for d in ["F12", "Q4_0", "f32", "F8_E8M0", "C64", ""] {
        let e = open_err(&build(&one_tensor(d, &[1], [0, 4]), &[0; 4]), Some("w"));
        match &e.kind {
            ErrorKind::UnsupportedDType(s) => assert_eq!(s, d),
            _ => panic!("{d}: {e}"),
        }
        assert!(e.to_string().contains(&format!("unsupported dtype {d}")));
    }
    // Not even a string.
    let h = br#"{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#;
    let e = open_err(&build(h, &[0; 4]), Some("w"));
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
}

#[test]
fn huge_header_length() {
    for n in [MAX_HEADER_SIZE + 1, 1 << 40, u64::MAX] {
        let mut bytes = n.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let e = open_err(&bytes, None);
        match e.kind {
            ErrorKind::HeaderTooLarge { len, limit } => {
                assert_eq!((len, limit), (n, 100_000_000));
            }
            _ => panic!("{n}: {e}"),
        }
    }
}

#[test]
fn header_length_past_eof() {
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"a\": 1}    ");
    let e = open_err(&bytes, None);
    match &e.kind {
        ErrorKind::Truncated(m) => assert!(m.contains("1000"), "{e}"),
        _ => panic!("{e}"),
    }
}

#[test]
fn non_utf8_header() {
    let e = open_err(&build(b"{\"w\xff\xfe\": 1}", &[]), None);
    match &e.kind {
        ErrorKind::InvalidHeader(m) => assert!(m.contains("UTF-8"), "{e}"),
        _ => panic!("{e}"),
    }
}

#[test]
fn non_object_json() {
    // Starts like an object but is not valid JSON / not only an object.
    for h in [&b"{"[..], b"{\"w\": }", b"{} []", b"{\"w\":1,}"] {
        let e = open_err(&build(h, &[]), None);
        match &e.kind {
            ErrorKind::InvalidHeader(m) => assert!(m.contains("JSON object"), "{e}"),
            _ => panic!("{}: {e}", String::from_utf8_lossy(h)),
        }
    }
    // An object whose tensor entry is not an object.
    let e = open_err(&build(br#"{"w": [1, 2]}"#, &[]), Some("w"));
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
    // A header that is not an object at all does not look like safetensors (byte 8 is not
    // `{`), so no reader claims it: the error says which formats were tried.
    for h in [&b"[1, 2]"[..], b"\"text\"", b"null"] {
        let e = open_err(&build(h, &[]), None);
        match &e.kind {
            ErrorKind::UnknownFormat(m) => assert!(m.contains("safetensors"), "{e}"),
            _ => panic!("{}: {e}", String::from_utf8_lossy(h)),
        }
    }
}

#[test]
fn bad_metadata() {
    let e = open_err(&build(br#"{"__metadata__": [1]}"#, &[]), None);
    match &e.kind {
        ErrorKind::InvalidHeader(m) => assert!(m.contains("`__metadata__` is not an object")),
        _ => panic!("{e}"),
    }
    let e = open_err(&build(br#"{"__metadata__": {"k": 1}}"#, &[]), None);
    match &e.kind {
        ErrorKind::InvalidHeader(m) => assert!(m.contains("`__metadata__.k` is not a string")),
        _ => panic!("{e}"),
    }
    let e = open_err(&build(br#"{"__metadata__": {"k": {"x": "y"}}}"#, &[]), None);
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
}

#[test]
fn missing_fields() {
    for h in [
        &br#"{"w":{"shape":[1],"data_offsets":[0,4]}}"#[..],
        br#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#,
        br#"{"w":{"dtype":"F32","shape":[1]}}"#,
        br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#,
        br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#,
        br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-1,4]}}"#,
        br#"{"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}"#,
    ] {
        let e = open_err(&build(h, &[0; 4]), Some("w"));
        assert!(
            matches!(e.kind, ErrorKind::InvalidHeader(_)),
            "{}: {e}",
            String::from_utf8_lossy(h)
        );
    }
}

#[test]
fn too_short_files() {
    for bytes in [&b""[..], b"\x02\0\0", b"\x02\0\0\0\0\0\0\0"] {
        let e = open_err(bytes, None);
        assert!(matches!(e.kind, ErrorKind::UnknownFormat(_)), "{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations of valid files: an error or a checkpoint, never a panic.

fn open_all(path: &Path) {
    if let Ok(ck) = Checkpoint::open(path) {
        for i in 0..ck.len() {
            if let Ok(t) = ck.tensor_at(i) {
                let _ = t.to_f32();
                let _ = t.content_hash();
            }
        }
        for name in ck.names() {
            let _ = ck.tensor_f32(name);
        }
        let _ = ck.total_bytes();
    }
}

fn mutate_and_open(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    std::fs::write(&p, bytes).unwrap();
    open_all(&p);
}

fn small() -> Vec<u8> {
    std::fs::read(fixture("small.safetensors")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn truncated(cut in 0usize..430) {
        let b = small();
        let cut = cut.min(b.len() - 1);
        mutate_and_open(&b[..cut]);
        // Cutting the data section is always detected.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        std::fs::write(&p, &b[..cut]).unwrap();
        prop_assert!(Checkpoint::open(&p).is_err());
    }

    #[test]
    fn flipped_bytes(flips in proptest::collection::vec((0usize..430, 1u8..=255), 1..6)) {
        let mut b = small();
        for (pos, x) in flips {
            let n = b.len();
            b[pos % n] ^= x;
        }
        mutate_and_open(&b);
    }

    #[test]
    fn header_bytes_replaced(pos in 8usize..300, byte in prop::sample::select(
        b"{}[],:\"0123456789- eE.\\\xff".to_vec())) {
        let mut b = small();
        b[pos] = byte;
        mutate_and_open(&b);
    }

    #[test]
    fn length_prefix_changed(delta in -400i64..400, raw in any::<u64>(), use_raw in any::<bool>()) {
        let mut b = small();
        let n = u64::from_le_bytes(b[..8].try_into().unwrap());
        let m = if use_raw { raw } else { n.wrapping_add_signed(delta) };
        b[..8].copy_from_slice(&m.to_le_bytes());
        mutate_and_open(&b);
        if m != n {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("l.safetensors");
            std::fs::write(&p, &b).unwrap();
            // Only extra padding spaces could make another prefix valid, and there are none
            // past the data section's start.
            prop_assert!(Checkpoint::open(&p).is_err(), "prefix {m} (was {n})");
        }
    }

    #[test]
    fn appended_bytes(extra in proptest::collection::vec(any::<u8>(), 1..64)) {
        let mut b = small();
        b.extend_from_slice(&extra);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.safetensors");
        std::fs::write(&p, &b).unwrap();
        let e = Checkpoint::open(&p).unwrap_err();
        prop_assert!(matches!(e.kind, ErrorKind::NotContiguous(_)), "{}", e);
    }
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

/// Copies the sharded fixture into a temp dir (so tests can add or break files).
fn sharded_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture("sharded")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

fn index_json(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("model.safetensors.index.json")).unwrap())
        .unwrap()
}

fn write_index(dir: &Path, v: &Value) -> PathBuf {
    let p = dir.join("model.safetensors.index.json");
    std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    p
}

#[test]
fn sharded_by_index_and_by_directory() {
    let index = fixture("sharded/model.safetensors.index.json");
    let by_index = Checkpoint::open(&index).unwrap();
    let by_dir = Checkpoint::open(fixture("sharded")).unwrap();
    for ck in [&by_index, &by_dir] {
        assert_eq!(ck.format(), Format::ShardedSafetensors);
        assert_eq!(ck.files().len(), 2);
        assert_eq!(ck.len(), 4);
        assert_eq!(ck.metadata()["total_size"], json!(ck.total_bytes()));
        assert_eq!(ck.info("layers.1.weight").unwrap().dtype, DType::BF16);
    }
    let names_i: Vec<&str> = by_index.names().collect();
    let names_d: Vec<&str> = by_dir.names().collect();
    assert_eq!(names_i, names_d);
    // Shards in order, each shard's tensors in its data order.
    assert!(names_i[..2].iter().all(|n| n.starts_with("layers.0")));

    // A directory of shards without an index is one checkpoint too.
    let dir = sharded_copy();
    std::fs::remove_file(dir.path().join("model.safetensors.index.json")).unwrap();
    let ck = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ck.format(), Format::ShardedSafetensors);
    assert_eq!(ck.len(), 4);
    for n in ck.names() {
        assert_eq!(
            ck.tensor_f32(n).unwrap(),
            by_index.tensor_f32(n).unwrap(),
            "{n}"
        );
    }
}

#[test]
fn index_names_a_tensor_its_shard_lacks() {
    let dir = sharded_copy();
    let mut v = index_json(dir.path());
    v["weight_map"]["layers.2.weight"] = json!("model-00002-of-00002.safetensors");
    let idx = write_index(dir.path(), &v);
    let e = Checkpoint::open(&idx).unwrap_err();
    assert_eq!(e.path, idx);
    assert_eq!(e.tensor.as_deref(), Some("layers.2.weight"));
    let msg = e.to_string();
    assert!(matches!(e.kind, ErrorKind::Invalid(_)), "{msg}");
    assert!(
        msg.contains("model-00002-of-00002.safetensors") && msg.contains("does not hold it"),
        "{msg}"
    );
    // Also through the directory.
    let e = Checkpoint::open(dir.path()).unwrap_err();
    assert_eq!(e.tensor.as_deref(), Some("layers.2.weight"));

    // A tensor listed under the wrong shard (in a fresh copy: the index above is now broken).
    let dir = sharded_copy();
    let mut v = index_json(dir.path());
    v["weight_map"]["layers.0.bias"] = json!("model-00002-of-00002.safetensors");
    let idx = write_index(dir.path(), &v);
    let e = Checkpoint::open(&idx).unwrap_err();
    assert_eq!(e.tensor.as_deref(), Some("layers.0.bias"), "{e}");
}

#[test]
fn index_names_a_missing_shard() {
    let dir = sharded_copy();
    let mut v = index_json(dir.path());
    v["weight_map"]["layers.1.bias"] = json!("model-00003-of-00003.safetensors");
    let idx = write_index(dir.path(), &v);
    let e = Checkpoint::open(&idx).unwrap_err();
    let msg = e.to_string();
    match &e.kind {
        ErrorKind::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::NotFound, "{msg}"),
        _ => panic!("{msg}"),
    }
    assert!(msg.contains("model-00003-of-00003.safetensors"), "{msg}");
}

#[test]
fn index_escaping_the_directory() {
    let dir = sharded_copy();
    // A real shard outside the checkpoint directory: it must not be read.
    let outside = dir.path().join("sub");
    std::fs::create_dir(&outside).unwrap();
    for shard in [
        "../model-00001-of-00002.safetensors",
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b.safetensors",
    ] {
        let mut v = index_json(dir.path());
        v["weight_map"]["layers.0.weight"] = json!(shard);
        let idx = outside.join("model.safetensors.index.json");
        std::fs::write(&idx, serde_json::to_vec(&v).unwrap()).unwrap();
        let e = Checkpoint::open(&idx).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e.kind, ErrorKind::Invalid(_)), "{shard}: {msg}");
        assert!(msg.contains("leaves the checkpoint directory"), "{msg}");
        assert!(msg.contains(&idx.display().to_string()), "{msg}");
        assert_eq!(e.tensor.as_deref(), Some("layers.0.weight"));
    }
}

#[test]
fn broken_index_files() {
    let dir = sharded_copy();
    for (text, kind) in [
        ("not json", "header"),
        ("[1]", "invalid"),
        ("{\"weight_map\": 3}", "invalid"),
        ("{\"weight_map\": {\"a\": 3}}", "invalid"),
    ] {
        let idx = dir.path().join("model.safetensors.index.json");
        std::fs::write(&idx, text).unwrap();
        let e = Checkpoint::open(&idx).unwrap_err();
        assert_eq!(e.path, idx);
        match (kind, &e.kind) {
            ("header", ErrorKind::InvalidHeader(_)) | ("invalid", ErrorKind::Invalid(_)) => {}
            _ => panic!("{text}: {e}"),
        }
    }
}

#[test]
fn corrupt_shard_is_named() {
    let dir = sharded_copy();
    let shard = dir.path().join("model-00002-of-00002.safetensors");
    let mut b = std::fs::read(&shard).unwrap();
    b.truncate(b.len() - 3);
    std::fs::write(&shard, &b).unwrap();
    let e = Checkpoint::open(dir.path().join("model.safetensors.index.json")).unwrap_err();
    assert_eq!(e.path, shard, "{e}");
    assert!(matches!(e.kind, ErrorKind::OffsetOutOfBounds { .. }), "{e}");
}

#[test]
fn duplicate_tensor_across_shards_without_index() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("sharded/model-00001-of-00002.safetensors");
    std::fs::copy(&src, dir.path().join("a.safetensors")).unwrap();
    std::fs::copy(&src, dir.path().join("b.safetensors")).unwrap();
    let e = Checkpoint::open(dir.path()).unwrap_err();
    assert!(e.to_string().contains("more than once"), "{e}");
    assert!(e.tensor.is_some());
}
