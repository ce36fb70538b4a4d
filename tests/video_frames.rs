//! Frame sampling against the ffmpeg CLI (`ffmpeg -ss`) and ffprobe's frame timestamps.
mod util;

use std::path::Path;

use util::video::{
    ffmpeg_frame_at, ffmpeg_frame_rotated, ffprobe_frame_pts, fixture, psnr, real_sample,
};
use vidcap::video::{self, Frame, Resize, SampleSpec, Sampling};

/// The frame the contract keeps for target t: the first with pts >= t, else the last.
fn expected_pts(all: &[f64], t: f64) -> f64 {
    let mut sorted = all.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .iter()
        .copied()
        .find(|&p| p >= t - 1e-6)
        .unwrap_or(*sorted.last().unwrap())
}

fn spec(sampling: Sampling, resize: Resize) -> SampleSpec {
    SampleSpec {
        sampling,
        start: None,
        end: None,
        resize,
        keyframes: false,
    }
}

/// Each frame is the one ffprobe's timestamps say, and looks like `ffmpeg -ss pts` scaled
/// the same way (PSNR >= 35 dB).
fn check_frames(path: &Path, frames: &[Frame], targets: &[f64]) {
    let info = video::probe(path).unwrap();
    let all = ffprobe_frame_pts(path);
    assert_eq!(
        frames.len(),
        targets.len(),
        "{}: frame count",
        path.display()
    );
    for (i, (frame, &t)) in frames.iter().zip(targets).enumerate() {
        assert_eq!(frame.index, i);
        let want = expected_pts(&all, t);
        assert!(
            (frame.pts - want).abs() < 1e-6,
            "{}: target {t}: pts {} but ffprobe's first frame at/after it is {want}",
            path.display(),
            frame.pts
        );
        assert_eq!(frame.rgb.len(), (frame.width * frame.height * 3) as usize);
        // Seek a hair before the pts so `-ss` keeps exactly this frame.
        let scaled = (frame.width, frame.height) != (info.width, info.height);
        let rotation = if scaled { info.rotation } else { 0 };
        let t_ref = (want - 1e-4).max(0.0);
        let reference = ffmpeg_frame_rotated(path, t_ref, frame.width, frame.height, rotation);
        let db = psnr(&frame.rgb, &reference);
        assert!(
            db >= 35.0,
            "{}: frame at {want}s: PSNR {db:.1} dB vs ffmpeg",
            path.display()
        );
    }
    for pair in frames.windows(2) {
        assert!(
            pair[0].pts <= pair[1].pts,
            "{}: pts out of order",
            path.display()
        );
    }
}

fn uniform_targets(info: &video::VideoInfo, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    (0..n)
        .map(|i| info.start_time_s + lo + (i as f64 + 0.5) * (hi - lo) / n as f64)
        .collect()
}

fn check_uniform(path: &Path, n: usize, resize: Resize) {
    let info = video::probe(path).unwrap();
    let frames = video::sample_frames(path, &spec(Sampling::Uniform { count: n }, resize))
        .unwrap_or_else(|e| panic!("{e}"));
    check_frames(
        path,
        &frames,
        &uniform_targets(&info, n, 0.0, info.duration_s),
    );
    let (w, h) = match resize {
        Resize::Native => (info.width, info.height),
        Resize::ShortSide(s) => {
            let (short, long) = (info.width.min(info.height), info.width.max(info.height));
            let long = (u64::from(s) * u64::from(long) / u64::from(short)) as u32;
            if info.width <= info.height {
                (s, long)
            } else {
                (long, s)
            }
        }
    };
    for f in &frames {
        assert_eq!(
            (f.width, f.height),
            (w, h),
            "{}: frame size",
            path.display()
        );
    }
}

#[test]
fn uniform_frames_match_ffmpeg_scaled() {
    for name in ["h264", "tiny16", "odd", "10bit", "gray", "vfr", "rotated"] {
        check_uniform(&fixture(name), 5, Resize::ShortSide(256));
    }
}

