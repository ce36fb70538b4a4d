//! Row-major matrix products through the `gemm` crate, generic over f32/f64 so the fused
//! BPTT code runs in f64 for the gradient check and in f32 for training; a hand-written
//! f32 kernel for the few-row products of decoding ([`rows_products`]), and vectorising
//! activations for it.
use std::fmt::Debug;
use std::iter::Sum;
use std::ops::AddAssign;

use gemm::Parallelism;

use crate::encoder::kernels::matmul::PackedWeights;
use num_traits::{Float, FromPrimitive};

/// Scalar type of the decoder maths.
pub trait Real:
    Float + FromPrimitive + AddAssign + Sum + Default + Debug + Send + Sync + 'static
{
    /// `dst (row stride ldd) = [dst +] a · bᵀ` for a few rows of `a` (decoding).
    fn few_rows_times_transposed(
        dst: &mut [Self],
        ldd: usize,
        a: View<Self>,
        b: View<Self>,
        accumulate: bool,
    ) {
        rows_times_transposed(dst, ldd, a, b, a.rows, b.rows, a.cols, accumulate);
    }

    /// `e^x` in the training pass: libm in f64 (the gradient check's precision), the
    /// vectorising [`exp_fast`] (within 2 ulp) in f32, where libm's one call per element
    /// was a seventh of an attention training step.
    #[inline(always)]
    fn exp_act(self) -> Self {
        self.exp()
    }

    /// `tanh(x)` in the training pass, as [`Real::exp_act`] ([`tanh_fast`] in f32).
    #[inline(always)]
    fn tanh_act(self) -> Self {
        self.tanh()
    }

    /// `b` (`[k, n]` as read) packed for [`Real::packed_product`], where this type and CPU
    /// have such a kernel (f32 with AVX-512F).
    fn pack(_b: View<Self>) -> Option<PackedWeights> {
        None
    }

    /// `dst (m × n, dense) = a · b` of weights `pack` returned.
    fn packed_product(_p: &PackedWeights, _a: View<Self>, _dst: &mut [Self]) {
        unreachable!("pack returns None for this type")
    }
}
impl Real for f32 {
    fn pack(b: View<f32>) -> Option<PackedWeights> {
        if !packed_kernel_available() {
            return None;
        }
        let (k, n) = b.shape();
        let zeros = vec![0.0; n];
        if !b.transposed && b.ld == n {
            return Some(PackedWeights::new(&b.data[..k * n], k, n, &zeros));
        }
        // A dense `[k, n]` copy first; the transpose in 32 × 32 tiles, so that both sides
        // of a tile stay in cache.
        let mut dense = vec![0.0; k * n];
        const TILE: usize = 32;
        for r0 in (0..k).step_by(TILE) {
            for c0 in (0..n).step_by(TILE) {
                for r in r0..(r0 + TILE).min(k) {
                    for c in c0..(c0 + TILE).min(n) {
                        dense[r * n + c] = if b.transposed {
                            b.data[c * b.ld + r]
                        } else {
                            b.data[r * b.ld + c]
                        };
                    }
                }
            }
        }
        Some(PackedWeights::new(&dense, k, n, &zeros))
    }

    fn packed_product(p: &PackedWeights, a: View<f32>, dst: &mut [f32]) {
        use rayon::prelude::*;
        let (m, k) = a.shape();
        assert!(!a.transposed && k == p.k, "rows of length k");
        assert!(m == 0 || a.data.len() >= (m - 1) * a.ld + k);
        assert!(dst.len() >= m * p.n, "destination too small");
        assert!(packed_kernel_available(), "packed on a CPU with AVX-512F");
        let out = SendPtr(dst.as_mut_ptr());
        // Panels of 48 columns; two per task keeps both threads busy down to n = 192.
        let panels = p.panel_count();
        let tasks: Vec<usize> = (0..panels).step_by(2).collect();
        let run = |&p0: &usize| {
            // The whole SendPtr, not its field, is what the closure may share.
            let base = out;
            // SAFETY: AVX-512F was checked; `a` holds `m` rows of stride `ld` >= k and `dst`
            // `m` rows of `n` (asserted above); tasks own disjoint panels (column blocks).
            unsafe {
                p.run_block_partial(
                    a.data.as_ptr(),
                    a.ld,
                    0,
                    k,
                    0,
                    m,
                    p0,
                    (p0 + 2).min(panels),
                    base.0,
                )
            }
        };
        if m * p.n * k >= 1 << 18 && rayon::current_num_threads() > 1 {
            tasks.par_iter().for_each(run);
        } else {
            tasks.iter().for_each(run);
        }
    }

