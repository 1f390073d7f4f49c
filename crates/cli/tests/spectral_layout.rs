//! `weightspace spectral` on convolution kernels: the layout comes from the file's framework or
//! `--conv-layout`; kernels of unknown origin are listed as skipped with the reason, not guessed.

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_weightspace");

fn run(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run weightspace")
}

/// A `.npy` file (version 1.0, little-endian f32, C order) of a PyTorch-shaped kernel
/// `[out=16, in=16, kh=64, kw=1]` (torchcrepe's conv3).
fn kernel_npy(path: &std::path::Path) {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 16, 64, 1), }";
    let mut header = header.to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    // Deterministic, full-rank-ish values.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..16 * 16 * 64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn npy_kernels_need_a_layout_and_get_one_from_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("conv3.npy");
    kernel_npy(&p);
    let spectral = "spectral".as_ref();
    // Unknown origin: exit 0, no layer, the kernel listed with the reason (table and JSON).
    let o = run(&[spectral, p.as_os_str()]);
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("conv layout unknown: pass --conv-layout oihw|hwio"),
        "{out}"
    );
    assert!(out.contains("skipped 1 tensor(s):"), "{out}");
    let o = run(&[spectral, p.as_os_str(), "--json".as_ref()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["layers"].as_array().unwrap().len(), 0);
    assert_eq!(
        v["skipped"][0]["reason"],
        "conv layout unknown: pass --conv-layout oihw|hwio"
    );
    assert!(v["conv_layout"].is_null());
    // Told PyTorch's layout: 64 slices of 16×16.
    let o = run(&[
        spectral,
        p.as_os_str(),
        "--json".as_ref(),
        "--conv-layout".as_ref(),
        "oihw".as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let l = &v["layers"][0];
    assert_eq!((l["N"].as_u64(), l["M"].as_u64()), (Some(16), Some(16)));
    assert_eq!(l["num_matrices"], 64);
    assert!(l["num_traps"].as_u64().unwrap() <= l["num_evals"].as_u64().unwrap());
    assert_eq!(v["conv_layout"], "oihw");
    assert_eq!(v["skipped"].as_array().unwrap().len(), 0);
    // A value clap does not know is a usage error (exit 2) listing the choices.
    let o = run(&[
        spectral,
        p.as_os_str(),
        "--conv-layout".as_ref(),
        "nchw".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("oihw") && err.contains("hwio"), "{err}");
}
