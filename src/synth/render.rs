//! Raster renderer: a bilinear crop of the background (the camera) with alpha-composited,
//! scaled, tinted sprites on top. Plain loops over packed RGB: frames are 320x240 and a clip
//! is 100 frames, so this stays well under the encoder's cost without SIMD or a GPU.
use anyhow::{Context, Result};
use image::{RgbImage, RgbaImage};

use super::assets::{AssetSet, Background};
use super::scene::{ClipParams, colour_rgb};

/// A clip's assets looked up once, tints applied once.
pub struct ClipRenderer<'a> {
    params: &'a ClipParams,
    background: &'a Background,
    /// Per object: mip levels of the (tinted) sprite.
    sprites: Vec<Vec<RgbaImage>>,
}

impl<'a> ClipRenderer<'a> {
    pub fn new(params: &'a ClipParams, assets: &'a AssetSet) -> Result<Self> {
        let background = assets.background(&params.background).with_context(|| {
            format!("background {:?} is not in the asset set", params.background)
        })?;
        let sprites = params
            .objects
            .iter()
            .map(|o| {
                let sprite = assets
                    .sprite(&o.sprite)
                    .with_context(|| format!("sprite {:?} is not in the asset set", o.sprite))?;
                let tint = match &o.tint {
                    Some(name) => {
                        Some(colour_rgb(name).with_context(|| format!("unknown colour {name:?}"))?)
                    }
                    None => None,
                };
                Ok(sprite
                    .levels
                    .iter()
                    .map(|level| match tint {
                        Some(rgb) => tinted(level, rgb),
                        None => level.clone(),
                    })
                    .collect())
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            params,
            background,
            sprites,
        })
    }

    /// The background alone (what the camera sees), into `out`. Bilinear in 8-bit fixed
    /// point with per-column tables: this loop is most of a clip's render time.
    pub fn render_background(&self, frame: u32, out: &mut RgbImage) {
        let g = self.params.geometry;
        let rect = self.params.camera.at(frame, g.frames);
        let src = &self.background.image;
        let (sw, sh) = (src.width() as usize, src.height() as usize);
        let raw = src.as_raw();
        let (w, h) = (out.width() as usize, out.height() as usize);
        let (kx, ky) = (rect.w / w as f32, rect.h / h as f32);
        // (byte offset of the left sample, of the right sample, right weight out of 256)
        let columns: Vec<(usize, usize, u32)> = (0..w)
            .map(|x| {
                let sx = (rect.x + (x as f32 + 0.5) * kx - 0.5).clamp(0.0, (sw - 1) as f32);
                let x0 = sx as usize;
                let x1 = (x0 + 1).min(sw - 1);
                (x0 * 3, x1 * 3, ((sx - x0 as f32) * 256.0) as u32)
            })
            .collect();
        let dst = &mut **out;
        for y in 0..h {
            let sy = (rect.y + (y as f32 + 0.5) * ky - 0.5).clamp(0.0, (sh - 1) as f32);
            let y0 = sy as usize;
            let y1 = (y0 + 1).min(sh - 1);
            let wy = ((sy - y0 as f32) * 256.0) as u32;
            let top = &raw[y0 * sw * 3..(y0 + 1) * sw * 3];
            let bottom = &raw[y1 * sw * 3..(y1 + 1) * sw * 3];
            let row = &mut dst[y * w * 3..(y + 1) * w * 3];
            for (px, &(a, b, wx)) in row.chunks_exact_mut(3).zip(&columns) {
                for c in 0..3 {
                    let t = top[a + c] as u32 * (256 - wx) + top[b + c] as u32 * wx;
                    let u = bottom[a + c] as u32 * (256 - wx) + bottom[b + c] as u32 * wx;
                    px[c] = ((t * (256 - wy) + u * wy + 32768) >> 16) as u8;
                }
            }
        }
    }

    /// The full frame: background, then the objects in list order.
    pub fn render(&self, frame: u32, out: &mut RgbImage) {
        self.render_background(frame, out);
        for (object, levels) in self.params.objects.iter().zip(&self.sprites) {
            let (cx, cy, size) = object.at(frame);
            draw_sprite(out, levels, cx, cy, size);
        }
    }
}

/// Multiplies the sprite's luminance into the colour: shading survives, hue becomes `rgb`.
fn tinted(sprite: &RgbaImage, rgb: [u8; 3]) -> RgbaImage {
    let mut out = sprite.clone();
    for p in out.pixels_mut() {
        let luma = (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0;
        let k = 0.35 + 0.65 * luma;
        for c in 0..3 {
            p[c] = (rgb[c] as f32 * k).min(255.0) as u8;
        }
    }
    out
}

/// Draws the sprite centred at (cx, cy) with its longest side `size` pixels, sampling the
/// smallest mip level still at least as large (bilinear, straight alpha "over").
fn draw_sprite(out: &mut RgbImage, levels: &[RgbaImage], cx: f32, cy: f32, size: f32) {
    let level = levels
        .iter()
        .rev()
        .find(|l| l.width().max(l.height()) as f32 >= size)
        .unwrap_or(&levels[0]);
    let (sw, sh) = (level.width() as usize, level.height() as usize);
    let k = size / sw.max(sh) as f32;
    let (dw, dh) = (sw as f32 * k, sh as f32 * k);
    let (left, top) = (cx - dw / 2.0, cy - dh / 2.0);
    let (w, h) = (out.width() as i64, out.height() as i64);
    let x_begin = (left.floor() as i64).max(0);
    let x_end = ((left + dw).ceil() as i64).min(w);
    let y_begin = (top.floor() as i64).max(0);
    let y_end = ((top + dh).ceil() as i64).min(h);
    let raw = level.as_raw();
    let dst = &mut **out;
    for y in y_begin..y_end {
        let sy = (y as f32 + 0.5 - top) / k - 0.5;
        if sy < -0.5 || sy > sh as f32 - 0.5 {
            continue;
        }
        let sy = sy.clamp(0.0, (sh - 1) as f32);
        let y0 = sy as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let fy = sy - y0 as f32;
        for x in x_begin..x_end {
            let sx = (x as f32 + 0.5 - left) / k - 0.5;
            if sx < -0.5 || sx > sw as f32 - 0.5 {
                continue;
            }
            let sx = sx.clamp(0.0, (sw - 1) as f32);
            let x0 = sx as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let fx = sx - x0 as f32;
            let weights = [
                (x0, y0, (1.0 - fx) * (1.0 - fy)),
                (x1, y0, fx * (1.0 - fy)),
                (x0, y1, (1.0 - fx) * fy),
                (x1, y1, fx * fy),
            ];
            // Premultiplied accumulation, so transparent neighbours do not darken edges.
            let mut acc = [0.0f32; 4];
            for (xx, yy, wgt) in weights {
                let p = &raw[(yy * sw + xx) * 4..(yy * sw + xx) * 4 + 4];
                let a = p[3] as f32 / 255.0 * wgt;
                acc[0] += p[0] as f32 * a;
                acc[1] += p[1] as f32 * a;
                acc[2] += p[2] as f32 * a;
                acc[3] += a;
            }
            if acc[3] <= 1e-4 {
                continue;
            }
            let o = ((y * w + x) * 3) as usize;
            for c in 0..3 {
                let under = dst[o + c] as f32;
                dst[o + c] = (acc[c] + under * (1.0 - acc[3]) + 0.5).min(255.0) as u8;
            }
        }
    }
}
