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
//! Super-blocks ("K-quants") hold 256 values (`QK_K`); the others 32.

use crate::dtype::DType;
use crate::error::ErrorKind;

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
        // sizeof(block_*) in ggml-common.h, QK_K = 256.
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
        ];
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
