//! Every command that reads a zoo's catalog, on zoos made by other tools: a valid foreign zoo
//! (catalog.parquet with `model_id`, `file`, `test_accuracy`; plain safetensors; no zoo.toml)
//! lists and trains, and each malformed catalog makes `zoo ls`, `zoo eval`, `zoo export`,
//! `learn train`, `learn bench` and `learn eval` exit 2 with the column, row or file named in
//! the message, never a panic.

use std::path::Path;

mod common;
#[path = "../../zoo/tests/foreign/mod.rs"]
mod foreign;

use common::ws;
use foreign::{Col, Data, Fault};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn assert_bad(args: &[&str], needles: &[String]) {
    let (code, out, err) = ws(args);
    assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    assert_eq!(
        code, 2,
        "{args:?}: exit {code}\nstdout: {out}\nstderr: {err}"
    );
    for n in needles {
        assert!(
            err.contains(n.as_str()),
            "{args:?}: stderr lacks `{n}`:\n{err}"
        );
    }
}

#[test]
fn a_foreign_zoo_lists_and_trains() {
    let d = tempfile::tempdir().unwrap();
    let zoo = d.path().join("zoo");
    let mut cols = foreign::make_models(&zoo, 12);
    cols.push(Col::new(
        "label",
        Data::Str((0..12).map(|i| Some(["a", "b"][i % 2].into())).collect()),
    ));
    foreign::write_catalog(&zoo.join("catalog.parquet"), &cols);

    let (code, out, err) = ws(&["zoo", "ls", s(&zoo)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("m11") && out.contains("weights/m11.safetensors"),
        "{out}"
    );
    assert!(out.contains("12 models"), "{out}");

    let npz = d.path().join("zoo.npz");
    let (code, out, err) = ws(&["zoo", "export", s(&zoo), "--npz", s(&npz)]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("weights [12, 67] and 4 catalog columns"),
        "{out}"
    );

    for target in ["test_acc", "label"] {
        let out_dir = d.path().join(format!("gbm-{target}"));
        let (code, out, err) = ws(&[
            "learn",
            "train",
            "--zoo",
            s(&zoo),
            "--model",
            "stats-gbm",
            "--rounds",
            "10",
            "--target",
            target,
            "-o",
            s(&out_dir),
        ]);
        assert_eq!(code, 0, "{target}: {out}\n{err}");
        assert!(out.contains("12 states"), "{out}");
    }
    // The default target is named when the catalog lacks it.
    let mut cols = foreign::make_models(&zoo, 12);
    cols.remove(2);
    cols.push(Col::new(
        "accuracy",
        Data::F32((0..12).map(|i| Some(i as f32 / 12.0)).collect()),
    ));
    foreign::write_catalog(&zoo.join("catalog.parquet"), &cols);
    let x = d.path().join("x");
    let args = [
        "learn",
        "train",
        "--zoo",
        s(&zoo),
        "--model",
        "stats-gbm",
        "-o",
        s(&x),
    ];
    assert_bad(
        &args,
        &["no column `test_accuracy`".into(), "accuracy".into()],
    );
    let mut args = args.to_vec();
    args.extend(["--target", "accuracy", "--rounds", "10"]);
    let (code, _, err) = ws(&args);
    assert_eq!(code, 0, "{err}");

    // Re-evaluating needs the config that made the zoo.
    assert_bad(&["zoo", "eval", s(&zoo)], &["no zoo.toml".into()]);
}

#[test]
fn malformed_catalogs_exit_2_naming_the_problem() {
    let d = tempfile::tempdir().unwrap();
    // A learned model to evaluate on the malformed zoos.
    let good = d.path().join("good");
    foreign::make_zoo(&good, 8);
    let learned = d.path().join("learned");
    let (code, _, err) = ws(&[
        "learn",
        "train",
        "--zoo",
        s(&good),
        "--model",
        "stats-gbm",
        "--rounds",
        "5",
        "-o",
        s(&learned),
    ]);
    assert_eq!(code, 0, "{err}");

    let faults = [
        Fault::Drop(0),
        Fault::Drop(1),
        Fault::Retype(3, 0),
        Fault::Retype(2, 6),
        Fault::Retype(0, 4),
        Fault::Null(1, 2),
        Fault::Null(3, 0),
        Fault::DuplicateId(0, 2),
        Fault::DuplicateFile(1, 2),
        Fault::MissingFile(1),
        Fault::DuplicateColumn(0),
        Fault::KnownColumnAsText,
    ];
    for (i, fault) in faults.iter().enumerate() {
        let zoo = d.path().join(format!("zoo{i}"));
        let cols = foreign::base_columns(&zoo, 5);
        foreign::write_faulty(&zoo, cols, fault, 1, i);
        let needles = foreign::expected_catalog_error(fault).expect("a fault");
        let z = s(&zoo);
        let npz = zoo.join("out.npz");
        let out = zoo.join("learned");
        for args in [
            vec!["zoo", "ls", z],
            vec!["zoo", "ls", z, "--json"],
            vec!["zoo", "eval", z],
            vec!["zoo", "export", z, "--npz", s(&npz)],
            vec![
                "learn",
                "train",
                "--zoo",
                z,
                "--model",
                "stats-gbm",
                "-o",
                s(&out),
            ],
            vec![
                "learn",
                "bench",
                "--zoo",
                z,
                "--models",
                "stats-gbm",
                "--seeds",
                "1",
            ],
            vec!["learn", "eval", s(&learned), "--zoo", z, "--all"],
        ] {
            assert_bad(&args, &needles);
        }
        assert!(!npz.exists() && !out.exists(), "{fault:?}: output written");
    }
}

#[test]
fn export_of_a_foreign_zoo_is_refused_or_written_without_panic() {
    // A catalog whose column would collide with the export's `weights` array.
    let d = tempfile::tempdir().unwrap();
    let mut cols = foreign::make_models(d.path(), 3);
    cols.push(Col::new("weights", Data::of_type(4, 3)));
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let npz = d.path().join("z.npz");
    assert_bad(
        &["zoo", "export", s(d.path()), "--npz", s(&npz)],
        &["column `weights`".into()],
    );
    assert!(!npz.exists());
}
