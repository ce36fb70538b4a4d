//! Shot-boundary detection on videos whose cuts are known by construction (ffmpeg concat
//! of different lavfi sources).
use std::path::Path;
use std::process::Command;

use vidcap::video::scene::{CutOptions, SCAN_FPS, detect_cuts};

fn make_video(path: &Path, filter: &str, inputs: &[&str]) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    cmd.args([
        "-filter_complex",
        filter,
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "250",
    ]);
    cmd.arg(path);
    let status = cmd
        .status()
        .expect("ffmpeg (the tests' reference) must be installed");
    assert!(status.success(), "ffmpeg failed to make {}", path.display());
}

#[test]
fn cuts_are_found_where_the_shots_change() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("three_shots.mp4");
    make_video(
        &video,
        "[0][1][2]concat=n=3:v=1[v]; [v]format=yuv420p",
        &[
            "testsrc2=size=320x240:rate=25:duration=3",
            "smptebars=size=320x240:rate=25:duration=3",
            "mandelbrot=size=320x240:rate=25,trim=duration=3",
        ],
    );
    let cuts = detect_cuts(&video, &CutOptions::default()).unwrap();
    assert_eq!(cuts.len(), 2, "cuts at {cuts:?}");
    for (cut, expected) in cuts.iter().zip([3.0, 6.0]) {
        assert!(
            (cut - expected).abs() <= 1.0 / SCAN_FPS + 0.05,
            "cut at {cut}, expected {expected}"
        );
    }
}

#[test]
fn one_moving_shot_has_no_cut() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("one_shot.mp4");
    make_video(
        &video,
        "[0]format=yuv420p",
        &["testsrc2=size=320x240:rate=25:duration=6"],
    );
    let cuts = detect_cuts(&video, &CutOptions::default()).unwrap();
    assert!(cuts.is_empty(), "spurious cuts at {cuts:?}");
}
