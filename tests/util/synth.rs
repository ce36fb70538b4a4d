//! Shared helpers of the synth tests: reading a caption's claims with a keyword table that
//! is independent of the generator's grammar, and measuring trajectories.
use vidcap::synth::scene::{ClipParams, Keyframe, ObjectParams};

/// Directions a caption claims, in the order they appear (camera clause removed).
pub fn claimed_motions(caption: &str) -> Vec<&'static str> {
    let text = object_part(caption);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let rest = words[i..].join(" ");
        let starts = |options: &[&str]| {
            options
                .iter()
                .find(|o| rest.starts_with(*o))
                .map(|o| o.split_whitespace().count())
        };
        let hit = if let Some(n) = starts(&[
            "toward the camera",
            "toward the viewer",
            "approaches the camera",
            "approach the camera",
            "closer",
        ]) {
            Some(("toward", n))
        } else if let Some(n) = starts(&[
            "away from the camera",
            "away from the viewer",
            "farther away",
            "recede",
            "shrink",
        ]) {
            Some(("away", n))
        } else {
            match words[i] {
                "left" => Some(("left", 1)),
                "right" => Some(("right", 1)),
                "up" | "upward" | "rises" | "rise" => Some(("up", 1)),
                "down" | "downward" | "sinks" | "sink" => Some(("down", 1)),
                _ => None,
            }
        };
        match hit {
            Some((m, n)) => {
                found.push(m);
                i += n;
            }
            None => i += 1,
        }
    }
    found
}

/// Speeds a caption claims, in order.
pub fn claimed_speeds(caption: &str) -> Vec<&'static str> {
    let text = object_part(caption);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        match *w {
            "slowly" | "gently" => out.push("slow"),
            "slow" if words.get(i + 1) == Some(&"pace") => out.push("slow"),
            "quickly" | "rapidly" | "fast" => out.push("fast"),
            _ => {}
        }
    }
    out
}

/// The camera motion a caption claims: "pan_left", "zoom_in", … or "static".
pub fn claimed_camera(caption: &str) -> &'static str {
    let cam = camera_part(caption);
    match () {
        _ if cam.contains("pans left")
            || cam.contains("pans to the left")
            || cam.contains("panning left") =>
        {
            "pan_left"
        }
        _ if cam.contains("pans right")
            || cam.contains("pans to the right")
            || cam.contains("panning right") =>
        {
            "pan_right"
        }
        _ if cam.contains("zooms in") || cam.contains("zooming in") => "zoom_in",
        _ if cam.contains("zooms out") || cam.contains("zooming out") => "zoom_out",
        _ => "static",
    }
}

fn camera_start(caption: &str) -> Option<usize> {
    [
        "the camera pans",
        "the camera panning",
        "the camera zooms",
        "the camera zooming",
    ]
    .iter()
    .filter_map(|p| caption.find(p))
    .min()
}

/// The caption without its camera clause.
pub fn object_part(caption: &str) -> String {
    match camera_start(caption) {
        Some(i) => {
            let head = caption[..i].trim_end();
            // drop the connective ("while", "as", "with") before "the camera"
            match head.rsplit_once(' ') {
                Some((h, _)) => h.to_string(),
                None => String::new(),
            }
        }
        None => caption.to_string(),
    }
}

pub fn camera_part(caption: &str) -> String {
    camera_start(caption)
        .map(|i| caption[i..].to_string())
        .unwrap_or_default()
}

/// Measured motion between two keyframes, classified with thresholds of the test's own:
/// depth when the size changes by more than 25%, else the dominant screen axis.
pub fn measured_motion(a: &Keyframe, b: &Keyframe) -> &'static str {
    let ratio = b.size / a.size;
    if ratio > 1.25 {
        "toward"
    } else if ratio < 1.0 / 1.25 {
        "away"
    } else {
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        if dx.abs() < 1.0 && dy.abs() < 1.0 {
            "still"
        } else if dx.abs() >= dy.abs() {
            if dx < 0.0 { "left" } else { "right" }
        } else if dy < 0.0 {
            "up"
        } else {
            "down"
        }
    }
}

/// "slow" or "fast": screen speed over 30 px/s (320x240 frame), or size growth over 30%/s.
pub fn measured_speed(a: &Keyframe, b: &Keyframe, fps: u32) -> &'static str {
    let seconds = (b.frame - a.frame) as f32 / fps as f32;
    let ratio = (b.size / a.size).max(a.size / b.size);
    let fast = if ratio > 1.25 {
        ratio.powf(1.0 / seconds) > 1.3
    } else {
        ((b.x - a.x).hypot(b.y - a.y) / seconds) > 30.0
    };
    if fast { "fast" } else { "slow" }
}

pub fn first_last(o: &ObjectParams) -> (Keyframe, Keyframe) {
    (o.keyframes[0], *o.keyframes.last().unwrap())
}

pub fn x_at(o: &ObjectParams, frame: u32) -> f32 {
    o.at(frame).0
}

pub fn last_frame(p: &ClipParams) -> u32 {
    p.geometry.frames - 1
}

/// x264 prints its settings and statistics at FFmpeg's default log level.
pub fn quiet_ffmpeg() {
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
}
