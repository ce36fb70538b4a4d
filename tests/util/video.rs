//! Shared helpers of the video tests: fixtures made with the ffmpeg CLI at test time, and
//! ffprobe/ffmpeg as the reference.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

fn fixture_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn ffmpeg(args: &[&str]) {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-y"]).args(args);
    run_ok(&mut cmd);
}

fn lavfi(size: &str, rate: &str, duration: &str) -> String {
    format!("testsrc2=size={size}:rate={rate}:duration={duration}")
}

/// A fixture video by name, made once per test binary with the ffmpeg CLI.
#[rustfmt::skip]
pub fn fixture(name: &str) -> PathBuf {
    static MADE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let made = MADE.get_or_init(Default::default);
    let mut made = made.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = made.get(name) {
        return p.clone();
    }
    let dir = fixture_dir();
    let h264 = |file: &str, size: &str, rate: &str, dur: &str, extra: &[&str]| {
        let out = dir.join(file);
        let src = lavfi(size, rate, dur);
        let mut args = vec!["-f", "lavfi", "-i", &src];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25"]);
        let out_s = out.to_str().unwrap().to_string();
        args.push(&out_s);
        ffmpeg(&args);
        out
    };
    let path = match name {
        // 4 s, 25 fps, keyframe every second: seeks and decode-through both happen.
        "h264" => h264("h264.mp4", "320x240", "25", "4", &[]),
        "tiny16" => h264("tiny16.mp4", "16x16", "25", "1", &[]),
        "single" => h264("single.mp4", "64x48", "25", "1", &["-frames:v", "1"]),
        "odd" => {
            let out = dir.join("odd_333x201.mkv");
            ffmpeg(&[
                "-f", "lavfi", "-i", &lavfi("334x202", "25", "2"), "-vf", "scale=333:201",
                "-c:v", "ffv1", "-pix_fmt", "yuv420p", out.to_str().unwrap(),
            ]);
            out
        }
        "10bit" => {
            let out = dir.join("high10.mp4");
            ffmpeg(&[
                "-f", "lavfi", "-i", &lavfi("320x240", "25", "2"), "-c:v", "libx264",
                "-pix_fmt", "yuv420p10le", out.to_str().unwrap(),
            ]);
            out
        }
        "gray" => {
            let out = dir.join("gray.mkv");
            ffmpeg(&[
                "-f", "lavfi", "-i", &lavfi("160x120", "25", "2"), "-c:v", "ffv1",
                "-pix_fmt", "gray", out.to_str().unwrap(),
            ]);
            out
        }
        // 10 fps for 2 s, then 50 fps.
        "vfr" => {
            let out = dir.join("vfr.mp4");
            ffmpeg(&[
                "-f", "lavfi", "-i", &lavfi("160x120", "50", "3"), "-vf",
                "setpts='if(lt(N,20),N*0.1,2+(N-20)*0.02)/TB'", "-fps_mode", "vfr",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", out.to_str().unwrap(),
            ]);
            out
        }
        // The display matrix written from the legacy rotate tag (ffmpeg 5.1).
        "rotated" => {
            let src = fixture_locked(&mut made, "h264");
            let out = dir.join("rotated.mp4");
            ffmpeg(&[
                "-i", src.to_str().unwrap(), "-c", "copy", "-metadata:s:v", "rotate=90",
                out.to_str().unwrap(),
            ]);
            out
        }
        "audio_only" => {
            let out = dir.join("audio_only.m4a");
            ffmpeg(&[
                "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac",
                out.to_str().unwrap(),
            ]);
            out
        }
        // moov atom at the end (ffmpeg's default), so half the bytes lose the index.
        "truncated" => cut_in_half(&fixture_locked(&mut made, "h264"), "truncated.mp4"),
        // Index up front: the file opens, the data stops half way.
        "truncated_faststart" => {
            let src = fixture_locked(&mut made, "h264");
            let fs = dir.join("faststart.mp4");
            ffmpeg(&[
                "-i", src.to_str().unwrap(), "-c", "copy", "-movflags", "+faststart",
                fs.to_str().unwrap(),
            ]);
            cut_in_half(&fs, "truncated_faststart.mp4")
        }
        // Annex-B elementary stream: no container, no timestamps, no duration.
        "raw_h264" => {
            let src = fixture_locked(&mut made, "h264");
            let out = dir.join("raw.h264");
            ffmpeg(&[
                "-i", src.to_str().unwrap(), "-c", "copy", "-bsf:v", "h264_mp4toannexb",
                "-f", "h264", out.to_str().unwrap(),
            ]);
            out
        }
        "corrupt" => {
            let src = fixture_locked(&mut made, "h264");
            let mut bytes = std::fs::read(&src).unwrap();
            let n = bytes.len();
            // Deterministic garbage over the middle fifth of the file.
            let mut x: u32 = 12345;
            for b in &mut bytes[n * 2 / 5..n * 3 / 5] {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                *b = (x >> 16) as u8;
            }
            let out = dir.join("corrupt.mp4");
            std::fs::write(&out, bytes).unwrap();
            out
        }
        "text" => {
            let out = dir.join("notes.mp4");
            std::fs::write(&out, "These are meeting notes, not a video.\n".repeat(50)).unwrap();
            out
        }
        other => panic!("unknown fixture {other}"),
    };
    made.insert(name.to_string(), path.clone());
    path
}

