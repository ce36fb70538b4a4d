//! Greedy and beam search over the decoder, batched over clips (every live hypothesis of
//! every clip is one row of the same matmuls).
use super::bptt::{
    attention_weights_with, gru_cell_with, items_with_regions, mean_items, output_logits,
    weighted_sum,
};
use super::linalg::{
    RowsProduct, View, exp_fast, rows_products, sigmoid_fast, sum_lanes, tanh_fast,
};
use anyhow::Context;

use super::model::CaptionModel;
use super::params::{Dims, Weights};
use crate::features::ClipFeatures;
use crate::text::vocab::{BOS, EOS, PAD};

#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// Beam width; 1 is greedy search.
    pub beam: usize,
    /// Most tokens generated per caption, `<eos>` included.
    pub max_len: usize,
    /// Score = log-prob / len^length_penalty (0: raw log-prob, 1: mean per token).
    pub length_penalty: f32,
    /// Never emit a token that repeats an n-gram of this length already in the caption
    /// (0: off). Stops the loops ("a dog chases a dog chases …") a decoder falls into on
    /// inputs far from its training data; references of real captions rarely repeat one.
    pub no_repeat_ngram: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            beam: 1,
            max_len: 20,
            length_penalty: 1.0,
            no_repeat_ngram: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Word ids, without `<bos>`/`<eos>`.
    pub tokens: Vec<u32>,
    pub text: String,
    /// Length-normalised log-probability.
    pub score: f32,
}

/// What the decoder reads from a clip at every step.
pub struct ClipMemory {
    h0: Vec<f32>,
    keys: Vec<f32>,
    /// `W_ih[:, ctx] · f_i` for every item: the context's share of the GRU input gates is
    /// `Σ alpha_i` of these rows, which reads N·3H values per step instead of the 3H × D
    /// weight block. Computing them costs N·D·3H MACs once, from cache; the alternative
    /// reads the 3H × D block (7.9 MB at the peer's sizes) at every step. At 16 items that
    /// is several times cheaper; at 80 (5 regions × 16 frames) and 20 steps about even.
    ctx_gates: Vec<f32>,
}

impl ClipMemory {
    pub fn new(w: &Weights<f32>, d: &Dims, clip: &ClipFeatures) -> Self {
        let mut mean = vec![0.0; d.feat];
        mean_items(&clip.features, d.feat, &mut mean);
        let n = clip.features.len() / d.feat;
        let h3 = 3 * d.hidden;
        let mut h0 = vec![0.0; d.hidden];
        let (mut keys, mut ctx_gates) = (vec![], vec![]);
        let fprime;
        // One pass over the three weight blocks a clip needs, shared over the threads.
        let mut products = vec![RowsProduct {
            x: View::new(&mean, 1, d.feat),
            w: View::new(&w.init_w, d.hidden, d.feat),
            bias: Some(&w.init_b),
            accumulate: false,
            dst: &mut h0,
        }];
        if d.attention {
            fprime = items_with_regions(w, d, &clip.features);
            keys = vec![0.0; n * d.att];
            ctx_gates = vec![0.0; n * h3];
            products.push(RowsProduct {
                x: View::new(&fprime, n, d.feat),
                w: View::new(&w.att_w_feat, d.att, d.feat),
                bias: Some(&w.att_b_feat),
                accumulate: false,
                dst: &mut keys,
            });
            products.push(RowsProduct {
                x: View::new(&fprime, n, d.feat),
                w: View::columns(&w.w_ih, h3, d.gru_input(), d.embed, d.feat),
                bias: None,
                accumulate: false,
                dst: &mut ctx_gates,
            });
        }
        rows_products(&mut products);
        h0.iter_mut().for_each(|x| *x = x.tanh());
        Self {
            h0,
            keys,
            ctx_gates,
        }
    }

    /// Initial decoder state of the clip.
    pub fn h0(&self) -> &[f32] {
        &self.h0
    }
}

