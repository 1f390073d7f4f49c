//! Config and input errors: each names the YAML key (or model and tensor), counts as bad input
//! (exit code 2 in the CLI), and leaves no output folder.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weightspace_io::{DType, TensorInfo, encode_f32, write_safetensors};
use weightspace_merge::{Error, ExecOptions, MergeConfig, PlanOptions, execute, plan};

const A: &str = "tests/fixtures/models/a.safetensors";
const B: &str = "tests/fixtures/models/b.safetensors";
const C: &str = "tests/fixtures/models/c.safetensors";
const BASE: &str = "tests/fixtures/models/base.safetensors";

/// Plans and runs `yaml` into a fresh folder; returns the error and checks nothing was left.
fn fails(yaml: &str) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("c.yaml");
    std::fs::write(&cfg_path, yaml).unwrap();
    let out = dir.path().join("out");
    let res = MergeConfig::from_file(&cfg_path)
        .and_then(|c| {
            plan(
                c,
                &PlanOptions {
                    cache_dirs: Some(vec![]),
                    ..Default::default()
                },
            )
        })
        .and_then(|p| execute(&p, &out, &ExecOptions::default(), |_, _| {}));
    let err = res.expect_err("should fail");
    assert!(!out.exists(), "no output folder after: {err}");
    let left: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, vec![cfg_path], "nothing else left behind");
    err
}

fn assert_key(err: &Error, key: &str) {
    let s = err.to_string();
    assert!(
        s.contains(&format!("`{key}`")),
        "expected key `{key}` in: {s}"
    );
    assert!(err.is_bad_input(), "bad input: {s}");
}

#[test]
fn missing_model_names_the_key() {
    let e = fails(&format!(
        "merge_method: linear\nmodels:\n  - model: {A}\n    parameters: {{weight: 1}}\n  - model: ./no/such/model.safetensors\n    parameters: {{weight: 1}}\n"
    ));
    assert_key(&e, "models[1].model");
    assert!(e.to_string().contains("no such file"), "{e}");
}

#[test]
fn hf_id_not_in_cache_is_a_clear_error() {
    let e = fails(
        "merge_method: linear\nmodels:\n  - model: someorg/somemodel\n    parameters: {weight: 1}\n",
    );
    assert_key(&e, "models[0].model");
    assert!(e.to_string().contains("never downloads"), "{e}");
}

#[test]
fn density_out_of_range() {
    let e = fails(&format!(
        "merge_method: ties\nbase_model: {BASE}\nmodels:\n  - model: {A}\n    parameters: {{weight: 1, density: [0.5, 1.5]}}\n"
    ));
    assert_key(&e, "models[0].parameters.density");
    assert!(e.to_string().contains("outside (0, 1]"), "{e}");
}

#[test]
fn filter_value_out_of_range_points_at_the_entry() {
    let e = fails(&format!(
        "merge_method: ties\nbase_model: {BASE}\nparameters:\n  density:\n    - filter: mlp\n      value: 0\n    - value: 0.5\nmodels:\n  - model: {A}\n    parameters: {{weight: 1}}\n"
    ));
    assert_key(&e, "parameters.density[0].value");
}

#[test]
fn slerp_needs_two_models() {
    let e = fails(&format!(
        "merge_method: slerp\nbase_model: {BASE}\nparameters: {{t: 0.5}}\nmodels:\n  - model: {A}\n  - model: {C}\n"
    ));
    assert_key(&e, "models");
    assert!(e.to_string().contains("exactly 2"), "{e}");
}

#[test]
fn model_stock_needs_two_plus_base() {
    let e = fails(&format!(
        "merge_method: model_stock\nbase_model: {BASE}\nmodels:\n  - model: {A}\n"
    ));
    assert!(e.to_string().contains("at least 2"), "{e}");
}

#[test]
fn ties_needs_a_base() {
    let e = fails(&format!(
        "merge_method: ties\nmodels:\n  - model: {A}\n    parameters: {{weight: 1}}\n"
    ));
    assert_key(&e, "base_model");
}

#[test]
fn missing_weight_names_the_model() {
    let e = fails(&format!(
        "merge_method: linear\nmodels:\n  - model: {A}\n  - model: {C}\n    parameters: {{weight: 1}}\n"
    ));
    assert_key(&e, "models[0].model");
    assert!(e.to_string().contains("needs a `weight`"), "{e}");
}

#[test]
fn slerp_t_out_of_range() {
    let e = fails(&format!(
        "merge_method: slerp\nbase_model: {BASE}\nparameters:\n  t: [0, 1.2]\nmodels:\n  - model: {BASE}\n  - model: {A}\n"
    ));
    assert_key(&e, "parameters.t");
}

#[test]
fn della_epsilon_must_keep_probabilities_inside() {
    let e = fails(&format!(
        "merge_method: della\nbase_model: {BASE}\nmodels:\n  - model: {A}\n    parameters: {{weight: 1, density: 0.3, epsilon: 0.4}}\n"
    ));
    assert_key(&e, "models[0].parameters.epsilon");
}

#[test]
fn layer_range_past_the_end() {
    let e = fails(&format!(
        "merge_method: passthrough\nslices:\n  - sources:\n      - model: {A}\n        layer_range: [0, 2]\n  - sources:\n      - model: {B}\n        layer_range: [2, 4]\n"
    ));
    assert_key(&e, "slices[1].sources[0].layer_range");
}

