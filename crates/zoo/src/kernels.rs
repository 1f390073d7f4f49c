//! Small dense kernels: a packing-free single-threaded GEMM for zoo-sized layers, bias and
//! column sums, and the AVX2 dispatch for elementwise loops. One matmul thread per model;
//! parallelism is across models (rayon), never inside a matmul.

/// `C[m×n] = init + A[m×k]·B[k×n]` for the small matrices of zoo nets, without packing.
///
/// `A` may be any strided view (`rsa`, `csa`: so `Aᵀ` of a row-major matrix is free), `B` and
/// `C` are row-major with row strides `rsb`, `rsc`; `init` is a row added to every row of `C`
/// (a bias) or zero. Each output row is accumulated in registers across column blocks of
/// 16/8 (then a masked block for the last 1–7 columns) and row blocks of 4 or 8, with `B`'s
/// rows read contiguously and `A`'s elements broadcast: the form that keeps tiny GEMMs (k, n ≤
/// a few hundred) in L1 with no packing (packing strided operands was most of the time with a
/// general SGEMM).
///
/// Every element is `init[j]` (or 0) followed by `c = fma(a[i,p], b[p,j], c)` for `p = 0, 1,
/// …, k−1`: one correctly rounded fused multiply-add per product, in that order. So the result
/// does not depend on blocking, thread count, vector width or CPU: with AVX2 and FMA the kernel
/// uses the FMA instructions; elsewhere `f32::mul_add` (hardware FMA, or libm's correctly
/// rounded `fmaf` where the CPU has none — slow, but the same bits).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    init: Option<&[f32]>,
    c: &mut [f32],
    rsc: usize,
) {
    let Some(g) = Gemm::checked(m, k, n, a, rsa, csa, b, rsb, init, c, rsc) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    {
        if fma_available() {
            // SAFETY: the CPU has AVX2 and FMA (checked just above); `checked` bounds every
            // index the blocks touch.
            unsafe { g.run_avx2_fma() };
            return;
        }
    }
    g.run_portable();
}

#[cfg(target_arch = "x86_64")]
fn fma_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

struct Gemm {
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    rsb: usize,
    init: Option<*const f32>,
    c: *mut f32,
    rsc: usize,
}

impl Gemm {
    /// Checks every bound the kernels rely on; `None` when there is nothing to compute.
    #[allow(clippy::too_many_arguments)]
    fn checked(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        rsa: usize,
        csa: usize,
        b: &[f32],
        rsb: usize,
        init: Option<&[f32]>,
        c: &mut [f32],
        rsc: usize,
    ) -> Option<Gemm> {
        if m == 0 || n == 0 {
            return None;
        }
        if k > 0 {
            assert!(
                (m - 1) * rsa + (k - 1) * csa < a.len(),
                "gemm: A out of bounds"
            );
            assert!((k - 1) * rsb + n <= b.len(), "gemm: B out of bounds");
        }
        assert!((m - 1) * rsc + n <= c.len(), "gemm: C out of bounds");
        assert!(rsc >= n && (k <= 1 || rsb >= n), "gemm: overlapping rows");
        if let Some(b0) = init {
            assert!(b0.len() >= n, "gemm: init too short");
        }
        Some(Gemm {
            m,
            k,
            n,
            a: a.as_ptr(),
            rsa,
            csa,
            b: b.as_ptr(),
            rsb,
            init: init.map(<[f32]>::as_ptr),
            c: c.as_mut_ptr(),
            rsc,
        })
    }

    /// Blocks of 16/8/4/1 columns in plain Rust (`mul_add` per product).
    fn run_portable(&self) {
        let n = self.n;
        let mut j = 0;
        // SAFETY (every call below): `checked` bounds every index the blocks touch.
        while n - j >= 16 {
            unsafe { self.columns::<16, 4>(j) };
            j += 16;
        }
        if n - j >= 8 {
            unsafe { self.columns::<8, 4>(j) };
            j += 8;
        }
        if n - j >= 4 {
            unsafe { self.columns::<4, 4>(j) };
            j += 4;
        }
        while j < n {
            unsafe { self.columns::<1, 4>(j) };
            j += 1;
        }
    }

