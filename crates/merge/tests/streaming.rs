//! Memory stays near one output tensor: three 16 MB inputs merged with linear, task arithmetic
//! and ties while a thread samples the process's anonymous resident memory (Linux only; the
//! inputs are memory-mapped files, which do not count as anonymous memory).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use weightspace_io::{DType, TensorInfo, encode_f32, write_safetensors};
use weightspace_merge::{ExecOptions, MergeConfig, PlanOptions, execute, plan};

const N: usize = 4 << 20; // 4 Mi f32 = 16 MiB per tensor

fn rss_anon_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("RssAnon:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn write_big(path: &Path, seed: u32) {
    let infos = vec![
        TensorInfo {
            name: "layers.0.weight".into(),
            dtype: DType::F32,
            shape: vec![N / 1024, 1024],
        },
        TensorInfo {
            name: "norm.weight".into(),
            dtype: DType::F32,
            shape: vec![16],
        },
    ];
    write_safetensors(path, &infos, &BTreeMap::new(), |i| {
        let n: usize = infos[i].shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|k| {
                ((k as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed * 97)
                    % 1000) as f32
                    * 1e-3
                    - 0.5
            })
            .collect();
        Ok(Cow::Owned(encode_f32(&v, DType::F32).unwrap()))
    })
    .unwrap();
}

#[test]
fn peak_anonymous_memory_is_about_one_tensor() {
    if rss_anon_kb().is_none() {
        eprintln!("no /proc/self/status RssAnon: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("m{i}.safetensors")))
        .collect();
    for (i, p) in paths.iter().enumerate() {
        write_big(p, i as u32);
    }
    let tensor_kb = (N * 4 / 1024) as u64;
    for method in ["linear", "task_arithmetic", "ties"] {
        let yaml = format!(
            "merge_method: {method}\nbase_model: {}\nmodels:\n  - model: {}\n    parameters: {{weight: 0.5, density: 0.5}}\n  - model: {}\n    parameters: {{weight: 0.5, density: 0.5}}\n  - model: {}\n    parameters: {{weight: 0.5}}\n",
            paths[0].display(),
            paths[0].display(),
            paths[1].display(),
            paths[2].display()
        );
        let cfg = MergeConfig::parse(&yaml, Path::new("c.yaml")).unwrap();
        let p = plan(cfg, &PlanOptions::default()).unwrap();
        let before = rss_anon_kb().unwrap();
        let peak = Arc::new(AtomicU64::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(r) = rss_anon_kb() {
                        peak.fetch_max(r, Ordering::Relaxed);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })
        };
        let out = dir.path().join(format!("out-{method}"));
        execute(&p, &out, &ExecOptions::default(), |_, _| {}).unwrap();
        stop.store(true, Ordering::Relaxed);
        sampler.join().unwrap();
        let grew = peak.load(Ordering::Relaxed).saturating_sub(before);
        eprintln!(
            "{method}: peak anonymous memory +{} KiB for a {tensor_kb} KiB tensor",
            grew
        );
        // One output tensor plus chunk buffers and allocator slack; holding the three inputs
        // as f32 would add 3 × 16 MiB.
        assert!(grew < 2 * tensor_kb, "{method}: +{grew} KiB");
    }
}
