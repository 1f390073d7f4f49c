//! Choosing what is analysed: `--key`, `--include`/`--exclude`, `--strip-prefix`/`--rename` on
//! the commands that read tensors, and PyTorch training checkpoints (model + optimizer state).
//! Inputs are the io crate's fixtures: `onnx/bert_tiny.onnx` and its source
//! `onnx/bert_tiny.safetensors`, `pytorch/training.pt` and `pytorch/two_models.pt`.

mod common;

use std::path::{Path, PathBuf};

use common::{json_of, run};
use serde_json::Value;

fn io_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../io/tests/fixtures/onnx")
        .join(name)
}

fn pt_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../io/tests/fixtures/pytorch")
        .join(name)
}

/// `bert_tiny.safetensors` with every name under `bert.` (written by `convert --rename`, which
/// is itself under test here), in `dir`.
fn prefixed_copy(dir: &Path) -> PathBuf {
    let src = io_fixture("bert_tiny.safetensors");
    let out = dir.join("prefixed.safetensors");
    let mut args: Vec<std::ffi::OsString> = vec!["convert".into(), src.into()];
    for top in ["act.", "embeddings.", "encoder.", "head."] {
        args.push("--rename".into());
        args.push(format!("{top}=bert.{top}").into());
    }
    args.push("-o".into());
    args.push(out.clone().into());
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let o = run(&refs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn strip_prefix_matches_an_export_with_its_prefixed_source() {
    let dir = tempfile::tempdir().unwrap();
    let pre = prefixed_copy(dir.path());
    let onnx = io_fixture("bert_tiny.onnx");
    let names = |v: &Value, k: &str| v[k].as_array().unwrap().len();
    let diff = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["diff".as_ref(), "--json".as_ref()];
        args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
        args.push(onnx.as_os_str());
        args.push(pre.as_os_str());
        json_of(&args)
    };
    let v = diff(&[]);
    assert_eq!(names(&v, "shared"), 0, "{v}");
    let v = diff(&["--strip-prefix", "bert."]);
    assert_eq!(names(&v, "shared"), 29);
    assert!(
        v["shared"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["identical"] == true)
    );
    // --rename the other way: the export's names gain the prefix.
    let v = diff(&[
        "--rename",
        "embeddings.=bert.embeddings.",
        "--rename",
        "encoder.=bert.encoder.",
        "--rename",
        "act.=bert.act.",
        "--rename",
        "head.=bert.head.",
    ]);
    assert_eq!(names(&v, "shared"), 29, "{v}");
    // --include/--exclude on the result.
    let v = diff(&[
        "--strip-prefix",
        "bert.",
        "--include",
        "encoder.*",
        "--exclude",
        "*.bias",
    ]);
    let shared = v["shared"].as_array().unwrap();
    assert!(!shared.is_empty());
    assert!(shared.iter().all(|s| {
        let n = s["name"].as_str().unwrap();
        n.starts_with("encoder.") && !n.ends_with(".bias")
    }));
    assert_eq!(names(&v, "only_in_a") + names(&v, "only_in_b"), 0);

    // similarity compares every parameter once the names line up.
    let sim = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["similarity".as_ref(), "--json".as_ref()];
        args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
        args.push(onnx.as_os_str());
        args.push(pre.as_os_str());
        json_of(&args)
    };
    let text = sim(&["--strip-prefix", "bert."]).to_string();
    let without = sim(&[]).to_string();
    assert_ne!(text, without);
    let o = run(&[
        "similarity".as_ref(),
        "--strip-prefix".as_ref(),
        "bert.".as_ref(),
        onnx.as_os_str(),
        pre.as_os_str(),
    ]);
    let out = String::from_utf8(o.stdout).unwrap();
    let row = out.lines().nth(1).unwrap();
    assert!(row.contains("1.0000") && row.contains(" 29 "), "{out}");
}

