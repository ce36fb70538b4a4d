//! The stem: a dense k×k convolution that reads the NCHW network input and writes NHWC, with
//! TF "SAME" padding, bias and ReLU6. Hand-written because it also changes the layout from
//! NCHW to NHWC: a few output pixels at a time are gathered into a small im2col patch (27
//! values each) and multiplied against the `[taps, out]` weights in registers, so no
//! full-size im2col buffer is ever written.
use rayon::prelude::*;

use super::{Activation, Padding, relu6, same_padding};
use crate::simd::{Simd, simd_dispatch};

/// Shape of the stem; weights are `[in_channels, k, k, out_channels]`, bias `[out_channels]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stem {
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl Stem {
    /// `(out_height, out_width)`.
    pub fn output_size(&self) -> (usize, usize) {
        (
            same_padding(self.height, self.kernel, self.stride).2,
            same_padding(self.width, self.kernel, self.stride).2,
        )
    }

    /// `input [batch, in_channels, height, width]` → `output [batch, oh, ow, out_channels]`.
    pub fn run(
        &self,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        act: Activation,
        output: &mut [f32],
    ) {
        self.run_into(input, weights, bias, act, output, None);
    }

    /// [`Self::run`] writing either densely or, with `padding` (of the output size), inside
    /// the zero-padded layout the following depthwise kernel reads (borders zeroed here).
    pub fn run_into(
        &self,
        input: &[f32],
        weights: &[f32],
        bias: &[f32],
        act: Activation,
        output: &mut [f32],
        padding: Option<Padding>,
    ) {
        let (oh, ow) = self.output_size();
        let co = self.out_channels;
        let image = self.in_channels * self.height * self.width;
        let batch = input.len() / image;
        assert_eq!(input.len(), batch * image);
        assert_eq!(
            weights.len(),
            self.in_channels * self.kernel * self.kernel * co
        );
        assert_eq!(bias.len(), co);
        let this = *self;
        let Some(pad) = padding else {
            assert_eq!(output.len(), batch * oh * ow * co);
            output
                .par_chunks_mut(ow * co)
                .enumerate()
                .for_each(|(row, out_row)| {
                    let (n, oy) = (row / oh, row % oh);
                    stem_row(
                        this,
                        &input[n * image..(n + 1) * image],
                        weights,
                        bias,
                        act,
                        oy,
                        out_row,
                    );
                });
            return;
        };
        assert_eq!((pad.height, pad.width), (oh, ow));
        assert_eq!(output.len(), batch * pad.pixels() * co);
        pad.zero_borders(output, batch, co);
        let rows = output.par_chunks_mut(pad.padded_width * co).enumerate();
        rows.for_each(|(row, padded_row)| {
            let (n, py) = (row / pad.padded_height, row % pad.padded_height);
            if py < pad.top || py >= pad.top + oh {
                return;
            }
            let oy = py - pad.top;
            let out_row = &mut padded_row[pad.left * co..(pad.left + ow) * co];
            stem_row(
                this,
                &input[n * image..(n + 1) * image],
                weights,
                bias,
                act,
                oy,
                out_row,
            );
        });
    }
}

/// Output pixels per group: the patch values of 4 pixels are broadcast against each weight
/// vector, with 4 × 2 vectors of accumulators in registers.
const PIXELS: usize = 4;

simd_dispatch!(fn stem_row = stem_row_simd | stem_row_scalar(
    st: Stem,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    oy: usize,
    out_row: &mut [f32],
));

