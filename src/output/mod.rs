//! TODO(skeleton): filled in by the output work.
