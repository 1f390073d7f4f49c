//! End-to-end tests of `weightspace merge`: exit codes of bad configs, and align-then-merge on
//! zoo nets scored through the zoo runtime (`interp`).

use std::path::Path;

mod common;
use common::ws;

/// Everything in `dir`, for checking that a failed merge left nothing behind.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Trains two digits MLPs (seeds 1 and 2) and returns their final checkpoints.
fn zoo_pair(dir: &Path, hidden: usize, epochs: usize) -> (String, String) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    std::fs::write(
        p("pair.toml"),
        format!("name = \"pair\"\nseed = 0\n[defaults]\ndataset = \"digits\"\nepochs = {epochs}\ncheckpoints = [{epochs}]\nbatch_size = 32\noptimizer = \"adam\"\n[[models]]\nname = \"mlp\"\narch = \"mlp\"\nhidden = [{hidden}]\nactivation = \"relu\"\nlr = 0.01\nseed = [1, 2]\n"),
    )
    .unwrap();
    let (rc, _, err) = ws(&["zoo", "train", &p("pair.toml"), "-o", &p("z"), "-q"]);
    assert_eq!(rc, 0, "{err}");
    (
        p(&format!("z/models/mlp-0000/epoch_{epochs}.safetensors")),
        p(&format!("z/models/mlp-0001/epoch_{epochs}.safetensors")),
    )
}

#[test]
fn bad_configs_exit_2_and_write_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let (a, b) = zoo_pair(d.path(), 8, 1);
    let before = entries(d.path());
    let cases = [
        (
            format!(
                "merge_method: ties\nbase_model: {a}\nmodels:\n  - model: {b}\n    parameters: {{weight: 1.0, density: 1.5}}\n"
            ),
            "models[0].parameters.density",
        ),
        (
            format!("merge_method: lineer\nmodels:\n  - model: {a}\n  - model: {b}\n"),
            "merge_method",
        ),
        (
            format!(
                "merge_method: linear\nalign: sideways\nmodels:\n  - model: {a}\n  - model: {b}\n"
            ),
            "align",
        ),
        (
            format!(
                "merge_method: passthrough\nalign: weight\nslices:\n  - sources:\n      - model: {a}\n        layer_range: [0, 1]\n"
            ),
            "align",
        ),
        (
            format!(
                "merge_method: linear\nparameters: {{weight: 1.0}}\nmodels:\n  - model: {a}\n  - model: {}\n",
                p("missing.safetensors")
            ),
            "models[1].model",
        ),
    ];
    for (yaml, key) in cases {
        std::fs::write(p("c.yaml"), &yaml).unwrap();
        let (rc, _, err) = ws(&["merge", &p("c.yaml"), "-o", &p("out"), "--align", "weight"]);
        // `--align weight` on the command line must not hide config errors either.
        assert_eq!(rc, 2, "{yaml}\n{err}");
        assert!(err.contains(key), "{key}: {err}");
        let (rc, _, err) = ws(&["merge", &p("c.yaml"), "-o", &p("out")]);
        assert_eq!(rc, 2, "{yaml}\n{err}");
        let mut now = entries(d.path());
        now.retain(|n| n != "c.yaml");
        assert_eq!(now, before, "a failed merge left files: {err}");
    }
}