    #[inline(always)]
    fn exp_act(self) -> f32 {
        exp_fast(self)
    }

    #[inline(always)]
    fn tanh_act(self) -> f32 {
        tanh_fast(self)
    }

    fn few_rows_times_transposed(
        dst: &mut [f32],
        ldd: usize,
        a: View<f32>,
        b: View<f32>,
        accumulate: bool,
    ) {
        if ldd != b.rows {
            rows_times_transposed(dst, ldd, a, b, a.rows, b.rows, a.cols, accumulate);
            return;
        }
        rows_products(&mut [RowsProduct {
            x: a,
            w: b,
            bias: None,
            accumulate,
            dst,
        }]);
    }
}
impl Real for f64 {}

pub fn r<T: Real>(x: f64) -> T {
    T::from_f64(x).expect("representable")
}

/// A row-major matrix view: `rows × cols` stored with row stride `ld` (>= cols, for column
/// blocks). [`View::t`] reads the same storage as its transpose, which is how a product
/// names a transposed operand.
#[derive(Clone, Copy)]
pub struct View<'a, T> {
    pub data: &'a [T],
    /// Rows and columns as stored (before any transposition).
    pub rows: usize,
    pub cols: usize,
    pub ld: usize,
    /// Read as the transpose of the stored matrix.
    pub transposed: bool,
}

impl<'a, T> View<'a, T> {
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix buffer too small");
        Self {
            data,
            rows,
            cols,
            ld: cols,
            transposed: false,
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
            transposed: false,
        }
    }

    /// The same matrix read transposed (no copy).
    pub fn t(self) -> Self {
        Self {
            transposed: !self.transposed,
            ..self
        }
    }

    /// (rows, columns) as a product reads it.
    pub fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// (row stride, column stride) as a product reads it.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (1, self.ld as isize)
        } else {
            (self.ld as isize, 1)
        }
    }
}

/// Whether a product overwrites its destination or adds to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    Set,
    Add,
}

/// `dst (m × n, row stride ldd) = a · b` or `dst += a · b`, each operand read as its view
/// says (`x.t()` for a transpose).
pub fn matmul<T: Real>(dst: &mut [T], ldd: usize, a: View<T>, b: View<T>, update: Update) {
    let ((m, k), (kb, n)) = (a.shape(), b.shape());
    let accumulate = update == Update::Add;
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
    if !a.transposed && b.transposed && m <= SMALL_ROWS {
        T::few_rows_times_transposed(dst, ldd, a, b.t(), accumulate);
        return;
    }
    let (a_rs, a_cs) = a.strides();
    let (b_rs, b_cs) = b.strides();
    // Threads only pay off for products big enough to split.
    let par = if m * n * k >= 1 << 18 && rayon::current_num_threads() > 1 {
        Parallelism::Rayon(rayon::current_num_threads())
    } else {
        Parallelism::None
    };
    // SAFETY: View's constructors and the asserts above keep every index the strides reach
    // inside the slices.
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

/// Runs `f` on a thread of the current rayon pool. A pass makes many small parallel loops
/// (several per time step); started from outside the pool, each one wakes the workers and
/// puts the caller to sleep until they finish, two context switches that cost as much as a
/// small loop. From inside, a loop is a plain fork-join with the other worker.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

/// Whether the packed kernel of [`PackedWeights`] may run (AVX-512F, not lowered by tests).
fn packed_kernel_available() -> bool {
    crate::simd::active_level() == 2
}

/// The weight operand of a product repeated at every decoder step of a batch (`x_t · W_hhᵀ`,
/// `dgh_t · W_hh`, ...), packed once for the AVX-512 kernel of the encoder's 1×1
/// convolutions where there is one. gemm repacks its operand on every call, which at 32
/// rows costs a large share of the product (the per-step `W_hh` product ran at 90 GFLOP/s
/// against 300 for the large products).
pub struct StepWeight<'a, T> {
    b: View<'a, T>,
    bias: Option<&'a [T]>,
    packed: Option<PackedWeights>,
}

