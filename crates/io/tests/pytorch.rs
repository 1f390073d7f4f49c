//! PyTorch checkpoints (zip, legacy, TorchScript) against golden values computed by PyTorch
//! (`tests/fixtures/pytorch/make_fixtures.py`, `tests/fixtures/real/make_golden.py`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde_json::Value;
use weightspace_io::{Checkpoint, DType, ErrorKind, Format, Holds, OpenOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch")
}

fn real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real")
}

fn golden(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn dtype_of(name: &str) -> DType {
    match name {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "float16" => DType::F16,
        "bfloat16" => DType::BF16,
        "int8" => DType::I8,
        "int16" => DType::I16,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "uint8" => DType::U8,
        "uint16" => DType::U16,
        "bool" => DType::Bool,
        "float8_e4m3fn" => DType::F8_E4M3,
        "float8_e5m2" => DType::F8_E5M2,
        other => panic!("golden dtype {other}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()))
}

/// Checks one tensor of `ck` against its golden description.
fn check_tensor(ck: &Checkpoint, name: &str, g: &Value) {
    let info = ck
        .info(name)
        .unwrap_or_else(|| panic!("{}: no tensor `{name}`", ck.path().display()));
    assert_eq!(info.dtype, dtype_of(g["dtype"].as_str().unwrap()), "{name}");
    let shape: Vec<usize> = g["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(info.shape, shape, "{name}");
    let values = ck.tensor_f32(name).unwrap();
    assert_eq!(values.len(), info.numel(), "{name}");
    let sum: f64 = values.iter().map(|&v| v as f64).sum();
    let want = g["sum"].as_f64().unwrap();
    assert!(close(sum, want), "{name}: sum {sum} != {want}");
    if let Some(abs) = g.get("abs_sum") {
        let got: f64 = values.iter().map(|&v| (v as f64).abs()).sum();
        assert!(close(got, abs.as_f64().unwrap()), "{name}: abs sum {got}");
    }
    for (i, f) in g["first"].as_array().unwrap().iter().enumerate() {
        let f = f.as_f64().unwrap();
        assert!(
            close(values[i] as f64, f),
            "{name}[{i}]: {} != {f}",
            values[i]
        );
    }
}

/// Opens a fixture and checks every golden tensor, in order.
fn check_fixture(file: &str, key: &str, format: Format) -> Checkpoint {
    check_fixture_with(file, key, format, OpenOptions::default())
}

/// [`check_fixture`], opened with `opts`.
fn check_fixture_with(file: &str, key: &str, format: Format, opts: OpenOptions) -> Checkpoint {
    let g = golden(&fixtures());
    let ck = Checkpoint::open_with(fixtures().join(file), opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ck.format(), format, "{file}");
    let tensors = g[key]["tensors"].as_object().unwrap();
    let mut want: Vec<&str> = tensors.keys().map(String::as_str).collect();
    let mut got: Vec<&str> = ck.names().collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{file}: tensor names");
    for (name, t) in tensors {
        check_tensor(&ck, name, t);
    }
    ck
}

#[test]
fn zip_state_dict() {
    let ck = check_fixture("state_dict.pt", "state_dict.pt", Format::PyTorch);
    assert_eq!(
        ck.names().collect::<Vec<_>>(),
        ["0.weight", "0.bias", "2.weight", "2.bias"]
    );
    // Stored contiguous little-endian tensors are borrowed from the memory map.
    for i in 0..ck.len() {
        assert!(matches!(ck.tensor_at(i).unwrap().bytes, Cow::Borrowed(_)));
    }
}

#[test]
fn legacy_state_dict() {
    let ck = check_fixture(
        "state_dict_legacy.pt",
        "state_dict.pt",
        Format::PyTorchLegacy,
    );
    assert!(matches!(ck.tensor_at(0).unwrap().bytes, Cow::Borrowed(_)));
    // Same values as the zip file.
    let zip = Checkpoint::open(fixtures().join("state_dict.pt")).unwrap();
    assert_eq!(zip.model_hash().unwrap(), ck.model_hash().unwrap());
}

#[test]
fn training_checkpoint_zip_and_legacy() {
    let g = golden(&fixtures());
    for (file, format) in [
        ("training.pt", Format::PyTorch),
        ("training_legacy.pt", Format::PyTorchLegacy),
    ] {
        // Everything the file stores, under its stored (dotted) names.
        let all = OpenOptions {
            all: true,
            ..Default::default()
        };
        let ck = check_fixture_with(file, "training.pt", format, all);
        assert!(ck.contains("model.0.weight"));
        assert!(ck.contains("optimizer.state.0.exp_avg"));
        assert!(ck.contains("optimizer.state.3.exp_avg_sq"));
        let meta = ck.metadata();
        for (k, v) in g["training.pt"]["metadata"].as_object().unwrap() {
            let got = meta
                .get(k)
                .unwrap_or_else(|| panic!("{file}: metadata `{k}` missing: {meta:?}"));
            match (got.as_f64(), v.as_f64()) {
                (Some(a), Some(b)) => assert!(close(a, b), "{file}: `{k}` {a} != {b}"),
                _ => assert_eq!(got, v, "{file}: `{k}`"),
            }
        }
        assert_eq!(meta["device"], "torch.device('cpu')");
        assert_eq!(meta["optimizer.param_groups.0.amsgrad"], false);
    }
}

fn open_opts(file: &str, opts: OpenOptions) -> weightspace_io::Result<Checkpoint> {
    Checkpoint::open_with(fixtures().join(file), opts)
}

#[test]
fn training_checkpoint_shows_the_model_and_counts_the_optimizer_apart() {
    let g = golden(&fixtures());
    for file in ["training.pt", "training_legacy.pt"] {
        let ck = open_opts(file, OpenOptions::default()).unwrap();
        // The model's parameters only, with the `model.` prefix removed.
        assert_eq!(
            ck.names().collect::<Vec<_>>(),
            ["0.weight", "0.bias", "2.weight", "2.bias"],
            "{file}"
        );
        check_tensor(&ck, "2.bias", &g["training.pt"]["tensors"]["model.2.bias"]);
        // The stored name still finds the tensor.
        assert_eq!(ck.resolve("model.0.weight"), Some("0.weight"));
        assert_eq!(ck.alias("0.weight").unwrap().name, "model.0.weight");
        // Top-level keys and what each holds; the optimizer is counted, not presented.
        let sec = |k: &str| ck.sections().iter().find(|s| s.key == k).unwrap().clone();
        assert!(sec("model").selected);
        assert_eq!(
            sec("model").holds,
            Holds::Tensors {
                count: 4,
                params: 23
            }
        );
        let opt = sec("optimizer");
        assert!(!opt.selected && opt.is_optimizer());
        // Adam: exp_avg and exp_avg_sq per parameter (step is a tensor too in torch 2.x).
        let Holds::Tensors { count, params } = opt.holds else {
            panic!("{file}: optimizer holds {:?}", opt.holds)
        };
        assert!(count >= 8 && params >= 46, "{file}: {count} {params}");
        assert_eq!(sec("epoch").holds, Holds::Value(3.into()));
        assert_eq!(sec("name").holds, Holds::Value("run-1".into()));
        assert_eq!(sec("losses").holds, Holds::Values(2));

        // --key optimizer: its tensors, prefix removed.
        let ck = open_opts(
            file,
            OpenOptions {
                key: Some("optimizer".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(ck.len(), count);
        assert!(ck.contains("state.0.exp_avg"), "{file}");
        assert!(ck.names().all(|n| n.starts_with("state.")));
    }
    // A plain state dict is unchanged, and has no sections; --key leaves it as it is.
    let ck = open_opts("state_dict.pt", OpenOptions::default()).unwrap();
    assert!(ck.sections().is_empty());
    assert_eq!(ck.names().next(), Some("0.weight"));
    let keyed = open_opts(
        "state_dict.pt",
        OpenOptions {
            key: Some("model".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        keyed.names().collect::<Vec<_>>(),
        ck.names().collect::<Vec<_>>()
    );
}

#[test]
fn two_candidate_state_dicts_are_refused_without_key() {
    let e = open_opts("two_models.pt", OpenOptions::default()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Selection(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("`student`") && msg.contains("`teacher`") && msg.contains("--key"),
        "{msg}"
    );
    assert!(!msg.contains("`optimizer`"), "{msg}");
    let ck = open_opts(
        "two_models.pt",
        OpenOptions {
            key: Some("teacher".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        ck.names().collect::<Vec<_>>(),
        ["0.weight", "0.bias", "2.weight", "2.bias"]
    );
    assert!(
        ck.sections()
            .iter()
            .any(|s| s.key == "teacher" && s.selected)
    );
    // --all: everything, stored names.
    let ck = open_opts(
        "two_models.pt",
        OpenOptions {
            all: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(ck.contains("student.0.weight") && ck.contains("optimizer.state.0.exp_avg"));
    // A key that holds no tensor names the keys that do.
    let e = open_opts(
        "two_models.pt",
        OpenOptions {
            key: Some("step".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("`teacher`"), "{e}");
}

#[test]
fn include_exclude_strip_and_rename() {
    let open = |o: OpenOptions| open_opts("state_dict.pt", o);
    let ck = open(OpenOptions {
        include: vec!["*.weight".into()],
        exclude: vec!["2.*".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ck.names().collect::<Vec<_>>(), ["0.weight"]);
    let ck = open(OpenOptions {
        strip_prefix: vec!["0.".into()],
        rename: vec![("2.".into(), "fc2.".into())],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        ck.names().collect::<Vec<_>>(),
        ["weight", "bias", "fc2.weight", "fc2.bias"]
    );
    assert_eq!(ck.resolve("2.weight"), Some("fc2.weight"));
    assert_eq!(
        ck.tensor_f32("fc2.weight").unwrap(),
        Checkpoint::open(fixtures().join("state_dict.pt"))
            .unwrap()
            .tensor_f32("2.weight")
            .unwrap()
    );
    // Globs match the names after renaming.
    let ck = open(OpenOptions {
        rename: vec![("2.".into(), "fc2.".into())],
        include: vec!["fc2.*".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ck.len(), 2);
    // Two tensors becoming one name: an error naming both.
    let e = open(OpenOptions {
        rename: vec![("0.".into(), "".into()), ("2.".into(), "".into())],
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Selection(_)));
    let msg = e.to_string();
    assert!(
        msg.contains("`0.weight`") && msg.contains("`2.weight`"),
        "{msg}"
    );
    // ... unless one is left out (globs match the name before renaming too).
    let ck = open(OpenOptions {
        rename: vec![("0.".into(), "".into()), ("2.".into(), "".into())],
        exclude: vec!["2.*".into()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ck.names().collect::<Vec<_>>(), ["weight", "bias"]);
    assert_eq!(ck.resolve("0.bias"), Some("bias"));
    // An empty name is refused.
    let e = open(OpenOptions {
        rename: vec![("0.bias".into(), "".into())],
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("empty name"), "{e}");
    // Selecting nothing is an error saying so.
    let e = open(OpenOptions {
        include: vec!["nothing*".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("select no tensor"), "{e}");
    let e = open(OpenOptions {
        include: vec!["[".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("not a glob pattern"), "{e}");
}

#[test]
fn views_offsets_strides_and_shared_storages() {
    for (file, format) in [
        ("views.pt", Format::PyTorch),
        ("views_legacy.pt", Format::PyTorchLegacy),
        ("deflated.pt", Format::PyTorch),
    ] {
        let ck = check_fixture(file, "views.pt", format);
        let base = ck.tensor_f32("base").unwrap();
        // The transpose gathers the shared storage in the new row-major order.
        let t = ck.tensor_f32("t").unwrap();
        for i in 0..6 {
            for j in 0..4 {
                assert_eq!(t[i * 4 + j], base[j * 6 + i], "{file}");
            }
        }
        assert_eq!(ck.tensor_f32("col").unwrap(), vec![2.0, 8.0, 14.0, 20.0]);
        assert_eq!(
            ck.tensor_f32("rows").unwrap(),
            (6..18).map(|v| v as f32).collect::<Vec<_>>()
        );
        assert_eq!(ck.tensor_f32("scalar").unwrap(), vec![23.0]);
        assert_eq!(ck.info("scalar").unwrap().shape, Vec::<usize>::new());
        assert_eq!(ck.tensor_f32("empty").unwrap(), Vec::<f32>::new());
        assert_eq!(ck.info("empty").unwrap().shape, vec![0, 6]);
        assert_eq!(
            ck.tensor_f32("expanded").unwrap(),
            vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0]
        );
        let again = ck.tensor("again").unwrap();
        assert_eq!(again.bytes, ck.tensor("base").unwrap().bytes);
    }
}

#[test]
fn parameters_and_tensor_subclass_rebuilds() {
    let ck = check_fixture("rebuild.pt", "rebuild.pt", Format::PyTorch);
    assert_eq!(
        ck.names().collect::<Vec<_>>(),
        [
            "param",
            "param_state",
            "tensor_attr",
            "pair.0",
            "pair.1",
            "by_int.7"
        ]
    );
}

#[test]
fn dtypes() {
    let ck = check_fixture("dtypes.pt", "dtypes.pt", Format::PyTorch);
    assert_eq!(ck.info("f8e4m3").unwrap().dtype, DType::F8_E4M3);
    assert_eq!(ck.tensor("bool").unwrap().bytes.as_ref(), &[1, 0, 1]);
    assert_eq!(ck.tensor("i64").unwrap().bytes.len(), 16);
    let g = golden(&fixtures());
    let ck = Checkpoint::open(fixtures().join("dtypes_legacy.pt")).unwrap();
    for (name, t) in g["dtypes.pt"]["tensors"].as_object().unwrap() {
        if ck.contains(name) {
            check_tensor(&ck, name, t);
        }
    }
    assert_eq!(ck.len(), 10);
}

#[test]
fn big_endian_storages_are_swapped() {
    let ck = check_fixture("bigendian.pt", "bigendian.pt", Format::PyTorch);
    assert_eq!(ck.tensor_f32("w").unwrap(), vec![1.0, 3.0, 2.0, 4.0]);
    // Bytes handed out are little-endian.
    assert_eq!(
        ck.tensor("i").unwrap().bytes.as_ref(),
        &[1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff]
    );
}

#[test]
fn custom_archive_prefix() {
    check_fixture("prefix.pt", "prefix.pt", Format::PyTorch);
}

#[test]
fn torchscript_module() {
    let ck = check_fixture("script.pt", "script.pt", Format::TorchScript);
    // Attribute order of the module object (its own tensors before its submodules).
    assert_eq!(
        ck.names().collect::<Vec<_>>(),
        ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    );
    assert!(!ck.contains("cache"));
    assert_eq!(ck.metadata()["gain"], 1.5);
    assert!(
        ck.metadata()["torchscript.class"]
            .as_str()
            .unwrap()
            .starts_with("__torch__.")
    );
}

#[test]
fn old_torchscript_layout_is_refused_clearly() {
    let e = Checkpoint::open(fixtures().join("old_torchscript.pt")).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("model.json"), "{e}");
}

#[test]
fn unsupported_dtypes_name_the_tensor() {
    for (file, tensor) in [("complex.pt", "z"), ("qint.pt", "q")] {
        let e = Checkpoint::open(fixtures().join(file)).unwrap_err();
        assert!(
            matches!(e.kind, ErrorKind::UnsupportedDType(_)),
            "{file}: {e}"
        );
        assert_eq!(e.tensor.as_deref(), Some(tensor), "{file}: {e}");
    }
}

#[test]
fn hostile_globals_are_refused() {
    let g = golden(&fixtures());
    let hostile = g["hostile"].as_object().unwrap();
    assert_eq!(hostile.len(), 9);
    for (file, want) in hostile {
        let e = Checkpoint::open(fixtures().join(file)).unwrap_err();
        match &e.kind {
            ErrorKind::ForbiddenGlobal { module, name } => {
                assert_eq!(module, want[0].as_str().unwrap(), "{file}");
                assert_eq!(name, want[1].as_str().unwrap(), "{file}");
            }
            _ => panic!("{file}: expected ForbiddenGlobal, got {e}"),
        }
        let msg = e.to_string();
        assert!(msg.contains(file.as_str()), "{msg}");
        assert!(msg.contains("nothing was executed"), "{msg}");
    }
}

/// Writes `bytes` into a fresh temporary file.
fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    f
}

/// A legacy stream around an arbitrary object pickle (protocol 2 opcodes).
fn legacy_with(object_pickle: &[u8]) -> Vec<u8> {
    let mut v = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    v.extend_from_slice(b"\x80\x02M\xe9\x03.");
    v.extend_from_slice(b"\x80\x02}X\x0d\x00\x00\x00little_endian\x88s.");
    v.extend_from_slice(object_pickle);
    v
}

#[test]
fn crafted_globals_in_legacy_streams() {
    for (m, n) in [
        ("os", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("subprocess", "Popen"),
        ("__builtin__", "eval"),
        ("posix", "system"),
        ("nt", "system"),
        ("builtins", "getattr"),
        ("torch", "load"),
        ("torch._utils", "_rebuild_nonexistent"),
        ("__torch__.Net", "Net"),
    ] {
        // STACK_GLOBAL (protocol 4 style).
        let mut p = b"\x80\x04".to_vec();
        for s in [m, n] {
            p.push(0x8c);
            p.push(s.len() as u8);
            p.extend_from_slice(s.as_bytes());
        }
        p.extend_from_slice(b"\x93X\x02\x00\x00\x00ls\x85R.");
        let f = temp_file(&legacy_with(&p));
        let e = Checkpoint::open(f.path()).unwrap_err();
        assert!(
            matches!(&e.kind, ErrorKind::ForbiddenGlobal { module, name } if module == m && name == n),
            "{m}.{n}: {e}"
        );
    }
}

#[test]
fn plain_pickles_and_tar_checkpoints_are_refused_clearly() {
    // A pickle that is not a torch.save stream.
    let f = temp_file(b"\x80\x02}q\x00.");
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::UnknownFormat(_)), "{e}");
    // An old tar-format checkpoint.
    let mut tar = vec![0u8; 1024];
    tar[..8].copy_from_slice(b"sys_info");
    tar[257..262].copy_from_slice(b"ustar");
    let f = temp_file(&tar);
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("tar"), "{e}");
}

#[test]
fn deep_nesting_and_huge_lengths_are_errors() {
    // 100k nested lists: the interpreter has no recursion; flattening stops at its depth cap.
    let mut p = b"\x80\x02".to_vec();
    p.extend(std::iter::repeat_n(b']', 100_000));
    p.extend(std::iter::repeat_n(b'a', 99_999));
    p.push(b'.');
    p.extend_from_slice(b"\x80\x02].");
    let f = temp_file(&legacy_with(&p));
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Pickle(_)), "{e}");
    // A string claiming 4 GiB.
    let f = temp_file(&legacy_with(b"\x80\x02X\xff\xff\xff\xffab"));
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated(_)), "{e}");
    // A list that contains itself.
    let f = temp_file(&legacy_with(b"\x80\x02]q\x00h\x00a.\x80\x02]."));
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Pickle(_)), "{e}");
}

/// A legacy stream with one tensor `w` of `shape`/`stride` over a 2-element f32 storage.
fn legacy_tensor(shape: &[u8], stride: &[u8]) -> Vec<u8> {
    let tuple = |v: &[u8]| {
        let mut t = vec![b'('];
        for &x in v {
            t.push(b'J');
            t.extend_from_slice(&(x as u32).to_le_bytes());
        }
        t.push(b't');
        t
    };
    let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02NtQK\x00");
    p.extend(tuple(shape));
    p.extend(tuple(stride));
    p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtRs.");
    let mut v = legacy_with(&p);
    v.extend_from_slice(b"\x80\x02]X\x01\x00\x00\x000a.");
    v.extend_from_slice(&2u64.to_le_bytes());
    v.extend_from_slice(&1.5f32.to_le_bytes());
    v.extend_from_slice(&(-2.0f32).to_le_bytes());
    v
}

#[test]
fn oldest_legacy_rebuild_and_storage_views() {
    // torch < 1.0: `_rebuild_tensor(storage, offset, size, stride)` over a storage *view*
    // ('storage', type, root key, location, root numel, (view key, offset, size)).
    let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor\n(".to_vec();
    p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000");
    p.extend_from_slice(b"X\x03\x00\x00\x00cpuK\x04(X\x01\x00\x00\x001K\x01K\x02ttQ");
    p.extend_from_slice(b"K\x01K\x01\x85K\x01\x85tRs.");
    let mut v = legacy_with(&p);
    v.extend_from_slice(b"\x80\x02]X\x01\x00\x00\x000a.");
    v.extend_from_slice(&4u64.to_le_bytes());
    for x in [1.0f32, 2.0, 3.0, 4.0] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let f = temp_file(&v);
    let ck = Checkpoint::open(f.path()).unwrap();
    // The view starts at element 1 of the root storage; the tensor at element 1 of the view.
    assert_eq!(ck.tensor_f32("w").unwrap(), vec![3.0]);
    assert_eq!(ck.info("w").unwrap().shape, vec![1]);
    // A view beyond its root storage is an error naming the tensor.
    let at = v.windows(4).position(|w| w == b"K\x01K\x02").unwrap();
    v[at + 3] = 9;
    let f = temp_file(&v);
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::OffsetOutOfBounds { .. }), "{e}");
    assert_eq!(e.tensor.as_deref(), Some("w"));
}

#[test]
fn expanded_views_are_bounded() {
    // A small expand is fine.
    let f = temp_file(&legacy_tensor(&[3, 2], &[0, 1]));
    let ck = Checkpoint::open(f.path()).unwrap();
    assert_eq!(
        ck.tensor_f32("w").unwrap(),
        vec![1.5, -2.0, 1.5, -2.0, 1.5, -2.0]
    );
    // A stride-0 view claiming 2^31 x 2^31 elements of 8 bytes of storage is refused up front.
    let mut v = legacy_tensor(&[1, 1], &[0, 0]);
    let at = v.windows(5).position(|w| w == b"(J\x01\x00\x00").unwrap();
    v[at + 2..at + 6].copy_from_slice(&i32::MAX.to_le_bytes());
    v[at + 7..at + 11].copy_from_slice(&i32::MAX.to_le_bytes());
    let f = temp_file(&v);
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)), "{e}");
    assert_eq!(e.tensor.as_deref(), Some("w"));
}

#[test]
fn many_references_to_a_large_value_are_bounded() {
    // One 1 MiB string referenced 2^20 times: metadata would be 1 TiB without limits.
    let mut p = b"\x80\x02]q\x00X\x00\x00\x10\x00".to_vec();
    p.extend(std::iter::repeat_n(b'x', 1 << 20));
    p.extend_from_slice(b"q\x01(");
    for _ in 0..(1 << 20) {
        p.extend_from_slice(b"h\x01");
    }
    p.extend_from_slice(b"e0h\x00.\x80\x02].");
    let f = temp_file(&legacy_with(&p));
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Pickle(_)), "{e}");
}

#[test]
fn out_of_bounds_views_are_errors() {
    // A legacy stream whose tensor claims 4 elements of a 2-element storage.
    let mut p = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
    p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02Ntq\x00Q");
    p.extend_from_slice(b"K\x00K\x04\x85K\x01\x85\x89ccollections\nOrderedDict\n)Rtq\x01Rs.");
    let mut v = legacy_with(&p);
    v.extend_from_slice(b"\x80\x02]X\x01\x00\x00\x000a.");
    v.extend_from_slice(&2u64.to_le_bytes());
    v.extend_from_slice(&[0u8; 8]);
    let f = temp_file(&v);
    let e = Checkpoint::open(f.path()).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::OffsetOutOfBounds { .. }), "{e}");
    assert_eq!(e.tensor.as_deref(), Some("w"));
    // The same with a 2-element view: fine.
    let p2: Vec<u8> = {
        let mut q = p.clone();
        let at = q.windows(3).position(|w| w == b"K\x04\x85").unwrap();
        q[at + 1] = 2;
        q
    };
    let mut v = legacy_with(&p2);
    v.extend_from_slice(b"\x80\x02]X\x01\x00\x00\x000a.");
    v.extend_from_slice(&2u64.to_le_bytes());
    v.extend_from_slice(&1.5f32.to_le_bytes());
    v.extend_from_slice(&(-2.0f32).to_le_bytes());
    let f = temp_file(&v);
    let ck = Checkpoint::open(f.path()).unwrap();
    assert_eq!(ck.tensor_f32("w").unwrap(), vec![1.5, -2.0]);
}

#[test]
fn real_legacy_checkpoint_facenet_pnet() {
    let g = golden(&real());
    let ck = Checkpoint::open(real().join("pnet.pt")).unwrap();
    assert_eq!(ck.format(), Format::PyTorchLegacy);
    let tensors = g["pnet.pt"]["tensors"].as_object().unwrap();
    assert_eq!(ck.len(), tensors.len());
    assert_eq!(ck.len(), 13);
    for (name, t) in tensors {
        check_tensor(&ck, name, t);
    }
}

#[test]
fn real_torchscript_silero_vad() {
    let g = golden(&real());
    let ck = Checkpoint::open(real().join("silero_vad.jit")).unwrap();
    assert_eq!(ck.format(), Format::TorchScript);
    let tensors = g["silero_vad.jit"]["tensors"].as_object().unwrap();
    assert_eq!(tensors.len(), 30);
    for (name, t) in tensors {
        check_tensor(&ck, name, t);
    }
    // Exactly state_dict(): parameters and buffers (from `__parameters__`/`__buffers__` in the
    // archive's code/), not the tensor attributes that cache the RNN state.
    assert_eq!(ck.len(), 30);
    assert!(!ck.contains("_state") && !ck.contains("_context"));
    // Other attributes are metadata.
    assert_eq!(ck.metadata()["_model.sample_rate"], 16000);
    assert_eq!(ck.metadata()["sample_rates.1"], 16000);
}
