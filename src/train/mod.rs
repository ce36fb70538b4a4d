//! TODO(skeleton): filled in by the train work.
