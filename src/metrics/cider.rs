//! CIDEr-D as pycocoevalcap's `Cider` computes it: n = 1..4, tf-idf vectors whose
//! document frequencies count the ids whose references contain the n-gram (over the
//! evaluated set only), cosine similarity with the hypothesis weights clipped at the
//! reference's, a Gaussian penalty on the length difference (sigma 6), the mean over n
//! and over references, ×10.
//!
//! Hand-written for speed rather than with sparse vectors in hash maps: each id looks up
//! the document frequencies of its n-gram table once, and the hypothesis's tf-idf vector
//! is a dense array over that table, so a reference's similarity is one pass over its own
//! n-grams.
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::corpus::{Caption, Corpus, MAX_N, NgramKey};
use super::mean;

const SIGMA: f64 = 6.0;

/// Corpus CIDEr-D (mean over ids) and per-id CIDEr-D, in `corpus.ids` order.
pub fn cider_d(corpus: &Corpus) -> (f64, Vec<f64>) {
    let idf = inverse_document_frequencies(corpus);
    let per_id: Vec<f64> = (
        corpus.hyps.par_iter(),
        corpus.refs.par_iter(),
        idf.par_iter(),
    )
        .into_par_iter()
        .map_init(Vec::new, |hyp_weights, (hyp, refs, idf)| {
            hyp_weights.clear();
            hyp_weights.resize(idf.len(), 0.0);
            for &(i, tf) in hyp.all_ngrams() {
                hyp_weights[i as usize] = tf as f64 * idf[i as usize];
            }
            let hyp_norms = norms(hyp, idf);
            let hyp_length = bigrams(hyp);
            let mut sum = [0.0; MAX_N];
            for r in refs {
                let similarity = similarity(hyp_weights, &hyp_norms, hyp_length, r, idf);
                for n in 0..MAX_N {
                    sum[n] += similarity[n];
                }
            }
            mean(&sum) / refs.len() as f64 * 10.0
        })
        .collect();
    (mean(&per_id), per_id)
}

/// Per id, the idf of each n-gram of its table: ln(number of ids) − ln(max(1, df)), where
/// df counts the ids whose references contain the n-gram.
fn inverse_document_frequencies(corpus: &Corpus) -> Vec<Vec<f64>> {
    // one global number per distinct n-gram, so that counting is array indexing
    let mut global_of: FxHashMap<NgramKey, u32> = FxHashMap::default();
    let global: Vec<Vec<u32>> = corpus
        .ngrams
        .iter()
        .map(|table| {
            table
                .iter()
                .map(|&key| {
                    let next = global_of.len() as u32;
                    *global_of.entry(key).or_insert(next)
                })
                .collect()
        })
        .collect();
    let distinct = global_of.len();
    drop(global_of);

    let in_refs: Vec<Vec<u32>> = (corpus.refs.par_iter(), global.par_iter())
        .into_par_iter()
        .map(|(refs, global)| {
            let mut seen = vec![false; global.len()];
            for r in refs {
                for &(i, _) in r.all_ngrams() {
                    seen[i as usize] = true;
                }
            }
            (0..global.len())
                .filter(|&i| seen[i])
                .map(|i| global[i])
                .collect()
        })
        .collect();
    let mut df = vec![0u32; distinct];
    for g in in_refs.iter().flatten() {
        df[*g as usize] += 1;
    }
    drop(in_refs);

    let log_ids = (corpus.ids.len() as f64).ln();
    let idf: Vec<f64> = df
        .iter()
        .map(|&d| log_ids - (d as f64).max(1.0).ln())
        .collect();
    global
        .par_iter()
        .map(|g| g.iter().map(|&g| idf[g as usize]).collect())
        .collect()
}

/// Per order, the norm of a caption's tf-idf vector.
fn norms(caption: &Caption, idf: &[f64]) -> [f64; MAX_N] {
    std::array::from_fn(|n| {
        caption
            .ngrams(n + 1)
            .iter()
            .map(|&(i, tf)| {
                let w = tf as f64 * idf[i as usize];
                w * w
            })
            .sum::<f64>()
            .sqrt()
    })
}

/// The scorer's "length": the number of bigram occurrences.
fn bigrams(caption: &Caption) -> f64 {
    caption.ngrams(2).iter().map(|&(_, tf)| tf as f64).sum()
}

fn similarity(
    hyp_weights: &[f64],
    hyp_norms: &[f64; MAX_N],
    hyp_length: f64,
    reference: &Caption,
    idf: &[f64],
) -> [f64; MAX_N] {
    let ref_norms = norms(reference, idf);
    let delta = hyp_length - bigrams(reference);
    // pycocoevalcap writes np.e ** x; pow(e, x) is kept rather than exp(x) for the last bit
    let penalty = std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
    std::array::from_fn(|n| {
        // clipped dot product; n-grams absent from the hypothesis add min(0, r)·r = 0
        let mut value: f64 = reference
            .ngrams(n + 1)
            .iter()
            .map(|&(i, tf)| {
                let r = tf as f64 * idf[i as usize];
                hyp_weights[i as usize].min(r) * r
            })
            .sum();
        if hyp_norms[n] != 0.0 && ref_norms[n] != 0.0 {
            value /= hyp_norms[n] * ref_norms[n];
        }
        value * penalty
    })
}