#[test]
fn uniform_frames_match_ffmpeg_native_size() {
    for name in ["h264", "odd", "rotated"] {
        check_uniform(&fixture(name), 3, Resize::Native);
    }
}

#[test]
fn single_frame_video_gives_that_frame_for_every_target() {
    let path = fixture("single");
    let frames =
        video::sample_frames(&path, &spec(Sampling::Uniform { count: 3 }, Resize::Native)).unwrap();
    assert_eq!(frames.len(), 3);
    let reference = ffmpeg_frame_at(&path, 0.0, 64, 48);
    for f in &frames {
        assert_eq!(f.pts, ffprobe_frame_pts(&path)[0]);
        assert!(psnr(&f.rgb, &reference) >= 35.0);
    }
}

#[test]
fn every_frame_matches_ffprobe_timestamps() {
    for name in ["h264", "vfr", "gray"] {
        let path = fixture(name);
        let frames =
            video::sample_frames(&path, &spec(Sampling::Every, Resize::ShortSide(32))).unwrap();
        let pts: Vec<f64> = frames.iter().map(|f| f.pts).collect();
        let want = ffprobe_frame_pts(&path);
        assert_eq!(pts.len(), want.len(), "{name}: count");
        for (a, b) in pts.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{name}: {a} vs {b}");
        }
        assert!(frames.iter().enumerate().all(|(i, f)| f.index == i));
    }
}

#[test]
fn fixed_fps_sampling_over_a_window() {
    let path = fixture("h264");
    let s = SampleSpec {
        sampling: Sampling::Fps { fps: 5.0 },
        start: Some(1.0),
        end: Some(3.0),
        resize: Resize::ShortSide(64),
        keyframes: false,
    };
    let frames = video::sample_frames(&path, &s).unwrap();
    let targets: Vec<f64> = (0..10).map(|k| 1.0 + k as f64 / 5.0).collect();
    check_frames(&path, &frames, &targets);
}

#[test]
fn uniform_sampling_over_a_window() {
    let path = fixture("vfr");
    let info = video::probe(&path).unwrap();
    let s = SampleSpec {
        sampling: Sampling::Uniform { count: 6 },
        start: Some(1.5),
        end: Some(2.7),
        resize: Resize::ShortSide(64),
        keyframes: false,
    };
    let frames = video::sample_frames(&path, &s).unwrap();
    check_frames(&path, &frames, &uniform_targets(&info, 6, 1.5, 2.7));
}

/// Seeking (sparse targets) and decoding straight through (every frame) must give the
/// very same pixels: no drift from the seek, the flush or skipped non-reference frames.
#[test]
fn seeking_and_decoding_through_give_identical_frames() {
    let path = fixture("h264");
    let every = video::sample_frames(&path, &spec(Sampling::Every, Resize::ShortSide(64))).unwrap();
    let sparse = video::sample_frames(
        &path,
        &spec(Sampling::Uniform { count: 4 }, Resize::ShortSide(64)),
    )
    .unwrap();
    for f in &sparse {
        let same = every
            .iter()
            .find(|g| g.pts == f.pts)
            .expect("pts among all frames");
        assert_eq!(same.rgb, f.rgb, "frame at {}s differs", f.pts);
    }
}

#[test]
fn streaming_form_matches_collected_form() {
    let path = fixture("h264");
    let s = spec(Sampling::Uniform { count: 7 }, Resize::ShortSide(48));
    let mut streamed = Vec::new();
    let info = video::for_each_frame(&path, &s, |f| {
        streamed.push(f);
        Ok(())
    })
    .unwrap();
    assert_eq!(info, video::probe(&path).unwrap());
    assert_eq!(streamed, video::sample_frames(&path, &s).unwrap());
}

#[test]
fn more_targets_than_frames_repeat_frames_in_order() {
    let path = fixture("tiny16"); // 25 frames
    let frames = video::sample_frames(
        &path,
        &spec(Sampling::Uniform { count: 40 }, Resize::Native),
    )
    .unwrap();
    check_frames(
        &path,
        &frames,
        &uniform_targets(&video::probe(&path).unwrap(), 40, 0.0, 1.0),
    );
}