    /// Blocks of 16 columns × 4 rows and 8 columns × 8 rows (eight accumulator registers
    /// each, enough independent FMA chains to hide the latency), then one masked block of 8
    /// rows for the last 1–7 columns.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `checked` built `self`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2_fma(&self) {
        let n = self.n;
        let mut j = 0;
        unsafe {
            while n - j >= 16 {
                self.columns::<16, 4>(j);
                j += 16;
            }
            if n - j >= 8 {
                self.columns::<8, 8>(j);
                j += 8;
            }
            if j < n {
                self.masked_columns(j, n - j);
            }
        }
    }

    /// Columns `j..j + W` of every row of `C`, `R` rows at a time (then single rows).
    ///
    /// # Safety
    /// `checked` built `self` and `j + W ≤ n`.
    #[inline(always)]
    unsafe fn columns<const W: usize, const R: usize>(&self, j: usize) {
        let mut i = 0;
        while i + R <= self.m {
            unsafe { self.block::<W, R>(i, j) };
            i += R;
        }
        while i < self.m {
            unsafe { self.block::<W, 1>(i, j) };
            i += 1;
        }
    }

    /// Rows `i..i + R`, columns `j..j + W`.
    ///
    /// # Safety
    /// As [`Gemm::columns`], and `i + R ≤ m`.
    #[inline(always)]
    unsafe fn block<const W: usize, const R: usize>(&self, i: usize, j: usize) {
        unsafe {
            let mut acc = [[0.0f32; W]; R];
            if let Some(b0) = self.init {
                let row = &*(b0.add(j) as *const [f32; W]);
                for r in acc.iter_mut() {
                    *r = *row;
                }
            }
            for p in 0..self.k {
                let brow = &*(self.b.add(p * self.rsb + j) as *const [f32; W]);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let av = *self.a.add((i + r) * self.rsa + p * self.csa);
                    for (x, bv) in acc_r.iter_mut().zip(brow) {
                        *x = av.mul_add(*bv, *x);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                let crow = &mut *(self.c.add((i + r) * self.rsc + j) as *mut [f32; W]);
                *crow = *acc_r;
            }
        }
    }

    /// Columns `j..j + w` (`1 ≤ w ≤ 7`) of every row, 8 rows at a time (then single rows):
    /// `B`'s and `C`'s rows are read and written through a lane mask, so nothing past column
    /// `n` is touched.
    ///
    /// # Safety
    /// As [`Gemm::run_avx2_fma`], and `j + w = n`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn masked_columns(&self, j: usize, w: usize) {
        use std::arch::x86_64::*;
        const LANES: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        unsafe {
            let mask = _mm256_loadu_si256(LANES.as_ptr().add(8 - w) as *const __m256i);
            let mut i = 0;
            while i + 8 <= self.m {
                self.masked_block::<8>(i, j, mask);
                i += 8;
            }
            while i < self.m {
                self.masked_block::<1>(i, j, mask);
                i += 1;
            }
        }
    }

    /// Rows `i..i + R` of [`Gemm::masked_columns`].
    ///
    /// # Safety
    /// As [`Gemm::masked_columns`], and `i + R ≤ m`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn masked_block<const R: usize>(
        &self,
        i: usize,
        j: usize,
        mask: std::arch::x86_64::__m256i,
    ) {
        use std::arch::x86_64::*;
        unsafe {
            let init = match self.init {
                Some(b0) => _mm256_maskload_ps(b0.add(j), mask),
                None => _mm256_setzero_ps(),
            };
            let mut acc = [init; R];
            for p in 0..self.k {
                let bv = _mm256_maskload_ps(self.b.add(p * self.rsb + j), mask);
                let ap = self.a.add(i * self.rsa + p * self.csa);
                for (r, x) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*ap.add(r * self.rsa));
                    *x = _mm256_fmadd_ps(av, bv, *x);
                }
            }
            for (r, x) in acc.iter().enumerate() {
                _mm256_maskstore_ps(self.c.add((i + r) * self.rsc + j), mask, *x);
            }
        }
    }
}

/// `dst[c×r] = srcᵀ` for a row-major `src[r×c]` (a weight matrix `[out, in]` into `[in, out]`
/// for [`gemm`]'s contiguous `B`): 8×8 tiles through AVX2 shuffles where the CPU has them.
pub(crate) fn transpose(src: &[f32], r: usize, c: usize, dst: &mut [f32]) {
    let (src, dst) = (&src[..r * c], &mut dst[..r * c]);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available; the slices hold r·c values.
            unsafe { transpose_avx2(src, r, c, dst) };
            return;
        }
    }
    transpose_scalar(src, r, c, dst, 0, r, 0, c);
}

