//! `vidcap annotate` at the HTTP level: the access token on every path, range requests
//! answered with the file's own bytes, only listed clips served (traversal, links), malformed
//! saves refused with nothing written, the JSONL written at once and read by `vidcap train`,
//! resuming, extending a dataset, the lock, Ctrl-C, and the model's suggestions.
mod util;

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use util::annotate::{
    Server, VIDCAP, extract_and_train, make_clip, records, request, sample_clips, samples_dir,
    wait_for,
};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn every_path_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let clips = dir.path().join("clips");
    sample_clips(&clips, 2);
    let out = dir.path().join("ann.jsonl");
    let server = Server::start(&[s(&clips), "--out", s(&out), "--model", "none"]);
    assert_eq!(
        server.url,
        format!("http://127.0.0.1:{}/?token={}", server.port, server.token)
    );
    assert!(server.token.len() >= 32, "{}", server.token);

    for path in [
        "/",
        "/index.html",
        "/app.js",
        "/app.css",
        "/api/clips",
        "/api/clips/0",
        "/api/clips/0/video",
        "/api/clips/0/strip.jpg",
        "/no/such/page",
        "/../../etc/passwd",
    ] {
        let bare = server.request("GET", path, &[], b"");
        assert_eq!(bare.status, 403, "GET {path} without a token");
        let wrong = server.request("GET", &format!("{path}?token=0123"), &[], b"");
        assert_eq!(wrong.status, 403, "GET {path} with a wrong token");
        let wrong_cookie = server.request(
            "GET",
            path,
            &[("Cookie", &format!("vidcap_annotate_{}=nope", server.port))],
            b"",
        );
        assert_eq!(wrong_cookie.status, 403, "GET {path} with a wrong cookie");
    }
    let save = server.request(
        "POST",
        "/api/clips/0/save",
        &[("Content-Type", "application/json")],
        br#"{"captions": ["a caption"]}"#,
    );
    assert_eq!(save.status, 403);
    assert!(!out.exists(), "a refused save wrote the file");

    // The printed address works; its answer sets the cookie, which then works alone.
    let page = server.request("GET", &server.with_token("/"), &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("vidcap annotate"));
    assert!(page.header("content-security-policy").is_some());
    let cookie = page.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    assert_eq!(
        pair,
        format!("vidcap_annotate_{}={}", server.port, server.token)
    );
    for path in ["/app.js", "/app.css", "/api/clips"] {
        let with_cookie = server.request("GET", path, &[("Cookie", pair)], b"");
        assert_eq!(with_cookie.status, 200, "GET {path} with the cookie");
    }
    assert_eq!(server.get("/api/clips").json()["total"], 2);
    // A page of another origin pointed at the server (DNS rebinding) is refused.
    let rebound = server.request(
        "GET",
        "/api/clips",
        &[
            ("Host", "attacker.example:80"),
            ("X-Vidcap-Token", &server.token),
        ],
        b"",
    );
    assert_eq!(rebound.status, 403);
    let (status, _) = server.interrupt();
    assert!(status.success());
}

#[test]
fn videos_answer_range_requests_with_the_files_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let clips = dir.path().join("clips");
    let files = sample_clips(&clips, 1);
    let bytes = fs::read(&files[0]).unwrap();
    let len = bytes.len();
    let server = Server::start(&[
        s(&clips),
        "--out",
        s(&dir.path().join("a.jsonl")),
        "--model",
        "none",
    ]);
    let path = "/api/clips/0/video";

    let whole = server.get(path);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, bytes);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(
        whole.header("content-length"),
        Some(len.to_string().as_str())
    );

    let range = |spec: &str| {
        server.request(
            "GET",
            path,
            &[("X-Vidcap-Token", &server.token), ("Range", spec)],
            b"",
        )
    };
    for (spec, first, last) in [
        ("bytes=0-0".to_string(), 0, 0),
        ("bytes=100-1099".to_string(), 100, 1099),
        (format!("bytes={}-", len - 300), len - 300, len - 1),
        ("bytes=-512".to_string(), len - 512, len - 1),
        (format!("bytes=1000-{}", len + 5000), 1000, len - 1),
    ] {
        let reply = range(&spec);
        assert_eq!(reply.status, 206, "{spec}");
        assert_eq!(
            reply.body,
            bytes[first..=last],
            "{spec}: the file's own bytes"
        );
        assert_eq!(
            reply.header("content-range"),
            Some(format!("bytes {first}-{last}/{len}").as_str()),
            "{spec}"
        );
        assert_eq!(
            reply.header("content-length"),
            Some((last - first + 1).to_string().as_str())
        );
    }
    let past = range(&format!("bytes={len}-"));
    assert_eq!(past.status, 416);
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    // Several ranges, or another unit: the whole file.
    let multi = range("bytes=0-1,5-6");
    assert_eq!((multi.status, multi.body.len()), (200, len));
    let head = server.request("HEAD", path, &[("X-Vidcap-Token", &server.token)], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(len.to_string().as_str())
    );
}

