//! Small dense kernels: a packing-free single-threaded GEMM for zoo-sized layers, bias and
//! column sums, and the AVX2 dispatch for elementwise loops. One matmul thread per model;
//! parallelism is across models (rayon), never inside a matmul.

/// `C[m×n] = init + A[m×k]·B[k×n]` for the small matrices of zoo nets, without packing.
///
/// `A` may be any strided view (`rsa`, `csa`: so `Aᵀ` of a row-major matrix is free), `B` and
/// `C` are row-major with row strides `rsb`, `rsc`; `init` is a row added to every row of `C`
/// (a bias) or zero. Each output row is accumulated in registers across column blocks of
/// 16/8/4/1 and row blocks of 4, with `B`'s rows read contiguously and `A`'s elements
/// broadcast: the form that keeps tiny GEMMs (k, n ≤ a few hundred) in L1 with no packing
/// (packing strided operands was most of the time with a general SGEMM).
///
/// Every element is `init[j]` plus the products summed in order `p = 0, 1, …, k−1` with
/// separate multiplies and adds (never fused), so the result does not depend on blocking,
/// thread count or the CPU's vector width.
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
    if m == 0 || n == 0 {
        return;
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
    let g = Gemm {
        m,
        k,
        a: a.as_ptr(),
        rsa,
        csa,
        b: b.as_ptr(),
        rsb,
        init: init.map(<[f32]>::as_ptr),
        c: c.as_mut_ptr(),
        rsc,
    };
    simd(
        #[inline(always)]
        || {
            let mut j = 0;
            while n - j >= 16 {
                // SAFETY: the asserts above bound every index the blocks touch.
                unsafe { g.columns::<16>(j) };
                j += 16;
            }
            if n - j >= 8 {
                unsafe { g.columns::<8>(j) };
                j += 8;
            }
            if n - j >= 4 {
                unsafe { g.columns::<4>(j) };
                j += 4;
            }
            while j < n {
                unsafe { g.columns::<1>(j) };
                j += 1;
            }
        },
    )
}

struct Gemm {
    m: usize,
    k: usize,
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
    /// Columns `j..j + W` of every row of `C`, four rows at a time.
    ///
    /// # Safety
    /// `gemm`'s asserts hold and `j + W ≤ n`.
    #[inline(always)]
    unsafe fn columns<const W: usize>(&self, j: usize) {
        let mut i = 0;
        while i + 4 <= self.m {
            unsafe { self.block::<W, 4>(i, j) };
            i += 4;
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
                        *x += av * bv;
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                let crow = &mut *(self.c.add((i + r) * self.rsc + j) as *mut [f32; W]);
                *crow = *acc_r;
            }
        }
    }
}

/// `dst[c×r] = srcᵀ` for a row-major `src[r×c]` (a weight matrix `[out, in]` into `[in, out]`
/// for [`gemm`]'s contiguous `B`).
pub(crate) fn transpose(src: &[f32], r: usize, c: usize, dst: &mut [f32]) {
    let (src, dst) = (&src[..r * c], &mut dst[..r * c]);
    for (i, row) in src.chunks_exact(c).enumerate() {
        for (j, v) in row.iter().enumerate() {
            dst[j * r + i] = *v;
        }
    }
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

    /// The GEMM against the plain triple loop in the same summation order: identical bits for
    /// every block shape (16/8/4/1 columns, 4/1 rows), strided and transposed `A`, padded rows
    /// of `B` and `C`, with and without `init`, and `k = 0`.
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
            gemm(
                m,
                k,
                n,
                &a,
                rsa,
                csa,
                &b,
                rsb,
                with_init.then_some(&init[..]),
                &mut c,
                rsc,
            );
            for i in 0..m {
                for j in 0..n {
                    let mut want = if with_init { init[j] } else { 0.0 };
                    for p in 0..k {
                        want += a[i * rsa + p * csa] * b[p * rsb + j];
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
        let mut out = vec![9.0; 3];
        col_sum(&src, &mut out);
        assert_eq!(out, [3.0, 5.0, 7.0]);
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
