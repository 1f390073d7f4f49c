//! Element types and their conversion to `f32`.

use std::fmt;

/// The element type of a tensor as stored in a file.
///
/// Plain types have a fixed size per element. GGUF's quantised types (the legacy `Q*_0/1`, the
/// K-quants, the i-quants `IQ*`, the ternary `TQ*`, the FP4 types and `Q1_0`) are stored in
/// blocks of [`DType::block_size`] elements taking [`DType::block_bytes`] bytes (ggml's
/// `sizeof(block_*)`, gguf-py's `GGML_QUANT_SIZES`); [`crate::TensorView::to_f32`] dequantises
/// them exactly as ggml does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(non_camel_case_types)]
pub enum DType {
    /// Boolean, one byte (0 or 1).
    Bool,
    /// Unsigned 8-bit integer.
    U8,
    /// Signed 8-bit integer.
    I8,
    /// Unsigned 16-bit integer.
    U16,
    /// Signed 16-bit integer.
    I16,
    /// Unsigned 32-bit integer.
    U32,
    /// Signed 32-bit integer.
    I32,
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 64-bit integer.
    I64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// 8-bit float, 4 exponent bits, 3 mantissa bits, finite only (OCP "E4M3FN").
    F8_E4M3,
    /// 8-bit float, 5 exponent bits, 2 mantissa bits (IEEE-like, with inf/NaN).
    F8_E5M2,
    /// GGUF Q4_0: blocks of 32, f16 scale + 16 bytes of 4-bit quants.
    Q4_0,
    /// GGUF Q4_1: blocks of 32, f16 scale and min + 4-bit quants.
    Q4_1,
    /// GGUF Q5_0: blocks of 32, f16 scale, 32 high bits, 4-bit low quants.
    Q5_0,
    /// GGUF Q5_1: blocks of 32, f16 scale and min, 32 high bits, 4-bit low quants.
    Q5_1,
    /// GGUF Q8_0: blocks of 32, f16 scale + 32 signed bytes.
    Q8_0,
    /// GGUF Q8_1: blocks of 32, f16 scale and sum + 32 signed bytes.
    Q8_1,
    /// GGUF Q2_K super-blocks of 256.
    Q2_K,
    /// GGUF Q3_K super-blocks of 256.
    Q3_K,
    /// GGUF Q4_K super-blocks of 256.
    Q4_K,
    /// GGUF Q5_K super-blocks of 256.
    Q5_K,
    /// GGUF Q6_K super-blocks of 256.
    Q6_K,
    /// GGUF Q8_K super-blocks of 256 (f32 scale, 256 signed bytes, 16 i16 sums).
    Q8_K,
    /// GGUF IQ2_XXS super-blocks of 256 (f16 scale; per 32 values, four 8-bit indices into
    /// ggml's `iq2xxs_grid`, four 7-bit sign codes and a 4-bit scale).
    IQ2_XXS,
    /// GGUF IQ2_XS super-blocks of 256 (f16 scale, 16-bit words of a 9-bit `iq2xs_grid` index
    /// and a 7-bit sign code, 4-bit scales per 16 values).
    IQ2_XS,
    /// GGUF IQ3_XXS super-blocks of 256 (f16 scale, 8-bit `iq3xxs_grid` indices, per 32 values
    /// a 32-bit word of four 7-bit sign codes and a 4-bit scale).
    IQ3_XXS,
    /// GGUF IQ1_S super-blocks of 256 (f16 scale, 11-bit `iq1s_grid` indices, 3-bit scales and a
    /// ±1/8 shift per 32 values).
    IQ1_S,
    /// GGUF IQ4_NL: blocks of 32, f16 scale + 16 bytes of 4-bit indices into `kvalues_iq4nl`.
    IQ4_NL,
    /// GGUF IQ3_S super-blocks of 256 (f16 scale, 9-bit `iq3s_grid` indices, one sign bit per
    /// value, 4-bit scales per 32 values).
    IQ3_S,
    /// GGUF IQ2_S super-blocks of 256 (f16 scale, 10-bit `iq2s_grid` indices, one sign bit per
    /// value, 4-bit scales per 16 values).
    IQ2_S,
    /// GGUF IQ4_XS super-blocks of 256 (f16 scale, 6-bit scales per 32 values, 4-bit indices into
    /// `kvalues_iq4nl`).
    IQ4_XS,
    /// GGUF IQ1_M super-blocks of 256 (11-bit `iq1s_grid` indices with a ±1/8 shift per 8
    /// values, 3-bit scales per 16; the f16 super-scale is spread over the scale words' top
    /// nibbles).
    IQ1_M,
    /// GGUF TQ1_0 super-blocks of 256: ternary values packed 5 (or 4) to a byte in base 3, f16
    /// scale.
    TQ1_0,
    /// GGUF TQ2_0 super-blocks of 256: ternary values as 2-bit codes, f16 scale.
    TQ2_0,
    /// GGUF MXFP4 (OCP microscaling FP4): blocks of 32, an E8M0 shared exponent + 16 bytes of
    /// E2M1 codes.
    MXFP4,
    /// GGUF NVFP4: blocks of 64, four unsigned E4M3 scales (one per 16 values) + 32 bytes of E2M1
    /// codes.
    NVFP4,
    /// GGUF Q1_0: blocks of 128, f16 scale + 16 bytes of sign bits (`±d`).
    Q1_0,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 41] = [
        DType::Bool,
        DType::U8,
        DType::I8,
        DType::U16,
        DType::I16,
        DType::U32,
        DType::I32,
        DType::U64,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
        DType::F8_E4M3,
        DType::F8_E5M2,
        DType::Q4_0,
        DType::Q4_1,
        DType::Q5_0,
        DType::Q5_1,
        DType::Q8_0,
        DType::Q8_1,
        DType::Q2_K,
        DType::Q3_K,
        DType::Q4_K,
        DType::Q5_K,
        DType::Q6_K,
        DType::Q8_K,
        DType::IQ2_XXS,
        DType::IQ2_XS,
        DType::IQ3_XXS,
        DType::IQ1_S,
        DType::IQ4_NL,
        DType::IQ3_S,
        DType::IQ2_S,
        DType::IQ4_XS,
        DType::IQ1_M,
        DType::TQ1_0,
        DType::TQ2_0,
        DType::MXFP4,
        DType::NVFP4,
        DType::Q1_0,
    ];

    /// The name used in safetensors headers (`"F32"`, `"BF16"`, ...) and, for quantised
    /// types, ggml's name (`"Q4_K"`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "BOOL",
            DType::U8 => "U8",
            DType::I8 => "I8",
            DType::U16 => "U16",
            DType::I16 => "I16",
            DType::U32 => "U32",
            DType::I32 => "I32",
            DType::U64 => "U64",
            DType::I64 => "I64",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::F8_E4M3 => "F8_E4M3",
            DType::F8_E5M2 => "F8_E5M2",
            DType::Q4_0 => "Q4_0",
            DType::Q4_1 => "Q4_1",
            DType::Q5_0 => "Q5_0",
            DType::Q5_1 => "Q5_1",
            DType::Q8_0 => "Q8_0",
            DType::Q8_1 => "Q8_1",
            DType::Q2_K => "Q2_K",
            DType::Q3_K => "Q3_K",
            DType::Q4_K => "Q4_K",
            DType::Q5_K => "Q5_K",
            DType::Q6_K => "Q6_K",
            DType::Q8_K => "Q8_K",
            DType::IQ2_XXS => "IQ2_XXS",
            DType::IQ2_XS => "IQ2_XS",
            DType::IQ3_XXS => "IQ3_XXS",
            DType::IQ1_S => "IQ1_S",
            DType::IQ4_NL => "IQ4_NL",
            DType::IQ3_S => "IQ3_S",
            DType::IQ2_S => "IQ2_S",
            DType::IQ4_XS => "IQ4_XS",
            DType::IQ1_M => "IQ1_M",
            DType::TQ1_0 => "TQ1_0",
            DType::TQ2_0 => "TQ2_0",
            DType::MXFP4 => "MXFP4",
            DType::NVFP4 => "NVFP4",
            DType::Q1_0 => "Q1_0",
        }
    }

    /// Parses a name as written by [`DType::name`] (case-insensitive).
    pub fn from_name(s: &str) -> Option<DType> {
        DType::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
    }

    /// A floating-point type a user may ask to cast to, in any common spelling: `f32`, `fp32`,
    /// `float32`, `float`, `torch.float32`; `f16`, `fp16`, `float16`, `half`; `bf16`,
    /// `bfloat16`; `f64`, `fp64`, `float64`, `double` (case-insensitive).
    pub fn parse_float(s: &str) -> Option<DType> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower
            .strip_prefix("torch.")
            .or_else(|| lower.strip_prefix("np."))
            .or_else(|| lower.strip_prefix("numpy."))
            .unwrap_or(&lower);
        Some(match name {
            "f32" | "fp32" | "float32" | "float" => DType::F32,
            "f16" | "fp16" | "float16" | "half" => DType::F16,
            "bf16" | "bfloat16" => DType::BF16,
            "f64" | "fp64" | "float64" | "double" => DType::F64,
            _ => return None,
        })
    }

    /// Number of elements in one storage block (1 for plain types).
    pub fn block_size(self) -> usize {
        match self {
            DType::Q4_0
            | DType::Q4_1
            | DType::Q5_0
            | DType::Q5_1
            | DType::Q8_0
            | DType::Q8_1
            | DType::IQ4_NL
            | DType::MXFP4 => 32,
            DType::NVFP4 => 64,
            DType::Q1_0 => 128,
            DType::Q2_K
            | DType::Q3_K
            | DType::Q4_K
            | DType::Q5_K
            | DType::Q6_K
            | DType::Q8_K
            | DType::IQ2_XXS
            | DType::IQ2_XS
            | DType::IQ3_XXS
            | DType::IQ1_S
            | DType::IQ3_S
            | DType::IQ2_S
            | DType::IQ4_XS
            | DType::IQ1_M
            | DType::TQ1_0
            | DType::TQ2_0 => 256,
            _ => 1,
        }
    }

    /// Bytes taken by one storage block (the element size for plain types).
    pub fn block_bytes(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 | DType::F8_E4M3 | DType::F8_E5M2 => 1,
            DType::U16 | DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
            DType::Q4_0 => 18,
            DType::Q4_1 => 20,
            DType::Q5_0 => 22,
            DType::Q5_1 => 24,
            DType::Q8_0 => 34,
            DType::Q8_1 => 36,
            DType::Q2_K => 84,
            DType::Q3_K => 110,
            DType::Q4_K => 144,
            DType::Q5_K => 176,
            DType::Q6_K => 210,
            DType::Q8_K => 292,
            DType::IQ2_XXS => 66,
            DType::IQ2_XS => 74,
            DType::IQ3_XXS => 98,
            DType::IQ1_S => 50,
            DType::IQ4_NL => 18,
            DType::IQ3_S => 110,
            DType::IQ2_S => 82,
            DType::IQ4_XS => 136,
            DType::IQ1_M => 56,
            DType::TQ1_0 => 54,
            DType::TQ2_0 => 66,
            DType::MXFP4 => 17,
            DType::NVFP4 => 36,
            DType::Q1_0 => 18,
        }
    }

    /// Size of one element in bytes, or `None` for block-quantised types.
    pub fn size(self) -> Option<usize> {
        (self.block_size() == 1).then(|| self.block_bytes())
    }

    /// True for GGUF block-quantised types.
    pub fn is_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// True for floating-point types (including quantised ones, which decode to floats).
    pub fn is_float(self) -> bool {
        !matches!(
            self,
            DType::Bool
                | DType::U8
                | DType::I8
                | DType::U16
                | DType::I16
                | DType::U32
                | DType::I32
                | DType::U64
                | DType::I64
        )
    }

    /// Bytes needed to store `numel` elements, or `None` when `numel` is not a whole number of
    /// blocks or the size overflows.
    pub fn storage_bytes(self, numel: usize) -> Option<usize> {
        let bs = self.block_size();
        if numel % bs != 0 {
            return None;
        }
        (numel / bs).checked_mul(self.block_bytes())
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Decodes one OCP FP8 E4M3FN byte (bias 7, no infinities, `S.1111.111` is NaN).
pub fn f8_e4m3_to_f32(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((b >> 3) & 0x0f) as i32;
    let man = (b & 0x07) as f32;
    if exp == 0x0f && b & 0x07 == 0x07 {
        return f32::NAN;
    }
    if exp == 0 {
        sign * man / 8.0 * 2f32.powi(-6)
    } else {
        sign * (1.0 + man / 8.0) * 2f32.powi(exp - 7)
    }
}

/// Decodes one FP8 E5M2 byte (bias 15, IEEE-like with infinities and NaNs): it is the top byte
/// of an IEEE half.
pub fn f8_e5m2_to_f32(b: u8) -> f32 {
    half::f16::from_bits((b as u16) << 8).to_f32()
}

/// Decodes little-endian `bytes` of a plain (non-quantised) dtype into `out`.
///
/// `bytes.len()` must equal `out.len() * dtype.size()`; the caller checks it.
pub(crate) fn decode_plain(dtype: DType, bytes: &[u8], out: &mut [f32]) {
    macro_rules! conv {
        ($t:ty, $n:expr, $f:expr) => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact($n)) {
                let v = <$t>::from_le_bytes(c.try_into().unwrap());
                *o = $f(v);
            }
        };
    }
    match dtype {
        DType::Bool => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = if b != 0 { 1.0 } else { 0.0 };
            }
        }
        DType::U8 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = b as f32;
            }
        }
        DType::I8 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = b as i8 as f32;
            }
        }
        DType::U16 => conv!(u16, 2, |v: u16| v as f32),
        DType::I16 => conv!(i16, 2, |v: i16| v as f32),
        DType::U32 => conv!(u32, 4, |v: u32| v as f32),
        DType::I32 => conv!(i32, 4, |v: i32| v as f32),
        DType::U64 => conv!(u64, 8, |v: u64| v as f32),
        DType::I64 => conv!(i64, 8, |v: i64| v as f32),
        DType::F16 => conv!(u16, 2, |v: u16| half::f16::from_bits(v).to_f32()),
        DType::BF16 => conv!(u16, 2, |v: u16| half::bf16::from_bits(v).to_f32()),
        DType::F32 => conv!(f32, 4, |v: f32| v),
        DType::F64 => conv!(f64, 8, |v: f64| v as f32),
        DType::F8_E4M3 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = f8_e4m3_to_f32(b);
            }
        }
        DType::F8_E5M2 => {
            for (o, &b) in out.iter_mut().zip(bytes) {
                *o = f8_e5m2_to_f32(b);
            }
        }
        q => unreachable!("decode_plain called with quantised dtype {q}"),
    }
}

