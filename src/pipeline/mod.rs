//! The captioning engine behind `caption` and `batch`: what one video's result looks like,
//! and how a batch of inputs is found, sharded, resumed and recorded.
use serde::{Deserialize, Serialize};

pub mod batch;
pub mod caption;
pub mod run;

/// One captioned time span of a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub caption: String,
    /// Length-normalised log-probability of the caption under the decoder.
    pub score: f32,
}

/// Everything vidcap says about one input: its caption(s), or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoCaptions {
    pub video: String,
    /// The whole-video caption (the first segment's when the video was segmented).
    pub caption: Option<String>,
    pub segments: Vec<Segment>,
    pub error: Option<String>,
}

impl VideoCaptions {
    pub fn failed(video: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            video: video.into(),
            caption: None,
            segments: Vec::new(),
            error: Some(error.into()),
        }
    }
}
