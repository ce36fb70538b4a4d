//! Sprites and backgrounds: the built-in procedural set (no downloads) and the real-imagery
//! catalogue that `scripts/assets_synth.sh` writes from Debian packages.
//!
//! Catalogue (`catalogue.tsv`, tab-separated, header line, `#` comments):
//! `kind category name file license description options`, where `kind` is `sprite` or
//! `background`; `file` is relative to the catalogue (background tiles joined by `+`, laid
//! side by side); `options` holds `key=value` words for backgrounds: `prep=in|on|…` (the
//! preposition the scene takes), `band=TOP,BOTTOM` (rows kept, as fractions of the image
//! height), `sky=R,G,B` (colour behind transparent sky pixels). Large source images are
//! prepared once (trimmed, downscaled) into `prepared/` beside the catalogue.
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use image::{Rgb, RgbImage, Rgba, RgbaImage, imageops};
use serde::Serialize;

use crate::atomic::write_png;

/// Height of every prepared background; frames are crops of it, so it leaves room to zoom.
pub const BACKGROUND_HEIGHT: u32 = 360;
/// Longest side of a prepared sprite (sprites are drawn at most ~130 px in a 240-line frame).
pub const SPRITE_MAX_SIDE: u32 = 160;
/// File name of the catalogue inside an asset directory.
pub const CATALOGUE_FILE: &str = "catalogue.tsv";

/// Where the assets of a corpus came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetSource {
    Procedural,
    Catalogue,
}

/// An object instance: a cut-out with alpha, of one caption category.
pub struct Sprite {
    pub category: String,
    pub name: String,
    /// Mip levels: `levels[0]` is the prepared image, each next one half the size.
    pub levels: Vec<RgbaImage>,
    pub license: String,
    /// Procedural shapes are drawn in white and always carry a colour.
    pub always_tinted: bool,
}

/// A scene: a wide strip that the camera crops, pans and zooms over.
pub struct Background {
    /// Noun phrase used in captions, e.g. "a snowy forest".
    pub scene: String,
    /// Preposition the scene takes besides "across": "in a meadow", "on the moon".
    pub prep: String,
    pub name: String,
    pub image: RgbImage,
    pub license: String,
}

pub struct AssetSet {
    pub source: AssetSource,
    pub location: Option<PathBuf>,
    pub sprites: Vec<Sprite>,
    pub backgrounds: Vec<Background>,
    sprite_index: HashMap<String, usize>,
    background_index: HashMap<String, usize>,
}

/// Summary written into corpus.json and printed by the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct AssetSummary {
    pub source: AssetSource,
    pub location: Option<PathBuf>,
    pub sprites: usize,
    pub categories: usize,
    pub backgrounds: usize,
    pub scenes: Vec<String>,
}

impl AssetSet {
    fn new(
        source: AssetSource,
        location: Option<PathBuf>,
        sprites: Vec<Sprite>,
        backgrounds: Vec<Background>,
    ) -> Result<Self> {
        if sprites.is_empty() || backgrounds.is_empty() {
            bail!(
                "asset set has {} sprites and {} backgrounds; both must be non-empty",
                sprites.len(),
                backgrounds.len()
            );
        }
        let mut sprite_index = HashMap::new();
        for (i, s) in sprites.iter().enumerate() {
            if sprite_index.insert(s.name.clone(), i).is_some() {
                bail!("duplicate sprite name {:?}", s.name);
            }
        }
        let mut background_index = HashMap::new();
        for (i, b) in backgrounds.iter().enumerate() {
            if background_index.insert(b.name.clone(), i).is_some() {
                bail!("duplicate background name {:?}", b.name);
            }
        }
        Ok(Self {
            source,
            location,
            sprites,
            backgrounds,
            sprite_index,
            background_index,
        })
    }