/// One decoder step for `rows` hypotheses: row i belongs to clip `clip_of[i]`, has state
/// `h[i]` and last token `tokens[i]`. Returns the new states and log-probabilities.
///
/// Decoding a few rows is bound by reading the weights (≈ 16 MB per step at the peer's
/// sizes), so each step makes two passes, each one fork/join over the threads: everything
/// that reads the previous state and token (input gates of the word, hidden gates, the
/// attention query), then the output projection of the new state.
pub fn step(
    w: &Weights<f32>,
    d: &Dims,
    mems: &[ClipMemory],
    clip_of: &[usize],
    h: &[f32],
    tokens: &[u32],
) -> (Vec<f32>, Vec<f32>) {
    let rows = tokens.len();
    let (e, hs, inp, h3, a) = (d.embed, d.hidden, d.gru_input(), 3 * d.hidden, d.att);
    let mut x = vec![0.0f32; rows * e];
    for (i, &tok) in tokens.iter().enumerate() {
        x[i * e..(i + 1) * e].copy_from_slice(&w.embed[tok as usize * e..][..e]);
    }
    let (mut gi, mut gh) = (vec![0.0; rows * h3], vec![0.0; rows * h3]);
    let mut hp = vec![0.0; if d.attention { rows * a } else { 0 }];
    let mut products = vec![
        RowsProduct {
            x: View::new(&x, rows, e),
            w: View::columns(&w.w_ih, h3, inp, 0, e),
            bias: Some(&w.b_ih),
            accumulate: false,
            dst: &mut gi,
        },
        RowsProduct {
            x: View::new(h, rows, hs),
            w: View::new(&w.w_hh, h3, hs),
            bias: Some(&w.b_hh),
            accumulate: false,
            dst: &mut gh,
        },
    ];
    if d.attention {
        products.push(RowsProduct {
            x: View::new(h, rows, hs),
            w: View::new(&w.att_w_hid, a, hs),
            bias: None,
            accumulate: false,
            dst: &mut hp,
        });
    }
    rows_products(&mut products);
    if d.attention {
        let mut ctx_gi = vec![0.0; h3];
        for (i, &c) in clip_of.iter().enumerate() {
            let m = &mems[c];
            let n = m.keys.len() / a;
            let (mut pre, mut alpha) = (vec![0.0; n * a], vec![0.0; n]);
            attention_weights_with(
                &m.keys,
                &hp[i * a..(i + 1) * a],
                &w.att_v,
                &mut pre,
                &mut alpha,
                tanh_fast,
                exp_fast,
            );
            weighted_sum(&m.ctx_gates, &alpha, &mut ctx_gi);
            gi[i * h3..(i + 1) * h3]
                .iter_mut()
                .zip(&ctx_gi)
                .for_each(|(g, c)| *g += *c);
        }
    }
    let mut h_new = vec![0.0; rows * hs];
    let (mut rg, mut zg, mut ng) = (vec![0.0; hs], vec![0.0; hs], vec![0.0; hs]);
    for i in 0..rows {
        gru_cell_with(
            &gi[i * h3..(i + 1) * h3],
            &gh[i * h3..(i + 1) * h3],
            &h[i * hs..(i + 1) * hs],
            &mut rg,
            &mut zg,
            &mut ng,
            &mut h_new[i * hs..(i + 1) * hs],
            sigmoid_fast,
            tanh_fast,
        );
    }
    let v = d.vocab;
    let mut logp = output_logits(w, &h_new, rows, hs);
    let mut exps = vec![0.0; v];
    for z in logp.chunks_exact_mut(v) {
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        exps.iter_mut()
            .zip(&*z)
            .for_each(|(e, &x)| *e = exp_fast(x - max));
        let lse = max + sum_lanes(&exps).ln();
        z.iter_mut().for_each(|x| *x -= lse);
    }
    (h_new, logp)
}

#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    logp: f32,
    h: Vec<f32>,
}

fn normalised(logp: f32, len: usize, penalty: f32) -> f32 {
    logp / (len.max(1) as f32).powf(penalty)
}

/// Words that say nothing about the clip by themselves; every other word is a content word.
pub const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "of", "in", "on", "at", "to", "from", "by", "with", "as",
    "for", "into", "onto", "is", "are", "it", "its", "then", "than", "that", "this", "while",
];

