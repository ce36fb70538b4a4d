//! Frames → decoder items: one encoder pass, the grid after the pooled vector, the motion
//! descriptor after every item.
use anyhow::Context;
use candle_core::{DType, Tensor};

use super::{GRID_REGIONS, MOTION_DIM};
use crate::encoder::FrameEncoder;
use crate::video::Frame;
use crate::video::motion::motion_features;

/// Which items each frame becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemLayout {
    /// The encoder's 2×2 grid after the pooled vector (R = [`GRID_REGIONS`]), else R = 1.
    pub grid: bool,
    /// Every item ends with its frame's motion descriptor ([`MOTION_DIM`] values).
    pub motion: bool,
}

impl ItemLayout {
    /// Items per frame.
    pub fn regions(&self) -> usize {
        if self.grid { GRID_REGIONS } else { 1 }
    }

    /// Values per item for an encoder of `encoder_dim` features.
    pub fn item_dim(&self, encoder_dim: usize) -> usize {
        encoder_dim + if self.motion { MOTION_DIM } else { 0 }
    }
}

/// One encoder pass over some frames.
pub struct EncodedItems {
    /// `[T, R, D]` f32: the pooled vector, and with a grid the 2×2 grid after it.
    pub items: Tensor,
    /// The classifier's logits `[T, classes]` of the same pass, when the encoder has a head.
    pub logits: Option<Tensor>,
}

/// Encodes `frames` in one forward pass into items (without motion: that needs the whole
/// clip's frames, see [`append_motion`]).
pub fn encode_items(
    encoder: &dyn FrameEncoder,
    frames: &[Frame],
    grid: bool,
) -> anyhow::Result<EncodedItems> {
    let inputs = frames
        .iter()
        .map(|f| encoder.preprocess(&f.rgb, f.width, f.height))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = encoder.forward(&Tensor::stack(&inputs, 0)?)?;
    let global = out.features.unsqueeze(1)?;
    let items = if grid {
        let grid = out
            .grid
            .with_context(|| format!("encoder {} gives no spatial grid", encoder.name()))?;
        Tensor::cat(&[&global, &grid], 1)?
    } else {
        global
    };
    Ok(EncodedItems {
        items: items.to_dtype(DType::F32)?,
        logits: out.logits,
    })
}

/// `[T, R, D]` items → `[T, R, D + MOTION_DIM]`: every item of frame t ends with frame t's
/// motion descriptor, so attention over items sees where and when things move.
pub fn append_motion(items: &Tensor, frames: &[Frame]) -> anyhow::Result<Tensor> {
    let (t, r, _) = items.dims3()?;
    anyhow::ensure!(
        t == frames.len(),
        "{t} feature rows for {} frames",
        frames.len()
    );
    let motion = Tensor::from_vec(motion_features(frames), (t, 1, MOTION_DIM), items.device())?
        .broadcast_as((t, r, MOTION_DIM))?;
    Ok(Tensor::cat(&[items, &motion], 2)?)
}

/// All of a clip's frames as items in `layout`, encoded `batch` frames per forward pass
/// (bounding the memory of long clips); motion is computed over the whole clip.
pub fn encode_clip_frames(
    encoder: &dyn FrameEncoder,
    frames: &[Frame],
    layout: ItemLayout,
    batch: usize,
) -> anyhow::Result<Tensor> {
    let chunks = frames
        .chunks(batch.max(1))
        .map(|chunk| Ok(encode_items(encoder, chunk, layout.grid)?.items))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let items = Tensor::cat(&chunks, 0)?;
    if layout.motion {
        append_motion(&items, frames)
    } else {
        Ok(items)
    }
}
