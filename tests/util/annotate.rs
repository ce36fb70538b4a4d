//! Shared helpers of the `vidcap annotate` tests: the server as a child process, a raw
//! HTTP/1.1 client (so requests go out exactly as written, `..` and all), and clips.
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use super::VIDCAP;

/// The committed synthetic sample clips (4 s, 320x240 H.264) and their annotations.
pub fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/synth")
}

/// Copies of `n` sample clips into `dir`.
pub fn sample_clips(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut names: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
        .collect();
    names.sort();
    names
        .into_iter()
        .take(n)
        .map(|p| {
            let to = dir.join(p.file_name().unwrap());
            std::fs::copy(&p, &to).unwrap();
            to
        })
        .collect()
}

/// An H.264 clip of an FFmpeg test source (`testsrc2`, `smptebars`, …).
pub fn make_clip(path: &Path, source: &str, seconds: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let input = format!("{source}=size=320x240:rate=25:duration={seconds}");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &input])
        .args([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
        ])
        .arg(path)
        .status()
        .expect("ffmpeg must be installed");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
}

/// `vidcap annotate` running in the background.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub token: String,
    pub port: u16,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `vidcap annotate ARGS --port 0` and waits for the URL it prints.
    pub fn start(args: &[&str]) -> Server {
        Self::try_start(args).unwrap_or_else(|(status, stderr)| {
            panic!("vidcap annotate {args:?} did not start ({status:?}):\n{stderr}")
        })
    }

    /// Like [`Self::start`], or the exit status and stderr of a server that stopped first.
    pub fn try_start(args: &[&str]) -> Result<Server, (Option<ExitStatus>, String)> {
        let mut child = Command::new(VIDCAP)
            .arg("annotate")
            .args(args)
            .args(["--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start vidcap");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let url = line.trim().to_string();
                    let port: u16 = url
                        .strip_prefix("http://127.0.0.1:")
                        .and_then(|rest| rest.split('/').next())
                        .and_then(|p| p.parse().ok())
                        .unwrap_or_else(|| panic!("unexpected first line on stdout: {url:?}"));
                    let token = url.split("token=").nth(1).unwrap_or("").to_string();
                    return Ok(Server {
                        child: Some(child),
                        url,
                        token,
                        port,
                        stderr,
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(200));
                        let text = stderr.lock().unwrap().clone();
                        return Err((Some(status), text));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let text = stderr.lock().unwrap().clone();
                        return Err((None, text));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().ok();
                    std::thread::sleep(Duration::from_millis(200));
                    let text = stderr.lock().unwrap().clone();
                    return Err((status, text));
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether stderr comes to contain `needle` within 30 s. The server writes its warnings
    /// before its URL, but the thread draining the pipe may not have read them yet when the
    /// URL arrives, so a check right after `start` must wait for them.
    pub fn stderr_shows(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.stderr().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// `?token=…` for a path.
    pub fn with_token(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}token={}", self.token)
    }

    /// A request with the token header.
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[("X-Vidcap-Token", &self.token)], b"")
    }

    pub fn get_json(&self, path: &str) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text());
        reply.json()
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Reply {
        self.request(
            "POST",
            path,
            &[
                ("X-Vidcap-Token", &self.token),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }

    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        request(self.port, method, target, headers, body)
    }

    /// Ctrl-C (SIGINT); waits for the exit.
    pub fn interrupt(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (status, self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "vidcap annotate did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on a fresh connection, exactly as given (`Host` added unless given).
pub fn request(
    port: u16,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(180)))
        .unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body, and close.
    let _ = stream.write_all(body);
    let raw = read_reply(&mut stream, method == "HEAD");
    parse_reply(&raw, method == "HEAD")
}

/// Reads one answer: up to its Content-Length, or its last chunk, or the end of the
/// connection (a peer may keep it open whatever `Connection: close` asked).
fn read_reply(stream: &mut TcpStream, head_only: bool) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let body = raw.len() - split - 4;
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let chunked = head.contains("transfer-encoding: chunked");
            let done = head_only
                || match length {
                    Some(n) => body >= n,
                    None if chunked => raw.ends_with(b"0\r\n\r\n"),
                    None => false,
                };
            if done {
                return raw;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

fn parse_reply(raw: &[u8], head_only: bool) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked && !head_only {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
    out
}

/// The records of a JSONL file.
pub fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls `f` until it gives `Some`, for at most `seconds`.
pub fn wait_for<T>(seconds: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `vidcap extract` then `vidcap train` on an annotation file: the trainer's exit status
/// and output.
pub fn extract_and_train(annotations: &Path, work: &Path) -> std::process::Output {
    let cache = work.join("features");
    let (q, extract, out) = (OsStr::new("-q"), OsStr::new("extract"), OsStr::new("--out"));
    super::vidcap_ok(&[q, extract, annotations.as_os_str(), out, cache.as_os_str()]);
    Command::new(VIDCAP)
        .args(["-q", "--seed", "1", "train"])
        .arg(annotations)
        .arg("--out")
        .arg(work.join("model"))
        .arg("--cache")
        .arg(&cache)
        .args([
            "--epochs",
            "3",
            "--hidden",
            "32",
            "--embed",
            "16",
            "--att-dim",
            "16",
            "--json",
        ])
        .output()
        .unwrap()
}