#[test]
fn corrupt_packets_are_skipped_and_decoding_goes_on() {
    let path = fixture("corrupt");
    let frames = video::sample_frames(
        &path,
        &spec(Sampling::Uniform { count: 8 }, Resize::ShortSide(64)),
    )
    .unwrap();
    assert_eq!(frames.len(), 8);
    // The undamaged first and last parts still match ffmpeg.
    let all = ffprobe_frame_pts(&path);
    for f in [&frames[0], &frames[7]] {
        let reference = ffmpeg_frame_at(&path, (f.pts - 1e-4).max(0.0), f.width, f.height);
        assert!(psnr(&f.rgb, &reference) >= 35.0);
        assert!(all.iter().any(|&p| (p - f.pts).abs() < 1e-6));
    }
}

#[test]
fn short_side_resize_truncates_the_long_side() {
    assert_eq!(Resize::ShortSide(256).apply(640, 481), (340, 256));
    assert_eq!(Resize::ShortSide(256).apply(1280, 720), (455, 256));
    assert_eq!(Resize::ShortSide(256).apply(201, 333), (256, 424));
    assert_eq!(Resize::Native.apply(333, 201), (333, 201));
}

#[test]
fn real_footage_frames_match_ffmpeg() {
    for name in [
        "vtest.avi",
        "bikes.mp4",
        "bigbuckbunny.mp4",
        "Megamind_bugy.avi",
    ] {
        if let Some(p) = real_sample(name) {
            check_uniform(&p, 4, Resize::ShortSide(256));
        }
    }
}

/// A raw H.264 stream has no duration and no timestamps: the duration comes from counting
/// packets, frame times from counting frames; the frames match the same clip in MP4.
#[test]
fn raw_stream_without_timestamps_or_duration() {
    let raw = fixture("raw_h264");
    let mp4 = fixture("h264");
    let info = video::probe(&raw).unwrap();
    assert!(
        (info.duration_s - 4.0).abs() < 1e-6,
        "duration {}",
        info.duration_s
    );
    assert_eq!(
        info.frame_count_estimate,
        ffprobe_frame_pts(&mp4).len() as u64
    );
    let frames =
        video::sample_frames(&raw, &spec(Sampling::Uniform { count: 4 }, Resize::Native)).unwrap();
    let all = ffprobe_frame_pts(&mp4);
    for (i, f) in frames.iter().enumerate() {
        let want = expected_pts(&all, (i as f64 + 0.5) * 1.0);
        assert!((f.pts - want).abs() < 1e-6, "pts {} vs {want}", f.pts);
        let reference = ffmpeg_frame_at(&mp4, want - 1e-4, f.width, f.height);
        assert!(psnr(&f.rgb, &reference) >= 35.0);
    }
}

