//! Row-major matrix products through the `gemm` crate, generic over f32/f64 so the fused
//! BPTT code runs in f64 for the gradient check and in f32 for training.
use std::fmt::Debug;
use std::iter::Sum;
use std::ops::AddAssign;

use gemm::Parallelism;
use num_traits::{Float, FromPrimitive};

/// Scalar type of the decoder maths.
pub trait Real:
    Float + FromPrimitive + AddAssign + Sum + Default + Debug + Send + Sync + 'static
{
}
impl Real for f32 {}
impl Real for f64 {}

pub fn r<T: Real>(x: f64) -> T {
    T::from_f64(x).expect("representable")
}

/// A row-major matrix view: `rows × cols`, row stride `ld` (>= cols, for column blocks).
#[derive(Clone, Copy)]
pub struct View<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
}

impl<'a, T> View<'a, T> {
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix buffer too small");
        Self {
            data,
            rows,
            cols,
            ld: cols,
        }
    }

    /// Columns `start..start + cols` of a `rows × ld` matrix.
    pub fn columns(data: &'a [T], rows: usize, ld: usize, start: usize, cols: usize) -> Self {
        assert!(start + cols <= ld && data.len() >= rows * ld);
        Self {
            data: &data[start..],
            rows,
            cols,
            ld,
        }
    }
}

/// `dst (m × n, row stride ldd) = [dst +] op(a) · op(b)` where `op` transposes when asked.
pub fn matmul<T: Real>(
    dst: &mut [T],
    ldd: usize,
    a: View<T>,
    trans_a: bool,
    b: View<T>,
    trans_b: bool,
    accumulate: bool,
) {
    let (m, k) = if trans_a {
        (a.cols, a.rows)
    } else {
        (a.rows, a.cols)
    };
    let (kb, n) = if trans_b {
        (b.cols, b.rows)
    } else {
        (b.rows, b.cols)
    };
    assert_eq!(k, kb, "inner dimensions differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        ldd >= n && dst.len() >= (m - 1) * ldd + n,
        "destination too small"
    );
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                dst[row * ldd..row * ldd + n].fill(T::zero());
            }
        }
        return;
    }
    if !trans_a && trans_b && m <= SMALL_ROWS {
        rows_times_transposed(dst, ldd, a, b, m, n, k, accumulate);
        return;
    }
    // (row stride, column stride) of op(x).
    let strides = |v: &View<T>, t: bool| -> (isize, isize) {
        if t {
            (1, v.ld as isize)
        } else {
            (v.ld as isize, 1)
        }
    };
    let (a_rs, a_cs) = strides(&a, trans_a);
    let (b_rs, b_cs) = strides(&b, trans_b);
    // Threads only pay off for products big enough to split.
    let par = if m * n * k >= 1 << 18 && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every index the strides reach inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ldd as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    }
}

/// Row counts up to which `x · Wᵀ` is done as dot products (decoding: a few hypotheses).
const SMALL_ROWS: usize = 8;

/// `dst = [dst +] a · bᵀ` for a few rows of `a`: one dot product per output over contiguous
/// rows of `b`. Hand-written because gemm packs the whole of `b` on every call, which costs
/// more than the product itself when `a` has one row (greedy decoding).
#[allow(clippy::too_many_arguments)]
fn rows_times_transposed<T: Real>(
    dst: &mut [T],
    ldd: usize,
    a: View<T>,
    b: View<T>,
    m: usize,
    n: usize,
    k: usize,
    accumulate: bool,
) {
    use rayon::prelude::*;
    const BLOCK: usize = 64;
    for i in 0..m {
        let x = &a.data[i * a.ld..i * a.ld + k];
        let out = &mut dst[i * ldd..i * ldd + n];
        let kernel = |(blk, out): (usize, &mut [T])| {
            for (jj, o) in out.iter_mut().enumerate() {
                let j = blk * BLOCK + jj;
                let v = dot(x, &b.data[j * b.ld..j * b.ld + k]);
                *o = if accumulate { *o + v } else { v };
            }
        };
        if n * k >= 1 << 17 && rayon::current_num_threads() > 1 {
            out.par_chunks_mut(BLOCK).enumerate().for_each(kernel);
        } else {
            out.chunks_mut(BLOCK).enumerate().for_each(kernel);
        }
    }
}

/// Dot product with 16 independent partial sums (vectorises; fixed order, so the result
/// does not depend on threading).
pub fn dot<T: Real>(x: &[T], y: &[T]) -> T {
    const LANES: usize = 16;
    let mut acc = [T::zero(); LANES];
    let (cx, cy) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let (rx, ry) = (cx.remainder(), cy.remainder());
    for (a, b) in cx.zip(cy) {
        for l in 0..LANES {
            acc[l] = acc[l] + a[l] * b[l];
        }
    }
    let mut s = T::zero();
    for (a, b) in rx.iter().zip(ry) {
        s += *a * *b;
    }
    acc.iter().fold(s, |t, &v| t + v)
}

/// Plain triple loop: the reference the gemm path is tested against.
pub fn matmul_reference<T: Real>(a: &[T], b: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    let mut out = vec![T::zero(); m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = T::zero();
            for kk in 0..k {
                s += a[i * k + kk] * b[kk * n + j];
            }
            out[i * n + j] = s;
        }
    }
    out
}

/// Sum of the rows of an `m × n` matrix added into `dst` (bias gradients).
pub fn add_row_sums<T: Real>(dst: &mut [T], src: &[T], n: usize) {
    for row in src.chunks_exact(n) {
        for (d, s) in dst.iter_mut().zip(row) {
            *d += *s;
        }
    }
}

pub fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}
