//! The HTTP side of `vidcap annotate` (axum on tokio).
//!
//! Every request needs the access token: `?token=` (the first page load; the answer sets a
//! cookie, `HttpOnly`, `SameSite=Strict`, named after the port), the cookie, or an
//! `X-Vidcap-Token` header; without it the answer is 403, whatever the path. Bound to a
//! loopback address, requests whose `Host` is not a loopback name are refused too (DNS
//! rebinding). Videos are served by clip number only, never by path, after checking that the
//! file opened is still the listed one; single byte ranges are answered with 206. Any other
//! path is a 403.
//!
//! API (JSON):
//! * `GET /api/clips`: the list in page order, progress, `resume` (first clip to caption).
//! * `GET /api/clips/N`: one clip: captions, split, window, duration, neighbours.
//! * `GET /api/clips/N/suggestion[?start=S&end=E]`: frames and suggested caption of the
//!   clip's window (or of S–E seconds), waiting for the analysis.
//! * `GET /api/clips/N/strip.jpg[?start=S&end=E]`: the sampled frames.
//! * `GET /api/clips/N/video`: the video file (range requests).
//! * `POST /api/clips/N/save`: `{"captions": [...], "split": "train", "start": S, "end": E}`
//!   ([`SaveRequest`]); 200 with the record written, 400 with `{"error": "..."}` and nothing
//!   written.
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, watch};

use super::analysis::{Analysis, Analyzer, Job, STRIP_COLUMNS, Suggester, WindowKey};
use super::clips::{Annotations, SaveRequest};

/// Largest request body accepted, bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// A larger body is still read (and dropped) up to this size before the 413, so the client
/// gets the answer rather than a connection reset.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
/// How long a request waits for an analysis before it gives up (the page asks again).
const ANALYSIS_WAIT: Duration = Duration::from_secs(120);

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The page may load its own script, style, frames and video, and talk to its own server;
/// nothing else, and it may not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// How the server was started.
pub struct Options {
    pub token: String,
    pub port: u16,
    /// Refuse requests whose `Host` is not a loopback name (when bound to loopback).
    pub loopback_only: bool,
    /// The suggesting model's name; `None` with `--model none`.
    pub model: Option<String>,
    /// Order the list by familiarity (the model has a summary).
    pub by_familiarity: bool,
}

/// The server's state.
pub struct App {
    ann: Mutex<Annotations>,
    pub analyzer: Analyzer,
    notify: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    options: Options,
    cookie: String,
    /// Each clip's window as it was when the server started: what the list shows and
    /// orders by, analysed in the background.
    list_keys: Vec<WindowKey>,
    /// Durations of the videos probed so far, or why probing failed.
    probes: Mutex<std::collections::HashMap<usize, Result<f64, String>>>,
}

impl App {
    pub fn new(
        ann: Annotations,
        suggester: Suggester,
        options: Options,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let list_keys: Vec<WindowKey> = ann
            .clips
            .iter()
            .enumerate()
            .map(|(i, c)| WindowKey::new(i, c.start, c.end))
            .collect();
        let background = list_keys
            .iter()
            .map(|&key| {
                let clip = &ann.clips[key.clip];
                Job {
                    key,
                    path: clip.path.clone(),
                    name: clip.video.clone(),
                    strip: false,
                }
            })
            .collect();
        let notify = Arc::new(Notify::new());
        let wake = Arc::clone(&notify);
        let analyzer = Analyzer::start(suggester, background, move || wake.notify_waiters());
        let cookie = format!("vidcap_annotate_{}", options.port);
        Arc::new(Self {
            ann: Mutex::new(ann),
            analyzer,
            notify,
            shutdown,
            options,
            cookie,
            list_keys,
            probes: Mutex::new(Default::default()),
        })
    }

