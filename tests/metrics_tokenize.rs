//! The Rust tokenizer against the real PTBTokenizer jar (outputs recorded by
//! scripts/metrics_reference.py in tests/data/metrics/tokenizer_expected.json).
use std::collections::BTreeMap;

use vidcap::text::tokenize::tokenize;

/// `VIDCAP_TOKENIZER_EXPECTED=FILE` checks another caption → jar output map instead (for
/// trying new caption sets; `metrics_reference.py` writes that format).
#[test]
fn tokenizer_matches_ptbtokenizer_jar() {
    let committed = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/metrics/tokenizer_expected.json"
    );
    let path = std::env::var("VIDCAP_TOKENIZER_EXPECTED").unwrap_or(committed.to_string());
    let expected: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(expected.len() > 100);
    let mismatches: Vec<String> = expected
        .iter()
        .filter_map(|(caption, want)| {
            let got = tokenize(caption).join(" ");
            (got != *want).then(|| format!("{caption:?}\n   jar:  {want:?}\n   rust: {got:?}"))
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