/// im2col of output pixels `ox .. ox + group` of row `oy`: `patches[t * PIXELS + p]`, zero
/// where the tap falls in the padding.
fn gather(st: &Stem, img: &[f32], oy: usize, ox: usize, group: usize, patches: &mut [f32]) {
    let (k, s) = (st.kernel, st.stride);
    let (pad_top, _, _) = same_padding(st.height, k, s);
    let (pad_left, _, _) = same_padding(st.width, k, s);
    let plane = st.height * st.width;
    patches.fill(0.0);
    for ci in 0..st.in_channels {
        for ky in 0..k {
            let iy = (oy * s + ky) as isize - pad_top as isize;
            if iy < 0 || iy >= st.height as isize {
                continue;
            }
            let row = &img[ci * plane + iy as usize * st.width..][..st.width];
            for kx in 0..k {
                let t = (ci * k + ky) * k + kx;
                for p in 0..group {
                    let ix = ((ox + p) * s + kx) as isize - pad_left as isize;
                    if ix >= 0 && ix < st.width as isize {
                        patches[t * PIXELS + p] = row[ix as usize];
                    }
                }
            }
        }
    }
}

/// # Safety
/// The CPU has `S`'s feature (the slice sizes are checked here).
#[inline(always)]
unsafe fn stem_row_simd<S: Simd>(
    st: Stem,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    oy: usize,
    out_row: &mut [f32],
) {
    let (co, l) = (st.out_channels, S::LANES);
    let taps = st.in_channels * st.kernel * st.kernel;
    let (oh, ow) = st.output_size();
    assert!(img.len() >= st.in_channels * st.height * st.width && weights.len() >= taps * co);
    assert!(bias.len() >= co && out_row.len() == ow * co && oy < oh);
    let mut patches = vec![0f32; taps * PIXELS];
    let (k, s) = (st.kernel, st.stride);
    let (pad_top, _, _) = same_padding(st.height, k, s);
    let (pad_left, _, _) = same_padding(st.width, k, s);
    let iy0 = (oy * s) as isize - pad_top as isize;
    let rows_inside = iy0 >= 0 && iy0 as usize + k <= st.height;
    let wide = if S::LANES >= 16 { 8 } else { 4 };
    let mut ox = 0;
    while ox < ow {
        // Groups whose taps all lie inside the image read the input directly (most of them).
        let ix0 = (ox * s) as isize - pad_left as isize;
        let inside = rows_inside
            && ix0 >= 0
            && ((ox + wide - 1) * s + k) as isize - pad_left as isize <= st.width as isize;
        if inside && co % l == 0 && ox + wide <= ow {
            let at = (iy0 as usize, ix0 as usize);
            let mut c0 = 0;
            // SAFETY: the CPU feature is the caller's; the group's taps lie inside the image
            // (`inside`), its pixels inside the row (`ox + wide <= ow`), and `co % l == 0`
            // keeps every vector of channels below `co`: `direct`'s contract.
            unsafe {
                while c0 + 2 * l <= co {
                    if wide == 8 {
                        direct::<S, 2, 8>(&st, img, weights, bias, act, out_row, at, ox, c0);
                    } else {
                        direct::<S, 2, 4>(&st, img, weights, bias, act, out_row, at, ox, c0);
                    }
                    c0 += 2 * l;
                }
                if c0 < co {
                    direct::<S, 1, 4>(&st, img, weights, bias, act, out_row, at, ox, c0);
                    if wide == 8 {
                        let at = (at.0, at.1 + 4 * s);
                        direct::<S, 1, 4>(&st, img, weights, bias, act, out_row, at, ox + 4, c0);
                    }
                }
            }
            ox += wide;
            continue;
        }
        let group = PIXELS.min(ow - ox);
        gather(&st, img, oy, ox, group, &mut patches);
        let mut c0 = 0;
        // SAFETY: the CPU feature is the caller's; `patches` holds `taps * PIXELS` values, the
        // group's pixels lie inside the row and each vector of channels below `co`.
        unsafe {
            while c0 + 2 * l <= co {
                block::<S, 2>(&st, &patches, weights, bias, act, out_row, ox, group, c0);
                c0 += 2 * l;
            }
            while c0 + l <= co {
                block::<S, 1>(&st, &patches, weights, bias, act, out_row, ox, group, c0);
                c0 += l;
            }
        }
        channels_scalar(&st, &patches, weights, bias, act, out_row, ox, group, c0);
        ox += group;
    }
}

