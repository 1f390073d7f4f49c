//! Spectral metrics against golden values made by `tests/golden/spectral_golden.py`: a numpy
//! transcription of WeightWatcher 0.7.7's definitions and WeightWatcher 0.7.7 itself, on fixed
//! matrices (Gaussian, Student-t, spiked low-rank, square, wide, small-N and a conv kernel).

use std::path::PathBuf;

use serde_json::Value;
use weightspace_analyze::spectral::{SpectralOptions, fit_power_law, spectral};
use weightspace_io::Checkpoint;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(golden_dir().join("spectral_golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn close(name: &str, key: &str, ours: f64, want: f64, rtol: f64) {
    let err = (ours - want).abs() / want.abs().max(1e-12);
    assert!(
        err <= rtol,
        "{name}.{key}: ours {ours} vs golden {want} (relative error {err:.3e} > {rtol:.0e})"
    );
}

fn report() -> weightspace_analyze::SpectralReport {
    let ck = Checkpoint::open(golden_dir().join("spectral_fixture.safetensors")).unwrap();
    let opts = SpectralOptions {
        randomize: false,
        ..Default::default()
    };
    spectral(&ck, &opts, &|| {}).unwrap()
}

fn check_against(source: &str) {
    let g = golden();
    let refs = g[source].as_object().expect("golden section");
    let rep = report();
    assert_eq!(rep.layers.len(), refs.len(), "layers analysed");
    for l in &rep.layers {
        let r = &refs[&l.name];
        // Eigenvalue-derived quantities: f64 Gram eigenvalues vs LAPACK SVD.
        for (key, ours) in [
            ("lambda_max", l.lambda_max),
            ("log_norm", l.log_norm),
            ("log_spectral_norm", l.log_spectral_norm),
            ("stable_rank", l.stable_rank),
            ("alpha", l.alpha),
            ("xmin", l.xmin),
            ("D", l.d),
            ("alpha_weighted", l.alpha_weighted),
        ] {
            close(&l.name, key, ours, r[key].as_f64().unwrap(), 1e-7);
        }
        assert_eq!(l.num_evals as f64, r["num_evals"].as_f64().unwrap());
        assert_eq!(l.num_pl_spikes as f64, r["num_pl_spikes"].as_f64().unwrap());
        // The MP fit: a grid search then Nelder–Mead on a piecewise objective.
        close(
            &l.name,
            "mp_softrank",
            l.mp_softrank,
            r["mp_softrank"].as_f64().unwrap(),
            1e-3,
        );
        assert_eq!(
            l.num_spikes.unwrap() as f64,
            r["num_spikes"].as_f64().unwrap(),
            "{}.num_spikes",
            l.name
        );
    }
}

#[test]
fn matches_numpy_transcription() {
    check_against("numpy");
    let g = golden();
    let rep = report();
    for l in &rep.layers {
        let r = &g["numpy"][&l.name];
        close(
            &l.name,
            "sigma",
            l.sigma,
            r["sigma"].as_f64().unwrap(),
            1e-7,
        );
        close(
            &l.name,
            "log_alpha_norm",
            l.log_alpha_norm,
            r["log_alpha_norm"].as_f64().unwrap(),
            1e-7,
        );
        close(
            &l.name,
            "bulk_max",
            l.bulk_max,
            r["bulk_max"].as_f64().unwrap(),
            1e-3,
        );
    }
}

#[test]
fn matches_weightwatcher() {
    let g = golden();
    if g["weightwatcher"].as_object().is_none_or(|o| o.is_empty()) {
        eprintln!("no WeightWatcher values in the golden file; skipped");
        return;
    }
    check_against("weightwatcher");
}

#[test]
fn summary_is_mean_of_layers() {
    let rep = report();
    let mean = rep.layers.iter().map(|l| l.alpha).sum::<f64>() / rep.layers.len() as f64;
    assert!((rep.summary.alpha - mean).abs() < 1e-12);
    assert_eq!(rep.summary.num_layers, 7);
}

#[test]
fn json_contract() {
    let rep = report();
    let v = serde_json::to_value(&rep).unwrap();
    let layer = &v["layers"][0];
    for key in [
        "name",
        "shape",
        "alpha",
        "alpha_weighted",
        "xmin",
        "D",
        "num_evals",
        "lambda_max",
        "log_norm",
        "log_spectral_norm",
        "stable_rank",
        "mp_softrank",
        "num_spikes",
    ] {
        assert!(layer.get(key).is_some(), "missing {key}");
    }
    assert!(v["summary"]["alpha"].is_number());
}

#[test]
fn randomized_traps_are_deterministic() {
    let ck = Checkpoint::open(golden_dir().join("spectral_fixture.safetensors")).unwrap();
    let opts = SpectralOptions::default();
    let a = spectral(&ck, &opts, &|| {}).unwrap();
    let b = spectral(&ck, &opts, &|| {}).unwrap();
    for (x, y) in a.layers.iter().zip(&b.layers) {
        assert_eq!(x.num_traps, y.num_traps);
        assert_eq!(x.rand_distance, y.rand_distance);
        assert!(x.num_traps.is_some());
    }
    // A shuffled Gaussian matrix has no traps; the spiked low-rank one keeps its spikes only
    // in the original order.
    let spiked = a.layers.iter().find(|l| l.name == "spiked").unwrap();
    assert!(spiked.num_spikes.unwrap() >= 3);
}

#[test]
fn max_dim_subsamples() {
    let ck = Checkpoint::open(golden_dir().join("spectral_fixture.safetensors")).unwrap();
    let opts = SpectralOptions {
        max_dim: Some(64),
        randomize: false,
        ..Default::default()
    };
    let rep = spectral(&ck, &opts, &|| {}).unwrap();
    let heavy = rep.layers.iter().find(|l| l.name == "heavy").unwrap();
    assert!(heavy.sampled);
    assert_eq!((heavy.n, heavy.m, heavy.num_evals), (64, 64, 64));
    let conv = rep.layers.iter().find(|l| l.name == "conv").unwrap();
    assert!(!conv.sampled);
}

#[test]
fn too_few_eigenvalues_is_no_fit() {
    assert!(fit_power_law(&[1.0]).is_none());
    assert!(fit_power_law(&[0.0, 1e-9, 2.0]).is_none());
}
