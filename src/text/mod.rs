//! TODO(skeleton): filled in by the text work.
