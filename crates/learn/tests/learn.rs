//! End to end on a tiny zoo trained here: loading, the split, every baseline, save/load,
//! predict, determinism, classification targets and errors.

use std::path::{Path, PathBuf};

use weightspace_learn::{self as learn, Error, LoadOptions, RunOptions, States, TrainConfig};
use weightspace_zoo::{TrainOptions, ZooConfig};

const ZOO: &str = r#"
name = "learn-test"
seed = 5

[defaults]
dataset = "digits"
epochs = 3
checkpoints = [0, 1, 3]
train_fraction = 0.3

[[models]]
name = "mlp"
hidden = [8]
activation = ["relu", "tanh"]
lr = { log_uniform = [1e-4, 1e-1] }
samples = 10
"#;

fn make_zoo(dir: &Path, toml: &str) {
    let cfg = ZooConfig::from_toml_str(toml).unwrap();
    weightspace_zoo::train(&cfg, dir, &TrainOptions::default(), &|_| {}).unwrap();
}

fn opts(target: &str) -> LoadOptions {
    LoadOptions {
        target: target.into(),
        states: States::All,
        group: None,
    }
}

fn quick(_model: &str) -> TrainConfig {
    TrainConfig {
        epochs: 8,
        rounds: 60,
        hidden: 16,
        depth: 2,
        batch_size: 16,
        lr: 3e-3,
        ..TrainConfig::default()
    }
}

/// A temporary folder holding the tiny zoo (in `zoo/`), and the zoo loaded for test accuracy.
fn tiny_zoo() -> (tempfile::TempDir, PathBuf, learn::ZooData) {
    let tmp = tempfile::tempdir().unwrap();
    let zdir = tmp.path().join("zoo");
    make_zoo(&zdir, ZOO);
    let zoo = learn::load_zoo(&zdir, &opts("test_acc"), None).unwrap();
    (tmp, zdir, zoo)
}

