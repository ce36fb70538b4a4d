//! TODO(skeleton): filled in by the decoder work.
