//! Caption metrics with coco-caption (pycocoevalcap) parity: BLEU-1..4, ROUGE-L, CIDEr-D,
//! and METEOR through the official jar when Java and the jar are present.
//!
//! Captions go in raw and are tokenized here exactly as pycocoevalcap's PTBTokenizer does
//! (see [`crate::text::tokenize`]); every metric then follows pycocoevalcap's arithmetic, constants
//! included, so corpus and per-id numbers agree with it (tests/metrics_parity.rs).
use std::collections::BTreeMap;

use serde::Serialize;

mod bleu;
mod cider;
mod corpus;
pub mod meteor;
mod rouge;

use corpus::Corpus;
pub use meteor::MeteorConfig;

/// Corpus scores and the scores of every id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    /// BLEU-1..4, corpus level (clipped counts summed over all ids, one brevity penalty).
    pub bleu: [f64; 4],
    /// ROUGE-L (beta 1.2), mean over ids.
    pub rouge_l: f64,
    /// CIDEr-D (pycocoevalcap's `Cider`: clipping, Gaussian length penalty, ×10), mean over ids.
    pub cider_d: f64,
    /// METEOR 1.5 from the official jar; `None` when it was not run.
    pub meteor: Option<f64>,
    pub per_id: BTreeMap<String, PerIdScores>,
}

/// Scores of one id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerIdScores {
    pub bleu: [f64; 4],
    pub rouge_l: f64,
    pub cider_d: f64,
    pub meteor: Option<f64>,
}

/// What [`score_all`] computes beyond BLEU, ROUGE-L and CIDEr-D.
#[derive(Debug, Clone, Default)]
pub struct ScoreOptions {
    /// Run METEOR with this jar (see [`meteor::locate`]); `None` leaves METEOR out.
    pub meteor: Option<MeteorConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("no captions to score")]
    NoIds,
    #[error("{} id(s) have references but no hypothesis: {}", .0.len(), preview(.0))]
    MissingHypotheses(Vec<String>),
    #[error("{} id(s) have a hypothesis but no references: {}", .0.len(), preview(.0))]
    MissingReferences(Vec<String>),
    #[error("id {0:?} has an empty list of references")]
    NoReferences(String),
    #[error("id {id:?}: {what} is empty")]
    EmptyCaption { id: String, what: String },
    #[error("id {0:?} has more references than the scorer can index")]
    TooManyReferences(String),
    #[error("more distinct words than the scorer can index (16,777,215)")]
    VocabularyOverflow,
    #[error("METEOR: {0}")]
    Meteor(String),
}

fn preview(ids: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = ids
        .iter()
        .take(SHOWN)
        .map(|id| format!("{id:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > SHOWN {
        s.push_str(&format!(", … ({} more)", ids.len() - SHOWN));
    }
    s
}

/// BLEU-1..4, ROUGE-L, CIDEr-D (and METEOR if configured) of `hyps` against `refs`, corpus
/// and per id. Captions are raw text; every id must be on both sides, and no caption may
/// be empty.
pub fn score_all(
    refs: &BTreeMap<String, Vec<String>>,
    hyps: &BTreeMap<String, String>,
    opts: &ScoreOptions,
) -> Result<Scores, MetricsError> {
    let clock = std::time::Instant::now();
    let corpus = Corpus::new(refs, hyps, false)?;
    tracing::debug!(
        "tokenized and indexed in {:.3} s",
        clock.elapsed().as_secs_f64()
    );
    let (bleu, bleu_per_id) = bleu::bleu(&corpus);
    tracing::debug!("BLEU done at {:.3} s", clock.elapsed().as_secs_f64());
    let (rouge_l, rouge_per_id) = rouge::rouge_l(&corpus);
    tracing::debug!("ROUGE-L done at {:.3} s", clock.elapsed().as_secs_f64());
    let (cider_d, cider_per_id) = cider::cider_d(&corpus);
    tracing::debug!("CIDEr-D done at {:.3} s", clock.elapsed().as_secs_f64());
    let (meteor, meteor_per_id) = match &opts.meteor {
        Some(config) => {
            let (score, per_id) = meteor::run(config, &corpus)?;
            (Some(score), Some(per_id))
        }
        None => (None, None),
    };
    let per_id = corpus
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let scores = PerIdScores {
                bleu: bleu_per_id[i],
                rouge_l: rouge_per_id[i],
                cider_d: cider_per_id[i],
                meteor: meteor_per_id.as_ref().map(|m| m[i]),
            };
            (id.clone(), scores)
        })
        .collect();
    Ok(Scores {
        bleu,
        rouge_l,
        cider_d,
        meteor,
        per_id,
    })
}

/// Corpus CIDEr-D alone, the fast path for per-epoch validation. Unlike [`score_all`] it
/// accepts empty hypotheses (a decoder early in training emits them); they score 0, which
/// is what pycocoevalcap's arithmetic gives for a caption without n-grams.
pub fn cider_d(
    refs: &BTreeMap<String, Vec<String>>,
    hyps: &BTreeMap<String, String>,
) -> Result<f64, MetricsError> {
    let corpus = Corpus::new(refs, hyps, true)?;
    Ok(cider::cider_d(&corpus).0)
}

/// Mean of per-id scores, as pycocoevalcap's `np.mean` (up to summation order).
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}
