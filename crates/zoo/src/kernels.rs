//! Small dense kernels: a bounds-checked single-threaded SGEMM wrapper over `matrixmultiply`,
//! activations and their derivatives. One matmul thread per model; parallelism is across
//! models (rayon), never inside a matmul.

/// `C[m×n] = A[m×k]·B[k×n] + beta·C`, with row/column strides for `A` and `B` (so either may
/// be a transposed view) and `C` row-major with row stride `rsc`.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    beta: f32,
    c: &mut [f32],
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in c.chunks_mut(rsc).take(m) {
            for v in &mut row[..n] {
                *v *= beta;
            }
        }
        return;
    }
    assert!(
        (m - 1) * rsa + (k - 1) * csa < a.len(),
        "gemm: A out of bounds"
    );
    assert!(
        (k - 1) * rsb + (n - 1) * csb < b.len(),
        "gemm: B out of bounds"
    );
    assert!((m - 1) * rsc + n - 1 < c.len(), "gemm: C out of bounds");
    // SAFETY: the asserts above bound every element the kernel reads or writes.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            1,
        );
    }
}

/// Adds `bias` to every row of `y` (`rows × bias.len()`).
#[inline]
pub(crate) fn add_bias(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// `out[j] = Σ_rows y[row, j]`.
#[inline]
pub(crate) fn col_sum(y: &[f32], out: &mut [f32]) {
    out.fill(0.0);
    for row in y.chunks_exact(out.len()) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
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