    /// `${VIDCAP_CACHE:-$HOME/.cache/vidcap}/synth-assets`, where the assets script writes.
    pub fn default_dir() -> PathBuf {
        let cache = std::env::var_os("VIDCAP_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
                PathBuf::from(home).join(".cache").join("vidcap")
            });
        cache.join("synth-assets")
    }

    /// The catalogue in `dir` when given; otherwise the default cache directory's catalogue
    /// if the assets script has run, else the procedural set.
    pub fn resolve(dir: Option<&Path>) -> Result<Self> {
        match dir {
            Some(dir) => Self::from_catalogue(dir),
            None => {
                let default = Self::default_dir();
                if default.join(CATALOGUE_FILE).is_file() {
                    Self::from_catalogue(&default)
                } else {
                    Ok(Self::procedural())
                }
            }
        }
    }

    pub fn sprite(&self, name: &str) -> Option<&Sprite> {
        self.sprite_index.get(name).map(|&i| &self.sprites[i])
    }

    pub fn background(&self, name: &str) -> Option<&Background> {
        self.background_index
            .get(name)
            .map(|&i| &self.backgrounds[i])
    }

    /// Object categories, sorted.
    pub fn categories(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.sprites.iter().map(|s| s.category.as_str()).collect();
        set.into_iter().collect()
    }

    /// Scene phrases, sorted.
    pub fn scenes(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.backgrounds.iter().map(|b| b.scene.as_str()).collect();
        set.into_iter().collect()
    }

    pub fn sprites_of(&self, category: &str) -> Vec<&Sprite> {
        self.sprites
            .iter()
            .filter(|s| s.category == category)
            .collect()
    }

    pub fn summary(&self) -> AssetSummary {
        AssetSummary {
            source: self.source,
            location: self.location.clone(),
            sprites: self.sprites.len(),
            categories: self.categories().len(),
            backgrounds: self.backgrounds.len(),
            scenes: self.scenes().into_iter().map(String::from).collect(),
        }
    }

    /// Reads `dir/catalogue.tsv`, preparing (once) downscaled copies of the images.
    pub fn from_catalogue(dir: &Path) -> Result<Self> {
        let path = dir.join(CATALOGUE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read asset catalogue", path.display()))?;
        let catalogue_mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let prepared = dir.join("prepared");
        std::fs::create_dir_all(&prepared)
            .with_context(|| format!("{}: cannot create directory", prepared.display()))?;
        let mut sprites = Vec::new();
        let mut backgrounds = Vec::new();
        let mut saw_header = false;
        for (lineno, line) in text.lines().enumerate() {
            let at = || format!("{}:{}", path.display(), lineno + 1);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            if !saw_header {
                saw_header = true;
                if cols.first() == Some(&"kind") {
                    continue;
                }
            }
            if cols.len() < 5 {
                bail!(
                    "{}: expected at least 5 tab-separated columns (kind category name file license), found {}",
                    at(),
                    cols.len()
                );
            }
            let (kind, category, name, file, license) =
                (cols[0], cols[1], cols[2], cols[3], cols[4]);
            let options = cols.get(6).copied().unwrap_or("");
            let cached = prepared.join(format!("{kind}-{name}.png"));
            let fresh = match (catalogue_mtime, std::fs::metadata(&cached)) {
                (Some(cat), Ok(meta)) => meta.modified().map(|m| m >= cat).unwrap_or(false),
                _ => false,
            };
            match kind {
                "sprite" => {
                    let image = if fresh {
                        load_rgba(&cached)?
                    } else {
                        let image = prepare_sprite(&load_rgba(&dir.join(file))?)
                            .with_context(|| format!("{}: sprite {name}", at()))?;
                        let (w, h) = image.dimensions();
                        let rgba = image::ExtendedColorType::Rgba8;
                        write_png(&cached, image.as_raw(), w, h, rgba)?;
                        image
                    };
                    sprites.push(Sprite {
                        category: category.to_string(),
                        name: name.to_string(),
                        levels: mip_levels(image),
                        license: license.to_string(),
                        always_tinted: false,
                    });
                }
                "background" => {
                    let opts = BackgroundOptions::parse(options).with_context(at)?;
                    let image = if fresh {
                        image::open(&cached)
                            .with_context(|| format!("{}: cannot read image", cached.display()))?
                            .to_rgb8()
                    } else {
                        let tiles = file
                            .split('+')
                            .map(|f| load_rgba(&dir.join(f)))
                            .collect::<Result<Vec<_>>>()?;
                        let image = prepare_background(&tiles, &opts)
                            .with_context(|| format!("{}: background {name}", at()))?;
                        let (w, h) = image.dimensions();
                        write_png(
                            &cached,
                            image.as_raw(),
                            w,
                            h,
                            image::ExtendedColorType::Rgb8,
                        )?;
                        image
                    };
                    backgrounds.push(Background {
                        scene: category.to_string(),
                        prep: opts.prep,
                        name: name.to_string(),
                        image,
                        license: license.to_string(),
                    });
                }
                other => bail!(
                    "{}: unknown kind {other:?} (expected sprite or background)",
                    at()
                ),
            }
        }
        Self::new(
            AssetSource::Catalogue,
            Some(dir.to_path_buf()),
            sprites,
            backgrounds,
        )
        .with_context(|| format!("{}", path.display()))
    }

    /// The built-in set: eight white shapes in three variants each (always tinted) over six
    /// textured backgrounds. Works with no downloads; deterministic.
    pub fn procedural() -> Self {
        let mut sprites = Vec::new();
        for shape in SHAPES {
            for variant in 0..3 {
                sprites.push(Sprite {
                    category: shape.to_string(),
                    name: format!("{shape}-{variant}"),
                    levels: mip_levels(draw_shape(shape, variant)),
                    license: "built-in procedural (Apache-2.0)".to_string(),
                    always_tinted: true,
                });
            }
        }
        let backgrounds = PROCEDURAL_SCENES
            .iter()
            .map(|&(name, scene, prep)| Background {
                scene: scene.to_string(),
                prep: prep.to_string(),
                name: name.to_string(),
                image: draw_background(name),
                license: "built-in procedural (Apache-2.0)".to_string(),
            })
            .collect();
        Self::new(AssetSource::Procedural, None, sprites, backgrounds)
            .expect("the procedural set is non-empty and uniquely named")
    }
}

