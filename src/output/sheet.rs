//! Contact sheets: the sampled frames in a grid, each with its timestamp, and the
//! caption(s) beneath, as one PNG.
use std::path::{Path, PathBuf};

use ab_glyph::{Font, FontVec, PxScale, ScaleFont, point};
use anyhow::{Context, Result};
use image::{Rgb, RgbImage, imageops};

use super::timestamp;

/// Fonts tried in order when `VIDCAP_FONT` is not set (Debian's fonts-dejavu-core).
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// One thumbnail: RGB24 pixels and the time it shows.
pub struct Thumb<'a> {
    pub rgb: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub pts: f64,
}

impl<'a> From<&'a crate::video::Frame> for Thumb<'a> {
    fn from(f: &'a crate::video::Frame) -> Self {
        Thumb {
            rgb: &f.rgb,
            width: f.width,
            height: f.height,
            pts: f.pts,
        }
    }
}

pub struct SheetLayout {
    pub columns: u32,
    pub thumb_width: u32,
}

impl Default for SheetLayout {
    fn default() -> Self {
        Self {
            columns: 4,
            thumb_width: 240,
        }
    }
}

pub fn load_font() -> Result<FontVec> {
    let path = match std::env::var_os("VIDCAP_FONT") {
        Some(p) => PathBuf::from(p),
        None => FONT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("no font for the contact sheet: install fonts-dejavu-core or set VIDCAP_FONT to a .ttf file")?,
    };
    let bytes = std::fs::read(&path)
        .with_context(|| format!("{}: cannot read the font", path.display()))?;
    FontVec::try_from_vec(bytes)
        .map_err(|_| anyhow::anyhow!("{}: not a TrueType/OpenType font", path.display()))
}

/// Render the sheet: a grid of thumbnails (timestamps in their corner) and `lines` of text
/// (e.g. `[00:04.000 --> 00:08.000] a dog runs left`) beneath, wrapped to the sheet width.
pub fn render(
    thumbs: &[Thumb],
    lines: &[String],
    layout: &SheetLayout,
    font: &FontVec,
) -> Result<RgbImage> {
    anyhow::ensure!(
        !thumbs.is_empty(),
        "a contact sheet needs at least one frame"
    );
    let columns = layout.columns.clamp(1, thumbs.len() as u32);
    let rows = (thumbs.len() as u32).div_ceil(columns);
    let tw = layout.thumb_width;
    let th = thumbs
        .iter()
        .map(|t| (t.height as f64 * tw as f64 / t.width as f64).round() as u32)
        .max()
        .unwrap_or(1);
    let gap = 6;
    let width = columns * (tw + gap) + gap;
    let text_scale = PxScale::from(18.0);
    let line_height = 24;
    let wrapped: Vec<String> = lines
        .iter()
        .flat_map(|l| wrap(l, font, text_scale, width - 2 * gap))
        .collect();
    let height = rows * (th + gap) + gap + wrapped.len() as u32 * line_height + gap;
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([24, 24, 24]));
    for (i, t) in thumbs.iter().enumerate() {
        let frame = RgbImage::from_raw(t.width, t.height, t.rgb.to_vec())
            .context("frame buffer has the wrong size")?;
        let thumb_h = (t.height as f64 * tw as f64 / t.width as f64)
            .round()
            .max(1.0) as u32;
        let thumb = imageops::resize(&frame, tw, thumb_h, imageops::FilterType::Triangle);
        let (x, y) = (
            gap + (i as u32 % columns) * (tw + gap),
            gap + (i as u32 / columns) * (th + gap),
        );
        imageops::overlay(&mut sheet, &thumb, x as i64, y as i64);
        let label = timestamp(t.pts, '.', false);
        fill_rect(
            &mut sheet,
            x,
            y,
            text_width(&label, font, PxScale::from(14.0)) + 8,
            18,
            Rgb([0, 0, 0]),
        );
        draw_text(
            &mut sheet,
            &label,
            x + 4,
            y + 2,
            font,
            PxScale::from(14.0),
            Rgb([255, 255, 255]),
        );
    }
    let mut y = rows * (th + gap) + gap;
    for line in &wrapped {
        draw_text(
            &mut sheet,
            line,
            gap,
            y + 2,
            font,
            text_scale,
            Rgb([235, 235, 235]),
        );
        y += line_height;
    }
    Ok(sheet)
}

