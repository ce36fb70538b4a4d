//! TODO(skeleton): filled in by the synth work.