impl<'a, T: Real> StepWeight<'a, T> {
    /// `b` as the products read it (`[k, n]`, e.g. `View::new(&w_hh, 3H, H).t()`), and a
    /// bias of length `n` they add.
    pub fn new(b: View<'a, T>, bias: Option<&'a [T]>) -> Self {
        Self {
            b,
            bias,
            packed: T::pack(b),
        }
    }

    /// `dst (m × n, dense) = bias + a · b`, or `+=` that with [`Update::Add`].
    pub fn product(&self, dst: &mut [T], a: View<T>, update: Update) {
        let n = self.b.shape().1;
        let m = a.shape().0;
        assert!(dst.len() >= m * n, "destination too small");
        let dst = &mut dst[..m * n];
        let add_bias = |dst: &mut [T]| {
            if let Some(b) = self.bias {
                for row in dst.chunks_exact_mut(n) {
                    row.iter_mut().zip(b).for_each(|(d, b)| *d += *b);
                }
            }
        };
        match (&self.packed, update) {
            (Some(p), Update::Set) => {
                T::packed_product(p, a, dst);
                add_bias(dst);
            }
            (Some(p), Update::Add) => {
                let mut tmp = vec![T::zero(); m * n];
                T::packed_product(p, a, &mut tmp);
                add_bias(&mut tmp);
                dst.iter_mut().zip(&tmp).for_each(|(d, t)| *d += *t);
            }
            (None, update) => {
                if update == Update::Set {
                    dst.fill(T::zero());
                }
                add_bias(dst);
                matmul(dst, n, a, self.b, Update::Add);
            }
        }
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

/// The `n` largest entries (token, value), largest first, lower token first on ties.
pub fn top_k(values: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    for (i, &v) in values.iter().enumerate() {
        if best.len() == n && v <= best[n - 1].1 {
            continue;
        }
        let pos = best.partition_point(|&(_, b)| b >= v);
        best.insert(pos, (i as u32, v));
        best.truncate(n);
    }
    best
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
            acc[l] += a[l] * b[l];
        }
    }
    let mut s = T::zero();
    for (a, b) in rx.iter().zip(ry) {
        s += *a * *b;
    }
    acc.iter().fold(s, |t, &v| t + v)
}

/// Sum with 16 independent partial sums (vectorises, unlike a sequential sum).
pub fn sum_lanes<T: Real>(x: &[T]) -> T {
    const LANES: usize = 16;
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let rest: T = chunks.remainder().iter().copied().sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().fold(rest, |t, &v| t + v)
}

/// Largest element (−∞ for none) with 16 running maxima, which vectorises where one
/// running maximum does not. NaNs are skipped, as `Float::max` does.
pub fn max_lanes<T: Real>(x: &[T]) -> T {
    const LANES: usize = 16;
    let mut acc = [T::neg_infinity(); LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks
        .remainder()
        .iter()
        .fold(T::neg_infinity(), |m, &v| m.max(v));
    for c in chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    acc.iter().fold(rest, |m, &v| m.max(v))
}

/// `1 / (1 + e^-x)` through [`Real::exp_act`].
#[inline(always)]
pub fn sigmoid_act<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp_act())
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

/// Sum of the rows of an `m × n` matrix added into `dst` (bias gradients). Column blocks
/// run in parallel; each column still adds its rows in order, so the result does not depend
/// on the split.
pub fn add_row_sums<T: Real>(dst: &mut [T], src: &[T], n: usize) {
    use rayon::prelude::*;
    const BLOCK: usize = 512;
    let add_block = |(blk, dst): (usize, &mut [T])| {
        crate::simd::vectorized(
            #[inline(always)]
            || {
                let c0 = blk * BLOCK;
                for row in src.chunks_exact(n) {
                    for (d, s) in dst.iter_mut().zip(&row[c0..]) {
                        *d += *s;
                    }
                }
            },
        )
    };
    let dst = &mut dst[..n];
    if src.len() >= 1 << 16 && rayon::current_num_threads() > 1 {
        dst.par_chunks_mut(BLOCK).enumerate().for_each(add_block);
    } else {
        dst.chunks_mut(BLOCK).enumerate().for_each(add_block);
    }
}

