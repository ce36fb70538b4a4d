//! Does a clip look like the clips a decoder was trained on? A decoder is confidently
//! wrong on footage unlike its training set, so every caption carries a familiarity: the
//! fraction of held-out validation clips that look less familiar than it.
//!
//! Each clip is summarised by its features averaged over the sampled frames, in parts: the
//! encoder's pooled vector (region 0) and, when the model has it, the motion descriptor.
//! Each part is modelled over standardised values by its top `RANK` principal directions
//! (covariance shrunk towards a multiple of the identity by the Ledoit–Wolf estimate) and
//! one residual variance for the rest. A clip's distance in a part is its whitened distance
//! along those directions to the nearest fitted clip (the fitted clips' coordinates are
//! kept: a k-nearest-neighbour coreset with k = 1), plus its residual energy over the
//! residual variance. The synthetic world is clusters (seven backgrounds, seventy kinds of
//! sprite), and real footage can sit between them, inside one broad Gaussian's ellipsoid.
//! Calibration on held-out clips turns a part's distance into a tail fraction (how many
//! calibration clips lie farther); the least familiar part decides, and the calibration
//! clips' own least tail fractions rank a new clip among them, so one part's heavy tail (the
//! motion descriptor's, on fast synthetic clips) does not hide another's outliers.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::atomic::write_atomic;
use crate::decoder::DecoderConfig;
use crate::features::ClipFeatures;
use crate::text::Vocab;
use crate::video::motion::MOTION_DIM;

/// The summary's file in a model directory.
pub const FILE: &str = "familiarity.safetensors";
/// Default `--min-familiarity`: about 2 % of in-distribution clips fall below it.
pub const DEFAULT_MIN_FAMILIARITY: f64 = 0.02;
/// Fewest clips a summary is fitted or calibrated on.
pub const MIN_CLIPS: usize = 20;
const FORMAT: &str = "vidcap-familiarity 1";
const METADATA_KEY: &str = "familiarity";
/// Principal directions kept per part (the rest share one variance).
const RANK: usize = 48;
/// Fit clips kept (a uniform reservoir sample of those added), which bounds memory.
const MAX_KEPT: usize = 4000;
/// Subspace iterations for the principal directions.
const ITERATIONS: usize = 30;

/// Where a decoder item's parts lie: `encoder_dim` encoder values, then `motion_dim`
/// motion-descriptor values (0 when the model has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DimLayout {
    pub encoder_dim: usize,
    pub motion_dim: usize,
}

impl DimLayout {
    pub fn of(config: &DecoderConfig) -> Self {
        // An item too narrow to hold a motion descriptor (test models) is one part.
        let motion_dim = if config.motion && config.feat_dim > MOTION_DIM {
            MOTION_DIM
        } else {
            0
        };
        Self {
            encoder_dim: config.feat_dim - motion_dim,
            motion_dim,
        }
    }

    fn width(&self) -> usize {
        self.encoder_dim + self.motion_dim
    }

    /// Where each part lies in a pooled clip ([`Self::pool`]).
    fn parts(&self) -> Vec<(&'static str, Range<usize>)> {
        let (e, w) = (self.encoder_dim, self.width());
        let mut parts = vec![("appearance", 0..e)];
        if self.motion_dim > 0 {
            parts.push(("motion", e..w));
        }
        parts
    }

    /// Region 0 of every frame, averaged over the frames.
    fn pool(&self, clip: &ClipFeatures) -> Result<Vec<f64>> {
        ensure!(
            clip.dim == self.width() && clip.frames >= 1 && clip.regions >= 1,
            "clip items are [{}, {}, {}] but the familiarity summary needs width {}",
            clip.frames,
            clip.regions,
            clip.dim,
            self.width()
        );
        let mut mean = vec![0.0; clip.dim];
        for t in 0..clip.frames {
            let item = &clip.features[t * clip.regions * clip.dim..][..clip.dim];
            mean.iter_mut()
                .zip(item)
                .for_each(|(m, &x)| *m += x as f64 / clip.frames as f64);
        }
        Ok(mean)
    }
}

