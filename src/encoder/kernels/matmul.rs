//! AVX-512 matrix product for 1×1 convolutions, `out = act(x @ w + bias) (+ residual)`, with the
//! weights packed once at load into 48-column panels and the bias, ReLU6 and residual fused into
//! the microkernel's stores.
//!
//! Hand-written because the general `gemm` crate repacks the weights on every call (about 13%
//! of the encoder's time at batch 1 in `perf`) and needs a separate pass for the epilogue. The
//! microkernel keeps an 8 rows × 48 columns block of the output in 24 vector registers;
//! `x` rows are broadcast one value at a time against three weight vectors (fewer for the
//! last, narrower panel of a layer).
//! Used only when the CPU has AVX-512F; [`super::pointwise`] falls back to the `gemm` crate.
use super::Activation;

/// Output columns per panel (three 16-lane vectors).
pub const PANEL: usize = 48;

/// Where output row `r` goes: densely at row `r`, or at pixel `r`'s place inside a zero-padded
/// NHWC image (so the depthwise convolution that follows reads it without a padding copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLayout {
    Dense,
    Padded(super::Padding),
}

impl RowLayout {
    #[inline(always)]
    pub fn row(&self, r: usize) -> usize {
        match self {
            RowLayout::Dense => r,
            RowLayout::Padded(p) => p.row(r),
        }
    }

    /// `[row(first), row(first + 1), ...]`: two divisions for the first, increments after
    /// (a division pair per row cost the expansions of the 14×14 and 7×7 maps, with their
    /// short `k`, a noticeable share of their time).
    #[inline(always)]
    pub fn rows<const N: usize>(&self, first: usize) -> [usize; N] {
        let mut at = [0; N];
        match self {
            RowLayout::Dense => {
                for (i, a) in at.iter_mut().enumerate() {
                    *a = first + i;
                }
            }
            RowLayout::Padded(p) => {
                let per_image = p.height * p.width;
                let (mut image, rem) = (first / per_image, first % per_image);
                let (mut y, mut x) = (rem / p.width, rem % p.width);
                for a in at.iter_mut() {
                    *a = (image * p.padded_height + y + p.top) * p.padded_width + x + p.left;
                    x += 1;
                    if x == p.width {
                        (x, y) = (0, y + 1);
                        if y == p.height {
                            (y, image) = (0, image + 1);
                        }
                    }
                }
            }
        }
        at
    }
}

