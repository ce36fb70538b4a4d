//! Fast CPU kernels for the encoder, on NHWC f32 activations (channels innermost, so every
//! inner loop runs over contiguous channels and vectorises).
//!
//! candle's CPU conv2d runs a grouped (depthwise) convolution as one small convolution per
//! group, which makes MobileNet-style networks slow; these kernels replace it on the CPU.
//! Each kernel lives in its own file with a plain reference implementation beside it and a
//! test that the two agree.
// SIMD loops index several register arrays by the same vector number in lockstep.
#![allow(clippy::needless_range_loop)]
pub mod depthwise;
pub mod matmul;
pub mod mbconv;
pub mod pointwise;
pub mod pool;
pub mod stem;

/// TensorFlow "SAME" padding along one axis: `(before, after, output_size)` with
/// `total = max((ceil(i/s) - 1) * s + k - i, 0)` and `before = total / 2` (rounded down).
pub fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize, usize) {
    let output = input.div_ceil(stride);
    let total = ((output - 1) * stride + kernel).saturating_sub(input);
    (total / 2, total - total / 2, output)
}

/// `v` clamped to [0, 6], written so that it vectorises (`f32::clamp` adds NaN handling).
#[inline(always)]
#[allow(clippy::manual_clamp)]
pub(crate) fn relu6(v: f32) -> f32 {
    v.max(0.0).min(6.0)
}

/// A zero-padded NHWC layout: images of `height`×`width` pixels stored inside
/// `padded_height`×`padded_width` ones, offset by `top`/`left` (TF "SAME" borders).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Padding {
    pub height: usize,
    pub width: usize,
    pub top: usize,
    pub left: usize,
    pub padded_height: usize,
    pub padded_width: usize,
}

impl Padding {
    /// The padded layout a `kernel`×`kernel` convolution with `stride` reads.
    pub fn same(height: usize, width: usize, kernel: usize, stride: usize) -> Self {
        let (top, bottom, _) = same_padding(height, kernel, stride);
        let (left, right, _) = same_padding(width, kernel, stride);
        Padding {
            height,
            width,
            top,
            left,
            padded_height: height + top + bottom,
            padded_width: width + left + right,
        }
    }

    /// Pixels of one padded image.
    pub fn pixels(&self) -> usize {
        self.padded_height * self.padded_width
    }

    /// Padded pixel index of dense pixel `r` (over the batch).
    #[inline(always)]
    pub fn row(&self, r: usize) -> usize {
        let per_image = self.height * self.width;
        let (n, rem) = (r / per_image, r % per_image);
        (n * self.padded_height + rem / self.width + self.top) * self.padded_width
            + rem % self.width
            + self.left
    }

    /// Zeroes the border pixels (only) of `batch` padded images of `channels`.
    pub fn zero_borders(&self, buf: &mut [f32], batch: usize, channels: usize) {
        let row_len = self.padded_width * channels;
        for (i, row) in buf[..batch * self.pixels() * channels]
            .chunks_exact_mut(row_len)
            .enumerate()
        {
            let y = i % self.padded_height;
            if y < self.top || y >= self.top + self.height {
                row.fill(0.0);
            } else {
                row[..self.left * channels].fill(0.0);
                row[(self.left + self.width) * channels..].fill(0.0);
            }
        }
    }
}

/// Activation applied after a convolution's bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    Relu6,
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Deterministic pseudo-random values in [-1, 1) (xorshift), so kernel tests need no crate.
    pub fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::same_padding;

    #[test]
    fn same_padding_matches_tensorflow() {
        // Stride 2 on even sizes pads only after: 224, k3 → 0 before, 1 after, 112 out.
        assert_eq!(same_padding(224, 3, 2), (0, 1, 112));
        assert_eq!(same_padding(112, 5, 2), (1, 2, 56));
        assert_eq!(same_padding(14, 5, 1), (2, 2, 14));
        assert_eq!(same_padding(7, 3, 1), (1, 1, 7));
        assert_eq!(same_padding(1, 5, 2), (2, 2, 1));
        assert_eq!(same_padding(225, 3, 2), (1, 1, 113));
    }
}
