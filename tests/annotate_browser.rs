//! `vidcap annotate` in a real browser: headless Chromium driven through chromedriver's W3C
//! WebDriver API (Debian's `chromium` and `chromium-driver`, installed by
//! scripts/setup_system.sh). Opens the printed address, checks that the video loads and
//! seeks, that the model's suggestion is pre-filled, edits and saves it with Ctrl+Enter,
//! reloads with the session cookie and finds the caption again, shows a refused save's
//! message, and trains on the JSONL. Skipped, saying so, only where Chromium is not installed.
//!
//! `VIDCAP_ANNOTATE_SCREENSHOT=docs/annotate.png` keeps the page's screenshot there.
mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use util::annotate::{
    Server, extract_and_train, make_clip, records, request, sample_clips, wait_for,
};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const CONTROL: &str = "\u{E009}";
const ENTER: &str = "\u{E007}";

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// chromedriver with one headless Chromium session.
struct Driver {
    child: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// `None` (with a message saying so) where Chromium or its driver is not installed.
    fn start() -> Option<Driver> {
        let chromium = first_existing(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let driver = first_existing(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            eprintln!(
                "SKIPPED: the browser test needs Chromium and chromedriver (Debian: apt-get install chromium chromium-driver; scripts/setup_system.sh installs them as root)"
            );
            return None;
        };
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: cannot start: {e}", driver.display()));
        wait_for(30, "chromedriver to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
            let status = request(port, "GET", "/status", &[], b"").json();
            (status["value"]["ready"] == true).then_some(())
        });
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                        "--disable-gpu", "--window-size=1400,1400", "--mute-audio",
                        "--no-first-run", "--hide-scrollbars",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                },
            }},
        });
        let reply = request(
            port,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            capabilities.to_string().as_bytes(),
        );
        let body = reply.json();
        assert_eq!(reply.status, 200, "Chromium did not start: {body}");
        let session = body["value"]["sessionId"].as_str().unwrap().to_string();
        Some(Driver {
            child,
            port,
            session,
            _profile: profile,
        })
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let target = format!("/session/{}{path}", self.session);
        let reply = if body.is_null() {
            request(self.port, method, &target, &[], b"")
        } else {
            let json = [("Content-Type", "application/json")];
            request(
                self.port,
                method,
                &target,
                &json,
                body.to_string().as_bytes(),
            )
        };
        let value = reply.json();
        assert_eq!(reply.status, 200, "WebDriver {method} {path}: {value}");
        value["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    fn find(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        found[ELEMENT].as_str().unwrap().to_string()
    }

    fn clear(&self, element: &str) {
        self.call("POST", &format!("/element/{element}/clear"), json!({}));
    }

    fn type_text(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    fn click(&self, element: &str) {
        self.call("POST", &format!("/element/{element}/click"), json!({}));
    }

    /// Presses `modifier`+`key` together.
    fn chord(&self, modifier: &str, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": modifier},
            {"type": "keyDown", "value": key},
            {"type": "keyUp", "value": key},
            {"type": "keyUp", "value": modifier},
        ]}]});
        self.call("POST", "/actions", actions);
    }

    fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call("GET", "/screenshot", Value::Null);
        base64_decode(encoded.as_str().unwrap())
    }

    fn text_of(&self, id: &str) -> String {
        self.js(&format!(
            "return document.getElementById('{id}').textContent"
        ))
        .as_str()
        .unwrap_or("")
        .to_string()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = request(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            b"",
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn save_screenshot(png: &[u8], dir: &Path) {
    assert_eq!(&png[1..4], b"PNG", "the screenshot is a PNG");
    std::fs::write(dir.join("annotate.png"), png).unwrap();
    if let Some(target) = std::env::var_os("VIDCAP_ANNOTATE_SCREENSHOT") {
        std::fs::write(&target, png).unwrap();
        eprintln!("screenshot written to {}", PathBuf::from(target).display());
    }
}

#[test]
fn caption_a_clip_in_headless_chromium() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clips = dir.path().join("footage");
    // First in file order, and the least familiar to the bundled decoder: the clip the page
    // opens with. (An FFmpeg-encoded clip: the committed synthetic samples predate closed
    // GOPs in `vidcap synth`, and Chromium fails to decode after seeking into them.)
    make_clip(&clips.join("a_testsrc.mp4"), "testsrc2", 3);
    sample_clips(&clips, 3);
    let out = dir.path().join("annotations.jsonl");
    // The bundled decoder suggests captions and orders the list by familiarity.
    let server = Server::start(&[clips.to_str().unwrap(), "--out", out.to_str().unwrap()]);

    // The printed address, token and all; the token then leaves the address bar.
    driver.goto(&server.url);
    let first = wait_for(60, "the page to open a clip", || {
        let name = driver.text_of("clip-name");
        (!name.is_empty()).then_some(name)
    });
    let href = driver.js("return location.href");
    assert!(!href.as_str().unwrap().contains("token="), "{href}");

    // The video element loads the clip (over range requests) and seeks.
    let meta = wait_for(60, "the video's metadata", || {
        let v = driver.js(
            "const v = document.getElementById('video'); \
             return {ready: v.readyState, duration: v.duration, error: v.error ? v.error.code : null}",
        );
        assert!(v["error"].is_null(), "the video element failed: {v}");
        (v["ready"].as_u64().unwrap_or(0) >= 1).then_some(v)
    });
    let duration = meta["duration"].as_f64().unwrap();
    assert!((2.9..4.2).contains(&duration), "{meta}");
    driver.js(
        "const v = document.getElementById('video'); window.seekedAt = null; \
         v.addEventListener('seeked', () => { window.seekedAt = v.currentTime; }, {once: true}); \
         v.currentTime = 1.5; return true",
    );
    let mut last = Value::Null;
    let seeked = (0..600).find_map(|_| {
        last = driver.js(
            "const v = document.getElementById('video'); \
             return {seeked: window.seekedAt, seeking: v.seeking, t: v.currentTime, ready: v.readyState, \
                     buffered: v.buffered.length ? v.buffered.end(0) : 0, error: v.error ? v.error.code : null}",
        );
        let at = last["seeked"].as_f64();
        if at.is_none() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        at
    });
    let seeked = seeked.unwrap_or_else(|| panic!("the video did not seek to 1.5 s: {last}"));
    assert!((seeked - 1.5).abs() < 0.25, "{last}");

    // The model's suggestion, pre-filled and editable; the frames strip beside it.
    let suggestion = wait_for(180, "the suggested caption", || {
        let pair = driver.js(
            "return [document.getElementById('suggestion-text').textContent, \
                     (document.querySelector('#captions textarea')?.value ?? '')]",
        );
        let prefilled = pair[1].as_str().unwrap_or("").to_string();
        (!prefilled.is_empty()).then(|| (pair[0].as_str().unwrap().to_string(), prefilled))
    });
    assert_eq!(
        suggestion.0, suggestion.1,
        "the suggestion is what was pre-filled"
    );
    assert!(
        suggestion.1.split_whitespace().count() >= 3,
        "{suggestion:?}"
    );
    wait_for(60, "the frames strip", || {
        driver
            .js("const i = document.getElementById('strip'); return !i.hidden && i.complete && i.naturalWidth > 0")
            .as_bool()
            .filter(|&ok| ok)
    });

    // Edit, then save and go on with Ctrl+Enter.
    let caption = "a test pattern of coloured bands and a clock counts the seconds";
    let area = driver.find("#captions textarea");
    driver.clear(&area);
    driver.type_text(&area, caption);
    driver.chord(CONTROL, ENTER);
    let record = wait_for(30, "the save to reach the JSONL", || {
        out.exists()
            .then(|| {
                records(&out)
                    .into_iter()
                    .find(|r| r["video"].as_str().is_some_and(|v| v.ends_with(&first)))
            })
            .flatten()
    });
    assert_eq!(record["captions"], json!([caption]));
    assert_eq!(
        record["split"], "train",
        "the first clip of a dataset trains"
    );
    wait_for(30, "the next clip", || {
        (driver.text_of("clip-name") != first).then_some(())
    });
    assert!(
        driver.text_of("message").contains("saved"),
        "{}",
        driver.text_of("message")
    );

    // Reload without the token (the cookie carries the session) and open the saved clip.
    driver.goto(&format!("http://127.0.0.1:{}/", server.port));
    wait_for(60, "the list after the reload", || {
        (driver.text_of("progress-text") == "1 of 4 captioned").then_some(())
    });
    let name = Path::new(&first)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    driver.js(&format!(
        "const li = [...document.querySelectorAll('#clip-list li')] \
           .find(l => l.querySelector('.name').textContent === {name:?}); li.click(); return true"
    ));
    wait_for(30, "the saved caption after the reload", || {
        let value = driver.js("return (document.querySelector('#captions textarea')?.value ?? '')");
        (value.as_str() == Some(caption)).then_some(())
    });
    wait_for(60, "the frames strip after the reload", || {
        driver
            .js("const i = document.getElementById('strip'); return !i.hidden && i.complete && i.naturalWidth > 0")
            .as_bool()
            .filter(|&ok| ok)
    });
    assert!(first.ends_with("a_testsrc.mp4"), "{first}");

    // For the README: a clip the decoder knows, its suggestion pre-filled.
    driver.js(
        "const li = [...document.querySelectorAll('#clip-list li')] \
           .find(l => l.querySelector('.name').textContent === 'clip_000994.mp4'); li.click(); return true",
    );
    wait_for(120, "the donkey clip's suggestion", || {
        let pair = driver.js(
            "const i = document.getElementById('strip'); \
             return [(document.querySelector('#captions textarea')?.value ?? ''), !i.hidden && i.complete && i.naturalWidth > 0]",
        );
        (pair[0].as_str().is_some_and(|v| !v.is_empty()) && pair[1] == true).then_some(())
    });
    wait_for(120, "every clip scored, the video shown", || {
        let scored = !driver.text_of("order-note").contains("so far");
        let shown = driver.js("return document.getElementById('video').readyState >= 2");
        (scored && shown == true).then_some(())
    });
    save_screenshot(&driver.screenshot(), dir.path());

    // A refused save: the server's message on the page, nothing written.
    let before = std::fs::read_to_string(&out).unwrap();
    let area = driver.find("#captions textarea");
    driver.clear(&area);
    driver.click(&driver.find("#save"));
    let refusal = wait_for(30, "the refusal on the page", || {
        let m = driver.js(
            "const m = document.getElementById('message'); return [m.textContent, m.className]",
        );
        (m[1] == "error").then(|| m[0].as_str().unwrap().to_string())
    });
    assert!(refusal.contains("not saved: no caption"), "{refusal}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), before);

    let (status, stderr) = server.interrupt();
    assert!(status.success(), "{stderr}");
    // The JSONL is a dataset `vidcap train` takes.
    let trained = extract_and_train(&out, dir.path());
    assert!(
        trained.status.success(),
        "vidcap train on the page's annotations: {}",
        String::from_utf8_lossy(&trained.stderr)
    );
}