/// Collects training clips one at a time (the training loop streams them); a uniform
/// sample of at most `MAX_KEPT` pooled clips is kept.
pub struct FamiliarityBuilder {
    layout: DimLayout,
    kept: Vec<Vec<f64>>,
    seen: usize,
    rng: ChaCha8Rng,
}

impl FamiliarityBuilder {
    pub fn new(layout: DimLayout) -> Self {
        Self {
            layout,
            kept: Vec::new(),
            seen: 0,
            rng: ChaCha8Rng::seed_from_u64(0x11),
        }
    }

    pub fn add_clip(&mut self, clip: &ClipFeatures) -> Result<()> {
        let pooled = self.layout.pool(clip)?;
        self.seen += 1;
        if self.kept.len() < MAX_KEPT {
            self.kept.push(pooled);
        } else {
            let j = self.rng.random_range(0..self.seen);
            if j < MAX_KEPT {
                self.kept[j] = pooled;
            }
        }
        Ok(())
    }

    /// Fits the parts on the added clips and calibrates on `calibration` (clips not added).
    pub fn finish<'a>(
        self,
        calibration: impl IntoIterator<Item = &'a ClipFeatures>,
    ) -> Result<Familiarity> {
        ensure!(
            self.kept.len() >= MIN_CLIPS,
            "the familiarity summary needs at least {MIN_CLIPS} training clips, got {}",
            self.kept.len()
        );
        let mut parts: Vec<Part> = self
            .layout
            .parts()
            .into_iter()
            .map(|(name, range)| {
                let rows: Vec<&[f64]> = self.kept.iter().map(|r| &r[range.clone()]).collect();
                Part::fit(name, range, &rows)
            })
            .collect();
        let pooled = calibration
            .into_iter()
            .map(|c| self.layout.pool(c))
            .collect::<Result<Vec<_>>>()?;
        ensure!(
            pooled.len() >= MIN_CLIPS,
            "calibrating the familiarity summary needs at least {MIN_CLIPS} validation clips, got {}",
            pooled.len()
        );
        for part in &mut parts {
            let mut d: Vec<f32> = pooled.iter().map(|x| part.distance(x) as f32).collect();
            d.sort_by(f32::total_cmp);
            part.calibration = d;
        }
        let mut fam = Familiarity {
            layout: self.layout,
            parts,
            calibration: vec![],
            fit_clips: self.seen,
        };
        let mut cal: Vec<f32> = pooled.iter().map(|x| fam.tail(x) as f32).collect();
        cal.sort_by(f32::total_cmp);
        fam.calibration = cal;
        Ok(fam)
    }
}

/// One part's Gaussian: standardise, project on the principal directions, and add the
/// residual's energy at the shrunk residual variance.
#[derive(Debug, Clone)]
struct Part {
    name: String,
    range: Range<usize>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// `[k, p]` orthonormal rows.
    basis: Vec<f32>,
    /// Shrunk variances along the rows of `basis`.
    variance: Vec<f32>,
    residual: f32,
    /// `[n, k]`: the fitted clips' coordinates along `basis`, in units of its standard
    /// deviations; a clip's distance along the basis is to the nearest of them.
    coreset: Vec<f32>,
    /// Distances of the calibration clips, ascending.
    calibration: Vec<f32>,
}

