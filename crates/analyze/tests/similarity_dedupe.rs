//! Similarity and dedupe on small checkpoints made here.

mod common;

use weightspace_analyze::dedupe::{DedupeOptions, dedupe};
use weightspace_analyze::discover::discover;
use weightspace_analyze::similarity::{SimilarityOptions, similarity};
use weightspace_io::Checkpoint;

fn ramp(n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * scale)
        .collect()
}

#[test]
fn similarity_per_tensor_and_overall() {
    let dir = tempfile::tempdir().unwrap();
    let a = ramp(1000, 0.01);
    let mut b = a.clone();
    b[0] += 1.0; // one element changes
    let c: Vec<f32> = a.iter().map(|x| -x).collect();
    let pa = dir.path().join("a.safetensors");
    let pb = dir.path().join("b.safetensors");
    common::write_f32(
        &pa,
        &[
            ("w".into(), vec![10, 100], a.clone()),
            ("only_a".into(), vec![3], vec![1.0; 3]),
        ],
    );
    common::write_f32(
        &pb,
        &[
            ("w".into(), vec![10, 100], b.clone()),
            ("neg".into(), vec![1000], c),
        ],
    );
    let models = vec![
        ("a".to_string(), Checkpoint::open(&pa).unwrap()),
        ("b".to_string(), Checkpoint::open(&pb).unwrap()),
    ];
    let rep = similarity(&models, &SimilarityOptions::default(), &|| {}).unwrap();
    assert_eq!(rep.pairs.len(), 1);
    let p = &rep.pairs[0];
    assert_eq!(p.tensors.len(), 1);
    assert_eq!(p.only_in_a, vec!["only_a"]);
    assert_eq!(p.only_in_b, vec!["neg"]);
    let t = &p.tensors[0];
    assert_eq!(t.changed, 0.001);
    // Reference values by hand: ‖a − b‖ = 1, ‖a‖ from the data.
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    assert!((t.rel_l2 - 1.0 / na).abs() < 1e-9);
    let ab: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    assert!((t.cosine - ab / (na * nb)).abs() < 1e-12);
    assert_eq!(rep.cosine_matrix[0][1], rep.cosine_matrix[1][0]);
    assert!((rep.rel_l2_matrix[1][0] - 1.0 / nb).abs() < 1e-9);
}

#[test]
fn dedupe_finds_exact_and_near_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let w = ramp(4096, 0.001);
    let emb = ramp(2048, 0.002);
    let mut w_near = w.clone();
    w_near.iter_mut().for_each(|x| *x *= 1.0001); // cosine 1, not equal
    let w_other: Vec<f32> = (0..4096).map(|i| ((i * 7919 % 997) as f32).sin()).collect();
    let base = vec![
        ("w".to_string(), vec![64, 64], w.clone()),
        ("emb".to_string(), vec![2048], emb.clone()),
    ];
    common::write_f32(&dir.path().join("a.safetensors"), &base);
    common::write_f32(&dir.path().join("a_copy.safetensors"), &base);
    common::write_f32(
        &dir.path().join("b_near.safetensors"),
        &[
            ("w".to_string(), vec![64, 64], w_near),
            ("emb".to_string(), vec![2048], emb.clone()),
        ],
    );
    common::write_f32(
        &dir.path().join("c_other.safetensors"),
        &[
            ("w".to_string(), vec![64, 64], w_other),
            ("emb".to_string(), vec![2048], emb),
        ],
    );
    std::fs::write(dir.path().join("notes.txt"), "not weights").unwrap();
    let paths = discover(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(paths.len(), 4, "{paths:?}");
    let models: Vec<(String, Checkpoint)> = paths
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                Checkpoint::open(p).unwrap(),
            )
        })
        .collect();
    let rep = dedupe(&models, &DedupeOptions::default(), &|| {}).unwrap();
    assert_eq!(
        rep.duplicate_models,
        vec![vec![
            "a.safetensors".to_string(),
            "a_copy.safetensors".to_string()
        ]]
    );
    // emb is stored 4 times, w twice exactly.
    let emb_bytes = 2048 * 4;
    let w_bytes = 4096 * 4;
    assert_eq!(rep.exact_bytes_saved, 3 * emb_bytes + w_bytes);
    // b_near's w is a near duplicate of a's w (and of a_copy's).
    assert_eq!(rep.near_duplicate_tensors.len(), 2);
    assert!(rep.near_duplicate_tensors.iter().all(|t| t.name == "w"));
    assert_eq!(rep.near_bytes_saved, w_bytes);
    assert_eq!(rep.near_duplicate_models.len(), 2);
    assert!(
        rep.near_duplicate_models
            .iter()
            .all(|m| m.b == "b_near.safetensors" && m.exact_tensors == 1 && m.near_tensors == 1)
    );
}

