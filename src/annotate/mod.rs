//! `vidcap annotate`: caption your own clips in a browser page served on 127.0.0.1, with
//! the model's suggestions, saved at every change as a vidcap JSONL dataset.
//!
//! * [`clips`]: which clips are on the page (inputs, an existing dataset, the annotation
//!   file itself), what a save may contain, and the file every save rewrites atomically.
//! * [`analysis`]: a worker thread that samples each clip's frames (the strip on the page)
//!   and captions them with the model (the suggestion, and the familiarity that orders the
//!   list), on demand first and for every clip in the background.
//! * [`lock`]: one server per annotation file.
//! * [`server`]: the HTTP side (axum): the access token, the page, the clips' API, the
//!   videos with range requests.
pub mod analysis;
pub mod clips;
pub mod lock;
pub mod server;
