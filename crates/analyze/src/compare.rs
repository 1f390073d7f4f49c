//! Comparing two checkpoints tensor by tensor.

use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::{Checkpoint, DType, Error};

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
    /// Same dtype and shape and equal values: the same bytes, or floats that compare equal
    /// (−0.0 and 0.0 are equal, NaN matches NaN at the same position).
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
            let same_bytes = shape_equal && dtype_equal && ta.bytes == tb.bytes;
            let mut identical = same_bytes;
            let (mut l2, mut cosine, mut max_abs) = (None, None, None);
            if shape_equal {
                let va = ta
                    .f32s()
                    .map_err(|k| Error::new(a.path(), k).with_tensor(*name))?;
                let vb = tb
                    .f32s()
                    .map_err(|k| Error::new(b.path(), k).with_tensor(*name))?;
                let (mut d2, mut ab, mut aa, mut bb, mut mx) = (0f64, 0f64, 0f64, 0f64, 0f64);
                // Equal values, not equal bytes: −0.0 == 0.0, and NaN matches NaN.
                let mut unequal = 0u64;
                for (&x, &y) in va.iter().zip(vb.iter()) {
                    let both_nan = x.is_nan() && y.is_nan();
                    unequal += (x != y && !both_nan) as u64;
                    let (x, y) = (x as f64, y as f64);
                    let d = if both_nan { 0.0 } else { x - y };
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
                // Values, not bytes, decide for floats (−0.0 == 0.0, NaN matches NaN). f32
                // holds f16/bf16/f8/dequantised values exactly; f64 is compared as f64; integers
                // (which f32 would round) only by their bytes.
                identical = same_bytes
                    || (dtype_equal
                        && match ta.dtype {
                            DType::F64 => f64_values_equal(&ta.bytes, &tb.bytes),
                            d => d.is_float() && unequal == 0,
                        });
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

/// Element-wise equality of two little-endian f64 buffers of equal length (−0.0 == 0.0, NaN
/// matches NaN).
fn f64_values_equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.chunks_exact(8).zip(b.chunks_exact(8)).all(|(x, y)| {
            let x = f64::from_le_bytes(x.try_into().expect("8 bytes"));
            let y = f64::from_le_bytes(y.try_into().expect("8 bytes"));
            x == y || (x.is_nan() && y.is_nan())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &std::path::Path, name: &str, dtype: DType, values: &[f64]) -> Checkpoint {
        let p = dir.join(name);
        let info = weightspace_io::TensorInfo {
            name: "w".into(),
            dtype,
            shape: vec![values.len()],
        };
        let bytes: Vec<u8> = match dtype {
            DType::F64 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::I64 => values
                .iter()
                .flat_map(|&v| (v as i64).to_le_bytes())
                .collect(),
            d => {
                let f: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                weightspace_io::encode_f32(&f, d).unwrap()
            }
        };
        weightspace_io::write_safetensors(&p, &[info], &Default::default(), |_| {
            Ok(std::borrow::Cow::Owned(bytes.clone()))
        })
        .unwrap();
        Checkpoint::open(&p).unwrap()
    }

    #[test]
    fn negative_zero_equals_zero_but_values_still_decide() {
        let dir = tempfile::tempdir().unwrap();
        for d in [DType::F32, DType::F16, DType::BF16, DType::F64] {
            let a = file(dir.path(), "a", d, &[0.0, 1.0, f64::NAN]);
            let b = file(dir.path(), "b", d, &[-0.0, 1.0, f64::NAN]);
            let r = diff(&a, &b).unwrap();
            assert!(r.shared[0].identical, "{d:?}");
            assert_eq!(r.shared[0].l2, Some(0.0), "{d:?}");
            let c = file(dir.path(), "c", d, &[0.0, 1.5, f64::NAN]);
            assert!(!diff(&a, &c).unwrap().shared[0].identical, "{d:?}");
        }
        // f64 values that f32 cannot tell apart are not identical.
        let a = file(dir.path(), "a", DType::F64, &[1.0]);
        let b = file(dir.path(), "b", DType::F64, &[1.0 + 1e-12]);
        assert!(!diff(&a, &b).unwrap().shared[0].identical);
        // Integers: bytes decide (f32 would round these two to the same value).
        let a = file(dir.path(), "a", DType::I64, &[16_777_217.0]);
        let b = file(dir.path(), "b", DType::I64, &[16_777_216.0]);
        assert!(!diff(&a, &b).unwrap().shared[0].identical);
    }
}
