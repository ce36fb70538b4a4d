//! The output projection streamed in half precision while decoding, with f32 logits for
//! every token search can pick.
//!
//! A decoding step computes one or a few rows, so its time is the bytes of weights it reads,
//! and the output projection (vocabulary × hidden) is most of them. Reading it as IEEE f16
//! halves that. Each f16 logit is within a bound of the f32 one that is known before the step
//! (the rounding of every weight is known when the copy is made, and the GRU state lies in
//! [-1, 1]), so the tokens that could rank among the `exact` best in f32 are found from the
//! f16 logits and recomputed from the f32 weights. Search ranks only those, so the words it
//! picks are those of the f32 model; the other logits enter only the log-sum-exp normaliser,
//! which they move by at most the bound.
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::linalg::{SimdDot, dot, top_k};
use crate::simd::{SendPtr, simd_dispatch};

/// Unit roundoff of f32.
const F32_EPS: f64 = f32::EPSILON as f64 / 2.0;

/// Weight rows per parallel task: 256 rows of 512 halves are 256 KiB.
const ROW_BLOCK: usize = 256;

/// An f16 copy of a row-major `rows × cols` f32 matrix and the bound of its dot products.
pub struct HalfMatrix {
    rows: usize,
    cols: usize,
    halves: Vec<f16>,
    /// For any `x` with `|x_k| <= s`: |f32 dot of row j with x − f16 dot of row j with x|,
    /// both as computed in f32, is at most `s` times this (the largest over rows of
    /// Σ_k |w_jk − ŵ_jk| + γ_cols·Σ_k (|w_jk| + |ŵ_jk|), γ_n = n·u / (1 − n·u) bounding the
    /// rounding of an n-term f32 sum in any order).
    bound: f32,
}

impl HalfMatrix {
    pub fn new(w: &[f32], rows: usize, cols: usize) -> Self {
        assert_eq!(w.len(), rows * cols, "matrix size");
        let n = cols as f64 * F32_EPS;
        let gamma = n / (1.0 - n);
        let mut halves = vec![f16::ZERO; w.len()];
        // Slice conversions use F16C where the CPU has it (one element at a time does not).
        let bound = halves
            .par_chunks_mut(cols.max(1))
            .zip(w.par_chunks(cols.max(1)))
            .map_init(
                || vec![0.0f32; cols],
                |back, (half, row)| {
                    half.convert_from_f32_slice(row);
                    half.convert_to_f32_slice(back);
                    let (mut rounding, mut magnitude) = (0.0f64, 0.0f64);
                    for (&x, &h) in row.iter().zip(back.iter()) {
                        let (x, h) = (f64::from(x), f64::from(h));
                        rounding += (x - h).abs();
                        magnitude += x.abs() + h.abs();
                    }
                    rounding + gamma * magnitude
                },
            )
            .reduce(|| 0.0, f64::max);
        Self {
            rows,
            cols,
            halves,
            // Rounded up so the f32 bound is not below the f64 one.
            bound: (bound * (1.0 + 1e-6)) as f32,
        }
    }

    /// `logits[i][j] = bias[j] + w_j · x_i` for every row `x_i` of `x` (`m × cols`): computed
    /// in f32 from `w` (the matrix this copy was made from) for every `j` that could be among
    /// the `exact` largest of its row, within `max_k |x_ik|` × [`Self::bound`] of that for the
    /// others (GRU states lie in [-1, 1], so the factor is at most 1 there).
    pub fn logits(&self, w: &[f32], bias: &[f32], x: &[f32], exact: usize) -> Vec<f32> {
        let (n, k) = (self.rows, self.cols);
        assert!(w.len() == n * k && bias.len() == n && x.len().is_multiple_of(k.max(1)));
        let m = x.len() / k.max(1);
        let mut out = vec![0.0f32; m * n];
        let dst = SendPtr(out.as_mut_ptr());
        let bits: &[u16] = self.halves.reinterpret_cast();
        let blocks: Vec<usize> = (0..n).step_by(ROW_BLOCK).collect();
        let run = |&j0: &usize| {
            let j1 = (j0 + ROW_BLOCK).min(n);
            // The whole SendPtr, not its field, is what the closure may share.
            let base = dst;
            // SAFETY: blocks cover disjoint column ranges `j0..j1` of the `m × n` output.
            unsafe { half_rows_dispatch(x, m, bits, k, bias, j0, j1, base.0, n) };
        };
        if rayon::current_num_threads() > 1 && n * k >= 1 << 18 {
            blocks.par_iter().for_each(run);
        } else {
            blocks.iter().for_each(run);
        }
        let exact = exact.clamp(1, n.max(1));
        for (row, x) in out.chunks_exact_mut(n).zip(x.chunks_exact(k)) {
            let scale = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let kth = top_k(row, exact)[exact - 1].1;
            let threshold = kth - 2.0 * self.bound * scale;
            for (j, v) in row.iter_mut().enumerate() {
                if *v >= threshold {
                    *v = bias[j] + dot(&w[j * k..][..k], x);
                }
            }
        }
        out
    }

    /// The screening bound for rows of `x` in [-1, 1] (see the struct).
    pub fn bound(&self) -> f32 {
        self.bound
    }
}

// # Safety: that of `half_rows_simd`.
simd_dispatch!(unsafe fn half_rows_dispatch = half_rows_simd | half_rows_portable(
    x: &[f32], m: usize, w: &[u16], k: usize, bias: &[f32], j0: usize, j1: usize,
    out: *mut f32, ldo: usize,
));

