//! TODO(skeleton): filled in by the encoder work.