/// Rows `i0..i1`, columns `j0..j1` of [`transpose`], element by element.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transpose_scalar(
    src: &[f32],
    r: usize,
    c: usize,
    dst: &mut [f32],
    i0: usize,
    i1: usize,
    j0: usize,
    j1: usize,
) {
    for i in i0..i1 {
        for j in j0..j1 {
            dst[j * r + i] = src[i * c + j];
        }
    }
}

/// [`transpose`] in 8×8 tiles (eight row loads, 24 shuffles, eight row stores), the ragged
/// edges element by element.
///
/// # Safety
/// The CPU has AVX2; `src` and `dst` hold `r·c` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_avx2(src: &[f32], r: usize, c: usize, dst: &mut [f32]) {
    use std::arch::x86_64::*;
    let (r8, c8) = (r / 8 * 8, c / 8 * 8);
    for i in (0..r8).step_by(8) {
        for j in (0..c8).step_by(8) {
            // SAFETY: rows i..i+8 and columns j..j+8 lie inside both matrices.
            unsafe {
                let s = src.as_ptr().add(i * c + j);
                let row = |q: usize| _mm256_loadu_ps(s.add(q * c));
                let (t0, t1) = (
                    _mm256_unpacklo_ps(row(0), row(1)),
                    _mm256_unpackhi_ps(row(0), row(1)),
                );
                let (t2, t3) = (
                    _mm256_unpacklo_ps(row(2), row(3)),
                    _mm256_unpackhi_ps(row(2), row(3)),
                );
                let (t4, t5) = (
                    _mm256_unpacklo_ps(row(4), row(5)),
                    _mm256_unpackhi_ps(row(4), row(5)),
                );
                let (t6, t7) = (
                    _mm256_unpacklo_ps(row(6), row(7)),
                    _mm256_unpackhi_ps(row(6), row(7)),
                );
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let d = dst.as_mut_ptr().add(j * r + i);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (q, v) in out.iter().enumerate() {
                    _mm256_storeu_ps(d.add(q * r), *v);
                }
            }
        }
        transpose_scalar(src, r, c, dst, i, i + 8, c8, c);
    }
    transpose_scalar(src, r, c, dst, r8, r, 0, c);
}

/// Runs `f` with the body compiled for AVX2 when the CPU has it (runtime detection, checked
/// once and cached by `std`), else as plain code. Only for elementwise kernels: Rust never
/// fuses a multiply and an add, so the wider vectors give the same bits as the scalar code,
/// and results stay identical across machines with and without AVX2.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// `out[j] = Σ_rows y[row, j]`.
#[inline]
pub(crate) fn col_sum(y: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    simd(
        #[inline(always)]
        || {
            for row in y.chunks_exact(out.len()) {
                for (o, v) in out.iter_mut().zip(row) {
                    *o += v;
                }
            }
        },
    )
}

/// `eˣ` for `x ≤ 0` (softmax after subtracting the row maximum), as plain arithmetic that
/// vectorises: Cephes' `expf` (range reduction by ln 2 in two parts, rounding to nearest
/// rather than floor(·+½), a degree-5 polynomial, the power of two put into the exponent
/// bits); relative error below 3 ulp. Inputs below
/// −87 give e⁻⁸⁷ ≈ 1.6e−38 (no denormals), NaN stays NaN. Separate multiplies and adds, so the
/// same bits with and without AVX2.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    let xc = x.clamp(-87.0, 0.0);
    // n = round(x·log₂e) by the 1.5·2²³ trick (floor does not vectorise everywhere).
    let n = (xc * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
    let r = xc - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * z + r + 1.0;
    // 2ⁿ from the bits of n + 127 + 2²³ (an integer below 2²⁴: its mantissa is n + 127), so
    // the whole function vectorises (a float-to-int cast would not).
    let scale = f32::from_bits((n + 8_388_735.0).to_bits() << 23);
    if x.is_nan() { x } else { y * scale }
}