#[test]
fn end_to_end_on_a_tiny_zoo() {
    let (tmp, zdir, zoo) = tiny_zoo();
    // 20 models (2 activations × 10 draws) × 3 states.
    assert_eq!(zoo.samples.len() + zoo.skipped, 60);
    assert_eq!(zoo.layout.layers.len(), 2);
    assert_eq!(
        (zoo.layout.layers[0].out, zoo.layout.layers[0].inp),
        (8, 64)
    );

    // The split is by model: no model on two sides, fixed by the seed.
    let s = learn::Split::by_model(&zoo.samples, 0).unwrap();
    for id in &s.test {
        assert!(!s.train.contains(id) && !s.val.contains(id));
    }
    for id in &s.val {
        assert!(!s.train.contains(id));
    }
    assert_eq!(s, learn::Split::by_model(&zoo.samples, 0).unwrap());
    assert_ne!(s, learn::Split::by_model(&zoo.samples, 1).unwrap());
    // Two models cannot be split three ways: an error (was: empty sides, NaN metrics).
    let first_two: Vec<_> = {
        let ids: Vec<&str> = s.train.iter().take(2).map(String::as_str).collect();
        zoo.samples
            .iter()
            .filter(|x| ids.contains(&x.model_id.as_str()))
            .cloned()
            .collect()
    };
    let e = learn::Split::by_model(&first_two, 0).unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("at least 3 models"),
        "{e}"
    );

    let last = learn::load_zoo(
        &zdir,
        &LoadOptions {
            states: States::Last,
            ..opts("test_acc")
        },
        None,
    )
    .unwrap();
    assert!(last.samples.iter().all(|s| s.epoch == 3));

    let models = learn::MODEL_NAMES;
    for &model in models {
        let run = RunOptions {
            model: model.into(),
            config: quick(model),
            seed: 1,
            split_seed: 0,
        };
        let t = learn::train(&zoo, &run, &mut |_| {}).unwrap();
        let tau = t.meta.test.tau.unwrap();
        assert!(tau.is_finite(), "{model}: τ {tau}");
        assert!(t.meta.test.r2.unwrap().is_finite());
        assert!(t.meta.epochs_run >= 1);

        // Save, load, same predictions.
        let out = tmp.path().join(model);
        t.save(&out).unwrap();
        let back = learn::Trained::load(&out).unwrap();
        let nets: Vec<&learn::NetWeights> = zoo.samples.iter().take(7).map(|s| &s.net).collect();
        assert_eq!(
            t.raw(&nets),
            back.raw(&nets),
            "{model}: reloaded model differs"
        );

        // Same seed, same model.
        let t2 = learn::train(&zoo, &run, &mut |_| {}).unwrap();
        assert_eq!(t.raw(&nets), t2.raw(&nets), "{model}: not deterministic");

        // predict on a checkpoint file.
        let f = zdir.join("models/mlp-0000/epoch_3.safetensors");
        let nets = learn::read_nets(&[f], &back.meta.layout).unwrap();
        let p = back.predict(&nets.iter().collect::<Vec<_>>());
        assert!(matches!(p[0], learn::Prediction::Value(v) if v.is_finite()));
    }

    // Augmentation runs and stays deterministic.
    {
        let mut cfg = quick("flat-mlp");
        cfg.augment = "perm,scale".parse().unwrap();
        cfg.epochs = 3;
        let run = RunOptions {
            model: "flat-mlp".into(),
            config: cfg,
            seed: 2,
            split_seed: 0,
        };
        let a = learn::train(&zoo, &run, &mut |_| {}).unwrap();
        let b = learn::train(&zoo, &run, &mut |_| {}).unwrap();
        assert_eq!(a.meta.test, b.meta.test);
    }

    // A categorical hyper-parameter is a classification target.
    let act = learn::load_zoo(&zdir, &opts("activation"), None).unwrap();
    assert_eq!(
        act.task,
        learn::Task::Classification {
            classes: vec!["relu".into(), "tanh".into()]
        }
    );
    let t = learn::train(
        &act,
        &RunOptions {
            model: "stats-gbm".into(),
            config: quick("stats-gbm"),
            seed: 0,
            split_seed: 0,
        },
        &mut |_| {},
    )
    .unwrap();
    let acc = t.meta.test.accuracy.unwrap();
    assert!((0.0..=1.0).contains(&acc));
    assert!(t.meta.test.tau.is_none());

    // Errors.
    let e = learn::load_zoo(&zdir, &opts("nonsense"), None).unwrap_err();
    assert!(matches!(e, Error::Target { .. }) && e.is_bad_input(), "{e}");
    let e = learn::load_zoo(&tmp.path().join("nope"), &opts("test_acc"), None).unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    let e = learn::train(
        &zoo,
        &RunOptions {
            model: "resnet".into(),
            config: TrainConfig::default(),
            seed: 0,
            split_seed: 0,
        },
        &mut |_| {},
    )
    .err()
    .unwrap();
    assert!(matches!(e, Error::UnknownModel(_)), "{e}");
    // A checkpoint of another architecture.
    let mut layout = zoo.layout.clone();
    layout.tensors[0].1 = vec![9, 64];
    let f = zdir.join("models/mlp-0000/epoch_3.safetensors");
    let e = learn::read_nets(&[f], &layout).unwrap_err();
    assert!(matches!(e, Error::Mismatch { .. }), "{e}");
}

