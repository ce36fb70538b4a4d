//! The scene model: everything a clip shows, sampled from a per-clip random stream. The
//! renderer draws exactly these parameters and the caption grammar states exactly them, so
//! tests can check every claim of a caption against the trajectory that produced it.
//!
//! Objects live in screen coordinates (pixels, y down); the camera moves over the
//! background only, so "the dog moves left" means left in the frame whatever the camera does.
use anyhow::{Result, bail};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::assets::AssetSet;
use crate::hash::{fnv1a64, mix64};

/// Frame geometry of every clip in a corpus.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Self {
            width: 320,
            height: 240,
            fps: 25,
            frames: 100,
        }
    }
}

impl Geometry {
    pub fn seconds(&self) -> f32 {
        self.frames as f32 / self.fps as f32
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Motion {
    Left,
    Right,
    Up,
    Down,
    Toward,
    Away,
    Still,
}

impl Motion {
    pub const MOVING: [Motion; 6] = [
        Motion::Left,
        Motion::Right,
        Motion::Up,
        Motion::Down,
        Motion::Toward,
        Motion::Away,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Motion::Left => "left",
            Motion::Right => "right",
            Motion::Up => "up",
            Motion::Down => "down",
            Motion::Toward => "toward",
            Motion::Away => "away",
            Motion::Still => "still",
        }
    }

    fn opposite(self) -> Motion {
        match self {
            Motion::Left => Motion::Right,
            Motion::Right => Motion::Left,
            Motion::Up => Motion::Down,
            Motion::Down => Motion::Up,
            Motion::Toward => Motion::Away,
            Motion::Away => Motion::Toward,
            Motion::Still => Motion::Still,
        }
    }

    /// Unit screen direction of a translation (y down); zero for depth motions.
    fn vector(self) -> (f32, f32) {
        match self {
            Motion::Left => (-1.0, 0.0),
            Motion::Right => (1.0, 0.0),
            Motion::Up => (0.0, -1.0),
            Motion::Down => (0.0, 1.0),
            _ => (0.0, 0.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speed {
    Slowly,
    Quickly,
}

impl Speed {
    /// Screen speed in px/s for a 320x240 frame (scaled by the frame size). The two ranges
    /// are more than 2x apart, so "slowly" and "quickly" never describe the same motion.
    fn pixels_per_second(self, horizontal: bool, rng: &mut ChaCha8Rng) -> f32 {
        match (self, horizontal) {
            (Speed::Slowly, true) => rng.random_range(18.0..26.0),
            (Speed::Quickly, true) => rng.random_range(52.0..60.0),
            (Speed::Slowly, false) => rng.random_range(12.0..17.0),
            (Speed::Quickly, false) => rng.random_range(34.0..40.0),
        }
    }

    /// Size growth factor per second for toward/away.
    fn growth_per_second(self, rng: &mut ChaCha8Rng) -> f32 {
        match self {
            Speed::Slowly => rng.random_range(1.16..1.20),
            Speed::Quickly => rng.random_range(1.40..1.48),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interaction {
    Chases,
    Passes,
    Meets,
    MovesAwayFrom,
}

/// What the clip is about; decides the caption's sentence shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Story {
    /// One object, one motion.
    Single,
    /// One object, two motions one after the other ("…, then …").
    Sequence,
    /// 2–3 objects of one category moving together.
    Group,
    /// `objects[0]` does something to `objects[1]` along a horizontal direction.
    Interaction {
        verb: Interaction,
        direction: Motion,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraMotion {
    Static,
    PanLeft,
    PanRight,
    ZoomIn,
    ZoomOut,
}

/// A crop of the background, in background pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rect {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Camera {
    pub motion: CameraMotion,
    /// Crop at the first and the last frame; linear in between.
    pub start: Rect,
    pub end: Rect,
}

impl Camera {
    pub fn at(&self, frame: u32, frames: u32) -> Rect {
        let t = frame as f32 / (frames.max(2) - 1) as f32;
        let lerp = |a: f32, b: f32| a + (b - a) * t;
        Rect {
            x: lerp(self.start.x, self.end.x),
            y: lerp(self.start.y, self.end.y),
            w: lerp(self.start.w, self.end.w),
            h: lerp(self.start.h, self.end.h),
        }
    }
}

/// Position of an object's centre and its size (longest side), in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Keyframe {
    pub frame: u32,
    pub x: f32,
    pub y: f32,
    pub size: f32,
}

/// One motion of an object over a frame range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub motion: Motion,
    /// Stated in captions for single, sequence and group stories.
    pub speed: Option<Speed>,
    pub start_frame: u32,
    pub end_frame: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectParams {
    pub category: String,
    pub sprite: String,
    /// Colour name when tinted (see COLOURS).
    pub tint: Option<String>,
    /// Piecewise-linear trajectory; first keyframe at frame 0, last at the last frame.
    pub keyframes: Vec<Keyframe>,
    pub phases: Vec<Phase>,
}

impl ObjectParams {
    /// Centre and size at a frame (linear between keyframes).
    pub fn at(&self, frame: u32) -> (f32, f32, f32) {
        let k = &self.keyframes;
        let last = k.len() - 1;
        if frame <= k[0].frame {
            return (k[0].x, k[0].y, k[0].size);
        }
        for pair in k.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if frame <= b.frame {
                let t = (frame - a.frame) as f32 / (b.frame - a.frame).max(1) as f32;
                return (
                    a.x + (b.x - a.x) * t,
                    a.y + (b.y - a.y) * t,
                    a.size + (b.size - a.size) * t,
                );
            }
        }
        (k[last].x, k[last].y, k[last].size)
    }

    /// The (category, motion) pairs this object shows, moving motions only.
    pub fn motions(&self) -> impl Iterator<Item = Motion> + '_ {
        self.phases
            .iter()
            .map(|p| p.motion)
            .filter(|&m| m != Motion::Still)
    }
}

/// Everything about one clip; serialised into annotations.jsonl as `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipParams {
    pub geometry: Geometry,
    pub background: String,
    pub scene: String,
    pub camera: Camera,
    pub story: Story,
    /// `objects[0]` is the subject; draw order is the list order.
    pub objects: Vec<ObjectParams>,
}

/// Colour names and the RGB a tint multiplies into the sprite.
pub const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [225, 35, 35]),
    ("green", [40, 180, 60]),
    ("blue", [45, 90, 235]),
    ("yellow", [245, 215, 30]),
    ("purple", [150, 55, 205]),
    ("orange", [250, 135, 25]),
];

pub fn colour_rgb(name: &str) -> Option<[u8; 3]> {
    COLOURS.iter().find(|(n, _)| *n == name).map(|&(_, c)| c)
}

/// The random stream of clip `index` of kind `stream` (0: regular, 1: compositional):
/// independent of thread count and of the other clips.
pub fn clip_rng(seed: u64, stream: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix64(mix64(mix64(seed) ^ stream) ^ index))
}

/// Held-out (object, scene) pairs: about one in seven. Fixed by the names alone (not by the
/// seed), so every corpus of a given asset set holds out the same pairs.
pub fn held_out_scene(category: &str, scene: &str) -> bool {
    mix64(fnv1a64(category.as_bytes()) ^ fnv1a64(scene.as_bytes()).rotate_left(17) ^ 0x5CE7E)
        .is_multiple_of(7)
}

/// Held-out (object, motion) pairs: about one in six.
pub fn held_out_motion(category: &str, motion: Motion) -> bool {
    motion != Motion::Still
        && mix64(
            fnv1a64(category.as_bytes())
                ^ fnv1a64(motion.name().as_bytes()).rotate_left(29)
                ^ 0x307105,
        )
        .is_multiple_of(6)
}

impl ClipParams {
    /// The held-out pairs this clip shows: `(category, scene or motion name)`.
    pub fn held_out_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for o in &self.objects {
            if held_out_scene(&o.category, &self.scene) {
                pairs.push((o.category.clone(), self.scene.clone()));
            }
            for m in o.motions() {
                if held_out_motion(&o.category, m) {
                    pairs.push((o.category.clone(), m.name().to_string()));
                }
            }
        }
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// Samples a clip; `compositional` asks for at least one held-out pair, otherwise none.
    pub fn sample(
        rng: &mut ChaCha8Rng,
        assets: &AssetSet,
        geometry: Geometry,
        compositional: bool,
    ) -> Result<Self> {
        for _ in 0..1000 {
            let params = sample_any(rng, assets, geometry);
            if params.held_out_pairs().is_empty() != compositional {
                return Ok(params);
            }
        }
        bail!(
            "could not sample a {} clip in 1000 tries: the asset set has too few categories or scenes",
            if compositional {
                "compositional"
            } else {
                "regular"
            }
        )
    }
}

fn sample_any(rng: &mut ChaCha8Rng, assets: &AssetSet, g: Geometry) -> ClipParams {
    let background = assets
        .backgrounds
        .choose(rng)
        .expect("asset sets are non-empty");
    let camera = sample_camera(rng, g, background.image.width(), background.image.height());
    let story_roll: f32 = rng.random();
    let (story, objects) = if story_roll < 0.35 {
        (Story::Single, vec![sample_single(rng, assets, g, 1)])
    } else if story_roll < 0.55 {
        (Story::Sequence, vec![sample_single(rng, assets, g, 2)])
    } else if story_roll < 0.75 {
        (Story::Group, sample_group(rng, assets, g))
    } else {
        sample_interaction(rng, assets, g)
    };
    ClipParams {
        geometry: g,
        background: background.name.clone(),
        scene: background.scene.clone(),
        camera,
        story,
        objects,
    }
}

fn sample_camera(rng: &mut ChaCha8Rng, g: Geometry, bg_w: u32, bg_h: u32) -> Camera {
    let aspect = g.width as f32 / g.height as f32;
    let h = bg_h as f32 * 0.75;
    let w = h * aspect;
    let roll: f32 = rng.random();
    let motion = match roll {
        r if r < 0.5 => CameraMotion::Static,
        r if r < 0.625 => CameraMotion::PanLeft,
        r if r < 0.75 => CameraMotion::PanRight,
        r if r < 0.875 => CameraMotion::ZoomIn,
        _ => CameraMotion::ZoomOut,
    };
    let travel = match motion {
        CameraMotion::PanLeft | CameraMotion::PanRight => w * rng.random_range(0.35..0.5),
        _ => 0.0,
    };
    let free_x = (bg_w as f32 - w - travel).max(0.0);
    let x = rng.random_range(0.0..=free_x);
    let y = rng.random_range(0.0..=(bg_h as f32 - h).max(0.0));
    let wide = Rect { x, y, w, h };
    let zoom = rng.random_range(0.6..0.7);
    let close = Rect {
        x: x + w * (1.0 - zoom) / 2.0,
        y: y + h * (1.0 - zoom) / 2.0,
        w: w * zoom,
        h: h * zoom,
    };
    let (start, end) = match motion {
        CameraMotion::Static => (wide, wide),
        // Panning right moves the view right, so the scenery drifts left in the frame.
        CameraMotion::PanRight => (
            wide,
            Rect {
                x: x + travel,
                ..wide
            },
        ),
        CameraMotion::PanLeft => (
            Rect {
                x: x + travel,
                ..wide
            },
            wide,
        ),
        CameraMotion::ZoomIn => (wide, close),
        CameraMotion::ZoomOut => (close, wide),
    };
    Camera { motion, start, end }
}

/// Picks a category and one of its sprites, and a tint (always for procedural shapes).
fn sample_look(
    rng: &mut ChaCha8Rng,
    assets: &AssetSet,
    category: Option<&str>,
    tint: Option<Option<String>>,
) -> (String, String, Option<String>) {
    let category = match category {
        Some(c) => c.to_string(),
        None => assets
            .categories()
            .choose(rng)
            .expect("non-empty")
            .to_string(),
    };
    let sprite = assets
        .sprites_of(&category)
        .choose(rng)
        .copied()
        .expect("category has sprites");
    let tint = tint.unwrap_or_else(|| {
        if sprite.always_tinted || rng.random_bool(0.3) {
            // "an orange orange" would be ambiguous: a category never takes its own name.
            let colours: Vec<&str> = COLOURS
                .iter()
                .map(|c| c.0)
                .filter(|c| *c != category)
                .collect();
            Some(colours.choose(rng).expect("non-empty").to_string())
        } else {
            None
        }
    });
    (category, sprite.name.clone(), tint)
}

fn frame_scale(g: Geometry) -> f32 {
    g.height as f32 / 240.0
}

/// A path of `phases` motions from a relative origin; returns keyframes relative to (0, 0).
fn build_path(
    rng: &mut ChaCha8Rng,
    g: Geometry,
    motions: &[(Motion, Speed)],
    size: f32,
) -> (Vec<Keyframe>, Vec<Phase>) {
    let n = motions.len() as u32;
    let last = g.frames - 1;
    let mut keyframes = vec![Keyframe {
        frame: 0,
        x: 0.0,
        y: 0.0,
        size,
    }];
    let mut phases = Vec::new();
    for (i, &(motion, speed)) in motions.iter().enumerate() {
        let start_frame = last * i as u32 / n;
        let end_frame = last * (i as u32 + 1) / n;
        let seconds = (end_frame - start_frame) as f32 / g.fps as f32;
        let prev = *keyframes.last().expect("non-empty");
        let mut next = Keyframe {
            frame: end_frame,
            ..prev
        };
        match motion {
            Motion::Toward | Motion::Away => {
                let growth = speed.growth_per_second(rng).powf(seconds);
                next.size = if motion == Motion::Toward {
                    prev.size * growth
                } else {
                    prev.size / growth
                };
            }
            _ => {
                let (dx, dy) = motion.vector();
                let v = speed.pixels_per_second(dy == 0.0, rng) * frame_scale(g);
                next.x += dx * v * seconds;
                next.y += dy * v * seconds;
            }
        }
        keyframes.push(next);
        phases.push(Phase {
            motion,
            speed: Some(speed),
            start_frame,
            end_frame,
        });
    }
    (keyframes, phases)
}

/// Shifts a relative path to a random place where, at every keyframe, the sprite's centre is
/// at least 0.4 sizes from each edge (at most a tenth of it off screen); false when the path
/// cannot fit.
fn place_path(rng: &mut ChaCha8Rng, g: Geometry, keyframes: &mut [Keyframe]) -> bool {
    let (mut min_x, mut max_x) = (f32::INFINITY, f32::NEG_INFINITY);
    let (mut min_y, mut max_y) = (f32::INFINITY, f32::NEG_INFINITY);
    for k in keyframes.iter() {
        let margin = 0.4 * k.size;
        min_x = min_x.min(k.x - margin);
        max_x = max_x.max(k.x + margin);
        min_y = min_y.min(k.y - margin);
        max_y = max_y.max(k.y + margin);
    }
    let free_x = g.width as f32 - (max_x - min_x);
    let free_y = g.height as f32 - (max_y - min_y);
    if free_x < 0.0 || free_y < 0.0 {
        return false;
    }
    let ox = rng.random_range(0.0..=free_x) - min_x;
    let oy = rng.random_range(0.0..=free_y) - min_y;
    for k in keyframes.iter_mut() {
        k.x += ox;
        k.y += oy;
    }
    true
}

fn random_speed(rng: &mut ChaCha8Rng) -> Speed {
    if rng.random_bool(0.5) {
        Speed::Slowly
    } else {
        Speed::Quickly
    }
}

fn base_size(rng: &mut ChaCha8Rng, g: Geometry, motion: Motion) -> f32 {
    let s = match motion {
        Motion::Toward => rng.random_range(30.0..38.0),
        Motion::Away => rng.random_range(100.0..120.0),
        _ => rng.random_range(44.0..60.0),
    };
    s * frame_scale(g)
}

fn sample_single(rng: &mut ChaCha8Rng, assets: &AssetSet, g: Geometry, n: usize) -> ObjectParams {
    let (category, sprite, tint) = sample_look(rng, assets, None, None);
    loop {
        let first = *Motion::MOVING.choose(rng).expect("non-empty");
        let mut motions = vec![(first, random_speed(rng))];
        if n == 2 {
            let second = *Motion::MOVING
                .iter()
                .filter(|&&m| m != first)
                .collect::<Vec<_>>()
                .choose(rng)
                .expect("non-empty");
            // Toward then away (or back) would undo itself; keep depth motions apart.
            if matches!(first, Motion::Toward | Motion::Away)
                && matches!(second, Motion::Toward | Motion::Away)
            {
                continue;
            }
            motions.push((*second, random_speed(rng)));
        }
        let size = base_size(rng, g, first);
        let (mut keyframes, phases) = build_path(rng, g, &motions, size);
        if place_path(rng, g, &mut keyframes) {
            return ObjectParams {
                category: category.clone(),
                sprite: sprite.clone(),
                tint: tint.clone(),
                keyframes,
                phases,
            };
        }
    }
}

fn sample_group(rng: &mut ChaCha8Rng, assets: &AssetSet, g: Geometry) -> Vec<ObjectParams> {
    let count = rng.random_range(2..=3usize);
    let (category, _, tint) = sample_look(rng, assets, None, None);
    loop {
        let motion = *Motion::MOVING.choose(rng).expect("non-empty");
        let speed = random_speed(rng);
        let size = base_size(rng, g, motion) * 0.85;
        let (mut path, phases) = build_path(rng, g, &[(motion, speed)], size);
        // Members sit side by side across the motion, so they never overlap.
        let across = if motion.vector().1 == 0.0 && motion.vector().0 != 0.0 {
            (0.0, 1.0)
        } else {
            (1.0, 0.0)
        };
        let max_size = path.iter().map(|k| k.size).fold(0.0, f32::max);
        let spacing = max_size * 1.15;
        let mut all: Vec<Keyframe> = Vec::new();
        for i in 0..count {
            let off = (i as f32 - (count - 1) as f32 / 2.0) * spacing;
            let jitter = rng.random_range(-0.1..0.1) * spacing;
            all.extend(path.iter().map(|k| Keyframe {
                x: k.x + across.0 * off + across.1 * jitter,
                y: k.y + across.1 * off + across.0 * jitter,
                ..*k
            }));
        }
        let before = all[0];
        if !place_path(rng, g, &mut all) {
            continue;
        }
        let (dx, dy) = (all[0].x - before.x, all[0].y - before.y);
        for k in path.iter_mut() {
            k.x += dx;
            k.y += dy;
        }
        let per = path.len();
        return (0..count)
            .map(|i| {
                let (_, sprite, _) = sample_look(rng, assets, Some(&category), Some(tint.clone()));
                ObjectParams {
                    category: category.clone(),
                    sprite,
                    tint: tint.clone(),
                    keyframes: all[i * per..(i + 1) * per].to_vec(),
                    phases: phases.clone(),
                }
            })
            .collect();
    }
}

fn sample_interaction(
    rng: &mut ChaCha8Rng,
    assets: &AssetSet,
    g: Geometry,
) -> (Story, Vec<ObjectParams>) {
    let verb = *[
        Interaction::Chases,
        Interaction::Passes,
        Interaction::Meets,
        Interaction::MovesAwayFrom,
    ]
    .choose(rng)
    .expect("non-empty");
    let direction = if rng.random_bool(0.5) {
        Motion::Left
    } else {
        Motion::Right
    };
    let sign = direction.vector().0;
    let (cat_a, sprite_a, tint_a) = sample_look(rng, assets, None, None);
    let (cat_b, sprite_b, tint_b) = loop {
        let look = sample_look(rng, assets, None, None);
        if look.0 != cat_a {
            break look;
        }
    };
    let s = frame_scale(g);
    let (size_a, size_b) = (
        rng.random_range(44.0..56.0) * s,
        rng.random_range(44.0..56.0) * s,
    );
    let last = g.frames - 1;
    let secs = last as f32 / g.fps as f32;
    let contact = (size_a + size_b) / 2.0 + 4.0 * s;
    // Paths relative to B's start at x = 0; A is drawn on its own row when it must cross B.
    let row_gap = if verb == Interaction::Passes {
        0.55 * (size_a + size_b) / 2.0
    } else {
        0.0
    };
    let key = |frame, x, size| Keyframe {
        frame,
        x,
        y: 0.0,
        size,
    };
    let (a, b, phases_a, phases_b) = match verb {
        Interaction::Chases => {
            let (va, vb) = (
                rng.random_range(48.0..54.0) * s,
                rng.random_range(30.0..36.0) * s,
            );
            let gap = contact + rng.random_range(60.0..75.0) * s;
            (
                vec![
                    key(0, -sign * gap, size_a),
                    key(last, -sign * gap + sign * va * secs, size_a),
                ],
                vec![key(0, 0.0, size_b), key(last, sign * vb * secs, size_b)],
                vec![(direction, 0, last)],
                vec![(direction, 0, last)],
            )
        }
        Interaction::Passes => {
            let reach = rng.random_range(90.0..110.0) * s;
            (
                vec![
                    key(0, -sign * reach, size_a),
                    key(last, sign * reach, size_a),
                ],
                vec![key(0, 0.0, size_b), key(last, 0.0, size_b)],
                vec![(direction, 0, last)],
                vec![(Motion::Still, 0, last)],
            )
        }
        Interaction::Meets => {
            let meet = last * 3 / 4;
            let half = rng.random_range(70.0..90.0) * s;
            // A approaches from the side opposite to its direction; B comes the other way.
            let a0 = -sign * (contact / 2.0 + half);
            let b0 = sign * (contact / 2.0 + half);
            let (a1, b1) = (-sign * contact / 2.0, sign * contact / 2.0);
            (
                vec![
                    key(0, a0, size_a),
                    key(meet, a1, size_a),
                    key(last, a1, size_a),
                ],
                vec![
                    key(0, b0, size_b),
                    key(meet, b1, size_b),
                    key(last, b1, size_b),
                ],
                vec![(direction, 0, meet), (Motion::Still, meet, last)],
                vec![(direction.opposite(), 0, meet), (Motion::Still, meet, last)],
            )
        }
        Interaction::MovesAwayFrom => {
            let travel = rng.random_range(110.0..140.0) * s;
            (
                vec![
                    key(0, sign * contact, size_a),
                    key(last, sign * (contact + travel), size_a),
                ],
                vec![key(0, 0.0, size_b), key(last, 0.0, size_b)],
                vec![(direction, 0, last)],
                vec![(Motion::Still, 0, last)],
            )
        }
    };
    let mut all: Vec<Keyframe> = a
        .iter()
        .map(|k| Keyframe { y: row_gap, ..*k })
        .chain(b.iter().copied())
        .collect();
    if !place_path(rng, g, &mut all) {
        // Every interaction above spans less than the frame; fall back to centring.
        let cx = g.width as f32 / 2.0;
        for k in all.iter_mut() {
            k.x += cx;
            k.y += g.height as f32 / 2.0;
        }
    }
    let phases = |list: Vec<(Motion, u32, u32)>| {
        list.into_iter()
            .map(|(motion, start_frame, end_frame)| Phase {
                motion,
                speed: None,
                start_frame,
                end_frame,
            })
            .collect::<Vec<_>>()
    };
    let na = a.len();
    let objects = vec![
        ObjectParams {
            category: cat_a,
            sprite: sprite_a,
            tint: tint_a,
            keyframes: all[..na].to_vec(),
            phases: phases(phases_a),
        },
        ObjectParams {
            category: cat_b,
            sprite: sprite_b,
            tint: tint_b,
            keyframes: all[na..].to_vec(),
            phases: phases(phases_b),
        },
    ];
    (Story::Interaction { verb, direction }, objects)
}