/// Error function (Abramowitz & Stegun 7.1.26 refined with one Newton-free correction;
/// absolute error below 2e-7), enough for f32 GELU.
#[inline]
pub(crate) fn erf(x: f32) -> f32 {
    let xd = x as f64;
    let s = xd.signum();
    let a = xd.abs();
    let t = 1.0 / (1.0 + 0.5 * a);
    // Numerical Recipes erfc approximation (fractional error < 1.2e-7).
    let y = t
        * (-a * a - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    (s * (1.0 - y)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Both GEMM paths against the plain triple loop of fused multiply-adds in the same
    /// order: identical bits for every block shape (16/8/masked/4/1 columns, 8/4/1 rows),
    /// strided and transposed `A`, padded rows of `B` and `C`, with and without `init`, and
    /// `k = 0`.
    #[test]
    fn gemm_matches_the_triple_loop_bit_for_bit() {
        let mut rng = Rng::new(7);
        for case in 0..300 {
            let m = rng.below(23) as usize;
            let k = rng.below(21) as usize;
            let n = rng.below(41) as usize;
            let transposed = case % 2 == 1;
            let (rsa, csa) = if transposed { (1, m + 2) } else { (k + 1, 1) };
            let a_len = if transposed {
                k.max(1) * (m + 2)
            } else {
                m.max(1) * (k + 1)
            };
            let a: Vec<f32> = (0..a_len).map(|_| rng.f32() * 2.0 - 1.0).collect();
            let rsb = n + 3;
            let b: Vec<f32> = (0..k.max(1) * rsb).map(|_| rng.f32() * 2.0 - 1.0).collect();
            let init: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let with_init = case % 3 != 0;
            let rsc = n + 1;
            let mut c = vec![f32::NAN; m.max(1) * rsc];
            let mut c2 = c.clone();
            let init = with_init.then_some(&init[..]);
            gemm(m, k, n, &a, rsa, csa, &b, rsb, init, &mut c, rsc);
            // The path of CPUs without AVX2 and FMA.
            if let Some(g) = Gemm::checked(m, k, n, &a, rsa, csa, &b, rsb, init, &mut c2, rsc) {
                g.run_portable();
            }
            assert!(
                c.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()),
                "case {case}: the portable path differs"
            );
            for i in 0..m {
                for j in 0..n {
                    let mut want = init.map_or(0.0, |v| v[j]);
                    for p in 0..k {
                        want = a[i * rsa + p * csa].mul_add(b[p * rsb + j], want);
                    }
                    let got = c[i * rsc + j];
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "case {case}: m {m} k {k} n {n} at ({i}, {j}): {got} vs {want}"
                    );
                }
                // Padding between rows of C is never written.
                if m > 0 && rsc > n {
                    assert!(c[i * rsc + n].is_nan(), "case {case}: wrote past row {i}");
                }
            }
        }
    }

    #[test]
    fn transpose_and_col_sum() {
        let src: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let mut dst = vec![0.0; 6];
        transpose(&src, 2, 3, &mut dst);
        assert_eq!(dst, [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        // Tiles and ragged edges of every size class.
        for (r, c) in [
            (8, 8),
            (16, 24),
            (32, 64),
            (10, 32),
            (17, 9),
            (7, 13),
            (1, 40),
        ] {
            let src: Vec<f32> = (0..r * c).map(|v| v as f32).collect();
            let mut dst = vec![f32::NAN; r * c];
            transpose(&src, r, c, &mut dst);
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(dst[j * r + i], src[i * c + j], "{r}x{c} at ({i}, {j})");
                }
            }
        }
        let mut out = vec![9.0; 3];
        col_sum(&src, &mut out);
        assert_eq!(out, [3.0, 5.0, 7.0]);
    }

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0.0f64;
        for i in 0..=200_000 {
            let x = -(i as f32) * 87.0 / 200_000.0;
            let (got, want) = (exp_nonpositive(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 3.0 * f32::EPSILON as f64, "relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f32::NAN).is_nan());
        assert!(exp_nonpositive(-1e4) > 0.0 && exp_nonpositive(-1e4) < 2e-38);
    }

    #[test]
    fn erf_is_accurate() {
        // Reference values of erf to 9 digits.
        for (x, want) in [
            (0.0f32, 0.0f64),
            (0.5, 0.520_499_878),
            (1.0, 0.842_700_793),
            (-1.5, -0.966_105_146),
            (3.0, 0.999_977_910),
        ] {
            assert!((erf(x) as f64 - want).abs() < 3e-7, "erf({x}) = {}", erf(x));
        }
    }
}
