//! Catalogs written by other tools: whatever their columns, types, nulls, ids and files,
//! reading one either works or fails with an error naming the column, row or file — never a
//! panic.

mod foreign;

use foreign::{Col, Data, Fault};
use proptest::prelude::*;
use weightspace_zoo::{Catalog, CatalogProblem, ColumnKind, Error};

fn fault() -> impl Strategy<Value = Fault> {
    // Rows a != b are drawn below from 0..3 (every catalog has at least 3 rows).
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

    /// Every fault is refused with a precise, bad-input error; everything else reads.
    #[test]
    fn malformed_catalogs_are_refused_by_name(
        fault in fault(), n in 3usize..7, extra in 0usize..3, rotate in 0usize..8,
    ) {
        let d = tempfile::tempdir().unwrap();
        let cols = foreign::base_columns(d.path(), n);
        foreign::write_faulty(d.path(), cols, &fault, extra, rotate);
        let got = Catalog::open(d.path());
        match (foreign::expected_catalog_error(&fault), got) {
            (None, Ok(cat)) => prop_assert_eq!(cat.rows.len(), n),
            (None, Err(e)) => prop_assert!(false, "{:?}: unexpected error {}", fault, e),
            (Some(needles), Ok(_)) => prop_assert!(false, "{:?}: read, expected {:?}", fault, needles),
            (Some(needles), Err(e)) => {
                prop_assert!(e.is_bad_input(), "{:?}: {} is not bad input", fault, e);
                prop_assert!(matches!(e, Error::BadCatalog { .. }), "{:?}: {:?}", fault, e);
                let msg = e.to_string();
                for needle in needles {
                    prop_assert!(msg.contains(&needle), "{:?}: `{}` lacks `{}`", fault, msg, needle);
                }
            }
        }
    }
}

#[test]
fn foreign_types_read_by_family() {
    let d = tempfile::tempdir().unwrap();
    let mut cols = foreign::make_models(d.path(), 3);
    for t in 0..8 {
        cols.push(Col::new(&format!("c{t}"), Data::of_type(t, 3)));
    }
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let cat = Catalog::open(d.path()).unwrap();
    let kind = |n: &str| cat.column(n).unwrap().kind;
    assert_eq!(kind("c1"), ColumnKind::Text, "LargeUtf8 is text");
    assert_eq!(kind("c3"), ColumnKind::Int, "Int32 is an integer");
    assert_eq!(kind("c5"), ColumnKind::Float, "Float32 is a float");
    assert_eq!(kind("c7"), ColumnKind::Other);
    assert_eq!(cat.rows[2]["c1"], "w2");
    assert_eq!(cat.rows[2]["c3"], 3);
    assert_eq!(cat.rows[2]["c5"], 0.5);
    assert_eq!(
        cat.rows[1]["c7"], "[1, 16]",
        "other types read as Arrow's display text"
    );
    // No epoch column: every model is one state at epoch 0.
    assert_eq!(Catalog::epoch(&cat.rows[1]), 0);
    // Hyper-parameter columns may have any type (another tool's `hidden` as a list, `seed` as
    // text); the columns commands interpret may not.
    cols.push(Col::new("hidden", Data::of_type(7, 3)));
    cols.push(Col::new("seed", Data::of_type(0, 3)));
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let cat = Catalog::open(d.path()).unwrap();
    assert_eq!(cat.rows[0]["hidden"], "[0, 16]");
}

#[test]
fn integer_model_ids_read_as_text() {
    let d = tempfile::tempdir().unwrap();
    let mut cols = foreign::make_models(d.path(), 3);
    cols[0].data = Data::I32(vec![Some(7), Some(8), Some(9)]);
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let cat = Catalog::open(d.path()).unwrap();
    assert_eq!(Catalog::model_id(&cat.rows[2]), "9");
    // But a float id is refused by name.
    cols[0].data = Data::of_type(4, 3);
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let e = Catalog::open(d.path()).unwrap_err().to_string();
    assert!(
        e.contains("column `model_id` has Arrow type Float64, expected text or an integer"),
        "{e}"
    );
}

#[test]
fn errors_name_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let mut cols = foreign::base_columns(d.path(), 3);
    cols.remove(1);
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let e = Catalog::open(d.path()).unwrap_err();
    let Error::BadCatalog { problem, path } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(path, &d.path().join("catalog.parquet"));
    assert!(
        matches!(problem, CatalogProblem::MissingColumn { column, .. } if column == "file"),
        "{problem:?}"
    );
    assert!(
        e.to_string()
            .contains("the catalog has: model_id, test_accuracy, epoch"),
        "{e}"
    );
    // Not Parquet at all.
    std::fs::write(d.path().join("catalog.parquet"), b"model_id,file\n").unwrap();
    let e = Catalog::open(d.path()).unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("not a readable Parquet file"),
        "{e}"
    );
    // No catalog.
    std::fs::remove_file(d.path().join("catalog.parquet")).unwrap();
    let e = Catalog::open(d.path()).unwrap_err();
    assert!(
        e.is_bad_input() && e.to_string().contains("no catalog.parquet"),
        "{e}"
    );
}

/// One file named two ways (`weights/m0.safetensors`, `./weights/m0.safetensors`) is one file:
/// two models on it could sit on both sides of a train/test split.
#[test]
fn one_file_spelled_two_ways_is_a_duplicate() {
    let d = tempfile::tempdir().unwrap();
    let mut cols = foreign::make_models(d.path(), 3);
    if let foreign::Data::Str(files) = &mut cols[1].data {
        files[2] = Some("./weights/m0.safetensors".into());
    } else {
        panic!("file column is text");
    }
    foreign::write_catalog(&d.path().join("catalog.parquet"), &cols);
    let e = Catalog::open(d.path()).unwrap_err();
    assert!(
        matches!(
            &e,
            Error::BadCatalog {
                problem: CatalogProblem::DuplicateFile { .. },
                ..
            }
        ),
        "{e:?}"
    );
}