impl Part {
    fn fit(name: &str, range: Range<usize>, rows: &[&[f64]]) -> Self {
        let (n, p) = (rows.len(), range.len());
        let mut mean = vec![0.0; p];
        for r in rows {
            mean.iter_mut()
                .zip(*r)
                .for_each(|(m, &x)| *m += x / n as f64);
        }
        let mut var = vec![0.0; p];
        for r in rows {
            var.iter_mut()
                .zip(*r)
                .zip(&mean)
                .for_each(|((v, &x), &m)| *v += (x - m) * (x - m) / n as f64);
        }
        // A floor keeps near-constant dimensions (e.g. a dead channel) from dominating.
        let floor = 0.01 * var.iter().sum::<f64>() / p as f64 + 1e-12;
        let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + floor).sqrt()).collect();
        let z: Vec<Vec<f64>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&mean)
                    .zip(&inv_std)
                    .map(|((&x, &m), &s)| (x - m) * s)
                    .collect()
            })
            .collect();
        // Sample covariance S = ZᵀZ / n, one row per task.
        let cov: Vec<Vec<f64>> = (0..p)
            .into_par_iter()
            .map(|i| {
                let mut row = vec![0.0; p];
                for zr in &z {
                    let zi = zr[i] / n as f64;
                    row.iter_mut().zip(zr).for_each(|(c, &zj)| *c += zi * zj);
                }
                row
            })
            .collect();
        // Ledoit–Wolf: shrink towards m·I by the estimated share of sampling noise.
        let trace: f64 = (0..p).map(|i| cov[i][i]).sum();
        let m = trace / p as f64;
        let frob2: f64 = cov.iter().flatten().map(|c| c * c).sum();
        let d2 = (frob2 - p as f64 * m * m).max(0.0);
        let fourth: f64 = z
            .iter()
            .map(|r| r.iter().map(|x| x * x).sum::<f64>().powi(2))
            .sum();
        let b2 = ((fourth - n as f64 * frob2) / (n as f64 * n as f64)).clamp(0.0, d2);
        let alpha = if d2 > 0.0 { b2 / d2 } else { 1.0 };
        let k = RANK.min(p.saturating_sub(1)).min(n - 1);
        let (basis, eig) = top_eigen(&cov, k);
        let residual_raw = (trace - eig.iter().sum::<f64>()).max(0.0) / (p - k).max(1) as f64;
        let shrink = |l: f64| (1.0 - alpha) * l + alpha * m;
        let variance: Vec<f64> = eig.iter().map(|&l| shrink(l).max(1e-6 * m)).collect();
        let coreset = z
            .iter()
            .flat_map(|zr| {
                basis.iter().zip(&variance).map(move |(b, v)| {
                    (b.iter().zip(zr).map(|(x, y)| x * y).sum::<f64>() / v.sqrt()) as f32
                })
            })
            .collect();
        Self {
            name: name.to_string(),
            range,
            mean: mean.iter().map(|&x| x as f32).collect(),
            inv_std: inv_std.iter().map(|&x| x as f32).collect(),
            basis: basis.iter().flatten().map(|&x| x as f32).collect(),
            variance: variance.iter().map(|&v| v as f32).collect(),
            residual: shrink(residual_raw).max(1e-6 * m) as f32,
            coreset,
            calibration: vec![],
        }
    }

    /// Fraction of calibration clips farther than the pooled clip `x` in this part.
    fn tail(&self, x: &[f64]) -> f64 {
        fraction_above(&self.calibration, self.distance(x) as f32)
    }

    /// Squared Mahalanobis distance of the pooled clip `x` (its whole item) under this part.
    fn distance(&self, x: &[f64]) -> f64 {
        let z: Vec<f64> = x[self.range.clone()]
            .iter()
            .zip(&self.mean)
            .zip(&self.inv_std)
            .map(|((&x, &m), &s)| (x - m as f64) * s as f64)
            .collect();
        let total: f64 = z.iter().map(|v| v * v).sum();
        let p = z.len();
        let mut white = Vec::with_capacity(self.variance.len());
        let mut explained = 0.0;
        for (row, &var) in self.basis.chunks_exact(p).zip(&self.variance) {
            let proj: f64 = row.iter().zip(&z).map(|(&b, &v)| b as f64 * v).sum();
            white.push(proj / (var as f64).sqrt());
            explained += proj * proj;
        }
        let k = white.len().max(1);
        let along = self
            .coreset
            .chunks_exact(k)
            .map(|c| {
                c.iter()
                    .zip(&white)
                    .map(|(&c, &w)| (w - c as f64).powi(2))
                    .sum::<f64>()
            })
            .fold(f64::INFINITY, f64::min);
        let along = if along.is_finite() {
            along
        } else {
            white.iter().map(|w| w * w).sum()
        };
        along + (total - explained).max(0.0) / self.residual as f64
    }
}

