//! AVX-512 matrix product for 1×1 convolutions, `out = act(x @ w + bias) (+ residual)`, with the
//! weights packed once at load into 32-column panels and the bias, ReLU6 and residual fused into
//! the microkernel's stores.
//!
//! Hand-written because the general `gemm` crate repacks the weights on every call (about 13%
//! of the encoder's time at batch 1 in `perf`) and needs a separate pass for the epilogue. The
//! microkernel keeps an 8 rows × 32 columns block of the output in 16 vector registers;
//! `x` rows are broadcast one value at a time against two weight vectors.
//! Used only when the CPU has AVX-512F; [`super::pointwise`] falls back to the `gemm` crate.
use super::Activation;

/// Output columns per panel (two 16-lane vectors).
pub const PANEL: usize = 32;

/// `w [k, n]` packed as `ceil(n / 32)` panels of `[k, 32]` (zero-padded), bias padded to match.
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
    ) {
        let (k, n) = (self.k, self.n);
        let relu = act == Activation::Relu6;
        for p in p0..p1 {
            let c0 = p * PANEL;
            let cols = PANEL.min(n - c0);
            unsafe {
                let panel = self.panels.as_ptr().add(p * k * PANEL);
                let bias = self.bias.as_ptr().add(c0);
                let res = |r: usize| {
                    if residual.is_null() {
                        residual
                    } else {
                        residual.add(r * n + c0)
                    }
                };
                let mut r = r0;
                while r + 8 <= r1 {
                    micro::<8>(
                        k,
                        input.add(r * k),
                        panel,
                        bias,
                        out.add(r * n + c0),
                        n,
                        cols,
                        relu,
                        res(r),
                    );
                    r += 8;
                }
                while r + 4 <= r1 {
                    micro::<4>(
                        k,
                        input.add(r * k),
                        panel,
                        bias,
                        out.add(r * n + c0),
                        n,
                        cols,
                        relu,
                        res(r),
                    );
                    r += 4;
                }
                while r < r1 {
                    micro::<1>(
                        k,
                        input.add(r * k),
                        panel,
                        bias,
                        out.add(r * n + c0),
                        n,
                        cols,
                        relu,
                        res(r),
                    );
                    r += 1;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn micro<const MR: usize>(
    k: usize,
    x: *const f32,
    panel: *const f32,
    bias: *const f32,
    out: *mut f32,
    out_stride: usize,
    cols: usize,
    relu: bool,
    residual: *const f32,
) {
    use std::arch::x86_64::*;
    unsafe {
        let b0 = _mm512_loadu_ps(bias);
        let b1 = _mm512_loadu_ps(bias.add(16));
        let mut acc = [[b0, b1]; MR];
        for kk in 0..k {
            let w0 = _mm512_loadu_ps(panel.add(kk * PANEL));
            let w1 = _mm512_loadu_ps(panel.add(kk * PANEL + 16));
            for (r, a) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x.add(r * k + kk));
                a[0] = _mm512_fmadd_ps(xv, w0, a[0]);
                a[1] = _mm512_fmadd_ps(xv, w1, a[1]);
            }
        }
        let mask = |from: usize| -> __mmask16 {
            let live = cols.saturating_sub(from).min(16);
            ((1u32 << live) - 1) as __mmask16
        };
        let masks = [mask(0), mask(16)];
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        for (r, a) in acc.iter().enumerate() {
            for v in 0..2 {
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
                _mm512_mask_storeu_ps(out.add(r * out_stride + v * 16), masks[v], y);
            }
        }
    }
}