/// `fixture` for use while the lock is held (fixtures built from other fixtures).
#[rustfmt::skip]
fn fixture_locked(made: &mut HashMap<String, PathBuf>, name: &str) -> PathBuf {
    if let Some(p) = made.get(name) {
        return p.clone();
    }
    assert_eq!(name, "h264", "only h264 is a base fixture");
    let out = fixture_dir().join("h264.mp4");
    ffmpeg(&[
        "-f", "lavfi", "-i", &lavfi("320x240", "25", "4"), "-c:v", "libx264", "-pix_fmt",
        "yuv420p", "-g", "25", out.to_str().unwrap(),
    ]);
    made.insert(name.to_string(), out.clone());
    out
}

fn cut_in_half(src: &Path, name: &str) -> PathBuf {
    let bytes = std::fs::read(src).unwrap();
    let out = fixture_dir().join(name);
    std::fs::write(&out, &bytes[..bytes.len() / 2]).unwrap();
    out
}

/// `ffprobe -show_streams -show_format` as JSON: (first video stream, format).
pub fn ffprobe(path: &Path) -> (serde_json::Value, serde_json::Value) {
    let out = run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_streams",
                "-show_format",
                "-of",
                "json",
            ])
            .arg(path),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let stream = v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("ffprobe finds a video stream")
        .clone();
    (stream, v["format"].clone())
}

/// Presentation timestamps of every video frame, per `ffprobe -show_frames`.
pub fn ffprobe_frame_pts(path: &Path) -> Vec<f64> {
    ffprobe_pts(path, &[])
}

/// Presentation timestamps of the keyframes, per `ffprobe -skip_frame nokey -show_frames`.
pub fn ffprobe_keyframe_pts(path: &Path) -> Vec<f64> {
    ffprobe_pts(path, &["-skip_frame", "nokey"])
}

fn ffprobe_pts(path: &Path, decoder_options: &[&str]) -> Vec<f64> {
    let out = run_ok(
        Command::new("ffprobe")
            .args(decoder_options)
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "frame=pts_time,best_effort_timestamp_time",
                "-of",
                "json",
            ])
            .arg(path),
    );
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let t = f
                .get("pts_time")
                .or_else(|| f.get("best_effort_timestamp_time"))?;
            t.as_str()?.parse::<f64>().ok()
        })
        .collect()
}

/// The frame `ffmpeg -ss t` gives, scaled to w x h with swscale's bilinear, as RGB24.
/// `ffmpeg` rotates before scaling (autorotate); vidcap scales the stored frame first and
/// then rotates the small frame, so for a rotated video with a size change the reference
/// is made in that order too (`-noautorotate`, scale, then transpose/flip).
pub fn ffmpeg_frame_at(path: &Path, t: f64, w: u32, h: u32) -> Vec<u8> {
    ffmpeg_frame_rotated(path, t, w, h, 0)
}

/// As `ffmpeg_frame_at` for a video whose display rotation is `rotation` (clockwise) and
/// whose frames vidcap scales (w x h is the displayed size).
pub fn ffmpeg_frame_rotated(path: &Path, t: f64, w: u32, h: u32, rotation: i32) -> Vec<u8> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error", "-ss", &format!("{t:.6}")]);
    let filter = match rotation {
        90 => format!("scale={h}:{w}:flags=bilinear,transpose=clock"),
        270 => format!("scale={h}:{w}:flags=bilinear,transpose=cclock"),
        180 => format!("scale={w}:{h}:flags=bilinear,hflip,vflip"),
        _ => format!("scale={w}:{h}:flags=bilinear"),
    };
    if rotation != 0 {
        cmd.arg("-noautorotate");
    }
    cmd.arg("-i").arg(path).args([
        "-frames:v",
        "1",
        "-vf",
        &filter,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-",
    ]);
    let out = run_ok(&mut cmd);
    assert_eq!(out.len(), (w * h * 3) as usize, "ffmpeg frame size at {t}s");
    out
}

pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

pub fn parse_rate(r: &serde_json::Value) -> f64 {
    let s = r.as_str().unwrap();
    let (n, d) = s.split_once('/').unwrap();
    n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()
}

/// Real footage fetched by scripts/fetch_samples.sh, or None (with a printed notice).
pub fn real_sample(name: &str) -> Option<PathBuf> {
    let cache = std::env::var_os("VIDCAP_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/vidcap")))?;
    let p = cache.join("samples").join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} not fetched (scripts/fetch_samples.sh failed or was not run)",
            p.display()
        );
        None
    }
}
