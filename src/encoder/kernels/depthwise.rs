//! Depthwise k×k convolution over NHWC with TF "SAME" padding, bias and optional ReLU6.
//!
//! Hand-written because candle runs a grouped convolution as one tiny convolution per channel.
//! One task per output row (rayon); see `depthwise_row` for the register blocking.
use rayon::prelude::*;

use super::{Activation, Padding, relu6, same_padding};
use crate::simd::{SendPtr, Simd, simd_dispatch};

/// Shape of one depthwise convolution; weights are `[k, k, channels]` (tap-major, channel
/// innermost), bias `[channels]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depthwise {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl Depthwise {
    /// `(out_height, out_width)`.
    pub fn output_size(&self) -> (usize, usize) {
        (
            same_padding(self.height, self.kernel, self.stride).2,
            same_padding(self.width, self.kernel, self.stride).2,
        )
    }

    /// `output[n, oy, ox, c]` for `input [batch, height, width, channels]`; `output` holds
    /// `batch * out_height * out_width * channels` values.
    pub fn run(
        &self,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        act: Activation,
        output: &mut [f32],
    ) {
        self.run_with_scratch(input, weights, bias, act, output, &mut Vec::new());
    }

    /// [`Self::run`] with a buffer for the zero-padded copy of the input that the AVX-512
    /// kernel reads (kept by the caller so that it is allocated once).
    pub fn run_with_scratch(
        &self,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        act: Activation,
        output: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let (oh, ow) = self.output_size();
        let (c, k) = (self.channels, self.kernel);
        assert_eq!(weights.len(), k * k * c);
        assert_eq!(bias.len(), c);
        let image = self.height * self.width * c;
        let batch = input.len() / image;
        assert_eq!(input.len(), batch * image);
        assert_eq!(output.len(), batch * oh * ow * c);
        let this = *self;
        if let Some(pad) = self.padded_input() {
            if scratch.len() < batch * pad.pixels() * c {
                scratch.resize(batch * pad.pixels() * c, 0.0);
            }
            let padded = &mut scratch[..batch * pad.pixels() * c];
            pad.zero_borders(padded, batch, c);
            let (w, pw) = (self.width, pad.padded_width);
            padded
                .par_chunks_mut(pw * c)
                .enumerate()
                .for_each(|(row, dst)| {
                    let (n, y) = (row / pad.padded_height, row % pad.padded_height);
                    if y >= pad.top && y < pad.top + self.height {
                        let src = &input[(n * self.height + y - pad.top) * w * c..][..w * c];
                        dst[pad.left * c..(pad.left + w) * c].copy_from_slice(src);
                    }
                });
            self.run_padded(padded, weights, bias, act, output);
            return;
        }
        output
            .par_chunks_mut(ow * c)
            .enumerate()
            .for_each(|(row, out_row)| {
                let (n, oy) = (row / oh, row % oh);
                let img = &input[n * image..(n + 1) * image];
                depthwise_row(this, img, weights, bias, act, oy, out_row);
            });
    }

    /// The zero-padded input layout of the AVX-512 kernel, when it applies to this shape on
    /// this CPU (3×3 and 5×5, stride 1 and 2, channels a multiple of 16).
    pub fn padded_input(&self) -> Option<Padding> {
        if crate::simd::MAX_LEVEL.load(std::sync::atomic::Ordering::Relaxed) < 2 {
            return None;
        }
        self.padded_kernel_layout()
    }

    fn padded_kernel_layout(&self) -> Option<Padding> {
        #[cfg(target_arch = "x86_64")]
        if self.channels.is_multiple_of(16)
            && matches!(
                (self.kernel, self.stride),
                (3, 1) | (3, 2) | (5, 1) | (5, 2)
            )
            && std::is_x86_feature_detected!("avx512f")
        {
            return Some(Padding::same(
                self.height,
                self.width,
                self.kernel,
                self.stride,
            ));
        }
        None
    }

    /// The convolution from an input already in [`Self::padded_input`]'s layout (borders
    /// zero). Panics when that layout does not apply to this shape and CPU.
    pub fn run_padded(
        &self,
        padded: &[f32],
        weights: &[f32],
        bias: &[f32],
        act: Activation,
        output: &mut [f32],
    ) {
        // Not `padded_input`: a caller that chose this layout under one level gets it even if
        // the level changes meanwhile (tests lower it while others run).
        let pad = self
            .padded_kernel_layout()
            .expect("the padded depthwise kernel does not apply");
        let (oh, ow) = self.output_size();
        let (c, k) = (self.channels, self.kernel);
        assert_eq!(weights.len(), k * k * c);
        assert_eq!(bias.len(), c);
        let batch = padded.len() / (pad.pixels() * c);
        assert_eq!(padded.len(), batch * pad.pixels() * c);
        assert_eq!(output.len(), batch * oh * ow * c);
        let pw = pad.padded_width;
        #[cfg(target_arch = "x86_64")]
        {
            let pimage = pad.pixels() * c;
            // Tasks: one 16-channel vector of a band of output rows of one image. Walking all
            // rows of a band for one vector keeps that vector's input rows and weights in L1
            // (row by row across all channels they came from L2 every time: 2-4× slower).
            // The vector varies fastest, so a thread's contiguous run of tasks covers whole
            // pixels: split by vectors instead, two threads wrote the halves of one pixel's
            // cache lines and ran 3× slower than one thread (block 0, 32 channels).
            let vectors = c / 16;
            let target = rayon::current_num_threads() * 8;
            let bands = target.div_ceil(batch * vectors).clamp(1, oh);
            let band = oh.div_ceil(bands);
            // Tasks write interleaved channel vectors of the same pixels, so they share the
            // output as a raw pointer: no task holds a `&mut` over another's elements.
            let out = SendPtr(output.as_mut_ptr());
            (0..batch * vectors * bands).into_par_iter().for_each(|t| {
                // Capture the whole (Send) wrapper, not its raw pointer field.
                #[allow(clippy::redundant_locals)]
                let out = out;
                let (n, b, v) = (t / (vectors * bands), t / vectors % bands, t % vectors);
                let (oy0, oy1) = (b * band, ((b + 1) * band).min(oh));
                if oy0 >= oy1 {
                    return;
                }
                let img = padded[n * pimage..(n + 1) * pimage].as_ptr();
                let args = (img, pw, c, weights, bias, act, ow, oy0, oy1, v * 16);
                // SAFETY: AVX-512F checked by `padded_kernel_layout`; `img` is image n's
                // padded input (sizes asserted above), which no one writes meanwhile; this
                // task alone writes channels v*16..v*16+16 of rows oy0..oy1 of image n, inside
                // `output` (asserted above).
                unsafe { padded_rows(k, self.stride, args, out.0.add(n * oh * ow * c)) };
            });
        }
    }

    /// Output rows `oy0..oy1` of one image on the calling thread, from `band`: the padded rows
    /// `oy0 * stride .. (oy1 - 1) * stride + kernel` of [`Self::padded_input`]'s layout
    /// (borders zero); `output` holds just rows `oy0..oy1`. For callers that split the work
    /// themselves (the fused MBConv block). Panics when this CPU or shape has no padded
    /// kernel; unlike [`Self::run_padded`] it ignores [`crate::simd::MAX_LEVEL`], so that a
    /// caller that checked [`Self::padded_input`] once is not caught out by a change of level.
    #[allow(clippy::too_many_arguments)]
    pub fn run_band(
        &self,
        band: &[f32],
        weights: &[f32],
        bias: &[f32],
        act: Activation,
        oy0: usize,
        oy1: usize,
        output: &mut [f32],
    ) {
        let pad = self
            .padded_kernel_layout()
            .expect("the padded depthwise kernel does not apply");
        let (oh, ow) = self.output_size();
        let (c, k, pw) = (self.channels, self.kernel, pad.padded_width);
        assert!(oy0 < oy1 && oy1 <= oh);
        assert_eq!(weights.len(), k * k * c);
        assert_eq!(bias.len(), c);
        assert_eq!(band.len(), ((oy1 - oy0 - 1) * self.stride + k) * pw * c);
        assert_eq!(output.len(), (oy1 - oy0) * ow * c);
        #[cfg(target_arch = "x86_64")]
        for v in 0..c / 16 {
            let args = (
                band.as_ptr(),
                pw,
                c,
                weights,
                bias,
                act,
                ow,
                0,
                oy1 - oy0,
                v * 16,
            );
            // SAFETY: `padded_kernel_layout` checked AVX-512F; `band` and `output` are
            // borrowed for this call and hold the rows the kernel touches (asserted above).
            unsafe { padded_rows(k, self.stride, args, output.as_mut_ptr()) };
        }
    }
}

