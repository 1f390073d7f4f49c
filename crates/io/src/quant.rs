//! Dequantisation of ggml's block-quantised types, exactly as ggml does.
//!
//! Every function below is a transcription of the matching `dequantize_row_*` reference
//! function of ggml's `ggml-quants.c` (block layouts from `ggml-common.h`), one block at a time,
//! with the same operations in the same order, so the results are bit-identical to ggml's
//! scalar reference and to the numpy port in gguf-py's `gguf/quants.py`. Two notes:
//!
//! * ggml has no `dequantize_row_q8_1` (Q8_1 is an intermediate type for dot products); its
//!   value is `d * q`, like Q8_0, and the block's second half (`s = d * Σq`) is ignored.
//! * A ggml build that lets the C compiler contract `a * b - c` into a fused multiply-add
//!   (GCC's default `-ffp-contract=fast` with FMA enabled) may differ from this scalar reference
//!   by one rounding on the types with a min/offset (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K). Rust never
//!   contracts, so these results match the unfused reference and numpy.
//!
//! Super-blocks ("K-quants", i-quants, `TQ*`) hold 256 values (`QK_K`); the legacy types,
//! IQ4_NL and MXFP4 32, NVFP4 64 and Q1_0 128.
//!
//! The i-quants (`IQ*`) look values up in ggml's grids (`quant_tables.rs`, generated from
//! gguf-py by `tests/fixtures/gguf/make_quant_tables.py`). Their reference functions only
//! multiply (`d * scale * grid * ±1`, or `dl * (grid ± 1/8)` for IQ1_S/IQ1_M), so the
//! contraction caveat above does not apply to them, nor to TQ1_0, TQ2_0, MXFP4, NVFP4 and Q1_0.

use crate::dtype::DType;
use crate::error::ErrorKind;

#[rustfmt::skip]
#[path = "quant_tables.rs"]
mod tables;

use tables::{
    IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KMASK_IQ2XS,
    KSIGNS_IQ2XS, KVALUES_IQ4NL, KVALUES_MXFP4,
};

/// Dequantises `bytes` (whole blocks of `dtype`) into `out`.
///
/// `bytes.len()` must be a whole number of blocks holding exactly `out.len()` values; otherwise
/// [`ErrorKind::SizeMismatch`]. Plain dtypes are refused with [`ErrorKind::Invalid`].
pub(crate) fn dequantize(dtype: DType, bytes: &[u8], out: &mut [f32]) -> Result<(), ErrorKind> {
    let (bs, bb) = (dtype.block_size(), dtype.block_bytes());
    if bs == 1 {
        return Err(ErrorKind::Invalid(format!(
            "{dtype} is not a block-quantised dtype"
        )));
    }
    if bytes.len() % bb != 0 || bytes.len() / bb * bs != out.len() {
        return Err(ErrorKind::SizeMismatch {
            bytes: bytes.len() as u64,
            expected: dtype.storage_bytes(out.len()).unwrap_or(0) as u64,
            shape: vec![out.len()],
            dtype: dtype.name().into(),
        });
    }
    match dtype {
        DType::Q4_0 => blocks(bytes, out, q4_0),
        DType::Q4_1 => blocks(bytes, out, q4_1),
        DType::Q5_0 => blocks(bytes, out, q5_0),
        DType::Q5_1 => blocks(bytes, out, q5_1),
        DType::Q8_0 => blocks(bytes, out, q8_0),
        DType::Q8_1 => blocks(bytes, out, q8_1),
        DType::Q2_K => blocks(bytes, out, q2_k),
        DType::Q3_K => blocks(bytes, out, q3_k),
        DType::Q4_K => blocks(bytes, out, q4_k),
        DType::Q5_K => blocks(bytes, out, q5_k),
        DType::Q6_K => blocks(bytes, out, q6_k),
        DType::Q8_K => blocks(bytes, out, q8_k),
        DType::IQ2_XXS => blocks(bytes, out, iq2_xxs),
        DType::IQ2_XS => blocks(bytes, out, iq2_xs),
        DType::IQ2_S => blocks(bytes, out, iq2_s),
        DType::IQ3_XXS => blocks(bytes, out, iq3_xxs),
        DType::IQ3_S => blocks(bytes, out, iq3_s),
        DType::IQ1_S => blocks(bytes, out, iq1_s),
        DType::IQ1_M => blocks(bytes, out, iq1_m),
        DType::IQ4_NL => blocks(bytes, out, iq4_nl),
        DType::IQ4_XS => blocks(bytes, out, iq4_xs),
        DType::TQ1_0 => blocks(bytes, out, tq1_0),
        DType::TQ2_0 => blocks(bytes, out, tq2_0),
        DType::MXFP4 => blocks(bytes, out, mxfp4),
        DType::NVFP4 => blocks(bytes, out, nvfp4),
        DType::Q1_0 => blocks(bytes, out, q1_0),
        other => {
            return Err(ErrorKind::UnsupportedDType(format!(
                "{other} has no dequantiser"
            )));
        }
    }
    Ok(())
}

/// Runs `f` over every block. Sizes were checked by the caller, so every chunk converts.
#[inline]
fn blocks<const BB: usize, const BS: usize>(
    bytes: &[u8],
    out: &mut [f32],
    f: fn(&[u8; BB], &mut [f32; BS]),
) {
    for (b, y) in bytes.chunks_exact(BB).zip(out.chunks_exact_mut(BS)) {
        if let (Ok(b), Ok(y)) = (b.try_into(), y.try_into()) {
            f(b, y);
        }
    }
}