#[test]
fn align_then_merge_recovers_a_permuted_copy_and_helps_different_seeds() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let (a, b) = zoo_pair(d.path(), 64, 3);
    // B' = a permuted copy of A: the same function far away in weight space.
    let (rc, _, err) = ws(&["permute", &a, "-o", &p("ap.safetensors"), "--seed", "5"]);
    assert_eq!(rc, 0, "{err}");
    // Loss and accuracy of a merged model through the zoo runtime (the λ = 1 end of `interp`).
    let score = |merged: &str| -> (f64, f64) {
        let (rc, out, err) = ws(&["interp", &a, merged, "--steps", "2", "--json"]);
        assert_eq!(rc, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let pt = &v["naive"]["points"][1];
        (pt["loss"].as_f64().unwrap(), pt["acc"].as_f64().unwrap())
    };
    let merge = |other: &str, out: &str, align: bool| {
        let yaml = format!(
            "merge_method: linear\n{}models:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n  - model: {other}\n    parameters: {{weight: 0.5}}\ndtype: float32\n",
            if align { "align: weight\n" } else { "" }
        );
        let cfg = p(&format!("{out}.yaml"));
        std::fs::write(&cfg, yaml).unwrap();
        let (rc, stdout, err) = ws(&["merge", &cfg, "-o", &p(out)]);
        assert_eq!(rc, 0, "{err}");
        if align {
            assert!(stdout.contains("by weight matching"), "{stdout}");
        }
        p(&format!("{out}/model.safetensors"))
    };
    let (loss_a, acc_a) = score(&a);
    // A permuted copy: aligned, the merge is A itself; naive, it is much worse.
    let (loss_naive, acc_naive) = score(&merge(&p("ap.safetensors"), "naive", false));
    let (loss_al, acc_al) = score(&merge(&p("ap.safetensors"), "aligned", true));
    assert!((loss_al - loss_a).abs() < 1e-4, "{loss_al} vs {loss_a}");
    assert!((acc_al - acc_a).abs() < 1e-9, "{acc_al} vs {acc_a}");
    assert!(
        loss_naive > loss_al + 0.1 && acc_naive < acc_al,
        "naive {loss_naive}/{acc_naive}, aligned {loss_al}/{acc_al}"
    );
    // Two nets from different seeds: alignment lowers the merged model's loss.
    let (loss_n2, _) = score(&merge(&b, "naive2", false));
    let (loss_a2, _) = score(&merge(&b, "aligned2", true));
    assert!(loss_a2 < loss_n2, "aligned {loss_a2} vs naive {loss_n2}");
    // No aligned copies are left behind.
    assert!(
        !entries(d.path())
            .iter()
            .any(|n| n.starts_with(".weightspace-align")),
        "{:?}",
        entries(d.path())
    );
    // The same through the command-line flag.
    let cfg = p("flag.yaml");
    std::fs::write(
        &cfg,
        format!(
            "merge_method: linear\nparameters: {{weight: 1.0}}\nmodels:\n  - model: {a}\n  - model: {}\n",
            p("ap.safetensors")
        ),
    )
    .unwrap();
    let (rc, out, err) = ws(&[
        "merge",
        &cfg,
        "-o",
        &p("flag"),
        "--align",
        "weight",
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["aligned"][0]["l2_after"].as_f64().unwrap(), 0.0, "{out}");
}

/// The merge crate's tiny llama-style fixtures (`base`, `a`, `b`, `c`).
fn fixture(name: &str) -> String {
    format!(
        "{}/../merge/tests/fixtures/models/{name}.safetensors",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn unknown_config_keys_exit_2_with_a_suggestion_unless_lenient() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let (base, a) = (fixture("base"), fixture("a"));
    let cases = [
        (
            format!(
                "merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0, densty: 0.5}}\n"
            ),
            "`models[0].parameters.densty`: unknown parameter `densty`; did you mean `density`?",
        ),
        (
            format!(
                "merge_method: linear\ndtpye: float16\nmodels:\n  - model: {a}\n    parameters: {{weight: 1.0}}\n"
            ),
            "`dtpye`: unknown top-level key `dtpye`; did you mean `dtype`?",
        ),
        (
            format!(
                "merge_method: passthrough\nslices:\n  - sources:\n      - model: {a}\n        layer_rang: [0, 3]\n        layer_range: [0, 3]\n"
            ),
            "`slices[0].sources[0].layer_rang`: unknown key in a slice source `layer_rang`; did you mean `layer_range`?",
        ),
    ];
    for (yaml, want) in cases {
        std::fs::write(p("c.yaml"), &yaml).unwrap();
        let (rc, _, err) = ws(&["merge", &p("c.yaml"), "-o", &p("out")]);
        assert_eq!(rc, 2, "{yaml}\n{err}");
        assert!(err.contains(want), "{want}\n{err}");
        assert!(err.contains(&p("c.yaml")), "names the file: {err}");
        assert!(!d.path().join("out").exists());
        // --lenient: today's behaviour, a warning and a merge that ignores the key.
        let (rc, _, err) = ws(&["merge", &p("c.yaml"), "-o", &p("out"), "--lenient"]);
        assert_eq!(rc, 0, "{yaml}\n{err}");
        assert!(
            err.contains("warning:") && err.contains("did you mean"),
            "{err}"
        );
        std::fs::remove_dir_all(p("out")).unwrap();
    }
}

/// A model folder: weights, config.json and tokenizer files tagged with `tag`.
fn model_folder(dir: &std::path::Path, name: &str, weights: &str, tag: &str) -> String {
    let f = dir.join(name);
    std::fs::create_dir_all(&f).unwrap();
    std::fs::copy(weights, f.join("model.safetensors")).unwrap();
    std::fs::write(
        f.join("config.json"),
        format!("{{\"num_hidden_layers\": 3, \"torch_dtype\": \"float32\", \"tag\": \"{tag}\"}}"),
    )
    .unwrap();
    for t in ["tokenizer.json", "tokenizer_config.json", "vocab.txt"] {
        std::fs::write(f.join(t), format!("{t} of {tag}")).unwrap();
    }
    f.to_str().unwrap().to_string()
}

#[test]
fn merge_output_has_tokenizer_config_and_model_card() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let base = model_folder(d.path(), "base", &fixture("base"), "base");
    let a = model_folder(d.path(), "a", &fixture("a"), "a");
    let yaml = format!(
        "# a comment kept verbatim\nmerge_method: task_arithmetic\nbase_model: {base}\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n"
    );
    std::fs::write(p("c.yaml"), &yaml).unwrap();
    let (rc, _, err) = ws(&["merge", &p("c.yaml"), "-o", &p("out")]);
    assert_eq!(rc, 0, "{err}");
    // The folder and its files get the umask's permissions (as mkdir and cp give them), not
    // the temp folder's 0700 and temp files' 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        std::fs::create_dir(p("plain_dir")).unwrap();
        std::fs::File::create(p("plain_file")).unwrap();
        assert_eq!(mode(&p("out")), mode(&p("plain_dir")));
        assert_eq!(mode(&p("out/model.safetensors")), mode(&p("plain_file")));
        assert_eq!(mode(&p("out/README.md")), mode(&p("plain_file")));
    }
    let read = |f: &str| std::fs::read_to_string(d.path().join("out").join(f)).unwrap();
    // Without tokenizer_source: the base's tokenizer files and config.json, as mergekit.
    for t in ["tokenizer.json", "tokenizer_config.json", "vocab.txt"] {
        assert_eq!(read(t), format!("{t} of base"));
    }
    assert!(read("config.json").contains("\"base\""));
    // The model card: method, base, every source with its `weightspace hash` model hash, the
    // config verbatim and the version.
    let card = read("README.md");
    assert!(card.contains("`task_arithmetic` merge method"), "{card}");
    assert!(card.contains(&format!("`{base}` as the base")), "{card}");
    assert!(card.contains(&yaml), "{card}");
    assert!(
        card.contains(&format!("weightspace {}", env!("CARGO_PKG_VERSION"))),
        "{card}"
    );
    for m in [&base, &a] {
        let (rc, out, err) = ws(&["hash", &format!("{m}/model.safetensors"), "--json"]);
        assert_eq!(rc, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let h = v["files"][0]["model_hash"].as_str().unwrap();
        assert!(card.contains(&format!("| `{h}` |")), "{h}\n{card}");
    }
    assert_eq!(read("mergekit_config.yml"), yaml);
    // tokenizer_source: a model path copies that model's files; `base` the base's.
    for (src, tag) in [(a.as_str(), "a"), ("base", "base")] {
        std::fs::write(p("t.yaml"), format!("{yaml}tokenizer_source: {src}\n")).unwrap();
        let (rc, _, err) = ws(&["merge", &p("t.yaml"), "-o", &p("out"), "--overwrite"]);
        assert_eq!(rc, 0, "{err}");
        assert_eq!(read("tokenizer.json"), format!("tokenizer.json of {tag}"));
        assert!(read("config.json").contains("\"base\""));
    }
    // `union` is refused, saying what to use instead.
    std::fs::write(p("u.yaml"), format!("{yaml}tokenizer_source: union\n")).unwrap();
    let (rc, _, err) = ws(&["merge", &p("u.yaml"), "-o", &p("out2")]);
    assert_eq!(rc, 2, "{err}");
    assert!(
        err.contains("`tokenizer_source`")
            && err.contains("not supported")
            && err.contains("use `base` or a model path"),
        "{err}"
    );
    // A single weights file as base: no tokenizer, no config.json, still a card.
    std::fs::write(
        p("f.yaml"),
        format!(
            "merge_method: linear\nmodels:\n  - model: {}\n    parameters: {{weight: 1.0}}\n",
            fixture("a")
        ),
    )
    .unwrap();
    let (rc, _, err) = ws(&["merge", &p("f.yaml"), "-o", &p("out3")]);
    assert_eq!(rc, 0, "{err}");
    let mut files = entries(&d.path().join("out3"));
    files.sort();
    assert_eq!(
        files,
        ["README.md", "mergekit_config.yml", "model.safetensors"]
    );
}

#[test]
fn lora_extract_then_merge_on_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let (base, a) = (fixture("base"), fixture("a"));
    let (rc, out, err) = ws(&["lora", "extract", &base, &a, "--rank", "2", "-o", &p("ad")]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.contains("model.layers.0.mlp.up_proj") && out.contains('%'),
        "{out}"
    );
    assert!(err.contains("input_layernorm.weight changed"), "{err}");
    assert!(d.path().join("ad/adapter_model.safetensors").is_file());
    assert!(d.path().join("ad/adapter_config.json").is_file());
    #[cfg(unix)]
    {
        // The adapter folder has mkdir's permissions, not the temp folder's 0700.
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir(d.path().join("plain_dir")).unwrap();
        let mode = |f: &str| {
            std::fs::metadata(d.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("ad"), mode("plain_dir"));
    }
    let (rc, out, err) = ws(&[
        "lora",
        "merge",
        &base,
        &p("ad"),
        "-o",
        &p("m.safetensors"),
        "--json",
    ]);
    assert_eq!(rc, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // 12 LoRA-adapted weights and the two embeddings saved whole.
    assert_eq!(v["changed"].as_array().unwrap().len(), 14, "{out}");
    // The output exists now: refused without --overwrite; never the base itself; never a
    // name that says another format.
    for (o, want) in [
        (p("m.safetensors"), "--overwrite"),
        (base.clone(), "input"),
        (p("m.bin"), "writes safetensors"),
    ] {
        let (rc, _, err) = ws(&["lora", "merge", &base, &p("ad"), "-o", &o, "--overwrite"]
            [..if want == "--overwrite" { 6 } else { 7 }]);
        assert_eq!(rc, 2, "{o}: {err}");
        assert!(err.contains(want), "{o}: {err}");
    }
    assert!(!d.path().join("m.bin").exists());
    // An adapter whose targets the base lacks: exit 2, naming them, nothing written.
    let gpt2 = format!(
        "{}/../merge/tests/fixtures/lora/gpt2_adapter",
        env!("CARGO_MANIFEST_DIR")
    );
    let (rc, _, err) = ws(&["lora", "merge", &base, &gpt2, "-o", &p("bad.safetensors")]);
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("h.0.attn.c_attn.weight"), "{err}");
    assert!(!d.path().join("bad.safetensors").exists());
    // --rank 0 and a missing output flag are usage errors.
    let (rc, _, _) = ws(&["lora", "extract", &base, &a, "--rank", "0", "-o", &p("z")]);
    assert_eq!(rc, 2);
    let (rc, out, _) = ws(&["lora", "extract", "--help"]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("weightspace lora extract base/ finetuned/ --rank 16 -o my-adapter/"),
        "{out}"
    );
}