impl Depthwise {
    /// Channels `c0..c1` (multiples of 16) of every output row of one image, on the calling
    /// thread, from its padded input (borders zero); only those channels of `padded` are read
    /// and of `output` (the image's `[out_h, out_w, channels]`) written. For callers that split
    /// the channels between threads themselves (the channel-split MBConv block), so both are
    /// raw pointers: other threads use the other channels meanwhile.
    ///
    /// # Safety
    /// `padded` is valid for reading one padded image (`padded_input().pixels() * channels`
    /// values) and no one writes its channels `c0..c1` meanwhile; `output` is valid for the
    /// whole output image and no one else accesses its channels `c0..c1` meanwhile. Panics
    /// when this CPU or shape has no padded kernel.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn run_padded_channels(
        &self,
        padded: *const f32,
        weights: &[f32],
        bias: &[f32],
        act: Activation,
        c0: usize,
        c1: usize,
        output: *mut f32,
    ) {
        let pad = self
            .padded_kernel_layout()
            .expect("the padded depthwise kernel does not apply");
        let (oh, ow) = self.output_size();
        let (c, k) = (self.channels, self.kernel);
        assert!(c0.is_multiple_of(16) && c1.is_multiple_of(16) && c0 <= c1 && c1 <= c);
        assert_eq!(weights.len(), k * k * c);
        assert_eq!(bias.len(), c);
        #[cfg(target_arch = "x86_64")]
        for v in c0 / 16..c1 / 16 {
            let args = (
                padded,
                pad.padded_width,
                c,
                weights,
                bias,
                act,
                ow,
                0,
                oh,
                v * 16,
            );
            // SAFETY: `padded_kernel_layout` checked AVX-512F; the caller vouches for the
            // padded image and for channels c0..c1 of the output image, v*16+16 <= c1.
            unsafe { padded_rows(k, self.stride, args, output) };
        }
    }
}

