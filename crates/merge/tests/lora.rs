//! LoRA merge and extraction against `fixtures/make_lora_golden.py`, a numpy restatement of
//! PEFT's merge and of mergekit-extract-lora (adapters, bases and outputs committed beside it).

use std::path::Path;

use weightspace_io::{Checkpoint, DType};
use weightspace_merge::Error;
use weightspace_merge::lora::{AdapterConfig, ExtractOptions, extract, merge_adapter};

const FX: &str = "tests/fixtures";

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: got {a}, numpy {b}"
        );
    }
}

fn compare_all(out: &Path, golden: &str) {
    let got = Checkpoint::open(out).unwrap();
    let want = Checkpoint::open(Path::new(FX).join("golden").join(golden)).unwrap();
    let mut gn: Vec<&str> = got.names().collect();
    let mut wn: Vec<&str> = want.names().collect();
    gn.sort();
    wn.sort();
    assert_eq!(gn, wn);
    for n in wn {
        assert_eq!(
            got.info(n).unwrap().shape,
            want.info(n).unwrap().shape,
            "{n}"
        );
        close(
            n,
            &got.tensor_f32(n).unwrap(),
            &want.tensor_f32(n).unwrap(),
            2e-6,
        );
    }
}

#[test]
fn merge_llama_adapter_rslora_patterns_and_embedding() {
    let d = tempfile::tempdir().unwrap();
    let base = Checkpoint::open(Path::new(FX).join("models/base.safetensors")).unwrap();
    let out = d.path().join("merged.safetensors");
    let r = merge_adapter(&base, &Path::new(FX).join("lora/llama_adapter"), &out, None).unwrap();
    compare_all(&out, "lora_llama_merged.safetensors");
    // 3 layers x (q_proj, up_proj) + the embedding.
    assert_eq!(r.changed.len(), 7, "{:?}", r.changed);
    let up2 = r
        .changed
        .iter()
        .find(|c| c.tensor == "model.layers.2.mlp.up_proj.weight")
        .unwrap();
    assert_eq!(up2.rank, 2);
    assert!((up2.scale - 3.0 / 2f64.sqrt()).abs() < 1e-12);
    // Unchanged tensors are copied bit for bit.
    let got = Checkpoint::open(&out).unwrap();
    assert_eq!(
        got.tensor("model.norm.weight").unwrap().bytes,
        base.tensor("model.norm.weight").unwrap().bytes
    );
}

#[test]
fn merge_gpt2_adapter_fan_in_fan_out_bias_and_modules_to_save() {
    let d = tempfile::tempdir().unwrap();
    let base = Checkpoint::open(Path::new(FX).join("lora/gpt2_base.safetensors")).unwrap();
    let out = d.path().join("merged.safetensors");
    let r = merge_adapter(&base, &Path::new(FX).join("lora/gpt2_adapter"), &out, None).unwrap();
    compare_all(&out, "lora_gpt2_merged.safetensors");
    let kinds: Vec<_> = r
        .changed
        .iter()
        .map(|c| (c.tensor.as_str(), c.kind))
        .collect();
    assert!(
        kinds.contains(&("h.0.attn.c_attn.bias", "lora_bias")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&("ln_f.weight", "replaced")), "{kinds:?}");
}

#[test]
fn merge_refuses_targets_missing_in_the_base_naming_them() {
    let d = tempfile::tempdir().unwrap();
    // The llama adapter against the GPT-2 base: every target is missing.
    let base = Checkpoint::open(Path::new(FX).join("lora/gpt2_base.safetensors")).unwrap();
    let out = d.path().join("merged.safetensors");
    let e =
        merge_adapter(&base, &Path::new(FX).join("lora/llama_adapter"), &out, None).unwrap_err();
    let msg = e.to_string();
    assert!(e.is_bad_input(), "{msg}");
    assert!(msg.contains("not in the base"), "{msg}");
    assert!(
        msg.contains("model.layers.0.self_attn.q_proj.weight"),
        "{msg}"
    );
    assert!(msg.contains("model.embed_tokens.weight"), "{msg}");
    assert!(!out.exists());
}