/// The top `k` eigenpairs of the symmetric `a` (rows), by subspace iteration and a final
/// Rayleigh–Ritz step; eigenvalues descending.
fn top_eigen(a: &[Vec<f64>], k: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
    let p = a.len();
    if k == 0 {
        return (vec![], vec![]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut v: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..p).map(|_| normal(&mut rng)).collect())
        .collect();
    orthonormalise(&mut v);
    let apply = |v: &[Vec<f64>]| -> Vec<Vec<f64>> {
        v.par_iter()
            .map(|col| {
                a.iter()
                    .map(|row| row.iter().zip(col).map(|(x, y)| x * y).sum())
                    .collect()
            })
            .collect()
    };
    for _ in 0..ITERATIONS {
        v = apply(&v);
        orthonormalise(&mut v);
    }
    let av = apply(&v);
    let t: Vec<Vec<f64>> = v
        .iter()
        .map(|vi| {
            av.iter()
                .map(|aj| vi.iter().zip(aj).map(|(x, y)| x * y).sum())
                .collect()
        })
        .collect();
    let (vals, q) = jacobi_eigen(t);
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&i, &j| vals[j].total_cmp(&vals[i]));
    let basis = order
        .iter()
        .map(|&j| {
            let mut col = vec![0.0; p];
            for (i, vi) in v.iter().enumerate() {
                col.iter_mut().zip(vi).for_each(|(c, &x)| *c += q[i][j] * x);
            }
            col
        })
        .collect();
    (basis, order.iter().map(|&j| vals[j].max(0.0)).collect())
}

