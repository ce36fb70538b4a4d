//! The seam between the encoder and the decoder: how a clip's sampled frames become the
//! feature items the decoder attends over, and where those items come from (computed now, or
//! read from the per-clip cache that `vidcap extract` fills).
//!
//! A clip is `[T, R, D]` f32 items: T sampled frames; R = 1 (the encoder's global pool) or
//! [`GRID_REGIONS`] (the pool, then its 2×2 grid); D = the encoder's feature size, plus
//! [`MOTION_DIM`] when every item ends with its frame's motion descriptor. Captioning,
//! batch runs, extraction, training and evaluation all build items through this module, so a
//! decoder always sees the layout it was trained on.
pub mod assemble;
pub mod cache;
pub mod extract;
pub mod source;

use anyhow::ensure;

/// Values of one frame's motion descriptor (computed by [`crate::video::motion`]).
pub use crate::video::motion::MOTION_DIM;
pub use assemble::{EncodedItems, ItemLayout, append_motion, encode_items};
pub use source::{FeatureSource, FeatureSpec, LoadedSplit};

/// Regions per frame when the encoder's 2×2 grid is stored with the global pool:
/// `[global, top-left, top-right, bottom-left, bottom-right]`.
pub const GRID_REGIONS: usize = 5;

/// The version of the motion descriptor that items carry, recorded with cached features.
pub const MOTION_FEATURES: &str = "blocks8x8-v1";

/// Features of one clip: row-major `[frames, regions, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipFeatures {
    pub features: Vec<f32>,
    pub frames: usize,
    pub regions: usize,
    pub dim: usize,
}

impl ClipFeatures {
    /// Items `[T, R, D]` copied out of a tensor (any float dtype).
    pub fn from_tensor(items: &candle_core::Tensor) -> anyhow::Result<Self> {
        let (frames, regions, dim) = items.dims3()?;
        Ok(Self {
            features: items
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?,
            frames,
            regions,
            dim,
        })
    }

    /// Whether the values fill `[frames, regions, dim]` and there is at least one frame.
    pub fn check_shape(&self) -> anyhow::Result<()> {
        ensure!(
            self.features.len() == self.frames * self.regions * self.dim,
            "clip features hold {} values, not frames {} × regions {} × dim {}",
            self.features.len(),
            self.frames,
            self.regions,
            self.dim
        );
        ensure!(self.frames >= 1, "clip has no frames");
        Ok(())
    }
}
