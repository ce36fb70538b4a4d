//! The stem: a dense k×k convolution that reads the NCHW network input and writes NHWC, with
//! TF "SAME" padding, bias and ReLU6. Hand-written because it also changes the layout from
//! NCHW to NHWC: a few output pixels at a time are gathered into a small im2col patch (27
//! values each) and multiplied against the `[taps, out]` weights in registers, so no
//! full-size im2col buffer is ever written.
use rayon::prelude::*;

use super::{Activation, relu6, same_padding, simd_dispatch};

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
        let (oh, ow) = self.output_size();
        let image = self.in_channels * self.height * self.width;
        let batch = input.len() / image;
        assert_eq!(input.len(), batch * image);
        assert_eq!(
            weights.len(),
            self.in_channels * self.kernel * self.kernel * self.out_channels
        );
        assert_eq!(bias.len(), self.out_channels);
        assert_eq!(output.len(), batch * oh * ow * self.out_channels);
        let this = *self;
        output
            .par_chunks_mut(ow * self.out_channels)
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
    }
}

/// Output channels per register block and output pixels per group: the patch values of 4
/// pixels are broadcast against each weight vector, with 4×32 accumulators in registers.
const BLOCK: usize = 32;
const PIXELS: usize = 4;

simd_dispatch! {
    fn stem_row(st: Stem, img: &[f32], weights: &[f32], bias: &[f32], act: Activation, oy: usize, out_row: &mut [f32]) {
        let (k, s, co) = (st.kernel, st.stride, st.out_channels);
        let (pad_top, _, _) = same_padding(st.height, k, s);
        let (pad_left, _, _) = same_padding(st.width, k, s);
        let plane = st.height * st.width;
        let taps = st.in_channels * k * k;
        let ow = out_row.len() / co;
        // im2col of PIXELS output pixels: patches[t * PIXELS + p], zero where padding.
        let mut patches = vec![0f32; taps * PIXELS];
        let mut ox = 0;
        while ox < ow {
            let group = PIXELS.min(ow - ox);
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
            let mut c0 = 0;
            while c0 < co {
                let len = BLOCK.min(co - c0);
                let mut acc = [[0f32; BLOCK]; PIXELS];
                for a in acc.iter_mut() {
                    a[..len].copy_from_slice(&bias[c0..c0 + len]);
                }
                if len == BLOCK {
                    for t in 0..taps {
                        let w: &[f32; BLOCK] = weights[t * co + c0..][..BLOCK].try_into().unwrap();
                        let v: &[f32; PIXELS] = patches[t * PIXELS..][..PIXELS].try_into().unwrap();
                        for p in 0..PIXELS {
                            for j in 0..BLOCK {
                                acc[p][j] += v[p] * w[j];
                            }
                        }
                    }
                } else {
                    for t in 0..taps {
                        let w = &weights[t * co + c0..][..len];
                        for p in 0..PIXELS {
                            let v = patches[t * PIXELS + p];
                            acc[p][..len].iter_mut().zip(w).for_each(|(a, &w)| *a += v * w);
                        }
                    }
                }
                for (p, a) in acc.iter().enumerate().take(group) {
                    let dst = &mut out_row[(ox + p) * co + c0..][..len];
                    match act {
                        Activation::Relu6 => dst.iter_mut().zip(a).for_each(|(d, &a)| *d = relu6(a)),
                        Activation::None => dst.copy_from_slice(&a[..len]),
                    }
                }
                c0 += len;
            }
            ox += group;
        }
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

    #[test]
    fn fast_stem_matches_reference() {
        for &(h, w, k, s, co) in &[(16, 16, 3, 2, 32), (15, 9, 3, 2, 32), (10, 12, 5, 1, 40), (5, 3, 3, 1, 7)] {
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
            let mut out = vec![f32::NAN; 2 * oh * ow * co];
            st.run(&input, &weights, &bias, Activation::Relu6, &mut out);
            let want = reference(&st, &input, &weights, &bias, Activation::Relu6);
            assert!(max_abs_diff(&out, &want) < 1e-5, "{st:?}");
        }
    }
}
