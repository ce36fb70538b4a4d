//! The reference preprocessing of the encoder: RGB24 → resized, centre-cropped, normalised
//! CHW floats, exactly as `../shared/bench/encoder_ort.py --check` and
//! `scripts/encoder_reference.py` do it:
//!
//! 1. shorter side to `resize_shorter`, longer side `int(resize_shorter * long / short)`
//!    (truncated);
//! 2. bilinear with half-pixel centres, source coordinate clamped at 0, no antialiasing
//!    (`torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`), in float on
//!    the u8 values, never rounded back to integers;
//! 3. centre crop `crop`: `top = round((H - crop) / 2)` with Python's round-half-to-even;
//! 4. `(v - mean) / std` per channel.
//!
//! Only the pixels inside the crop are interpolated: the rest of the resized image is never
//! needed.
use serde::{Deserialize, Serialize};

/// Why an image cannot be preprocessed.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("image is empty ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("RGB buffer has {got} bytes, a {width}x{height} RGB24 image needs {want}")]
    BufferSize {
        width: u32,
        height: u32,
        got: usize,
        want: usize,
    },
}

/// Resize, crop and normalisation of one backbone (the `preprocess` object of its config.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    pub resize_shorter: u32,
    pub crop: u32,
    #[serde(default = "bilinear")]
    pub interpolation: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

fn bilinear() -> String {
    "bilinear".to_string()
}

/// Where the crop lies: the resized size and the crop's top-left corner in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub resized_width: usize,
    pub resized_height: usize,
    pub top: usize,
    pub left: usize,
}

/// One output coordinate's two source taps and the weight of the second.
#[derive(Debug, Clone, Copy)]
struct Tap {
    lo: usize,
    hi: usize,
    frac: f64,
}

/// Half-pixel bilinear taps for output coordinates `first..first + count` of a resize from
/// `input` to `output` samples (torch's `area_pixel_compute_source_index` with
/// `align_corners=False`, then `upsample_bilinear2d`'s neighbour rule).
fn taps(input: usize, output: usize, first: usize, count: usize) -> Vec<Tap> {
    let scale = input as f64 / output as f64;
    (first..first + count)
        .map(|dst| {
            let src = ((dst as f64 + 0.5) * scale - 0.5).max(0.0);
            let lo = (src as usize).min(input - 1);
            let hi = if lo + 1 < input { lo + 1 } else { lo };
            Tap {
                lo,
                hi,
                frac: src - lo as f64,
            }
        })
        .collect()
}

impl Preprocess {
    /// EfficientNet-Lite's preprocessing: 256 → 224, `(v - 127) / 128`.
    pub fn efficientnet_lite() -> Self {
        Preprocess {
            resize_shorter: 256,
            crop: 224,
            interpolation: bilinear(),
            mean: [127.0; 3],
            std: [128.0; 3],
        }
    }

    /// The resized size and crop origin for a `width`×`height` image.
    pub fn geometry(&self, width: u32, height: u32) -> Result<Geometry, PreprocessError> {
        if width == 0 || height == 0 {
            return Err(PreprocessError::Empty { width, height });
        }
        let (w, h) = (width as u64, height as u64);
        let target = self.resize_shorter as u64;
        let short = w.min(h);
        // Python's int(target * long / short): a correctly rounded float quotient, truncated.
        let scaled = |long: u64| ((target * long) as f64 / short as f64) as usize;
        let (rw, rh) = if h <= w {
            (scaled(w), target as usize)
        } else {
            (target as usize, scaled(h))
        };
        let crop = self.crop as usize;
        let origin = |size: usize| ((size as f64 - crop as f64) / 2.0).round_ties_even() as usize;
        Ok(Geometry {
            resized_width: rw,
            resized_height: rh,
            top: origin(rh),
            left: origin(rw),
        })
    }

    /// One tightly packed RGB24 image to CHW floats `[3, crop, crop]`.
    pub fn apply(&self, rgb: &[u8], width: u32, height: u32) -> Result<Vec<f32>, PreprocessError> {
        let geometry = self.geometry(width, height)?;
        let (w, h) = (width as usize, height as usize);
        let want = w * h * 3;
        if rgb.len() != want {
            return Err(PreprocessError::BufferSize {
                width,
                height,
                got: rgb.len(),
                want,
            });
        }
        let crop = self.crop as usize;
        let rows = taps(h, geometry.resized_height, geometry.top, crop);
        let cols = taps(w, geometry.resized_width, geometry.left, crop);
        let plane = crop * crop;
        let mut out = vec![0f32; 3 * plane];
        let px = |y: usize, x: usize, c: usize| rgb[(y * w + x) * 3 + c] as f64;
        for (oy, row) in rows.iter().enumerate() {
            for (ox, col) in cols.iter().enumerate() {
                for c in 0..3 {
                    let top =
                        px(row.lo, col.lo, c) * (1.0 - col.frac) + px(row.lo, col.hi, c) * col.frac;
                    let bottom =
                        px(row.hi, col.lo, c) * (1.0 - col.frac) + px(row.hi, col.hi, c) * col.frac;
                    let v = top * (1.0 - row.frac) + bottom * row.frac;
                    out[c * plane + oy * crop + ox] =
                        ((v - self.mean[c] as f64) / self.std[c] as f64) as f32;
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_truncates_the_long_side_and_rounds_half_to_even() {
        let p = Preprocess::efficientnet_lite();
        // chelsea: 451x300 → 384x256 (int(256*451/300) = 384), crop left round(80) = 80.
        let g = p.geometry(451, 300).unwrap();
        assert_eq!(
            (g.resized_width, g.resized_height, g.top, g.left),
            (384, 256, 16, 80)
        );
        // 640x481 → 340x256 (truncated, ffmpeg would round to 341); (340-224)/2 = 58.
        let g = p.geometry(481, 640).unwrap();
        assert_eq!((g.resized_width, g.resized_height), (256, 340));
        // 257 wide: (257-224)/2 = 16.5 rounds to 16 (half to even); 259 → 17.5 → 18.
        assert_eq!(p.geometry(257, 256).unwrap().left, 16);
        assert_eq!(p.geometry(259, 256).unwrap().left, 18);
    }

    #[test]
    fn constant_image_stays_constant_and_bad_sizes_are_refused() {
        let p = Preprocess::efficientnet_lite();
        let out = p.apply(&vec![255u8; 300 * 200 * 3], 300, 200).unwrap();
        assert_eq!(out.len(), 3 * 224 * 224);
        assert!(out.iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(matches!(
            p.apply(&[], 0, 5),
            Err(PreprocessError::Empty { .. })
        ));
        assert!(matches!(
            p.apply(&[0u8; 10], 4, 4),
            Err(PreprocessError::BufferSize { .. })
        ));
    }
}