struct BackgroundOptions {
    prep: String,
    band: (f32, f32),
    sky: [u8; 3],
}

impl BackgroundOptions {
    fn parse(options: &str) -> Result<Self> {
        let mut out = Self {
            prep: "in".to_string(),
            band: (0.0, 1.0),
            sky: [120, 160, 220],
        };
        for word in options.split_whitespace() {
            let (key, value) = word
                .split_once('=')
                .with_context(|| format!("option {word:?} is not key=value"))?;
            match key {
                "prep" => out.prep = value.replace('_', " "),
                "band" => {
                    let (a, b) = value
                        .split_once(',')
                        .with_context(|| format!("band {value:?} is not TOP,BOTTOM"))?;
                    let (a, b): (f32, f32) = (a.parse()?, b.parse()?);
                    if !((0.0..1.0).contains(&a) && a < b && b <= 1.0) {
                        bail!("band {value:?} must satisfy 0 <= TOP < BOTTOM <= 1");
                    }
                    out.band = (a, b);
                }
                "sky" => {
                    let parts: Vec<u8> = value
                        .split(',')
                        .map(|p| p.parse::<u8>())
                        .collect::<std::result::Result<_, _>>()
                        .with_context(|| format!("sky {value:?} is not R,G,B"))?;
                    if parts.len() != 3 {
                        bail!("sky {value:?} is not R,G,B");
                    }
                    out.sky = [parts[0], parts[1], parts[2]];
                }
                _ => bail!("unknown background option {key:?}"),
            }
        }
        Ok(out)
    }
}

fn load_rgba(path: &Path) -> Result<RgbaImage> {
    Ok(image::open(path)
        .with_context(|| format!("{}: cannot read image", path.display()))?
        .to_rgba8())
}

/// Writes a PNG through a temp file in the same directory, so readers never see half a file.
/// Trims transparent borders and downscales so the longest side is at most SPRITE_MAX_SIDE.
fn prepare_sprite(image: &RgbaImage) -> Result<RgbaImage> {
    let (w, h) = image.dimensions();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (x, y, p) in image.enumerate_pixels() {
        if p[3] > 16 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        }
    }
    if x0 >= x1 || y0 >= y1 {
        bail!("image is fully transparent");
    }
    let cropped = imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image();
    let (cw, ch) = cropped.dimensions();
    let longest = cw.max(ch);
    if longest <= SPRITE_MAX_SIDE {
        return Ok(cropped);
    }
    let k = SPRITE_MAX_SIDE as f32 / longest as f32;
    let (nw, nh) = (
        ((cw as f32 * k).round() as u32).max(1),
        ((ch as f32 * k).round() as u32).max(1),
    );
    Ok(imageops::resize(
        &cropped,
        nw,
        nh,
        imageops::FilterType::Triangle,
    ))
}

