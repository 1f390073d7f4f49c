//! GGUF reading and ggml dequantisation, through `Checkpoint::open`.
//!
//! Fixtures in `tests/fixtures/gguf/` are written by `make_fixtures.py` (gguf-py's
//! `GGUFWriter`); `golden.json` holds the expected f32 values of every tensor as bit patterns,
//! from gguf-py's numpy port of ggml's `dequantize_row_*`. The comparison is bit-exact.
//! Malformed files are built byte by byte below.
//!
//! Where the golden is not gguf-py's: gguf-py 0.19.0 does not dequantise Q8_1, Q8_K and Q1_0,
//! so for those `make_fixtures.py` writes ggml's formula out in numpy (`d * q`; for Q1_0
//! `bit ? d : -d`, from `dequantize_row_q1_0`). For the types added with the i-quants, gguf-py's
//! numpy code was checked line by line against ggml's `dequantize_row_*` (same tables, same
//! operations in the same order, in f32) and no difference was found, so gguf-py is the golden
//! for all of them but Q1_0. Two edge codes where a port could plausibly differ are pinned in
//! the fixture and agree: NVFP4's UE4M3 scale 0x7F (NaN, read as 0 by both) and 0xFF (top bit
//! ignored by both: 240), and MXFP4's subnormal E8M0 exponent 1.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Value, json};
use weightspace_io::{Checkpoint, DType, Error, ErrorKind, Format, GGUF_MAX_ARRAY_LEN};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gguf")
        .join(name)
}

