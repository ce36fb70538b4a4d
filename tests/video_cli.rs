//! `vidcap probe` and `vidcap frames` end to end: outputs, exit codes, one-line errors.
mod util;
use util::vidcap;

use std::path::Path;
use std::process::Command;

use util::video::{ffprobe, ffprobe_frame_pts, fixture};

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn probe_json_agrees_with_ffprobe() {
    let path = fixture("h264");
    let out = vidcap(&[os("probe"), path.as_os_str(), os("--json")]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (s, _) = ffprobe(&path);
    assert_eq!(v["width"], s["width"]);
    assert_eq!(v["height"], s["height"]);
    assert_eq!(v["codec"], s["codec_name"]);
    assert_eq!(
        v["frame_count_estimate"].as_u64().unwrap().to_string(),
        s["nb_frames"].as_str().unwrap()
    );
    assert_eq!(v["rotation"], 0);
    assert!((v["duration_s"].as_f64().unwrap() - 4.0).abs() < 1e-3);
    assert!((v["fps"].as_f64().unwrap() - 25.0).abs() < 1e-9);
}

#[test]
fn frames_keyframes_writes_keyframes() {
    let path = fixture("h264");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let doc = frames_json(&path, &["--count", "4", "--keyframes"], &out_dir);
    let keys = util::video::ffprobe_keyframe_pts(&path);
    let pts: Vec<f64> = doc["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pts"].as_f64().unwrap())
        .collect();
    // Targets 0.5, 1.5, 2.5, 3.5 s; keyframes every second: ties go to the earlier one.
    assert_eq!(pts.len(), 4);
    for (p, k) in pts.iter().zip([keys[0], keys[1], keys[2], keys[3]]) {
        assert!((p - k).abs() < 1e-6, "{pts:?} vs keyframes {keys:?}");
    }
    let every = vidcap(&[
        os("frames"),
        path.as_os_str(),
        os("--every"),
        os("--keyframes"),
        os("--out"),
        out_dir.as_os_str(),
    ]);
    assert_eq!(every.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&every.stderr).contains("cannot be used with"));
}

/// Runs `vidcap frames VIDEO ARGS --out OUT_DIR`, expects success, returns frames.json.
fn frames_json(path: &Path, args: &[&str], out_dir: &Path) -> serde_json::Value {
    let mut all = vec![os("frames"), path.as_os_str()];
    all.extend(args.iter().map(|a| os(a)));
    all.extend([os("--out"), out_dir.as_os_str()]);
    let out = vidcap(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(out_dir.join("frames.json")).unwrap()).unwrap()
}

#[test]
fn frames_writes_pngs_and_frames_json() {
    let path = fixture("rotated");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let doc = frames_json(&path, &["--count", "4"], &out_dir);
    let frames = doc["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 4);
    let all = ffprobe_frame_pts(&path);
    let mut prev = f64::NEG_INFINITY;
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["index"], i);
        let pts = f["pts"].as_f64().unwrap();
        assert!(pts > prev, "pts increase");
        assert!(
            all.iter().any(|&p| (p - pts).abs() < 1e-6),
            "pts {pts} is a real frame's"
        );
        prev = pts;
        let png = out_dir.join(f["file"].as_str().unwrap());
        assert_eq!(
            png.file_name().unwrap().to_str().unwrap(),
            format!("frame_{i:06}.png")
        );
        // Rotated 320x240 video: displayed 240x320, shorter side to 256.
        let (w, h) = image_size(&png);
        assert_eq!((w, h), (256, 341));
        assert_eq!(
            (f["width"].as_u64().unwrap(), f["height"].as_u64().unwrap()),
            (256, 341)
        );
    }
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

fn image_size(png: &Path) -> (u64, u64) {
    let out = util::video::run_ok(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=width,height",
                "-of",
                "csv=p=0",
            ])
            .arg(png),
    );
    let s = String::from_utf8(out).unwrap();
    let (w, h) = s.trim().split_once(',').unwrap();
    (w.parse().unwrap(), h.parse().unwrap())
}

/// One line on stderr naming the file and the reason; exit code 1; no panic.
fn assert_clean_failure(path: &Path, reason_word: &str, cmd: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = match cmd {
        "probe" => vidcap(&[os("probe"), path.as_os_str(), os("--json")]),
        _ => vidcap(&[
            os("frames"),
            path.as_os_str(),
            os("--count"),
            os("8"),
            os("--out"),
            dir.path().as_os_str(),
        ]),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{cmd} {}: {stderr}",
        path.display()
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{cmd} {}: one line expected, got {stderr}",
        path.display()
    );
    assert!(
        lines[0].contains(&path.display().to_string()),
        "names the file: {}",
        lines[0]
    );
    assert!(
        lines[0].contains(reason_word),
        "says '{reason_word}': {}",
        lines[0]
    );
    assert!(!stderr.contains("panicked"));
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
}