/// Write the sheet as PNG through a temporary file, so a reader never sees half of it.
pub fn save(sheet: &RgbImage, path: &Path) -> Result<()> {
    let (width, height) = sheet.dimensions();
    let rgb = image::ExtendedColorType::Rgb8;
    crate::atomic::write_png(path, sheet.as_raw(), width, height, rgb)
        .context("cannot write the contact sheet")
}

fn text_width(text: &str, font: &FontVec, scale: PxScale) -> u32 {
    let font = font.as_scaled(scale);
    text.chars()
        .map(|c| font.h_advance(font.glyph_id(c)))
        .sum::<f32>()
        .ceil() as u32
}

fn wrap(text: &str, font: &FontVec, scale: PxScale, max_width: u32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let candidate = if current.is_empty() {
            word.to_string()
        } else {
            format!("{current} {word}")
        };
        if text_width(&candidate, font, scale) > max_width && !current.is_empty() {
            lines.push(std::mem::replace(&mut current, word.to_string()));
        } else {
            current = candidate;
        }
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

fn fill_rect(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, color: Rgb<u8>) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            img.put_pixel(xx, yy, color);
        }
    }
}

/// Glyph coverage blended over what is there (ab_glyph rasterises; we composite).
fn draw_text(
    img: &mut RgbImage,
    text: &str,
    x: u32,
    y: u32,
    font: &FontVec,
    scale: PxScale,
    color: Rgb<u8>,
) {
    let scaled = font.as_scaled(scale);
    let mut caret = point(x as f32, y as f32 + scaled.ascent());
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        let glyph = id.with_scale_and_position(scale, caret);
        caret.x += scaled.h_advance(id);
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (px, py) = (
                bounds.min.x as i64 + gx as i64,
                bounds.min.y as i64 + gy as i64,
            );
            if px < 0 || py < 0 || px >= img.width() as i64 || py >= img.height() as i64 {
                return;
            }
            let p = img.get_pixel_mut(px as u32, py as u32);
            for k in 0..3 {
                p.0[k] =
                    (p.0[k] as f32 * (1.0 - coverage) + color.0[k] as f32 * coverage).round() as u8;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_land_in_the_grid_and_text_is_drawn() {
        let Ok(font) = load_font() else {
            eprintln!("skipped: no DejaVu font installed (scripts/setup_system.sh installs it)");
            return;
        };
        let red = vec![[200u8, 10, 10]; 64 * 48].concat();
        let blue = vec![[10u8, 10, 200]; 64 * 48].concat();
        let thumbs = [
            Thumb {
                rgb: &red,
                width: 64,
                height: 48,
                pts: 0.5,
            },
            Thumb {
                rgb: &blue,
                width: 64,
                height: 48,
                pts: 1.5,
            },
            Thumb {
                rgb: &red,
                width: 64,
                height: 48,
                pts: 2.5,
            },
        ];
        let layout = SheetLayout {
            columns: 2,
            thumb_width: 128,
        };
        let sheet = render(
            &thumbs,
            &["[00:00.000 --> 00:03.000] a red square".into()],
            &layout,
            &font,
        )
        .unwrap();
        assert_eq!(sheet.width(), 2 * (128 + 6) + 6);
        // Thumbnail centres keep their colour (the timestamp label covers only a corner).
        assert_eq!(sheet.get_pixel(6 + 64, 6 + 60).0, [200, 10, 10]);
        assert_eq!(sheet.get_pixel(6 + 134 + 64, 6 + 60).0, [10, 10, 200]);
        // The caption band holds light text pixels on the dark background.
        let band_top = 2 * (96 + 6) + 6;
        let bright = (band_top..sheet.height())
            .flat_map(|y| (0..sheet.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| sheet.get_pixel(x, y).0[0] > 150)
            .count();
        assert!(bright > 50, "only {bright} text pixels");
    }
}
