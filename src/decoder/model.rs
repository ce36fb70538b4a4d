//! The caption model: config, weights and vocabulary of one model directory.
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, bail, ensure};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::io::{read_weights, tensors_to_bytes};
use super::params::{Dims, Weights};
use super::step::{Decoder, Prepared};
use crate::atomic::write_atomic;
use crate::features::ClipFeatures;
use crate::text::Vocab;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Additive temporal attention over the T·R feature items at every step.
    Attention,
    /// The clip enters only through the initial state (mean of its items).
    Meanpool,
}

/// `config.json` of a decoder model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    pub arch: Arch,
    /// Encoder whose features the decoder was trained on, e.g. "efficientnet-lite0".
    pub encoder: String,
    /// Feature items per frame: 1 (global pool) or 5 (global + 2×2 grid).
    pub regions: usize,
    /// Width of one item: the encoder's feature dimension, plus the motion descriptor's
    /// when `motion`.
    pub feat_dim: usize,
    /// Every item ends with its frame's motion descriptor (`video::motion`). Absent in
    /// models from before motion descriptors existed.
    #[serde(default)]
    pub motion: bool,
    pub hidden: usize,
    pub embed: usize,
    pub att_dim: usize,
    pub vocab_size: usize,
    /// Longest caption (tokens, `<eos>` included) the search produces by default.
    pub max_len: usize,
    pub dropout: f64,
    /// Words in the longest training caption (after the cut to `max_len`); search never
    /// goes past it. Absent in models from before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longest_caption: Option<usize>,
}

impl DecoderConfig {
    /// Whether `clip` is well formed and shaped like the features this decoder was trained on.
    pub fn check_clip(&self, clip: &ClipFeatures) -> anyhow::Result<()> {
        clip.check_shape()?;
        ensure!(
            clip.regions == self.regions && clip.dim == self.feat_dim,
            "clip features are [T, {}, {}] but the decoder was trained on [T, {}, {}] ({})",
            clip.regions,
            clip.dim,
            self.regions,
            self.feat_dim,
            self.encoder
        );
        Ok(())
    }

    pub fn dims(&self) -> Dims {
        Dims {
            vocab: self.vocab_size,
            embed: self.embed,
            hidden: self.hidden,
            feat: self.feat_dim,
            regions: self.regions,
            att: self.att_dim,
            attention: self.arch == Arch::Attention,
        }
    }

    /// The most words a caption may have: `requested` (default `max_len`), never more than
    /// the longest training caption, so a decoder lost on unfamiliar footage cannot run on.
    pub fn caption_limit(&self, requested: Option<usize>) -> usize {
        let limit = requested.unwrap_or(self.max_len);
        self.longest_caption.map_or(limit, |l| limit.min(l.max(1)))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.regions >= 1 && self.feat_dim >= 1 && self.hidden >= 1 && self.embed >= 1,
            "regions, feat_dim, hidden and embed must be positive"
        );
        ensure!(self.vocab_size >= 4, "vocab_size must be at least 4");
        ensure!(
            self.arch == Arch::Meanpool || self.att_dim >= 1,
            "att_dim must be positive for the attention decoder"
        );
        ensure!(self.max_len >= 1, "max_len must be positive");
        ensure!(
            (0.0..1.0).contains(&self.dropout),
            "dropout must be in [0, 1)"
        );
        Ok(())
    }
}

pub struct CaptionModel {
    pub config: DecoderConfig,
    /// Private so that every change goes through [`Self::weights_mut`], which drops what
    /// decoding prepared from the old weights.
    weights: Weights<f32>,
    pub vocab: Vocab,
    prepared: OnceLock<Prepared>,
}

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const VOCAB_FILE: &str = "vocab.json";

impl CaptionModel {
    /// A freshly initialised model (seeded).
    pub fn new(config: DecoderConfig, vocab: Vocab, seed: u64) -> anyhow::Result<Self> {
        config.validate()?;
        ensure!(
            vocab.len() == config.vocab_size,
            "config vocab_size {} but the vocabulary has {} words",
            config.vocab_size,
            vocab.len()
        );
        let weights = Weights::init(&config.dims(), seed);
        Ok(Self::from_parts(config, weights, vocab))
    }

    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let cfg_path = dir.join(CONFIG_FILE);
        let bytes =
            std::fs::read(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;
        let config: DecoderConfig = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a decoder config", cfg_path.display()))?;
        config
            .validate()
            .with_context(|| format!("{}", cfg_path.display()))?;
        let vocab = Vocab::load(&dir.join(VOCAB_FILE))?;
        if vocab.len() != config.vocab_size {
            bail!(
                "{}: vocab_size {} but {} holds {} words",
                cfg_path.display(),
                config.vocab_size,
                VOCAB_FILE,
                vocab.len()
            );
        }
        let wpath = dir.join(WEIGHTS_FILE);
        let data = std::fs::read(&wpath).with_context(|| format!("reading {}", wpath.display()))?;
        let st = SafeTensors::deserialize(&data)
            .with_context(|| format!("{}: not a safetensors file", wpath.display()))?;
        let weights = read_weights(&st, "", &config.dims(), &wpath)?;
        Ok(Self::from_parts(config, weights, vocab))
    }

    fn from_parts(config: DecoderConfig, weights: Weights<f32>, vocab: Vocab) -> Self {
        Self {
            config,
            weights,
            vocab,
            prepared: OnceLock::new(),
        }
    }

    pub fn weights(&self) -> &Weights<f32> {
        &self.weights
    }

    /// The weights, to change them (what decoding prepared from them is dropped).
    pub fn weights_mut(&mut self) -> &mut Weights<f32> {
        self.prepared.take();
        &mut self.weights
    }

    /// The decoder that search runs, prepared on first use (the f16 output projection takes
    /// ~10 ms at the peer's sizes; word gates are added as words are met).
    pub fn decoder(&self) -> Decoder<'_> {
        let d = self.config.dims();
        Decoder {
            w: &self.weights,
            d,
            prepared: self
                .prepared
                .get_or_init(|| Prepared::new(&self.weights, &d)),
        }
    }

    /// Writes config.json, vocab.json and model.safetensors, each atomically.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let bytes = tensors_to_bytes(
            &[("", &self.weights)],
            &self.config.dims(),
            vec![],
            HashMap::from([("format".to_string(), "pt".to_string())]),
        )?;
        write_atomic(&dir.join(WEIGHTS_FILE), &bytes)?;
        self.vocab.save(&dir.join(VOCAB_FILE))?;
        write_atomic(
            &dir.join(CONFIG_FILE),
            &serde_json::to_vec_pretty(&self.config)?,
        )
    }

    /// Errors unless the model was trained on `encoder`'s features of width `dim` (plus the
    /// motion descriptor when the model uses it).
    pub fn expect_encoder(&self, encoder: &str, dim: usize) -> anyhow::Result<()> {
        let motion = if self.config.motion {
            crate::features::MOTION_DIM
        } else {
            0
        };
        ensure!(
            self.config.encoder == encoder && self.config.feat_dim == dim + motion,
            "the decoder was trained on {} features (dim {}), not {} (dim {})",
            self.config.encoder,
            self.config.feat_dim,
            encoder,
            dim
        );
        Ok(())
    }
}