#[test]
fn adapter_config_refusals_and_scales() {
    let p = Path::new("adapter_config.json");
    let c = AdapterConfig::parse(r#"{"r": 8, "lora_alpha": 16}"#, p).unwrap();
    assert_eq!(c.scale("x.q_proj"), 2.0);
    let c = AdapterConfig::parse(r#"{"r": 16, "lora_alpha": 16, "use_rslora": true, "rank_pattern": {"q_proj": 4}, "alpha_pattern": {"layers.0.q_proj": 2}}"#, p).unwrap();
    assert_eq!(c.rank_alpha("model.layers.0.q_proj"), (4, 2.0));
    assert_eq!(c.rank_alpha("model.layers.10.q_proj"), (4, 16.0));
    assert_eq!(c.scale("model.layers.1.k_proj"), 4.0);
    for (bad, want) in [
        (r#"{"r": 8, "peft_type": "LOHA"}"#, "LOHA"),
        (r#"{"r": 8, "use_dora": true}"#, "DoRA"),
        (r#"{"lora_alpha": 8}"#, "`r`"),
        (
            r#"{"r": 8, "rank_pattern": {"^model.*q": 4}}"#,
            "regular expression",
        ),
    ] {
        let e = AdapterConfig::parse(bad, p).unwrap_err();
        assert!(e.to_string().contains(want), "{bad}: {e}");
        assert!(e.is_bad_input());
    }
}

fn opts(rank: usize) -> ExtractOptions {
    ExtractOptions {
        rank,
        dtype: DType::F32,
        base_name: "base".into(),
        overwrite: false,
        fan_in_fan_out: false,
    }
}

#[test]
fn extract_matches_numpy_svd_and_round_trips() {
    let d = tempfile::tempdir().unwrap();
    let base = Checkpoint::open(Path::new(FX).join("models/base.safetensors")).unwrap();
    let ft = Checkpoint::open(Path::new(FX).join("models/a.safetensors")).unwrap();
    let out = d.path().join("adapter");
    let r = extract(&base, &ft, &out, &opts(3), |_, _| {}).unwrap();
    let golden = Checkpoint::open(Path::new(FX).join("golden/lora_extract.safetensors")).unwrap();
    let ad = Checkpoint::open(out.join("adapter_model.safetensors")).unwrap();
    // 3 layers x 4 two-dimensional weights; embeddings saved whole; norms not captured.
    assert_eq!(r.modules.len(), 12);
    assert_eq!(
        r.saved_whole,
        ["lm_head.weight", "model.embed_tokens.weight"].map(String::from)
    );
    assert!(
        r.not_captured
            .iter()
            .any(|(n, _)| n == "model.layers.0.input_layernorm.weight")
    );
    for m in &r.modules {
        let a = ad
            .tensor_f32(&format!("base_model.model.{}.lora_A.weight", m.module))
            .unwrap();
        let b = ad
            .tensor_f32(&format!("base_model.model.{}.lora_B.weight", m.module))
            .unwrap();
        let (rows, cols, k) = (m.shape[0], m.shape[1], m.rank);
        assert_eq!(k, 3);
        let mut ba = vec![0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                ba[i * cols + j] = (0..k).map(|t| b[i * k + t] * a[t * cols + j]).sum();
            }
        }
        close(
            &format!("{}.BA", m.module),
            &ba,
            &golden.tensor_f32(&format!("{}.BA", m.module)).unwrap(),
            1e-5,
        );
        let s: Vec<f32> = m.singular_values.iter().map(|x| *x as f32).collect();
        close(
            &format!("{}.S", m.module),
            &s,
            &golden.tensor_f32(&format!("{}.S", m.module)).unwrap(),
            1e-5,
        );
        // The kept singular values are the squared row norms of A = sqrt(S) Vh.
        for (t, sv) in s.iter().enumerate() {
            let n2: f32 = a[t * cols..(t + 1) * cols].iter().map(|x| x * x).sum();
            assert!(
                (n2 - sv).abs() <= 1e-4 * (1.0 + sv),
                "{}: {n2} vs {sv}",
                m.module
            );
        }
        let e = golden.tensor_f32(&format!("{}.energy", m.module)).unwrap()[0];
        assert!(
            (m.energy as f32 - e).abs() < 1e-5,
            "{}: {} vs {e}",
            m.module,
            m.energy
        );
    }
    // The card names both models with their hashes and each module's energy.
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("library_name: peft"), "{card}");
    for m in &r.modules {
        let row = format!(
            "| `{}` | {:?} | 3 | {:.2}% |",
            m.module,
            m.shape,
            100.0 * m.energy
        );
        assert!(card.contains(&row), "{row}\n{card}");
    }
    for ck in [&base, &ft] {
        let h = ck.model_hash().unwrap().to_hex().to_string();
        assert!(card.contains(&h), "{h}\n{card}");
    }
    // adapter_config.json: PEFT's fields, mergekit's choices.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["r"], 3);
    assert_eq!(cfg["lora_alpha"], 3);
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(
        cfg["target_modules"],
        serde_json::json!(["down_proj", "k_proj", "q_proj", "up_proj"])
    );
    assert_eq!(
        cfg["modules_to_save"],
        serde_json::json!(["lm_head", "model.embed_tokens"])
    );
    // Merging the extracted adapter back gives base + the rank-3 reconstruction (and the
    // fine-tune's embeddings).
    let merged = d.path().join("back.safetensors");
    merge_adapter(&base, &out, &merged, None).unwrap();
    let m = Checkpoint::open(&merged).unwrap();
    for x in &r.modules {
        let name = format!("{}.weight", x.module);
        let want: Vec<f32> = base
            .tensor_f32(&name)
            .unwrap()
            .iter()
            .zip(
                golden
                    .tensor_f32(&format!("{}.BA", x.module))
                    .unwrap()
                    .iter(),
            )
            .map(|(w, d)| w + d)
            .collect();
        close(&name, &m.tensor_f32(&name).unwrap(), &want, 1e-5);
    }
    assert_eq!(
        m.tensor_f32("lm_head.weight").unwrap(),
        ft.tensor_f32("lm_head.weight").unwrap()
    );
}

#[test]
fn extract_rank_is_capped_by_the_shape_and_patterns_say_so() {
    let d = tempfile::tempdir().unwrap();
    let base = Checkpoint::open(Path::new(FX).join("models/base.safetensors")).unwrap();
    let ft = Checkpoint::open(Path::new(FX).join("models/a.safetensors")).unwrap();
    let out = d.path().join("adapter");
    // k_proj is [4, 8]: rank 6 is capped at 4 there.
    let r = extract(&base, &ft, &out, &opts(6), |_, _| {}).unwrap();
    let k = r
        .modules
        .iter()
        .find(|m| m.module == "model.layers.0.self_attn.k_proj")
        .unwrap();
    assert_eq!(k.rank, 4);
    assert!((k.energy - 1.0).abs() < 1e-12);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["r"], 6);
    assert_eq!(cfg["rank_pattern"]["model.layers.0.self_attn.k_proj"], 4);
    assert_eq!(cfg["alpha_pattern"]["model.layers.0.self_attn.k_proj"], 4);
    // The output folder exists now: a second run refuses without overwrite.
    let e = extract(&base, &ft, &out, &opts(6), |_, _| {}).unwrap_err();
    assert!(matches!(e, Error::Output { .. }), "{e}");
    // Identical models: nothing to extract.
    let e = extract(&base, &base, &d.path().join("none"), &opts(2), |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("nothing to extract"), "{e}");
    assert!(!d.path().join("none").exists());
}

/// Extracting from base + a rank-r LoRA at rank r gives the LoRA's update back exactly: merging
/// the extracted adapter reproduces the merged weights (the numpy golden), for both layouts.
#[test]
fn extracting_a_merged_lora_recovers_it() {
    let d = tempfile::tempdir().unwrap();
    for (base, merged, rank, fifo, adapted) in [
        (
            "models/base.safetensors",
            "golden/lora_llama_merged.safetensors",
            4,
            false,
            vec![
                "model.layers.0.self_attn.q_proj.weight",
                "model.layers.2.mlp.up_proj.weight",
            ],
        ),
        (
            "lora/gpt2_base.safetensors",
            "golden/lora_gpt2_merged.safetensors",
            3,
            true,
            vec!["h.0.attn.c_attn.weight", "h.0.mlp.c_fc.weight"],
        ),
    ] {
        let b = Checkpoint::open(Path::new(FX).join(base)).unwrap();
        let m = Checkpoint::open(Path::new(FX).join(merged)).unwrap();
        let out = d.path().join(format!("ad-{rank}"));
        let o = ExtractOptions {
            fan_in_fan_out: fifo,
            ..opts(rank)
        };
        let r = extract(&b, &m, &out, &o, |_, _| {}).unwrap();
        for x in &r.modules {
            assert!((x.energy - 1.0).abs() < 1e-9, "{}: {}", x.module, x.energy);
        }
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("adapter_config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["fan_in_fan_out"], fifo);
        let ad = Checkpoint::open(out.join("adapter_model.safetensors")).unwrap();
        for x in &r.modules {
            // lora_A is [r, in] whatever the storage layout.
            let a = ad
                .info(&format!("base_model.model.{}.lora_A.weight", x.module))
                .unwrap();
            let w_in = if fifo { x.shape[0] } else { x.shape[1] };
            assert_eq!(a.shape[1], w_in, "{}", x.module);
        }
        let back = d.path().join(format!("back-{rank}.safetensors"));
        merge_adapter(&b, &out, &back, None).unwrap();
        let back = Checkpoint::open(&back).unwrap();
        for name in adapted {
            close(
                name,
                &back.tensor_f32(name).unwrap(),
                &m.tensor_f32(name).unwrap(),
                1e-5,
            );
        }
    }
}

/// A difference with a NaN or an infinity has no factorisation and no energy share: refused,
/// naming the tensor (it was reported as "100% energy kept").
#[test]
fn non_finite_differences_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let w: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut bad = w.clone();
    bad[5] = f32::NAN;
    let (pb, pf) = (
        d.path().join("b.safetensors"),
        d.path().join("f.safetensors"),
    );
    weightspace_io::write_f32_safetensors(
        &pb,
        &[("m.q_proj.weight", vec![8, 8], w)],
        &Default::default(),
    )
    .unwrap();
    weightspace_io::write_f32_safetensors(
        &pf,
        &[("m.q_proj.weight", vec![8, 8], bad)],
        &Default::default(),
    )
    .unwrap();
    let (base, ft) = (
        Checkpoint::open(&pb).unwrap(),
        Checkpoint::open(&pf).unwrap(),
    );
    let out = d.path().join("ad");
    let e = extract(&base, &ft, &out, &opts(2), |_, _| {}).unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    assert!(
        e.to_string().contains("m.q_proj.weight") && e.to_string().contains("not finite"),
        "{e}"
    );
    assert!(!out.exists());
}
