//! The safetensors writer: output the reference crate reads back identically, sharding with a
//! Hugging Face index, atomicity (nothing left behind by a failed write) and `convert`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use weightspace_io::{
    Checkpoint, ConvertOptions, DType, Error, ErrorKind, Format, TensorInfo, convert, plan_shards,
    write_safetensors, write_sharded,
};

/// Deterministic pseudo-random bytes.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn info(name: &str, dtype: DType, shape: &[usize]) -> TensorInfo {
    TensorInfo {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

/// One tensor of every plain dtype, plus scalars and zero-size tensors, with random bytes.
fn every_dtype() -> (Vec<TensorInfo>, Vec<Vec<u8>>) {
    let mut infos = Vec::new();
    for (k, d) in DType::ALL
        .into_iter()
        .filter(|d| !d.is_quantized())
        .enumerate()
    {
        infos.push(info(&format!("t{k}.{}", d.name()), d, &[3, k + 1]));
    }
    infos.push(info("scalar", DType::F64, &[]));
    infos.push(info("empty", DType::F32, &[0]));
    infos.push(info("empty2", DType::BF16, &[2, 0, 5]));
    let data = infos
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut b = bytes(i as u64 + 1, t.nbytes());
            if t.dtype == DType::Bool {
                b.iter_mut().for_each(|x| *x &= 1);
            }
            b
        })
        .collect();
    (infos, data)
}

fn meta() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("note".to_string(), "ünïcødé \"quoted\"".to_string()),
    ])
}

fn fetch_from<'a>(
    data: &'a [Vec<u8>],
) -> impl FnMut(usize) -> weightspace_io::Result<Cow<'a, [u8]>> {
    move |i| Ok(Cow::Borrowed(&data[i][..]))
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Reads `path` with the reference crate and checks it holds exactly `infos`/`data`/`metadata`.
fn check_with_reference(
    path: &Path,
    infos: &[TensorInfo],
    data: &[Vec<u8>],
    metadata: &BTreeMap<String, String>,
) {
    let buf = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&buf).unwrap();
    let (header_len, m) = safetensors::SafeTensors::read_metadata(&buf).unwrap();
    assert_eq!((8 + header_len) % 8, 0, "data section is 8-byte aligned");
    let got_meta: BTreeMap<String, String> = m
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    assert_eq!(&got_meta, metadata);
    assert_eq!(st.len(), infos.len());
    // Data order is the order given (zero-size tensors share an offset: their order is free).
    let nonempty = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| infos.iter().any(|t| &t.name == n && t.nbytes() > 0))
            .collect()
    };
    assert_eq!(
        nonempty(m.offset_keys()),
        nonempty(infos.iter().map(|t| t.name.clone()).collect())
    );
    for (t, d) in infos.iter().zip(data) {
        let v = st.tensor(&t.name).unwrap();
        assert_eq!(v.dtype().to_string(), t.dtype.name(), "{}", t.name);
        assert_eq!(v.shape(), &t.shape[..], "{}", t.name);
        assert_eq!(v.data(), &d[..], "{}", t.name);
    }
}

#[test]
fn reference_crate_reads_our_files() {
    let (infos, data) = every_dtype();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("all.safetensors");
    write_safetensors(&p, &infos, &meta(), fetch_from(&data)).unwrap();
    check_with_reference(&p, &infos, &data, &meta());
    // And we read it back identically, zero-copy.
    let ck = Checkpoint::open(&p).unwrap();
    assert_eq!(ck.format(), Format::Safetensors);
    let names: Vec<&str> = ck.names().collect();
    assert_eq!(
        names,
        infos.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()
    );
    for (t, d) in infos.iter().zip(&data) {
        let v = ck.tensor(&t.name).unwrap();
        assert!(matches!(v.bytes, Cow::Borrowed(_)));
        assert_eq!(&v.bytes[..], &d[..]);
        assert_eq!(v.dtype, t.dtype);
    }
    assert_eq!(ck.metadata()["note"], json!("ünïcødé \"quoted\""));
    // No metadata: no `__metadata__` key at all.
    let p2 = dir.path().join("nometa.safetensors");
    write_safetensors(&p2, &infos[..2], &BTreeMap::new(), fetch_from(&data)).unwrap();
    check_with_reference(&p2, &infos[..2], &data[..2], &BTreeMap::new());
    assert_eq!(
        dir_entries(dir.path()),
        ["all.safetensors", "nometa.safetensors"]
    );
}