#[test]
fn only_listed_clips_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let clips = dir.path().join("clips");
    let listed = sample_clips(&clips, 2);
    // A video outside the input directory, and a link to it inside.
    let outside = dir.path().join("private/secret.mp4");
    fs::create_dir_all(outside.parent().unwrap()).unwrap();
    fs::copy(&listed[0], &outside).unwrap();
    std::os::unix::fs::symlink(&outside, clips.join("link-out.mp4")).unwrap();
    // A link that stays inside is fine.
    std::os::unix::fs::symlink(&listed[1], clips.join("zz-link-in.mp4")).unwrap();
    let server = Server::start(&[
        s(&clips),
        "--out",
        s(&dir.path().join("a.jsonl")),
        "--model",
        "none",
    ]);
    let list = server.get_json("/api/clips");
    let videos: Vec<&str> = list["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["video"].as_str().unwrap())
        .collect();
    assert_eq!(list["total"], 2, "{videos:?}");
    assert!(!videos.iter().any(|v| v.contains("link-out")), "{videos:?}");
    assert!(
        server.stderr_shows("link-out.mp4"),
        "the left-out link is named: {}",
        server.stderr()
    );

    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for target in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/clips/..%2f..%2f..%2fetc%2fpasswd/video",
        "/api/clips/../../../etc/passwd",
        "/api/clips/0/video/../../../../etc/passwd",
        "/app.js/..%5c..%5cetc%5cpasswd",
        "/api/clips/%2fetc%2fpasswd/video",
        "/api/clips/0/video?path=/etc/passwd",
        "/api/clips/0/video?file=../private/secret.mp4",
        "/api/clips/2/video",
        "/api/clips/99/video",
        "/api/clips/-1/video",
        "/private/secret.mp4",
        "/clips/link-out.mp4",
    ] {
        let reply = server.get(target);
        assert!(
            (400..500).contains(&reply.status),
            "GET {target} answered {}",
            reply.status
        );
        let body = reply.text();
        assert!(
            passwd.is_empty() || !body.contains("root:"),
            "GET {target} leaked /etc/passwd"
        );
        assert!(reply.body.len() < 1000, "GET {target} served a file");
    }
    for target in [
        "/../../../../etc/passwd",
        "/etc/passwd",
        "/private/secret.mp4",
        "/api/clips/0/video?path=/etc/passwd",
    ] {
        assert_eq!(server.get(target).status, 403, "{target}");
    }
    assert_eq!(
        server.get("/api/clips/..%2f..%2fetc%2fpasswd/video").status,
        403
    );

    // A listed file replaced by a link to another file is refused from then on.
    let victim = &listed[0];
    assert_eq!(server.get("/api/clips/0/video").status, 200);
    fs::remove_file(victim).unwrap();
    std::os::unix::fs::symlink(&outside, victim).unwrap();
    let swapped = server.get("/api/clips/0/video");
    assert_eq!(swapped.status, 403, "{}", swapped.text());
    assert!(
        swapped.json()["error"]
            .as_str()
            .unwrap()
            .contains("no longer")
    );
}

