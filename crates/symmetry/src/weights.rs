//! [`Weights`]: owned `f32` tensors of a checkpoint, in checkpoint order.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use weightspace_io::{Checkpoint, DType, TensorInfo, encode_f32};

use crate::{Error, Result};

/// One tensor: shape, stored dtype and values as `f32` (integer tensors keep their bytes in
/// `raw` and have empty `data`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// The dtype it was read as (and is written back as).
    pub dtype: DType,
    /// Values (empty for integer tensors).
    pub data: Vec<f32>,
    /// Raw little-endian bytes of integer tensors.
    pub raw: Option<Vec<u8>>,
}

impl Tensor {
    /// An `f32` tensor.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor {
            shape,
            dtype: DType::F32,
            data,
            raw: None,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for float tensors (the ones groups act on).
    pub fn is_float(&self) -> bool {
        self.raw.is_none()
    }
}

/// The tensors of a model, by name, in checkpoint order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    names: Vec<String>,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
}

impl Weights {
    /// An empty set.
    pub fn new() -> Weights {
        Weights::default()
    }

    /// Adds (or replaces) a tensor.
    pub fn insert(&mut self, name: impl Into<String>, t: Tensor) {
        let name = name.into();
        match self.index.get(&name) {
            Some(&i) => self.tensors[i] = t,
            None => {
                self.index.insert(name.clone(), self.names.len());
                self.names.push(name);
                self.tensors.push(t);
            }
        }
    }

    /// Reads every tensor of a checkpoint (floats converted to `f32`, integers kept as bytes).
    pub fn from_checkpoint(ck: &Checkpoint) -> Result<Weights> {
        let mut w = Weights::new();
        for i in 0..ck.len() {
            let v = ck.tensor_at(i)?;
            let name = v.name.to_string();
            let t = if v.dtype.is_float() || v.dtype.is_quantized() {
                let data = v.to_f32().map_err(|k| {
                    Error::Io(weightspace_io::Error::new(ck.path(), k).with_tensor(&name))
                })?;
                let dtype = match v.dtype {
                    DType::F16 | DType::BF16 | DType::F64 | DType::F32 => v.dtype,
                    _ => DType::F32,
                };
                Tensor {
                    shape: v.shape.to_vec(),
                    dtype,
                    data,
                    raw: None,
                }
            } else {
                Tensor {
                    shape: v.shape.to_vec(),
                    dtype: v.dtype,
                    data: vec![],
                    raw: Some(v.bytes.into_owned()),
                }
            };
            w.insert(name, t);
        }
        Ok(w)
    }

    /// Opens and reads a checkpoint.
    pub fn open(path: impl AsRef<Path>) -> Result<Weights> {
        Self::from_checkpoint(&Checkpoint::open(path)?)
    }

    /// Writes a safetensors file atomically, each tensor in its original dtype.
    pub fn write_safetensors(
        &self,
        path: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Result<()> {
        let infos: Vec<TensorInfo> = self
            .iter()
            .map(|(n, t)| TensorInfo {
                name: n.to_string(),
                dtype: t.dtype,
                shape: t.shape.clone(),
            })
            .collect();
        weightspace_io::write_safetensors(path, &infos, metadata, |i| {
            let t = &self.tensors[i];
            Ok(match &t.raw {
                Some(r) => Cow::Borrowed(r.as_slice()),
                None => Cow::Owned(encode_f32(&t.data, t.dtype).unwrap_or_default()),
            })
        })?;
        Ok(())
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor called `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Tensor> {
        self.index.get(name).map(|&i| &mut self.tensors[i])
    }

    /// The float tensor `name`, or an error naming it.
    pub fn float(&self, name: &str) -> Result<&Tensor> {
        match self.get(name) {
            Some(t) if t.is_float() => Ok(t),
            Some(_) => Err(Error::Tensor {
                tensor: name.into(),
                msg: "is not a float tensor".into(),
            }),
            None => Err(Error::Tensor {
                tensor: name.into(),
                msg: "missing".into(),
            }),
        }
    }

    /// Names and tensors in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.names.iter().map(String::as_str).zip(&self.tensors)
    }

    /// Names in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Checks that `other` has the same tensor names and shapes (in any order).
    pub fn check_compatible(&self, other: &Weights) -> Result<()> {
        for (n, t) in self.iter() {
            match other.get(n) {
                None => {
                    return Err(Error::Tensor {
                        tensor: n.into(),
                        msg: "missing from the second model".into(),
                    });
                }
                Some(o) if o.shape != t.shape => {
                    return Err(Error::Tensor {
                        tensor: n.into(),
                        msg: format!("shape {:?} vs {:?}", t.shape, o.shape),
                    });
                }
                _ => {}
            }
        }
        if other.len() != self.len() {
            let extra = other.names.iter().find(|n| self.get(n).is_none());
            return Err(Error::Tensor {
                tensor: extra.cloned().unwrap_or_default(),
                msg: "missing from the first model".into(),
            });
        }
        Ok(())
    }

    /// Euclidean distance over all float tensors (a quick "how far apart" number).
    pub fn l2_distance(&self, other: &Weights) -> Result<f64> {
        self.check_compatible(other)?;
        let mut s = 0f64;
        for (n, t) in self.iter() {
            let o = other.get(n).expect("checked");
            for (a, b) in t.data.iter().zip(&o.data) {
                let d = (*a - *b) as f64;
                s += d * d;
            }
        }
        Ok(s.sqrt())
    }
}
