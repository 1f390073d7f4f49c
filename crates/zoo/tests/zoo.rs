//! End-to-end tests of zoo training on small zoos: determinism across thread counts,
//! resume after a simulated crash, sharding, fine-tune trees, config errors, exports.

use std::collections::BTreeMap;
use std::path::Path;

use weightspace_zoo::{self as zoo, Error, TrainOptions, ZooConfig};

const SMALL: &str = r#"
name = "small"
seed = 3

[defaults]
dataset = "digits"
epochs = 2
checkpoints = [0, 1, 2]
train_fraction = 0.25

[[models]]
name = "mlp"
hidden = [8]
activation = ["relu", "tanh"]
dropout = 0.1
lr = { log_uniform = [1e-3, 1e-2] }
samples = 2

[[models]]
name = "cnn"
arch = "cnn"
channels = [4, 4]
batchnorm = true
optimizer = "momentum"
lr = 0.05
augment = true

[[models]]
name = "ft"
init_from = "cnn"
label_permutation = 7
epochs = 1
checkpoints = [0, 1]
"#;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                if !rel.starts_with("ledger") {
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
    }
    out
}

fn train_in_pool(
    cfg: &ZooConfig,
    dir: &Path,
    threads: usize,
    opts: &TrainOptions,
) -> zoo::TrainSummary {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| zoo::train(cfg, dir, opts, &|_| {}))
        .unwrap()
}

#[test]
fn same_seed_same_bits_whatever_the_thread_count() {
    let cfg = ZooConfig::from_toml_str(SMALL).unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = train_in_pool(&cfg, a.path(), 1, &TrainOptions::default());
    train_in_pool(&cfg, b.path(), 2, &TrainOptions::default());
    assert_eq!(sa.models_planned, 6);
    assert_eq!(sa.catalog_rows, 4 * 3 + 3 + 2);
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (k, v) in &fa {
        assert!(v == &fb[k], "{k} differs between 1 and 2 threads");
    }
    assert!(fa.contains_key("catalog.parquet"));
    assert!(fa.contains_key("models/cnn-0000/epoch_2.safetensors"));
    assert_eq!(fa["zoo.toml"], SMALL.as_bytes());
}

#[test]
fn catalog_has_the_promised_columns_and_lineage() {
    let cfg = ZooConfig::from_toml_str(SMALL).unwrap();
    let d = tempfile::tempdir().unwrap();
    train_in_pool(&cfg, d.path(), 2, &TrainOptions::default());
    let rows = zoo::export::read_catalog(d.path()).unwrap();
    for col in [
        "model_id",
        "parent_id",
        "epoch",
        "seed",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "num_params",
        "file",
        "weights_hash",
        "generalization_gap",
        "lr",
    ] {
        assert!(rows[0].contains_key(col), "missing column {col}");
    }
    let child: Vec<_> = rows.iter().filter(|r| r["model_id"] == "ft-0000").collect();
    assert_eq!(child.len(), 2);
    assert_eq!(child[0]["parent_id"], "cnn-0000");
    assert!(
        rows.iter()
            .filter(|r| r["model_id"] == "mlp-0000")
            .all(|r| r["parent_id"].is_null())
    );
    // The child's epoch-0 state is its parent's last state (same tensors, same hash).
    let parent_last = rows
        .iter()
        .find(|r| r["model_id"] == "cnn-0000" && r["epoch"] == 2)
        .unwrap();
    assert_eq!(child[0]["weights_hash"], parent_last["weights_hash"]);
    // Accuracy improves on the digits.
    let m = |id: &str, e: i64| {
        rows.iter()
            .find(|r| r["model_id"] == id && r["epoch"] == e)
            .unwrap()["test_accuracy"]
            .as_f64()
            .unwrap()
    };
    let best = (0..4)
        .map(|i| m(&format!("mlp-{i:04}"), 2))
        .fold(0.0, f64::max);
    assert!(
        best > m("mlp-0000", 0) + 0.2,
        "best final MLP test accuracy {best}"
    );
    // The checkpoint loads back with PyTorch-style names, BatchNorm buffers included.
    let ck = weightspace_io::Checkpoint::open(d.path().join("models/cnn-0000/epoch_2.safetensors"))
        .unwrap();
    let names: Vec<&str> = ck.names().collect();
    assert_eq!(
        &names[..6],
        [
            "layers.0.weight",
            "layers.0.bias",
            "layers.1.weight",
            "layers.1.bias",
            "layers.1.running_mean",
            "layers.1.running_var"
        ]
    );
    assert!(ck.contains("layers.1.num_batches_tracked"));
    // Re-evaluating every checkpoint reproduces the catalog.
    let ev = zoo::export::eval_zoo(d.path()).unwrap();
    assert_eq!(ev.len(), rows.len());
    assert!(ev.iter().all(|r| r.matches), "{ev:?}");
}

