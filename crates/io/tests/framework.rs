//! `Checkpoint::framework`: which framework's axis conventions a file's tensors follow, from
//! its format (and safetensors' `__metadata__.format`); `None` where the file does not say.

use std::collections::BTreeMap;
use std::path::PathBuf;

use weightspace_io::{Checkpoint, Framework, write_f32_safetensors};

fn fixture(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(p)
}

#[test]
fn each_format_knows_its_framework() {
    for (file, want) in [
        ("pytorch/state_dict.pt", Some(Framework::PyTorch)),
        ("pytorch/state_dict_legacy.pt", Some(Framework::PyTorch)),
        ("pytorch/script.pt", Some(Framework::PyTorch)),
        ("onnx/torch_tiny.onnx", Some(Framework::Onnx)),
        ("gguf/small.gguf", Some(Framework::Ggml)),
        ("npy/f4.npy", None),
        ("npy/stored.npz", None),
    ] {
        let ck = Checkpoint::open(fixture(file)).unwrap();
        assert_eq!(ck.framework(), want, "{file} ({})", ck.format());
    }
}

#[test]
fn safetensors_says_it_in_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let t = [("w".to_string(), vec![2, 2], vec![1f32, 2.0, 3.0, 4.0])];
    for (format, want) in [
        (None, Some(Framework::PyTorch)),
        (Some("pt"), Some(Framework::PyTorch)),
        (Some("tf"), Some(Framework::TensorFlow)),
        (Some("flax"), Some(Framework::Flax)),
        (Some("mlx"), None),
        (Some("np"), None),
    ] {
        let p = dir
            .path()
            .join(format!("{}.safetensors", format.unwrap_or("none")));
        let meta: BTreeMap<String, String> = format
            .map(|f| ("format".to_string(), f.to_string()))
            .into_iter()
            .collect();
        write_f32_safetensors(&p, &t, &meta).unwrap();
        assert_eq!(
            Checkpoint::open(&p).unwrap().framework(),
            want,
            "{format:?}"
        );
    }
}