/// Beam search without a limit on repeated content words (see [`search_bounded`]).
pub fn search(
    model: &CaptionModel,
    clips: &[ClipFeatures],
    opts: &SearchOptions,
) -> Vec<Hypothesis> {
    search_bounded(model, clips, opts, 0)
}

/// Which vocabulary ids are content words (not special tokens, not [`FUNCTION_WORDS`]).
pub fn content_words(model: &CaptionModel) -> Vec<bool> {
    (0..model.vocab.len() as u32)
        .map(|id| {
            let word = model.vocab.word(id);
            id != BOS && id != EOS && id != PAD && !FUNCTION_WORDS.contains(&word)
        })
        .collect()
}

/// Beam search of width `opts.beam` for every clip at once. At each step the 2K best
/// extensions of a clip's beams are ranked; an `<eos>` among the first K finishes a
/// hypothesis, the best K others stay alive. A clip is done when K hypotheses finished
/// or `max_len` is reached (live ones then count as finished). With K = 1 this is greedy.
/// With `max_word_repeats` > 0 no content word appears more often than that in a caption:
/// a decoder lost on unfamiliar footage otherwise strings one verb along ("a chases chases
/// a chases"), which no n-gram block stops.
pub fn search_bounded(
    model: &CaptionModel,
    clips: &[ClipFeatures],
    opts: &SearchOptions,
    max_word_repeats: usize,
) -> Vec<Hypothesis> {
    let (w, d) = (&model.weights, model.config.dims());
    let content = if max_word_repeats > 0 {
        content_words(model)
    } else {
        vec![]
    };
    let k = opts.beam.max(1);
    let mems: Vec<ClipMemory> = clips.iter().map(|c| ClipMemory::new(w, &d, c)).collect();
    let mut alive: Vec<Vec<Beam>> = mems
        .iter()
        .map(|m| {
            vec![Beam {
                tokens: vec![],
                logp: 0.0,
                h: m.h0.clone(),
            }]
        })
        .collect();
    let mut finished: Vec<Vec<(f32, Vec<u32>)>> = vec![vec![]; clips.len()];
    for t in 0..opts.max_len.max(1) {
        let mut clip_of = vec![];
        let mut h = vec![];
        let mut tokens = vec![];
        for (c, beams) in alive.iter().enumerate() {
            for b in beams {
                clip_of.push(c);
                h.extend_from_slice(&b.h);
                tokens.push(*b.tokens.last().unwrap_or(&BOS));
            }
        }
        if tokens.is_empty() {
            break;
        }
        let (h_new, logp) = step(w, &d, &mems, &clip_of, &h, &tokens);
        let last = t + 1 == opts.max_len.max(1);
        let mut row = 0;
        for (c, beams) in alive.iter_mut().enumerate() {
            let mut cands: Vec<(f32, usize, u32)> = vec![];
            for (bi, b) in beams.iter().enumerate() {
                let mut lp = &logp[(row + bi) * d.vocab..(row + bi + 1) * d.vocab];
                let mut banned = repeating_tokens(&b.tokens, opts.no_repeat_ngram);
                if max_word_repeats > 0 {
                    banned.extend(overused_words(&b.tokens, &content, max_word_repeats));
                }
                let mut allowed;
                if !banned.is_empty() {
                    allowed = lp.to_vec();
                    banned
                        .iter()
                        .for_each(|&t| allowed[t as usize] = f32::NEG_INFINITY);
                    lp = &allowed;
                }
                cands.extend(
                    top_k(lp, 2 * k)
                        .into_iter()
                        .map(|(tok, l)| (b.logp + l, bi, tok)),
                );
            }
            // Ties keep the lower token id, as argmax does.
            cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut next = vec![];
            for (rank, &(lp, bi, tok)) in cands.iter().take(2 * k).enumerate() {
                let toks = &beams[bi].tokens;
                if tok == EOS {
                    if rank < k {
                        let score = normalised(lp, toks.len() + 1, opts.length_penalty);
                        finished[c].push((score, toks.clone()));
                    }
                } else if next.len() < k {
                    let mut tokens = toks.clone();
                    tokens.push(tok);
                    let hr = (row + bi) * d.hidden;
                    next.push(Beam {
                        tokens,
                        logp: lp,
                        h: h_new[hr..hr + d.hidden].to_vec(),
                    });
                }
            }
            row += beams.len();
            if finished[c].len() >= k {
                next.clear();
            } else if last {
                for b in next.drain(..) {
                    let score = normalised(b.logp, b.tokens.len(), opts.length_penalty);
                    finished[c].push((score, b.tokens));
                }
            }
            *beams = next;
        }
    }
    finished
        .into_iter()
        .map(|mut f| {
            // Stable sort: among equal scores the earlier-finished hypothesis wins.
            f.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (score, tokens) = f.into_iter().next().unwrap_or((f32::NEG_INFINITY, vec![]));
            Hypothesis {
                text: model.vocab.decode(&tokens),
                tokens,
                score,
            }
        })
        .collect()
}

