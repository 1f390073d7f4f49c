//! Specs from checkpoints on disk: config.json beside the weights, TOML spec files.

use std::collections::BTreeMap;
use std::path::Path;

use weightspace_io::{Checkpoint, DType, TensorInfo, write_safetensors};
use weightspace_spec::{Family, GroupKind, Scaling, spec_for_checkpoint};

fn write(path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let infos: Vec<TensorInfo> = tensors
        .iter()
        .map(|(n, s)| TensorInfo {
            name: n.to_string(),
            dtype: DType::F32,
            shape: s.clone(),
        })
        .collect();
    write_safetensors(path, &infos, &BTreeMap::new(), |i| {
        Ok(vec![0u8; infos[i].nbytes()].into())
    })
    .unwrap();
}

fn gpt2() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("wte.weight", vec![10, 8]),
        ("wpe.weight", vec![4, 8]),
        ("h.0.ln_1.weight", vec![8]),
        ("h.0.ln_1.bias", vec![8]),
        ("h.0.attn.c_attn.weight", vec![8, 24]),
        ("h.0.attn.c_attn.bias", vec![24]),
        ("h.0.attn.c_proj.weight", vec![8, 8]),
        ("h.0.attn.c_proj.bias", vec![8]),
        ("h.0.attn.bias", vec![1, 1, 4, 4]),
        ("h.0.ln_2.weight", vec![8]),
        ("h.0.ln_2.bias", vec![8]),
        ("h.0.mlp.c_fc.weight", vec![8, 32]),
        ("h.0.mlp.c_fc.bias", vec![32]),
        ("h.0.mlp.c_proj.weight", vec![32, 8]),
        ("h.0.mlp.c_proj.bias", vec![8]),
        ("ln_f.weight", vec![8]),
        ("ln_f.bias", vec![8]),
    ]
}

#[test]
fn config_json_gives_heads() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("model.safetensors"), &gpt2());
    // Without config.json: no head groups, and a note saying why.
    let ck = Checkpoint::open(dir.path()).unwrap();
    let s = spec_for_checkpoint(&ck, dir.path(), None).unwrap();
    assert_eq!(s.family, Family::Gpt2);
    assert!(!s.groups.iter().any(|g| g.kind == GroupKind::Heads));
    assert!(s.notes.iter().any(|n| n.contains("heads unknown")));
    assert!(s.excluded.iter().any(|e| e.tensor == "h.0.attn.bias"));
    // With it: heads, within-head groups.
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "gpt2", "n_head": 2, "activation_function": "gelu_new"}"#,
    )
    .unwrap();
    let file = dir.path().join("model.safetensors");
    let ck = Checkpoint::open(&file).unwrap();
    let s = spec_for_checkpoint(&ck, &file, None).unwrap();
    let heads = s
        .groups
        .iter()
        .find(|g| g.kind == GroupKind::Heads)
        .unwrap();
    assert_eq!(heads.size, 2);
    assert_eq!(heads.members[0].layout.block, 4);
    assert_eq!(heads.members[0].layout.repeats, 3);
    assert!(s.groups.iter().any(|g| g.kind == GroupKind::QkDims));
    assert_eq!(s.facts.heads, Some(2));
}

#[test]
fn toml_spec_overrides_and_describes() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.safetensors");
    write(
        &m,
        &[
            ("enc.weight", vec![6, 3]),
            ("enc.bias", vec![6]),
            ("dec.weight", vec![2, 6]),
        ],
    );
    let ck = Checkpoint::open(&m).unwrap();
    // Facts only: activation makes the hidden group scalable.
    let f = dir.path().join("facts.toml");
    std::fs::write(&f, "activation = \"relu\"\n").unwrap();
    let s = spec_for_checkpoint(&ck, &m, Some(&f)).unwrap();
    assert_eq!(s.groups[0].scaling, Scaling::Positive);
    // Groups described outright.
    let g = dir.path().join("groups.toml");
    std::fs::write(
        &g,
        r#"
replace = true
[[groups]]
name = "h"
kind = "hidden"
size = 6
scaling = "sign"
members = [
  { tensor = "enc.weight", axis = 0 },
  { tensor = "enc.bias", axis = 0 },
  { tensor = "dec.weight", axis = 1, exp = -1 },
]
"#,
    )
    .unwrap();
    let s = spec_for_checkpoint(&ck, &m, Some(&g)).unwrap();
    assert_eq!(s.family, Family::Custom);
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].scaling, Scaling::Sign);
    // A member that does not fit is an error naming the tensor.
    std::fs::write(
        &g,
        "replace = true\n[[groups]]\nname = \"h\"\nkind = \"hidden\"\nsize = 7\nscaling = \"none\"\nmembers = [{ tensor = \"enc.weight\", axis = 0 }]\n",
    )
    .unwrap();
    let e = spec_for_checkpoint(&ck, &m, Some(&g))
        .unwrap_err()
        .to_string();
    assert!(e.contains("enc.weight"), "{e}");
    // Unknown keys are refused, naming the file.
    std::fs::write(&g, "hedas = 3\n").unwrap();
    let e = spec_for_checkpoint(&ck, &m, Some(&g))
        .unwrap_err()
        .to_string();
    assert!(e.contains("groups.toml") && e.contains("hedas"), "{e}");
}