#[test]
fn bad_inputs_fail_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.mp4");
    let cases = [
        (missing.clone(), "no such file"),
        (dir.path().to_path_buf(), "directory"),
        (fixture("text"), "not a readable video file"),
        (fixture("audio_only"), "no video stream"),
        (fixture("truncated"), "not a readable video file"),
    ];
    for (path, word) in &cases {
        assert_clean_failure(path, word, "probe");
        assert_clean_failure(path, word, "frames");
    }
    // The index survives but the data stops half way: probe works, sampling says why not.
    let cut = fixture("truncated_faststart");
    assert_eq!(
        vidcap(&[os("probe"), cut.as_os_str()]).status.code(),
        Some(0)
    );
    assert_clean_failure(&cut, "truncated", "frames");
}

#[test]
fn corrupt_file_decodes_with_warnings() {
    let path = fixture("corrupt");
    let dir = tempfile::tempdir().unwrap();
    let out = vidcap(&[
        os("frames"),
        path.as_os_str(),
        os("--count"),
        os("8"),
        os("--out"),
        dir.path().as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("corrupt") || stderr.contains("damaged"),
        "warns: {stderr}"
    );
    assert!(
        stderr.lines().count() <= 5,
        "warnings are summarised: {stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 9); // 8 PNG + frames.json
}

#[test]
fn usage_errors_exit_2() {
    let path = fixture("h264");
    let dir = tempfile::tempdir().unwrap();
    for extra in [
        &[][..],
        &[os("--count"), os("0")][..],
        &[os("--count"), os("2"), os("--fps"), os("1")][..],
    ] {
        let mut args = vec![
            os("frames"),
            path.as_os_str(),
            os("--out"),
            dir.path().as_os_str(),
        ];
        args.extend_from_slice(extra);
        assert_eq!(vidcap(&args).status.code(), Some(2), "{extra:?}");
    }
}

#[test]
fn bad_window_is_a_clear_error() {
    let path = fixture("h264");
    let dir = tempfile::tempdir().unwrap();
    let out = vidcap(&[
        os("frames"),
        path.as_os_str(),
        os("--count"),
        os("2"),
        os("--start"),
        os("9"),
        os("--out"),
        dir.path().as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("start") && stderr.contains("h264.mp4"),
        "{stderr}"
    );
}

/// Damaged copies of one clip in several containers: every run ends by itself (no hang),
/// without a panic, with exit 0 (frames written) or 1 and an error line naming the file.
#[test]
fn damaged_files_never_panic_or_hang() {
    let src = fixture("h264");
    let dir = tempfile::tempdir().unwrap();
    for ext in ["mkv", "ts", "avi", "mp4"] {
        let remuxed = dir.path().join(format!("clip.{ext}"));
        util::video::run_ok(
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-y", "-i"])
                .arg(&src)
                .args(["-c", "copy"])
                .arg(&remuxed),
        );
        let bytes = std::fs::read(&remuxed).unwrap();
        let n = bytes.len();
        let mut x: u32 = 99;
        let mut noise = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect()
        };
        let variants: Vec<(&str, Vec<u8>)> = vec![
            ("cut10", bytes[..n / 10].to_vec()),
            ("cut70", bytes[..n * 7 / 10].to_vec()),
            ("head", [noise(64), bytes[64..].to_vec()].concat()),
            (
                "middle",
                [&bytes[..n / 3], &noise(n / 3)[..], &bytes[2 * n / 3..]].concat(),
            ),
            (
                "zeros",
                [&bytes[..n / 2], &vec![0u8; n / 4][..], &bytes[3 * n / 4..]].concat(),
            ),
        ];
        for (name, data) in variants {
            let path = dir.path().join(format!("{name}.{ext}"));
            std::fs::write(&path, data).unwrap();
            for mode in [&["--count", "6"][..], &["--every"][..]] {
                let out_dir = dir.path().join(format!("out_{name}_{ext}_{}", mode.len()));
                let mut child = Command::new(env!("CARGO_BIN_EXE_vidcap"))
                    .arg("frames")
                    .arg(&path)
                    .args(mode)
                    .args(["--short-side", "32", "--out"])
                    .arg(&out_dir)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let started = std::time::Instant::now();
                let status = loop {
                    if let Some(status) = child.try_wait().unwrap() {
                        break status;
                    }
                    if started.elapsed() > std::time::Duration::from_secs(60) {
                        let _ = child.kill();
                        panic!("{}: {mode:?} did not finish in 60 s", path.display());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                };
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
                    .unwrap();
                assert!(!stderr.contains("panicked"), "{}: {stderr}", path.display());
                match status.code() {
                    Some(0) => assert!(out_dir.join("frames.json").is_file()),
                    Some(1) => {
                        let last = stderr.lines().last().unwrap_or_default();
                        assert!(
                            last.starts_with("vidcap: error: ")
                                && last.contains(&path.display().to_string()),
                            "{}: {last}",
                            path.display()
                        );
                        assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
                    }
                    other => panic!("{}: {mode:?} exit {other:?}: {stderr}", path.display()),
                }
            }
        }
    }
}