/// Lays tiles side by side, fills transparent sky, keeps the band, scales to BACKGROUND_HEIGHT.
fn prepare_background(tiles: &[RgbaImage], opts: &BackgroundOptions) -> Result<RgbImage> {
    let height = tiles[0].height();
    if tiles.iter().any(|t| t.height() != height) {
        bail!("background tiles differ in height");
    }
    let width: u32 = tiles.iter().map(|t| t.width()).sum();
    let top = (opts.band.0 * height as f32).round() as u32;
    let bottom = ((opts.band.1 * height as f32).round() as u32).clamp(top + 1, height);
    let mut strip = RgbImage::new(width, bottom - top);
    let sky = opts.sky.map(f32::from);
    let mut x0 = 0;
    for tile in tiles {
        for y in top..bottom {
            for x in 0..tile.width() {
                let p = tile.get_pixel(x, y);
                let a = p[3] as f32 / 255.0;
                let px = std::array::from_fn(|c| (p[c] as f32 * a + sky[c] * (1.0 - a)) as u8);
                strip.put_pixel(x0 + x, y - top, Rgb(px));
            }
        }
        x0 += tile.width();
    }
    let k = BACKGROUND_HEIGHT as f32 / strip.height() as f32;
    let new_width = ((width as f32 * k).round() as u32).max(BACKGROUND_HEIGHT * 2);
    Ok(imageops::resize(
        &strip,
        new_width,
        BACKGROUND_HEIGHT,
        imageops::FilterType::Triangle,
    ))
}

/// Halvings down to ~16 px, so drawing a small sprite never skips source pixels (aliasing).
fn mip_levels(image: RgbaImage) -> Vec<RgbaImage> {
    let mut levels = vec![image];
    loop {
        let last = levels.last().expect("non-empty");
        let (w, h) = last.dimensions();
        if w.max(h) < 32 {
            break;
        }
        let next = imageops::resize(
            last,
            (w / 2).max(1),
            (h / 2).max(1),
            imageops::FilterType::Triangle,
        );
        levels.push(next);
    }
    levels
}

pub const SHAPES: [&str; 8] = [
    "circle", "square", "triangle", "star", "diamond", "ring", "cross", "heart",
];

/// (name, scene phrase, preposition) of the procedural backgrounds.
pub const PROCEDURAL_SCENES: [(&str, &str, &str); 6] = [
    ("stripes", "a striped wall", "in front of"),
    ("checkers", "a checkered floor", "on"),
    ("sunset", "a sunset sky", "under"),
    ("night", "a starry night sky", "under"),
    ("hills", "rolling hills", "over"),
    ("bricks", "a brick wall", "in front of"),
];

/// Whether the point (x, y in [-1, 1], y down) is inside the shape's variant.
fn inside_shape(shape: &str, variant: u32, x: f32, y: f32) -> bool {
    // Variants differ in proportion so a category has several instances, like photos do.
    let stretch: f32 = [1.0, 0.8, 1.15][variant as usize % 3];
    let (x, y) = (x / stretch.min(1.0), y * stretch.max(1.0));
    let r = (x * x + y * y).sqrt();
    match shape {
        "circle" => r <= 0.95,
        "square" => x.abs() <= 0.85 && y.abs() <= 0.85,
        "triangle" => (-0.9 + 0.0..=0.8).contains(&y) && x.abs() <= (y + 0.9) / 1.7 * 0.95,
        "star" => {
            let theta = y.atan2(x) + std::f32::consts::FRAC_PI_2;
            let k = (theta * 5.0 / std::f32::consts::TAU).rem_euclid(1.0);
            let tri = 1.0 - (2.0 * k - 1.0).abs();
            r <= 0.42 + 0.53 * (1.0 - tri)
        }
        "diamond" => x.abs() * 1.3 + y.abs() <= 0.95,
        "ring" => (0.55..=0.95).contains(&r),
        "cross" => (x.abs() <= 0.3 && y.abs() <= 0.9) || (y.abs() <= 0.3 && x.abs() <= 0.9),
        "heart" => {
            let (hx, hy) = (x * 1.1, -y * 1.1 + 0.25);
            let a = hx * hx + hy * hy - 0.55;
            a * a * a - hx * hx * hy * hy * hy <= 0.0
        }
        _ => false,
    }
}

