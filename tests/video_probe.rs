//! `video::probe` against ffprobe on fixtures made at test time and on real footage.
mod util;

use std::path::Path;

use util::video::{ffprobe, ffprobe_frame_pts, fixture, parse_rate, real_sample};
use vidcap::video;

fn check_against_ffprobe(path: &Path) {
    let info = video::probe(path).unwrap_or_else(|e| panic!("probe: {e}"));
    let (s, format) = ffprobe(path);
    let ccw = s["side_data_list"]
        .as_array()
        .and_then(|l| l.iter().find_map(|d| d["rotation"].as_f64()))
        .unwrap_or(0.0);
    // ffprobe reports the display matrix angle counter-clockwise; ours is clockwise.
    let rotation = ((-ccw / 90.0).round() as i64).rem_euclid(4) as i32 * 90;
    assert_eq!(info.rotation, rotation, "{}: rotation", path.display());
    let (w, h) = (
        s["width"].as_u64().unwrap() as u32,
        s["height"].as_u64().unwrap() as u32,
    );
    let expect = if rotation % 180 == 0 { (w, h) } else { (h, w) };
    assert_eq!(
        (info.width, info.height),
        expect,
        "{}: size",
        path.display()
    );
    assert_eq!(
        info.codec,
        s["codec_name"].as_str().unwrap(),
        "{}: codec",
        path.display()
    );
    assert_eq!(
        info.pixel_format,
        s["pix_fmt"].as_str().unwrap(),
        "{}: pix_fmt",
        path.display()
    );
    let rate = if s["avg_frame_rate"] == "0/0" {
        &s["r_frame_rate"]
    } else {
        &s["avg_frame_rate"]
    };
    assert!(
        (info.fps - parse_rate(rate)).abs() < 1e-6,
        "{}: fps {} vs {rate}",
        path.display(),
        info.fps
    );
    // Duration: the video stream's own, else the container's.
    let duration = s["duration"]
        .as_str()
        .or_else(|| {
            s["tags"]["DURATION"]
                .as_str()
                .map(|_| format["duration"].as_str().unwrap())
        })
        .or_else(|| format["duration"].as_str())
        .unwrap()
        .parse::<f64>()
        .unwrap();
    assert!(
        (info.duration_s - duration).abs() < 2e-3,
        "{}: duration {} vs {duration}",
        path.display(),
        info.duration_s
    );
    let frames = ffprobe_frame_pts(path).len() as i64;
    match s["nb_frames"].as_str() {
        Some(n) => assert_eq!(
            info.frame_count_estimate,
            n.parse::<u64>().unwrap(),
            "{}: nb_frames",
            path.display()
        ),
        None => assert!(
            (info.frame_count_estimate as i64 - frames).abs() <= 1,
            "{}: estimate {} vs {frames} frames",
            path.display(),
            info.frame_count_estimate
        ),
    }
}

#[test]
fn probe_agrees_with_ffprobe_on_fixtures() {
    for name in [
        "h264", "tiny16", "single", "odd", "10bit", "gray", "vfr", "rotated",
    ] {
        check_against_ffprobe(&fixture(name));
    }
}

#[test]
fn probe_reports_rotation_and_display_size() {
    let info = video::probe(&fixture("rotated")).unwrap();
    assert!(
        info.rotation == 90 || info.rotation == 270,
        "rotation {}",
        info.rotation
    );
    assert_eq!((info.width, info.height), (240, 320));
}

#[test]
fn probe_agrees_with_ffprobe_on_real_footage() {
    for name in [
        "vtest.avi",
        "bikes.mp4",
        "bigbuckbunny.mp4",
        "Megamind_bugy.avi",
    ] {
        if let Some(p) = real_sample(name) {
            check_against_ffprobe(&p);
        }
    }
}
