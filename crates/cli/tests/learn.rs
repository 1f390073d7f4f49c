//! `weightspace learn …` as a user runs it, on a tiny zoo trained here with the zoo library:
//! train / eval / predict / bench outputs, and exit code 2 with a clear message for a missing
//! zoo, an unknown target or model, and a checkpoint of another architecture.

use std::path::Path;

use weightspace_zoo::{TrainOptions, ZooConfig};

mod common;
use common::ws as run;

const ZOO: &str = r#"
name = "cli-learn"
seed = 2

[defaults]
dataset = "digits"
epochs = 2
checkpoints = [0, 1, 2]
train_fraction = 0.3

[[models]]
name = "mlp"
hidden = [6]
activation = ["relu", "tanh"]
lr = { log_uniform = [1e-4, 1e-1] }
samples = 8
"#;

/// (exit code, stdout, stderr) of one run of the binary.
type Ran = (i32, String, String);

fn ok(o: &Ran) -> String {
    let (code, out, err) = o;
    assert_eq!(*code, 0, "exit {code}\nstdout: {out}\nstderr: {err}");
    out.clone()
}

fn bad(o: &Ran, needle: &str) {
    let (code, _, err) = o;
    assert_eq!(*code, 2, "stderr: {err}");
    assert!(err.contains(needle), "`{needle}` not in: {err}");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn learn_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let zoo = tmp.path().join("zoo");
    let cfg = ZooConfig::from_toml_str(ZOO).unwrap();
    weightspace_zoo::train(&cfg, &zoo, &TrainOptions::default(), &|_| {}).unwrap();
    let out = tmp.path().join("gbm");

    let o = ok(&run(&[
        "learn",
        "train",
        "--zoo",
        s(&zoo),
        "--target",
        "test_acc",
        "--model",
        "stats-gbm",
        "--rounds",
        "40",
        "-o",
        s(&out),
    ]));
    assert!(o.contains("test: n="), "{o}");
    assert!(out.join("learn.json").exists() && out.join("gbm.json").exists());

    let o = ok(&run(&[
        "learn",
        "eval",
        s(&out),
        "--zoo",
        s(&zoo),
        "--json",
    ]));
    let m: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert!(m["n"].as_u64().unwrap() > 0 && m["tau"].is_number(), "{o}");
    let o = ok(&run(&[
        "learn",
        "eval",
        s(&out),
        "--zoo",
        s(&zoo),
        "--all",
        "--json",
    ]));
    let all: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert!(all["n"].as_u64() > m["n"].as_u64());

    let ck = zoo.join("models/mlp-0000/epoch_2.safetensors");
    let o = ok(&run(&["learn", "predict", s(&out), s(&ck), "--json"]));
    let p: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert!(p[0]["prediction"].is_number(), "{o}");
    assert_eq!(p[0]["target"], "test_acc", "{o}");

    // An equivariant model (burn) on the regression target.
    let nfn = tmp.path().join("nfn");
    let o = ok(&run(&[
        "learn",
        "train",
        "--zoo",
        s(&zoo),
        "--model",
        "nfn-hnp",
        "--epochs",
        "2",
        "-o",
        s(&nfn),
    ]));
    assert!(o.contains("tau="), "{o}");
    assert!(nfn.join("model.safetensors").exists());
    let o = ok(&run(&["learn", "predict", s(&nfn), s(&ck), "--json"]));
    let p: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert!(p[0]["prediction"].is_number(), "{o}");
    assert_eq!(p[0]["target"], "test_acc", "{o}");

    // dws maps the 64 inputs down to 16 by default (DWSNets' input_dim_downsample); the
    // description records it, loading rebuilds it, and `--input-downsample 0` turns it off.
    for (flag, want) in [
        (None, serde_json::json!(16)),
        (Some("0"), serde_json::Value::Null),
    ] {
        let dws = tmp
            .path()
            .join(format!("dws-{}", flag.unwrap_or("default")));
        let mut args = vec![
            "learn",
            "train",
            "--zoo",
            s(&zoo),
            "--model",
            "dws",
            "--hidden",
            "4",
            "--depth",
            "1",
            "--epochs",
            "1",
            "-o",
            s(&dws),
        ];
        if let Some(f) = flag {
            args.extend(["--input-downsample", f]);
        }
        ok(&run(&args));
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dws.join("learn.json")).unwrap())
                .unwrap();
        assert_eq!(meta["config"]["input_downsample"], want, "{meta}");
        let o = ok(&run(&["learn", "predict", s(&dws), s(&ck), "--json"]));
        assert!(o.contains("\"prediction\""), "{o}");
    }

    // An MLP model (burn) saved as safetensors, with a classification target.
    {
        let mlp = tmp.path().join("mlp");
        let o = ok(&run(&[
            "learn",
            "train",
            "--zoo",
            s(&zoo),
            "--target",
            "activation",
            "--model",
            "stats-mlp",
            "--epochs",
            "3",
            "--augment",
            "perm",
            "-o",
            s(&mlp),
        ]));
        assert!(o.contains("accuracy="), "{o}");
        assert!(mlp.join("model.safetensors").exists());
        let o = ok(&run(&["learn", "predict", s(&mlp), s(&ck)]));
        assert!(o.contains("relu") || o.contains("tanh"), "{o}");
    }
    // A categorical target with boosting.
    let cls = tmp.path().join("cls");
    let o = ok(&run(&[
        "learn",
        "train",
        "--zoo",
        s(&zoo),
        "--target",
        "activation",
        "--model",
        "stats-gbm",
        "--rounds",
        "30",
        "-o",
        s(&cls),
    ]));
    assert!(o.contains("accuracy="), "{o}");
    let o = ok(&run(&["learn", "predict", s(&cls), s(&ck)]));
    assert!(o.contains("relu") || o.contains("tanh"), "{o}");
    let o = ok(&run(&["learn", "predict", s(&cls), s(&ck), "--json"]));
    let p: serde_json::Value = serde_json::from_str(&o).unwrap();
    let class = p[0]["prediction"].as_str().unwrap_or_default();
    assert!(class == "relu" || class == "tanh", "{o}");
    assert!(
        (0.0..=1.0).contains(&p[0]["probability"].as_f64().unwrap()),
        "{o}"
    );
    assert_eq!(p[0]["target"], "activation", "{o}");

    // bench: two models, two seeds, Markdown table.
    let table = tmp.path().join("table.md");
    let o = ok(&run(&[
        "learn",
        "bench",
        "--zoo",
        s(&zoo),
        "--models",
        "stats-gbm",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--rounds",
        "20",
        "-o",
        s(&table),
    ]));
    assert!(o.contains("| stats-gbm | 2 |"), "{o}");
    let t = std::fs::read_to_string(&table).unwrap();
    assert!(t.contains("test τ"), "{t}");

    // Errors: exit 2 and a message that says what is wrong.
    bad(
        &run(&[
            "learn",
            "train",
            "--zoo",
            s(&tmp.path().join("nope")),
            "--model",
            "stats-gbm",
            "-o",
            s(&out),
        ]),
        "nope",
    );
    bad(
        &run(&[
            "learn",
            "train",
            "--zoo",
            s(&zoo),
            "--target",
            "colour",
            "--model",
            "stats-gbm",
            "-o",
            s(&out),
        ]),
        "unknown target `colour`",
    );
    bad(
        &run(&[
            "learn",
            "train",
            "--zoo",
            s(&zoo),
            "--model",
            "resnet",
            "-o",
            s(&out),
        ]),
        "unknown model `resnet`",
    );
    bad(
        &run(&[
            "learn",
            "eval",
            s(&tmp.path().join("none")),
            "--zoo",
            s(&zoo),
        ]),
        "learn.json",
    );
    // A checkpoint of another architecture.
    let other = tmp.path().join("other.safetensors");
    let info = weightspace_io::TensorInfo {
        name: "layers.0.weight".into(),
        dtype: weightspace_io::DType::F32,
        shape: vec![3, 64],
    };
    let bytes = vec![0u8; 3 * 64 * 4];
    weightspace_io::write_safetensors(&other, &[info], &Default::default(), |_| {
        Ok(std::borrow::Cow::Borrowed(bytes.as_slice()))
    })
    .unwrap();
    bad(
        &run(&["learn", "predict", s(&out), s(&other)]),
        "layers.0.weight",
    );
}
