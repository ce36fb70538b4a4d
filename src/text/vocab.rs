//! Caption vocabulary: built from training captions with the metrics' tokenizer (so the
//! decoder's words are exactly the words CIDEr-D counts), saved as `vocab.json`.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::tokenize::tokenize;

pub const PAD: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
pub const UNK: u32 = 3;
const SPECIALS: [&str; 4] = ["<pad>", "<bos>", "<eos>", "<unk>"];
/// Ids below this are the special tokens.
pub const SPECIAL_COUNT: usize = SPECIALS.len();

#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, u32>,
    /// The `min_count` the words were kept with (recorded in `vocab.json`).
    min_count: usize,
}

/// On-disk form: the words in id order (ids are positions), plus how it was built.
#[derive(Serialize, Deserialize)]
struct VocabFile {
    words: Vec<String>,
    min_count: usize,
}

impl Vocab {
    /// Words seen at least `min_count` times, most frequent first (ties alphabetical, so the
    /// ids do not depend on caption order), after the four special tokens.
    pub fn build<'a>(captions: impl IntoIterator<Item = &'a str>, min_count: usize) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for caption in captions {
            for word in tokenize(caption) {
                *counts.entry(word).or_default() += 1;
            }
        }
        let mut kept: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(w, c)| *c >= min_count.max(1) && !SPECIALS.contains(&w.as_str()))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let words = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(kept.into_iter().map(|(w, _)| w))
            .collect();
        Self::from_words(words, min_count.max(1))
    }

    fn from_words(words: Vec<String>, min_count: usize) -> Self {
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Self {
            words,
            index,
            min_count,
        }
    }

    /// This vocabulary followed by the words of `more` it lacks, in `more`'s order: ids of
    /// known words do not move, so a model's rows for them stay valid (fine-tuning).
    pub fn extended(&self, more: &Vocab) -> Vocab {
        let mut words = self.words.clone();
        words.extend(
            more.words[SPECIAL_COUNT..]
                .iter()
                .filter(|w| !self.index.contains_key(*w))
                .cloned(),
        );
        Self::from_words(words, more.min_count)
    }

    /// The `min_count` the words were kept with.
    pub fn min_count(&self) -> usize {
        self.min_count
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Token ids of a caption (no `<bos>`/`<eos>`); unknown words map to `<unk>`.
    pub fn encode(&self, caption: &str) -> Vec<u32> {
        tokenize(caption)
            .iter()
            .map(|w| self.index.get(w).copied().unwrap_or(UNK))
            .collect()
    }

    pub fn word(&self, id: u32) -> &str {
        self.words.get(id as usize).map_or("<unk>", String::as_str)
    }

    /// Caption text of ids: stops at `<eos>`, skips `<pad>`/`<bos>`.
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter()
            .take_while(|&&id| id != EOS)
            .filter(|&&id| id != PAD && id != BOS)
            .map(|&id| self.word(id))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let file = VocabFile {
            words: self.words.clone(),
            min_count: self.min_count,
        };
        crate::atomic::write_atomic(path, &serde_json::to_vec_pretty(&file)?)
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let file: VocabFile = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a vocab.json", path.display()))?;
        if file.words.len() < SPECIALS.len()
            || file.words[..SPECIALS.len()]
                .iter()
                .zip(SPECIALS)
                .any(|(a, b)| a != b)
        {
            bail!(
                "{}: the vocabulary must start with {:?}",
                path.display(),
                SPECIALS
            );
        }
        let vocab = Self::from_words(file.words, file.min_count);
        if vocab.index.len() != vocab.words.len() {
            bail!("{}: duplicate words in the vocabulary", path.display());
        }
        Ok(vocab)
    }
}