pub fn sigmoid<T: Real>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// `dst[i][j] = [dst[i][j] +] bias[j] + x_i · w_j` for every row `x_i` of `x` and row `w_j`
/// of `w`: the products of decoding, where `x` has a few rows (one per live hypothesis) and
/// the time goes into streaming `w` from memory once. `dst` is `x.rows × w.rows`, row-major.
pub struct RowsProduct<'a> {
    pub x: View<'a, f32>,
    pub w: View<'a, f32>,
    pub bias: Option<&'a [f32]>,
    /// Add to what `dst` holds instead of overwriting it.
    pub accumulate: bool,
    pub dst: &'a mut [f32],
}

/// Most `x` rows [`rows_products`] computes with its own kernel (the clip memory of 16 frames
/// included); more go to gemm.
const KERNEL_ROWS: usize = 16;

/// Weight rows per task of [`rows_products`]: 128 rows of 512 floats are 256 KiB, which
/// stay in L2 while every row of `x` passes over them.
const ROW_BLOCK: usize = 128;

/// Computes every product, splitting the weight rows of all of them into blocks shared over
/// the rayon pool in one fork/join (decoding steps are ~100 µs, so one pass per step, not one
/// per matrix). Each output is one `rows_dot` dot product whatever the split, so results do
/// not depend on the thread count.
pub fn rows_products(products: &mut [RowsProduct]) {
    use rayon::prelude::*;
    let mut tasks = vec![];
    let mut bytes = 0;
    for (p, prod) in products.iter_mut().enumerate() {
        let (m, n, k) = (prod.x.rows, prod.w.rows, prod.x.cols);
        assert!(
            !prod.x.transposed && !prod.w.transposed,
            "rows of x times rows of w"
        );
        assert_eq!(k, prod.w.cols, "inner dimensions differ");
        assert!(prod.dst.len() >= m * n, "destination too small");
        assert!(prod.bias.is_none_or(|b| b.len() >= n), "bias too short");
        assert!(m == 0 || prod.x.data.len() >= (m - 1) * prod.x.ld + k);
        assert!(n == 0 || prod.w.data.len() >= (n - 1) * prod.w.ld + k);
        if m > KERNEL_ROWS {
            // Many rows (a batch of clips): compute-bound, gemm's blocking wins.
            let dst = &mut prod.dst[..m * n];
            for row in dst.chunks_exact_mut(n) {
                match (prod.bias, prod.accumulate) {
                    (Some(b), true) => row.iter_mut().zip(b).for_each(|(d, b)| *d += *b),
                    (Some(b), false) => row.copy_from_slice(&b[..n]),
                    (None, true) => {}
                    (None, false) => row.fill(0.0),
                }
            }
            matmul(dst, n, prod.x, prod.w.t(), Update::Add);
            continue;
        }
        bytes += n * k * 4;
        tasks.extend(
            (0..n)
                .step_by(ROW_BLOCK)
                .map(|j| (p, j, (j + ROW_BLOCK).min(n))),
        );
    }
    let outs: Vec<SendPtr> = products
        .iter_mut()
        .map(|p| SendPtr(p.dst.as_mut_ptr()))
        .collect();
    let products = &*products;
    let run = |&(p, j0, j1): &(usize, usize, usize)| {
        let prod = &products[p];
        // SAFETY: tasks cover disjoint column ranges `j0..j1` of each destination, whose
        // size was checked above, so no element is written twice or out of bounds.
        unsafe {
            rows_dot(
                prod.x,
                prod.w,
                j0,
                j1,
                prod.bias,
                prod.accumulate,
                outs[p].0,
                prod.w.rows,
            )
        };
    };
    if bytes >= 1 << 19 && rayon::current_num_threads() > 1 {
        tasks.par_iter().for_each(run);
    } else {
        tasks.iter().for_each(run);
    }
}

/// `out[i * ldo + j] = [out[i * ldo + j] +] bias[j] + x_i · w_j` for `j0 <= j < j1`.
///
/// # Safety
/// `out` must be valid for writes at every such index; `x` and `w` must hold their rows.
#[allow(clippy::too_many_arguments)]
unsafe fn rows_dot(
    x: View<f32>,
    w: View<f32>,
    j0: usize,
    j1: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
    out: *mut f32,
    ldo: usize,
) {
    // SAFETY: the kernels' contract is this function's own.
    unsafe {
        rows_dot_dispatch(
            x.data, x.rows, x.ld, w.data, w.ld, x.cols, j0, j1, bias, accumulate, out, ldo,
        )
    };
}