#[test]
fn resume_after_a_crash_loses_and_duplicates_nothing() {
    let cfg = ZooConfig::from_toml_str(SMALL).unwrap();
    let full = tempfile::tempdir().unwrap();
    train_in_pool(&cfg, full.path(), 2, &TrainOptions::default());
    let d = tempfile::tempdir().unwrap();
    train_in_pool(&cfg, d.path(), 2, &TrainOptions::default());
    // Simulate kill -9: keep two ledger lines and half of the third, a temp file from an
    // interrupted atomic write, a checkpoint of an unfinished model, no catalog.
    let ledger = d.path().join("ledger/all.jsonl");
    let text = std::fs::read_to_string(&ledger).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = format!(
        "{}\n{}\n{}",
        lines[0],
        lines[1],
        &lines[2][..lines[2].len() / 2]
    );
    std::fs::write(&ledger, cut).unwrap();
    std::fs::write(
        d.path().join("models/mlp-0000/.epoch_1.safetensors.x1.tmp"),
        b"junk",
    )
    .unwrap();
    std::fs::remove_file(d.path().join("catalog.parquet")).unwrap();
    // Without --resume the folder is refused.
    let err = zoo::train(&cfg, d.path(), &TrainOptions::default(), &|_| {}).unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    let s = train_in_pool(
        &cfg,
        d.path(),
        1,
        &TrainOptions {
            resume: true,
            ..Default::default()
        },
    );
    assert_eq!(s.models_skipped, 2);
    assert_eq!(s.models_trained, 4);
    let (fa, fb) = (files(full.path()), files(d.path()));
    assert_eq!(fa, fb);
    let text = std::fs::read_to_string(&ledger).unwrap();
    let mut ids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["model_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!((n, ids.len()), (6, 6));
}

#[test]
fn shards_together_make_the_whole_zoo() {
    let cfg = ZooConfig::from_toml_str(SMALL).unwrap();
    let full = tempfile::tempdir().unwrap();
    train_in_pool(&cfg, full.path(), 2, &TrainOptions::default());
    let d = tempfile::tempdir().unwrap();
    for i in 0..3 {
        train_in_pool(
            &cfg,
            d.path(),
            1,
            &TrainOptions {
                shard: Some((i, 3)),
                resume: false,
            },
        );
    }
    assert_eq!(files(full.path()), files(d.path()));
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        ("[[models]]\nlearning_rate = 0.1", "models[0].learning_rate"),
        ("[[models]]\nlr = \"fast\"", "models[0].lr"),
        ("[[models]]\nlr = -1.0", "models[0].lr"),
        ("[[models]]\noptimizer = \"rmsprop\"", "models[0].optimizer"),
        (
            "[[models]]\nactivation = [\"relu\", \"swish\"]",
            "models[0].activation",
        ),
        (
            "[[models]]\nepochs = 2\ncheckpoints = [0, 5]",
            "models[0].checkpoints",
        ),
        ("[[models]]\nlr = { normal = [0, 1] }", "models[0].lr"),
        (
            "[[models]]\nname = \"a\"\n[[models]]\ninit_from = \"b\"",
            "models[1].init_from",
        ),
        ("[defaults]\nbatch = 3\n[[models]]", "defaults.batch"),
        ("sed = 1\n[[models]]", "sed"),
        ("[[models]]\ndataset = \"imagenet\"", "models[0].dataset"),
        ("[[models]]\ndataset = \"mnist\"", "models[0].data_path"),
        ("[[models]]\ndropout = 1.5", "models[0].dropout"),
    ];
    for (text, key) in cases {
        let err = ZooConfig::from_toml_str(text).unwrap_err();
        match &err {
            Error::Config { key: k, .. } => assert_eq!(k, key, "{text}: {err}"),
            other => panic!("{text}: expected a config error, got {other}"),
        }
        assert!(err.to_string().contains(key));
        assert!(err.is_bad_input());
    }
    assert!(matches!(
        ZooConfig::from_toml_str("[[models]"),
        Err(Error::Toml(_))
    ));
    // Architecture/data mismatches are found before training, naming the group.
    let cfg = ZooConfig::from_toml_str(
        "[[models]]\narch = \"cnn\"\nchannels = [4,4,4,4,4]\nkernel = 5\npadding = 0",
    )
    .unwrap();
    let d = tempfile::tempdir().unwrap();
    let err = zoo::train(&cfg, d.path(), &TrainOptions::default(), &|_| {}).unwrap_err();
    assert!(err.to_string().contains("models[0]"), "{err}");
    let cfg = ZooConfig::from_toml_str("[[models]]\nclasses = [1, 12]").unwrap();
    let err = zoo::train(
        &cfg,
        tempfile::tempdir().unwrap().path(),
        &TrainOptions::default(),
        &|_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("models[0].classes"), "{err}");
}

