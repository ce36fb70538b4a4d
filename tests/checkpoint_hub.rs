//! `vidcap models fetch` against a local stand-in for the Hugging Face hub: a std::net server
//! on 127.0.0.1 answering `/<repo>/resolve/main/<file>` the way the hub does (ETag,
//! X-Repo-Commit, byte ranges), with `HF_ENDPOINT` pointed at it and `HF_HOME` in a tempdir.
//! A real backbone cannot be downloaded in the test environment (no internet).
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

struct StandIn {
    endpoint: String,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    fn start(files: HashMap<String, Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &files, &log),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        StandIn {
            endpoint,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shut_down();
    }
}

fn answer(stream: TcpStream, files: &HashMap<String, Vec<u8>>, log: &Mutex<Vec<String>>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("range")
        {
            range = Some(v.trim().to_string());
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    log.lock()
        .unwrap()
        .push(format!("{path} {}", range.clone().unwrap_or_default()));
    let mut out = stream;
    let Some(body) = files.get(&path) else {
        let _ = out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    // "bytes=A-" or "bytes=A-B", as hf-hub sends them.
    let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap();
            let a: usize = a.parse().unwrap();
            let b = if b.is_empty() {
                body.len() - 1
            } else {
                b.parse().unwrap()
            };
            (a, b.min(body.len() - 1))
        }
        None => (0, body.len() - 1),
    };
    let chunk = &body[start..=end];
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{}\r\n\
         ETag: \"etag-of-{}\"\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n\r\n",
        chunk.len(),
        body.len(),
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(chunk);
}

/// A tiny but valid safetensors file (one 2x2 f32 tensor), made with the safetensors crate.
fn tiny_safetensors() -> Vec<u8> {
    let data: Vec<u8> = [1f32, 2., 3., 4.]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 2], &data).unwrap();
    safetensors::serialize([("fc.weight", view)], None).unwrap()
}

fn fetch(endpoint: &str, hf_home: &Path, name: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .args(["models", "fetch", name])
        .env("HF_HOME", hf_home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_TOKEN")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .unwrap()
}

#[test]
fn fetch_downloads_into_the_hugging_face_cache_then_works_offline() {
    let weights = tiny_safetensors();
    let mut files = HashMap::new();
    files.insert(
        "/lmz/candle-resnet/resolve/main/resnet18.safetensors".to_string(),
        weights.clone(),
    );
    let mut server = StandIn::start(files);
    let hf_home = tempfile::tempdir().unwrap();

    let out = fetch(&server.endpoint, hf_home.path(), "resnet18");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(printed.trim());
    let snapshot = hf_home
        .path()
        .join("hub/models--lmz--candle-resnet/snapshots")
        .join(COMMIT)
        .join("resnet18.safetensors");
    assert_eq!(path, snapshot);
    assert_eq!(std::fs::read(path).unwrap(), weights);
    let requests = server.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.starts_with("/lmz/candle-resnet/resolve/main/resnet18.safetensors"))
    );

    // `models list` sees it; a second fetch needs no server.
    server.shut_down();
    let list = Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .args(["models", "list", "--json"])
        .env("HF_HOME", hf_home.path())
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let row = rows["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "resnet18")
        .unwrap();
    assert_eq!(row["installed"], true);
    assert_eq!(row["path"], snapshot.display().to_string());
    let again = fetch(&server.endpoint, hf_home.path(), "resnet18");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
}

#[test]
fn fetch_failures_are_clear_errors() {
    let mut files = HashMap::new();
    files.insert(
        "/lmz/candle-resnet/resolve/main/resnet50.safetensors".to_string(),
        b"<html>rate limited</html>".to_vec(),
    );
    let server = StandIn::start(files);
    let hf_home = tempfile::tempdir().unwrap();

    let out = fetch(&server.endpoint, hf_home.path(), "resnet50");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("resnet50.safetensors") && stderr.contains("not a safetensors file"),
        "{stderr}"
    );

    // Not served at all: the hub answers 404.
    let out = fetch(&server.endpoint, hf_home.path(), "convnext-tiny");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("timm/convnext_tiny.fb_in1k/model.safetensors") && stderr.contains("404"),
        "{stderr}"
    );

    let out = fetch(&server.endpoint, hf_home.path(), "vgg16");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown hub backbone"));
}

#[test]
fn list_reports_unfetched_backbones_as_missing() {
    let hf_home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vidcap"))
        .args(["models", "list"])
        .env("HF_HOME", hf_home.path())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for name in vidcap::encoder::hub::HUB_BACKBONES {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(line.contains("missing"), "{line}");
    }
}

/// The hub backbones' resize + crop against torch's `interpolate` (bilinear, half-pixel,
/// no antialiasing), from scripts/make_hub_preprocess_reference.py.
#[test]
fn resize_and_crop_match_torch_interpolate() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hub_preprocess_reference.json");
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for c in &cases {
        let get = |k: &str| c[k].as_u64().unwrap() as u32;
        let rgb: Vec<u8> = serde_json::from_value(c["rgb"].clone()).unwrap();
        let want: Vec<f32> = serde_json::from_value(c["chw"].clone()).unwrap();
        let got = vidcap::encoder::hub::resize_crop_normalise(
            &rgb,
            get("width"),
            get("height"),
            get("shorter"),
            get("crop") as usize,
            |_, v| v,
        )
        .unwrap();
        assert_eq!(got.len(), want.len());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Pixel values 0..255; the two f32 computations differ by up to ~3e-4 in rounding.
        assert!(
            worst <= 1e-3,
            "{}x{}: max abs diff {worst}",
            get("width"),
            get("height")
        );
    }
}
