//! CIDEr-D as pycocoevalcap's `Cider` computes it: n = 1..4, tf-idf vectors whose
//! document frequencies count the ids whose references contain the n-gram (over the
//! evaluated set only), cosine similarity with the hypothesis weights clipped at the
//! reference's, a Gaussian penalty on the length difference (sigma 6), the mean over n
//! and over references, ×10.
//!
//! Hand-written for speed rather than a sparse-vector crate: every caption's n-grams are
//! sorted by key, so the tf-idf weights, norms and dot products come from linear merges,
//! and each id looks up its references' document frequencies once, not once per caption.
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::corpus::{Caption, Corpus, MAX_N, NgramKey, key_order};
use super::mean;

const SIGMA: f64 = 6.0;

/// Corpus CIDEr-D (mean over ids) and per-id CIDEr-D, in `corpus.ids` order.
pub fn cider_d(corpus: &Corpus) -> (f64, Vec<f64>) {
    let ref_ngrams: Vec<Vec<NgramKey>> = corpus
        .refs
        .par_iter()
        .map(|refs| distinct_ngrams(refs))
        .collect();
    let df = document_frequencies(&ref_ngrams);
    let log_ids = (corpus.ids.len() as f64).ln();
    let idf = |key: &NgramKey| log_ids - (df.get(key).copied().unwrap_or(0) as f64).max(1.0).ln();
    let per_id: Vec<f64> = (
        corpus.hyps.par_iter(),
        corpus.refs.par_iter(),
        ref_ngrams.par_iter(),
    )
        .into_par_iter()
        .map(|(hyp, refs, keys)| {
            // this id's n-grams with their idf: every reference n-gram is among them
            let local: Vec<(NgramKey, f64)> = keys.iter().map(|k| (*k, idf(k))).collect();
            let hyp_weights: Vec<(NgramKey, f64)> = hyp
                .all_ngrams()
                .iter()
                .map(|&(key, tf)| {
                    let idf = match local.binary_search_by_key(&key, |&(k, _)| k) {
                        Ok(i) => local[i].1,
                        Err(_) => idf(&key),
                    };
                    (key, tf as f64 * idf)
                })
                .collect();
            let hyp_norms = norms(&hyp_weights);
            let hyp_length = bigrams(hyp);
            let mut sum = [0.0; MAX_N];
            for r in refs {
                let ref_weights = weights_from_local(r, &local);
                let similarity = similarity(
                    &hyp_weights,
                    &hyp_norms,
                    hyp_length,
                    &ref_weights,
                    &norms(&ref_weights),
                    bigrams(r),
                );
                for n in 0..MAX_N {
                    sum[n] += similarity[n];
                }
            }
            mean(&sum) / refs.len() as f64 * 10.0
        })
        .collect();
    (mean(&per_id), per_id)
}

/// The distinct n-grams (all orders) of some references, sorted.
fn distinct_ngrams(refs: &[Caption]) -> Vec<NgramKey> {
    let mut keys: Vec<NgramKey> = refs
        .iter()
        .flat_map(|r| r.all_ngrams().iter().map(|&(key, _)| key))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// For every reference n-gram: the number of ids whose references contain it.
fn document_frequencies(ref_ngrams: &[Vec<NgramKey>]) -> FxHashMap<NgramKey, u32> {
    let mut all: Vec<NgramKey> = ref_ngrams.concat();
    all.par_sort_unstable();
    let mut df = FxHashMap::default();
    let mut rest = all.as_slice();
    while let Some(&key) = rest.first() {
        let run = rest.partition_point(|&k| k == key);
        df.insert(key, run as u32);
        rest = &rest[run..];
    }
    df
}

/// A reference's tf-idf weights, its n-grams being a subset of the sorted `local` list.
fn weights_from_local(caption: &Caption, local: &[(NgramKey, f64)]) -> Vec<(NgramKey, f64)> {
    let mut j = 0;
    caption
        .all_ngrams()
        .iter()
        .map(|&(key, tf)| {
            while local[j].0 < key {
                j += 1;
            }
            debug_assert_eq!(local[j].0, key);
            (key, tf as f64 * local[j].1)
        })
        .collect()
}

fn norms(weights: &[(NgramKey, f64)]) -> [f64; MAX_N] {
    let mut squares = [0.0; MAX_N];
    for &(key, w) in weights {
        squares[key_order(key) - 1] += w * w;
    }
    squares.map(f64::sqrt)
}

/// The scorer's "length": the number of bigram occurrences.
fn bigrams(caption: &Caption) -> f64 {
    caption.ngrams(2).iter().map(|&(_, tf)| tf as f64).sum()
}

fn similarity(
    hyp: &[(NgramKey, f64)],
    hyp_norms: &[f64; MAX_N],
    hyp_length: f64,
    reference: &[(NgramKey, f64)],
    ref_norms: &[f64; MAX_N],
    ref_length: f64,
) -> [f64; MAX_N] {
    // clipped dot product over the n-grams both have (both lists sorted by key)
    let mut dot = [0.0; MAX_N];
    let (mut i, mut j) = (0, 0);
    while i < hyp.len() && j < reference.len() {
        let (hk, h) = hyp[i];
        let (rk, r) = reference[j];
        if hk < rk {
            i += 1;
        } else if rk < hk {
            j += 1;
        } else {
            dot[key_order(hk) - 1] += h.min(r) * r;
            i += 1;
            j += 1;
        }
    }
    let delta = hyp_length - ref_length;
    // pycocoevalcap writes np.e ** x; pow(e, x) is kept rather than exp(x) for the last bit
    let penalty = std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
    std::array::from_fn(|n| {
        let mut value = dot[n];
        if hyp_norms[n] != 0.0 && ref_norms[n] != 0.0 {
            value /= hyp_norms[n] * ref_norms[n];
        }
        value * penalty
    })
}