/// Plain reference of [`half_rows_simd`] (and the path of CPUs without AVX2).
///
/// # Safety
/// `out` is valid for writes at `i * ldo + j` for `i < m`, `j0 <= j < j1`.
#[allow(clippy::too_many_arguments)]
unsafe fn half_rows_portable(
    x: &[f32],
    m: usize,
    w: &[u16],
    k: usize,
    bias: &[f32],
    j0: usize,
    j1: usize,
    out: *mut f32,
    ldo: usize,
) {
    for j in j0..j1 {
        let row: Vec<f32> = w[j * k..][..k]
            .iter()
            .map(|&b| f16::from_bits(b).to_f32())
            .collect();
        for i in 0..m {
            let v = bias[j] + dot(&row, &x[i * k..][..k]);
            // SAFETY: the caller's contract.
            unsafe { *out.add(i * ldo + j) = v };
        }
    }
}

/// `out[i * ldo + j] = bias[j] + ŵ_j · x_i` for rows `j0..j1` of the f16 matrix `w`
/// (`k` columns) and the `m` rows of `x`: four weight rows at a time, so four independent
/// accumulator chains hide the FMA latency while the halves stream in.
///
/// # Safety
/// The CPU has `S`'s instruction set (F16C included); `out` is valid for writes at
/// `i * ldo + j` for `i < m`, `j0 <= j < j1`, and nothing else accesses them meanwhile.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn half_rows_simd<S: SimdDot>(
    x: &[f32],
    m: usize,
    w: &[u16],
    k: usize,
    bias: &[f32],
    j0: usize,
    j1: usize,
    out: *mut f32,
    ldo: usize,
) {
    assert!(x.len() >= m * k && w.len() >= j1 * k && bias.len() >= j1);
    let (lanes, full) = (S::LANES, k - k % S::LANES);
    let mut j = j0;
    while j < j1 {
        let c = (j1 - j).min(4);
        let rows: [*const u16; 4] = std::array::from_fn(|r| w[(j + r.min(c - 1)) * k..].as_ptr());
        for i in 0..m {
            let xp = x[i * k..].as_ptr();
            // SAFETY: rows `j..j + c` of `w` and row `i` of `x` hold `k` values (asserted);
            // loads stay below `full`, the tail is summed in scalar; a block of fewer than 4
            // rows repeats its last row (computed, not stored). The CPU feature is the
            // caller's contract.
            let sums = unsafe {
                let mut acc = [S::splat(0.0); 4];
                let mut kk = 0;
                while kk < full {
                    let xv = S::load(xp.add(kk));
                    for (a, row) in acc.iter_mut().zip(&rows) {
                        *a = S::fma(S::load_half(row.add(kk)), xv, *a);
                    }
                    kk += lanes;
                }
                let mut sums = acc.map(|a| S::sum(a));
                for (s, row) in sums.iter_mut().zip(&rows) {
                    for t in full..k {
                        *s += f16::from_bits(*row.add(t)).to_f32() * *xp.add(t);
                    }
                }
                sums
            };
            for (r, s) in sums.iter().enumerate().take(c) {
                // SAFETY: the caller's contract (`j + r < j1`).
                unsafe { *out.add(i * ldo + j + r) = bias[j + r] + s };
            }
        }
        j += c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn f64_logits(w: &[f32], b: &[f32], x: &[f32], k: usize) -> Vec<f64> {
        w.chunks_exact(k)
            .zip(b)
            .map(|(row, &bj)| {
                f64::from(bj)
                    + row
                        .iter()
                        .zip(x)
                        .map(|(&a, &c)| f64::from(a) * f64::from(c))
                        .sum::<f64>()
            })
            .collect()
    }

    /// Random projection whose rows nearly tie, so the screening has to recompute several.
    fn case(seed: u64, n: usize, k: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-0.1..0.1)).collect();
        let b: Vec<f32> = (0..n).map(|j| if j % 7 == 0 { 2.0 } else { 0.0 }).collect();
        // One state in [-1, 1] as the GRU's, one beyond it (the bound scales with it).
        let x: Vec<f32> = (0..2 * k)
            .map(|i| rng.random_range(-1.0..1.0) * if i < k { 1.0 } else { 3.0 })
            .collect();
        (w, b, x)
    }

    #[test]
    fn screened_logits_are_exact_where_they_rank_and_bounded_elsewhere() {
        let (n, k) = (1003, 77);
        let (w, b, x) = case(7, n, k);
        let half = HalfMatrix::new(&w, n, k);
        assert!(
            half.bound() > 0.0 && half.bound() < 0.05,
            "{}",
            half.bound()
        );
        crate::simd::for_each_level(|level| {
            for exact in [1, 5, 40] {
                let got = half.logits(&w, &b, &x, exact);
                for (i, xi) in x.chunks_exact(k).enumerate() {
                    let want = f64_logits(&w, &b, xi, k);
                    let row = &got[i * n..(i + 1) * n];
                    let scale = xi.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                    for (j, (&g, &r)) in row.iter().zip(&want).enumerate() {
                        let err = (f64::from(g) - r).abs();
                        let bound = f64::from(half.bound() * scale);
                        assert!(err <= bound, "level {level} [{i}][{j}]: {g} vs {r}");
                    }
                    // The `exact` best by the f64 reference carry f32 values (error ~1e-6,
                    // far below the f16 rounding the others may keep).
                    let mut order: Vec<usize> = (0..n).collect();
                    order.sort_by(|&a, &c| want[c].total_cmp(&want[a]));
                    for &j in &order[..exact] {
                        let f32_value = b[j] + dot(&w[j * k..][..k], xi);
                        assert_eq!(row[j], f32_value, "level {level} exact {exact} token {j}");
                    }
                }
            }
        });
    }
}
