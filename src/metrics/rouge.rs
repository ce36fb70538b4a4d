//! ROUGE-L as pycocoevalcap's `Rouge`: LCS-based precision and recall against each
//! reference, the maximum of each over the references, F-measure with beta 1.2, mean over ids.
use rayon::prelude::*;

use super::corpus::{Caption, Corpus};
use super::mean;

const BETA: f64 = 1.2;

/// Corpus ROUGE-L (mean over ids) and per-id ROUGE-L, in `corpus.ids` order.
pub fn rouge_l(corpus: &Corpus) -> (f64, Vec<f64>) {
    let per_id: Vec<f64> = corpus
        .hyps
        .par_iter()
        .zip(corpus.refs.par_iter())
        .map(|(hyp, refs)| score(hyp, refs))
        .collect();
    (mean(&per_id), per_id)
}

fn score(hyp: &Caption, refs: &[Caption]) -> f64 {
    // precision and recall are each maximised over the references on their own
    let (mut prec_max, mut rec_max) = (0.0f64, 0.0f64);
    for r in refs {
        let (lcs, hyp_len, ref_len) = lcs_as_pycocoevalcap(&hyp.words, &r.words);
        prec_max = prec_max.max(lcs as f64 / hyp_len as f64);
        rec_max = rec_max.max(lcs as f64 / ref_len as f64);
    }
    if prec_max != 0.0 && rec_max != 0.0 {
        let beta2 = BETA * BETA;
        ((1.0 + beta2) * prec_max * rec_max) / (rec_max + beta2 * prec_max)
    } else {
        0.0
    }
}

/// LCS length and the two lengths as pycocoevalcap sees them: it splits the tokenized
/// caption on " ", so a caption with no tokens is one empty token (that matches only
/// another empty caption).
fn lcs_as_pycocoevalcap(a: &[u32], b: &[u32]) -> (usize, usize, usize) {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => (1, 1, 1),
        (true, false) => (0, 1, b.len()),
        (false, true) => (0, a.len(), 1),
        (false, false) => (lcs(a, b), a.len(), b.len()),
    }
}

/// Length of the longest common subsequence, one DP row at a time.
fn lcs(a: &[u32], b: &[u32]) -> usize {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut row = vec![0u32; short.len() + 1];
    for &x in long {
        let mut diagonal = 0;
        for (j, &y) in short.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if x == y {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[short.len()] as usize
}