/// [`padded_rows_avx512`] for a kernel size and stride that [`Depthwise::padded_input`] accepts.
///
/// # Safety
/// As [`padded_rows_avx512`].
#[cfg(target_arch = "x86_64")]
unsafe fn padded_rows(kernel: usize, stride: usize, args: PaddedRowsArgs<'_>, out: *mut f32) {
    // SAFETY: the caller's contract is the kernel's.
    unsafe {
        match (kernel, stride) {
            (3, 1) => padded_rows_avx512::<3, 1, 8>(args, out),
            (3, 2) => padded_rows_avx512::<3, 2, 8>(args, out),
            (5, 1) => padded_rows_avx512::<5, 1, 4>(args, out),
            _ => padded_rows_avx512::<5, 2, 4>(args, out),
        }
    }
}

/// Padded image, padded width, channels, weights, bias, activation, output width, output rows
/// `oy0..oy1`, first channel of the 16-channel vector.
type PaddedRowsArgs<'a> = (
    *const f32,
    usize,
    usize,
    &'a [f32],
    &'a [f32],
    Activation,
    usize,
    usize,
    usize,
    usize,
);

/// Channels `c0..c0 + 16` of output rows `oy0..oy1` from a zero-padded image (`pw` columns),
/// for a `K`×`K` kernel with stride `ST`, on AVX-512: the K² weight vectors stay in registers
/// for all the rows, `P` output pixels are accumulated at once, and each input vector is the
/// memory operand of its FMA. Padding removes every bounds test from the inner loops, so they
/// unroll fully. (K² + P + 1 ≤ 32 registers.)
///
/// # Safety
/// The CPU has AVX-512F; `c0 + 16 <= c`; `img` is valid for reading channels `c0..c0 + 16` of
/// the padded rows `oy0 * ST..(oy1 - 1) * ST + K` (`pw` pixels of `c` channels each; borders zero,
/// `pw >= (ow - 1) * ST + K`), which no one writes meanwhile; `out` is valid for writing
/// channels `c0..c0 + 16` of output rows `oy0..oy1` (`ow` pixels of `c`), which no one else
/// accesses meanwhile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn padded_rows_avx512<const K: usize, const ST: usize, const P: usize>(
    (img, pw, c, weights, bias, act, ow, oy0, oy1, c0): PaddedRowsArgs<'_>,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    assert!(c0 + 16 <= c && weights.len() >= K * K * c && bias.len() >= c);
    debug_assert!(pw >= (ow - 1) * ST + K);
    // SAFETY: the weight and bias loads stay inside the slices (asserted); the image and output
    // accesses inside the extents of this function's contract.
    unsafe {
        let (zero, six) = (_mm512_setzero_ps(), _mm512_set1_ps(6.0));
        let finish = |v: __m512| {
            if act == Activation::Relu6 {
                _mm512_min_ps(_mm512_max_ps(v, zero), six)
            } else {
                v
            }
        };
        let mut w = [zero; 25];
        for (t, wt) in w.iter_mut().enumerate().take(K * K) {
            *wt = _mm512_loadu_ps(weights.as_ptr().add(t * c + c0));
        }
        let b = _mm512_loadu_ps(bias.as_ptr().add(c0));
        for oy in oy0..oy1 {
            let top = img.add(oy * ST * pw * c + c0);
            let out_row = out.add(oy * ow * c + c0);
            // Groups of P pixels; the tail is one more group of P (or of 4) ending at the last
            // pixel, recomputing a few pixels with identical results, because single pixels
            // are one chain of dependent FMAs (latency-bound) and small maps are mostly tail.
            let mut ox = 0;
            while ox + P <= ow {
                pixel_group::<K, ST, P>(top, out_row, c, pw, &w, b, ox, &finish);
                ox += P;
            }
            if ox < ow {
                if ow >= P {
                    pixel_group::<K, ST, P>(top, out_row, c, pw, &w, b, ow - P, &finish);
                } else if ow >= 4 {
                    pixel_group::<K, ST, 4>(top, out_row, c, pw, &w, b, ox, &finish);
                    pixel_group::<K, ST, 4>(top, out_row, c, pw, &w, b, ow - 4, &finish);
                } else {
                    for ox in ox..ow {
                        pixel_group::<K, ST, 1>(top, out_row, c, pw, &w, b, ox, &finish);
                    }
                }
            }
        }
    }
}