#[test]
fn selection_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let pre = prefixed_copy(dir.path());
    let onnx = io_fixture("bert_tiny.onnx");
    let fail = |args: &[&std::ffi::OsStr], want: &[&str]| {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty());
        let err = String::from_utf8_lossy(&o.stderr);
        for w in want {
            assert!(err.contains(w), "{args:?}: `{w}` not in {err}");
        }
    };
    // Two tensors renamed to one name: both named.
    fail(
        &[
            "diff".as_ref(),
            "--rename".as_ref(),
            "encoder.layer.0.attention.query.=q.".as_ref(),
            "--rename".as_ref(),
            "encoder.layer.0.attention.key.=q.".as_ref(),
            onnx.as_os_str(),
            pre.as_os_str(),
        ],
        &[
            "encoder.layer.0.attention.query.bias",
            "encoder.layer.0.attention.key.bias",
            "both become `q.bias`",
        ],
    );
    // A strip that makes two names one.
    fail(
        &[
            "inspect".as_ref(),
            "--strip-prefix".as_ref(),
            "bert.encoder.layer.0.attention.query.".as_ref(),
            "--strip-prefix".as_ref(),
            "bert.encoder.layer.0.attention.key.".as_ref(),
            "--strip-prefix".as_ref(),
            "bert.".as_ref(),
            pre.as_os_str(),
        ],
        &["both become"],
    );
    // An include that selects nothing.
    fail(
        &[
            "similarity".as_ref(),
            "--include".as_ref(),
            "decoder.*".as_ref(),
            onnx.as_os_str(),
            pre.as_os_str(),
        ],
        &["select no tensor"],
    );
    // An exclude that leaves nothing.
    fail(
        &[
            "stats".as_ref(),
            "--exclude".as_ref(),
            "*".as_ref(),
            onnx.as_os_str(),
        ],
        &["select no tensor"],
    );
    // A key nothing is under; a malformed --rename.
    fail(
        &[
            "inspect".as_ref(),
            "--key".as_ref(),
            "decoder".as_ref(),
            pt_fixture("training.pt").as_os_str(),
        ],
        &["--key decoder", "`model`, `optimizer`"],
    );
    fail(
        &[
            "diff".as_ref(),
            "--rename".as_ref(),
            "nothing".as_ref(),
            onnx.as_os_str(),
            pre.as_os_str(),
        ],
        &["FROM=TO"],
    );
}

#[test]
fn training_checkpoint_analyses_the_model_and_counts_the_optimizer_apart() {
    let pt = pt_fixture("training.pt");
    let o = run(&["inspect".as_ref(), pt.as_os_str()]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("4 tensors, 23 parameters"), "{text}");
    assert!(
        text.contains("optimizer: optimizer state: 12 tensors, 50 parameters, not analysed"),
        "{text}"
    );
    assert!(text.contains("epoch: 3"), "{text}");
    let v = json_of(&["inspect".as_ref(), "--json".as_ref(), pt.as_os_str()]);
    let keys = v["keys"].as_array().unwrap();
    let opt = keys.iter().find(|k| k["key"] == "optimizer").unwrap();
    assert_eq!(opt["selected"], false);
    assert_eq!(opt["optimizer"], true);
    assert_eq!(opt["tensors"], 12);
    let model = keys.iter().find(|k| k["key"] == "model").unwrap();
    assert_eq!(model["selected"], true);
    // stats sees the model's four parameters only, without the `model.` prefix.
    let v = json_of(&["stats".as_ref(), "--json".as_ref(), pt.as_os_str()]);
    let text = v.to_string();
    assert!(text.contains("\"0.weight\""), "{text}");
    assert!(
        !text.contains("exp_avg") && !text.contains("model.0"),
        "{text}"
    );
    // --key optimizer: its tensors.
    let v = json_of(&[
        "inspect".as_ref(),
        "--json".as_ref(),
        "--key".as_ref(),
        "optimizer".as_ref(),
        pt.as_os_str(),
    ]);
    assert_eq!(v["tensors"].as_array().unwrap().len(), 12);
    // Two candidate state dicts: refused, naming them and --key.
    let two = pt_fixture("two_models.pt");
    let o = run(&["stats".as_ref(), two.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`student`") && err.contains("`teacher`") && err.contains("--key"),
        "{err}"
    );
    let o = run(&[
        "diff".as_ref(),
        "--key".as_ref(),
        "teacher".as_ref(),
        two.as_os_str(),
        pt_fixture("state_dict.pt").as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("4 shared"), "{out}");
}

#[test]
fn merge_strips_the_prefix_of_every_model() {
    let dir = tempfile::tempdir().unwrap();
    let pre = prefixed_copy(dir.path());
    let src = io_fixture("bert_tiny.safetensors");
    let cfg = dir.path().join("m.yaml");
    std::fs::write(
        &cfg,
        format!(
            "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 0.5}}\n  - model: {}\n    parameters: {{weight: 0.5}}\ndtype: float32\n",
            src.display(),
            pre.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    // Without it the two models share no tensor: refused.
    let o = run(&["merge".as_ref(), cfg.as_os_str(), out.as_os_str()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(&[
        "merge".as_ref(),
        "--strip-prefix".as_ref(),
        "bert.".as_ref(),
        cfg.as_os_str(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The average of a model with itself is the model.
    let v = json_of(&[
        "diff".as_ref(),
        "--json".as_ref(),
        src.as_os_str(),
        out.as_os_str(),
    ]);
    assert_eq!(v["shared"].as_array().unwrap().len(), 29, "{v}");
    assert_eq!(v["only_in_a"].as_array().unwrap().len(), 0);
}
