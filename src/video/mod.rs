//! TODO(skeleton): filled in by the video work.
