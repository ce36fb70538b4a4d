//! The evaluated set, tokenized once and indexed for every metric: words become integer
//! ids, n-grams become integer keys, and each id gets a table of the distinct n-grams of
//! its captions, so that a caption's n-grams are small indices into that table and the
//! metrics work on dense per-id arrays instead of hash maps.
use std::collections::BTreeMap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::MetricsError;
use crate::text::tokenize::tokenize_with;

/// Longest n-gram the metrics use (BLEU-4, CIDEr n = 1..4).
pub const MAX_N: usize = 4;

/// An n-gram of word ids as one integer: word id + 1 in 24-bit lanes (lane k holds the
/// k-th word, unused lanes zero) below the order n. Distinct n-grams get distinct keys,
/// sorting keys groups them by order, and a key leaves the low 29 bits of a u128 free.
pub type NgramKey = u128;
const LANE_BITS: usize = 24;
const ORDER_SHIFT: usize = LANE_BITS * MAX_N;
/// Word ids must stay below this so that id + 1 fits a lane.
const MAX_WORDS: usize = (1 << LANE_BITS) - 1;
/// Bits below a shifted key that hold a caption's number while an id's n-grams are sorted.
const CAPTION_BITS: usize = 128 - ORDER_SHIFT - 3;

/// One tokenized caption.
#[derive(Debug, Clone)]
pub struct Caption {
    pub words: Vec<u32>,
    /// All its n-grams (n = 1..4) as (index in the id's n-gram table, count), sorted by
    /// index, hence by key and by order.
    counts: Vec<(u32, u32)>,
    /// `counts[order_starts[n - 1]..order_starts[n]]` are the n-grams of order n.
    order_starts: [usize; MAX_N + 1],
}

/// Ids in sorted order with their tokenized hypothesis and references.
#[derive(Debug)]
pub struct Corpus {
    pub ids: Vec<String>,
    pub hyps: Vec<Caption>,
    pub refs: Vec<Vec<Caption>>,
    /// Per id: the distinct n-grams of its hypothesis and references, sorted.
    pub ngrams: Vec<Vec<NgramKey>>,
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
        // Tokenize in parallel into one buffer per id (tokens separated by spaces, which no
        // token contains) to keep allocations few; words are interned afterwards, in order.
        let tokenized: Vec<(String, Vec<u32>)> = ids
            .par_iter()
            .map(|id| {
                let mut text = String::new();
                let mut lengths = Vec::with_capacity(refs[id].len() + 1);
                for caption in std::iter::once(&hyps[id]).chain(&refs[id]) {
                    let mut length = 0;
                    tokenize_with(caption, |token| {
                        text.push_str(token);
                        text.push(' ');
                        length += 1;
                    });
                    lengths.push(length);
                }
                (text, lengths)
            })
            .collect();

        let mut index: FxHashMap<&str, u32> = FxHashMap::default();
        let mut vocab: Vec<String> = Vec::new();
        let mut words_per_id = Vec::with_capacity(ids.len());
        for (text, lengths) in &tokenized {
            let mut tokens = text.split_terminator(' ');
            let mut captions = Vec::with_capacity(lengths.len());
            for &length in lengths {
                let mut words = Vec::with_capacity(length as usize);
                for token in tokens.by_ref().take(length as usize) {
                    let next = index.len();
                    let id = *index.entry(token).or_insert_with(|| {
                        vocab.push(token.to_string());
                        next as u32
                    });
                    words.push(id);
                }
                captions.push(words);
            }
            if vocab.len() > MAX_WORDS {
                return Err(MetricsError::VocabularyOverflow);
            }
            words_per_id.push(captions);
        }
        drop(index);
        let built: Vec<(Caption, Vec<Caption>, Vec<NgramKey>)> = words_per_id
            .into_par_iter()
            .map_init(Vec::new, |scratch, captions| {
                index_ngrams(captions, scratch)
            })
            .collect();
        let mut hyps = Vec::with_capacity(ids.len());
        let mut refs = Vec::with_capacity(ids.len());
        let mut ngrams = Vec::with_capacity(ids.len());
        for (hyp, id_refs, table) in built {
            hyps.push(hyp);
            refs.push(id_refs);
            ngrams.push(table);
        }
        Ok(Corpus {
            ids,
            hyps,
            refs,
            ngrams,
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

/// One id's captions (hypothesis first) → the hypothesis, the references, and the id's
/// n-gram table. `scratch` is reused between ids to spare allocations.
fn index_ngrams(
    captions: Vec<Vec<u32>>,
    scratch: &mut Vec<u128>,
) -> (Caption, Vec<Caption>, Vec<NgramKey>) {
    // every n-gram occurrence as key << CAPTION_BITS | caption number, sorted: equal keys
    // become runs (one integer sort instead of sorting pairs)
    scratch.clear();
    for (c, words) in captions.iter().enumerate() {
        for n in 1..=MAX_N {
            scratch.extend(
                words
                    .windows(n)
                    .map(|w| ngram_key(w) << CAPTION_BITS | c as u128),
            );
        }
    }
    scratch.sort_unstable();
    let caption_mask = (1u128 << CAPTION_BITS) - 1;
    let mut table: Vec<NgramKey> = Vec::new();
    let mut counts: Vec<Vec<(u32, u32)>> = captions
        .iter()
        .map(|w| Vec::with_capacity(w.len() * MAX_N))
        .collect();
    for &packed in scratch.iter() {
        let key = packed >> CAPTION_BITS;
        if table.last() != Some(&key) {
            table.push(key);
        }
        let index = (table.len() - 1) as u32;
        let list = &mut counts[(packed & caption_mask) as usize];
        match list.last_mut() {
            Some((last, count)) if *last == index => *count += 1,
            _ => list.push((index, 1)),
        }
    }
    let mut built = captions.into_iter().zip(counts).map(|(words, counts)| {
        let order_starts = std::array::from_fn(|n| {
            counts.partition_point(|&(i, _)| key_order(table[i as usize]) <= n)
        });
        Caption {
            words,
            counts,
            order_starts,
        }
    });
    let hyp = built.next().expect("hypothesis first");
    let refs = built.collect();
    (hyp, refs, table)
}

impl Caption {
    /// The caption's n-grams of order `n` (1..=4): (table index, count), sorted.
    pub fn ngrams(&self, n: usize) -> &[(u32, u32)] {
        &self.counts[self.order_starts[n - 1]..self.order_starts[n]]
    }

    /// All its n-grams, every order.
    pub fn all_ngrams(&self) -> &[(u32, u32)] {
        &self.counts
    }
}

fn ngram_key(words: &[u32]) -> NgramKey {
    let order = (words.len() as u128) << ORDER_SHIFT;
    words.iter().enumerate().fold(order, |key, (k, &w)| {
        key | (u128::from(w) + 1) << (LANE_BITS * k)
    })
}

pub fn key_order(key: NgramKey) -> usize {
    (key >> ORDER_SHIFT) as usize
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
        if captions.len() >= 1 << CAPTION_BITS {
            return Err(MetricsError::TooManyReferences(id.clone()));
        }
        if let Some(i) = captions.iter().position(|c| c.trim().is_empty()) {
            return Err(MetricsError::EmptyCaption {
                id: id.clone(),
                what: format!("reference {}", i + 1),
            });
        }
    }
    if !allow_empty_hyps && let Some((id, _)) = hyps.iter().find(|(_, h)| h.trim().is_empty()) {
        return Err(MetricsError::EmptyCaption {
            id: id.clone(),
            what: "the hypothesis".to_string(),
        });
    }
    Ok(())
}
