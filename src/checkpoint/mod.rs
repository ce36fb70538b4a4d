//! TODO(skeleton): filled in by the checkpoint work.
