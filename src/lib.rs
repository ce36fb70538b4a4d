//! vidcap: video captioning.
//!
//! Data flows one way: `video` (decode, sample) → `encoder` (CNN features) → `decoder`
//! (GRU + temporal attention) → `text` (ids → words) → `output`. `train` and `metrics`
//! close the loop; `cli` wires everything together. Lower layers never import higher ones.
pub mod annotate;
pub mod atomic;
pub mod checkpoint;
pub mod cli;
pub mod dataset;
pub mod decoder;
pub mod encoder;
pub mod familiarity;
pub mod features;
pub mod hash;
pub mod metrics;
pub mod model_path;
pub mod output;
pub mod pipeline;
pub mod simd;
pub mod synth;
pub mod text;
pub mod train;
pub mod video;