/// Output channels `c0 .. c0 + VB * LANES` of the `P` pixels from `ox`, whose taps all lie
/// inside the image, the first at input row and column `at`: each input value is broadcast
/// straight from the NCHW image (no gather), `P × VB` accumulators in registers.
///
/// # Safety
/// The CPU has `S`'s feature; `c0 + VB * LANES <= out_channels`; the taps of the `P` pixels
/// lie inside `img` and the pixels `ox..ox + P` inside `out_row` (the debug assertions);
/// `weights` and `bias` have the sizes `Stem::run` asserts.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn direct<S: Simd, const VB: usize, const P: usize>(
    st: &Stem,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    out_row: &mut [f32],
    at: (usize, usize),
    ox: usize,
    c0: usize,
) {
    let (co, l, k, s) = (st.out_channels, S::LANES, st.kernel, st.stride);
    let plane = st.height * st.width;
    debug_assert!(
        (st.in_channels - 1) * plane + (at.0 + k - 1) * st.width + at.1 + (P - 1) * s + k
            <= img.len()
    );
    debug_assert!((ox + P) * co <= out_row.len() && c0 + VB * l <= co);
    // SAFETY: every access stays inside the extents of this function's contract.
    unsafe {
        let (zero, six) = (S::splat(0.0), S::splat(6.0));
        let mut b = [zero; VB];
        for v in 0..VB {
            b[v] = S::load(bias.as_ptr().add(c0 + v * l));
        }
        let mut acc = [b; P];
        let mut t = 0;
        for ci in 0..st.in_channels {
            for ky in 0..k {
                let row = img.as_ptr().add(ci * plane + (at.0 + ky) * st.width + at.1);
                for kx in 0..k {
                    let wp = weights.as_ptr().add(t * co + c0);
                    let mut w = [zero; VB];
                    for v in 0..VB {
                        w[v] = S::load(wp.add(v * l));
                    }
                    for (p, a) in acc.iter_mut().enumerate() {
                        let x = S::splat(*row.add(p * s + kx));
                        for v in 0..VB {
                            a[v] = S::fma(x, w[v], a[v]);
                        }
                    }
                    t += 1;
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            let dst = out_row.as_mut_ptr().add((ox + p) * co + c0);
            for v in 0..VB {
                let x = if act == Activation::Relu6 {
                    S::clamp(a[v], zero, six)
                } else {
                    a[v]
                };
                S::store(dst.add(v * l), x);
            }
        }
    }
}

/// Output channels `c0 .. c0 + VB * LANES` of a gathered pixel group.
///
/// # Safety
/// The CPU has `S`'s feature; `c0 + VB * LANES <= out_channels`; `patches` holds
/// `taps * PIXELS` values; pixels `ox..ox + group` lie inside `out_row`; `weights` and `bias`
/// have the sizes `Stem::run` asserts.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<S: Simd, const VB: usize>(
    st: &Stem,
    patches: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    out_row: &mut [f32],
    ox: usize,
    group: usize,
    c0: usize,
) {
    let (co, l) = (st.out_channels, S::LANES);
    let taps = st.in_channels * st.kernel * st.kernel;
    // SAFETY: every access stays inside the extents of this function's contract.
    unsafe {
        let (zero, six) = (S::splat(0.0), S::splat(6.0));
        let mut b = [zero; VB];
        for v in 0..VB {
            b[v] = S::load(bias.as_ptr().add(c0 + v * l));
        }
        let mut acc = [b; PIXELS];
        for t in 0..taps {
            let wp = weights.as_ptr().add(t * co + c0);
            let mut w = [zero; VB];
            for v in 0..VB {
                w[v] = S::load(wp.add(v * l));
            }
            for (p, a) in acc.iter_mut().enumerate() {
                let x = S::splat(*patches.get_unchecked(t * PIXELS + p));
                for v in 0..VB {
                    a[v] = S::fma(x, w[v], a[v]);
                }
            }
        }
        for (p, a) in acc.iter().enumerate().take(group) {
            let dst = out_row.as_mut_ptr().add((ox + p) * co + c0);
            for v in 0..VB {
                let x = if act == Activation::Relu6 {
                    S::clamp(a[v], zero, six)
                } else {
                    a[v]
                };
                S::store(dst.add(v * l), x);
            }
        }
    }
}

/// Portable path, and the channel tail of the SIMD path: channels `c0..` of a pixel group.
#[allow(clippy::too_many_arguments)]
fn channels_scalar(
    st: &Stem,
    patches: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    out_row: &mut [f32],
    ox: usize,
    group: usize,
    c0: usize,
) {
    let co = st.out_channels;
    let taps = st.in_channels * st.kernel * st.kernel;
    for p in 0..group {
        for o in c0..co {
            let mut sum = bias[o];
            for t in 0..taps {
                sum += patches[t * PIXELS + p] * weights[t * co + o];
            }
            out_row[(ox + p) * co + o] = if act == Activation::Relu6 {
                relu6(sum)
            } else {
                sum
            };
        }
    }
}

fn stem_row_scalar(
    st: Stem,
    img: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
    oy: usize,
    out_row: &mut [f32],
) {
    let taps = st.in_channels * st.kernel * st.kernel;
    let ow = out_row.len() / st.out_channels;
    let mut patches = vec![0f32; taps * PIXELS];
    for ox in (0..ow).step_by(PIXELS) {
        let group = PIXELS.min(ow - ox);
        gather(&st, img, oy, ox, group, &mut patches);
        channels_scalar(&st, &patches, weights, bias, act, out_row, ox, group, 0);
    }
}

/// Plain reference: NCHW in, NCHW arithmetic, transposed to NHWC at the end.
pub fn reference(
    st: &Stem,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    act: Activation,
) -> Vec<f32> {
    let (oh, ow) = st.output_size();
    let (k, s) = (st.kernel, st.stride);
    let (pt, _, _) = same_padding(st.height, k, s);
    let (pl, _, _) = same_padding(st.width, k, s);
    let batch = input.len() / (st.in_channels * st.height * st.width);
    let mut out = vec![0f32; batch * oh * ow * st.out_channels];
    for n in 0..batch {
        for o in 0..st.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = bias[o] as f64;
                    for ci in 0..st.in_channels {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - pt as isize;
                                let ix = (ox * s + kx) as isize - pl as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= st.height as isize
                                    || ix >= st.width as isize
                                {
                                    continue;
                                }
                                let x = input[((n * st.in_channels + ci) * st.height
                                    + iy as usize)
                                    * st.width
                                    + ix as usize];
                                sum += x as f64
                                    * weights[((ci * k + ky) * k + kx) * st.out_channels + o]
                                        as f64;
                            }
                        }
                    }
                    let mut v = sum as f32;
                    if act == Activation::Relu6 {
                        v = v.clamp(0.0, 6.0);
                    }
                    out[((n * oh + oy) * ow + ox) * st.out_channels + o] = v;
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
    fn fast_stem_matches_reference() {
        for &(h, w, k, s, co) in &[
            (16, 16, 3, 2, 32),
            (15, 9, 3, 2, 32),
            (40, 38, 3, 2, 32),
            (33, 45, 5, 1, 40),
            (21, 27, 3, 1, 24),
            (10, 12, 5, 1, 40),
            (5, 3, 3, 1, 7),
        ] {
            let st = Stem {
                in_channels: 3,
                out_channels: co,
                height: h,
                width: w,
                kernel: k,
                stride: s,
            };
            let input = values(2 * 3 * h * w, 21);
            let weights = values(3 * k * k * co, 22);
            let bias = values(co, 23);
            let (oh, ow) = st.output_size();
            let want = reference(&st, &input, &weights, &bias, Activation::Relu6);
            for_each_level(|level| {
                let mut out = vec![f32::NAN; 2 * oh * ow * co];
                st.run(&input, &weights, &bias, Activation::Relu6, &mut out);
                assert!(max_abs_diff(&out, &want) < 1e-5, "{st:?} level {level}");
            });
        }
    }
}