    fn ann(&self) -> MutexGuard<'_, Annotations> {
        self.ann.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clip numbers in page order: least familiar first when the model has a familiarity
    /// summary (clips not analysed yet after the others, in input order), else input order.
    fn order(&self, ann: &Annotations) -> Vec<usize> {
        let mut order: Vec<usize> = (0..ann.clips.len()).collect();
        if self.options.by_familiarity {
            let familiarity: Vec<Option<f64>> = self
                .list_keys
                .iter()
                .map(|k| self.analyzer.get(k).and_then(|a| a.familiarity))
                .collect();
            order.sort_by(|&a, &b| match (familiarity[a], familiarity[b]) {
                (Some(x), Some(y)) => x.total_cmp(&y).then(a.cmp(&b)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.cmp(&b),
            });
        }
        order
    }

    /// The analysis job of clip `index` over `start`–`end` (default: its window).
    fn job(&self, index: usize, start: Option<f64>, end: Option<f64>) -> Job {
        let ann = self.ann();
        let clip = &ann.clips[index];
        let (start, end) = if start.is_none() && end.is_none() {
            (clip.start, clip.end)
        } else {
            (start, end)
        };
        Job {
            key: WindowKey::new(index, start, end),
            path: clip.path.clone(),
            name: clip.video.clone(),
            strip: true,
        }
    }

    /// Waits for the analysis of `job`, which goes first in the worker's queue.
    async fn analysis(&self, job: Job) -> Result<Arc<Analysis>, Failure> {
        self.analyzer.request(job.clone());
        let deadline = tokio::time::Instant::now() + ANALYSIS_WAIT;
        let mut shutdown = self.shutdown.clone();
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(analysis) = self.analyzer.answer(&job) {
                return Ok(analysis);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = shutdown.wait_for(|stop| *stop) => {
                    return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping"));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(Failure::new(
                        StatusCode::GATEWAY_TIMEOUT,
                        "the model is still busy with other clips; ask again",
                    ));
                }
            }
        }
    }

    /// The video's duration, probed once.
    async fn duration(&self, index: usize) -> Result<f64, String> {
        if let Some(known) = self.probes.lock().unwrap().get(&index) {
            return known.clone();
        }
        let path = self.ann().clips[index].path.clone();
        let probed = tokio::task::spawn_blocking(move || {
            crate::video::probe(&path)
                .map(|info| info.duration_s)
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the probe failed: {e}")));
        self.probes.lock().unwrap().insert(index, probed.clone());
        probed
    }

    /// Clips with a caption, now.
    pub fn captioned(&self) -> usize {
        self.ann().captioned()
    }

    fn token_ok(&self, given: &str) -> bool {
        constant_time_eq(given.as_bytes(), self.options.token.as_bytes())
    }
}

/// The routes, behind the token check; anything else is a 403.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/api/clips", get(list))
        .route("/api/clips/{n}", get(clip))
        .route("/api/clips/{n}/suggestion", get(suggestion))
        .route("/api/clips/{n}/strip.jpg", get(strip))
        .route("/api/clips/{n}/video", get(video))
        .route("/api/clips/{n}/save", post(save))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .layer(middleware::map_response(common_headers))
        .with_state(app)
}

// ---------------------------------------------------------------------------------------
// Access.

/// The token check (and, on loopback, the `Host` check) in front of every route.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if app.options.loopback_only && !loopback_host(request.headers()) {
        return refuse(
            request.uri(),
            "this server answers only to 127.0.0.1 / localhost (Host header refused)",
        );
    }
    let from_query = query_param(request.uri(), "token");
    let query_ok = from_query.as_deref().is_some_and(|t| app.token_ok(t));
    let header_ok = request
        .headers()
        .get("x-vidcap-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| app.token_ok(t));
    let cookie_ok = cookie(request.headers(), &app.cookie).is_some_and(|t| app.token_ok(&t));
    if !(query_ok || header_ok || cookie_ok) {
        return refuse(
            request.uri(),
            "no valid access token: open the address that vidcap annotate printed (with its ?token=…)",
        );
    }
    let mut response = next.run(request).await;
    if query_ok
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            app.cookie, app.options.token
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// 403, as JSON for the API and as a short page otherwise.
fn refuse(uri: &Uri, message: &str) -> Response {
    if uri.path().starts_with("/api/") {
        error(StatusCode::FORBIDDEN, message)
    } else {
        let page = format!(
            "<!doctype html><meta charset=\"utf-8\"><title>403 Forbidden</title><h1>403 Forbidden</h1><p>{}</p>\n",
            html_escape(message)
        );
        let mut response = Response::new(Body::from(page));
        *response.status_mut() = StatusCode::FORBIDDEN;
        set(
            &mut response,
            header::CONTENT_TYPE,
            "text/html; charset=utf-8",
        );
        response
    }
}

/// Headers every answer carries.
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST) else {
        return true; // HTTP/1.0 without Host: it reached a loopback socket
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then(|| value.to_string())
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------
// Answers.

fn set(response: &mut Response, name: header::HeaderName, value: &'static str) {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    set(&mut response, header::CONTENT_TYPE, "application/json");
    response
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

/// An answer other than success: its status and the message the page shows.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn text(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    set(&mut response, header::CONTENT_TYPE, content_type);
    response
}

async fn index() -> Response {
    text(INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js() -> Response {
    text(APP_JS, "text/javascript; charset=utf-8")
}

async fn app_css() -> Response {
    text(APP_CSS, "text/css; charset=utf-8")
}

/// Anything but the page, its API and the listed clips is refused: a path that tries to
/// climb out, a file by name, anything.
async fn fallback(uri: Uri) -> Response {
    let decoded = percent_decode(uri.path());
    let message = if decoded.split(['/', '\\']).any(|part| part == "..") || decoded.contains('\0') {
        "paths that climb out are refused: only the listed clips are served, by number (/api/clips/N/video)"
    } else {
        "not served: only the page, its API and the listed clips, by number (/api/clips/N/video)"
    };
    error(StatusCode::FORBIDDEN, message)
}

/// The clip number of a path segment: 404 when there is no such clip, 403 when the
/// segment looks like a path.
fn clip_index(app: &App, segment: &str) -> Result<usize, Failure> {
    let count = app.ann().clips.len();
    match segment.parse::<usize>() {
        Ok(n) if n < count => Ok(n),
        Ok(n) => Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("no clip {n}: there are {count} (0 to {})", count - 1),
        )),
        Err(_) if segment.contains(['/', '\\', '.']) => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "clips are named by number, never by path",
        )),
        Err(_) => Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("{segment:?} is not a clip number"),
        )),
    }
}