#[test]
fn f32_data_is_aligned_for_zero_copy_floats() {
    // Names of odd lengths change the header size; padding keeps data 8-byte aligned.
    for name in ["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        let infos = [info(name, DType::F32, &[4])];
        let data = [bytes(7, 16)];
        write_safetensors(&p, &infos, &BTreeMap::new(), fetch_from(&data)).unwrap();
        let ck = Checkpoint::open(&p).unwrap();
        let t = ck.tensor(name).unwrap();
        assert!(t.as_f32_slice().is_some(), "{name}");
    }
}

#[test]
fn sharding_by_size_writes_a_valid_hf_index() {
    let (infos, data) = every_dtype();
    let total: u64 = infos.iter().map(|t| t.nbytes() as u64).sum();
    let max = 64;
    let plan = plan_shards(&infos, max);
    assert!(plan.len() > 2, "the test wants several shards");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let written = write_sharded(&out, &infos, &meta(), Some(max), fetch_from(&data)).unwrap();
    let n = plan.len();
    assert_eq!(written.len(), n + 1);
    let index_path = dir.path().join("model.safetensors.index.json");
    assert_eq!(written.last().unwrap(), &index_path);
    assert!(!out.exists(), "the unsharded name is not written");

    let index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    assert_eq!(index["metadata"]["total_size"], json!(total));
    let wm = index["weight_map"].as_object().unwrap();
    assert_eq!(wm.len(), infos.len());
    for (k, idx) in plan.iter().enumerate() {
        let name = format!("model-{:05}-of-{n:05}.safetensors", k + 1);
        assert_eq!(written[k], dir.path().join(&name));
        let size: u64 = idx.iter().map(|&i| infos[i].nbytes() as u64).sum();
        assert!(
            size <= max || idx.len() == 1,
            "shard {name} holds {size} bytes"
        );
        for &i in idx {
            assert_eq!(wm[&infos[i].name], json!(name));
        }
        // Each shard is a valid file by itself, with the metadata.
        let si: Vec<TensorInfo> = idx.iter().map(|&i| infos[i].clone()).collect();
        let sd: Vec<Vec<u8>> = idx.iter().map(|&i| data[i].clone()).collect();
        check_with_reference(&written[k], &si, &sd, &meta());
    }

    // Reads back as one checkpoint, through the index and through the directory.
    for p in [&index_path, &dir.path().to_path_buf()] {
        let ck = Checkpoint::open(p).unwrap();
        assert_eq!(ck.format(), Format::ShardedSafetensors);
        assert_eq!(ck.files().len(), n);
        let names: Vec<&str> = ck.names().collect();
        assert_eq!(
            names,
            infos.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()
        );
        for (t, d) in infos.iter().zip(&data) {
            assert_eq!(&ck.tensor(&t.name).unwrap().bytes[..], &d[..]);
        }
        assert_eq!(ck.total_bytes(), total);
    }
}

#[test]
fn no_sharding_when_it_fits() {
    let (infos, data) = every_dtype();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    let written = write_sharded(&out, &infos, &meta(), Some(1 << 30), fetch_from(&data)).unwrap();
    assert_eq!(written, vec![out.clone()]);
    assert_eq!(dir_entries(dir.path()), ["model.safetensors"]);
    check_with_reference(&out, &infos, &data, &meta());
}

