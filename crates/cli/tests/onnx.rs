//! ONNX as users see it: by default the commands show an export's weights under its source
//! model's names (`--all` shows every stored tensor). Inputs are the io crate's fixtures
//! `bert_tiny.onnx` (a small BERT-like encoder exported by `torch.onnx.export`) and
//! `bert_tiny.safetensors` (its state_dict), made by `crates/io/tests/fixtures/onnx/make_fixtures.py`.

mod common;

use std::path::{Path, PathBuf};

use common::{json_of, run};
use serde_json::Value;

fn io_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../io/tests/fixtures/onnx")
        .join(name)
}

#[test]
fn inspect_shows_weights_with_their_stored_names() {
    let onnx = io_fixture("bert_tiny.onnx");
    let v = json_of(&["inspect".as_ref(), "--json".as_ref(), onnx.as_os_str()]);
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 29);
    assert!(v["metadata"]["hidden_tensors"].as_u64().unwrap() > 0);
    let q = tensors
        .iter()
        .find(|t| t["name"] == "encoder.layer.0.attention.query.weight")
        .unwrap();
    assert!(q["alias"].as_str().unwrap().starts_with("onnx::MatMul_"));
    assert_eq!(q["transposed"], true);
    assert_eq!(q["stored_shape"], serde_json::json!([8, 8]));
    let bias = tensors
        .iter()
        .find(|t| t["name"] == "encoder.layer.0.attention.query.bias")
        .unwrap();
    assert!(bias.get("alias").is_none(), "{bias}");

    let all = json_of(&[
        "inspect".as_ref(),
        "--json".as_ref(),
        "--all".as_ref(),
        onnx.as_os_str(),
    ]);
    let names: Vec<&str> = all["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&q["alias"].as_str().unwrap()));
    assert!(!names.contains(&"encoder.layer.0.attention.query.weight"));
    assert!(
        all["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["dtype"] == "I64")
    );
    let o = run(&["inspect".as_ref(), onnx.as_os_str()]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("--all shows them"), "{text}");
}

#[test]
fn an_export_matches_its_source() {
    let (onnx, source) = (
        io_fixture("bert_tiny.onnx"),
        io_fixture("bert_tiny.safetensors"),
    );
    let v = json_of(&[
        "diff".as_ref(),
        "--json".as_ref(),
        source.as_os_str(),
        onnx.as_os_str(),
    ]);
    assert_eq!(v["only_in_a"], serde_json::json!([]), "{v}");
    assert_eq!(v["only_in_b"], serde_json::json!([]), "{v}");
    let shared = v["shared"].as_array().unwrap();
    assert_eq!(shared.len(), 29);
    assert!(shared.iter().all(|d| d["identical"] == true), "{v}");

    // Every tensor's content hash equals its source's.
    let h = json_of(&[
        "hash".as_ref(),
        "--json".as_ref(),
        source.as_os_str(),
        onnx.as_os_str(),
    ]);
    let files = h["files"].as_array().unwrap();
    let of = |f: &Value| -> std::collections::BTreeMap<String, String> {
        f["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["hash"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(of(&files[0]), of(&files[1]));

    // With --all the stored names and layouts differ from the source.
    let v = json_of(&[
        "diff".as_ref(),
        "--json".as_ref(),
        "--all".as_ref(),
        source.as_os_str(),
        onnx.as_os_str(),
    ]);
    assert!(!v["only_in_b"].as_array().unwrap().is_empty());

    // stats and convert take --all too.
    let s = json_of(&["stats".as_ref(), "--json".as_ref(), onnx.as_os_str()]);
    let s_all = json_of(&[
        "stats".as_ref(),
        "--json".as_ref(),
        "--all".as_ref(),
        onnx.as_os_str(),
    ]);
    assert!(s_all["tensors"].as_array().unwrap().len() > s["tensors"].as_array().unwrap().len());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let o = run(&[
        "convert".as_ref(),
        onnx.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = json_of(&[
        "diff".as_ref(),
        "--json".as_ref(),
        source.as_os_str(),
        out.as_os_str(),
    ]);
    assert!(
        v["shared"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["identical"] == true)
    );
    assert_eq!(v["only_in_b"], serde_json::json!([]));
}
