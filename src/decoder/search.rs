//! Greedy and beam search over the decoder, batched over clips (every live hypothesis of
//! every clip is one row of the same matmuls).
use anyhow::Context;

use super::linalg::{in_pool, top_k};
use super::model::CaptionModel;
use super::step::ClipMemory;
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

#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    logp: f32,
    /// The decoder's state row (see [`super::step::Decoder::state_width`]).
    state: Vec<f32>,
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
    // Each step forks and joins over the threads; from inside the pool that is a hand-off
    // between workers rather than a wake-up of the pool from outside.
    in_pool(|| search_in_pool(model, clips, opts, max_word_repeats))
}

fn search_in_pool(
    model: &CaptionModel,
    clips: &[ClipFeatures],
    opts: &SearchOptions,
    max_word_repeats: usize,
) -> Vec<Hypothesis> {
    let decoder = model.decoder();
    let (w, d) = (decoder.w, decoder.d);
    let content = if max_word_repeats > 0 {
        content_words(model)
    } else {
        vec![]
    };
    let k = opts.beam.max(1);
    let mems: Vec<ClipMemory> = clips.iter().map(|c| ClipMemory::new(w, &d, c)).collect();
    let h0: Vec<f32> = mems.iter().flat_map(|m| m.h0().iter().copied()).collect();
    let states0 = decoder.states(&h0);
    let width = decoder.state_width();
    let mut alive: Vec<Vec<Beam>> = (0..mems.len())
        .map(|c| {
            vec![Beam {
                tokens: vec![],
                logp: 0.0,
                state: states0[c * width..(c + 1) * width].to_vec(),
            }]
        })
        .collect();
    let mut finished: Vec<Vec<(f32, Vec<u32>)>> = vec![vec![]; clips.len()];
    for t in 0..opts.max_len.max(1) {
        let mut clip_of = vec![];
        let mut states = vec![];
        let mut tokens = vec![];
        for (c, beams) in alive.iter().enumerate() {
            for b in beams {
                clip_of.push(c);
                states.extend_from_slice(&b.state);
                tokens.push(*b.tokens.last().unwrap_or(&BOS));
            }
        }
        if tokens.is_empty() {
            break;
        }
        // Per row, search ranks the 2K best tokens after banning at most 2t (n-gram repeats
        // and overused words, each at most one per token so far), so those are exact.
        let exact = 2 * k + 2 * t;
        let (states_new, logp) = decoder.step(&mems, &clip_of, &states, &tokens, exact);
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
                    let sr = (row + bi) * width;
                    next.push(Beam {
                        tokens,
                        logp: lp,
                        state: states_new[sr..sr + width].to_vec(),
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
