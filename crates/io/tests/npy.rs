//! NumPy `.npy` / `.npz` reading, checked against golden values written by
//! `tests/fixtures/npy/make_fixtures.py`, plus hostile and corrupt inputs.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::Value;
use weightspace_io::{Checkpoint, DType, ErrorKind, Format};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy")
}

fn golden() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every fixture opens, and each tensor's name, dtype, shape, bytes and values match numpy's.
#[test]
fn fixtures_match_numpy() {
    let golden = golden();
    assert!(golden.len() >= 20);
    for (file, tensors) in &golden {
        let path = fixtures().join(file);
        let ck = Checkpoint::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let want_format = if file.ends_with(".npz") {
            Format::Npz
        } else {
            Format::Npy
        };
        assert_eq!(ck.format(), want_format, "{file}");
        let tensors = tensors.as_array().unwrap();
        let names: Vec<&str> = ck.names().collect();
        let want_names: Vec<&str> = tensors
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, want_names, "{file}");
        for t in tensors {
            let name = t["name"].as_str().unwrap();
            let view = ck.tensor(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                view.dtype.name(),
                t["dtype"].as_str().unwrap(),
                "{file} {name}"
            );
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(view.shape, &shape[..], "{file} {name}");
            assert_eq!(
                hex(&view.bytes),
                t["bytes"].as_str().unwrap(),
                "{file} {name}"
            );
            let values: Vec<f32> = t["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(ck.tensor_f32(name).unwrap(), values, "{file} {name}");
        }
    }
}

/// Little-endian C-order data is borrowed from the memory map; other layouts are produced.
#[test]
fn zero_copy_where_possible() {
    let borrowed = |file: &str, name: &str| {
        let ck = Checkpoint::open(fixtures().join(file)).unwrap();
        matches!(ck.tensor(name).unwrap().bytes, Cow::Borrowed(_))
    };
    assert!(borrowed("f4.npy", "f4"));
    assert!(borrowed("u1.npy", "u1"));
    assert!(!borrowed("f2_be_fortran_1d.npy", "f2_be_fortran_1d"));
    assert!(!borrowed("f8_be.npy", "f8_be"));
    assert!(!borrowed("f4_fortran.npy", "f4_fortran"));
    assert!(borrowed("stored.npz", "fc1.weight"));
    assert!(!borrowed("stored.npz", "fc1.bias")); // big-endian
    assert!(!borrowed("deflated.npz", "fc1.weight")); // inflated on demand
}

#[test]
fn metadata_and_scalars() {
    let ck = Checkpoint::open(fixtures().join("v3.npy")).unwrap();
    assert_eq!(ck.metadata()["npy_version"], "3.0");
    let ck = Checkpoint::open(fixtures().join("scalar.npy")).unwrap();
    let t = ck.tensor("scalar").unwrap();
    assert!(t.shape.is_empty());
    assert_eq!(t.to_f32().unwrap(), vec![3.25]);
    let ck = Checkpoint::open(fixtures().join("empty.npy")).unwrap();
    assert_eq!(ck.info("empty").unwrap().shape, vec![0, 3]);
    assert!(ck.tensor_f32("empty").unwrap().is_empty());
}

/// Arrays numpy can save but weightspace refuses, each with a clear dtype error naming it.
#[test]
fn refused_dtypes() {
    for (file, tensor, needle) in [
        ("object.npy", "object", "pickle"),
        ("void2.npy", "void2", "bfloat16"),
        ("complex.npy", "complex", "complex"),
        ("structured.npy", "structured", "structured"),
        ("object.npz", "bad", "pickle"),
    ] {
        let e = Checkpoint::open(fixtures().join(file)).unwrap_err();
        assert_eq!(e.tensor.as_deref(), Some(tensor), "{file}: {e}");
        match &e.kind {
            ErrorKind::UnsupportedDType(m) => assert!(m.contains(needle), "{file}: {e}"),
            k => panic!("{file}: unexpected error {k}"),
        }
        assert!(e.to_string().contains(file), "{e}");
    }
}

/// Writes `bytes` to a temporary `name` and opens it.
fn open_bytes(name: &str, bytes: &[u8]) -> weightspace_io::Result<Checkpoint> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).unwrap();
    Checkpoint::open(&p)
}

/// An `.npy` v1.0 file with `header` (padded like numpy) followed by `data`.
fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

const F32_2X2: &str = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";

#[test]
fn hand_made_good_file() {
    let data: Vec<u8> = [1f32, 2., 3., 4.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let ck = open_bytes("w.npy", &npy(F32_2X2, &data)).unwrap();
    assert_eq!(ck.tensor_f32("w").unwrap(), vec![1., 2., 3., 4.]);
    assert_eq!(ck.info("w").unwrap().dtype, DType::F32);
}

#[test]
fn truncated_data() {
    let e = open_bytes("t.npy", &npy(F32_2X2, &[0u8; 15])).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
    assert_eq!(e.tensor.as_deref(), Some("t"));
    assert!(
        e.to_string().contains("needs 16 data bytes, only 15"),
        "{e}"
    );
}

#[test]
fn truncated_preamble_and_header() {
    let full = npy(F32_2X2, &[0u8; 16]);
    let e = open_bytes("t.npy", &full[..9]).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
    let e = open_bytes("t.npy", &full[..40]).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
}

#[test]
fn header_length_beyond_file() {
    let mut v = npy(F32_2X2, &[0u8; 16]);
    v[8..10].copy_from_slice(&60000u16.to_le_bytes());
    let e = open_bytes("h.npy", &v).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
    assert!(e.to_string().contains("announces 60000 bytes"), "{e}");
    // Version 2.0 with a 4 GB header: refused before reading anything.
    let mut v = b"\x93NUMPY\x02\x00".to_vec();
    v.extend_from_slice(&u32::MAX.to_le_bytes());
    v.extend_from_slice(b"{}");
    let e = open_bytes("h2.npy", &v).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::HeaderTooLarge { .. }), "{e}");
}