use crate::simd::{SendPtr, Simd, simd_dispatch};

// # Safety: that of `rows_dot_simd` (the generated `unsafe fn` carries it in its docs).
simd_dispatch!(unsafe fn rows_dot_dispatch = rows_dot_simd | rows_dot_portable(
    x: &[f32], m: usize, ldx: usize, w: &[f32], ldw: usize, k: usize, j0: usize, j1: usize,
    bias: Option<&[f32]>, accumulate: bool, out: *mut f32, ldo: usize,
));

/// Plain reference of `rows_dot_simd` (and the path of CPUs without AVX2).
///
/// # Safety
/// As [`rows_dot`]: `out` valid for writes at `i * ldo + j` for every row `i < m` and
/// `j0 <= j < j1`.
#[allow(clippy::too_many_arguments)]
unsafe fn rows_dot_portable(
    x: &[f32],
    m: usize,
    ldx: usize,
    w: &[f32],
    ldw: usize,
    k: usize,
    j0: usize,
    j1: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
    out: *mut f32,
    ldo: usize,
) {
    for i in 0..m {
        for j in j0..j1 {
            let v = bias.map_or(0.0, |b| b[j]) + dot(&x[i * ldx..][..k], &w[j * ldw..][..k]);
            // SAFETY: the caller's contract of `rows_dot`.
            unsafe { store(out.add(i * ldo + j), v, accumulate) };
        }
    }
}

/// `*out = v` or `*out += v`.
///
/// # Safety
/// `out` must be valid for reads and writes.
#[inline(always)]
unsafe fn store(out: *mut f32, v: f32, accumulate: bool) {
    // SAFETY: this function's contract.
    unsafe { *out = if accumulate { *out + v } else { v } };
}

/// Lane sums, partial and half-precision loads, which the GEMVs of decoding need beyond the
/// encoder's [`Simd`].
pub(super) trait SimdDot: Simd {
    /// Sum of the lanes.
    ///
    /// # Safety
    /// The CPU has the instruction set of `Self`.
    unsafe fn sum(v: Self::V) -> f32;
    /// `p[0..n]` for `n < LANES`, zeros in the other lanes.
    ///
    /// # Safety
    /// The CPU has the instruction set of `Self`; `p` is valid for reads of `n` floats.
    unsafe fn load_partial(p: *const f32, n: usize) -> Self::V;
    /// `LANES` IEEE half-precision values from `p` (unaligned), widened to f32.
    ///
    /// # Safety
    /// The CPU has the instruction set of `Self` (F16C included); `p` is valid for reads of
    /// `LANES` values.
    unsafe fn load_half(p: *const u16) -> Self::V;
}

#[cfg(target_arch = "x86_64")]
mod x86_dot {
    use crate::simd::{Avx2, Avx512};
    use std::arch::x86_64::*;

    impl super::SimdDot for Avx512 {
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn sum(v: __m512) -> f32 {
            _mm512_reduce_add_ps(v)
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load_partial(p: *const f32, n: usize) -> __m512 {
            // SAFETY: the mask enables lanes `0..n` only, which the contract makes readable;
            // masked-off lanes are not accessed.
            unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p) }
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load_half(p: *const u16) -> __m512 {
            // SAFETY: the contract makes 16 halves (32 bytes) at `p` readable.
            unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p.cast())) }
        }
    }

    impl super::SimdDot for Avx2 {
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn sum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn load_partial(p: *const f32, n: usize) -> __m256 {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes);
            // SAFETY: as for AVX-512: only lanes `0..n` are loaded.
            unsafe { _mm256_maskload_ps(p, mask) }
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load_half(p: *const u16) -> __m256 {
            // SAFETY: the contract makes 8 halves (16 bytes) at `p` readable.
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
        }
    }
}