/// `Q` output pixels from `ox` of one row (see `padded_rows_avx512`).
///
/// # Safety
/// The CPU has AVX-512F; `top` points at channel `c0` of the first of the `K` padded rows
/// this output row reads and `out_row` at channel `c0` of the output row, both valid per
/// [`padded_rows_avx512`]'s contract for pixels `ox..ox + Q` (`ox + Q <= ow`).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn pixel_group<const K: usize, const ST: usize, const Q: usize>(
    top: *const f32,
    out_row: *mut f32,
    c: usize,
    pw: usize,
    w: &[std::arch::x86_64::__m512; 25],
    b: std::arch::x86_64::__m512,
    ox: usize,
    finish: &impl Fn(std::arch::x86_64::__m512) -> std::arch::x86_64::__m512,
) {
    use std::arch::x86_64::*;
    // SAFETY: input pixels `(ox + p) * ST + kx < pw` of rows `ky < K` and output pixels
    // `ox + p < ow`, as the contract allows.
    unsafe {
        let mut acc = [b; Q];
        for ky in 0..K {
            let row = top.add((ky * pw + ox * ST) * c);
            for kx in 0..K {
                for (p, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(
                        _mm512_loadu_ps(row.add((p * ST + kx) * c)),
                        w[ky * K + kx],
                        *a,
                    );
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(out_row.add((ox + p) * c), finish(*a));
        }
    }
}

/// Output pixels per group: a group's accumulators (4 pixels × 2 vectors of channels) stay in
/// registers while the k×k taps are summed, and each weight vector loaded serves all 4.
const PIXELS: usize = 4;

simd_dispatch!(fn depthwise_row = depthwise_row_simd | depthwise_row_scalar(
    dw: Depthwise,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    oy: usize,
    out_row: &mut [f32],
));

/// Where one output row's taps fall.
struct RowGeometry {
    pad_left: usize,
    iy0: isize,
    ky_lo: usize,
    ky_hi: usize,
    /// Output columns whose taps all lie inside the image: `interior_lo..interior_hi`.
    interior_lo: usize,
    interior_hi: usize,
    ow: usize,
}

impl RowGeometry {
    fn new(dw: &Depthwise, oy: usize, ow: usize) -> Self {
        let (k, s) = (dw.kernel, dw.stride);
        let (pad_top, _, _) = same_padding(dw.height, k, s);
        let (pad_left, _, _) = same_padding(dw.width, k, s);
        let iy0 = (oy * s) as isize - pad_top as isize;
        let interior_hi = if dw.width + pad_left >= k {
            ((dw.width + pad_left - k) / s + 1).min(ow)
        } else {
            0
        };
        RowGeometry {
            pad_left,
            iy0,
            ky_lo: (-iy0).max(0) as usize,
            ky_hi: (dw.height as isize - iy0).min(k as isize) as usize,
            interior_lo: pad_left.div_ceil(s).min(ow),
            interior_hi,
            ow,
        }
    }

    /// Valid `kx` range for output column `ox`, and its first input column (may be negative).
    fn columns(&self, dw: &Depthwise, ox: usize) -> (isize, usize, usize) {
        let ix0 = (ox * dw.stride) as isize - self.pad_left as isize;
        let kx_lo = (-ix0).max(0) as usize;
        let kx_hi = (dw.width as isize - ix0).min(dw.kernel as isize) as usize;
        (ix0, kx_lo, kx_hi)
    }
}

/// # Safety
/// The CPU has `S`'s feature (the slice sizes are checked here).
#[inline(always)]
unsafe fn depthwise_row_simd<S: Simd>(
    dw: Depthwise,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    oy: usize,
    out_row: &mut [f32],
) {
    let (c, k) = (dw.channels, dw.kernel);
    let (oh, ow) = dw.output_size();
    assert!(img.len() >= dw.height * dw.width * c && weights.len() >= k * k * c);
    assert!(bias.len() >= c && out_row.len() == ow * c && oy < oh);
    let g = RowGeometry::new(&dw, oy, ow);
    let mut c0 = 0;
    // SAFETY: the CPU feature is the caller's; the sizes asserted above are `block`'s contract.
    unsafe {
        while c0 + 2 * S::LANES <= dw.channels {
            block::<S, 2>(&dw, &g, img, weights, bias, act, out_row, c0);
            c0 += 2 * S::LANES;
        }
        while c0 + S::LANES <= dw.channels {
            block::<S, 1>(&dw, &g, img, weights, bias, act, out_row, c0);
            c0 += S::LANES;
        }
    }
    channels_scalar(&dw, &g, img, weights, bias, act, out_row, c0, dw.channels);
}

/// Channels `c0 .. c0 + VB * LANES` of one output row.
///
/// # Safety
/// The CPU has `S`'s feature; `c0 + VB * LANES <= channels`; `img` holds one input image,
/// `weights` `k * k * channels`, `bias` `channels` values, `out_row` the row of `g` (`g.ow`
/// pixels), and `g` was made by `RowGeometry::new` for this shape and an output row `< oh`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<S: Simd, const VB: usize>(
    dw: &Depthwise,
    g: &RowGeometry,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    out_row: &mut [f32],
    c0: usize,
) {
    let (c, k, s, l) = (dw.channels, dw.kernel, dw.stride, S::LANES);
    let (img, weights, out) = (img.as_ptr(), weights.as_ptr(), out_row.as_mut_ptr());
    // SAFETY: `g` keeps every tap inside the image (rows `ky_lo..ky_hi`, interior columns or
    // `columns`' clipped range) and every store inside `out_row`; channels stay below `c`.
    unsafe {
        let (zero, six) = (S::splat(0.0), S::splat(6.0));
        let mut b = [zero; VB];
        for v in 0..VB {
            b[v] = S::load(bias.as_ptr().add(c0 + v * l));
        }
        let store = |dst: *mut f32, acc: &[S::V; VB]| {
            for v in 0..VB {
                let x = if act == Activation::Relu6 {
                    S::clamp(acc[v], zero, six)
                } else {
                    acc[v]
                };
                S::store(dst.add(v * l), x);
            }
        };
        let mut ox = 0;
        while ox < g.ow {
            if ox >= g.interior_lo && ox + PIXELS <= g.interior_hi {
                let mut acc = [b; PIXELS];
                let ix0 = ox * s - g.pad_left;
                for ky in g.ky_lo..g.ky_hi {
                    let row = img.add(((g.iy0 + ky as isize) as usize * dw.width) * c + c0);
                    for kx in 0..k {
                        let wp = weights.add((ky * k + kx) * c + c0);
                        let mut w = [zero; VB];
                        for v in 0..VB {
                            w[v] = S::load(wp.add(v * l));
                        }
                        for (p, a) in acc.iter_mut().enumerate() {
                            let src = row.add((ix0 + p * s + kx) * c);
                            for v in 0..VB {
                                a[v] = S::fma(S::load(src.add(v * l)), w[v], a[v]);
                            }
                        }
                    }
                }
                for (p, a) in acc.iter().enumerate() {
                    store(out.add((ox + p) * c + c0), a);
                }
                ox += PIXELS;
            } else {
                let mut acc = b;
                let (ix0, kx_lo, kx_hi) = g.columns(dw, ox);
                for ky in g.ky_lo..g.ky_hi {
                    let iy = (g.iy0 + ky as isize) as usize;
                    for kx in kx_lo..kx_hi {
                        let ix = (ix0 + kx as isize) as usize;
                        let src = img.add((iy * dw.width + ix) * c + c0);
                        let wp = weights.add((ky * k + kx) * c + c0);
                        for v in 0..VB {
                            acc[v] =
                                S::fma(S::load(src.add(v * l)), S::load(wp.add(v * l)), acc[v]);
                        }
                    }
                }
                store(out.add(ox * c + c0), &acc);
                ox += 1;
            }
        }
    }
}

/// Portable path, and the channel tail (`c_lo..c_hi`, fewer than one vector) of the SIMD path.
#[allow(clippy::too_many_arguments)]
fn channels_scalar(
    dw: &Depthwise,
    g: &RowGeometry,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    out_row: &mut [f32],
    c_lo: usize,
    c_hi: usize,
) {
    if c_lo >= c_hi {
        return;
    }
    let (c, k) = (dw.channels, dw.kernel);
    let mut acc = vec![0f32; c_hi - c_lo];
    for ox in 0..g.ow {
        acc.copy_from_slice(&bias[c_lo..c_hi]);
        let (ix0, kx_lo, kx_hi) = g.columns(dw, ox);
        for ky in g.ky_lo..g.ky_hi {
            let iy = (g.iy0 + ky as isize) as usize;
            for kx in kx_lo..kx_hi {
                let ix = (ix0 + kx as isize) as usize;
                let src = &img[(iy * dw.width + ix) * c + c_lo..][..acc.len()];
                let w = &weights[(ky * k + kx) * c + c_lo..][..acc.len()];
                acc.iter_mut()
                    .zip(src)
                    .zip(w)
                    .for_each(|((a, &x), &w)| *a += x * w);
            }
        }
        let dst = &mut out_row[ox * c + c_lo..ox * c + c_hi];
        match act {
            Activation::Relu6 => dst.iter_mut().zip(&acc).for_each(|(d, &a)| *d = relu6(a)),
            Activation::None => dst.copy_from_slice(&acc),
        }
    }
}

fn depthwise_row_scalar(
    dw: Depthwise,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    oy: usize,
    out_row: &mut [f32],
) {
    let g = RowGeometry::new(&dw, oy, out_row.len() / dw.channels);
    channels_scalar(&dw, &g, img, weights, bias, act, out_row, 0, dw.channels);
}

/// Plain reference: the textbook loop over NCHW-free indices, one multiply-add at a time.
pub fn reference(
    dw: &Depthwise,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
) -> Vec<f32> {
    let (oh, ow) = dw.output_size();
    let (c, k, s) = (dw.channels, dw.kernel, dw.stride);
    let (pt, _, _) = same_padding(dw.height, k, s);
    let (pl, _, _) = same_padding(dw.width, k, s);
    let batch = input.len() / (dw.height * dw.width * c);
    let mut out = vec![0f32; batch * oh * ow * c];
    for n in 0..batch {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let mut sum = bias[ch];
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * s + ky) as isize - pt as isize;
                            let ix = (ox * s + kx) as isize - pl as isize;
                            if iy < 0
                                || ix < 0
                                || iy >= dw.height as isize
                                || ix >= dw.width as isize
                            {
                                continue;
                            }
                            let (iy, ix) = (iy as usize, ix as usize);
                            sum += input[((n * dw.height + iy) * dw.width + ix) * c + ch]
                                * weights[(ky * k + kx) * c + ch];
                        }
                    }
                    if act == Activation::Relu6 {
                        sum = sum.clamp(0.0, 6.0);
                    }
                    out[((n * oh + oy) * ow + ox) * c + ch] = sum;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::kernels::testutil::{max_abs_diff, values};
    use crate::simd::for_each_level;

    #[test]
    fn fast_depthwise_matches_reference() {
        // Odd and even sizes, both kernels and strides, channel counts with and without a tail.
        for &(h, w, c, k, s) in &[
            (7, 7, 32, 3, 1),
            (8, 10, 48, 5, 2),
            (9, 6, 40, 3, 2),
            (14, 14, 72, 5, 1),
            (1, 1, 16, 5, 2),
            (12, 11, 5, 3, 1),
            (16, 17, 96, 5, 2),
            (13, 13, 70, 3, 1),
            (3, 2, 32, 5, 1),
        ] {
            let dw = Depthwise {
                height: h,
                width: w,
                channels: c,
                kernel: k,
                stride: s,
            };
            let input = values(2 * h * w * c, 1);
            let weights = values(k * k * c, 2);
            let bias = values(c, 3);
            for act in [Activation::None, Activation::Relu6] {
                let (oh, ow) = dw.output_size();
                let want = reference(&dw, &input, &weights, &bias, act);
                for_each_level(|level| {
                    let mut out = vec![f32::NAN; 2 * oh * ow * c];
                    dw.run(&input, &weights, &bias, act, &mut out);
                    assert!(
                        max_abs_diff(&out, &want) < 1e-5,
                        "{dw:?} {act:?} level {level}"
                    );
                });
            }
        }
    }
}