async fn list(State(app): State<Arc<App>>) -> Response {
    let left = app.analyzer.background_left();
    let ann = app.ann();
    let order = app.order(&ann);
    let clips: Vec<Value> = order
        .iter()
        .map(|&i| {
            let clip = &ann.clips[i];
            let analysis = app.analyzer.get(&app.list_keys[i]);
            json!({
                "index": i,
                "id": clip.id,
                "video": clip.video,
                "name": clip.name(),
                "captioned": clip.is_captioned(),
                "split": clip.split.filter(|_| clip.is_captioned()).map(|s| s.as_str()),
                "familiarity": analysis.as_ref().and_then(|a| a.familiarity),
                "familiar": analysis.as_ref().and_then(|a| a.familiar),
                "error": analysis.as_ref().and_then(|a| a.error.clone()),
                "save": format!("/api/clips/{i}/save"),
            })
        })
        .collect();
    let total = ann.clips.len();
    json_response(
        StatusCode::OK,
        &json!({
            "out": ann.out().display().to_string(),
            "total": total,
            "captioned": ann.captioned(),
            "order": if app.options.by_familiarity { "familiarity" } else { "file" },
            "model": app.options.model,
            "analysed": total.saturating_sub(left),
            "analysing": left > 0,
            "resume": ann.next_uncaptioned(&order, None),
            "clips": clips,
        }),
    )
}

async fn clip(State(app): State<Arc<App>>, Path(segment): Path<String>) -> Response {
    let index = match clip_index(&app, &segment) {
        Ok(i) => i,
        Err(failure) => return failure.into_response(),
    };
    let duration = app.duration(index).await;
    let ann = app.ann();
    let order = app.order(&ann);
    let at = order.iter().position(|&o| o == index).unwrap_or(0);
    let clip = &ann.clips[index];
    let n = order.len();
    json_response(
        StatusCode::OK,
        &json!({
            "index": index,
            "id": clip.id,
            "video": clip.video,
            "name": clip.name(),
            "captioned": clip.is_captioned(),
            "captions": clip.captions,
            "split": clip.split.filter(|_| clip.is_captioned()).map(|s| s.as_str()),
            "suggested_split": ann.suggested_split(index).as_str(),
            "start": clip.start,
            "end": clip.end,
            "duration": duration.as_ref().ok(),
            "error": duration.as_ref().err(),
            "position": at + 1,
            "total": n,
            "previous": order[(at + n - 1) % n],
            "following": order[(at + 1) % n],
            "next_uncaptioned": ann.next_uncaptioned(&order, Some(index)),
            "media": format!("/api/clips/{index}/video"),
            "save": format!("/api/clips/{index}/save"),
            "suggestion": format!("/api/clips/{index}/suggestion"),
        }),
    )
}

/// A window asked for in the query: seconds.
#[derive(Debug, Default, Deserialize)]
struct WindowQuery {
    start: Option<f64>,
    end: Option<f64>,
}

/// The clip a path segment names and the analysis of the asked window (computed or cached).
async fn analyse_window(
    app: &App,
    segment: &str,
    window: &WindowQuery,
) -> Result<(usize, WindowKey, Arc<Analysis>), Failure> {
    let index = clip_index(app, segment)?;
    let job = app.job(index, window.start, window.end);
    let key = job.key;
    Ok((index, key, app.analysis(job).await?))
}