/// The vector kernel of [`rows_dot`]: blocks of up to 4 `x` rows × 4 weight rows, so each
/// loaded chunk feeds up to four accumulators (the clip memory has 16+ rows and is compute
/// bound; a decoding step has one and is bound by streaming the weights). Every dot sums its
/// lanes in the same order whatever the blocking, so results do not depend on `j0`/`j1`/`m`.
///
/// # Safety
/// The CPU has `S`'s instruction set; `out` is valid for writes at `i * ldo + j` for every
/// row `i < m` and `j0 <= j < j1`, and nothing else accesses those elements meanwhile.
// Register blocks are indexed by row and column number in lockstep.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
#[inline(always)]
unsafe fn rows_dot_simd<S: SimdDot>(
    x: &[f32],
    m: usize,
    ldx: usize,
    w: &[f32],
    ldw: usize,
    k: usize,
    j0: usize,
    j1: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
    out: *mut f32,
    ldo: usize,
) {
    let mut j = j0;
    while j < j1 {
        let c = (j1 - j).min(4);
        let mut i = 0;
        while i < m {
            let r = (m - i).min(4);
            let xs = &x[i * ldx..];
            // SAFETY: the caller's contract; rows `i..i + r` of `x` and `j..j + c` of `w` exist.
            let sums = unsafe {
                match (r, c) {
                    (4, 4) => dot_block::<S, 4, 4>(xs, ldx, w, ldw, k, j),
                    (1, 4) => dot_block::<S, 1, 4>(xs, ldx, w, ldw, k, j),
                    (2, 4) => dot_block::<S, 2, 4>(xs, ldx, w, ldw, k, j),
                    (3, 4) => dot_block::<S, 3, 4>(xs, ldx, w, ldw, k, j),
                    _ => {
                        let mut s = [[0.0; 4]; 4];
                        for rr in 0..r {
                            for cc in 0..c {
                                let xr = &xs[rr * ldx..];
                                s[rr][cc] = dot_block::<S, 1, 1>(xr, ldx, w, ldw, k, j + cc)[0][0];
                            }
                        }
                        s
                    }
                }
            };
            for rr in 0..r {
                for cc in 0..c {
                    let v = bias.map_or(0.0, |b| b[j + cc]) + sums[rr][cc];
                    // SAFETY: the caller's contract of `rows_dot`.
                    unsafe { store(out.add((i + rr) * ldo + j + cc), v, accumulate) };
                }
            }
            i += r;
        }
        j += c;
    }
}

/// Dot products of rows `0..R` of `x` (row stride `ldx`) with rows `j..j + C` of `w`.
///
/// # Safety
/// The CPU has the instruction set of `S`. (Row bounds are checked by the slicing below.)
#[inline(always)]
unsafe fn dot_block<S: SimdDot, const R: usize, const C: usize>(
    x: &[f32],
    ldx: usize,
    w: &[f32],
    ldw: usize,
    k: usize,
    j: usize,
) -> [[f32; 4]; 4] {
    let lanes = S::LANES;
    let full = k - k % lanes;
    let xp: [*const f32; R] = std::array::from_fn(|r| x[r * ldx..][..k].as_ptr());
    let wp: [*const f32; C] = std::array::from_fn(|c| w[(j + c) * ldw..][..k].as_ptr());
    // SAFETY: every pointer starts a row of `k` floats (the slicing above checked it); full
    // loads stay below `full <= k`, the partial load reads `k - full` floats; the CPU
    // feature is the caller's contract.
    unsafe {
        let mut acc = [[S::splat(0.0); C]; R];
        let mut kk = 0;
        while kk < full {
            let wv: [S::V; C] = std::array::from_fn(|c| S::load(wp[c].add(kk)));
            for r in 0..R {
                let xv = S::load(xp[r].add(kk));
                for c in 0..C {
                    acc[r][c] = S::fma(wv[c], xv, acc[r][c]);
                }
            }
            kk += lanes;
        }
        if full < k {
            let rest = k - full;
            let wv: [S::V; C] = std::array::from_fn(|c| S::load_partial(wp[c].add(full), rest));
            for r in 0..R {
                let xv = S::load_partial(xp[r].add(full), rest);
                for c in 0..C {
                    acc[r][c] = S::fma(wv[c], xv, acc[r][c]);
                }
            }
        }
        let mut s = [[0.0; 4]; 4];
        for r in 0..R {
            for c in 0..C {
                s[r][c] = S::sum(acc[r][c]);
            }
        }
        s
    }
}

