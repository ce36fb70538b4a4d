//! The written files are real H.264 MP4 (checked with ffprobe), and what a caption says is
//! visible in the DECODED frames (decoded by the ffmpeg CLI, an independent decoder path):
//! the sprite, found by difference from the clean background, moves the stated way.
mod util;

use std::path::Path;
use std::process::Command;

use image::RgbImage;
use util::synth::*;
use vidcap::synth::scene::{Motion, Story};
use vidcap::synth::{self, AssetSet, ClipParams, ClipRenderer, CorpusConfig, Geometry};

const G: Geometry = Geometry {
    width: 320,
    height: 240,
    fps: 25,
    frames: 40,
};

fn config() -> CorpusConfig {
    CorpusConfig {
        clips: 0,
        compositional_clips: 0,
        seed: 21,
        geometry: G,
    }
}

/// The first planned clip matching `want`.
fn find_clip(assets: &AssetSet, want: impl Fn(&ClipParams) -> bool) -> (ClipParams, Vec<String>) {
    (0..500)
        .map(|i| synth::plan_clip(assets, &config(), false, i).unwrap())
        .find(|(p, _)| want(p))
        .expect("a matching clip among the first 500")
}

fn decode_rgb(path: &Path) -> Vec<RgbImage> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .expect("ffmpeg CLI on PATH");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frame = (G.width * G.height * 3) as usize;
    assert_eq!(out.stdout.len() % frame, 0);
    out.stdout
        .chunks_exact(frame)
        .map(|c| RgbImage::from_raw(G.width, G.height, c.to_vec()).unwrap())
        .collect()
}

fn probe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .arg(path)
        .output()
        .expect("ffprobe on PATH");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Centroid and area of the pixels that differ from the clean background.
fn sprite_blob(frame: &RgbImage, background: &RgbImage) -> (f32, f32, usize) {
    let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
    for (x, y, p) in frame.enumerate_pixels() {
        let q = background.get_pixel(x, y);
        let diff: i32 = (0..3).map(|c| (p[c] as i32 - q[c] as i32).abs()).sum();
        if diff > 90 {
            sx += x as f32;
            sy += y as f32;
            n += 1;
        }
    }
    assert!(n > 20, "sprite not found in the decoded frame");
    (sx / n as f32, sy / n as f32, n)
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

/// NAL unit types of every slice and parameter set, as FFmpeg's `trace_headers` reads them.
fn nal_unit_types(path: &Path) -> Vec<u32> {
    let out = Command::new("ffmpeg")
        .args(["-v", "trace", "-i"])
        .arg(path)
        .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("nal_unit_type"))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect()
}

#[test]
fn every_keyframe_is_an_idr_frame_so_players_can_seek_to_it() {
    quiet_ffmpeg();
    let assets = AssetSet::procedural();
    let dir = tempfile::tempdir().unwrap();
    let (params, _) = find_clip(&assets, |p| p.story == Story::Single);
    let path = dir.path().join("clip.mp4");
    synth::write_clip(&assets, &params, &path).unwrap();
    let Geometry { frames, fps, .. } = config().geometry;
    // One keyframe a second (at 0 s, 1 s, …), each an IDR slice (NAL type 5), none an open-GOP
    // I slice that a player cannot start decoding at.
    let keyframes = frames.div_ceil(fps);
    assert!(
        keyframes >= 2,
        "the clip must be long enough to have a second keyframe"
    );
    let idr = nal_unit_types(&path).iter().filter(|&&t| t == 5).count();
    assert_eq!(
        idr as u32, keyframes,
        "IDR frames in a clip of {frames} frames at {fps} fps"
    );
}

#[test]
fn written_clip_is_h264_mp4_and_the_sprite_moves_as_captioned() {
    quiet_ffmpeg();
    let assets = AssetSet::procedural();
    let dir = tempfile::tempdir().unwrap();
    // A translation, and a motion in depth.
    for (name, want) in [
        (
            "translation",
            Box::new(|p: &ClipParams| {
                p.story == Story::Single
                    && matches!(
                        p.objects[0].phases[0].motion,
                        Motion::Left | Motion::Right | Motion::Up | Motion::Down
                    )
            }) as Box<dyn Fn(&ClipParams) -> bool>,
        ),
        (
            "depth",
            Box::new(|p: &ClipParams| {
                p.story == Story::Single && p.objects[0].phases[0].motion == Motion::Toward
            }),
        ),
    ] {
        let (params, captions) = find_clip(&assets, want);
        let path = dir.path().join(format!("{name}.mp4"));
        synth::write_clip(&assets, &params, &path).unwrap();

        let info = probe(&path);
        let stream = &info["streams"][0];
        assert_eq!(stream["codec_name"], "h264");
        assert_eq!(stream["pix_fmt"], "yuv420p");
        assert_eq!(stream["width"], 320);
        assert_eq!(stream["height"], 240);
        assert_eq!(stream["r_frame_rate"], "25/1");
        assert_eq!(stream["nb_frames"], "40");
        assert!(
            info["format"]["format_name"]
                .as_str()
                .unwrap()
                .contains("mp4")
        );
        let duration: f64 = info["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((duration - 1.6).abs() < 0.05, "duration {duration}");

        let frames = decode_rgb(&path);
        assert_eq!(frames.len(), 40);
        let renderer = ClipRenderer::new(&params, &assets).unwrap();
        let mut clean = RgbImage::new(G.width, G.height);
        let mut rendered = RgbImage::new(G.width, G.height);
        let mut blobs = Vec::new();
        for f in [0u32, 39] {
            renderer.render(f, &mut rendered);
            let q = psnr(&rendered, &frames[f as usize]);
            assert!(
                q > 28.0,
                "{name}: decoded frame {f} is {q:.1} dB from the render"
            );
            renderer.render_background(f, &mut clean);
            blobs.push(sprite_blob(&frames[f as usize], &clean));
        }
        let ((x0, y0, a0), (x1, y1, a1)) = (blobs[0], blobs[1]);
        let object = &params.objects[0];
        // The blob sits where the trajectory says.
        for (f, (x, y, _)) in [(0u32, blobs[0]), (39, blobs[1])] {
            let (kx, ky, size) = object.at(f);
            assert!(
                (x - kx).abs() < 0.2 * size && (y - ky).abs() < 0.2 * size,
                "{name}: frame {f}: blob at ({x:.0},{y:.0}), trajectory ({kx:.0},{ky:.0})"
            );
        }
        // And moves the way every caption says.
        for c in &captions {
            let claims = claimed_motions(c);
            assert_eq!(claims.len(), 1, "{c}");
            let ok = match claims[0] {
                "left" => x1 < x0 - 15.0,
                "right" => x1 > x0 + 15.0,
                "up" => y1 < y0 - 15.0,
                "down" => y1 > y0 + 15.0,
                "toward" => a1 as f32 > 1.3 * a0 as f32,
                "away" => (a1 as f32) < a0 as f32 / 1.3,
                other => panic!("unexpected claim {other}"),
            };
            assert!(
                ok,
                "{name}: {c:?} but the decoded sprite went ({x0:.0},{y0:.0},{a0}) -> ({x1:.0},{y1:.0},{a1})"
            );
        }
    }
}
