//! Frame encoders: a pretrained CNN turns each preprocessed frame into one feature vector.
//!
//! Every backbone (the built-in EfficientNet-Lite0, hub backbones) implements
//! [`FrameEncoder`], so callers pick one by name (see [`registry::load_encoder`]) and never
//! care which it is.
use candle_core::Tensor;

pub mod efficientnet_lite;
pub mod hub;
pub mod kernels;
pub mod preprocess;
pub mod registry;

pub use registry::{encoder_dir, load_encoder, load_encoder_beside};

/// What one forward pass gives: pooled features and, for classifiers, the class logits.
pub struct EncoderOutput {
    /// `[N, feature_dim]`, f32.
    pub features: Tensor,
    /// `[N, num_classes]`, f32, when the backbone has a classifier head.
    pub logits: Option<Tensor>,
    /// `[N, 4, feature_dim]`, f32: the final feature map average-pooled to a 2×2 grid
    /// (row-major: top-left, top-right, bottom-left, bottom-right; adaptive cells as torch's
    /// `adaptive_avg_pool2d`), so the decoder can attend to where things are.
    pub grid: Option<Tensor>,
}

/// Which outputs a forward pass must compute besides the pooled features: a caller that needs
/// neither the grid nor the logits (`vidcap embed`) saves the classifier's pass over its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outputs {
    pub grid: bool,
    pub logits: bool,
}

impl Outputs {
    pub const ALL: Outputs = Outputs {
        grid: true,
        logits: true,
    };
    pub const FEATURES: Outputs = Outputs {
        grid: false,
        logits: false,
    };
}

/// A pretrained image backbone with its own preprocessing.
pub trait FrameEncoder: Send + Sync {
    /// Registry name, e.g. `efficientnet-lite0`; recorded in feature caches and decoder configs.
    fn name(&self) -> &str;
    /// Length of one feature vector.
    fn feature_dim(&self) -> usize;
    /// Side of the square network input (e.g. 224).
    fn input_size(&self) -> usize;
    /// Shorter side the video layer should scale frames to before `preprocess` (e.g. 256).
    fn resize_shorter(&self) -> u32;
    /// One tightly packed RGB24 image (`height * width * 3` bytes) to a CHW float tensor
    /// `[3, input_size, input_size]` with this backbone's resize, crop and normalisation.
    fn preprocess(&self, rgb: &[u8], width: u32, height: u32) -> anyhow::Result<Tensor>;
    /// Forward a preprocessed batch `[N, 3, input_size, input_size]`.
    fn forward(&self, batch: &Tensor) -> anyhow::Result<EncoderOutput>;
    /// [`Self::forward`] that need compute only the `wanted` outputs besides the features
    /// (an encoder may still return the others).
    fn forward_outputs(&self, batch: &Tensor, wanted: Outputs) -> anyhow::Result<EncoderOutput> {
        let _ = wanted;
        self.forward(batch)
    }
    /// Class names for the logits, if any.
    fn labels(&self) -> Option<&[String]>;
}