/// `w [k, n]` packed as `ceil(n / 48)` panels of `[k, 48]` (zero-padded), bias padded to match.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    pub k: usize,
    pub n: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedWeights {
    pub fn new(weights: &[f32], k: usize, n: usize, bias: &[f32]) -> Self {
        assert_eq!(weights.len(), k * n);
        assert_eq!(bias.len(), n);
        let count = n.div_ceil(PANEL);
        let mut panels = vec![0f32; count * k * PANEL];
        for p in 0..count {
            for kk in 0..k {
                for j in 0..PANEL.min(n - p * PANEL) {
                    panels[(p * k + kk) * PANEL + j] = weights[kk * n + p * PANEL + j];
                }
            }
        }
        let mut padded = bias.to_vec();
        padded.resize(count * PANEL, 0.0);
        PackedWeights {
            k,
            n,
            panels,
            bias: padded,
        }
    }

    pub fn panel_count(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    /// Rows `r0..r1` and panels `p0..p1` of the product.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `input` holds `r1` rows of `k`, `out` (and `residual`, when not
    /// null) `r1` rows of `n`; no other thread writes the same rows and panels.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn run_block(
        &self,
        input: *const f32,
        r0: usize,
        r1: usize,
        p0: usize,
        p1: usize,
        act: Activation,
        residual: *const f32,
        out: *mut f32,
        layout: RowLayout,
    ) {
        let k = self.k;
        // SAFETY: the caller's contract is `run_panels`' with all `k` channels, stride `k`.
        unsafe {
            self.run_panels(
                input, k, 0, k, true, r0, r1, p0, p1, act, residual, out, layout,
            )
        }
    }

    /// The partial product over input channels `k0..k1` only, without bias or activation:
    /// `out[r, :] = x[r, :] @ w[k0..k1, :]` for rows `r0..r1` and panels `p0..p1`, where row
    /// `r` of `x` starts at `input + r * x_stride` and holds those `k1 - k0` channels.
    /// Summing the partials of a split of `0..k` (and adding the bias) gives the product.
    ///
    /// # Safety
    /// As [`Self::run_block`], with `input` holding `r1` rows of stride `x_stride`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn run_block_partial(
        &self,
        input: *const f32,
        x_stride: usize,
        k0: usize,
        k1: usize,
        r0: usize,
        r1: usize,
        p0: usize,
        p1: usize,
        out: *mut f32,
    ) {
        let (none, null, dense) = (Activation::None, std::ptr::null(), RowLayout::Dense);
        // SAFETY: the caller's contract is `run_panels`' (no residual, dense rows).
        unsafe {
            self.run_panels(
                input, x_stride, k0, k1, false, r0, r1, p0, p1, none, null, out, dense,
            )
        }
    }

    /// Rows `r0..r1` and panels `p0..p1` over input channels `k0..k1` (row `r` of `x` at
    /// `input + r * x_stride`), with the bias when `with_bias`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `k0 <= k1 <= k`, `p1 <= panel_count()`; `input` is valid for
    /// `r1` rows of stride `x_stride` holding channels `k0..k1`; `residual` is null or valid
    /// for `r1` rows of `n`; `out` is valid for the rows `layout.row(r)` (`r < r1`) of `n`
    /// values, and no one else accesses this block's rows and columns of it meanwhile.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn run_panels(
        &self,
        input: *const f32,
        x_stride: usize,
        k0: usize,
        k1: usize,
        with_bias: bool,
        r0: usize,
        r1: usize,
        p0: usize,
        p1: usize,
        act: Activation,
        residual: *const f32,
        out: *mut f32,
        layout: RowLayout,
    ) {
        /// The bias of a partial product.
        static ZEROS: [f32; PANEL] = [0.0; PANEL];
        let (k, n) = (k1 - k0, self.n);
        let relu = act == Activation::Relu6;
        for p in p0..p1 {
            let c0 = p * PANEL;
            let cols = PANEL.min(n - c0);
            // SAFETY: panel `p` lies inside `panels` (`p < panel_count`, `k0 <= k`); the bias
            // (padded to whole panels) or ZEROS holds 48 values from `c0`; the rest is this
            // function's contract, which `rows_of_panel` takes over.
            unsafe {
                let panel = self.panels.as_ptr().add((p * self.k + k0) * PANEL);
                let bias = if with_bias {
                    self.bias.as_ptr().add(c0)
                } else {
                    ZEROS.as_ptr()
                };
                // A last panel of at most 16 live columns runs on one vector per row, so
                // narrow layers (16, 24, 40 outputs) do not pay for the padding.
                let args = (
                    (k, x_stride),
                    n,
                    input,
                    panel,
                    bias,
                    out,
                    layout,
                    c0,
                    cols,
                    relu,
                    residual,
                    r0,
                    r1,
                );
                match cols.div_ceil(16) {
                    1 => rows_of_panel::<1>(args),
                    2 => rows_of_panel::<2>(args),
                    _ => rows_of_panel::<3>(args),
                }
            }
        }
    }
}

/// (k, input row stride), n, input, panel, bias, output, layout, first column, live columns,
/// ReLU6, residual, rows `r0..r1`.
type PanelArgs = (
    (usize, usize),
    usize,
    *const f32,
    *const f32,
    *const f32,
    *mut f32,
    RowLayout,
    usize,
    usize,
    bool,
    *const f32,
    usize,
    usize,
);

