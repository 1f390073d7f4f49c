//! The `weightspace` binary, run as a user runs it: JSON output shapes (the public contract in
//! the README), CSV/Parquet tables, conversion, exit codes (2 for bad input or usage, with a
//! message naming the file and nothing written) and the quickstart tour.
//!
//! `fixtures/stats.safetensors` and its numpy goldens `fixtures/stats_golden.json` are written
//! by `fixtures/make_stats_golden.py`; other inputs are made here with `weightspace-io`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use weightspace_io::{Checkpoint, DType, write_f32_safetensors};

const BIN: &str = env!("CARGO_BIN_EXE_weightspace");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run weightspace")
}

fn run_p(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(BIN)
        .args(args.iter().map(|a| a.as_ref()))
        .env_remove("RUST_LOG")
        .output()
        .expect("run weightspace")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs, asserts exit 0, parses stdout as JSON.
fn json_of(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Value {
    let o = run_p(args);
    assert!(o.status.success(), "{:?}: {}", o.status, stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set(ks: &[&'static str]) -> BTreeSet<&'static str> {
    ks.iter().copied().collect()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes an f32 safetensors file of (name, shape, values).
fn write_f32(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let meta = BTreeMap::from([("made_by".to_string(), "cli.rs".to_string())]);
    write_f32_safetensors(path, tensors, &meta).unwrap();
}

const STATS_KEYS: [&str; 16] = [
    "name", "dtype", "shape", "count", "mean", "std", "min", "q25", "median", "q75", "max", "l2",
    "abs_mean", "sparsity", "nan", "inf",
];

// ---------------------------------------------------------------------------------------------
// JSON contracts

#[test]
fn inspect_json_contract() {
    let p = fixture("stats.safetensors");
    let v = json_of(&[&"inspect", &"--json", &p]);
    assert_eq!(
        keys(&v),
        set(&[
            "path",
            "format",
            "total_params",
            "total_bytes",
            "metadata",
            "tensors"
        ])
    );
    assert_eq!(v["path"], json!(p.display().to_string()));
    assert_eq!(v["format"], json!("safetensors"));
    assert_eq!(v["metadata"], json!({"purpose": "cli stats goldens"}));
    let golden = stats_golden();
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), golden.len());
    let (mut params, mut bytes) = (0, 0);
    for t in tensors {
        assert_eq!(
            keys(t),
            set(&["name", "dtype", "shape", "params", "bytes"]),
            "{t}"
        );
        let g = &golden[t["name"].as_str().unwrap()];
        assert_eq!(t["dtype"], g["dtype"]);
        assert_eq!(t["shape"], g["shape"]);
        assert_eq!(t["params"], g["count"]);
        let size = DType::from_name(g["dtype"].as_str().unwrap())
            .unwrap()
            .size()
            .unwrap() as u64;
        assert_eq!(t["bytes"], json!(g["count"].as_u64().unwrap() * size));
        params += t["params"].as_u64().unwrap();
        bytes += t["bytes"].as_u64().unwrap();
    }
    assert_eq!(v["total_params"], json!(params));
    assert_eq!(v["total_bytes"], json!(bytes));
    // Tensors in file (data) order, like the library.
    let ck = Checkpoint::open(&p).unwrap();
    let names: Vec<&str> = tensors
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ck.names().collect::<Vec<_>>());

    // Human output mentions every tensor.
    let o = run_p(&[&"inspect", &p]);
    assert!(o.status.success());
    for n in names {
        assert!(stdout(&o).contains(n), "{n}");
    }
}

fn stats_golden() -> BTreeMap<String, Value> {
    serde_json::from_str(&std::fs::read_to_string(fixture("stats_golden.json")).unwrap()).unwrap()
}

/// `a` (weightspace) against numpy's `b`: null ↔ NaN, and null ↔ "inf"/"-inf" (JSON has no
/// infinity; serde_json writes non-finite floats as null); exact for order statistics and
/// sparsity, close for sums (we accumulate f32 blocks in f64; numpy sums pairwise in f64).
fn close(stat: &str, a: &Value, b: &Value, scale: f64) -> bool {
    if b.is_string() {
        return a.is_null();
    }
    match (a.as_f64(), b.as_f64()) {
        (None, None) => a.is_null() && b.is_null(),
        (Some(x), Some(y)) => match stat {
            "min" | "max" | "q25" | "median" | "q75" | "sparsity" => x == y,
            _ => (x - y).abs() <= 1e-6 * scale.max(y.abs()).max(1e-30),
        },
        _ => false,
    }
}

/// Two renderings of one f64 (Rust's Display in CSV, ryu in JSON) parsed back: equal up to the
/// last-ulp slack of serde_json's default (not round-trip exact) float parser.
fn same_f64(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 4.0 * f64::EPSILON * a.abs().max(b.abs())
}

#[test]
fn stats_json_matches_numpy() {
    let golden = stats_golden();
    let v = json_of(&[&"stats", &"--json", &fixture("stats.safetensors")]);
    assert_eq!(keys(&v), set(&["tensors"]));
    let rows = v["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), golden.len());
    for r in rows {
        assert_eq!(keys(r), set(&STATS_KEYS), "{r}");
        let name = r["name"].as_str().unwrap();
        let g = &golden[name];
        for k in ["dtype", "shape", "count", "nan", "inf"] {
            assert_eq!(r[k], g[k], "{name}.{k}");
        }
        let scale = g["abs_mean"]
            .as_f64()
            .unwrap_or(1.0)
            .max(g["std"].as_f64().unwrap_or(0.0));
        for k in [
            "mean", "std", "min", "q25", "median", "q75", "max", "l2", "abs_mean", "sparsity",
        ] {
            assert!(
                close(k, &r[k], &g[k], scale),
                "{name}.{k}: weightspace {} numpy {}",
                r[k],
                g[k]
            );
        }
    }
    // The fixture covers the edge cases the goldens are about.
    assert_eq!(golden["with_nan"]["nan"], json!(1));
    assert!(golden["with_nan"]["mean"].is_null());
    assert_eq!(golden["with_inf"]["inf"], json!(1));
    assert_eq!(golden["empty"]["count"], json!(0));
    assert!(golden["sparse"]["sparsity"].as_f64().unwrap() > 0.5);
}

#[test]
fn stats_csv_and_parquet_hold_the_same_rows() {
    let p = fixture("stats.safetensors");
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("stats.parquet");
    let json_rows = json_of(&[&"stats", &"--json", &p])["tensors"].clone();
    let json_rows = json_rows.as_array().unwrap();

    let o = run_p(&[&"stats", &"--csv", &"--parquet", &pq, &p]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = stdout(&o);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header,
        [
            "name", "dtype", "shape", "count", "mean", "std", "min", "q25", "median", "q75", "max",
            "l2", "abs_mean", "sparsity", "nan", "inf"
        ]
    );
    let body: Vec<&str> = lines.collect();
    assert_eq!(body.len(), json_rows.len());
    for (line, r) in body.iter().zip(json_rows) {
        // Shapes like "[64,33]" are quoted because of the comma.
        let shape = r["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let prefix = if r["shape"].as_array().unwrap().len() > 1 {
            format!(
                "{},{},\"[{shape}]\",",
                r["name"].as_str().unwrap(),
                r["dtype"].as_str().unwrap()
            )
        } else {
            format!(
                "{},{},[{shape}],",
                r["name"].as_str().unwrap(),
                r["dtype"].as_str().unwrap()
            )
        };
        assert!(line.starts_with(&prefix), "{line} vs {prefix}");
        let rest: Vec<&str> = line[prefix.len()..].split(',').collect();
        assert_eq!(rest.len(), 13, "{line}");
        for (k, cell) in [
            "count", "mean", "std", "min", "q25", "median", "q75", "max", "l2", "abs_mean",
            "sparsity", "nan", "inf",
        ]
        .iter()
        .zip(rest)
        {
            let want = &r[*k];
            let got: f64 = cell.parse().unwrap();
            match want.as_f64() {
                // Null in JSON: NaN or an infinity, which CSV writes out.
                None => assert!(!got.is_finite(), "{line}: {k}"),
                Some(w) => assert!(same_f64(got, w), "{line}: {k}: {got} vs {w}"),
            }
        }
    }
    // Infinities are spelled out in CSV (shape [11] has no comma, so cells line up).
    let inf_line = body.iter().find(|l| l.starts_with("with_inf,")).unwrap();
    let cells: Vec<&str> = inf_line.split(',').collect();
    let at = |c: &str| cells[header.iter().position(|h| *h == c).unwrap()];
    assert_eq!((at("max"), at("mean"), at("std")), ("inf", "inf", "NaN"));

    // Parquet: same columns and values.
    use arrow::array::{Array, Float64Array, StringArray, UInt64Array};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = std::fs::File::open(&pq).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let cols: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(cols, header);
    assert_eq!(batch.num_rows(), json_rows.len());
    let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
    let names = col("name");
    let names = names.as_any().downcast_ref::<StringArray>().unwrap();
    for (i, r) in json_rows.iter().enumerate() {
        assert_eq!(names.value(i), r["name"].as_str().unwrap());
        for k in ["count", "nan", "inf"] {
            let c = col(k);
            let c = c.as_any().downcast_ref::<UInt64Array>().unwrap();
            assert_eq!(c.value(i), r[k].as_u64().unwrap(), "{k}");
        }
        for k in [
            "mean", "std", "min", "q25", "median", "q75", "max", "l2", "abs_mean", "sparsity",
        ] {
            let c = col(k);
            let c = c.as_any().downcast_ref::<Float64Array>().unwrap();
            assert!(!c.is_null(i));
            match r[k].as_f64() {
                None => assert!(!c.value(i).is_finite(), "{k}"),
                Some(w) => assert!(same_f64(c.value(i), w), "{k}: {} vs {w}", c.value(i)),
            }
        }
    }
}

/// A and B for diff/hash: one tensor changed, one identical, one reshaped, one only in each.
fn diff_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("a.safetensors");
    let b = dir.join("b.safetensors");
    write_f32(
        &a,
        &[
            ("same", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            ("changed", vec![3], vec![1.0, 0.0, 0.0]),
            ("reshaped", vec![2, 3], vec![0.5; 6]),
            ("only_a", vec![1], vec![9.0]),
            ("zero", vec![2], vec![0.0, 0.0]),
        ],
    );
    write_f32(
        &b,
        &[
            ("same", vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
            ("changed", vec![3], vec![0.0, 3.0, -4.0]),
            ("reshaped", vec![3, 2], vec![0.5; 6]),
            ("only_b", vec![1], vec![8.0]),
            ("zero", vec![2], vec![0.0, 1.0]),
        ],
    );
    (a, b)
}

#[test]
fn diff_json_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = diff_pair(dir.path());
    let v = json_of(&[&"diff", &"--json", &a, &b]);
    assert_eq!(
        keys(&v),
        set(&["a", "b", "only_in_a", "only_in_b", "shared"])
    );
    assert_eq!(v["a"], json!(a.display().to_string()));
    assert_eq!(v["b"], json!(b.display().to_string()));
    assert_eq!(v["only_in_a"], json!(["only_a"]));
    assert_eq!(v["only_in_b"], json!(["only_b"]));
    let shared: BTreeMap<&str, &Value> = v["shared"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d))
        .collect();
    assert_eq!(
        shared.keys().copied().collect::<Vec<_>>(),
        ["changed", "reshaped", "same", "zero"]
    );
    for d in shared.values() {
        assert_eq!(
            keys(d),
            set(&[
                "name",
                "shape_a",
                "shape_b",
                "dtype_a",
                "dtype_b",
                "shape_equal",
                "dtype_equal",
                "identical",
                "l2",
                "cosine",
                "max_abs"
            ]),
            "{d}"
        );
    }
    let s = shared["same"];
    assert_eq!(
        (&s["identical"], &s["l2"], &s["cosine"], &s["max_abs"]),
        (&json!(true), &json!(0.0), &json!(1.0), &json!(0.0))
    );
    // changed: a = (1,0,0), b = (0,3,-4): |a-b| = sqrt(1+9+16), cos = 0, max |d| = 4.
    let c = shared["changed"];
    assert_eq!(c["identical"], json!(false));
    assert_eq!(c["shape_equal"], json!(true));
    assert_eq!(c["dtype_equal"], json!(true));
    assert_eq!(c["l2"], json!(26f64.sqrt()));
    assert_eq!(c["cosine"], json!(0.0));
    assert_eq!(c["max_abs"], json!(4.0));
    // reshaped: shapes differ, no numbers.
    let r = shared["reshaped"];
    assert_eq!(
        (&r["shape_a"], &r["shape_b"], &r["shape_equal"]),
        (&json!([2, 3]), &json!([3, 2]), &json!(false))
    );
    assert!(r["l2"].is_null() && r["cosine"].is_null() && r["max_abs"].is_null());
    // A zero vector has no cosine.
    assert!(shared["zero"]["cosine"].is_null());
    assert_eq!(shared["zero"]["l2"], json!(1.0));
}

#[test]
fn hash_json_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = diff_pair(dir.path());
    let a2 = dir.path().join("a-copy.safetensors");
    std::fs::copy(&a, &a2).unwrap();
    let v = json_of(&[&"hash", &"--json", &a, &b, &a2]);
    assert_eq!(keys(&v), set(&["files", "duplicates"]));
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        assert_eq!(keys(f), set(&["path", "model_hash", "tensors"]));
        assert_eq!(f["model_hash"].as_str().unwrap().len(), 64);
        for t in f["tensors"].as_array().unwrap() {
            assert_eq!(keys(t), set(&["name", "hash", "bytes"]));
        }
    }
    assert_eq!(files[0]["path"], json!(a.display().to_string()));
    assert_eq!(files[0]["model_hash"], files[2]["model_hash"]);
    assert_ne!(files[0]["model_hash"], files[1]["model_hash"]);
    let dups = v["duplicates"].as_array().unwrap();
    for d in dups {
        assert_eq!(keys(d), set(&["hash", "bytes", "occurrences"]));
    }
    // "same" appears in all three files; "reshaped" has equal bytes but different shapes, so
    // only A and its copy share it.
    let occ = |name: &str| -> Vec<Vec<String>> {
        let d = dups
            .iter()
            .find(|d| {
                d["occurrences"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|o| o[1] == json!(name) && o[0] == json!(a.display().to_string()))
            })
            .unwrap_or_else(|| panic!("{name} not duplicated: {v}"));
        serde_json::from_value(d["occurrences"].clone()).unwrap()
    };
    assert_eq!(occ("same").len(), 3);
    assert_eq!(occ("same")[1][0], b.display().to_string());
    let reshaped = occ("reshaped");
    assert_eq!(reshaped.len(), 2);
    assert!(
        reshaped
            .iter()
            .all(|o| o[1] == "reshaped" && o[0] != b.display().to_string())
    );
}

// ---------------------------------------------------------------------------------------------
// convert

#[test]
fn convert_to_f16_and_sharded() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("stats.safetensors");
    let out = dir.path().join("half.safetensors");
    let o = run_p(&[&"convert", &src, &"-o", &out, &"--dtype", &"f16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("half.safetensors"));
    let a = Checkpoint::open(&src).unwrap();
    let h = Checkpoint::open(&out).unwrap();
    assert_eq!(a.len(), h.len());
    for t in a.infos() {
        let ht = h.info(&t.name).unwrap();
        assert_eq!(ht.shape, t.shape);
        if t.dtype.is_float() {
            assert_eq!(ht.dtype, DType::F16, "{}", t.name);
            let want: Vec<u32> = a
                .tensor_f32(&t.name)
                .unwrap()
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32().to_bits())
                .collect();
            let got: Vec<u32> = h
                .tensor_f32(&t.name)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            assert_eq!(got, want, "{}", t.name);
        } else {
            assert_eq!(ht.dtype, t.dtype, "{}", t.name);
        }
    }

    // Sharded into an existing directory: DIR/model-0000k-of-0000n.safetensors + index.
    let sdir = dir.path().join("sharded");
    std::fs::create_dir(&sdir).unwrap();
    let o = run_p(&[&"convert", &src, &"-o", &sdir, &"--max-shard-size", &"30kB"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files = dir_entries(&sdir);
    assert!(files.len() >= 4, "{files:?}");
    assert!(files.contains(&"model.safetensors.index.json".to_string()));
    let n = files.len() - 1;
    for (k, f) in files[..n].iter().enumerate() {
        assert_eq!(f, &format!("model-{:05}-of-{n:05}.safetensors", k + 1));
        // At most 30 kB of tensor data, or a single tensor larger than that.
        let shard = Checkpoint::open(sdir.join(f)).unwrap();
        assert!(shard.total_bytes() <= 30_000 || shard.len() == 1, "{f}");
    }
    let s = Checkpoint::open(&sdir).unwrap();
    for name in a.names() {
        assert_eq!(
            a.tensor(name).unwrap().bytes,
            s.tensor(name).unwrap().bytes,
            "{name}"
        );
    }
    // And the CLI reads it back as one checkpoint.
    let v = json_of(&[&"inspect", &"--json", &sdir]);
    assert_eq!(v["format"], json!("safetensors-sharded"));
    assert_eq!(v["tensors"].as_array().unwrap().len(), a.len());
}

/// convert never writes over its own input, nor over an existing file without --overwrite, nor
/// to a name whose extension says another format; its files get the umask's permissions; dtype
/// names are accepted in every common spelling; the positional output still works (deprecated).
#[test]
fn convert_output_rules() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    std::fs::copy(fixture("stats.safetensors"), &p).unwrap();
    let before = std::fs::read(&p).unwrap();
    // Its own input, named as a file or as its folder, with or without --overwrite.
    for args in [
        vec![
            &"convert" as &dyn AsRef<std::ffi::OsStr>,
            &p,
            &"-o",
            &p,
            &"--dtype",
            &"bf16",
        ],
        vec![&"convert", &p, &"-o", &p, &"--overwrite"],
        vec![&"convert", &p, &"-o", &dir.path().join("./m.safetensors")],
    ] {
        let o = run_p(&args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("input"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&p).unwrap(), before, "input untouched");
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);

    // Another format's extension.
    for name in ["out.bin", "out.pt", "out.gguf", "out.onnx"] {
        let o = run_p(&[&"convert", &p, &"-o", &dir.path().join(name)]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("writes safetensors"), "{}", stderr(&o));
    }

    // A new file, in any dtype spelling; then it exists: refused without --overwrite.
    let out = dir.path().join("h.safetensors");
    for (spelling, dtype) in [
        ("half", DType::F16),
        ("bfloat16", DType::BF16),
        ("torch.float16", DType::F16),
    ] {
        let o = run_p(&[
            &"convert",
            &p,
            &"-o",
            &out,
            &"--dtype",
            &spelling,
            &"--overwrite",
        ]);
        assert!(o.status.success(), "{spelling}: {}", stderr(&o));
        let h = Checkpoint::open(&out).unwrap();
        assert_eq!(h.info("dense.weight").unwrap().dtype, dtype, "{spelling}");
    }
    let o = run_p(&[&"convert", &p, &"-o", &out]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));

    // Permissions: what a plain new file gets here (0666 less the umask), not the temp file's 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let mode = |f: &Path| std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        // (Under a umask of 077 both are 0600 and this cannot tell; CI's is 022.)
        assert_eq!(mode(&out), mode(&plain));
    }

    // The positional output: still accepted, with a deprecation warning; both forms: usage error.
    let old = dir.path().join("old.safetensors");
    let o = run_p(&[&"convert", &p, &old]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("deprecated"), "{}", stderr(&o));
    let o = run_p(&[&"convert", &p, &old, &"-o", &old]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// Bad input and usage

/// A valid file with its data section cut short.
fn corrupt(dir: &Path) -> PathBuf {
    let mut b = std::fs::read(fixture("stats.safetensors")).unwrap();
    b.truncate(b.len() - 100);
    let p = dir.join("corrupt.safetensors");
    std::fs::write(&p, b).unwrap();
    p
}

fn assert_bad_input(o: &Output, names: &Path) {
    assert_eq!(o.status.code(), Some(2), "stderr: {}", stderr(o));
    let e = stderr(o);
    assert!(e.contains(&names.display().to_string()), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(stdout(o).is_empty(), "stdout: {}", stdout(o));
}

#[test]
fn bad_input_exits_2_naming_the_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = corrupt(dir.path());
    let good = fixture("stats.safetensors");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let pq = out.join("s.parquet");
    let converted = out.join("c.safetensors");
    for args in [
        vec![&"inspect" as &dyn AsRef<std::ffi::OsStr>, &bad],
        vec![&"inspect", &"--json", &bad],
        vec![&"stats", &"--json", &bad],
        vec![&"stats", &"--parquet", &pq, &bad],
        vec![&"diff", &good, &bad],
        vec![&"diff", &"--json", &bad, &good],
        vec![&"hash", &good, &bad],
        vec![&"convert", &bad, &converted],
        vec![
            &"convert",
            &bad,
            &out,
            &"--dtype",
            &"bf16",
            &"--max-shard-size",
            &"1kB",
        ],
    ] {
        let o = run_p(&args);
        assert_bad_input(&o, &bad);
        assert!(stderr(&o).contains("offsets"), "{}", stderr(&o));
    }
    assert_eq!(dir_entries(&out), Vec::<String>::new(), "nothing written");

    // Missing files, a file that is no checkpoint, an empty file, a hostile header.
    let missing = dir.path().join("nope.safetensors");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, these are not weights").unwrap();
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    let huge = dir.path().join("huge.safetensors");
    let mut h = u64::MAX.to_le_bytes().to_vec();
    h.extend_from_slice(b"{}");
    std::fs::write(&huge, h).unwrap();
    for p in [&missing, &text, &empty, &huge] {
        for cmd in ["inspect", "stats", "hash"] {
            assert_bad_input(&run_p(&[&cmd, p]), p);
        }
        assert_bad_input(&run_p(&[&"convert", p, &converted]), p);
    }
    assert_eq!(dir_entries(&out), Vec::<String>::new(), "nothing written");

    // Writing into a folder that does not exist is a bad output path: exit 2, no panic.
    let nodir = dir.path().join("no/such/dir/x.safetensors");
    let o = run_p(&[&"convert", &good, &nodir]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn usage_errors_exit_2() {
    let good = fixture("stats.safetensors");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.safetensors");
    for args in [
        vec![],
        vec![&"frobnicate" as &dyn AsRef<std::ffi::OsStr>],
        vec![&"inspect"],
        vec![&"inspect", &"--no-such-flag", &good],
        vec![&"stats", &"--json", &"--csv", &good],
        vec![&"diff", &good],
        vec![&"hash"],
        vec![&"convert", &good],
        vec![&"convert", &good, &out, &"--dtype", &"i8"],
        vec![&"convert", &good, &out, &"--dtype", &"q4_0"],
        vec![&"convert", &good, &out, &"--max-shard-size", &"lots"],
        vec![&"convert", &good, &out, &"--max-shard-size", &"0"],
    ] {
        let o = run_p(&args);
        assert_eq!(o.status.code(), Some(2), "{:?}: {}", o.status, stderr(&o));
        assert!(!stderr(&o).is_empty());
        assert!(!stderr(&o).contains("panicked"));
    }
    assert!(!out.exists());
}

/// Negative numbers are values: a range error for the flag, never "unexpected argument".
#[test]
fn negative_numbers_parse_as_values() {
    let dir = tempfile::tempdir().unwrap();
    let good = fixture("stats.safetensors");
    let out = dir.path().join("p.safetensors");
    let o = run_p(&[&"prune", &good, &"-o", &out, &"--density", &"-0.5"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("density"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("unexpected argument"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

/// An error says each thing once (the io error is not repeated after the file error quoting it).
#[test]
fn errors_say_each_thing_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let o = run_p(&[&"inspect", &missing]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).matches("No such file or directory").count(),
        1,
        "{}",
        stderr(&o)
    );
    let zip = dir.path().join("bad.bin");
    std::fs::write(&zip, b"PK\x03\x04 this is no zip archive at all").unwrap();
    let o = run_p(&[&"inspect", &zip]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o).to_lowercase();
    assert_eq!(e.matches("invalid zip archive").count(), 1, "{e}");
}

/// `inspect` and `hash` on a folder of several models take each as a model (as `similarity`
/// does), instead of reading the folder as one set of shards with clashing names.
#[test]
fn inspect_and_hash_a_folder_of_models() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["a", "b"] {
        std::fs::copy(
            fixture("stats.safetensors"),
            dir.path().join(format!("{n}.safetensors")),
        )
        .unwrap();
    }
    let v = json_of(&[&"inspect", &"--json", &dir.path()]);
    let models = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    assert_eq!(models.len(), 2);
    assert!(
        models[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("a.safetensors")
    );
    let o = run_p(&[&"inspect", &dir.path()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("b.safetensors"));
    let v = json_of(&[&"hash", &"--json", &dir.path()]);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["model_hash"], files[1]["model_hash"]);
    // One model still prints one object.
    let v = json_of(&[&"inspect", &"--json", &fixture("stats.safetensors")]);
    assert!(v.is_object());
}

/// The subcommands listed under "Commands:" in a `--help` text (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

/// Every command that runs (every leaf of the command tree) ends its `--help` with examples.
#[test]
fn every_command_help_ends_with_examples() {
    let mut todo: Vec<Vec<String>> = subcommands(&stdout(&run(&["--help"])))
        .into_iter()
        .map(|c| vec![c])
        .collect();
    assert!(todo.len() > 15, "{todo:?}");
    let mut leaves = 0;
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = run(&args);
        assert!(o.status.success(), "{path:?}");
        let help = stdout(&o);
        let subs = subcommands(&help);
        if subs.is_empty() {
            let tail = help.trim_end();
            let ex = tail
                .rfind("Examples:")
                .unwrap_or_else(|| panic!("{path:?}: no examples"));
            let examples: Vec<&str> = tail[ex..].lines().skip(1).collect();
            assert!((2..=4).contains(&examples.len()), "{path:?}: {examples:?}");
            assert!(
                examples
                    .iter()
                    .all(|l| l.trim_start().starts_with("weightspace ")),
                "{path:?}"
            );
            leaves += 1;
        } else {
            todo.extend(subs.into_iter().map(|s| [path.clone(), vec![s]].concat()));
        }
    }
    assert!(leaves > 25, "{leaves}");
}

#[test]
fn help_for_every_command() {
    for cmd in ["inspect", "stats", "diff", "hash", "convert", "quickstart"] {
        let o = run(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd}");
        assert!(stdout(&o).contains("Usage"), "{cmd}");
    }
    let o = run(&["--version"]);
    assert!(o.status.success());
}

#[test]
fn quickstart_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("qs");
    let out2 = dir.path().join("qs2");
    // A second run, at the same time (2 cores): same seed, so the same bytes.
    let second = Command::new(BIN)
        .args(["quickstart", "--quiet", "--out"])
        .arg(&out2)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run weightspace");
    let o = run_p(&[&"quickstart", &"--out", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o2 = second.wait_with_output().unwrap();
    assert!(o2.status.success(), "{}", stderr(&o2));
    let s = stdout(&o);
    for word in [
        "inspect",
        "stats",
        "diff",
        "hash",
        "spectral",
        "similarity",
        "lineage",
        "report",
        "learn bench",
    ] {
        assert!(s.contains(&format!("weightspace {word}")), "{word}: {s}");
    }
    // The learning step prints its table with both models.
    assert!(
        s.contains("| stats-gbm | 1 |") && s.contains("| nfn-hnp | 1 |"),
        "{s}"
    );
    // The permute step measures the outputs of both nets: unchanged up to float rounding.
    let line = s
        .lines()
        .find(|l| l.starts_with("outputs before/after permute: max |Δ| = "))
        .unwrap_or_else(|| panic!("no output check after permute: {s}"));
    let delta: f64 = line["outputs before/after permute: max |Δ| = ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(delta < 1e-4, "{line}");
    let files = dir_entries(&out);
    assert!(files.contains(&"base.safetensors".to_string()), "{files:?}");
    assert!(files.contains(&"report.html".to_string()), "{files:?}");
    // The lineage step scores itself against the zoo catalog.
    assert!(
        s.contains("parent -> child edges in the zoo catalog recovered"),
        "{s}"
    );
    // What it wrote is readable, and the second run wrote the same bytes: demo checkpoints,
    // every zoo checkpoint, the merge, the aligned copy.
    Checkpoint::open(out.join("base.safetensors")).unwrap();
    let mut compared = 0;
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(out.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else if r.extension().is_some_and(|x| x == "safetensors") {
                let (a, b) = (std::fs::read(out.join(&r)), std::fs::read(out2.join(&r)));
                assert_eq!(
                    a.unwrap(),
                    b.unwrap(),
                    "{} differs between runs",
                    r.display()
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 100, "only {compared} checkpoints compared");
}
