//! Comparing two checkpoints tensor by tensor.

use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::{Checkpoint, Error};

/// How one tensor present in both checkpoints differs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TensorDiff {
    /// Tensor name.
    pub name: String,
    /// Shape in A.
    pub shape_a: Vec<usize>,
    /// Shape in B.
    pub shape_b: Vec<usize>,
    /// Dtype in A.
    pub dtype_a: String,
    /// Dtype in B.
    pub dtype_b: String,
    /// Shapes are equal.
    pub shape_equal: bool,
    /// Dtypes are equal.
    pub dtype_equal: bool,
    /// The stored bytes are identical.
    pub identical: bool,
    /// ‖a − b‖₂ over the `f32` values (`None` when shapes differ).
    pub l2: Option<f64>,
    /// Cosine similarity of the flattened values (`None` when shapes differ or a norm is 0).
    pub cosine: Option<f64>,
    /// max |a − b| (`None` when shapes differ).
    pub max_abs: Option<f64>,
}

/// The result of [`diff`].
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Tensors only in A, in A's order.
    pub only_in_a: Vec<String>,
    /// Tensors only in B, in B's order.
    pub only_in_b: Vec<String>,
    /// Tensors in both, in A's order.
    pub shared: Vec<TensorDiff>,
}

/// Compares the tensors of `a` and `b` by name, in parallel.
pub fn diff(a: &Checkpoint, b: &Checkpoint) -> Result<DiffReport, Error> {
    let only_in_a = a
        .names()
        .filter(|n| !b.contains(n))
        .map(String::from)
        .collect();
    let only_in_b = b
        .names()
        .filter(|n| !a.contains(n))
        .map(String::from)
        .collect();
    let names: Vec<&str> = a.names().filter(|n| b.contains(n)).collect();
    let shared = names
        .par_iter()
        .map(|name| {
            let ta = a.tensor(name)?;
            let tb = b.tensor(name)?;
            let shape_equal = ta.shape == tb.shape;
            let dtype_equal = ta.dtype == tb.dtype;
            let identical = shape_equal && dtype_equal && ta.bytes == tb.bytes;
            let (mut l2, mut cosine, mut max_abs) = (None, None, None);
            if shape_equal {
                let va = ta
                    .f32s()
                    .map_err(|k| Error::new(a.path(), k).with_tensor(*name))?;
                let vb = tb
                    .f32s()
                    .map_err(|k| Error::new(b.path(), k).with_tensor(*name))?;
                let (mut d2, mut ab, mut aa, mut bb, mut mx) = (0f64, 0f64, 0f64, 0f64, 0f64);
                for (&x, &y) in va.iter().zip(vb.iter()) {
                    let (x, y) = (x as f64, y as f64);
                    let d = x - y;
                    d2 += d * d;
                    ab += x * y;
                    aa += x * x;
                    bb += y * y;
                    mx = if d.abs() > mx || d.is_nan() {
                        d.abs()
                    } else {
                        mx
                    };
                }
                l2 = Some(d2.sqrt());
                max_abs = Some(mx);
                cosine = (aa > 0.0 && bb > 0.0).then(|| ab / (aa.sqrt() * bb.sqrt()));
            }
            Ok(TensorDiff {
                name: name.to_string(),
                shape_a: ta.shape.to_vec(),
                shape_b: tb.shape.to_vec(),
                dtype_a: ta.dtype.name().into(),
                dtype_b: tb.dtype.name().into(),
                shape_equal,
                dtype_equal,
                identical,
                l2,
                cosine,
                max_abs,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(DiffReport {
        only_in_a,
        only_in_b,
        shared,
    })
}