async fn suggestion(
    State(app): State<Arc<App>>,
    Path(segment): Path<String>,
    Query(window): Query<WindowQuery>,
) -> Response {
    let (index, key, analysis) = match analyse_window(&app, &segment, &window).await {
        Ok(found) => found,
        Err(failure) => return failure.into_response(),
    };
    let strip = analysis.strip.as_ref().map(|_| {
        let mut url = format!("/api/clips/{index}/strip.jpg?start={}", key.start());
        if let Some(end) = key.end() {
            url.push_str(&format!("&end={end}"));
        }
        url
    });
    json_response(
        StatusCode::OK,
        &json!({
            "index": index,
            "model": app.options.model,
            "start": analysis.start,
            "end": analysis.end,
            "duration": analysis.duration,
            "codec": analysis.codec,
            "frames": analysis.frames,
            "strip": strip,
            "columns": STRIP_COLUMNS,
            "caption": analysis.caption,
            "score": analysis.score,
            "familiarity": analysis.familiarity,
            "familiar": analysis.familiar,
            "error": analysis.error,
        }),
    )
}

async fn strip(
    State(app): State<Arc<App>>,
    Path(segment): Path<String>,
    Query(window): Query<WindowQuery>,
) -> Response {
    let (_, _, analysis) = match analyse_window(&app, &segment, &window).await {
        Ok(found) => found,
        Err(failure) => return failure.into_response(),
    };
    match &analysis.strip {
        Some(jpeg) => {
            let mut response = Response::new(Body::from(jpeg.clone()));
            set(&mut response, header::CONTENT_TYPE, "image/jpeg");
            set(
                &mut response,
                header::CACHE_CONTROL,
                "private, max-age=3600",
            );
            response
        }
        None => error(
            StatusCode::NOT_FOUND,
            analysis
                .error
                .as_deref()
                .unwrap_or("no frame strip (no font to draw the times)"),
        ),
    }
}

async fn video(
    State(app): State<Arc<App>>,
    Path(segment): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let index = match clip_index(&app, &segment) {
        Ok(i) => i,
        Err(failure) => return failure.into_response(),
    };
    if let Some(query) = uri.query() {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap_or("");
            if name != "token" {
                return error(
                    StatusCode::FORBIDDEN,
                    &format!(
                        "unexpected query parameter {:?}: a clip's video is named by its number only",
                        percent_decode(name)
                    ),
                );
            }
        }
    }
    let (path, canonical) = {
        let ann = app.ann();
        let clip = &ann.clips[index];
        (clip.path.clone(), clip.canonical.clone())
    };
    let opened = tokio::task::spawn_blocking(move || open_listed(&path, &canonical)).await;
    let (file, len) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(failure)) => return failure.into_response(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let content_type = video_type(&app.ann().clips[index].canonical);
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len));
    let (status, first, count) = match range {
        Some(Err(Unsatisfiable)) => {
            let mut response = error(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return response;
        }
        Some(Ok(Some((first, last)))) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        _ => (StatusCode::OK, 0, len),
    };
    let mut file = tokio::fs::File::from_std(file);
    if first > 0 {
        use tokio::io::AsyncSeekExt;
        if let Err(e) = file.seek(SeekFrom::Start(first)).await {
            return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
        }
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(count)));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{}/{len}", first + count - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

/// Opens a clip's video and checks that the file opened is the one listed (resolved when
/// the list was made): a file replaced by a link elsewhere since is refused.
fn open_listed(path: &FsPath, canonical: &FsPath) -> Result<(File, u64), Failure> {
    let gone = |e: std::io::Error| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("{}: cannot open: {e}", path.display()),
        )
    };
    let mut file = File::open(path).map_err(gone)?;
    let opened = opened_path(&file).or_else(|| std::fs::canonicalize(path).ok());
    let meta = file.metadata().map_err(gone)?;
    if opened.as_deref() != Some(canonical) || !meta.is_file() {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            format!(
                "{}: no longer the file that was listed (it now leads elsewhere); restart vidcap annotate to list it again",
                path.display()
            ),
        ));
    }
    file.seek(SeekFrom::Start(0)).map_err(gone)?;
    Ok((file, meta.len()))
}