#[test]
fn dedupe_near_duplicate_across_dtypes() {
    // An f32 tensor and an f16-rounded copy: near duplicates of different sizes.
    let dir = tempfile::tempdir().unwrap();
    let w = ramp(1024, 0.01);
    common::write_f32(
        &dir.path().join("a.safetensors"),
        &[("w".into(), vec![32, 32], w.clone())],
    );
    common::write_f32(
        &dir.path().join("b.safetensors"),
        &[("w".into(), vec![32, 32], w.clone())],
    );
    let infos = vec![weightspace_io::TensorInfo {
        name: "w".into(),
        dtype: weightspace_io::DType::F16,
        shape: vec![32, 32],
    }];
    weightspace_io::write_safetensors(
        &dir.path().join("c_f16.safetensors"),
        &infos,
        &Default::default(),
        |_| {
            Ok(std::borrow::Cow::Owned(
                weightspace_io::encode_f32(&w, weightspace_io::DType::F16).unwrap(),
            ))
        },
    )
    .unwrap();
    let paths = discover(&[dir.path().to_path_buf()]).unwrap();
    let models: Vec<(String, Checkpoint)> = paths
        .iter()
        .map(|p| (p.display().to_string(), Checkpoint::open(p).unwrap()))
        .collect();
    let rep = dedupe(&models, &DedupeOptions::default(), &|| {}).unwrap();
    assert_eq!(rep.exact_bytes_saved, 4096);
    // Keeping the f32 copy, the f16 one (2 kB) is saved too.
    assert_eq!(rep.near_bytes_saved, 2048);
}

/// Writes `tensors` with the given dtypes (values encoded from f32).
fn write_typed(
    path: &std::path::Path,
    tensors: &[(&str, weightspace_io::DType, Vec<usize>, Vec<f32>)],
) {
    use weightspace_io::DType;
    let infos: Vec<weightspace_io::TensorInfo> = tensors
        .iter()
        .map(|(n, d, s, _)| weightspace_io::TensorInfo {
            name: n.to_string(),
            dtype: *d,
            shape: s.clone(),
        })
        .collect();
    weightspace_io::write_safetensors(path, &infos, &Default::default(), |i| {
        let (_, d, _, v) = &tensors[i];
        Ok(std::borrow::Cow::Owned(match d {
            DType::I64 => v.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect(),
            _ => weightspace_io::encode_f32(v, *d).unwrap(),
        }))
    })
    .unwrap();
}

