//! Depthwise k×k convolution over NHWC with TF "SAME" padding, bias and optional ReLU6.
//!
//! Hand-written because candle runs a grouped convolution as one tiny convolution per channel.
//! One task per output row (rayon); see `depthwise_row` for the register blocking.
use rayon::prelude::*;

use super::{Activation, relu6, same_padding, simd_dispatch};

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
        let (oh, ow) = self.output_size();
        let (c, k) = (self.channels, self.kernel);
        assert_eq!(weights.len(), k * k * c);
        assert_eq!(bias.len(), c);
        let image = self.height * self.width * c;
        let batch = input.len() / image;
        assert_eq!(input.len(), batch * image);
        assert_eq!(output.len(), batch * oh * ow * c);
        let this = *self;
        output
            .par_chunks_mut(ow * c)
            .enumerate()
            .for_each(|(row, out_row)| {
                let (n, oy) = (row / oh, row % oh);
                let img = &input[n * image..(n + 1) * image];
                depthwise_row(this, img, weights, bias, act, oy, out_row);
            });
    }
}

/// Channels per block and output pixels per group: a group's 4×32 accumulators stay in
/// vector registers while the k×k taps are summed, and each weight vector loaded is used for
/// all 4 pixels.
const BLOCK: usize = 32;
const PIXELS: usize = 4;

simd_dispatch! {
    fn depthwise_row(
        dw: Depthwise,
        img: &[f32],
        weights: &[f32],
        bias: &[f32],
        act: Activation,
        oy: usize,
        out_row: &mut [f32],
    ) {
        let (c, k, s, width) = (dw.channels, dw.kernel, dw.stride, dw.width);
        let (pad_top, _, _) = same_padding(dw.height, k, s);
        let (pad_left, _, _) = same_padding(width, k, s);
        let ow = out_row.len() / c;
        // Taps that fall inside the image for this row.
        let iy0 = (oy * s) as isize - pad_top as isize;
        let ky_lo = (-iy0).max(0) as usize;
        let ky_hi = (dw.height as isize - iy0).min(k as isize) as usize;
        // Output columns whose taps all lie inside the image: [interior_lo, interior_hi).
        let interior_lo = pad_left.div_ceil(s).min(ow);
        let interior_hi = if width + pad_left >= k { ((width + pad_left - k) / s + 1).min(ow) } else { 0 };
        let finish = |dst: &mut [f32], acc: &[f32]| match act {
            Activation::Relu6 => dst.iter_mut().zip(acc).for_each(|(d, &a)| *d = relu6(a)),
            Activation::None => dst.copy_from_slice(acc),
        };
        let mut c0 = 0;
        while c0 + BLOCK <= c {
            let b: &[f32; BLOCK] = bias[c0..c0 + BLOCK].try_into().unwrap();
            let mut ox = 0;
            while ox < ow {
                if ox >= interior_lo && ox + PIXELS <= interior_hi {
                    let mut acc = [*b; PIXELS];
                    let ix0 = ox * s - pad_left;
                    for ky in ky_lo..ky_hi {
                        let row = &img[((iy0 + ky as isize) as usize * width) * c..];
                        for kx in 0..k {
                            let w: &[f32; BLOCK] = weights[(ky * k + kx) * c + c0..][..BLOCK].try_into().unwrap();
                            for (p, a) in acc.iter_mut().enumerate() {
                                let src: &[f32; BLOCK] =
                                    row[(ix0 + p * s + kx) * c + c0..][..BLOCK].try_into().unwrap();
                                for j in 0..BLOCK {
                                    a[j] += src[j] * w[j];
                                }
                            }
                        }
                    }
                    for (p, a) in acc.iter().enumerate() {
                        finish(&mut out_row[(ox + p) * c + c0..][..BLOCK], a);
                    }
                    ox += PIXELS;
                } else {
                    let mut acc = *b;
                    let ix0 = (ox * s) as isize - pad_left as isize;
                    let kx_lo = (-ix0).max(0) as usize;
                    let kx_hi = (width as isize - ix0).min(k as isize) as usize;
                    for ky in ky_lo..ky_hi {
                        let iy = (iy0 + ky as isize) as usize;
                        for kx in kx_lo..kx_hi {
                            let ix = (ix0 + kx as isize) as usize;
                            let src: &[f32; BLOCK] = img[(iy * width + ix) * c + c0..][..BLOCK].try_into().unwrap();
                            let w: &[f32; BLOCK] = weights[(ky * k + kx) * c + c0..][..BLOCK].try_into().unwrap();
                            for j in 0..BLOCK {
                                acc[j] += src[j] * w[j];
                            }
                        }
                    }
                    finish(&mut out_row[ox * c + c0..][..BLOCK], &acc);
                    ox += 1;
                }
            }
            c0 += BLOCK;
        }
        if c0 < c {
            // Channel tail (fewer than BLOCK): plain per-pixel loop.
            let len = c - c0;
            let mut acc = vec![0f32; len];
            for ox in 0..ow {
                acc.copy_from_slice(&bias[c0..]);
                let ix0 = (ox * s) as isize - pad_left as isize;
                let kx_lo = (-ix0).max(0) as usize;
                let kx_hi = (width as isize - ix0).min(k as isize) as usize;
                for ky in ky_lo..ky_hi {
                    let iy = (iy0 + ky as isize) as usize;
                    for kx in kx_lo..kx_hi {
                        let ix = (ix0 + kx as isize) as usize;
                        let src = &img[(iy * width + ix) * c + c0..][..len];
                        let w = &weights[(ky * k + kx) * c + c0..][..len];
                        acc.iter_mut().zip(src).zip(w).for_each(|((a, &x), &w)| *a += x * w);
                    }
                }
                finish(&mut out_row[ox * c + c0..][..len], &acc);
            }
        }
    }
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
                let mut out = vec![f32::NAN; 2 * oh * ow * c];
                dw.run(&input, &weights, &bias, act, &mut out);
                let want = reference(&dw, &input, &weights, &bias, act);
                assert!(max_abs_diff(&out, &want) < 1e-5, "{dw:?} {act:?}");
            }
        }
    }
}