/// The little-endian IEEE half at `b[i..i + 2]`, as f32 (`GGML_FP16_TO_FP32`).
#[inline(always)]
fn f16(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// `block_q4_0 { half d; u8 qs[16]; }`: `y = (q - 8) * d`, low nibbles first.
fn q4_0(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16(b, 0);
    let qs = &b[2..18];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as i32 - 8;
        let x1 = (qs[j] >> 4) as i32 - 8;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// `block_q4_1 { half d; half m; u8 qs[16]; }`: `y = q * d + m`.
fn q4_1(b: &[u8; 20], y: &mut [f32; 32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qs = &b[4..20];
    for j in 0..16 {
        let x0 = (qs[j] & 0x0f) as i32;
        let x1 = (qs[j] >> 4) as i32;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

/// `block_q5_0 { half d; u8 qh[4]; u8 qs[16]; }`: 5-bit `q` (high bit from `qh`), `y = (q - 16) * d`.
fn q5_0(b: &[u8; 22], y: &mut [f32; 32]) {
    let d = f16(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    let qs = &b[6..22];
    for j in 0..16 {
        let xh0 = ((qh >> j) << 4) & 0x10;
        let xh1 = (qh >> (j + 12)) & 0x10;
        let x0 = ((qs[j] & 0x0f) as u32 | xh0) as i32 - 16;
        let x1 = ((qs[j] >> 4) as u32 | xh1) as i32 - 16;
        y[j] = x0 as f32 * d;
        y[j + 16] = x1 as f32 * d;
    }
}

/// `block_q5_1 { half d; half m; u8 qh[4]; u8 qs[16]; }`: `y = q * d + m`.
fn q5_1(b: &[u8; 24], y: &mut [f32; 32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    let qs = &b[8..24];
    for j in 0..16 {
        let xh0 = ((qh >> j) << 4) & 0x10;
        let xh1 = (qh >> (j + 12)) & 0x10;
        let x0 = (qs[j] & 0x0f) as u32 | xh0;
        let x1 = (qs[j] >> 4) as u32 | xh1;
        y[j] = x0 as f32 * d + m;
        y[j + 16] = x1 as f32 * d + m;
    }
}

/// `block_q8_0 { half d; i8 qs[32]; }`: `y = q * d`.
fn q8_0(b: &[u8; 34], y: &mut [f32; 32]) {
    let d = f16(b, 0);
    for (o, &q) in y.iter_mut().zip(&b[2..34]) {
        *o = q as i8 as f32 * d;
    }
}

/// `block_q8_1 { half d; half s; i8 qs[32]; }`: `y = q * d` (`s` is auxiliary).
fn q8_1(b: &[u8; 36], y: &mut [f32; 32]) {
    let d = f16(b, 0);
    for (o, &q) in y.iter_mut().zip(&b[4..36]) {
        *o = q as i8 as f32 * d;
    }
}

/// `block_q2_K { u8 scales[16]; u8 qs[64]; half d; half dmin; }`: 16 groups of 16, each with a
/// 4-bit scale and 4-bit min; `y = d * sc * q - dmin * m`.
fn q2_k(b: &[u8; 84], y: &mut [f32; 256]) {
    let scales = &b[0..16];
    let (d, min) = (f16(b, 80), f16(b, 82));
    let mut is = 0;
    let mut yi = 0;
    for n in 0..2 {
        let q = &b[16 + 32 * n..16 + 32 * n + 32];
        for j in 0..4 {
            let shift = 2 * j;
            for half in 0..2 {
                let sc = scales[is];
                is += 1;
                let dl = d * (sc & 0x0f) as f32;
                let ml = min * (sc >> 4) as f32;
                for &qb in &q[16 * half..16 * half + 16] {
                    y[yi] = dl * ((qb >> shift) & 3) as i8 as f32 - ml;
                    yi += 1;
                }
            }
        }
    }
}

/// `block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d; }`: 3-bit `q` (2 low bits in
/// `qs`, the high bit in `hmask`, which *subtracts* 4 when clear), 6-bit signed scales packed
/// in 12 bytes; `y = d * (sc - 32) * q`.
fn q3_k(b: &[u8; 110], y: &mut [f32; 256]) {
    let hm = &b[0..32];
    let packed = &b[96..108];
    let d_all = f16(b, 108);
    // Unpack the 16 scales as ggml's aux[] shuffle does: low 4 bits from bytes 0..8 (low then
    // high nibbles), high 2 bits from bytes 8..12.
    let mut sc = [0i32; 16];
    for (s, v) in sc.iter_mut().enumerate() {
        let lo = if s < 8 {
            packed[s] & 0x0f
        } else {
            packed[s - 8] >> 4
        };
        let hi = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
        *v = (lo | (hi << 4)) as i8 as i32 - 32;
    }
    let mut is = 0;
    let mut yi = 0;
    let mut m: u8 = 1;
    for n in 0..2 {
        let q = &b[32 + 32 * n..32 + 32 * n + 32];
        for j in 0..4 {
            let shift = 2 * j;
            for half in 0..2 {
                let dl = d_all * sc[is] as f32;
                is += 1;
                for l in 16 * half..16 * half + 16 {
                    let lo = ((q[l] >> shift) & 3) as i8 as i32;
                    let sub = if hm[l] & m != 0 { 0 } else { 4 };
                    y[yi] = dl * (lo - sub) as f32;
                    yi += 1;
                }
            }
            m = m.wrapping_shl(1);
        }
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) from the 12
/// packed bytes of Q4_K/Q5_K.
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `block_q4_K { half d; half dmin; u8 scales[12]; u8 qs[128]; }`: 8 sub-blocks of 32 with
/// 6-bit scales and mins; `y = d * sc * q - dmin * m`.
fn q4_k(b: &[u8; 144], y: &mut [f32; 256]) {
    let (d, min) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    for c in 0..4 {
        let q = &b[16 + 32 * c..16 + 32 * c + 32];
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let y = &mut y[64 * c..64 * c + 64];
        for l in 0..32 {
            y[l] = d1 * (q[l] & 0x0f) as f32 - m1;
            y[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
        }
    }
}

/// `block_q5_K { half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }`: like Q4_K with a
/// fifth bit per value from `qh`.
fn q5_k(b: &[u8; 176], y: &mut [f32; 256]) {
    let (d, min) = (f16(b, 0), f16(b, 2));
    let scales = &b[4..16];
    let qh = &b[16..48];
    let (mut u1, mut u2) = (1u8, 2u8);
    for c in 0..4 {
        let ql = &b[48 + 32 * c..48 + 32 * c + 32];
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
        let y = &mut y[64 * c..64 * c + 64];
        for l in 0..32 {
            let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
            y[l] = d1 * ((ql[l] & 0x0f) + h1) as f32 - m1;
            y[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
        u1 = u1.wrapping_shl(2);
        u2 = u2.wrapping_shl(2);
    }
}

/// `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; half d; }`: 6-bit `q` (4 low bits in
/// `ql`, 2 high bits in `qh`), 16 signed 8-bit scales; `y = d * sc * (q - 32)`.
fn q6_k(b: &[u8; 210], y: &mut [f32; 256]) {
    let d = f16(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let y = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            y[l] = d * sc[is] as i8 as f32 * q1 as f32;
            y[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
            y[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
            y[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
        }
    }
}

/// `block_q8_K { f32 d; i8 qs[256]; i16 bsums[16]; }`: `y = d * q` (`bsums` are auxiliary).
fn q8_k(b: &[u8; 292], y: &mut [f32; 256]) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    for (o, &q) in y.iter_mut().zip(&b[4..260]) {
        *o = d * q as i8 as f32;
    }
}

/// The little-endian `u16` at `b[i..i + 2]`.
#[inline(always)]
fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

/// The little-endian `u32` at `b[i..i + 4]`.
#[inline(always)]
fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// ggml's `signs & kmask_iq2xs[j] ? -1.f : 1.f`.
#[inline(always)]
fn sign(signs: u8, j: usize) -> f32 {
    if signs & KMASK_IQ2XS[j] != 0 {
        -1.0
    } else {
        1.0
    }
}

/// `block_iq2_xxs { half d; u16 qs[32]; }`: per 32 values two `u32`s, the first four 8-bit
/// `iq2xxs_grid` indices (8 values each), the second four 7-bit `ksigns_iq2xs` codes and a
/// 4-bit scale; `y = d * (0.5 + s) * 0.25 * grid * ±1`.
fn iq2_xxs(b: &[u8; 66], y: &mut [f32; 256]) {
    let d = f16(b, 0);
    for ib32 in 0..8 {
        let aux8 = &b[2 + 8 * ib32..2 + 8 * ib32 + 4];
        let aux1 = u32_at(b, 2 + 8 * ib32 + 4);
        let db = d * (0.5 + (aux1 >> 28) as f32) * 0.25;
        for l in 0..4 {
            let grid = IQ2XXS_GRID[aux8[l] as usize].to_le_bytes();
            let signs = KSIGNS_IQ2XS[((aux1 >> (7 * l)) & 127) as usize];
            let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..8 {
                y[j] = db * grid[j] as f32 * sign(signs, j);
            }
        }
    }
}

/// `block_iq2_xs { half d; u16 qs[32]; u8 scales[8]; }`: each `u16` is a 9-bit `iq2xs_grid`
/// index and a 7-bit sign code; two 4-bit scales per 32 values.
fn iq2_xs(b: &[u8; 74], y: &mut [f32; 256]) {
    let d = f16(b, 0);
    let scales = &b[66..74];
    for ib32 in 0..8 {
        let db = [
            d * (0.5 + (scales[ib32] & 0x0f) as f32) * 0.25,
            d * (0.5 + (scales[ib32] >> 4) as f32) * 0.25,
        ];
        for l in 0..4 {
            let q = u16_at(b, 2 + 2 * (4 * ib32 + l));
            let grid = IQ2XS_GRID[(q & 511) as usize].to_le_bytes();
            let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
            let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..8 {
                y[j] = db[l / 2] * grid[j] as f32 * sign(signs, j);
            }
        }
    }
}

/// `block_iq2_s { half d; u8 qs[32]; u8 signs[32]; u8 qh[8]; u8 scales[8]; }`: 10-bit
/// `iq2s_grid` indices (low 8 bits in `qs`, 2 high bits in `qh`), one sign bit per value.
fn iq2_s(b: &[u8; 82], y: &mut [f32; 256]) {
    let d = f16(b, 0);
    let qs = &b[2..34];
    let signs = &b[34..66];
    let qh = &b[66..74];
    let scales = &b[74..82];
    for ib32 in 0..8 {
        let db = [
            d * (0.5 + (scales[ib32] & 0x0f) as f32) * 0.25,
            d * (0.5 + (scales[ib32] >> 4) as f32) * 0.25,
        ];
        for l in 0..4 {
            let dl = db[l / 2];
            let idx = qs[4 * ib32 + l] as usize | (((qh[ib32] as usize) << (8 - 2 * l)) & 0x300);
            let grid = IQ2S_GRID[idx].to_le_bytes();
            let s = signs[4 * ib32 + l];
            let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..8 {
                y[j] = dl * grid[j] as f32 * sign(s, j);
            }
        }
    }
}

/// `block_iq3_xxs { half d; u8 qs[64]; u8 scales_and_signs[32]; }`: 8-bit `iq3xxs_grid`
/// indices (4 values each); per 32 values a `u32` of four 7-bit sign codes and a 4-bit scale;
/// `y = d * (0.5 + s) * 0.5 * grid * ±1`.
fn iq3_xxs(b: &[u8; 98], y: &mut [f32; 256]) {
    let d = f16(b, 0);
    let qs = &b[2..66];
    for ib32 in 0..8 {
        let aux = u32_at(b, 66 + 4 * ib32);
        let db = d * (0.5 + (aux >> 28) as f32) * 0.5;
        for l in 0..4 {
            let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
            let grid1 = IQ3XXS_GRID[qs[8 * ib32 + 2 * l] as usize].to_le_bytes();
            let grid2 = IQ3XXS_GRID[qs[8 * ib32 + 2 * l + 1] as usize].to_le_bytes();
            let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..4 {
                y[j] = db * grid1[j] as f32 * sign(signs, j);
                y[j + 4] = db * grid2[j] as f32 * sign(signs, j + 4);
            }
        }
    }
}

/// `block_iq3_s { half d; u8 qs[64]; u8 qh[8]; u8 signs[32]; u8 scales[4]; }`: 9-bit
/// `iq3s_grid` indices (the 9th bit from `qh`), one sign bit per value, a 4-bit scale per 32
/// values; `y = d * (1 + 2s) * grid * ±1`.
fn iq3_s(b: &[u8; 110], y: &mut [f32; 256]) {
    let d = f16(b, 0);
    let qs = &b[2..66];
    let qh = &b[66..74];
    let signs = &b[74..106];
    let scales = &b[106..110];
    for ib32 in 0..8 {
        let sc = scales[ib32 / 2];
        let sc = if ib32 % 2 == 0 { sc & 0x0f } else { sc >> 4 };
        let db = d * (1 + 2 * sc as i32) as f32;
        let qs = &qs[8 * ib32..8 * ib32 + 8];
        let qh = qh[ib32] as usize;
        for l in 0..4 {
            let grid1 = IQ3S_GRID[qs[2 * l] as usize | ((qh << (8 - 2 * l)) & 256)].to_le_bytes();
            let grid2 =
                IQ3S_GRID[qs[2 * l + 1] as usize | ((qh << (7 - 2 * l)) & 256)].to_le_bytes();
            let s = signs[4 * ib32 + l];
            let y = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..4 {
                y[j] = db * grid1[j] as f32 * sign(s, j);
                y[j + 4] = db * grid2[j] as f32 * sign(s, j + 4);
            }
        }
    }
}

/// ggml's `IQ1S_DELTA`.
const IQ1S_DELTA: f32 = 0.125;

/// `block_iq1_s { half d; u8 qs[32]; u16 qh[8]; }`: 11-bit `iq1s_grid` indices (low 8 bits in
/// `qs`, 3 high bits per 8 values in `qh`); per 32 values a 3-bit scale and the sign of the
/// ±1/8 shift; `y = d * (2s + 1) * (grid ± 1/8)`.
fn iq1_s(b: &[u8; 50], y: &mut [f32; 256]) {
    let d = f16(b, 0);
    let qs = &b[2..34];
    for ib in 0..8 {
        let qh = u16_at(b, 34 + 2 * ib);
        let dl = d * (2 * ((qh >> 12) & 7) + 1) as f32;
        let delta = if qh & 0x8000 != 0 {
            -IQ1S_DELTA
        } else {
            IQ1S_DELTA
        };
        for l in 0..4 {
            let idx = qs[4 * ib + l] as usize | ((((qh >> (3 * l)) & 7) as usize) << 8);
            let grid = IQ1S_GRID[idx].to_le_bytes();
            let y = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
            for j in 0..8 {
                y[j] = dl * (grid[j] as i8 as f32 + delta);
            }
        }
    }
}

/// `block_iq1_m { u8 qs[32]; u8 qh[16]; u8 scales[8]; }`: like IQ1_S with a shift per 8 values
/// and 3-bit scales per 16; the f16 super-scale is the top nibbles of the four `u16` scale
/// words, lowest word first.
fn iq1_m(b: &[u8; 56], y: &mut [f32; 256]) {
    let qs = &b[0..32];
    let qh = &b[32..48];
    let sc = [u16_at(b, 48), u16_at(b, 50), u16_at(b, 52), u16_at(b, 54)];
    let scale =
        (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    let d = half::f16::from_bits(scale).to_f32();
    let delta = |h: u8, bit: u8| {
        if h & bit != 0 {
            -IQ1S_DELTA
        } else {
            IQ1S_DELTA
        }
    };
    for ib in 0..8 {
        let s = sc[ib / 2];
        let dl1 = d * (2 * ((s >> (6 * (ib % 2))) & 7) + 1) as f32;
        let dl2 = d * (2 * ((s >> (6 * (ib % 2) + 3)) & 7) + 1) as f32;
        let (h0, h1) = (qh[2 * ib] as usize, qh[2 * ib + 1] as usize);
        let q = &qs[4 * ib..4 * ib + 4];
        let idx = [
            q[0] as usize | ((h0 << 8) & 0x700),
            q[1] as usize | ((h0 << 4) & 0x700),
            q[2] as usize | ((h1 << 8) & 0x700),
            q[3] as usize | ((h1 << 4) & 0x700),
        ];
        let (h0, h1) = (h0 as u8, h1 as u8);
        let deltas = [
            delta(h0, 0x08),
            delta(h0, 0x80),
            delta(h1, 0x08),
            delta(h1, 0x80),
        ];
        for l in 0..4 {
            let dl = if l < 2 { dl1 } else { dl2 };
            let grid = IQ1S_GRID[idx[l]].to_le_bytes();
            let y = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
            for j in 0..8 {
                y[j] = dl * (grid[j] as i8 as f32 + deltas[l]);
            }
        }
    }
}

/// `block_iq4_nl { half d; u8 qs[16]; }`: `y = d * kvalues_iq4nl[q]`, low nibbles first.
fn iq4_nl(b: &[u8; 18], y: &mut [f32; 32]) {
    let d = f16(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = d * KVALUES_IQ4NL[(q & 0x0f) as usize] as f32;
        y[j + 16] = d * KVALUES_IQ4NL[(q >> 4) as usize] as f32;
    }
}

/// `block_iq4_xs { half d; u16 scales_h; u8 scales_l[4]; u8 qs[128]; }`: 6-bit scales per 32
/// values (low 4 bits in `scales_l`, high 2 in `scales_h`), offset by 32; IQ4_NL's levels.
fn iq4_xs(b: &[u8; 136], y: &mut [f32; 256]) {
    let d = f16(b, 0);
    let scales_h = u16_at(b, 2);
    let scales_l = &b[4..8];
    for ib in 0..8 {
        let ls = ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) as i32
            | ((((scales_h >> (2 * ib)) & 3) as i32) << 4);
        let dl = d * (ls - 32) as f32;
        let qs = &b[8 + 16 * ib..8 + 16 * ib + 16];
        let y = &mut y[32 * ib..32 * ib + 32];
        for j in 0..16 {
            y[j] = dl * KVALUES_IQ4NL[(qs[j] & 0x0f) as usize] as f32;
            y[j + 16] = dl * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
        }
    }
}

/// Digit `n` of a TQ1_0 byte, minus 1: ggml's `(((uint8_t)(q * 3^n)) * 3 >> 8) - 1`, in
/// {-1, 0, 1}. (The bytes store 5 base-3 digits as a fixed-point fraction of 256.)
#[inline(always)]
fn trit(byte: u8, n: usize) -> f32 {
    const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];
    let q = byte.wrapping_mul(POW3[n]);
    let xi = ((q as u16 * 3) >> 8) as i16;
    (xi - 1) as f32
}

/// `block_tq1_0 { u8 qs[48]; u8 qh[4]; half d; }`: 5 trits per byte of `qs`, 4 per byte of
/// `qh`; `y = (t - 1) * d`. Order: the first 32 bytes digit by digit, then the next 16, then
/// `qh`.
fn tq1_0(b: &[u8; 54], y: &mut [f32; 256]) {
    let d = f16(b, 52);
    let mut yi = 0;
    for (lo, hi, digits) in [(0, 32, 5), (32, 48, 5)] {
        for n in 0..digits {
            for &q in &b[lo..hi] {
                y[yi] = trit(q, n) * d;
                yi += 1;
            }
        }
    }
    for n in 0..4 {
        for &q in &b[48..52] {
            y[yi] = trit(q, n) * d;
            yi += 1;
        }
    }
}

/// `block_tq2_0 { u8 qs[64]; half d; }`: 2-bit codes `q`, `y = (q - 1) * d`.
fn tq2_0(b: &[u8; 66], y: &mut [f32; 256]) {
    let d = f16(b, 64);
    let mut yi = 0;
    for j in [0, 32] {
        for l in 0..4 {
            for &q in &b[j..j + 32] {
                let q = ((q >> (2 * l)) & 3) as i8;
                y[yi] = (q - 1) as f32 * d;
                yi += 1;
            }
        }
    }
}

/// ggml's `ggml_e8m0_to_fp32_half`: half of the E8M0 value `2^(x - 127)`, i.e. `2^(x - 128)`
/// (subnormal for `x < 2`; `x = 255`, E8M0's NaN, becomes `2^127` as in ggml).
#[inline(always)]
fn e8m0_to_f32_half(x: u8) -> f32 {
    let bits = if x < 2 {
        0x0020_0000u32 << x
    } else {
        (x as u32 - 1) << 23
    };
    f32::from_bits(bits)
}

/// ggml's `ggml_ue4m3_to_fp32`: half of an unsigned E4M3 value (bias 7, the top bit ignored),
/// with 0x7F (E4M3's NaN) read as 0.
#[inline(always)]
fn ue4m3_to_f32_half(x: u8) -> f32 {
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let exp = ((x >> 3) & 0x0f) as i32;
    let man = (x & 0x07) as f32;
    // ldexpf by an exact power of two (2^-9 .. 2^8, all normal).
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    let raw = if exp == 0 {
        man * pow2(-9)
    } else {
        (1.0 + man / 8.0) * pow2(exp - 7)
    };
    raw * 0.5
}

/// `block_mxfp4 { u8 e; u8 qs[16]; }`: `y = kvalues_mxfp4[q] * 2^(e - 128)`, low nibbles
/// first (the table holds E2M1 values doubled, hence the halved scale).
fn mxfp4(b: &[u8; 17], y: &mut [f32; 32]) {
    let d = e8m0_to_f32_half(b[0]);
    for (j, &q) in b[1..17].iter().enumerate() {
        y[j] = KVALUES_MXFP4[(q & 0x0f) as usize] as f32 * d;
        y[j + 16] = KVALUES_MXFP4[(q >> 4) as usize] as f32 * d;
    }
}

/// `block_nvfp4 { u8 d[4]; u8 qs[32]; }`: four sub-blocks of 16 with an unsigned E4M3 scale
/// each; within a sub-block, low nibbles of its 8 bytes first.
fn nvfp4(b: &[u8; 36], y: &mut [f32; 64]) {
    for s in 0..4 {
        let d = ue4m3_to_f32_half(b[s]);
        let qs = &b[4 + 8 * s..4 + 8 * s + 8];
        let y = &mut y[16 * s..16 * s + 16];
        for (j, &q) in qs.iter().enumerate() {
            y[j] = KVALUES_MXFP4[(q & 0x0f) as usize] as f32 * d;
            y[j + 8] = KVALUES_MXFP4[(q >> 4) as usize] as f32 * d;
        }
    }
}

/// `block_q1_0 { half d; u8 qs[16]; }`: bit `j` (LSB first) set gives `d`, clear `-d`.
fn q1_0(b: &[u8; 18], y: &mut [f32; 128]) {
    let d = f16(b, 0);
    let neg_d = -d;
    for (j, o) in y.iter_mut().enumerate() {
        *o = if (b[2 + j / 8] >> (j % 8)) & 1 != 0 {
            d
        } else {
            neg_d
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [u8; 2] = [0x00, 0x3c]; // f16 1.0
    const HALF: [u8; 2] = [0x00, 0x38]; // f16 0.5
    const TWO: [u8; 2] = [0x00, 0x40]; // f16 2.0
    const MINUS_ONE: [u8; 2] = [0x00, 0xbc]; // f16 -1.0

    fn deq(dtype: DType, block: &[u8]) -> Vec<f32> {
        assert_eq!(
            block.len(),
            dtype.block_bytes(),
            "test block size for {dtype}"
        );
        let mut out = vec![f32::NAN; dtype.block_size()];
        dequantize(dtype, block, &mut out).unwrap();
        out
    }

    #[test]
    fn block_sizes_match_ggml() {
        // sizeof(block_*) in ggml-common.h, QK_K = 256; the same as gguf-py's GGML_QUANT_SIZES
        // (0.19.0), except Q8_1, where gguf-py still has the old 40-byte layout.
        let ggml = [
            (DType::Q4_0, 32, 18),
            (DType::Q4_1, 32, 20),
            (DType::Q5_0, 32, 22),
            (DType::Q5_1, 32, 24),
            (DType::Q8_0, 32, 34),
            (DType::Q8_1, 32, 36),
            (DType::Q2_K, 256, 84),
            (DType::Q3_K, 256, 110),
            (DType::Q4_K, 256, 144),
            (DType::Q5_K, 256, 176),
            (DType::Q6_K, 256, 210),
            (DType::Q8_K, 256, 292),
            (DType::IQ2_XXS, 256, 66),
            (DType::IQ2_XS, 256, 74),
            (DType::IQ3_XXS, 256, 98),
            (DType::IQ1_S, 256, 50),
            (DType::IQ4_NL, 32, 18),
            (DType::IQ3_S, 256, 110),
            (DType::IQ2_S, 256, 82),
            (DType::IQ4_XS, 256, 136),
            (DType::IQ1_M, 256, 56),
            (DType::TQ1_0, 256, 54),
            (DType::TQ2_0, 256, 66),
            (DType::MXFP4, 32, 17),
            (DType::NVFP4, 64, 36),
            (DType::Q1_0, 128, 18),
        ];
        // ... and every quantised dtype is in the list.
        for d in DType::ALL.into_iter().filter(|d| d.is_quantized()) {
            assert!(ggml.iter().any(|(g, _, _)| *g == d), "{d}");
        }
        for (d, bs, bb) in ggml {
            assert_eq!((d.block_size(), d.block_bytes()), (bs, bb), "{d}");
        }
    }

    #[test]
    fn q4_0_block() {
        let mut b = [0u8; 18];
        b[0..2].copy_from_slice(&TWO);
        b[2] = 0xf0; // element 0: 0 - 8 = -8; element 16: 15 - 8 = 7
        b[3] = 0x98; // element 1: 8 - 8 = 0;  element 17: 9 - 8 = 1
        let y = deq(DType::Q4_0, &b);
        assert_eq!((y[0], y[16], y[1], y[17]), (-16.0, 14.0, 0.0, 2.0));
        assert_eq!(y[2], -16.0); // nibble 0 everywhere else
    }

    #[test]
    fn q4_1_block() {
        let mut b = [0u8; 20];
        b[0..2].copy_from_slice(&HALF);
        b[2..4].copy_from_slice(&MINUS_ONE);
        b[4] = 0x3f; // element 0: 15*0.5-1 = 6.5; element 16: 3*0.5-1 = 0.5
        let y = deq(DType::Q4_1, &b);
        assert_eq!((y[0], y[16], y[1]), (6.5, 0.5, -1.0));
    }

    #[test]
    fn q5_0_block() {
        let mut b = [0u8; 22];
        b[0..2].copy_from_slice(&ONE);
        // qh bit 0 -> element 0's 5th bit; bit 16 -> element 16's.
        b[2..6].copy_from_slice(&(1u32 | 1 << 16 | 1 << 31).to_le_bytes());
        b[6] = 0x2f; // element 0: (15|16)-16 = 15; element 16: (2|16)-16 = 2
        let y = deq(DType::Q5_0, &b);
        assert_eq!((y[0], y[16], y[1], y[31]), (15.0, 2.0, -16.0, 0.0));
    }

    #[test]
    fn q5_1_block() {
        let mut b = [0u8; 24];
        b[0..2].copy_from_slice(&HALF);
        b[2..4].copy_from_slice(&ONE);
        b[4..8].copy_from_slice(&(1u32 << 17).to_le_bytes()); // element 17's 5th bit
        b[8 + 1] = 0x31; // element 1: 1*0.5+1 = 1.5; element 17: (3|16)*0.5+1 = 10.5
        let y = deq(DType::Q5_1, &b);
        assert_eq!((y[0], y[1], y[17]), (1.0, 1.5, 10.5));
    }

    #[test]
    fn q8_0_and_q8_1_blocks() {
        let mut b = [0u8; 34];
        b[0..2].copy_from_slice(&HALF);
        b[2] = 0x80; // -128
        b[3] = 127;
        let y = deq(DType::Q8_0, &b);
        assert_eq!((y[0], y[1], y[2]), (-64.0, 63.5, 0.0));

        let mut b = [0u8; 36];
        b[0..2].copy_from_slice(&TWO);
        b[2..4].copy_from_slice(&ONE); // s: ignored
        b[4] = 0xff; // -1
        b[35] = 3;
        let y = deq(DType::Q8_1, &b);
        assert_eq!((y[0], y[1], y[31]), (-2.0, 0.0, 6.0));
    }

    #[test]
    fn q2_k_block() {
        let mut b = [0u8; 84];
        b[0] = 0x13; // group 0: scale 3, min 1
        b[1] = 0x02; // group 1 (elements 16..32): scale 2, min 0
        b[2] = 0x21; // group 2 (elements 32..48, shift 2 of q[0..16]): scale 1, min 2
        b[16] = 0b0000_1011; // q[0]: element 0 = 3, element 32 = 2
        b[16 + 16] = 0b01; // q[16]: element 16 = 1
        b[80..82].copy_from_slice(&HALF); // d
        b[82..84].copy_from_slice(&TWO); // dmin
        let y = deq(DType::Q2_K, &b);
        // y = d*sc*q - dmin*m
        assert_eq!(y[0], 0.5 * 3.0 * 3.0 - 2.0);
        assert_eq!(y[1], -2.0);
        assert_eq!(y[16], 0.5 * 2.0 * 1.0);
        assert_eq!(y[32], 0.5 * 2.0 - 4.0);
        // Second half (elements 128..) uses qs[32..64] and scales[8..].
        assert_eq!(y[128], 0.0);
    }

    #[test]
    fn q3_k_block() {
        let mut b = [0u8; 110];
        // Scales: group 0 low nibble 1, high bits 2 -> 33 - 32 = 1; group 8 low nibble 4 (from
        // the high nibble of byte 0), high bits 2 (byte 8 bits 4..6) -> 36 - 32 = 4.
        b[96] = 0x41;
        b[96 + 8] = 0b0010_0010;
        // Everything else packs to 0 - 32 = -32.
        b[0] = 0x01; // hmask bit 0 of byte 0: element 0 has no -4
        b[32] = 0b10; // element 0: q = 2
        b[32 + 32] = 0b11; // element 128 (second half, shift 0): q = 3
        b[108..110].copy_from_slice(&HALF);
        let y = deq(DType::Q3_K, &b);
        assert_eq!(y[0], 0.5 * 1.0 * 2.0);
        // element 1: q = 0, hmask clear -> -4, scale 1
        assert_eq!(y[1], 0.5 * 1.0 * -4.0);
        // element 16: group 1, scale -32, q = 0 - 4
        assert_eq!(y[16], 0.5 * -32.0 * -4.0);
        // element 128: group 8, scale 4, hmask bit 4 of byte 0 clear -> 3 - 4 = -1
        assert_eq!(y[128], -(0.5 * 4.0));
    }

    #[test]
    fn q4_k_block() {
        let mut b = [0u8; 144];
        b[0..2].copy_from_slice(&HALF); // d
        b[2..4].copy_from_slice(&ONE); // dmin
        let sc = &mut b[4..16];
        sc[0] = 2; // sub-block 0: scale 2
        sc[4] = 3; // sub-block 0: min 3
        sc[1] = 5; // sub-block 1: scale 5, min 0
        // sub-block 4: scale = (sc[8] & 0xf) | (sc[0] >> 6) << 4, min = (sc[8] >> 4) | (sc[4] >> 6) << 4
        sc[8] = 0x17; // scale 7, min 1
        b[16] = 0xa4; // element 0: 4 (low nibble), element 32: 10 (high nibble)
        b[16 + 64] = 0x02; // element 128 (sub-block 4): 2
        let y = deq(DType::Q4_K, &b);
        assert_eq!(y[0], 0.5 * 2.0 * 4.0 - 3.0);
        assert_eq!(y[1], -3.0);
        assert_eq!(y[32], 0.5 * 5.0 * 10.0);
        assert_eq!(y[128], 0.5 * 7.0 * 2.0 - 1.0);
    }

    #[test]
    fn q5_k_block() {
        let mut b = [0u8; 176];
        b[0..2].copy_from_slice(&ONE);
        b[2..4].copy_from_slice(&HALF);
        b[4] = 1; // sub-block 0: scale 1
        b[4 + 4] = 4; // sub-block 0: min 4
        b[5] = 2; // sub-block 1: scale 2
        b[16] = 0b0000_0110; // qh[0]: bit 1 (u2, sub-block 1) and bit 2 (u1 of sub-block 2)
        b[48] = 0x3f; // element 0: 15, element 32: 3
        let y = deq(DType::Q5_K, &b);
        assert_eq!(y[0], 15.0 - 2.0);
        assert_eq!(y[32], 2.0 * (3.0 + 16.0));
        // element 64: sub-block 2 (scale 0, min 0) -> 0 whatever q is
        assert_eq!(y[64], 0.0);
    }

    #[test]
    fn q6_k_block() {
        let mut b = [0u8; 210];
        b[0] = 0x21; // ql[0]: element 0 low 1, element 64 low 2
        b[32] = 0x0f; // ql[32]: element 32 low 15
        b[128] = 0b1110_0011; // qh[0]: element 0 high 3, element 32 high 0, element 64 high 2, element 96 high 3
        b[192] = 2; // scale of elements 0..16
        b[194] = 0xff; // scale -1 for elements 32..48
        b[196] = 1; // elements 64..80
        b[198] = 3; // elements 96..112
        b[208..210].copy_from_slice(&HALF);
        let y = deq(DType::Q6_K, &b);
        assert_eq!(y[0], 0.5 * 2.0 * ((1 | 3 << 4) - 32) as f32);
        assert_eq!(y[32], -0.5 * (15 - 32) as f32); // scale -1
        assert_eq!(y[64], 0.5 * 1.0 * ((2 | 2 << 4) - 32) as f32);
        assert_eq!(y[96], 0.5 * 3.0 * (3 << 4) as f32 - 0.5 * 3.0 * 32.0);
    }

    #[test]
    fn q8_k_block() {
        let mut b = [0u8; 292];
        b[0..4].copy_from_slice(&0.25f32.to_le_bytes());
        b[4] = 0x80;
        b[259] = 100;
        b[260] = 0xff; // bsums: ignored
        let y = deq(DType::Q8_K, &b);
        assert_eq!((y[0], y[1], y[255]), (-32.0, 0.0, 25.0));
    }

    #[test]
    fn iq4_nl_block() {
        let mut b = [0u8; 18];
        b[0..2].copy_from_slice(&HALF);
        b[2] = 0xf0; // element 0: level 0 (-127); element 16: level 15 (113)
        b[3] = 0x08; // element 1: level 8 (1); element 17: level 0
        let y = deq(DType::IQ4_NL, &b);
        assert_eq!((y[0], y[16], y[1], y[17]), (-63.5, 56.5, 0.5, -63.5));
    }

    #[test]
    fn iq4_xs_block() {
        let mut b = [0u8; 136];
        b[0..2].copy_from_slice(&ONE);
        // Sub-block 0: scale low 4 bits 1 (scales_l[0] low nibble), high 2 bits 2 -> 33 - 32 = 1.
        // Sub-block 1: low 0 (scales_l[0] high nibble), high bits 0 -> -32.
        b[2..4].copy_from_slice(&2u16.to_le_bytes());
        b[4] = 0x01;
        b[8] = 0x9f; // element 0: level 15 (113); element 16: level 9 (13)
        let y = deq(DType::IQ4_XS, &b);
        assert_eq!((y[0], y[16], y[1]), (113.0, 13.0, -127.0));
        assert_eq!(y[32], -32.0 * -127.0);
    }

    #[test]
    fn iq2_xxs_block() {
        let mut b = [0u8; 66];
        b[0..2].copy_from_slice(&ONE);
        // Group 0: grid indices 1, 0, 0, 0; signs code 1 for the first 8 values (ksigns[1] =
        // 0x81: values 0 and 7 negative); scale 3 -> db = (0.5 + 3) * 0.25 = 0.875.
        b[2] = 1;
        b[6..10].copy_from_slice(&(1u32 | 3 << 28).to_le_bytes());
        let y = deq(DType::IQ2_XXS, &b);
        // iq2xxs_grid[1] = 0x080808080808082b: value 0 is 0x2b = 43, the rest 8.
        assert_eq!(y[0], -0.875 * 43.0);
        assert_eq!(y[1], 0.875 * 8.0);
        assert_eq!(y[7], -0.875 * 8.0);
        assert_eq!(y[8], 0.875 * 8.0);
        // Group 1: scale 0 -> db = 0.125.
        assert_eq!(y[32], 0.125 * 8.0);
    }

    #[test]
    fn iq1_s_and_iq1_m_blocks() {
        let mut b = [0u8; 50];
        b[0..2].copy_from_slice(&TWO);
        // Group 0: scale 1 (dl = 2 * 3 = 6), negative shift, grid index 0 (all -1).
        b[34..36].copy_from_slice(&(0x8000u16 | 1 << 12).to_le_bytes());
        let y = deq(DType::IQ1_S, &b);
        assert_eq!(y[0], 6.0 * (-1.0 - 0.125));
        // Group 1: scale 0 (dl = 2), positive shift.
        assert_eq!(y[32], 2.0 * (-1.0 + 0.125));

        let mut b = [0u8; 56];
        // Super-scale f16 0x3c00 (1.0) from the top nibbles: words 0..3 hold 0, 0, 0xc, 0x3.
        b[52..54].copy_from_slice(&0xc000u16.to_le_bytes());
        b[54..56].copy_from_slice(&0x3000u16.to_le_bytes());
        b[48] = 0b0001_0001; // sub-block 0: dl1 = 2*1+1 = 3, dl2 = 2*2+1 = 5
        b[32] = 0x80; // qh[0]: values 8..16 get the negative shift
        let y = deq(DType::IQ1_M, &b);
        assert_eq!(y[0], 3.0 * (-1.0 + 0.125));
        assert_eq!(y[8], 3.0 * (-1.0 - 0.125));
        assert_eq!(y[16], 5.0 * (-1.0 + 0.125));
    }

    #[test]
    fn ternary_blocks() {
        // TQ2_0: codes 0, 1, 2 -> -d, 0, d; code 3 -> 2d.
        let mut b = [0u8; 66];
        b[64..66].copy_from_slice(&HALF);
        b[0] = 0b11_10_01_00; // elements 0, 32, 64, 96
        let y = deq(DType::TQ2_0, &b);
        assert_eq!(
            (y[0], y[32], y[64], y[96], y[1]),
            (-0.5, 0.0, 0.5, 1.0, -0.5)
        );

        // TQ1_0: a byte encoding digits (2, 1, 0, 2, 1) as ggml's quantiser does:
        // ceil((2*81 + 1*27 + 0*9 + 2*3 + 1) * 256 / 243) = 207.
        let mut b = [0u8; 54];
        b[52..54].copy_from_slice(&ONE);
        b[0] = 207;
        b[48] = 207; // qh: the first 4 digits
        let y = deq(DType::TQ1_0, &b);
        let want = [1.0, 0.0, -1.0, 1.0, 0.0];
        for (n, w) in want.iter().enumerate() {
            assert_eq!(y[32 * n], *w, "digit {n}");
        }
        for (n, w) in want[..4].iter().enumerate() {
            assert_eq!(y[240 + 4 * n], *w, "qh digit {n}");
        }
        // A zero byte is digit 0 everywhere: -d.
        assert_eq!(y[1], -1.0);
    }

    #[test]
    fn fp4_blocks_and_scales() {
        // E8M0, halved: 127 -> 0.5, 128 -> 1, 0 and 1 subnormal, 255 -> 2^127.
        assert_eq!(e8m0_to_f32_half(127), 0.5);
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        assert_eq!(e8m0_to_f32_half(0), 2f64.powi(-128) as f32);
        assert_eq!(e8m0_to_f32_half(1), 2f64.powi(-127) as f32);
        assert_eq!(e8m0_to_f32_half(255), 2f32.powi(127));
        // UE4M3, halved: 0x38 = 1.0 -> 0.5, 0x01 = 2^-9 -> 2^-10, 0x7e = 448 -> 224, 0x7f
        // (NaN) -> 0, top bit ignored.
        assert_eq!(ue4m3_to_f32_half(0x38), 0.5);
        assert_eq!(ue4m3_to_f32_half(0x01), 2f32.powi(-10));
        assert_eq!(ue4m3_to_f32_half(0x7e), 224.0);
        assert_eq!(ue4m3_to_f32_half(0x7f), 0.0);
        assert_eq!(ue4m3_to_f32_half(0xb8), 0.5);
        assert_eq!(ue4m3_to_f32_half(0xff), 240.0);

        let mut b = [0u8; 17];
        b[0] = 128; // d = 1
        b[1] = 0xf7; // element 0: code 7 (12 = 2 * 6.0); element 16: code 15 (-12)
        let y = deq(DType::MXFP4, &b);
        assert_eq!((y[0], y[16], y[1]), (12.0, -12.0, 0.0));

        let mut b = [0u8; 36];
        b[0] = 0x38; // sub-block 0: d = 0.5
        b[1] = 0x40; // sub-block 1: d = 2^1 * 0.5 = 1
        b[4] = 0x92; // element 0: code 2 (2); element 8: code 9 (-1)
        b[12] = 0x05; // element 16: code 5 (6)
        let y = deq(DType::NVFP4, &b);
        assert_eq!((y[0], y[8], y[16], y[17]), (1.0, -0.5, 6.0, 0.0));
    }

    #[test]
    fn q1_0_block() {
        let mut b = [0u8; 18];
        b[0..2].copy_from_slice(&HALF);
        b[2] = 0b0000_0101; // elements 0 and 2 positive
        b[17] = 0x80; // element 127 positive
        let y = deq(DType::Q1_0, &b);
        assert_eq!(
            (y[0], y[1], y[2], y[126], y[127]),
            (0.5, -0.5, 0.5, -0.5, 0.5)
        );
    }

    #[test]
    fn truncated_blocks_of_every_type_are_refused() {
        for d in DType::ALL.into_iter().filter(|d| d.is_quantized()) {
            let (bs, bb) = (d.block_size(), d.block_bytes());
            let bytes = vec![0u8; 2 * bb];
            let mut out = vec![0f32; 2 * bs];
            dequantize(d, &bytes, &mut out).unwrap();
            // One byte short, one byte long, one block short of the values asked for.
            for (n, m) in [(2 * bb - 1, 2 * bs), (2 * bb + 1, 2 * bs), (bb, 2 * bs)] {
                let r = dequantize(d, &vec![0u8; n], &mut vec![0f32; m]);
                assert!(
                    matches!(r, Err(ErrorKind::SizeMismatch { .. })),
                    "{d}: {n} bytes for {m} values: {r:?}"
                );
            }
        }
    }

    #[test]
    fn several_blocks_and_bad_sizes() {
        let mut b = [0u8; 36];
        b[0..2].copy_from_slice(&ONE);
        b[18..20].copy_from_slice(&TWO);
        b[20] = 0x01;
        let mut out = [0f32; 64];
        dequantize(DType::Q4_0, &b, &mut out).unwrap();
        assert_eq!((out[0], out[32]), (-8.0, -14.0));

        let mut out = [0f32; 32];
        assert!(matches!(
            dequantize(DType::Q4_0, &b, &mut out),
            Err(ErrorKind::SizeMismatch { .. })
        ));
        assert!(matches!(
            dequantize(DType::Q4_0, &b[..35], &mut [0f32; 64]),
            Err(ErrorKind::SizeMismatch { .. })
        ));
        assert!(matches!(
            dequantize(DType::F32, &[0; 4], &mut [0f32; 1]),
            Err(ErrorKind::Invalid(_))
        ));
    }
}
