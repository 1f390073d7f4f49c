//! Golden tests: every deterministic method against `fixtures/make_golden.py`, a numpy
//! re-implementation of mergekit's formulas (configs and outputs committed beside it).

use std::path::Path;

use weightspace_io::Checkpoint;
use weightspace_merge::{ExecOptions, MergeConfig, PlanOptions, execute, plan};

fn merge_case(case: &str, out: &Path) {
    let cfg =
        MergeConfig::from_file(&Path::new("tests/fixtures/configs").join(format!("{case}.yaml")))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
    let p = plan(cfg, &PlanOptions::default()).unwrap_or_else(|e| panic!("{case}: {e}"));
    execute(&p, out, &ExecOptions::default(), |_, _| {}).unwrap_or_else(|e| panic!("{case}: {e}"));
}

fn check(case: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    merge_case(case, &out);
    let got = Checkpoint::open(&out).unwrap();
    let want =
        Checkpoint::open(Path::new("tests/fixtures/golden").join(format!("{case}.safetensors")))
            .unwrap();
    let mut gn: Vec<&str> = got.names().collect();
    let mut wn: Vec<&str> = want.names().collect();
    gn.sort();
    wn.sort();
    assert_eq!(gn, wn, "{case}: tensor names");
    let mut worst = 0f32;
    for name in wn {
        let g = got.tensor_f32(name).unwrap();
        let w = want.tensor_f32(name).unwrap();
        assert_eq!(
            got.info(name).unwrap().shape,
            want.info(name).unwrap().shape,
            "{case}: {name} shape"
        );
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            let err = (a - b).abs();
            worst = worst.max(err);
            assert!(
                err <= 2e-5 + 1e-4 * b.abs(),
                "{case}: {name}[{i}]: got {a}, numpy {b}"
            );
        }
    }
    eprintln!("{case}: max abs error {worst:e}");
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check(stringify!($name)); })*
    };
}

golden!(
    linear,
    linear_nonorm,
    slerp,
    nuslerp,
    nuslerp_rows,
    nuslerp_cols,
    multislerp,
    karcher,
    task_arithmetic,
    ties,
    ties_count_rescale,
    breadcrumbs,
    breadcrumbs_tiny_gamma,
    breadcrumbs_ties,
    model_stock,
    model_stock_filter_wise,
    sce,
    nearswap,
    passthrough_slices,
    linear_slices_precedence,
);

/// The example configs shipped in `examples/merge` parse (their models are placeholders).
#[test]
fn examples_parse() {
    let dir = Path::new("../../examples/merge");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let c = MergeConfig::from_file(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(c.warnings.is_empty(), "{}: {:?}", p.display(), c.warnings);
            n += 1;
        }
    }
    assert!(n >= 4);
}
