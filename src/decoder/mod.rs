//! GRU caption decoder (PyTorch nn.GRU gate order and names) with additive temporal
//! attention over the clip's frame/region features, its hand-written BPTT, and search.
pub mod bptt;
pub mod half;
pub mod io;
pub mod linalg;
pub mod model;
pub mod params;
pub mod search;
pub mod step;

pub use model::{Arch, CaptionModel, DecoderConfig};
pub use params::{Dims, Weights};
pub use search::{Hypothesis, SearchOptions};