/// `e^x` within 2 ulp for x in [-87, 88] (clamped outside, so never 0 or infinite).
/// Branch-free, so loops over it vectorise: libm's `expf` is one call per element, which made
/// activations a fifth of a decoding step. 2^n · e^r with r = x - n·ln 2 (ln 2 in two parts,
/// so r is exact) and e^r by its Taylor series to r^7 (|r| <= ln2/2: remainder < 1e-8).
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5·2^23: adding it rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    let n_int = t.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    p * f32::from_bits(((n_int + 127) << 23) as u32)
}

/// `tanh(x)` within a few ulp, branch-free like [`exp_fast`]: its Taylor series to x^17 below
/// |x| = 0.55 (where `1 - 2/(e^2x + 1)` would cancel; next term < 3e-9), that formula above.
#[inline(always)]
pub fn tanh_fast(x: f32) -> f32 {
    let a = x.abs();
    let big = 1.0 - 2.0 / (exp_fast(2.0 * a) + 1.0);
    let x2 = x * x;
    // Taylor coefficients of x^17, x^15, ..., x^3 (from the Bernoulli numbers).
    let mut p = (6_404_582.0 / 10_854_718_875.0f64) as f32;
    for c in [
        -929_569.0 / 638_512_875.0f64,
        21_844.0 / 6_081_075.0,
        -1_382.0 / 155_925.0,
        62.0 / 2_835.0,
        -17.0 / 315.0,
        2.0 / 15.0,
        -1.0 / 3.0,
    ] {
        p = p * x2 + c as f32;
    }
    let small = x * (1.0 + x2 * p);
    if a < 0.55 { small } else { big.copysign(x) }
}