#[test]
fn unsupported_version() {
    let mut v = npy(F32_2X2, &[0u8; 16]);
    v[6] = 4;
    let e = open_bytes("v.npy", &v).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)), "{e}");
}

#[test]
fn shape_size_mismatch() {
    let e = open_bytes("m.npy", &npy(F32_2X2, &[0u8; 20])).unwrap_err();
    match e.kind {
        ErrorKind::SizeMismatch {
            bytes, expected, ..
        } => assert_eq!((bytes, expected), (20, 16)),
        k => panic!("{k}"),
    }
    assert_eq!(e.tensor.as_deref(), Some("m"));
}

#[test]
fn huge_claimed_shape_allocates_nothing() {
    let h = "{'descr': '<f8', 'fortran_order': True, 'shape': (4611686018427387904, 4611686018427387904), }";
    let e = open_bytes("big.npy", &npy(h, &[0u8; 16])).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
    let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000), }";
    let e = open_bytes("big.npy", &npy(h, &[0u8; 16])).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
}

#[test]
fn unknown_descr() {
    let h = "{'descr': '<x9', 'fortran_order': False, 'shape': (2,), }";
    let e = open_bytes("u.npy", &npy(h, &[0u8; 18])).unwrap_err();
    match &e.kind {
        ErrorKind::UnsupportedDType(m) => assert!(m.contains("<x9"), "{m}"),
        k => panic!("{k}"),
    }
    assert_eq!(e.tensor.as_deref(), Some("u"));
}

#[test]
fn header_is_never_evaluated() {
    let h = "{'descr': __import__('os').system('touch /tmp/pwned'), 'fortran_order': False, 'shape': (2,), }";
    let e = open_bytes("x.npy", &npy(h, &[0u8; 8])).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidHeader(_)), "{e}");
}

#[test]
fn npz_with_truncated_member_names_it() {
    // Rebuild stored.npz with one member cut short: the error names that member.
    let bytes = std::fs::read(fixtures().join("stored.npz")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.npz");
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
        let mut r = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for i in 0..r.len() {
            let mut f = r.by_index(i).unwrap();
            let name = f.name().unwrap().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut data).unwrap();
            if name == "emb.npy" {
                data.truncate(data.len() - 8);
            }
            w.start_file(name, opts).unwrap();
            std::io::Write::write_all(&mut w, &data).unwrap();
        }
        w.finish().unwrap();
    }
    let e = Checkpoint::open(&p).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
    assert_eq!(e.tensor.as_deref(), Some("emb"));
}

/// All valid fixtures, as bytes.
fn valid_fixtures() -> Vec<(String, Vec<u8>)> {
    golden()
        .keys()
        .map(|f| (f.clone(), std::fs::read(fixtures().join(f)).unwrap()))
        .collect()
}

/// Opens `bytes` and reads every tensor: any outcome but a panic is fine.
fn open_and_read_all(name: &str, bytes: &[u8]) {
    if let Ok(ck) = open_bytes(name, bytes) {
        for i in 0..ck.len() {
            if let Ok(t) = ck.tensor_at(i) {
                let _ = t.to_f32();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn truncation_never_panics(which in 0usize..64, cut in 0.0f64..1.0) {
        let fx = valid_fixtures();
        let (name, bytes) = &fx[which % fx.len()];
        let n = (bytes.len() as f64 * cut) as usize;
        open_and_read_all(name, &bytes[..n]);
    }

    #[test]
    fn bit_flips_never_panic(
        which in 0usize..64,
        flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 1..6),
    ) {
        let fx = valid_fixtures();
        let (name, bytes) = &fx[which % fx.len()];
        let mut b = bytes.clone();
        for (pos, x) in flips {
            let i = ((b.len() as f64 * pos) as usize).min(b.len() - 1);
            b[i] ^= x | 1;
        }
        open_and_read_all(name, &b);
    }

    #[test]
    fn header_mutations_never_panic(
        which in 0usize..64,
        pos in 0usize..128,
        byte in any::<u8>(),
    ) {
        // Focus on the header region of .npy files, where the parser lives.
        let fx: Vec<_> = valid_fixtures().into_iter().filter(|(n, _)| n.ends_with(".npy")).collect();
        let (name, bytes) = &fx[which % fx.len()];
        let mut b = bytes.clone();
        let i = pos.min(b.len() - 1);
        b[i] = byte;
        open_and_read_all(name, &b);
    }
}

#[test]
fn npz_entry_claiming_an_impossible_inflated_size() {
    // Patch the first entry's uncompressed size (local and central headers) to 2 GB.
    let mut b = std::fs::read(fixtures().join("deflated.npz")).unwrap();
    let find = |b: &[u8], sig: &[u8]| b.windows(4).position(|w| w == sig).unwrap();
    let local = find(&b, b"PK\x03\x04");
    b[local + 22..local + 26].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let central = find(&b, b"PK\x01\x02");
    b[central + 24..central + 28].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let e = open_bytes("lie.npz", &b).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Zip(_)), "{e}");
    assert!(
        e.to_string().contains("more than deflate can produce"),
        "{e}"
    );
    assert_eq!(e.tensor.as_deref(), Some("fc1.weight"));
}