/// burn draws every parameter from one global RNG. A model trained on one thread must come out
/// the same while another thread builds models (training, or loading a saved one), as in
/// `learn bench`, which trains its runs in parallel. Before loading took the init lock, this
/// test failed (the loads shifted nfn-hnp's initial draws).
#[test]
fn parallel_runs_are_reproducible() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (tmp, _, zoo) = tiny_zoo();
    let nets: Vec<&learn::NetWeights> = zoo.samples.iter().take(7).map(|s| &s.net).collect();
    let run = |model: &str, seed: u64| RunOptions {
        model: model.into(),
        config: TrainConfig {
            epochs: 3,
            ..quick(model)
        },
        seed,
        split_seed: 0,
    };
    let saved = tmp.path().join("dws");
    learn::train(&zoo, &run("dws", 3), &mut |_| {})
        .unwrap()
        .save(&saved)
        .unwrap();
    let alone = |model: &str, seed: u64| {
        learn::train(&zoo, &run(model, seed), &mut |_| {})
            .unwrap()
            .raw(&nets)
    };
    let (hnp, gnn) = (alone("nfn-hnp", 1), alone("ng-gnn", 2));
    // Two runs in parallel, and a third thread loading a saved model over and over until
    // both are done (loads start at once, so they overlap the runs' initialisation).
    let done = AtomicUsize::new(0);
    let (beside, loads) = std::thread::scope(|s| {
        let train = |model: &'static str, seed: u64| {
            let (zoo, nets, done, run) = (&zoo, &nets, &done, &run);
            s.spawn(move || {
                let r = learn::train(zoo, &run(model, seed), &mut |_| {}).unwrap();
                done.fetch_add(1, Ordering::SeqCst);
                r.raw(nets)
            })
        };
        let loader = s.spawn(|| {
            let mut loads = 0;
            while loads == 0 || done.load(Ordering::SeqCst) < 2 {
                learn::Trained::load(&saved).unwrap();
                loads += 1;
            }
            loads
        });
        let (a, b) = (train("nfn-hnp", 1), train("ng-gnn", 2));
        let beside = (a.join().unwrap(), b.join().unwrap());
        (beside, loader.join().unwrap())
    });
    assert!(loads > 1, "{loads} loads");
    assert_eq!(
        hnp, beside.0,
        "nfn-hnp differs when trained beside other runs"
    );
    assert_eq!(
        gnn, beside.1,
        "ng-gnn differs when trained beside other runs"
    );
}

/// A zoo whose MLPs differ only in dropout: PyTorch-style names number the modules, so a
/// dropout module shifts the output layer from `layers.2` to `layers.3`. Loading reads both
/// by layer role, and a network of other shapes is still refused.
#[test]
fn dropout_shifted_names_are_read_by_layer_role() {
    const DROPOUT_ZOO: &str = r#"
name = "dropout-names"
seed = 3

[defaults]
dataset = "digits"
epochs = 1
checkpoints = [1]
train_fraction = 0.2

[[models]]
name = "mlp"
hidden = [12]
dropout = [0.0, 0.3]
samples = 3
"#;
    let tmp = tempfile::tempdir().unwrap();
    let zdir = tmp.path().join("zoo");
    make_zoo(&zdir, DROPOUT_ZOO);
    let zoo = learn::load_zoo(&zdir, &opts("test_acc"), None).unwrap();
    assert_eq!(zoo.samples.len(), 6);
    assert_eq!(zoo.layout.layers.len(), 2);

    // Every sample holds its own file's values, whichever name the output layer has.
    let mut names = std::collections::BTreeSet::new();
    for s in &zoo.samples {
        let file = zdir
            .join("models")
            .join(&s.model_id)
            .join(format!("epoch_{}.safetensors", s.epoch));
        let ck = weightspace_io::Checkpoint::open(&file).unwrap();
        let params = learn::data::zoo_param_tensors(&ck).unwrap();
        assert_eq!(params.len(), 4);
        names.insert(params[2].0.clone());
        for (t, (name, _)) in s.net.tensors.iter().zip(&params) {
            assert_eq!(t, &ck.tensor_f32(name).unwrap(), "{}: {name}", s.model_id);
        }
    }
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["layers.2.weight", "layers.3.weight"]
    );

    // Same names, other shapes: refused, naming the tensor.
    let (_t2, other_dir, _) = tiny_zoo();
    let other = other_dir.join("models/mlp-0000/epoch_3.safetensors");
    let ck = weightspace_io::Checkpoint::open(&other).unwrap();
    let err = learn::NetWeights::from_checkpoint(&ck, &zoo.layout).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("expects [12, 64]"), "{err}");
}