fn golden() -> BTreeMap<String, BTreeMap<String, Value>> {
    let text = std::fs::read_to_string(fixture("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Distance in units in the last place between two finite f32s of the same sign.
fn ulps(a: f32, b: f32) -> u64 {
    if a == b {
        return 0;
    }
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 { i32::MIN - i } else { i }
    };
    (key(a) as i64 - key(b) as i64).unsigned_abs()
}

#[test]
fn every_tensor_matches_the_numpy_ggml_port_bit_exactly() {
    let mut per_type: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (file, tensors) in golden() {
        let ck = Checkpoint::open(fixture(&file)).unwrap();
        assert_eq!(ck.format(), Format::Gguf);
        assert_eq!(ck.len(), tensors.len(), "{file}");
        for (name, g) in &tensors {
            let t = ck.tensor(name).unwrap();
            let dtype = g["type"].as_str().unwrap();
            assert_eq!(t.dtype, DType::from_name(dtype).unwrap(), "{file}:{name}");
            let shape: Vec<usize> = serde_json::from_value(g["shape"].clone()).unwrap();
            assert_eq!(t.shape, &shape[..], "{file}:{name} row-major shape");
            // Zero-copy, raw stored bytes.
            assert!(matches!(t.bytes, Cow::Borrowed(_)), "{file}:{name}");
            assert_eq!(
                t.bytes.len(),
                t.dtype.storage_bytes(t.numel()).unwrap(),
                "{file}:{name}"
            );
            let want: Vec<u32> = serde_json::from_value(g["f32_bits"].clone()).unwrap();
            let got = ck.tensor_f32(name).unwrap();
            assert_eq!(got.len(), want.len());
            let mut worst = 0;
            for (i, (&a, &w)) in got.iter().zip(&want).enumerate() {
                let w = f32::from_bits(w);
                worst = worst.max(ulps(a, w));
                assert_eq!(
                    a.to_bits(),
                    w.to_bits(),
                    "{file}:{name}[{i}]: got {a:e}, numpy/ggml {w:e}"
                );
            }
            let e = per_type.entry(dtype.to_string()).or_default();
            e.0 += got.len();
            e.1 = e.1.max(worst);
        }
    }
    // Every type the reader supports is covered.
    for t in [
        "F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
        "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS",
        "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "IQ1_M", "TQ1_0", "TQ2_0",
        "MXFP4", "NVFP4", "Q1_0",
    ] {
        assert!(per_type.contains_key(t), "no golden tensor of type {t}");
    }
    for (t, (n, worst)) in &per_type {
        println!("{t:7} {n:5} values, max {worst} ulp");
    }
}

#[test]
fn metadata_of_every_value_type() {
    let ck = Checkpoint::open(fixture("all_types.gguf")).unwrap();
    let m = ck.metadata();
    let expect = [
        ("general.architecture", json!("llama")),
        ("general.name", json!("weightspace fixture")),
        ("test.u8", json!(200)),
        ("test.i8", json!(-100)),
        ("test.u16", json!(60000)),
        ("test.i16", json!(-30000)),
        ("test.u32", json!(4_000_000_000u32)),
        ("test.i32", json!(-2_000_000_000)),
        ("test.u64", json!(18_000_000_000_000_000_000u64)),
        ("test.i64", json!(-9_000_000_000_000_000_000i64)),
        ("test.f32", json!(0.15625)),
        ("test.f64", json!(-1.0e300)),
        ("test.bool_true", json!(true)),
        ("test.bool_false", json!(false)),
        ("test.string", json!("héllo wörld ✓")),
        ("test.arr_u8", json!([1, 2, 255])),
        ("test.arr_i16", json!([-1, 0, 1])),
        ("test.arr_u64", json!([0, u64::MAX])),
        ("test.arr_f32", json!([0.5, -2.0])),
        ("test.arr_f64", json!([0.25])),
        ("test.arr_bool", json!([true, false, true])),
        ("test.arr_string", json!(["a", "bc", ""])),
        ("test.arr_nested", json!([[1, 2], [3], [4, 5, 6]])),
        (
            "tokenizer.ggml.tokens",
            json!({"array_of": "string", "len": 1500}),
        ),
        ("GGUF.version", json!(3)),
        ("GGUF.tensor_count", json!(20)),
    ];
    for (k, v) in expect {
        assert_eq!(m.get(k), Some(&v), "metadata `{k}`");
    }
    // Exactly GGUF_MAX_ARRAY_LEN elements: kept.
    let a = m["test.arr_1024"].as_array().unwrap();
    assert_eq!(a.len(), GGUF_MAX_ARRAY_LEN);
    assert_eq!(a[1023], json!(1023));
    // Every key of the file plus the three GGUF.* ones.
    assert_eq!(m["GGUF.kv_count"].as_u64().unwrap() as usize + 3, m.len());
}

#[test]
fn version_2_with_custom_alignment() {
    let path = fixture("align64_v2.gguf");
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.metadata()["GGUF.version"], json!(2));
    assert_eq!(ck.metadata()["general.alignment"], json!(64));
    let file = std::fs::read(&path).unwrap();
    // Header ends before byte 256 (checked with gguf-py's reader); tensors at 0, 64, 128.
    for (name, off) in [("a", 256), ("b", 320), ("c", 384)] {
        let t = ck.tensor(name).unwrap();
        assert_eq!(&t.bytes[..], &file[off..off + t.bytes.len()], "{name}");
    }
    assert_eq!(ck.tensor_f32("a").unwrap(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(ck.tensor_f32("c").unwrap(), vec![1.5, -2.0, 3.25]);
    assert_eq!(ck.info("b").unwrap().shape, vec![1, 32]);
}

#[test]
fn iq4_nl_file_once_refused_is_read() {
    // This file was the "unsupported type" fixture before weightspace read the i-quants.
    let ck = Checkpoint::open(fixture("unsupported_iq4nl.gguf")).unwrap();
    let t = ck.tensor("blk.0.iq").unwrap();
    assert_eq!((t.dtype, t.shape), (DType::IQ4_NL, &[1usize, 32][..]));
    assert_eq!(t.bytes.len(), 18);
    // d = 0.5 and every value is d times one of ggml's kvalues_iq4nl.
    const KVALUES_IQ4NL: [i8; 16] = [
        -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
    ];
    let v = ck.tensor_f32("blk.0.iq").unwrap();
    for (j, x) in v.iter().enumerate() {
        let q = t.bytes[2 + j % 16] >> (4 * (j / 16)) & 0x0f;
        assert_eq!(*x, 0.5 * KVALUES_IQ4NL[q as usize] as f32, "value {j}");
    }
    assert_eq!(ck.tensor_f32("ok").unwrap(), vec![1.0; 4]);
}

#[test]
fn iquants_file_lists_every_new_type() {
    let ck = Checkpoint::open(fixture("iquants.gguf")).unwrap();
    let want = [
        ("quant.iq2_xxs", DType::IQ2_XXS, 256, 66),
        ("quant.iq2_xs", DType::IQ2_XS, 256, 74),
        ("quant.iq3_xxs", DType::IQ3_XXS, 256, 98),
        ("quant.iq1_s", DType::IQ1_S, 256, 50),
        ("quant.iq4_nl", DType::IQ4_NL, 64, 36),
        ("quant.iq3_s", DType::IQ3_S, 256, 110),
        ("quant.iq2_s", DType::IQ2_S, 256, 82),
        ("quant.iq4_xs", DType::IQ4_XS, 256, 136),
        ("quant.iq1_m", DType::IQ1_M, 256, 56),
        ("quant.tq1_0", DType::TQ1_0, 256, 54),
        ("quant.tq2_0", DType::TQ2_0, 256, 66),
        ("quant.mxfp4", DType::MXFP4, 64, 34),
        ("quant.nvfp4", DType::NVFP4, 128, 72),
        ("quant.q1_0", DType::Q1_0, 128, 18),
    ];
    let infos: Vec<_> = ck.infos().collect();
    assert_eq!(infos.len(), want.len());
    for (info, (name, dtype, row, row_bytes)) in infos.iter().zip(want) {
        assert_eq!(
            (info.name.as_str(), info.dtype, &info.shape[..]),
            (name, dtype, &[2, row][..])
        );
        assert_eq!(
            ck.tensor(name).unwrap().bytes.len(),
            2 * row_bytes,
            "{name}"
        );
        assert_eq!(
            info.dtype.to_string(),
            name["quant.".len()..].to_uppercase()
        );
    }
}

/// Where the type id of tensor `name` sits in a GGUF file whose tensors have two dimensions.
fn type_id_offset(bytes: &[u8], name: &str) -> usize {
    let mut key = (name.len() as u64).to_le_bytes().to_vec();
    key.extend_from_slice(name.as_bytes());
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .unwrap_or_else(|| panic!("{name} not in the file"));
    let dims = at + key.len();
    assert_eq!(
        bytes[dims..dims + 4],
        2u32.to_le_bytes(),
        "{name}: two dims"
    );
    dims + 4 + 16
}

#[test]
fn retyped_iquant_tensors_never_panic() {
    // Every tensor of iquants.gguf relabelled with every ggml type id (and a few others): the
    // file opens or is refused with an error naming the tensor, and whatever opens decodes or
    // errors, without a panic. Deterministic, no proptest.
    let bytes = std::fs::read(fixture("iquants.gguf")).unwrap();
    let ck = Checkpoint::open(fixture("iquants.gguf")).unwrap();
    let names: Vec<String> = ck.names().map(String::from).collect();
    for name in &names {
        let off = type_id_offset(&bytes, name);
        for id in (0..45).chain([99, u32::MAX]) {
            let mut b = bytes.clone();
            b[off..off + 4].copy_from_slice(&id.to_le_bytes());
            match open_bytes(&b) {
                Ok(ck) => {
                    for n in &names {
                        let _ = ck.tensor_f32(n);
                    }
                }
                Err(e) => assert_eq!(e.tensor.as_deref(), Some(name.as_str()), "{e}"),
            }
        }
    }
}

#[test]
fn truncated_iquant_blocks_are_refused() {
    // One tensor of one block of each new type whose data ends a byte early at the end of the
    // file: refused at open time, naming the tensor and the bytes it needs.
    for (id, block, bytes) in [
        (16, 256, 66),
        (17, 256, 74),
        (18, 256, 98),
        (19, 256, 50),
        (20, 32, 18),
        (21, 256, 110),
        (22, 256, 82),
        (23, 256, 136),
        (29, 256, 56),
        (34, 256, 54),
        (35, 256, 66),
        (39, 32, 17),
        (40, 64, 36),
        (41, 128, 18),
    ] {
        let mut g = Gguf::new(3, 1, 0);
        g.tensor("q", &[block], id, 0);
        let mut whole = g.clone();
        whole.data(32, &vec![0; bytes]);
        let ck = whole.open().unwrap_or_else(|e| panic!("type {id}: {e}"));
        assert_eq!(
            ck.tensor_f32("q").unwrap().len(),
            block as usize,
            "type {id}"
        );

        g.data(32, &vec![0; bytes - 1]);
        let (k, t) = kind(g.open());
        assert_eq!(t.as_deref(), Some("q"), "type {id}");
        match k {
            ErrorKind::OffsetOutOfBounds { end, available, .. } => {
                assert_eq!(
                    (end, available),
                    (bytes as u64, bytes as u64 - 1),
                    "type {id}"
                )
            }
            k => panic!("type {id}: {k:?}"),
        }
        // A row that is not a whole number of blocks.
        let mut g = Gguf::new(3, 1, 0);
        g.tensor("q", &[block / 2], id, 0).data(32, &vec![0; bytes]);
        let (k, _) = kind(g.open());
        assert!(matches!(k, ErrorKind::InvalidHeader(_)), "type {id}: {k:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built files.

/// A little GGUF writer for malformed files.
#[derive(Clone, Default)]
struct Gguf {
    b: Vec<u8>,
}

impl Gguf {
    fn new(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut g = Gguf::default();
        g.b.extend_from_slice(b"GGUF");
        g.u32(version).u64(n_tensors).u64(n_kv);
        g
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.b.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.b.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.b.extend_from_slice(s.as_bytes());
        self
    }
    fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pads to `align` and appends `data`.
    fn data(&mut self, align: usize, data: &[u8]) -> &mut Self {
        while self.b.len() % align != 0 {
            self.b.push(0);
        }
        self.b.extend_from_slice(data);
        self
    }
    fn open(&self) -> Result<Checkpoint, Error> {
        open_bytes(&self.b)
    }
}

fn open_bytes(bytes: &[u8]) -> Result<Checkpoint, Error> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.gguf");
    std::fs::write(&p, bytes).unwrap();
    Checkpoint::open(&p)
}

/// A valid file: one key, one 2x2 F32 tensor.
fn valid() -> Gguf {
    let mut g = Gguf::new(3, 1, 1);
    g.kv_u32("k", 7).tensor("w", &[2, 2], 0, 0);
    let data: Vec<u8> = [1f32, 2., 3., 4.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    g.data(32, &data);
    g
}

fn kind(r: Result<Checkpoint, Error>) -> (ErrorKind, Option<String>) {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => (e.kind, e.tensor),
    }
}

#[test]
fn hand_built_valid_file() {
    let ck = valid().open().unwrap();
    assert_eq!(ck.tensor_f32("w").unwrap(), vec![1., 2., 3., 4.]);
    assert_eq!(ck.metadata()["k"], json!(7));
    // Zero tensors and zero keys is a valid (empty) file.
    let ck = Gguf::new(3, 0, 0).open().unwrap();
    assert!(ck.is_empty());
}

#[test]
fn truncated_header() {
    let (k, _) = kind(open_bytes(b"GGUF\x03\x00\x00\x00\x01"));
    assert!(matches!(k, ErrorKind::Truncated(_)), "{k:?}");
    // Cut inside the key/values and inside the tensor infos.
    let v = valid().b;
    for cut in [30, 40, 50, 60] {
        let (k, _) = kind(open_bytes(&v[..cut]));
        assert!(matches!(k, ErrorKind::Truncated(_)), "cut {cut}: {k:?}");
    }
}

#[test]
fn tensor_data_beyond_the_file() {
    let mut g = Gguf::new(3, 1, 0);
    g.tensor("w", &[4], 0, 32).data(32, &[0; 16]);
    let (k, t) = kind(g.open());
    assert_eq!(t.as_deref(), Some("w"));
    match k {
        ErrorKind::OffsetOutOfBounds {
            start,
            end,
            available,
        } => assert_eq!((start, end, available), (32, 48, 16)),
        k => panic!("{k:?}"),
    }
    // Offsets near u64::MAX must not overflow.
    let mut g = Gguf::new(3, 1, 0);
    g.tensor("w", &[4], 0, u64::MAX - 31).data(32, &[0; 16]);
    let (k, _) = kind(g.open());
    assert!(matches!(k, ErrorKind::OffsetOutOfBounds { .. }), "{k:?}");
    // A huge shape whose byte size overflows.
    let mut g = Gguf::new(3, 1, 0);
    g.tensor("w", &[1 << 40, 1 << 40], 0, 0).data(32, &[0; 16]);
    let (k, t) = kind(g.open());
    assert_eq!(t.as_deref(), Some("w"));
    assert!(matches!(k, ErrorKind::InvalidHeader(_)), "{k:?}");
}

#[test]
fn huge_string_length() {
    let mut g = Gguf::new(3, 0, 1);
    g.u64(u64::MAX / 2).b.extend_from_slice(b"key");
    let (k, _) = kind(g.open());
    assert!(matches!(k, ErrorKind::Truncated(_)), "{k:?}");
    // In a string value, and in a tensor name.
    let mut g = Gguf::new(3, 0, 1);
    g.str("k").u32(8).u64(1 << 62);
    assert!(matches!(kind(g.open()).0, ErrorKind::Truncated(_)));
    let mut g = Gguf::new(3, 1, 0);
    g.u64(u64::MAX).u64(0).u64(0).u64(0);
    assert!(matches!(kind(g.open()).0, ErrorKind::Truncated(_)));
}

#[test]
fn huge_counts() {
    for elem_type in [0u32, 8, 9, 12] {
        let mut g = Gguf::new(3, 0, 1);
        g.str("a").u32(9).u32(elem_type).u64(u64::MAX / 3);
        let (k, _) = kind(g.open());
        assert!(matches!(k, ErrorKind::Truncated(_)), "{elem_type}: {k:?}");
    }
    // Counts far beyond the caps, and within the caps but beyond the file.
    let (k, _) = kind(Gguf::new(3, u64::MAX, 0).open());
    assert!(matches!(k, ErrorKind::InvalidHeader(_)), "{k:?}");
    let (k, _) = kind(Gguf::new(3, 0, u64::MAX).open());
    assert!(matches!(k, ErrorKind::InvalidHeader(_)), "{k:?}");
    let (k, _) = kind(Gguf::new(3, 1000, 1000).open());
    assert!(matches!(k, ErrorKind::Truncated(_)), "{k:?}");
}

#[test]
fn header_over_the_cap_is_refused_without_reading_it() {
    // A sparse file whose first key is longer than the 100 MB header cap.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.gguf");
    let mut g = Gguf::new(3, 0, 1);
    g.u64(weightspace_io::MAX_HEADER_SIZE + 1);
    std::fs::write(&p, &g.b).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(weightspace_io::MAX_HEADER_SIZE + 100).unwrap();
    drop(f);
    let e = Checkpoint::open(&p).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::HeaderTooLarge { .. }),
        "{:?}",
        e.kind
    );
}

#[test]
fn unknown_type_ids() {
    let mut g = Gguf::new(3, 1, 0);
    g.tensor("x", &[4], 99, 0).data(32, &[0; 16]);
    let (k, t) = kind(g.open());
    assert_eq!(t.as_deref(), Some("x"));
    match k {
        ErrorKind::UnsupportedDType(s) => assert!(s.contains("99"), "{s}"),
        k => panic!("{k:?}"),
    }
    // Known but removed from ggml: named.
    for (id, name) in [(31, "Q4_0_4_4"), (36, "IQ4_NL_4_4"), (4, "Q4_2")] {
        let mut g = Gguf::new(3, 1, 0);
        g.tensor("x", &[256], id, 0).data(32, &[0; 144]);
        let (k, t) = kind(g.open());
        assert_eq!(t.as_deref(), Some("x"));
        match k {
            ErrorKind::UnsupportedDType(s) => {
                assert!(s.contains(name) && s.contains(&format!("id {id}")), "{s}")
            }
            k => panic!("{k:?}"),
        }
    }
    let e = {
        let mut g = Gguf::new(3, 1, 0);
        g.tensor("blk.0.w", &[256], 38, 0).data(32, &[0; 144]);
        g.open().unwrap_err()
    };
    assert!(e.to_string().contains("blk.0.w"), "{e}");
    // An unknown metadata value type, and array element type.
    let mut g = Gguf::new(3, 0, 1);
    g.str("k").u32(13).u32(0);
    assert!(matches!(kind(g.open()).0, ErrorKind::InvalidHeader(_)));
    let mut g = Gguf::new(3, 0, 1);
    g.str("k").u32(9).u32(77).u64(1).u32(0);
    assert!(matches!(kind(g.open()).0, ErrorKind::InvalidHeader(_)));
}

#[test]
fn misaligned_offset() {
    let mut g = Gguf::new(3, 1, 0);
    g.tensor("w", &[1], 0, 4).data(32, &[0; 8]);
    let (k, t) = kind(g.open());
    assert_eq!(t.as_deref(), Some("w"));
    match k {
        ErrorKind::InvalidHeader(s) => assert!(s.contains("alignment 32"), "{s}"),
        k => panic!("{k:?}"),
    }
    // With a custom alignment of 8 the same offset 8 is fine, 4 is not.
    let mut g = Gguf::new(3, 1, 1);
    g.kv_u32("general.alignment", 8)
        .tensor("w", &[1], 0, 8)
        .data(8, &[0; 8])
        .b
        .extend_from_slice(&2.5f32.to_le_bytes());
    assert_eq!(g.open().unwrap().tensor_f32("w").unwrap(), vec![2.5]);
    let mut g = Gguf::new(3, 1, 1);
    g.kv_u32("general.alignment", 8)
        .tensor("w", &[1], 0, 4)
        .data(8, &[0; 8]);
    assert!(matches!(kind(g.open()).0, ErrorKind::InvalidHeader(_)));
}

#[test]
fn bad_alignment_values() {
    for a in [0u32, 3, 48] {
        let mut g = Gguf::new(3, 0, 1);
        g.kv_u32("general.alignment", a);
        let (k, _) = kind(g.open());
        assert!(matches!(k, ErrorKind::InvalidHeader(_)), "{a}: {k:?}");
    }
    // Must be a uint32 (as ggml and gguf-py require).
    let mut g = Gguf::new(3, 0, 1);
    g.str("general.alignment").u32(10).u64(32);
    assert!(matches!(kind(g.open()).0, ErrorKind::InvalidHeader(_)));
}

#[test]
fn versions() {
    let mut v = valid();
    v.b[4..8].copy_from_slice(&2u32.to_le_bytes());
    assert!(v.open().is_ok());
    for (version, needle) in [
        (1u32, "version 1"),
        (4, "version 4"),
        (0, "version 0"),
        (3u32.swap_bytes(), "big-endian"),
    ] {
        v.b[4..8].copy_from_slice(&version.to_le_bytes());
        match kind(v.open()).0 {
            ErrorKind::Unsupported(s) => assert!(s.contains(needle), "{s}"),
            k => panic!("{version}: {k:?}"),
        }
    }
}

#[test]
fn structural_errors() {
    // Arrays nest at most GGUF_MAX_DEPTH (8) deep: 8 levels are read, 9 are refused.
    let nested = |levels: usize| {
        let mut g = Gguf::new(3, 0, 1);
        g.str("deep").u32(9);
        for _ in 1..levels {
            g.u32(9).u64(1);
        }
        g.u32(0).u64(1).b.push(42);
        g
    };
    assert_eq!(weightspace_io::GGUF_MAX_DEPTH, 8);
    let ck = nested(8).open().unwrap();
    assert_eq!(ck.metadata()["deep"], json!([[[[[[[[42]]]]]]]]));
    let (k, _) = kind(nested(9).open());
    assert!(
        matches!(k, ErrorKind::InvalidHeader(ref s) if s.contains("deep")),
        "{k:?}"
    );
    let (k, _) = kind(nested(100_000).open());
    assert!(
        matches!(k, ErrorKind::InvalidHeader(ref s) if s.contains("deep")),
        "{k:?}"
    );
    // More dimensions than ggml allows.
    let mut g = Gguf::new(3, 1, 0);
    g.tensor("w", &[1; 5], 0, 0).data(32, &[0; 4]);
    let (k, t) = kind(g.open());
    assert!(matches!(k, ErrorKind::InvalidHeader(_)) && t.as_deref() == Some("w"));
    // A duplicate key.
    let mut g = Gguf::new(3, 0, 2);
    g.kv_u32("k", 1).kv_u32("k", 2);
    assert!(matches!(kind(g.open()).0, ErrorKind::InvalidHeader(_)));
    // A duplicate tensor name.
    let mut g = Gguf::new(3, 2, 0);
    g.tensor("w", &[1], 0, 0)
        .tensor("w", &[1], 0, 0)
        .data(32, &[0; 4]);
    let (k, t) = kind(g.open());
    assert!(matches!(k, ErrorKind::Invalid(_)) && t.as_deref() == Some("w"));
    // A quantised row that is not a whole number of blocks.
    let mut g = Gguf::new(3, 1, 0);
    g.tensor("q", &[16, 2], 2, 0).data(32, &[0; 36]);
    let (k, t) = kind(g.open());
    assert!(matches!(k, ErrorKind::InvalidHeader(_)) && t.as_deref() == Some("q"));
    // A tensor name that is not UTF-8.
    let mut g = Gguf::new(3, 1, 0);
    g.u64(2).b.extend_from_slice(&[0xff, 0xfe]);
    g.u32(1).u64(1).u32(0).u64(0).data(32, &[0; 4]);
    assert!(matches!(kind(g.open()).0, ErrorKind::InvalidHeader(_)));
}

#[test]
fn long_arrays_are_summarised() {
    let mut g = Gguf::new(3, 0, 3);
    g.str("bytes").u32(9).u32(0).u64(5000);
    g.b.extend(std::iter::repeat_n(7u8, 5000));
    g.str("nested").u32(9).u32(9).u64(2000);
    for _ in 0..2000 {
        g.u32(8).u64(1).str("x");
    }
    g.str("after").u32(8).str("still read");
    let ck = g.open().unwrap();
    let m = ck.metadata();
    assert_eq!(m["bytes"], json!({"array_of": "uint8", "len": 5000}));
    assert_eq!(m["nested"], json!({"array_of": "array", "len": 2000}));
    assert_eq!(m["after"], json!("still read"));
}

#[test]
fn non_finite_floats_and_shapes() {
    let mut g = Gguf::new(3, 1, 3);
    g.str("nan").u32(6).u32(f32::NAN.to_bits());
    g.str("inf").u32(12).u64(f64::NEG_INFINITY.to_bits());
    g.str("eps").u32(6).u32(1e-5f32.to_bits());
    // ne = [3, 2, 1] fastest-first: row-major shape [1, 2, 3].
    g.tensor("t", &[3, 2, 1], 24, 0)
        .data(32, &[1, 2, 3, 4, 5, 0xff]);
    let ck = g.open().unwrap();
    assert_eq!(ck.metadata()["nan"], json!("NaN"));
    assert_eq!(ck.metadata()["inf"], json!("-inf"));
    assert_eq!(ck.metadata()["eps"], json!(1e-5));
    assert_eq!(ck.info("t").unwrap().shape, vec![1, 2, 3]);
    assert_eq!(ck.info("t").unwrap().dtype, DType::I8);
    assert_eq!(ck.tensor_f32("t").unwrap(), vec![1., 2., 3., 4., 5., -1.]);
}

#[test]
fn empty_tensors_without_a_data_section() {
    // The header ends unaligned and nothing follows: an empty tensor is still valid.
    let mut g = Gguf::new(3, 2, 0);
    g.tensor("e", &[0, 4], 0, 0).tensor("q", &[256, 0], 12, 0);
    assert_ne!(g.b.len() % 32, 0);
    let ck = g.open().unwrap();
    assert_eq!(ck.info("e").unwrap().shape, vec![4, 0]);
    assert!(ck.tensor_f32("e").unwrap().is_empty());
    assert!(ck.tensor_f32("q").unwrap().is_empty());
    // One element more is out of bounds.
    let mut g = Gguf::new(3, 1, 0);
    g.tensor("e", &[1], 0, 0);
    assert!(matches!(
        kind(g.open()).0,
        ErrorKind::OffsetOutOfBounds { available: 0, .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// Mutations of valid files never panic.

/// Opens `bytes` and, if that works, decodes every tensor: any result but a panic is fine.
fn open_and_decode(bytes: &[u8]) {
    if let Ok(ck) = open_bytes(bytes) {
        for name in ck.names().map(String::from).collect::<Vec<_>>() {
            let _ = ck.tensor_f32(&name);
        }
        let _ = ck.model_hash();
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    /// Overwrite 8 bytes with a (possibly huge) little-endian u64.
    Word(usize, u64),
}

fn mutation(len: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (0..len).prop_map(Mutation::Truncate),
        (0..len, 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (
            0..len,
            prop_oneof![Just(u64::MAX), Just(1u64 << 40), any::<u64>(), 0..64u64]
        )
            .prop_map(|(i, v)| Mutation::Word(i, v)),
    ]
}

fn apply(bytes: &mut Vec<u8>, muts: &[Mutation]) {
    for m in muts {
        match *m {
            Mutation::Truncate(n) => bytes.truncate(n),
            Mutation::Flip(i, x) => {
                if let Some(b) = bytes.get_mut(i) {
                    *b ^= x
                }
            }
            Mutation::Word(i, v) => {
                for (k, byte) in v.to_le_bytes().into_iter().enumerate() {
                    if let Some(b) = bytes.get_mut(i + k) {
                        *b = byte
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_small_file_never_panics(muts in prop::collection::vec(mutation(608), 1..4)) {
        let mut bytes = std::fs::read(fixture("small.gguf")).unwrap();
        apply(&mut bytes, &muts);
        open_and_decode(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Mutations confined to the header (key/values and tensor infos) of the big fixture.
    #[test]
    fn mutated_header_never_panics(muts in prop::collection::vec(mutation(24480), 1..3)) {
        let mut bytes = std::fs::read(fixture("all_types.gguf")).unwrap();
        apply(&mut bytes, &muts);
        open_and_decode(&bytes);
    }
}
