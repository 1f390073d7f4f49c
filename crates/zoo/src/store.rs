//! Model states on disk: safetensors files with PyTorch `state_dict` names and the zoo's
//! metadata, written atomically through `weightspace-io`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use weightspace_io::{Checkpoint, DType, TensorInfo};

use crate::error::{Error, Result};
use crate::net::{Arch, Net, State};

/// Metadata key holding the architecture (JSON of [`Arch`]).
pub const META_ARCH: &str = "weightspace.zoo.arch";
/// Metadata key holding the per-sample input shape (JSON list).
pub const META_INPUT_SHAPE: &str = "weightspace.zoo.input_shape";
/// Metadata key holding the output width.
pub const META_OUTPUTS: &str = "weightspace.zoo.outputs";

/// The tensors of a state in `state_dict` order: each layer's parameters, then (BatchNorm)
/// `running_mean`, `running_var`, `num_batches_tracked`.
pub fn state_tensors(net: &Net, st: &State) -> Vec<(TensorInfo, Vec<u8>)> {
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let counters = net.batch_counter_names();
    let mut out = Vec::new();
    for p in net.params() {
        out.push((
            TensorInfo {
                name: p.name.clone(),
                dtype: DType::F32,
                shape: p.shape.clone(),
            },
            f32_bytes(p.slice(&st.params)),
        ));
        if let Some(prefix) = p.name.strip_suffix(".bias")
            && let Some(bi) = counters
                .iter()
                .position(|c| c.strip_suffix(".num_batches_tracked") == Some(prefix))
        {
            for suffix in ["running_mean", "running_var"] {
                let b = net
                    .buffers()
                    .iter()
                    .find(|b| b.name == format!("{prefix}.{suffix}"))
                    .expect("BatchNorm buffers");
                out.push((
                    TensorInfo {
                        name: b.name.clone(),
                        dtype: DType::F32,
                        shape: b.shape.clone(),
                    },
                    f32_bytes(b.slice(&st.buffers)),
                ));
            }
            out.push((
                TensorInfo {
                    name: counters[bi].clone(),
                    dtype: DType::I64,
                    shape: vec![],
                },
                st.batches_tracked[bi].to_le_bytes().to_vec(),
            ));
        }
    }
    out
}

/// Writes a state as safetensors (atomically), with `metadata` plus the architecture keys
/// that [`load_model`] reads back.
pub fn save_state(
    path: &Path,
    net: &Net,
    st: &State,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let tensors = state_tensors(net, st);
    let infos: Vec<TensorInfo> = tensors.iter().map(|t| t.0.clone()).collect();
    let mut meta = metadata.clone();
    meta.insert(
        META_ARCH.into(),
        serde_json::to_string(&net.arch).expect("JSON"),
    );
    meta.insert(
        META_INPUT_SHAPE.into(),
        serde_json::to_string(&net.input_shape).expect("JSON"),
    );
    meta.insert(META_OUTPUTS.into(), net.outputs.to_string());
    weightspace_io::write_safetensors(path, &infos, &meta, |i| {
        Ok(Cow::Borrowed(tensors[i].1.as_slice()))
    })?;
    Ok(())
}

/// Reads a state for `net` from a checkpoint (any format `weightspace-io` reads); every
/// tensor must be present with the right shape.
pub fn load_state(net: &Net, ck: &Checkpoint) -> Result<State> {
    let mismatch = |msg: String| Error::Mismatch {
        path: ck.path().to_path_buf(),
        msg,
    };
    let mut st = net.zero_state();
    let fetch = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let info = ck
            .info(name)
            .ok_or_else(|| mismatch(format!("tensor `{name}` is missing")))?;
        if info.shape != shape {
            return Err(mismatch(format!(
                "tensor `{name}` has shape {:?}, the architecture needs {shape:?}",
                info.shape
            )));
        }
        Ok(ck.tensor_f32(name)?)
    };
    for p in net.params() {
        let v = fetch(&p.name, &p.shape)?;
        st.params[p.offset..p.offset + p.numel()].copy_from_slice(&v);
    }
    for b in net.buffers() {
        let v = fetch(&b.name, &b.shape)?;
        st.buffers[b.offset..b.offset + b.numel()].copy_from_slice(&v);
    }
    for (i, name) in net.batch_counter_names().iter().enumerate() {
        if ck.contains(name) {
            st.batches_tracked[i] = fetch(name, &[])?[0] as i64;
        }
    }
    Ok(st)
}

/// Opens a zoo checkpoint and rebuilds its network from the metadata (architecture, input
/// shape, outputs): the entry point for using a zoo model outside the zoo (evaluation,
/// activation matching, interpolation barriers).
pub fn load_model(path: &Path) -> Result<(Net, State)> {
    let ck = Checkpoint::open(path)?;
    let meta = |k: &str| -> Result<String> {
        match ck.metadata().get(k) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            _ => Err(Error::Mismatch {
                path: path.to_path_buf(),
                msg: format!("metadata `{k}` missing: not a weightspace zoo checkpoint"),
            }),
        }
    };
    let bad = |k: &str, e: String| Error::Mismatch {
        path: path.to_path_buf(),
        msg: format!("metadata `{k}`: {e}"),
    };
    let arch: Arch =
        serde_json::from_str(&meta(META_ARCH)?).map_err(|e| bad(META_ARCH, e.to_string()))?;
    let shape: Vec<usize> = serde_json::from_str(&meta(META_INPUT_SHAPE)?)
        .map_err(|e| bad(META_INPUT_SHAPE, e.to_string()))?;
    let outputs: usize = meta(META_OUTPUTS)?
        .parse()
        .map_err(|e: std::num::ParseIntError| bad(META_OUTPUTS, e.to_string()))?;
    let net = Net::new(&arch, &shape, outputs).map_err(|e| bad(META_ARCH, e.to_string()))?;
    let st = load_state(&net, &ck)?;
    Ok((net, st))
}

/// The zoo's weights hash of a checkpoint file: `weightspace-io`'s model hash (BLAKE3 over
/// names and tensor contents), hex.
pub fn weights_hash(path: &Path) -> Result<String> {
    Ok(Checkpoint::open(path)?.model_hash()?.to_hex().to_string())
}
