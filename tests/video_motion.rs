//! The motion descriptor on decoded video whose motion the ffmpeg CLI's filter expressions
//! define: a camera pan (a moving crop of a wider picture) and an object crossing a still,
//! textured background.
mod util;

use std::path::Path;
use std::process::Command;

use vidcap::video::motion::{BLOCKS, GRID, MOTION_DIM, OBJECT_OFFSET, motion_features};
use vidcap::video::{Resize, SampleSpec, Sampling, sample_frames};

fn make(path: &Path, inputs: &[&str], filter: &str) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-y"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    cmd.args(["-filter_complex", filter, "-t", "4", "-r", "25"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18"])
        .arg(path);
    util::video::run_ok(&mut cmd);
}

/// Motion rows of 16 frames sampled as `vidcap extract` samples them.
fn motion_of(video: &Path) -> Vec<Vec<f32>> {
    let frames = sample_frames(
        video,
        &SampleSpec {
            sampling: Sampling::Uniform { count: 16 },
            start: None,
            end: None,
            resize: Resize::ShortSide(256),
            keyframes: false,
        },
    )
    .unwrap();
    assert_eq!(frames.len(), 16);
    motion_features(&frames)
        .chunks_exact(MOTION_DIM)
        .map(<[f32]>::to_vec)
        .collect()
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// A still texture that block matching can lock onto (no two blocks alike).
const TEXTURE: &str = "nullsrc=size=640x240:rate=25,geq=lum='128+50*sin(X/7)*cos(Y/5)+40*sin((X+2*Y)/23)+20*cos(X*Y/900)':cb=128:cr=128";

#[test]
fn a_camera_pan_is_measured_at_its_speed() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("pan.mp4");
    // The 320-wide view slides right over the picture at 40 px/s, so the content moves left
    // at 40/240 frame heights per second: −1.67 in tenths of the height per second.
    make(&video, &[TEXTURE], "[0]crop=320:240:x='t*40':y=0");
    let rows = motion_of(&video);
    let pan_x = median(rows.iter().map(|r| r[1]).collect());
    let pan_y = median(rows.iter().map(|r| r[2]).collect());
    let zoom = median(rows.iter().map(|r| r[3]).collect());
    assert!((pan_x + 1.667).abs() < 0.2, "pan_x {pan_x}");
    assert!(pan_y.abs() < 0.15, "pan_y {pan_y}");
    assert!(zoom.abs() < 0.15, "zoom {zoom}");
    // Nothing moves against the camera: no block's residual is significant.
    let area: Vec<f32> = rows.iter().map(|r| r[OBJECT_OFFSET + 5]).collect();
    assert!(median(area.clone()) == 0.0, "moving area {area:?}");
    // Time runs 0 … 1 over the frames.
    assert_eq!((rows[0][0], rows[15][0]), (0.0, 1.0));
}

#[test]
fn an_object_moving_over_a_still_background_shows_in_the_residuals() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("object.mp4");
    // A 48×48 patch of another texture enters at x = 40 and moves right at 50 px/s:
    // 50/240 heights per second = 2.08 tenths of the height per second.
    make(
        &video,
        &[
            TEXTURE,
            "nullsrc=size=48x48:rate=25,geq=lum='40+4*X+2*Y+30*sin(X*Y/40)':cb=90:cr=200",
        ],
        "[0]crop=320:240:0:0[bg];[bg][1]overlay=x='40+t*50':y=96",
    );
    let rows = motion_of(&video);
    let camera: Vec<f32> = rows.iter().map(|r| r[1].abs().max(r[2].abs())).collect();
    assert!(median(camera.clone()) < 0.15, "camera moved: {camera:?}");
    // The blocks that move against the background move right at the patch's speed, and
    // only the patch's rows of blocks move.
    let moving: Vec<(usize, f32, f32)> = rows
        .iter()
        .flat_map(|r| {
            (0..BLOCKS)
                .filter(|&b| r[4 + 2 * BLOCKS + b] > 1.0)
                .map(|b| (b, r[4 + b], r[4 + BLOCKS + b]))
        })
        .collect();
    let frames_with_motion = rows.iter().filter(|r| r[OBJECT_OFFSET + 5] > 0.0).count();
    assert!(frames_with_motion >= 12, "{frames_with_motion}: {moving:?}");
    let vx = median(moving.iter().map(|v| v.1).collect());
    let vy = median(moving.iter().map(|v| v.2).collect());
    assert!(
        (vx - 2.08).abs() < 0.3,
        "moving blocks' x velocity {vx}: {moving:?}"
    );
    assert!(vy.abs() < 0.3, "moving blocks' y velocity {vy}");
    // The patch spans y 96..144 of 240: cell rows 3 and 4 of 8 (30-pixel rows).
    let in_rows = moving
        .iter()
        .filter(|v| (3..=4).contains(&(v.0 / GRID)))
        .count();
    assert!(in_rows * 10 >= moving.len() * 9, "{moving:?}");
    // The summary: something at y ≈ 120/240 − 0.5 = 0 moving right, not growing.
    let summary = |k: usize| median(rows.iter().map(|r| r[OBJECT_OFFSET + k]).collect());
    assert!(summary(1).abs() < 0.1, "object y {}", summary(1));
    assert!((summary(2) - 2.08).abs() < 0.4, "object vx {}", summary(2));
    // Blocks on the patch's upper and lower edges half match the background and pull the
    // mean a little off the horizontal.
    assert!(summary(3).abs() < 0.7, "object vy {}", summary(3));
    assert!(summary(4).abs() < 0.5, "expansion {}", summary(4));
    assert!(summary(5) > 0.0 && summary(5) < 0.1, "area {}", summary(5));
}
