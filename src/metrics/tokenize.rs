//! Caption tokenization shared by the metrics and the vocabulary.
//! (Skeleton version; the metrics work replaces it with exact PTBTokenizer parity.)

/// Lower-cased tokens of one caption, punctuation removed.
pub fn tokenize(caption: &str) -> Vec<String> {
    caption
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\''))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}