#[test]
fn similarity_counts_parameters_only_and_lists_what_it_left_out() {
    // Two unrelated "BERTs" that share BERT's position_ids buffer (0..511 in every copy) and a
    // BatchNorm's running variance (all near 1): counting them made any two models look alike.
    use weightspace_io::DType;
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<f32> = (0..512).map(|i| i as f32).collect();
    let w_a = ramp(256, 0.01);
    let w_b: Vec<f32> = (0..256)
        .map(|i| ((i * 7919 % 997) as f32).sin() * 0.01)
        .collect();
    let (pa, pb) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    for (p, w) in [(&pa, &w_a), (&pb, &w_b)] {
        write_typed(
            p,
            &[
                (
                    "embeddings.position_ids",
                    DType::I64,
                    vec![1, 512],
                    ids.clone(),
                ),
                ("bn.running_var", DType::F32, vec![64], vec![1.0; 64]),
                ("dense.weight", DType::F32, vec![16, 16], w.clone()),
            ],
        );
    }
    let models = vec![
        ("a".to_string(), Checkpoint::open(&pa).unwrap()),
        ("b".to_string(), Checkpoint::open(&pb).unwrap()),
    ];
    let rep = similarity(&models, &SimilarityOptions::default(), &|| {}).unwrap();
    let p = &rep.pairs[0];
    assert_eq!(p.tensors.len(), 1);
    assert_eq!(p.tensors[0].name, "dense.weight");
    assert_eq!(p.shared_numel, 256);
    // The model-level cosine is the one parameter's, not inflated by the shared buffers.
    assert_eq!(p.cosine, p.tensors[0].cosine);
    assert!(p.cosine.abs() < 0.5, "{}", p.cosine);
    let names: Vec<&str> = p.excluded.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["embeddings.position_ids", "bn.running_var"]);
    assert!(p.excluded[0].reason.contains("integer"));
    assert!(p.excluded[1].reason.contains("BatchNorm"));

    // compare_values (the aligned path) leaves out the same tensors.
    use weightspace_analyze::similarity::{NamedValues, compare_values};
    let rv = vec![1.0f32; 64];
    let set = |w: &'static [f32]| {
        vec![
            NamedValues {
                name: "bn.running_var",
                shape: &[64],
                values: &rv,
            },
            NamedValues {
                name: "dense.weight",
                shape: &[16, 16],
                values: w,
            },
        ]
    };
    let (wa, wb): (&'static [f32], &'static [f32]) = (w_a.clone().leak(), w_b.clone().leak());
    let q = compare_values("a", &set(wa), "b", &set(wb), &SimilarityOptions::default());
    assert_eq!(q.tensors.len(), 1);
    assert_eq!(q.cosine, p.cosine);
}

#[test]
fn dedupe_f16_copy_with_zero_tensors_is_a_near_duplicate_model() {
    // As `convert --dtype f16` of a model whose biases are all zero: zero tensors have no cosine,
    // but two all-zero tensors are equal; small tensors are compared in full.
    use weightspace_io::DType;
    let dir = tempfile::tempdir().unwrap();
    let w = ramp(1024, 0.01);
    let t = |d: DType| {
        vec![
            ("w", d, vec![32, 32], w.clone()),
            ("big_zero_bias", d, vec![512], vec![0.0; 512]),
            ("small_zero_bias", d, vec![32], vec![0.0; 32]),
            ("small_bias", d, vec![32], ramp(32, 0.1)),
        ]
    };
    write_typed(&dir.path().join("a.safetensors"), &t(DType::F32));
    write_typed(&dir.path().join("b_f16.safetensors"), &t(DType::F16));
    // A model named twice (file and folder) is one model: each pair is listed once.
    let paths = discover(&[dir.path().join("a.safetensors"), dir.path().to_path_buf()]).unwrap();
    assert_eq!(paths.len(), 2, "{paths:?}");
    let models: Vec<(String, Checkpoint)> = paths
        .iter()
        .map(|p| (p.display().to_string(), Checkpoint::open(p).unwrap()))
        .collect();
    let rep = dedupe(&models, &DedupeOptions::default(), &|| {}).unwrap();
    assert_eq!(
        rep.near_duplicate_models.len(),
        1,
        "{:?}",
        rep.near_duplicate_models
    );
    let m = &rep.near_duplicate_models[0];
    assert_eq!((m.exact_tensors, m.near_tensors), (0, 4));
    assert!(m.min_cosine > 0.9999);
    // The large zero tensor is a near-duplicate tensor too (cosine 1).
    assert!(
        rep.near_duplicate_tensors
            .iter()
            .any(|t| t.name == "big_zero_bias" && t.cosine == 1.0)
    );
}
