//! TODO(skeleton): filled in by the train work.
pub mod cache;
pub mod data;
pub mod extract;