/// A fetch that fails on tensor `fail_at`.
fn failing<'a>(
    data: &'a [Vec<u8>],
    fail_at: usize,
) -> impl FnMut(usize) -> weightspace_io::Result<Cow<'a, [u8]>> {
    move |i| {
        if i == fail_at {
            Err(Error::invalid("source.bin", "simulated read failure").with_tensor("boom"))
        } else {
            Ok(Cow::Borrowed(&data[i][..]))
        }
    }
}

#[test]
fn failed_write_leaves_nothing_behind() {
    let (infos, data) = every_dtype();
    for fail_at in [0, 1, infos.len() / 2, infos.len() - 1] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("model.safetensors");
        let e = write_safetensors(&out, &infos, &meta(), failing(&data, fail_at)).unwrap_err();
        assert!(e.to_string().contains("simulated read failure"), "{e}");
        assert_eq!(
            dir_entries(dir.path()),
            Vec::<String>::new(),
            "fail at {fail_at}"
        );
    }
}

#[test]
fn failed_write_keeps_the_previous_file() {
    let (infos, data) = every_dtype();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    std::fs::write(&out, b"previous contents").unwrap();
    write_safetensors(&out, &infos, &meta(), failing(&data, 3)).unwrap_err();
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    assert_eq!(dir_entries(dir.path()), ["model.safetensors"]);
}

