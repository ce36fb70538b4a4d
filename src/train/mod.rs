//! Training the caption decoder: the optimiser and schedule, and the BPTT training loop over
//! the clips of a [`crate::dataset`] whose features [`crate::features`] cached.
pub mod optim;
pub mod report;
pub mod trainer;
