//! vidcap: video captioning. FFmpeg samples frames, an EfficientNet-Lite0 encoder turns each
//! into features, and a GRU decoder with temporal attention turns them into a caption.
//!
//! Captioning a file takes a [`Captioner`] (a decoder and the encoder it was trained on) and
//! [`CaptionOptions`]; the result is a [`VideoCaptions`]: the caption, its spans and how
//! familiar the footage is to the decoder.
//!
//! ```
//! use vidcap::{CaptionOptions, Captioner};
//!
//! let models = concat!(env!("CARGO_MANIFEST_DIR"), "/models");
//! let captioner = Captioner::from_dir(format!("{models}/synth-decoder"))?;
//! let video = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/synth/clip_000003.mp4");
//! let result = captioner.caption_file(video, &CaptionOptions::default())?;
//! assert!(!result.caption.unwrap().is_empty());
//! assert!(result.familiarity.is_some_and(|f| (0.0..=1.0).contains(&f)));
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Layers, lowest first (ARCHITECTURE.md has the code map; `tests/architecture.rs` checks
//! that no module imports a higher layer): [`video`], [`text`], [`dataset`] → [`encoder`],
//! [`metrics`] → [`features`] → [`decoder`] → [`familiarity`] → [`train`], [`synth`] →
//! [`pipeline`] → [`output`] → [`annotate`] → `cli`.
pub mod annotate;
#[doc(hidden)]
pub mod atomic;
pub mod checkpoint;
#[doc(hidden)]
pub mod cli;
pub mod dataset;
pub mod decoder;
pub mod encoder;
pub mod familiarity;
pub mod features;
#[doc(hidden)]
pub mod hash;
pub mod metrics;
pub mod model_path;
pub mod output;
pub mod pipeline;
#[doc(hidden)]
pub mod simd;
#[doc(hidden)]
pub mod stamp;
pub mod synth;
pub mod text;
pub mod train;
pub mod video;

pub use decoder::SearchOptions;
pub use features::ClipFeatures;
pub use pipeline::caption::{CaptionOptions, Captioner, SegmentMode};
pub use pipeline::{Segment, Tag, VideoCaptions};