/// `1 / (1 + e^-x)` through [`exp_fast`].
#[inline(always)]
pub fn sigmoid_fast(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The approximations against f64 libm over their whole range, densely.
    #[test]
    fn fast_activations_match_libm() {
        let (mut worst_exp, mut worst_tanh, mut worst_sig) = (0.0f64, 0.0f64, 0.0f64);
        for i in -2_000_000..=2_000_000 {
            let x = i as f32 * 4.4e-5; // [-88, 88]
            let e = (x as f64).exp();
            if x.abs() < 87.0 {
                worst_exp = worst_exp.max((exp_fast(x) as f64 - e).abs() / e);
            }
            let t = (x as f64).tanh();
            worst_tanh = worst_tanh.max((tanh_fast(x) as f64 - t).abs() / t.abs().max(1e-30));
            let s = 1.0 / (1.0 + (-x as f64).exp());
            worst_sig = worst_sig.max((sigmoid_fast(x) as f64 - s).abs() / s);
        }
        for x in [1e-30f32, -3e-8, 1e-4, 0.549_999, 0.55, 20.0, -1e6, f32::MAX] {
            let t = (x as f64).tanh();
            worst_tanh = worst_tanh.max((tanh_fast(x) as f64 - t).abs() / t.abs());
        }
        let ulp = f32::EPSILON as f64;
        assert!(worst_exp <= 2.0 * ulp, "exp: relative error {worst_exp:e}");
        assert!(
            worst_tanh <= 4.0 * ulp,
            "tanh: relative error {worst_tanh:e}"
        );
        assert!(
            worst_sig <= 4.0 * ulp,
            "sigmoid: relative error {worst_sig:e}"
        );
        assert_eq!(exp_fast(-1000.0).to_bits(), exp_fast(-87.0).to_bits());
        assert!(exp_fast(1000.0).is_finite() && sigmoid_fast(-1000.0) > 0.0);
    }
    use crate::simd::for_each_level;

    /// `StepWeight` (the packed AVX-512 kernel at level 2, gemm below) against an f64 triple
    /// loop: a transposed and a plain weight, widths that leave a partial 48-column panel,
    /// a row stride wider than k, with and without bias, overwriting and accumulating.
    #[test]
    fn step_weight_products_match_the_reference() {
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.37;
        for (m, k, n, transposed, lda) in [
            (32, 64, 200, true, 64),
            (5, 37, 49, false, 40),
            (9, 100, 16, true, 101),
            (1, 3, 97, false, 3),
        ] {
            let wdata: Vec<f32> = (0..k * n).map(|i| val(i + 5)).collect();
            // Stored `[n, k]` and read transposed, or stored `[k, n]`.
            let b = if transposed {
                View::new(&wdata, n, k).t()
            } else {
                View::new(&wdata, k, n)
            };
            let wkn = |r: usize, c: usize| {
                if transposed {
                    wdata[c * k + r]
                } else {
                    wdata[r * n + c]
                }
            };
            let x: Vec<f32> = (0..m * lda).map(|i| val(i + 1)).collect();
            let bias: Vec<f32> = (0..n).map(|i| val(i + 9)).collect();
            for_each_level(|level| {
                for with_bias in [false, true] {
                    let sw = StepWeight::new(b, with_bias.then_some(&bias[..]));
                    let a = View::columns(&x, m, lda, 0, k);
                    let (mut set, mut add) = (vec![f32::NAN; m * n], vec![0.5f32; m * n]);
                    sw.product(&mut set, a, Update::Set);
                    sw.product(&mut add, a, Update::Add);
                    for i in 0..m {
                        for j in 0..n {
                            let want = (0..k)
                                .map(|t| x[i * lda + t] as f64 * wkn(t, j) as f64)
                                .sum::<f64>()
                                + if with_bias { bias[j] as f64 } else { 0.0 };
                            let tol = 1e-5 * (1.0 + want.abs()) * (k as f64).sqrt();
                            let (s, ad) = (set[i * n + j] as f64, add[i * n + j] as f64);
                            assert!(
                                (s - want).abs() <= tol && (ad - 0.5 - want).abs() <= tol,
                                "level {level} m{m} k{k} n{n} bias {with_bias} [{i},{j}]: \
                                 {s} / {ad} vs {want}"
                            );
                        }
                    }
                }
            });
        }
    }

    /// Every instruction-set path of `rows_products` against the plain triple loop, with odd
    /// sizes (partial vectors, partial 4-row groups, several blocks), a column block of a
    /// wider matrix, several products in one pass (one accumulating), and a thread pool.
    #[test]
    fn rows_products_match_the_reference() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.37;
        for (m, n, k, ld_extra) in [
            (1, 5000, 512, 0),
            (3, 261, 300, 1280),
            (2, 7, 37, 3),
            (6, 9, 21, 0),
            (16, 130, 64, 5),
            (20, 33, 40, 2),
        ] {
            let ldw = k + ld_extra;
            let wfull: Vec<f32> = (0..n * ldw).map(|i| val(i + 3)).collect();
            let x: Vec<f32> = (0..m * k).map(val).collect();
            let bias: Vec<f32> = (0..n).map(|i| val(i + 11)).collect();
            // Reference: x · w[:, ..k]ᵀ + bias, in f64.
            let mut want = vec![0.0f64; m * n];
            for i in 0..m {
                for j in 0..n {
                    want[i * n + j] = bias[j] as f64
                        + (0..k)
                            .map(|t| x[i * k + t] as f64 * wfull[j * ldw + t] as f64)
                            .sum::<f64>();
                }
            }
            let x2: Vec<f32> = x.iter().map(|v| v * 0.5).collect();
            for_each_level(|level| {
                let (mut a, mut b) = (vec![f32::NAN; m * n], vec![1.0; m * n]);
                pool.install(|| {
                    rows_products(&mut [
                        RowsProduct {
                            x: View::new(&x, m, k),
                            w: View::columns(&wfull, n, ldw, 0, k),
                            bias: Some(&bias),
                            accumulate: false,
                            dst: &mut a,
                        },
                        RowsProduct {
                            x: View::new(&x2, m, k),
                            w: View::columns(&wfull, n, ldw, 0, k),
                            bias: None,
                            accumulate: true,
                            dst: &mut b,
                        },
                    ])
                });
                for (idx, (&got, &want)) in a.iter().zip(&want).enumerate() {
                    let tol = 1e-5 * (1.0 + want.abs()) * (k as f64).sqrt();
                    assert!(
                        (got as f64 - want).abs() <= tol,
                        "level {level} m{m} n{n} k{k} [{idx}]: {got} vs {want}"
                    );
                    let half = want - bias[idx % n] as f64;
                    assert!(
                        (b[idx] as f64 - 1.0 - 0.5 * half).abs() <= tol,
                        "level {level} second product [{idx}]"
                    );
                }
            });
        }
    }
}
