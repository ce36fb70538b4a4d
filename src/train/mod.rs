//! Training the caption decoder: datasets → clips, the per-clip feature cache, the optimiser
//! and schedule, and the BPTT training loop.
pub mod cache;
pub mod data;
pub mod extract;
pub mod optim;
pub mod trainer;