#[test]
fn failed_sharded_write_leaves_nothing_behind() {
    let (infos, data) = every_dtype();
    let plan = plan_shards(&infos, 64);
    // Fail inside the last shard: the earlier, complete shards are removed too.
    let fail_at = *plan.last().unwrap().last().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model.safetensors");
    write_sharded(&out, &infos, &meta(), Some(64), failing(&data, fail_at)).unwrap_err();
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn wrong_fetched_size_is_an_error_and_leaves_nothing() {
    let infos = [info("a", DType::F32, &[2]), info("b", DType::F16, &[3])];
    let data = [bytes(1, 8), bytes(2, 5)];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let e = write_safetensors(&out, &infos, &BTreeMap::new(), fetch_from(&data)).unwrap_err();
    assert_eq!(e.tensor.as_deref(), Some("b"));
    assert!(
        matches!(
            e.kind,
            ErrorKind::SizeMismatch {
                bytes: 5,
                expected: 6,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.path, out);
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

#[test]
fn quantised_dtypes_are_refused_before_writing() {
    let infos = [info("q", DType::Q4_0, &[32])];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.safetensors");
    let e = write_safetensors(&out, &infos, &BTreeMap::new(), |_| {
        Ok(Cow::Owned(vec![0u8; 18]))
    })
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnsupportedDType(_)), "{e}");
    assert_eq!(dir_entries(dir.path()), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// convert

/// Writes an f32 checkpoint (plus an int tensor) with values that exercise rounding.
fn f32_source(dir: &Path) -> (PathBuf, Vec<f32>) {
    let mut vals: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -2.5,
        1.0e-8,
        6.0e-8,
        65504.0,
        70000.0,
        -1.0e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1.0 + f32::EPSILON,
        0.1,
        1.0 / 3.0,
        3.0e38,
    ];
    vals.extend((0..48).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.0123));
    let infos = [
        info("w", DType::F32, &[8, 8]),
        info("ids", DType::I32, &[3]),
        info("s", DType::F32, &[]),
    ];
    let data = [
        vals.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
        [7i32, -1, 1 << 30]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        0.7f32.to_le_bytes().to_vec(),
    ];
    let p = dir.join("src.safetensors");
    write_safetensors(&p, &infos, &meta(), fetch_from(&data)).unwrap();
    (p, vals)
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

#[test]
fn convert_f32_to_f16_and_bf16_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (src, vals) = f32_source(dir.path());
    let ck = Checkpoint::open(&src).unwrap();
    type Round = fn(f32) -> f32;
    let cases: [(DType, Round); 2] = [
        (DType::F16, |v| half::f16::from_f32(v).to_f32()),
        (DType::BF16, |v| half::bf16::from_f32(v).to_f32()),
    ];
    for (dtype, round) in cases {
        let out = dir.path().join(format!("{}.safetensors", dtype.name()));
        let opts = ConvertOptions {
            dtype: Some(dtype),
            max_shard_bytes: None,
        };
        assert_eq!(convert(&ck, &out, &opts).unwrap(), vec![out.clone()]);
        let c = Checkpoint::open(&out).unwrap();
        assert_eq!(c.info("w").unwrap().dtype, dtype);
        assert_eq!(c.info("s").unwrap().dtype, dtype);
        assert_eq!(c.info("s").unwrap().shape, Vec::<usize>::new());
        // Integers keep their dtype and bytes.
        assert_eq!(c.info("ids").unwrap().dtype, DType::I32);
        assert_eq!(
            c.tensor("ids").unwrap().bytes,
            ck.tensor("ids").unwrap().bytes
        );
        let got = c.tensor_f32("w").unwrap();
        let want: Vec<f32> = vals.iter().map(|&v| round(v)).collect();
        assert!(same_bits(&got, &want), "{dtype}: {got:?}\n vs {want:?}");
        // Specific roundings: f16 overflows to inf above 65520, bf16 keeps the range.
        if dtype == DType::F16 {
            assert_eq!(got[6], 65504.0);
            assert_eq!(got[7], f32::INFINITY);
        } else {
            assert!((got[8] / -1.0e30 - 1.0).abs() < 0.01, "{}", got[8]);
            assert!(got[15].is_finite());
        }
        // Back to f32: exactly the reduced values (f16/bf16 → f32 is exact).
        let back = dir.path().join(format!("{}-f32.safetensors", dtype.name()));
        convert(
            &c,
            &back,
            &ConvertOptions {
                dtype: Some(DType::F32),
                max_shard_bytes: None,
            },
        )
        .unwrap();
        let b = Checkpoint::open(&back).unwrap();
        assert_eq!(b.info("w").unwrap().dtype, DType::F32);
        assert!(same_bits(&b.tensor_f32("w").unwrap(), &want));
        // Metadata is kept and the source format recorded.
        assert_eq!(c.metadata()["format"], json!("pt"));
        assert_eq!(c.metadata()["converted_from"], json!("safetensors"));
    }
}

#[test]
fn convert_keeps_dtypes_without_target_and_shards() {
    let dir = tempfile::tempdir().unwrap();
    let (src, _) = f32_source(dir.path());
    let ck = Checkpoint::open(&src).unwrap();
    let outdir = dir.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let out = outdir.join("model.safetensors");
    let written = convert(
        &ck,
        &out,
        &ConvertOptions {
            dtype: None,
            max_shard_bytes: Some(100),
        },
    )
    .unwrap();
    assert_eq!(written.len(), 3, "{written:?}");
    let c = Checkpoint::open(outdir.join("model.safetensors.index.json")).unwrap();
    assert_eq!(c.format(), Format::ShardedSafetensors);
    for name in ck.names() {
        let (a, b) = (ck.tensor(name).unwrap(), c.tensor(name).unwrap());
        assert_eq!((a.dtype, a.shape), (b.dtype, b.shape));
        assert_eq!(a.bytes, b.bytes, "{name}");
    }
    let idx: Value =
        serde_json::from_slice(&std::fs::read(written.last().unwrap()).unwrap()).unwrap();
    let wm: HashMap<String, String> = serde_json::from_value(idx["weight_map"].clone()).unwrap();
    assert_eq!(wm.len(), 3);
}

#[test]
fn convert_refuses_non_float_targets() {
    let dir = tempfile::tempdir().unwrap();
    let (src, _) = f32_source(dir.path());
    let ck = Checkpoint::open(&src).unwrap();
    let out = dir.path().join("i8.safetensors");
    let e = convert(
        &ck,
        &out,
        &ConvertOptions {
            dtype: Some(DType::I8),
            max_shard_bytes: None,
        },
    )
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnsupportedDType(_)), "{e}");
    assert!(!out.exists());
}