#[test]
fn malformed_saves_are_400_with_a_message_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clips = dir.path().join("clips");
    sample_clips(&clips, 1);
    let out = dir.path().join("ann.jsonl");
    let server = Server::start(&[s(&clips), "--out", s(&out), "--model", "none"]);
    let long = "a".repeat(1001);
    let many: Vec<String> = (0..21).map(|i| format!("caption {i}")).collect();
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "empty"),
        ("not json".into(), "not a valid save"),
        ("[\"a\"]".into(), "not a valid save"),
        ("{}".into(), "no caption"),
        (r#"{"captions": []}"#.into(), "no caption"),
        (r#"{"captions": ["   ", ""]}"#.into(), "no caption"),
        (r#"{"captions": "a dog"}"#.into(), "not a valid save"),
        (r#"{"captoins": ["a dog"]}"#.into(), "captoins"),
        (
            r#"{"captions": ["a dog"], "split": "holdout"}"#.into(),
            "split",
        ),
        (
            r#"{"captions": ["a dog"], "start": 3, "end": 1}"#.into(),
            "window",
        ),
        (
            r#"{"captions": ["a dog"], "start": -1}"#.into(),
            "non-negative",
        ),
        (
            r#"{"captions": ["a dog"], "end": 999}"#.into(),
            "past the end",
        ),
        (
            r#"{"captions": ["a dog"], "start": 999}"#.into(),
            "not before the end",
        ),
        (
            r#"{"captions": ["a \u0007 dog"]}"#.into(),
            "control character",
        ),
        (json!({ "captions": [long] }).to_string(), "at most 1000"),
        (json!({ "captions": many }).to_string(), "at most 20"),
    ];
    for (body, expected) in &cases {
        let reply = server.post("/api/clips/0/save", body.as_bytes());
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        let message = reply.json()["error"].as_str().unwrap().to_string();
        assert!(
            message.contains(expected),
            "{body}: {message:?} should say {expected:?}"
        );
        assert!(!out.exists(), "{body}: a refused save wrote the file");
    }
    let huge = format!(r#"{{"captions": ["{}"]}}"#, "x".repeat(100 * 1024));
    let reply = server.post("/api/clips/0/save", huge.as_bytes());
    assert_eq!(reply.status, 413);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("larger than 64 KiB")
    );
    assert_eq!(server.post("/api/clips/7/save", b"{}").status, 404);
    assert!(!out.exists());
    // Files named on the command line must exist.
    let missing = Server::try_start(&[
        s(&dir.path().join("nope.mp4")),
        "--out",
        s(&dir.path().join("b.jsonl")),
    ]);
    let (status, stderr) = missing.err().expect("a missing input is an error");
    assert_eq!(status.and_then(|s| s.code()), Some(1));
    assert!(stderr.contains("nope.mp4"), "{stderr}");

    let ok = server.post(
        "/api/clips/0/save",
        br#"{"captions": ["  a   dog runs\nleft "]}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let saved = records(&out);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["captions"], json!(["a dog runs left"]));
}

#[test]
fn saves_are_jsonl_that_resumes_is_locked_and_trains() {
    let dir = tempfile::tempdir().unwrap();
    let footage = dir.path().join("footage");
    let files = sample_clips(&footage.join("day1"), 3);
    make_clip(&footage.join("day2/bars.mp4"), "smptebars", 3);
    let out = dir.path().join("labels/ann.jsonl");
    let server = Server::start(&[s(&footage), "--out", s(&out), "--model", "none"]);
    let list = server.get_json("/api/clips");
    assert_eq!(
        (list["total"].as_u64(), list["captioned"].as_u64()),
        (Some(4), Some(0))
    );
    assert_eq!(list["order"], "file");
    assert_eq!(list["resume"], 0);
    let clip0 = server.get_json("/api/clips/0");
    assert_eq!(clip0["video"], "../footage/day1/clip_000003.mp4");
    assert_eq!(clip0["suggested_split"], "train", "the first clip trains");
    assert!((clip0["duration"].as_f64().unwrap() - 4.0).abs() < 0.05);

    // Saved at once, paths relative to the file, the window as trimmed.
    let reply = server.post(
        "/api/clips/0/save",
        br#"{"captions": ["a green orange moves left", "an orange drifts to the left"], "split": "train", "start": 0.5, "end": 3.25}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = reply.json();
    assert_eq!(reply["captioned"], 1);
    assert_eq!(reply["next_uncaptioned"], 1);
    let saved = records(&out);
    assert_eq!(
        saved,
        vec![json!({
            "id": "../footage/day1/clip_000003.mp4",
            "video": "../footage/day1/clip_000003.mp4",
            "start": 0.5,
            "end": 3.25,
            "captions": ["a green orange moves left", "an orange drifts to the left"],
            "split": "train",
        })]
    );
    // The whole video: no window in the record. A script may leave out split and window.
    let reply = server.post(
        "/api/clips/3/save",
        br#"{"caption": "colour bars stand still", "start": null, "end": null}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let saved = records(&out);
    assert_eq!(saved[1]["video"], "../footage/day2/bars.mp4");
    assert!(
        saved[1].get("start").is_none() && saved[1].get("end").is_none(),
        "{}",
        saved[1]
    );
    assert!(["train", "val", "test"].contains(&saved[1]["split"].as_str().unwrap()));
    let first_line = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();

    // One server per file: the second names the first's pid.
    let second = Server::try_start(&[s(&footage), "--out", s(&out), "--model", "none"]);
    let (status, stderr) = second
        .err()
        .expect("a second server on the same file is refused");
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", server.pid())),
        "{stderr}"
    );

    // Ctrl-C: exit 0, lock gone, file complete.
    let (status, stderr) = server.interrupt();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("2 captioned"), "{stderr}");
    assert!(!out.with_file_name("ann.jsonl.lock").exists());
    assert_eq!(records(&out).len(), 2);

    // Reopened: resumes at the first clip without a caption; saved clips keep their captions
    // and their lines; a stale lock of a dead process is taken over.
    fs::write(out.with_file_name("ann.jsonl.lock"), "pid 4294967295\n").unwrap();
    let server = Server::start(&[s(&footage), "--out", s(&out), "--model", "none"]);
    assert!(
        server.stderr_shows("stale lock of pid 4294967295"),
        "{}",
        server.stderr()
    );
    let list = server.get_json("/api/clips");
    assert_eq!(
        (list["captioned"].as_u64(), list["resume"].as_u64()),
        (Some(2), Some(1))
    );
    let clip0 = server.get_json("/api/clips/0");
    assert_eq!(clip0["captions"][1], "an orange drifts to the left");
    assert_eq!(
        (clip0["start"].as_f64(), clip0["end"].as_f64()),
        (Some(0.5), Some(3.25))
    );
    for i in [1, 2] {
        let body = json!({"captions": [format!("clip {i} in a meadow")], "split": "train"});
        assert_eq!(
            server
                .post(&format!("/api/clips/{i}/save"), body.to_string().as_bytes())
                .status,
            200
        );
    }
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        first_line,
        "an untouched record keeps its line"
    );
    assert_eq!(text.lines().count(), 4);
    let (status, _) = server.interrupt();
    assert!(status.success());

    // `vidcap train` reads it as it is.
    let trained = extract_and_train(&out, dir.path());
    assert!(
        trained.status.success(),
        "vidcap train on the annotations: {}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let report: Value = serde_json::from_slice(&trained.stdout).unwrap();
    let train_clips = report["dataset"]["clips"]["train"].as_u64().unwrap();
    assert!(train_clips >= 3, "{}", report["dataset"]);
    assert!(files[0].exists());
}

#[test]
fn an_existing_dataset_is_extended_and_keeps_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    sample_clips(&data, 6);
    fs::copy(
        samples_dir().join("annotations.jsonl"),
        data.join("annotations.jsonl"),
    )
    .unwrap();
    let original = fs::read_to_string(data.join("annotations.jsonl")).unwrap();
    let new = dir.path().join("new");
    make_clip(&new.join("bars.mp4"), "smptebars", 2);

    // Into a new file: the dataset's clips are in it from the start.
    let out = dir.path().join("extended.jsonl");
    let server = Server::start(&[
        s(&data.join("annotations.jsonl")),
        s(&new),
        "--out",
        s(&out),
        "--model",
        "none",
    ]);
    let saved = records(&out);
    assert_eq!(saved.len(), 6, "the dataset's clips are written at once");
    assert_eq!(saved[0]["video"], "data/clip_000003.mp4");
    let list = server.get_json("/api/clips");
    assert_eq!(
        (list["total"].as_u64(), list["captioned"].as_u64()),
        (Some(7), Some(6))
    );
    assert_eq!(list["resume"], 6);
    let reply = server.post(
        "/api/clips/6/save",
        br#"{"captions": ["colour bars"], "split": "test"}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(records(&out).len(), 7);
    server.interrupt();

    // In place: untouched lines stay byte for byte, a rewritten one keeps its other fields.
    let ann = data.join("annotations.jsonl");
    let server = Server::start(&[s(&ann), s(&new), "--out", s(&ann), "--model", "none"]);
    let list = server.get_json("/api/clips");
    assert_eq!(
        (list["total"].as_u64(), list["captioned"].as_u64()),
        (Some(7), Some(6))
    );
    let reply = server.post(
        "/api/clips/1/save",
        br#"{"captions": ["a strawberry goes up"]}"#,
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = fs::read_to_string(&ann).unwrap();
    let (before, after): (Vec<&str>, Vec<&str>) =
        (original.lines().collect(), text.lines().collect());
    assert_eq!(after.len(), 6);
    assert_eq!(after[0], before[0]);
    assert_eq!(after[2..], before[2..]);
    let rewritten: Value = serde_json::from_str(after[1]).unwrap();
    let old: Value = serde_json::from_str(before[1]).unwrap();
    assert_eq!(rewritten["captions"], json!(["a strawberry goes up"]));
    assert_eq!(rewritten["params"], old["params"], "other fields are kept");
    assert_eq!(rewritten["split"], old["split"], "the split is kept");
    server.interrupt();
}

#[test]
fn suggestions_frames_and_least_familiar_first() {
    let dir = tempfile::tempdir().unwrap();
    let clips = dir.path().join("clips");
    sample_clips(&clips, 2);
    make_clip(&clips.join("zz_testsrc.mp4"), "testsrc2", 3);
    let out = dir.path().join("ann.jsonl");
    // The bundled decoder: it has a familiarity summary.
    let server = Server::start(&[s(&clips), "--out", s(&out)]);
    let list = server.get_json("/api/clips");
    assert_eq!(list["model"], "synth-decoder");
    assert_eq!(list["order"], "familiarity");

    let suggestion = server.get_json("/api/clips/0/suggestion");
    let caption = suggestion["caption"].as_str().unwrap();
    assert!(caption.split_whitespace().count() >= 3, "{suggestion}");
    assert_eq!(suggestion["frames"].as_array().unwrap().len(), 16);
    assert!(suggestion["familiarity"].is_number());
    let strip = server.get(suggestion["strip"].as_str().unwrap());
    assert_eq!(strip.status, 200);
    assert_eq!(strip.header("content-type"), Some("image/jpeg"));
    assert_eq!(&strip.body[..3], &[0xff, 0xd8, 0xff]);
    // A window of the user's: suggested for that window.
    let window = server.get_json("/api/clips/0/suggestion?start=1&end=2.5");
    assert_eq!(
        (window["start"].as_f64(), window["end"].as_f64()),
        (Some(1.0), Some(2.5))
    );
    let frames = window["frames"].as_array().unwrap();
    assert!(
        frames
            .iter()
            .all(|t| (0.95..2.55).contains(&t.as_f64().unwrap())),
        "{frames:?}"
    );

    // Once every clip is scored, the list runs from the least familiar: the test pattern,
    // unlike anything the bundled decoder saw, comes first.
    let list = wait_for(300, "every clip scored", || {
        let list = server.get_json("/api/clips");
        (list["analysing"] == false).then_some(list)
    });
    let order: Vec<(String, f64)> = list["clips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["familiarity"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0].1 <= w[1].1), "{order:?}");
    assert_eq!(order[0].0, "zz_testsrc.mp4", "{order:?}");
    assert_eq!(list["resume"], list["clips"][0]["index"]);
    // A clip scored in the background (which keeps no strip) gets its strip when opened.
    let last = list["clips"][2]["index"].as_u64().unwrap();
    let opened = server.get_json(&format!("/api/clips/{last}/suggestion"));
    let strip = server.get(opened["strip"].as_str().expect("a strip"));
    assert_eq!((strip.status, &strip.body[..2]), (200, &[0xff, 0xd8][..]));
    server.interrupt();
}

#[test]
fn usage_errors_and_the_host_warning() {
    let dir = tempfile::tempdir().unwrap();
    let clips = dir.path().join("clips");
    sample_clips(&clips, 1);
    for args in [
        vec!["annotate", s(&clips), "--out", "ann.json"],
        vec!["annotate", s(&clips)],
        vec!["annotate", s(&clips), "--out", "a.jsonl", "--port", "http"],
        vec![
            "annotate",
            s(&clips),
            "--out",
            "a.jsonl",
            "--host",
            "everywhere",
        ],
        vec!["annotate", s(&clips), "--out", "a.jsonl", "--beam", "0"],
    ] {
        let out = Command::new(VIDCAP).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = dir.path().join("a.jsonl");
    let server = Server::start(&[
        s(&clips),
        "--out",
        s(&out),
        "--model",
        "none",
        "--host",
        "0.0.0.0",
    ]);
    assert!(
        server.stderr_shows("listening on 0.0.0.0"),
        "{}",
        server.stderr()
    );
    // Bound to every address, the Host check is off, the token still on.
    assert_eq!(
        request(
            server.port,
            "GET",
            "/api/clips",
            &[("Host", "box.lan:1")],
            b""
        )
        .status,
        403
    );
    let reply = request(
        server.port,
        "GET",
        "/api/clips",
        &[("Host", "box.lan:1"), ("X-Vidcap-Token", &server.token)],
        b"",
    );
    assert_eq!(reply.status, 200);
    server.interrupt();
}