/// All rows `r0..r1` of one panel, in blocks of at most 8 rows of (nearly) equal height: 49
/// rows go as 7 × 7 rather than 6 × 8 + 1, a lone row running at a third of a block's speed.
///
/// # Safety
/// As [`PackedWeights::run_panels`] for this one panel: `panel` holds `k` rows of 48 weights,
/// `bias` 48 values; at most `cols` (≤ 16 · `NV`) columns from `c0` are written.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn rows_of_panel<const NV: usize>(
    ((k, x_stride), n, input, panel, bias, out, layout, c0, cols, relu, residual, r0, r1): PanelArgs,
) {
    let blocks = (r1 - r0).div_ceil(8);
    for b in 0..blocks {
        let (r, end) = (
            r0 + (r1 - r0) * b / blocks,
            r0 + (r1 - r0) * (b + 1) / blocks,
        );
        // SAFETY: every pointer offset below stays inside the rows `r0..r1` the caller vouches
        // for (`r..end` is one of them, at most 8 rows).
        unsafe {
            let res = if residual.is_null() {
                residual
            } else {
                residual.add(r * n + c0)
            };
            let x = input.add(r * x_stride);
            let args = (
                (k, x_stride),
                x,
                panel,
                bias,
                out.add(c0),
                n,
                layout,
                r,
                cols,
                relu,
                res,
            );
            match end - r {
                8 => micro::<8, NV>(args),
                7 => micro::<7, NV>(args),
                6 => micro::<6, NV>(args),
                5 => micro::<5, NV>(args),
                4 => micro::<4, NV>(args),
                3 => micro::<3, NV>(args),
                2 => micro::<2, NV>(args),
                _ => micro::<1, NV>(args),
            }
        }
    }
}

/// (k, x row stride), x, panel, bias, output, output stride, layout, first row, live columns,
/// ReLU6, residual.
type MicroArgs = (
    (usize, usize),
    *const f32,
    *const f32,
    *const f32,
    *mut f32,
    usize,
    RowLayout,
    usize,
    usize,
    bool,
    *const f32,
);

/// One block of `MR` rows × `NV` vectors of 16 columns, accumulated over all of `k`.
///
/// # Safety
/// The CPU has AVX-512F; `x` is valid for `MR` rows of stride `x_stride` holding `k` values;
/// `panel` for `k` rows of 48 and `bias` for `16 * NV` values; `residual` is null or valid for
/// `MR` rows of `out_stride` holding `cols` values; `out` is valid for the first `cols` values
/// of the rows `layout.row(first_row + r) * out_stride` (`r < MR`), which no one else accesses.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn micro<const MR: usize, const NV: usize>(
    ((k, x_stride), x, panel, bias, out, out_stride, layout, first_row, cols, relu, residual): MicroArgs,
) {
    use std::arch::x86_64::*;
    // SAFETY: the loads and stores stay inside the extents of this function's contract; the
    // stores and residual loads are masked to the `cols` live columns.
    unsafe {
        let mut b = [_mm512_setzero_ps(); NV];
        for (v, bv) in b.iter_mut().enumerate() {
            *bv = _mm512_loadu_ps(bias.add(v * 16));
        }
        let mut acc = [b; MR];
        for kk in 0..k {
            let mut w = [_mm512_setzero_ps(); NV];
            for (v, wv) in w.iter_mut().enumerate() {
                *wv = _mm512_loadu_ps(panel.add(kk * PANEL + v * 16));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x.add(r * x_stride + kk));
                for v in 0..NV {
                    a[v] = _mm512_fmadd_ps(xv, w[v], a[v]);
                }
            }
        }
        let mask = |from: usize| -> __mmask16 {
            let live = cols.saturating_sub(from).min(16);
            ((1u32 << live) - 1) as __mmask16
        };
        let masks = [mask(0), mask(16), mask(32)];
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        let rows = layout.rows::<MR>(first_row);
        for (r, a) in acc.iter().enumerate() {
            for v in 0..NV {
                let mut y = a[v];
                if relu {
                    y = _mm512_min_ps(_mm512_max_ps(y, zero), six);
                }
                if !residual.is_null() {
                    y = _mm512_add_ps(
                        y,
                        _mm512_maskz_loadu_ps(masks[v], residual.add(r * out_stride + v * 16)),
                    );
                }
                _mm512_mask_storeu_ps(out.add(rows[r] * out_stride + v * 16), masks[v], y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::kernels::Padding;

    /// The incremental row runs against the per-row formula, from every start over two images
    /// of a one-sided (6×5, k3 s2) and a two-sided (7×7, k5 s1) padding.
    #[test]
    fn row_runs_match_row_by_row() {
        for pad in [Padding::same(6, 5, 3, 2), Padding::same(7, 7, 5, 1)] {
            for layout in [RowLayout::Dense, RowLayout::Padded(pad)] {
                for first in 0..2 * pad.height * pad.width - 8 {
                    let want: Vec<usize> = (first..first + 8).map(|r| layout.row(r)).collect();
                    assert_eq!(
                        layout.rows::<8>(first).to_vec(),
                        want,
                        "{layout:?} from {first}"
                    );
                }
            }
        }
    }
}