/// Encodes `f32` values as little-endian bytes of `dtype` (F32, F16, BF16 or F64 only).
pub fn encode_f32(values: &[f32], dtype: DType) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * dtype.size()?);
    match dtype {
        DType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
        DType::BF16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes())),
        DType::F64 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&(*v as f64).to_le_bytes())),
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_name("bf16"), Some(DType::BF16));
        assert_eq!(DType::from_name("F12"), None);
        for (names, d) in [
            (
                &["f32", "FP32", "float32", "float", "torch.float32"][..],
                DType::F32,
            ),
            (
                &["f16", "fp16", "Float16", "half", "torch.half"][..],
                DType::F16,
            ),
            (
                &["bf16", "BF16", "bfloat16", "torch.bfloat16"][..],
                DType::BF16,
            ),
            (
                &["f64", "fp64", "float64", "double", "np.float64"][..],
                DType::F64,
            ),
        ] {
            for n in names {
                assert_eq!(DType::parse_float(n), Some(d), "{n}");
            }
        }
        assert_eq!(DType::parse_float("int8"), None);
        assert_eq!(DType::parse_float("f8"), None);
    }

    #[test]
    fn storage_sizes() {
        assert_eq!(DType::F32.storage_bytes(10), Some(40));
        assert_eq!(DType::Q4_0.storage_bytes(64), Some(36));
        assert_eq!(DType::Q4_K.storage_bytes(256), Some(144));
        assert_eq!(DType::Q4_K.storage_bytes(100), None);
        assert_eq!(DType::F64.storage_bytes(usize::MAX), None);
        assert_eq!(DType::IQ4_XS.storage_bytes(512), Some(272));
        assert_eq!(DType::NVFP4.storage_bytes(64), Some(36));
        assert_eq!(DType::MXFP4.storage_bytes(64), Some(34));
        assert_eq!(DType::Q1_0.storage_bytes(64), None);
        assert!(DType::IQ2_XXS.is_quantized() && DType::IQ2_XXS.is_float());
    }

    #[test]
    fn fp8_known_values() {
        // E4M3FN: 0x38 = 1.0, 0x7E = 448 (max), 0x01 = 2^-9 (min subnormal), 0x7F = NaN.
        assert_eq!(f8_e4m3_to_f32(0x38), 1.0);
        assert_eq!(f8_e4m3_to_f32(0x7e), 448.0);
        assert_eq!(f8_e4m3_to_f32(0x01), 2f32.powi(-9));
        assert_eq!(f8_e4m3_to_f32(0xb8), -1.0);
        assert!(f8_e4m3_to_f32(0x7f).is_nan());
        // E5M2: 0x3C = 1.0, 0x7B = 57344 (max), 0x7C = inf.
        assert_eq!(f8_e5m2_to_f32(0x3c), 1.0);
        assert_eq!(f8_e5m2_to_f32(0x7b), 57344.0);
        assert_eq!(f8_e5m2_to_f32(0x7c), f32::INFINITY);
    }

    #[test]
    fn plain_decoding() {
        let mut out = [0f32; 2];
        decode_plain(DType::I16, &[0xff, 0xff, 0x02, 0x00], &mut out);
        assert_eq!(out, [-1.0, 2.0]);
        decode_plain(DType::BF16, &[0x80, 0x3f, 0x00, 0xc0], &mut out);
        assert_eq!(out, [1.0, -2.0]);
    }
}
