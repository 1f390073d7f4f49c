//! Dequantisation of GGUF block-quantised types, exactly as ggml does. (Being implemented.)

use crate::dtype::DType;
use crate::error::ErrorKind;

/// Dequantises `bytes` (whole blocks of `dtype`) into `out`.
pub(crate) fn dequantize(dtype: DType, _bytes: &[u8], _out: &mut [f32]) -> Result<(), ErrorKind> {
    Err(ErrorKind::Unsupported(format!(
        "dequantising {dtype} (not yet)"
    )))
}
