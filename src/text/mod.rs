//! Words ↔ token ids for the caption decoder.
pub mod vocab;

pub use vocab::Vocab;
