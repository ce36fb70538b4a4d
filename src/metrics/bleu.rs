//! BLEU-1..4 as pycocoevalcap's `Bleu(4)` computes it (David Chiang's bleu_scorer with the
//! "closest" reference length): clipped n-gram counts against the per-n-gram maximum over
//! the references, and the tiny/small constants that keep zero counts finite.
use rayon::prelude::*;

use super::corpus::{Caption, Corpus, MAX_N};

/// Added to the matched count (keeps log-free products non-zero).
const TINY: f64 = 1e-15;
/// Added to the candidate count (avoids division by zero).
const SMALL: f64 = 1e-9;

/// What one id contributes: its length, the chosen reference length, and per order the
/// number of candidate n-grams (`guess`) and of clipped matches (`correct`).
#[derive(Debug, Clone, Copy)]
struct Stats {
    testlen: usize,
    reflen: usize,
    guess: [usize; MAX_N],
    correct: [usize; MAX_N],
}

/// Corpus BLEU-1..4 and per-id BLEU-1..4, in `corpus.ids` order.
pub fn bleu(corpus: &Corpus) -> ([f64; MAX_N], Vec<[f64; MAX_N]>) {
    let stats: Vec<Stats> = (
        corpus.hyps.par_iter(),
        corpus.refs.par_iter(),
        corpus.ngrams.par_iter(),
    )
        .into_par_iter()
        .map_init(Vec::new, |max_ref, (hyp, refs, table)| {
            stats(hyp, refs, table.len(), max_ref)
        })
        .collect();
    let per_id = stats.iter().map(score).collect();
    let mut total = Stats {
        testlen: 0,
        reflen: 0,
        guess: [0; MAX_N],
        correct: [0; MAX_N],
    };
    for s in &stats {
        total.testlen += s.testlen;
        total.reflen += s.reflen;
        for k in 0..MAX_N {
            total.guess[k] += s.guess[k];
            total.correct[k] += s.correct[k];
        }
    }
    (score(&total), per_id)
}

/// `max_ref` is scratch space for the largest count of each n-gram of the id's table in
/// any one reference (the clipping bound).
fn stats(hyp: &Caption, refs: &[Caption], table_len: usize, max_ref: &mut Vec<u32>) -> Stats {
    let testlen = hyp.words.len();
    // closest reference length; ties go to the shorter reference
    let reflen = refs
        .iter()
        .map(|r| r.words.len())
        .min_by_key(|&l| (l.abs_diff(testlen), l))
        .unwrap_or(0);
    max_ref.clear();
    max_ref.resize(table_len, 0);
    for r in refs {
        for &(i, count) in r.all_ngrams() {
            let bound = &mut max_ref[i as usize];
            *bound = (*bound).max(count);
        }
    }
    let mut guess = [0; MAX_N];
    let mut correct = [0; MAX_N];
    for k in 0..MAX_N {
        guess[k] = (testlen + 1).saturating_sub(k + 1);
        correct[k] = hyp
            .ngrams(k + 1)
            .iter()
            .map(|&(i, count)| count.min(max_ref[i as usize]) as usize)
            .sum();
    }
    Stats {
        testlen,
        reflen,
        guess,
        correct,
    }
}

/// BLEU-1..4 of accumulated statistics, in bleu_scorer's order of operations.
fn score(s: &Stats) -> [f64; MAX_N] {
    let mut bleus = [0.0; MAX_N];
    let mut product = 1.0;
    for (k, bleu) in bleus.iter_mut().enumerate() {
        product *= (s.correct[k] as f64 + TINY) / (s.guess[k] as f64 + SMALL);
        *bleu = product.powf(1.0 / (k + 1) as f64);
    }
    let ratio = (s.testlen as f64 + TINY) / (s.reflen as f64 + SMALL);
    if ratio < 1.0 {
        let brevity = (1.0 - 1.0 / ratio).exp();
        for b in &mut bleus {
            *b *= brevity;
        }
    }
    bleus
}