/// A white shape with soft shading (so a tint reads as a coloured object, not a flat patch),
/// anti-aliased by 4x4 supersampling.
fn draw_shape(shape: &str, variant: u32) -> RgbaImage {
    const SIDE: u32 = 128;
    let mut image = RgbaImage::new(SIDE, SIDE);
    for py in 0..SIDE {
        for px in 0..SIDE {
            let mut hits = 0;
            for sy in 0..4 {
                for sx in 0..4 {
                    let x = ((px as f32 + (sx as f32 + 0.5) / 4.0) / SIDE as f32) * 2.0 - 1.0;
                    let y = ((py as f32 + (sy as f32 + 0.5) / 4.0) / SIDE as f32) * 2.0 - 1.0;
                    hits += inside_shape(shape, variant, x, y) as u32;
                }
            }
            if hits > 0 {
                let (x, y) = (
                    px as f32 / SIDE as f32 * 2.0 - 1.0,
                    py as f32 / SIDE as f32 * 2.0 - 1.0,
                );
                let light = 1.0 - 0.25 * ((x + 0.4).powi(2) + (y + 0.4).powi(2)).sqrt();
                let v = (255.0 * light.clamp(0.6, 1.0)) as u8;
                image.put_pixel(px, py, Rgba([v, v, v, (hits * 255 / 16) as u8]));
            }
        }
    }
    image
}

/// Deterministic value noise in [0, 1] (hash of the lattice point, smooth interpolation).
fn value_noise(x: f32, y: f32, salt: u64) -> f32 {
    let lattice = |ix: i64, iy: i64| {
        let h = crate::hash::mix64(
            salt ^ (ix as u64).wrapping_mul(0x9E37_79B9) ^ (iy as u64).wrapping_mul(0x85EB_CA6B),
        );
        (h >> 40) as f32 / (1u64 << 24) as f32
    };
    let (fx, fy) = (x.floor(), y.floor());
    let (tx, ty) = (x - fx, y - fy);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let (ix, iy) = (fx as i64, fy as i64);
    let top = lattice(ix, iy) * (1.0 - sx) + lattice(ix + 1, iy) * sx;
    let bottom = lattice(ix, iy + 1) * (1.0 - sx) + lattice(ix + 1, iy + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// Textured, muted backgrounds 960 px wide (three frame widths, room to pan).
fn draw_background(name: &str) -> RgbImage {
    let (w, h) = (BACKGROUND_HEIGHT * 8 / 3, BACKGROUND_HEIGHT);
    let salt = name
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let n = value_noise(fx / 40.0, fy / 40.0, salt) * 0.6
            + value_noise(fx / 9.0, fy / 9.0, salt ^ 1) * 0.4;
        let shade = 0.8 + 0.4 * n;
        let base: [f32; 3] = match name {
            "stripes" => {
                if (x / 48) % 2 == 0 {
                    [170.0, 150.0, 120.0]
                } else {
                    [110.0, 120.0, 140.0]
                }
            }
            "checkers" => {
                if ((x / 60) + (y / 60)) % 2 == 0 {
                    [190.0, 185.0, 175.0]
                } else {
                    [70.0, 75.0, 85.0]
                }
            }
            "sunset" => {
                let t = fy / h as f32;
                let cloud = value_noise(fx / 70.0, fy / 25.0, salt ^ 2);
                let c = [230.0 - 120.0 * t, 120.0 - 60.0 * t, 90.0 + 40.0 * t];
                c.map(|v| v * (0.85 + 0.3 * cloud))
            }
            "night" => {
                let star =
                    crate::hash::mix64(salt ^ (x as u64) << 20 ^ y as u64).is_multiple_of(500);
                if star {
                    [250.0, 250.0, 230.0]
                } else {
                    [20.0, 25.0, 60.0 + 30.0 * fy / h as f32]
                }
            }
            "hills" => {
                let horizon =
                    h as f32 * (0.45 + 0.1 * (fx / 90.0).sin() + 0.05 * (fx / 37.0).cos());
                if fy < horizon {
                    [140.0, 180.0, 230.0]
                } else {
                    [70.0, 140.0, 60.0]
                }
            }
            _ => {
                // bricks
                let row = y / 30;
                let offset = if row % 2 == 0 { 0 } else { 35 };
                let mortar = y % 30 < 3 || (x + offset) % 70 < 3;
                if mortar {
                    [200.0, 195.0, 185.0]
                } else {
                    [150.0, 70.0, 50.0]
                }
            }
        };
        Rgb(base.map(|v| (v * shade).clamp(0.0, 255.0) as u8))
    })
}
