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
    /// Fraction of the model's validation clips that look less like its training clips
    /// than this span (0–1); null when the model has no familiarity summary.
    #[serde(default)]
    pub familiarity: Option<f64>,
    /// Whether `familiarity` reaches `--min-familiarity`: false means the footage is unlike
    /// anything the decoder was trained on, and the caption is probably wrong.
    #[serde(default)]
    pub familiar: Option<bool>,
    /// With `--tags K`: the encoder's K most probable ImageNet classes, averaged over the
    /// span's sampled frames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

/// One ImageNet class and its mean probability over the sampled frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub label: String,
    pub score: f64,
}

/// Everything vidcap says about one input: its caption(s), or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoCaptions {
    pub video: String,
    /// The whole-video caption (the first segment's when the video was segmented).
    pub caption: Option<String>,
    pub segments: Vec<Segment>,
    pub error: Option<String>,
    /// Those of `caption` (the first segment's).
    #[serde(default)]
    pub familiarity: Option<f64>,
    #[serde(default)]
    pub familiar: Option<bool>,
    /// With `--tags K`: over all sampled frames of the video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

impl VideoCaptions {
    pub fn failed(video: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            video: video.into(),
            caption: None,
            segments: Vec::new(),
            error: Some(error.into()),
            familiarity: None,
            familiar: None,
            tags: None,
        }
    }
}