/// Fraction of the ascending `sorted` that lies above `value`.
fn fraction_above(sorted: &[f32], value: f32) -> f64 {
    let above = sorted.len() - sorted.partition_point(|&c| c <= value);
    above as f64 / sorted.len().max(1) as f64
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Modified Gram–Schmidt, twice (one pass loses orthogonality on clustered spectra).
fn orthonormalise(v: &mut [Vec<f64>]) {
    for _ in 0..2 {
        for i in 0..v.len() {
            let (done, rest) = v.split_at_mut(i);
            let vi = &mut rest[0];
            for u in done.iter() {
                let dot: f64 = u.iter().zip(vi.iter()).map(|(a, b)| a * b).sum();
                vi.iter_mut().zip(u).for_each(|(x, &y)| *x -= dot * y);
            }
            let norm = vi.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            vi.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

/// Eigenvalues and eigenvectors (columns of the returned matrix) of a small symmetric
/// matrix by cyclic Jacobi rotations.
fn jacobi_eigen(mut a: Vec<Vec<f64>>) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = a.len();
    let mut q: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for _ in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        let diag: f64 = (0..n).map(|i| a[i][i] * a[i][i]).sum();
        if off <= 1e-24 * diag.max(1e-300) {
            break;
        }
        for p in 0..n {
            for r in p + 1..n {
                if a[p][r].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[r][r] - a[p][p]) / (2.0 * a[p][r]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (x, y) = (row[p], row[r]);
                    row[p] = c * x - s * y;
                    row[r] = s * x + c * y;
                }
                let (low, high) = a.split_at_mut(r);
                for (x, y) in low[p].iter_mut().zip(high[0].iter_mut()) {
                    (*x, *y) = (c * *x - s * *y, s * *x + c * *y);
                }
                for row in q.iter_mut() {
                    let (x, y) = (row[p], row[r]);
                    row[p] = c * x - s * y;
                    row[r] = s * x + c * y;
                }
            }
        }
    }
    ((0..n).map(|i| a[i][i]).collect(), q)
}

/// What the file's metadata says.
#[derive(serde::Deserialize)]
struct Metadata {
    format: String,
    encoder_dim: usize,
    motion_dim: usize,
    fit_clips: usize,
    parts: Vec<String>,
}

/// A fitted and calibrated summary of a model's training clips.
#[derive(Debug, Clone)]
pub struct Familiarity {
    layout: DimLayout,
    parts: Vec<Part>,
    /// The calibration clips' least per-part tail fractions, ascending.
    calibration: Vec<f32>,
    fit_clips: usize,
}

impl Familiarity {
    pub fn layout(&self) -> DimLayout {
        self.layout
    }

    pub fn calibration_clips(&self) -> usize {
        self.calibration.len()
    }

    pub fn fit_clips(&self) -> usize {
        self.fit_clips
    }

    /// The least familiar part decides: the smallest per-part tail fraction.
    fn tail(&self, x: &[f64]) -> f64 {
        self.parts.iter().map(|p| p.tail(x)).fold(1.0, f64::min)
    }

    /// Each part's squared Mahalanobis distance of the clip, in part order (appearance,
    /// then motion when the model has it).
    pub fn distances(&self, clip: &ClipFeatures) -> Result<Vec<f64>> {
        let x = self.layout.pool(clip)?;
        Ok(self.parts.iter().map(|p| p.distance(&x)).collect())
    }

    /// Fraction of calibration clips less familiar than this one (0–1): those whose least
    /// familiar part lies further in its tail.
    pub fn score(&self, clip: &ClipFeatures) -> Result<f64> {
        let x = self.layout.pool(clip)?;
        let s = self.tail(&x) as f32;
        let less = self.calibration.partition_point(|&c| c < s);
        Ok(less as f64 / self.calibration.len() as f64)
    }

    pub fn save(&self, model_dir: &Path) -> Result<()> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut put = |name: String, shape: Vec<usize>, values: &[f32]| {
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((name, shape, bytes));
        };
        for part in &self.parts {
            let (k, p) = (part.variance.len(), part.range.len());
            put(format!("{}.mean", part.name), vec![p], &part.mean);
            put(format!("{}.inv_std", part.name), vec![p], &part.inv_std);
            put(format!("{}.basis", part.name), vec![k, p], &part.basis);
            put(format!("{}.variance", part.name), vec![k], &part.variance);
            put(format!("{}.residual", part.name), vec![1], &[part.residual]);
            put(
                format!("{}.coreset", part.name),
                vec![part.coreset.len() / k.max(1), k],
                &part.coreset,
            );
            put(
                format!("{}.calibration", part.name),
                vec![part.calibration.len()],
                &part.calibration,
            );
        }
        put(
            "calibration".into(),
            vec![self.calibration.len()],
            &self.calibration,
        );
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                Ok((
                    name.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), bytes)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // One metadata entry holding sorted JSON: safetensors writes a map's entries in
        // hash order, and the same summary should always be the same bytes.
        let about = serde_json::json!({
            "format": FORMAT,
            "encoder_dim": self.layout.encoder_dim,
            "motion_dim": self.layout.motion_dim,
            "fit_clips": self.fit_clips,
            "parts": self.parts.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        });
        let metadata = HashMap::from([(METADATA_KEY.to_string(), about.to_string())]);
        let bytes = safetensors::serialize(views, Some(metadata))?;
        std::fs::create_dir_all(model_dir)
            .with_context(|| format!("creating {}", model_dir.display()))?;
        write_atomic(&model_dir.join(FILE), &bytes)
    }

    /// The model directory's summary; `None` when it has none (a model from before
    /// summaries existed), an error when the file is there but unusable.
    pub fn load(model_dir: &Path) -> Result<Option<Self>> {
        let path = model_dir.join(FILE);
        let data = match std::fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Self::parse(&data)
            .map(Some)
            .with_context(|| format!("{}: not a usable familiarity summary", path.display()))
    }

    fn parse(data: &[u8]) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(data)?;
        let about: Metadata = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .with_context(|| format!("no {METADATA_KEY:?} metadata"))
            .and_then(|text| serde_json::from_str(text).context("metadata"))?;
        ensure!(
            about.format == FORMAT,
            "format {:?}, expected {FORMAT:?}",
            about.format
        );
        let layout = DimLayout {
            encoder_dim: about.encoder_dim,
            motion_dim: about.motion_dim,
        };
        let st = SafeTensors::deserialize(data)?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let t = st
                .tensor(name)
                .with_context(|| format!("no tensor {name:?}"))?;
            ensure!(
                t.dtype() == Dtype::F32 && t.shape() == shape,
                "tensor {name:?} is {:?} {:?}, expected F32 {shape:?}",
                t.dtype(),
                t.shape()
            );
            Ok(t.data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let expected: Vec<&str> = layout.parts().iter().map(|(n, _)| *n).collect();
        if about.parts != expected {
            bail!("parts {:?}, expected {expected:?}", about.parts);
        }
        let n = st
            .tensor("calibration")
            .context("no tensor \"calibration\"")?
            .shape()
            .first()
            .copied()
            .unwrap_or(0);
        let calibration = read("calibration", &[n])?;
        ensure!(!calibration.is_empty(), "no calibration clips");
        ensure!(
            calibration.windows(2).all(|w| w[0] <= w[1]),
            "calibration distances are not sorted"
        );
        let mut parts = Vec::new();
        for (name, range) in layout.parts() {
            let p = range.len();
            let k = st
                .tensor(&format!("{name}.variance"))
                .with_context(|| format!("no tensor \"{name}.variance\""))?
                .shape()
                .first()
                .copied()
                .unwrap_or(0);
            let n = calibration.len();
            let part = Part {
                name: name.to_string(),
                range,
                mean: read(&format!("{name}.mean"), &[p])?,
                inv_std: read(&format!("{name}.inv_std"), &[p])?,
                basis: read(&format!("{name}.basis"), &[k, p])?,
                variance: read(&format!("{name}.variance"), &[k])?,
                residual: read(&format!("{name}.residual"), &[1])?[0],
                coreset: {
                    let rows = st
                        .tensor(&format!("{name}.coreset"))
                        .with_context(|| format!("no tensor \"{name}.coreset\""))?
                        .shape()
                        .first()
                        .copied()
                        .unwrap_or(0);
                    read(&format!("{name}.coreset"), &[rows, k])?
                },
                calibration: read(&format!("{name}.calibration"), &[n])?,
            };
            ensure!(
                part.residual > 0.0 && part.variance.iter().all(|&v| v > 0.0),
                "part {name}: variances must be positive"
            );
            ensure!(
                part.calibration.windows(2).all(|w| w[0] <= w[1]),
                "part {name}: calibration distances are not sorted"
            );
            parts.push(part);
        }
        Ok(Self {
            layout,
            parts,
            calibration,
            fit_clips: about.fit_clips,
        })
    }
}

