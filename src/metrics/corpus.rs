//! The evaluated set, tokenized once and indexed for every metric: words become integer
//! ids and n-grams become integer keys, so the metrics compare numbers, not strings.
use std::collections::BTreeMap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::MetricsError;
use super::tokenize::tokenize;

/// Longest n-gram the metrics use (BLEU-4, CIDEr n = 1..4).
pub const MAX_N: usize = 4;

/// An n-gram of word ids as one integer: word id + 1 in each 32-bit lane, lane k holding
/// the k-th word, empty lanes zero. Distinct n-grams (of any order) get distinct keys.
pub type NgramKey = u128;

/// One tokenized caption.
#[derive(Debug, Clone)]
pub struct Caption {
    pub words: Vec<u32>,
    /// `counts[n - 1]`: the caption's n-grams with their counts, sorted by key.
    pub counts: [Vec<(NgramKey, u32)>; MAX_N],
}

/// Ids in sorted order with their tokenized hypothesis and references.
#[derive(Debug)]
pub struct Corpus {
    pub ids: Vec<String>,
    pub hyps: Vec<Caption>,
    pub refs: Vec<Vec<Caption>>,
    /// Word of each word id.
    pub vocab: Vec<String>,
}

impl Corpus {
    /// Checks that both sides name the same ids and that no caption is empty (hypotheses
    /// may be when `allow_empty_hyps`), then tokenizes everything.
    pub fn new(
        refs: &BTreeMap<String, Vec<String>>,
        hyps: &BTreeMap<String, String>,
        allow_empty_hyps: bool,
    ) -> Result<Self, MetricsError> {
        validate(refs, hyps, allow_empty_hyps)?;
        let ids: Vec<String> = refs.keys().cloned().collect();
        let tokenized: Vec<(Vec<String>, Vec<Vec<String>>)> = ids
            .par_iter()
            .map(|id| {
                let hyp = tokenize(&hyps[id]);
                let refs = refs[id].iter().map(|r| tokenize(r)).collect();
                (hyp, refs)
            })
            .collect();

        let mut index: FxHashMap<String, u32> = FxHashMap::default();
        let mut vocab = Vec::new();
        let mut intern = |tokens: Vec<String>| -> Result<Vec<u32>, MetricsError> {
            tokens
                .into_iter()
                .map(|t| match index.get(&t) {
                    Some(&id) => Ok(id),
                    None => {
                        let id = u32::try_from(vocab.len())
                            .ok()
                            .filter(|&id| id < u32::MAX)
                            .ok_or(MetricsError::VocabularyOverflow)?;
                        vocab.push(t.clone());
                        index.insert(t, id);
                        Ok(id)
                    }
                })
                .collect()
        };
        let mut hyp_words = Vec::with_capacity(ids.len());
        let mut ref_words = Vec::with_capacity(ids.len());
        for (hyp, refs) in tokenized {
            hyp_words.push(intern(hyp)?);
            ref_words.push(
                refs.into_iter()
                    .map(&mut intern)
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let hyps = hyp_words.into_par_iter().map(Caption::new).collect();
        let refs = ref_words
            .into_par_iter()
            .map(|refs| refs.into_iter().map(Caption::new).collect())
            .collect();
        Ok(Corpus {
            ids,
            hyps,
            refs,
            vocab,
        })
    }

    /// The tokenized caption as pycocoevalcap hands it to the scorers: words joined by spaces.
    pub fn text(&self, caption: &Caption) -> String {
        let words: Vec<&str> = caption
            .words
            .iter()
            .map(|&w| self.vocab[w as usize].as_str())
            .collect();
        words.join(" ")
    }
}

impl Caption {
    fn new(words: Vec<u32>) -> Self {
        let counts = std::array::from_fn(|k| {
            let n = k + 1;
            let mut keys: Vec<NgramKey> = words.windows(n).map(ngram_key).collect();
            keys.sort_unstable();
            let mut counted: Vec<(NgramKey, u32)> = Vec::with_capacity(keys.len());
            for key in keys {
                match counted.last_mut() {
                    Some((last, count)) if *last == key => *count += 1,
                    _ => counted.push((key, 1)),
                }
            }
            counted
        });
        Caption { words, counts }
    }
}

fn ngram_key(words: &[u32]) -> NgramKey {
    words
        .iter()
        .enumerate()
        .fold(0, |key, (k, &w)| key | (u128::from(w) + 1) << (32 * k))
}

/// Count of `key` in a sorted count list (0 when absent).
pub fn count_of(counts: &[(NgramKey, u32)], key: NgramKey) -> u32 {
    counts
        .binary_search_by_key(&key, |&(k, _)| k)
        .map_or(0, |i| counts[i].1)
}

fn validate(
    refs: &BTreeMap<String, Vec<String>>,
    hyps: &BTreeMap<String, String>,
    allow_empty_hyps: bool,
) -> Result<(), MetricsError> {
    if refs.is_empty() && hyps.is_empty() {
        return Err(MetricsError::NoIds);
    }
    let no_hyp: Vec<String> = refs
        .keys()
        .filter(|id| !hyps.contains_key(*id))
        .cloned()
        .collect();
    if !no_hyp.is_empty() {
        return Err(MetricsError::MissingHypotheses(no_hyp));
    }
    let no_refs: Vec<String> = hyps
        .keys()
        .filter(|id| !refs.contains_key(*id))
        .cloned()
        .collect();
    if !no_refs.is_empty() {
        return Err(MetricsError::MissingReferences(no_refs));
    }
    for (id, captions) in refs {
        if captions.is_empty() {
            return Err(MetricsError::NoReferences(id.clone()));
        }
        if let Some(i) = captions.iter().position(|c| c.trim().is_empty()) {
            return Err(MetricsError::EmptyCaption {
                id: id.clone(),
                what: format!("reference {}", i + 1),
            });
        }
    }
    if !allow_empty_hyps {
        if let Some((id, _)) = hyps.iter().find(|(_, h)| h.trim().is_empty()) {
            return Err(MetricsError::EmptyCaption {
                id: id.clone(),
                what: "the hypothesis".to_string(),
            });
        }
    }
    Ok(())
}
