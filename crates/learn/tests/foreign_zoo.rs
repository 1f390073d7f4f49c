//! Zoos made by other tools (catalog.parquet with `model_id`, `file` and a label column,
//! safetensors without the zoo's metadata, no zoo.toml): they load for learning when the
//! models share an architecture, and every malformed catalog is refused with an error naming
//! the column, row or file — never a panic.

#[path = "../../zoo/tests/foreign/mod.rs"]
mod foreign;

use foreign::{Col, Data, Fault};
use proptest::prelude::*;
use weightspace_learn::{self as learn, LoadOptions, RunOptions, States, Task, TrainConfig};

fn opts(target: &str) -> LoadOptions {
    LoadOptions {
        target: target.into(),
        states: States::All,
        group: None,
    }
}

#[test]
fn a_foreign_zoo_loads_and_trains() {
    let d = tempfile::tempdir().unwrap();
    foreign::make_zoo(d.path(), 12);
    assert!(!d.path().join("zoo.toml").exists());
    let zoo = learn::load_zoo(d.path(), &opts("test_acc"), None).unwrap();
    assert_eq!((zoo.samples.len(), zoo.skipped), (12, 0));
    assert_eq!(zoo.task, Task::Regression);
    assert_eq!(zoo.layout.layers.len(), 2);
    assert_eq!((zoo.layout.layers[0].out, zoo.layout.layers[0].inp), (8, 4));
    assert!(zoo.samples.iter().all(|s| s.epoch == 0 && !s.homogeneous));
    let run = RunOptions {
        model: "stats-gbm".into(),
        config: TrainConfig {
            rounds: 20,
            ..TrainConfig::default()
        },
        seed: 0,
        split_seed: 0,
    };
    let t = learn::train(&zoo, &run, &mut |_| {}).unwrap();
    assert!(t.meta.test.n > 0);
}

#[test]
fn the_target_is_any_usable_column() {
    let d = tempfile::tempdir().unwrap();
    let mut cols = foreign::make_models(d.path(), 6);
    cols.push(Col::new(
        "label",
        Data::LargeStr((0..6).map(|i| Some(["cat", "dog"][i % 2].into())).collect()),
    ));
    cols.push(Col::new("sizes", Data::of_type(7, 6)));
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let zoo = learn::load_zoo(d.path(), &opts("label"), None).unwrap();
    assert_eq!(
        zoo.task,
        Task::Classification {
            classes: vec!["cat".into(), "dog".into()]
        }
    );
    // A list column is no target, and the error says why and which columns are.
    let e = learn::load_zoo(d.path(), &opts("sizes"), None).unwrap_err();
    let msg = e.to_string();
    assert!(e.is_bad_input(), "{msg}");
    assert!(
        msg.contains("column `sizes` has Arrow type List") && msg.contains("test_accuracy, label"),
        "{msg}"
    );
    let e = learn::load_zoo(d.path(), &opts("accuracy"), None).unwrap_err();
    assert!(e.to_string().contains("has no column `accuracy`"), "{e}");
    // A group filter on a catalog without groups says so.
    let e = learn::load_zoo(
        d.path(),
        &LoadOptions {
            group: Some("pop".into()),
            ..opts("label")
        },
        None,
    )
    .unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("no column `group`"),
        "{e}"
    );
}

#[test]
fn a_zoo_of_two_architectures_is_refused_by_file() {
    let d = tempfile::tempdir().unwrap();
    let cols = foreign::make_models(d.path(), 4);
    // Another architecture under model m3's file.
    let f = d.path().join("weights/m3.safetensors");
    weightspace_io::write_f32_safetensors(
        &f,
        &[
            ("net.0.weight", vec![5, 4], vec![0.1f32; 20]),
            ("net.0.bias", vec![5], vec![0.0; 5]),
        ],
        &Default::default(),
    )
    .unwrap();
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let e = learn::load_zoo(d.path(), &opts("test_acc"), None).unwrap_err();
    assert!(e.is_bad_input(), "{e}");
    assert!(e.to_string().contains("m3.safetensors"), "{e}");
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Nothing),
        (0usize..4).prop_map(Fault::Drop),
        (0usize..4, 0usize..8).prop_map(|(c, t)| Fault::Retype(c, t)),
        (0usize..4, 0usize..3).prop_map(|(c, r)| Fault::Null(c, r)),
        (0usize..3, 1usize..3).prop_map(|(a, d)| Fault::DuplicateId(a, (a + d) % 3)),
        (0usize..3, 1usize..3).prop_map(|(a, d)| Fault::DuplicateFile(a, (a + d) % 3)),
        (0usize..3).prop_map(Fault::MissingFile),
        (0usize..4).prop_map(Fault::DuplicateColumn),
        (0usize..8).prop_map(Fault::Extra),
        Just(Fault::KnownColumnAsText),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Loading for `learn` refuses every malformed catalog by name and loads every other one.
    #[test]
    fn malformed_catalogs_never_panic_learn(
        fault in fault(), n in 3usize..7, extra in 0usize..3, rotate in 0usize..8,
    ) {
        let d = tempfile::tempdir().unwrap();
        let cols = foreign::base_columns(d.path(), n);
        foreign::write_faulty(d.path(), cols, &fault, extra, rotate);
        let expected = match fault {
            // Without its column, the default target names the column it needs.
            Fault::Drop(2) => Some(vec!["no column `test_accuracy`".to_string()]),
            Fault::Retype(2, t) if !Data::of_type(t, 1).is_number() => {
                Some(vec!["column `test_accuracy` has Arrow type".to_string()])
            }
            ref f => foreign::expected_catalog_error(f),
        };
        match (expected, learn::load_zoo(d.path(), &opts("test_acc"), None)) {
            (None, Ok(z)) => {
                let nulls = usize::from(matches!(fault, Fault::Null(2, _)));
                prop_assert_eq!((z.samples.len(), z.skipped), (n - nulls, nulls));
            }
            (None, Err(e)) => prop_assert!(false, "{:?}: unexpected error {}", fault, e),
            (Some(needles), Ok(_)) => prop_assert!(false, "{:?}: loaded, expected {:?}", fault, needles),
            (Some(needles), Err(e)) => {
                prop_assert!(e.is_bad_input(), "{:?}: {} is not bad input", fault, e);
                let msg = e.to_string();
                for needle in needles {
                    prop_assert!(msg.contains(&needle), "{:?}: `{}` lacks `{}`", fault, msg, needle);
                }
            }
        }
    }
}