#[test]
fn unknown_method_and_bad_yaml() {
    assert_key(
        &fails(&format!("merge_method: tie\nmodels: [{{model: {A}}}]\n")),
        "merge_method",
    );
    let e = fails("merge_method: linear\nmodels: [\n");
    assert!(matches!(e, Error::Yaml { .. }) && e.is_bad_input(), "{e}");
    assert_key(
        &fails(&format!(
            "merge_method: linear\nmodels: [{{model: {A}}}]\nslices: []\n"
        )),
        "slices",
    );
    assert_key(&fails("merge_method: linear\nmodules: {}\n"), "modules");
}

fn write_model(path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let infos: Vec<TensorInfo> = tensors
        .iter()
        .map(|(n, s)| TensorInfo {
            name: n.to_string(),
            dtype: DType::F32,
            shape: s.clone(),
        })
        .collect();
    write_safetensors(path, &infos, &BTreeMap::new(), |i| {
        let n: usize = infos[i].shape.iter().product();
        Ok(Cow::Owned(
            encode_f32(
                &(0..n)
                    .map(|k| k as f32 * 0.01 + i as f32)
                    .collect::<Vec<_>>(),
                DType::F32,
            )
            .unwrap(),
        ))
    })
    .unwrap();
}

#[test]
fn shape_mismatch_names_tensor_and_models() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.safetensors");
    let y = dir.path().join("y.safetensors");
    write_model(
        &x,
        &[
            ("layers.0.weight", vec![4, 4]),
            ("layers.1.weight", vec![4, 4]),
        ],
    );
    write_model(
        &y,
        &[
            ("layers.0.weight", vec![4, 4]),
            ("layers.1.weight", vec![4, 5]),
        ],
    );
    let e = fails(&format!(
        "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 1}}\n  - model: {}\n    parameters: {{weight: 1}}\n",
        x.display(),
        y.display()
    ));
    let s = e.to_string();
    assert!(
        s.contains("layers.1.weight") && s.contains("[4, 5]") && s.contains("y.safetensors"),
        "{s}"
    );
    assert!(e.is_bad_input());
}

#[test]
fn missing_tensor_names_model_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.safetensors");
    let y = dir.path().join("y.safetensors");
    write_model(
        &x,
        &[("layers.0.weight", vec![4]), ("norm.weight", vec![4])],
    );
    write_model(&y, &[("layers.0.weight", vec![4])]);
    let e = fails(&format!(
        "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 1}}\n  - model: {}\n    parameters: {{weight: 1}}\n",
        x.display(),
        y.display()
    ));
    let s = e.to_string();
    assert!(
        s.contains("norm.weight") && s.contains("models[1].model"),
        "{s}"
    );
}

#[test]
fn a_failure_while_merging_leaves_nothing() {
    // multislerp of a vector and its negation with equal weights has no mean direction: the
    // merge fails at run time (not bad input), after some tensors were written.
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.safetensors");
    let y = dir.path().join("y.safetensors");
    let z = dir.path().join("z.safetensors");
    write_model(&x, &[("a.weight", vec![4]), ("layers.0.weight", vec![4])]);
    write_model(&y, &[("a.weight", vec![4]), ("layers.0.weight", vec![4])]);
    // z = -y for layers.0 only.
    let infos = vec![
        TensorInfo {
            name: "a.weight".into(),
            dtype: DType::F32,
            shape: vec![4],
        },
        TensorInfo {
            name: "layers.0.weight".into(),
            dtype: DType::F32,
            shape: vec![4],
        },
    ];
    write_safetensors(&z, &infos, &BTreeMap::new(), |i| {
        let v: Vec<f32> = (0..4)
            .map(|k| {
                if i == 0 {
                    k as f32 * 0.01
                } else {
                    -(k as f32 * 0.01 + 1.0)
                }
            })
            .collect();
        Ok(Cow::Owned(encode_f32(&v, DType::F32).unwrap()))
    })
    .unwrap();
    let e = fails(&format!(
        "merge_method: multislerp\nmodels:\n  - model: {}\n    parameters: {{weight: 1}}\n  - model: {}\n    parameters: {{weight: 1}}\n  - model: {}\n    parameters: {{weight: 2}}\n",
        x.display(),
        y.display(),
        z.display()
    ));
    assert!(matches!(e, Error::Compute { .. }), "{e}");
    assert!(!e.is_bad_input());
}

#[test]
fn output_that_exists_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "x").unwrap();
    let cfg = MergeConfig::parse(
        &format!("merge_method: linear\nmodels:\n  - model: {A}\n    parameters: {{weight: 1}}\n"),
        Path::new("c.yaml"),
    )
    .unwrap();
    let p = plan(cfg, &PlanOptions::default()).unwrap();
    let e = execute(&p, &out, &ExecOptions::default(), |_, _| {}).unwrap_err();
    assert!(matches!(e, Error::Output { .. }) && e.is_bad_input(), "{e}");
    assert!(out.join("keep.txt").exists());
    // With overwrite it is replaced.
    execute(
        &p,
        &out,
        &ExecOptions {
            overwrite: true,
            ..Default::default()
        },
        |_, _| {},
    )
    .unwrap();
    assert!(!out.join("keep.txt").exists() && out.join("model.safetensors").exists());
}