/// The path the kernel opened (Linux); `None` elsewhere.
fn opened_path(file: &File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

fn video_type(path: &FsPath) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "ogv" | "ogg" => "video/ogg",
        "mov" => "video/quicktime",
        "avi" => "video/x-msvideo",
        "ts" | "m2ts" | "mts" => "video/mp2t",
        "mpg" | "mpeg" => "video/mpeg",
        "gif" => "image/gif",
        _ => "application/octet-stream",
    }
}

/// A `Range` header no byte of the file satisfies.
#[derive(Debug, PartialEq)]
pub struct Unsatisfiable;

/// One `bytes=` range of a `len`-byte file, as first and last byte. `Ok(None)`: serve the
/// whole file (no Range semantics apply: another unit, several ranges, or a malformed
/// header, which HTTP says to ignore).
pub fn parse_range(value: &str, len: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // The last N bytes.
        let Ok(n) = last.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || len == 0 {
            return Err(Unsatisfiable);
        }
        return Ok(Some((len.saturating_sub(n), len - 1)));
    }
    let Ok(first) = first.parse::<u64>() else {
        return Ok(None);
    };
    let last = if last.is_empty() {
        None
    } else {
        match last.parse::<u64>() {
            Ok(l) if l >= first => Some(l),
            _ => return Ok(None),
        }
    };
    if first >= len {
        return Err(Unsatisfiable);
    }
    Ok(Some((first, last.map_or(len - 1, |l| l.min(len - 1)))))
}

/// The request body, at most [`MAX_BODY_BYTES`]; a larger one is a 413.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Failure> {
    let too_large = || {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} KiB: nothing was saved",
                MAX_BODY_BYTES / 1024
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > DRAIN_BYTES) {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    let mut data = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            Failure::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            )
        })?;
        if let Ok(bytes) = frame.into_data() {
            total += bytes.len();
            if total <= MAX_BODY_BYTES {
                data.extend_from_slice(&bytes);
            } else if total > DRAIN_BYTES {
                break;
            }
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(data)
}

async fn save(
    State(app): State<Arc<App>>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let index = match clip_index(&app, &segment) {
        Ok(i) => i,
        Err(failure) => return failure.into_response(),
    };
    let body = match read_body(&headers, body).await {
        Ok(body) => body,
        Err(failure) => return failure.into_response(),
    };
    let request = match SaveRequest::parse(&body) {
        Ok(r) => r,
        Err(refused) => return error(StatusCode::BAD_REQUEST, &refused.0),
    };
    let duration = app.duration(index).await;
    if let Err(reason) = &duration {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("the video cannot be read, so it cannot be trained on: {reason}"),
        );
    }
    let worker = Arc::clone(&app);
    let saved = tokio::task::spawn_blocking(move || {
        let mut ann = worker.ann();
        let update = match ann.check(index, request, duration.ok(), None) {
            Ok(update) => update,
            Err(refused) => return Err(Failure::new(StatusCode::BAD_REQUEST, refused.0)),
        };
        if let Err(e) = ann.save(index, update) {
            tracing::error!("{e:#}");
            return Err(Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{e:#}: nothing was saved"),
            ));
        }
        let order = worker.order(&ann);
        let record: Value = ann
            .record_line(index)
            .ok()
            .and_then(|line| serde_json::from_str(&line).ok())
            .unwrap_or(Value::Null);
        Ok(json!({
            "saved": true,
            "index": index,
            "record": record,
            "captioned": ann.captioned(),
            "total": ann.clips.len(),
            "next_uncaptioned": ann.next_uncaptioned(&order, Some(index)),
        }))
    })
    .await;
    match saved {
        Ok(Ok(value)) => json_response(StatusCode::OK, &value),
        Ok(Err(failure)) => failure.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some((900, 999))));
        assert_eq!(parse_range("bytes=-5000", 1000), Ok(Some((0, 999))));
        assert_eq!(parse_range("bytes=990-5000", 1000), Ok(Some((990, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=-0", 1000), Err(Unsatisfiable));
        assert_eq!(parse_range("bytes=5-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
        assert_eq!(parse_range("bytes=x-1", 1000), Ok(None));
    }

    #[test]
    fn hosts_and_tokens() {
        let mut headers = HeaderMap::new();
        for (host, ok) in [
            ("127.0.0.1:8080", true),
            ("localhost:1", true),
            ("[::1]:80", true),
            ("evil.example:8080", false),
            ("127.0.0.1.evil.example", false),
        ] {
            headers.insert(header::HOST, HeaderValue::from_static(host));
            assert_eq!(loopback_host(&headers), ok, "{host}");
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert_eq!(percent_decode("%2e%2E/a+b%2"), "../a+b%2");
    }
}
