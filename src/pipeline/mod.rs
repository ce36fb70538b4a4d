//! The captioning engine behind `caption` and `batch`: what one video's result looks like,
//! and how a batch of inputs is found, sharded, resumed and recorded.
use serde::{Deserialize, Serialize};

pub mod batch;
pub mod caption;
pub mod run;

/// One captioned time span of a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Start of the span, in seconds from the start of the video.
    pub start: f64,
    /// End of the span, in seconds.
    pub end: f64,
    /// The decoder's caption of the span.
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
    /// The class name.
    pub label: String,
    /// Its mean probability.
    pub score: f64,
}

/// Everything vidcap says about one input: its caption(s), or why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoCaptions {
    /// The input as it was named.
    pub video: String,
    /// The whole-video caption (the first segment's when the video was segmented).
    pub caption: Option<String>,
    /// Every captioned span, in time order (one when the video was not segmented).
    pub segments: Vec<Segment>,
    /// Why the input could not be captioned; the other fields are then empty.
    pub error: Option<String>,
    /// Those of `caption` (the first segment's).
    #[serde(default)]
    pub familiarity: Option<f64>,
    /// Whether `familiarity` reaches the threshold (the first segment's).
    #[serde(default)]
    pub familiar: Option<bool>,
    /// With `--tags K`: over all sampled frames of the video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

impl VideoCaptions {
    /// The result of an input that failed with `error`.
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
