//! CIDEr-D as pycocoevalcap's `Cider` computes it: n = 1..4, tf-idf vectors whose
//! document frequencies count the ids whose references contain the n-gram (over the
//! evaluated set only), cosine similarity with the hypothesis weights clipped at the
//! reference's, a Gaussian penalty on the length difference (sigma 6), the mean over n
//! and over references, ×10.
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::corpus::{Caption, Corpus, MAX_N, NgramKey};
use super::mean;

const SIGMA: f64 = 6.0;

/// A caption's tf-idf weights per order (sorted by key), their norms, and its length as
/// the scorer measures it (the number of bigrams).
struct Vector {
    weights: [Vec<(NgramKey, f64)>; MAX_N],
    norms: [f64; MAX_N],
    length: f64,
}

/// Corpus CIDEr-D (mean over ids) and per-id CIDEr-D, in `corpus.ids` order.
pub fn cider_d(corpus: &Corpus) -> (f64, Vec<f64>) {
    let df = document_frequencies(corpus);
    let log_ids = (corpus.ids.len() as f64).ln();
    let per_id: Vec<f64> = corpus
        .hyps
        .par_iter()
        .zip(corpus.refs.par_iter())
        .map(|(hyp, refs)| {
            let hyp = vector(hyp, &df, log_ids);
            let mut sum = [0.0; MAX_N];
            for r in refs {
                let similarity = similarity(&hyp, &vector(r, &df, log_ids));
                for n in 0..MAX_N {
                    sum[n] += similarity[n];
                }
            }
            mean(&sum) / refs.len() as f64 * 10.0
        })
        .collect();
    (mean(&per_id), per_id)
}

/// For every n-gram of the references: the number of ids whose references contain it.
fn document_frequencies(corpus: &Corpus) -> FxHashMap<NgramKey, u32> {
    let per_id: Vec<Vec<NgramKey>> = corpus
        .refs
        .par_iter()
        .map(|refs| {
            let mut keys: Vec<NgramKey> = refs
                .iter()
                .flat_map(|r| r.all_ngrams().iter().map(|&(key, _)| key))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            keys
        })
        .collect();
    let mut all: Vec<NgramKey> = per_id.into_iter().flatten().collect();
    all.par_sort_unstable();
    let mut df = FxHashMap::default();
    df.reserve(all.len() / 2);
    for key in all {
        *df.entry(key).or_insert(0) += 1;
    }
    df
}

fn vector(caption: &Caption, df: &FxHashMap<NgramKey, u32>, log_ids: f64) -> Vector {
    let mut norms = [0.0; MAX_N];
    let weights = std::array::from_fn(|n| {
        caption
            .ngrams(n + 1)
            .iter()
            .map(|&(key, tf)| {
                let doc_freq = df.get(&key).copied().unwrap_or(0) as f64;
                let weight = tf as f64 * (log_ids - doc_freq.max(1.0).ln());
                norms[n] += weight * weight;
                (key, weight)
            })
            .collect::<Vec<_>>()
    });
    let norms = norms.map(f64::sqrt);
    let length = caption.ngrams(2).iter().map(|&(_, tf)| tf as f64).sum();
    Vector {
        weights,
        norms,
        length,
    }
}

fn similarity(hyp: &Vector, reference: &Vector) -> [f64; MAX_N] {
    let delta = hyp.length - reference.length;
    // pycocoevalcap writes np.e ** x; pow(e, x) is kept rather than exp(x) for the last bit
    let penalty = std::f64::consts::E.powf(-(delta * delta) / (2.0 * SIGMA * SIGMA));
    std::array::from_fn(|n| {
        let mut value: f64 = hyp.weights[n]
            .iter()
            .map(|&(key, h)| {
                let r = weight_of(&reference.weights[n], key);
                h.min(r) * r
            })
            .sum();
        if hyp.norms[n] != 0.0 && reference.norms[n] != 0.0 {
            value /= hyp.norms[n] * reference.norms[n];
        }
        value * penalty
    })
}

fn weight_of(weights: &[(NgramKey, f64)], key: NgramKey) -> f64 {
    weights
        .binary_search_by_key(&key, |&(k, _)| k)
        .map_or(0.0, |i| weights[i].1)
}