#[test]
fn grids_and_samples_expand_as_documented() {
    let cfg = ZooConfig::from_toml_str(
        "seed = 1\n[[models]]\nname = \"m\"\nactivation = [\"relu\", \"gelu\"]\nbatch_size = [16, 32, 64]\nlr = { uniform = [0.01, 0.02] }\nhidden = { grid = [[4], [8, 4]] }\nsamples = 2",
    )
    .unwrap();
    let plan = cfg.plan().unwrap();
    assert_eq!(plan.len(), 2 * 3 * 2 * 2);
    assert_eq!(plan[0].id, "m-0000");
    assert!(plan.iter().all(|p| (0.01..0.02).contains(&p.hp.lr)));
    assert!(plan.iter().any(|p| p.hp.hidden == vec![8, 4]));
    let seeds: std::collections::HashSet<u64> = plan.iter().map(|p| p.hp.seed).collect();
    assert_eq!(seeds.len(), plan.len());
    assert_eq!(
        plan,
        ZooConfig::from_toml_str(&cfg.text).unwrap().plan().unwrap()
    );
}

#[test]
fn other_datasets_train_from_tiny_files() {
    let d = tempfile::tempdir().unwrap();
    // MNIST-style IDX files, 20 train and 10 test 6x6 images, the test labels gzipped.
    let idx = |dims: &[u32], payload: &[u8]| {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for x in dims {
            b.extend_from_slice(&x.to_be_bytes());
        }
        b.extend_from_slice(payload);
        b
    };
    let img = |n: usize| {
        (0..n * 36)
            .map(|i| (i * 7 % 256) as u8)
            .collect::<Vec<u8>>()
    };
    let lab = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<u8>>();
    let m = d.path().join("mnist");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(
        m.join("train-images-idx3-ubyte"),
        idx(&[20, 6, 6], &img(20)),
    )
    .unwrap();
    std::fs::write(m.join("train-labels-idx1-ubyte"), idx(&[20], &lab(20))).unwrap();
    std::fs::write(m.join("t10k-images-idx3-ubyte"), idx(&[10, 6, 6], &img(10))).unwrap();
    {
        use std::io::Write;
        let f = std::fs::File::create(m.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        gz.write_all(&idx(&[10], &lab(10))).unwrap();
        gz.finish().unwrap();
    }
    // CIFAR-10 binary: 4 train records in batch 1, 2 test records.
    let c = d.path().join("cifar");
    std::fs::create_dir(&c).unwrap();
    let rec = |n: usize| {
        (0..n)
            .flat_map(|i| {
                std::iter::once((i % 10) as u8).chain((0..3072).map(move |j| ((i + j) % 256) as u8))
            })
            .collect::<Vec<u8>>()
    };
    std::fs::write(c.join("data_batch_1.bin"), rec(4)).unwrap();
    std::fs::write(c.join("test_batch.bin"), rec(2)).unwrap();
    let text = format!(
        r#"
[defaults]
epochs = 1
batch_size = 4
[[models]]
name = "mnist"
dataset = "mnist"
data_path = "{m}"
arch = "cnn"
channels = [2]
[[models]]
name = "cifar"
dataset = "cifar10"
data_path = "{c}"
hidden = [4]
[[models]]
name = "syn"
dataset = ["blobs", "moons", "regression1d", "regression2d"]
n_train = 40
n_test = 10
"#,
        m = m.display(),
        c = c.display()
    );
    let cfg = ZooConfig::from_toml_str(&text).unwrap();
    let out = d.path().join("zoo");
    let s = zoo::train(&cfg, &out, &TrainOptions::default(), &|_| {}).unwrap();
    assert_eq!(s.models_trained, 6);
    let rows = zoo::export::read_catalog(&out).unwrap();
    let np = |id: &str| {
        rows.iter().find(|r| r["model_id"] == id).unwrap()["num_params"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(np("mnist-0000"), 2 * 9 + 2 + 2 * 10 + 10);
    assert_eq!(np("cifar-0000"), 3072 * 4 + 4 + 4 * 10 + 10);
    // Corrupt IDX files are named in the error.
    std::fs::write(m.join("train-labels-idx1-ubyte"), idx(&[19], &lab(19))).unwrap();
    let err = zoo::data::read_idx_dir(&m).unwrap_err();
    assert!(err.to_string().contains("train-labels-idx1-ubyte"), "{err}");
}

#[test]
fn npz_export_is_a_valid_numpy_archive() {
    let cfg = ZooConfig::from_toml_str(SMALL).unwrap();
    let d = tempfile::tempdir().unwrap();
    train_in_pool(&cfg, d.path(), 2, &TrainOptions::default());
    let out = d.path().join("zoo.npz");
    let s = zoo::export::export_npz(d.path(), &out).unwrap();
    assert_eq!(s.states, 17);
    let mut z = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let names: Vec<String> = (0..z.len())
        .map(|i| z.by_index(i).unwrap().name().unwrap().to_string())
        .collect();
    for n in [
        "weights.npy",
        "model_id.npy",
        "test_accuracy.npy",
        "parent_id.npy",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing");
    }
    let mut w = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name("weights.npy").unwrap(), &mut w).unwrap();
    assert!(w.starts_with(b"\x93NUMPY\x01\x00"));
    let hlen = u16::from_le_bytes([w[8], w[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0);
    let header = std::str::from_utf8(&w[10..10 + hlen]).unwrap();
    assert!(
        header.contains(&format!("'shape': (17, {})", s.max_params)),
        "{header}"
    );
    assert_eq!(w.len(), 10 + hlen + 17 * s.max_params * 4);
}

/// The first integer in `text` followed, within two words, by a word starting with one of
/// `nouns`.
fn count_before(text: &str, nouns: &[&str]) -> Option<usize> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.iter().enumerate().find_map(|(i, w)| {
        let n: usize = w.parse().ok()?;
        words[i + 1..(i + 3).min(words.len())]
            .iter()
            .any(|x| nouns.iter().any(|p| x.starts_with(p)))
            .then_some(n)
    })
}

/// Every shipped zoo config says in its header how many networks it trains, and the tiny
/// (quickstart) zoo says it per group too: those comments must match the plan.
#[test]
fn shipped_zoo_comments_match_what_they_train() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zoos");
    let mut checked = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = weightspace_zoo::config::ZooConfig::from_toml_str(&text).unwrap();
        let plan = cfg.plan().unwrap();
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join(" ");
        let said = count_before(&header, &["networks", "CNNs", "MLPs", "small"])
            .unwrap_or_else(|| panic!("{}: no model count in the header", path.display()));
        assert_eq!(said, plan.len(), "{}: header says {said}", path.display());
        if path.file_stem().unwrap() == "tiny" {
            let groups: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("[[models]]"))
                .collect();
            for (gi, line) in groups.iter().enumerate() {
                let comment = line.split_once('#').map(|x| x.1).unwrap_or("");
                let said = count_before(comment, &["MLPs", "small", "CNNs", "parents", "children"])
                    .unwrap_or_else(|| panic!("tiny.toml group {gi}: no count in {line:?}"));
                let n = plan.iter().filter(|m| m.group_index == gi).count();
                assert_eq!(said, n, "tiny.toml group {gi}: {line:?}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 5);
}