/// Words in the longest of `captions` as training sees them (cut to `max_len − 1` words
/// plus `<eos>`); `None` when there are none.
pub fn longest_caption<'a>(
    vocab: &Vocab,
    captions: impl IntoIterator<Item = &'a str>,
    max_len: usize,
) -> Option<usize> {
    captions
        .into_iter()
        .map(|c| vocab.encode(c).len().min(max_len.saturating_sub(1)))
        .max()
}

/// Fits a summary of a trained model's `train` clips, calibrates it on `validation`, and
/// saves it into `model_dir` (whose config.json says the item layout). What training
/// calls last; a summary that cannot be made is a warning, not a failed training.
pub fn fit_model_dir<'a>(
    model_dir: &Path,
    train: impl IntoIterator<Item = impl std::borrow::Borrow<ClipFeatures>>,
    validation: impl IntoIterator<Item = &'a ClipFeatures>,
) {
    let fit = || -> Result<Familiarity> {
        let path = model_dir.join(crate::decoder::model::CONFIG_FILE);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let config: DecoderConfig = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a decoder config", path.display()))?;
        let mut builder = FamiliarityBuilder::new(DimLayout::of(&config));
        for clip in train {
            builder.add_clip(clip.borrow())?;
        }
        let fam = builder.finish(validation)?;
        fam.save(model_dir)?;
        Ok(fam)
    };
    match fit() {
        Ok(fam) => tracing::info!(
            "familiarity summary: {} training clips, calibrated on {} validation clips",
            fam.fit_clips(),
            fam.calibration_clips()
        ),
        Err(e) => tracing::warn!(
            "{}: no familiarity summary written ({e:#}); captions will say they cannot tell familiar footage from unfamiliar",
            model_dir.join(FILE).display()
        ),
    }
}
