//! Video decoding and frame sampling on FFmpeg (ffmpeg-next).
//!
//! `probe` reads a file's video properties; `sample_frames` / `for_each_frame` return
//! RGB24 frames at chosen timestamps, scaled inside the swscale conversion (so full-size
//! RGB frames are never held) and rotated to display orientation afterwards.
//!
//! Timeline: `SampleSpec::start`/`end` and the sampling targets are seconds from the start
//! of the video stream (as `ffmpeg -ss`); `Frame::pts` is the frame's true presentation
//! timestamp in seconds (as ffprobe's `pts_time`). For the usual files that start at 0 the
//! two agree.
use std::path::PathBuf;
use std::sync::Once;

use serde::Serialize;

/// Extensions of video files, in order of preference where one stem has several (a dataset's
/// clip found by its id) and taken without looking inside when listing a folder.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "avi", "webm", "mkv", "m4v", "mov", "flv", "mpg", "mpeg", "ts", "m2ts", "mts", "wmv",
    "ogv", "3gp", "3g2", "mxf", "dv", "vob", "y4m", "gif",
];

mod decode;
pub mod motion;
mod sample;
pub mod scene;

pub use decode::probe;
pub use sample::{SampleSpec, Sampling, for_each_frame, sample_frames, set_decode_threads};

/// Properties of a file's best video stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoInfo {
    pub path: PathBuf,
    /// Video stream duration, or the container's when the stream has none.
    pub duration_s: f64,
    /// Display size, i.e. after rotation.
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// FFmpeg codec name, e.g. "h264".
    pub codec: String,
    pub frame_count_estimate: u64,
    /// Degrees clockwise to display: 0, 90, 180 or 270.
    pub rotation: i32,
    /// FFmpeg pixel format name, e.g. "yuv420p".
    pub pixel_format: String,
    /// Presentation time of the stream's start, seconds (0 for most files).
    pub start_time_s: f64,
}

/// One decoded frame as tightly packed RGB24 (`height * width * 3` bytes), display-oriented.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Position in the sampled sequence (0, 1, 2, ...).
    pub index: usize,
    /// True presentation timestamp, seconds.
    pub pts: f64,
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

/// Every error names the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
    #[error("{}: is a directory, not a video file", .path.display())]
    IsDirectory { path: PathBuf },
    #[error("{}: cannot read: {reason}", .path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: not a readable video file: unknown format, or truncated/damaged ({reason})", .path.display())]
    NotVideo { path: PathBuf, reason: String },
    #[error("{}: no video stream ({reason})", .path.display())]
    NoVideoStream { path: PathBuf, reason: String },
    #[error("{}: cannot decode {codec} video: {reason}", .path.display())]
    Codec {
        path: PathBuf,
        codec: String,
        reason: String,
    },
    #[error("{}: no decodable video frame ({reason})", .path.display())]
    NoFrames { path: PathBuf, reason: String },
    #[error("{}: file is truncated or damaged: {reason}", .path.display())]
    Truncated { path: PathBuf, reason: String },
    #[error("{}: decoding stalled: {reason}", .path.display())]
    Stalled { path: PathBuf, reason: String },
    #[error("{}: invalid sampling request: {reason}", .path.display())]
    InvalidSpec { path: PathBuf, reason: String },
    #[error("{}: the window starts at {start}s, after the video ends ({duration:.3}s)", .path.display())]
    WindowPastEnd {
        path: PathBuf,
        start: f64,
        duration: f64,
    },
    #[error("{}: {reason}", .path.display())]
    Consumer { path: PathBuf, reason: String },
}

static FFMPEG_INIT: Once = Once::new();

/// Initialises FFmpeg once and silences its own log (our warnings go through `tracing`).
pub(crate) fn init_ffmpeg() {
    FFMPEG_INIT.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Quiet);
    });
}

/// FFmpeg's own log on stderr: 0 = silent (default), 1 = errors, 2 = warnings, 3+ = info.
pub fn set_ffmpeg_verbosity(level: u8) {
    use ffmpeg_next::log::Level;
    init_ffmpeg();
    ffmpeg_next::log::set_level(match level {
        0 => Level::Quiet,
        1 => Level::Error,
        2 => Level::Warning,
        _ => Level::Info,
    });
}

/// Output size of the frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resize {
    /// Shorter side to N, longer side trunc(N * long / short), as the encoder's reference
    /// preprocessing.
    ShortSide(u32),
    Native,
}

impl Resize {
    /// Output size for a `width` x `height` source (rotation does not change the result).
    pub fn apply(self, width: u32, height: u32) -> (u32, u32) {
        match self {
            Resize::Native => (width, height),
            Resize::ShortSide(n) => {
                let scale_long = |long: u32, short: u32| {
                    ((u64::from(n) * u64::from(long)) / u64::from(short)).max(1) as u32
                };
                if width <= height {
                    (n, scale_long(height, width))
                } else {
                    (scale_long(width, height), n)
                }
            }
        }
    }
}