/// Tokens that would make the last `n` tokens of `tokens` an n-gram it already holds.
pub fn repeating_tokens(tokens: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || tokens.len() < n {
        return vec![];
    }
    let prefix = &tokens[tokens.len() + 1 - n..];
    tokens
        .windows(n)
        .filter(|gram| gram[..n - 1] == *prefix)
        .map(|gram| gram[n - 1])
        .collect()
}

/// Content words (`content[id]`) that already appear `limit` times in `tokens`.
pub fn overused_words(tokens: &[u32], content: &[bool], limit: usize) -> Vec<u32> {
    let mut counts: std::collections::HashMap<u32, usize> = Default::default();
    for &t in tokens {
        if content.get(t as usize).copied().unwrap_or(false) {
            *counts.entry(t).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|&(_, n)| n >= limit)
        .map(|(t, _)| t)
        .collect()
}

/// The `n` largest entries (token, value), largest first, lower token first on ties.
fn top_k(values: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
    for (i, &v) in values.iter().enumerate() {
        if best.len() == n && v <= best[n - 1].1 {
            continue;
        }
        let pos = best.partition_point(|&(_, b)| b >= v);
        best.insert(pos, (i as u32, v));
        best.truncate(n);
    }
    best
}

impl CaptionModel {
    /// Greedy (beam 1) or beam search for every clip, batched.
    pub fn caption(
        &self,
        clips: &[ClipFeatures],
        opts: &SearchOptions,
    ) -> anyhow::Result<Vec<Hypothesis>> {
        self.caption_bounded(clips, opts, 0)
    }

    /// [`Self::caption`] with no content word more than `max_word_repeats` times (0: no
    /// limit).
    pub fn caption_bounded(
        &self,
        clips: &[ClipFeatures],
        opts: &SearchOptions,
        max_word_repeats: usize,
    ) -> anyhow::Result<Vec<Hypothesis>> {
        for (i, clip) in clips.iter().enumerate() {
            self.config
                .check_clip(clip)
                .with_context(|| format!("clip {i}"))?;
        }
        Ok(search_bounded(self, clips, opts, max_word_repeats))
    }
}

#[cfg(test)]
mod tests {
    use super::repeating_tokens;

    /// Whether appending `next` makes the last `n` tokens an n-gram seen earlier, by brute force.
    fn repeats(tokens: &[u32], next: u32, n: usize) -> bool {
        let mut all = tokens.to_vec();
        all.push(next);
        if all.len() <= n {
            return false;
        }
        let last = &all[all.len() - n..];
        all[..all.len() - 1].windows(n).any(|g| g == last)
    }

    #[test]
    fn banned_tokens_are_exactly_those_that_repeat_an_ngram() {
        let mut state = 7u64;
        for _ in 0..2000 {
            let len = (state % 12) as usize;
            let tokens: Vec<u32> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) % 3) as u32
                })
                .collect();
            for n in 1..=4 {
                let banned = repeating_tokens(&tokens, n);
                for next in 0..3 {
                    assert_eq!(
                        banned.contains(&next),
                        repeats(&tokens, next, n),
                        "{tokens:?} + {next}, n = {n}"
                    );
                }
            }
            state = state.wrapping_add(len as u64 + 1);
        }
        assert!(repeating_tokens(&[1, 2, 1, 2], 0).is_empty());
    }
}
