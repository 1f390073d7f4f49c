//! The HTML report: self-contained, deterministic, with the plots it promises.

mod common;

use weightspace_analyze::report::{ReportOptions, build, render};
use weightspace_io::Checkpoint;

#[test]
fn report_is_self_contained_and_has_every_section() {
    let dir = tempfile::tempdir().unwrap();
    let tree = common::fine_tune_tree(4, 3);
    let mut models = Vec::new();
    for (i, m) in tree.models.iter().enumerate() {
        let p = dir.path().join(format!("m{i}.safetensors"));
        common::write_f32(&p, &m.tensors());
        models.push((format!("m{i} <&>"), Checkpoint::open(&p).unwrap()));
    }
    let data = build(&models, &ReportOptions::default(), &|| {}).unwrap();
    let html = render(&data, 24);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.ends_with("</html>\n"));
    // Nothing is loaded from anywhere: no scripts, no external resources.
    assert!(!html.contains("<script"));
    assert!(!html.contains("src="));
    assert!(!html.contains("href=\"http"));
    assert!(!html.contains("url(http"));
    // Labels are escaped.
    assert!(html.contains("m0 &lt;&amp;&gt;"));
    assert!(!html.contains("m0 <&>"));
    for id in ["overview", "similarity", "lineage", "model0", "model3"] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "missing section {id}"
        );
    }
    // One ESD plot per 2-D weight per model, an α chart per model, a heat map, a tree.
    assert_eq!(html.matches("<title>linear.weight (α =").count(), 4);
    assert_eq!(html.matches("<title>α per layer</title>").count(), 4);
    assert!(html.contains("<title>cosine similarity</title>"));
    assert!(html.contains("<title>lineage</title>"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    // Deterministic.
    let again = render(
        &build(&models, &ReportOptions::default(), &|| {}).unwrap(),
        24,
    );
    assert_eq!(html, again);
}

/// The heat map is over parameters only, and the page says which buffers it left out (an integer
/// tensor shared by two otherwise unrelated models made them look alike).
#[test]
fn report_similarity_leaves_out_buffers_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut models = Vec::new();
    for (i, seed) in [(0usize, 1u64), (1, 2)] {
        let p = dir.path().join(format!("m{i}.safetensors"));
        let w: Vec<f32> = (0..64)
            .map(|k| (((k as u64 * 2654435761) ^ (seed * 40503)) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let infos = vec![
            weightspace_io::TensorInfo {
                name: "embeddings.position_ids".into(),
                dtype: weightspace_io::DType::I64,
                shape: vec![1, 512],
            },
            weightspace_io::TensorInfo {
                name: "dense.weight".into(),
                dtype: weightspace_io::DType::F32,
                shape: vec![8, 8],
            },
        ];
        weightspace_io::write_safetensors(&p, &infos, &Default::default(), |t| {
            Ok(std::borrow::Cow::Owned(if t == 0 {
                (0..512i64).flat_map(|x| x.to_le_bytes()).collect()
            } else {
                weightspace_io::encode_f32(&w, weightspace_io::DType::F32).unwrap()
            }))
        })
        .unwrap();
        models.push((format!("m{i}"), Checkpoint::open(&p).unwrap()));
    }
    let data = build(&models, &ReportOptions::default(), &|| {}).unwrap();
    let sim = data.similarity.as_ref().unwrap();
    assert_eq!(sim.pairs[0].tensors.len(), 1);
    let html = render(&data, 24);
    assert!(html.contains("Buffers are left out (1 tensor(s)"), "{html}");
    assert!(html.contains("<code>embeddings.position_ids</code>"));
}