/// Keyframe sampling: every frame is a keyframe by ffprobe (`-skip_frame nokey`), the one
/// nearest its target, pixel for pixel the frame decoding straight through gives, and what
/// `ffmpeg -ss` shows there.
#[test]
fn keyframe_sampling_takes_the_nearest_keyframe() {
    let path = fixture("h264"); // 4 s at 25 fps, a keyframe every second
    let info = video::probe(&path).unwrap();
    let keys = util::video::ffprobe_keyframe_pts(&path);
    assert!(keys.len() >= 4, "keyframes {keys:?}");
    let mut s = spec(Sampling::Uniform { count: 8 }, Resize::ShortSide(64));
    s.keyframes = true;
    let frames = video::sample_frames(&path, &s).unwrap();
    let every = video::sample_frames(&path, &spec(Sampling::Every, Resize::ShortSide(64))).unwrap();
    for (frame, t) in frames
        .iter()
        .zip(uniform_targets(&info, 8, 0.0, info.duration_s))
    {
        assert!(
            keys.iter().any(|k| (k - frame.pts).abs() < 1e-6),
            "target {t}: pts {} is not a keyframe ({keys:?})",
            frame.pts
        );
        let best = keys
            .iter()
            .map(|k| (k - t).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(
            (frame.pts - t).abs() <= best + 1e-6,
            "target {t}: keyframe {} is not the nearest ({keys:?})",
            frame.pts
        );
        let same = every
            .iter()
            .find(|g| g.pts == frame.pts)
            .expect("among all frames");
        assert_eq!(same.rgb, frame.rgb, "keyframe at {}s differs", frame.pts);
        let reference = ffmpeg_frame_at(
            &path,
            (frame.pts - 1e-4).max(0.0),
            frame.width,
            frame.height,
        );
        let db = psnr(&frame.rgb, &reference);
        assert!(
            db >= 35.0,
            "keyframe at {}s: PSNR {db:.1} dB vs ffmpeg",
            frame.pts
        );
    }
    // Eight targets over four keyframes: some repeat, in order, with their own indices.
    let distinct: std::collections::BTreeSet<u64> =
        frames.iter().map(|f| f.pts.to_bits()).collect();
    assert!(distinct.len() < frames.len());
    assert!(frames.windows(2).all(|w| w[0].pts <= w[1].pts));
    assert!(frames.iter().enumerate().all(|(i, f)| f.index == i));
}

/// A keyframe inside the window wins over a nearer one outside it; a window without a
/// keyframe takes the nearest one anyway.
#[test]
fn keyframe_sampling_prefers_keyframes_inside_the_window() {
    let path = fixture("h264");
    let keys = util::video::ffprobe_keyframe_pts(&path); // 0, 1, 2, 3 s
    let window = |count: usize, start: f64, end: f64| -> Vec<f64> {
        let mut s = spec(Sampling::Uniform { count }, Resize::ShortSide(64));
        (s.start, s.end, s.keyframes) = (Some(start), Some(end), true);
        video::sample_frames(&path, &s)
            .unwrap()
            .iter()
            .map(|f| f.pts)
            .collect()
    };
    let near = |got: &[f64], want: &[f64]| {
        got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6)
    };
    // [1.0, 1.98), targets 1.245 and 1.735: 2 s is nearer the second but outside.
    let got = window(2, 1.0, 1.98);
    assert!(near(&got, &[keys[1], keys[1]]), "{got:?}");
    // [1.3, 2.1), targets 1.5 and 1.9: 2 s inside, nearest to the second.
    let got = window(2, 1.3, 2.1);
    assert!(near(&got, &[keys[2], keys[2]]), "{got:?}");
    // [1.55, 1.95), target 1.75: no keyframe inside; 2 s, the nearest.
    let got = window(1, 1.55, 1.95);
    assert!(near(&got, &[keys[2]]), "{got:?}");
    // [0.0, 0.5), target 0.25: the first keyframe, though MP4 indexes it at its decode
    // time, before the window's start.
    let got = window(1, 0.0, 0.5);
    assert!(near(&got, &[keys[0]]), "{got:?}");
}

/// Without a seek index (raw H.264) keyframe sampling falls back to exact frames; every-frame
/// sampling has no keyframe form.
#[test]
fn keyframe_sampling_without_an_index_is_exact() {
    let path = fixture("raw_h264");
    let mut s = spec(Sampling::Uniform { count: 3 }, Resize::ShortSide(64));
    let exact = video::sample_frames(&path, &s).unwrap();
    s.keyframes = true;
    let frames = video::sample_frames(&path, &s).unwrap();
    assert_eq!(frames.len(), exact.len());
    for (a, b) in frames.iter().zip(&exact) {
        assert_eq!((a.pts, &a.rgb), (b.pts, &b.rgb));
    }
    let mut every = spec(Sampling::Every, Resize::ShortSide(64));
    every.keyframes = true;
    let err = video::sample_frames(&fixture("h264"), &every).unwrap_err();
    assert!(err.to_string().contains("keyframe"), "{err}");
}
