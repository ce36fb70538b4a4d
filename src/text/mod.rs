//! Caption text: the PTB-style tokenizer shared by the vocabulary and the metrics, and
//! words ↔ token ids for the caption decoder.
pub mod tokenize;
pub mod vocab;

pub use vocab::Vocab;
