//! 1×1 convolution over NHWC (equally: a linear layer over rows) as one GEMM over all pixels
//! of the batch, with bias, ReLU6 and the residual add fused into a pass over each output tile
//! while it is still in cache.
//!
//! On AVX-512 CPUs the product is [`super::matmul`] (weights packed at load, epilogue fused);
//! elsewhere it is the `gemm` crate (candle's own CPU matmul backend) followed by an epilogue
//! pass. Either way the work is split over rayon's pool here, by rows when there are enough of
//! them and by output columns for the small late feature maps of batch 1.
use rayon::prelude::*;

use super::matmul::{PANEL, PackedWeights, RowLayout};
use super::{Activation, relu6};
use crate::simd::{SendPtr, Simd, simd_dispatch};

/// Rows of one tile: big enough for an efficient GEMM, small enough for its output to stay in
/// L2 (about 256 KiB) for the epilogue.
fn rows_per_tile(rows: usize, cols: usize, threads: usize) -> usize {
    let cache_rows = (65536 / cols.max(1)).max(32);
    rows.div_ceil(threads * 4).clamp(32, cache_rows.max(32))
}

/// A 1×1 convolution's weights `[k, n]` (input-channel-major) and bias `[n]`, kept both plain
/// (for the `gemm` crate) and packed (for the AVX-512 kernel).
#[derive(Debug, Clone)]
pub struct Pointwise {
    pub k: usize,
    pub n: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    packed: PackedWeights,
}

impl Pointwise {
    pub fn new(weights: Vec<f32>, k: usize, n: usize, bias: Vec<f32>) -> Self {
        let packed = PackedWeights::new(&weights, k, n, &bias);
        Pointwise {
            k,
            n,
            weights,
            bias,
            packed,
        }
    }

    /// `output[r, :] = act(input[r, :] @ weights + bias) (+ residual[r, :])` for `rows` rows;
    /// `input` is `[rows, k]`, `residual` and `output` `[rows, n]`. The residual is added
    /// after the activation (the MBConv skip follows a linear projection, `act` is `None`).
    pub fn run(
        &self,
        input: &[f32],
        rows: usize,
        act: Activation,
        residual: Option<&[f32]>,
        output: &mut [f32],
    ) {
        assert!(self.run_into(input, rows, act, residual, output, RowLayout::Dense));
    }

    /// The weights packed for the AVX-512 kernel.
    pub fn packed(&self) -> &PackedWeights {
        &self.packed
    }

    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Whether the CPU has AVX-512F, whatever [`crate::simd::MAX_LEVEL`] says.
    fn cpu_has_avx512() -> bool {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            return true;
        }
        false
    }

    /// Whether [`Self::run_into`] can write a padded layout on this CPU (AVX-512 only).
    pub fn can_write_padded() -> bool {
        crate::simd::active_level() == 2
    }

    /// [`Self::run`] with output row `r` written at `layout.row(r)` (borders untouched).
    /// Returns false, writing nothing, for a padded layout without AVX-512F. A padded layout
    /// ignores [`crate::simd::MAX_LEVEL`], so that a caller that checked [`Self::can_write_padded`] is not
    /// caught out by a change of level meanwhile (tests lower it while others run).
    pub fn run_into(
        &self,
        input: &[f32],
        rows: usize,
        act: Activation,
        residual: Option<&[f32]>,
        output: &mut [f32],
        layout: RowLayout,
    ) -> bool {
        let (k, n) = (self.k, self.n);
        assert_eq!(input.len(), rows * k);
        match layout {
            RowLayout::Dense => assert_eq!(output.len(), rows * n),
            RowLayout::Padded(p) => {
                assert_eq!(rows % (p.height * p.width), 0);
                assert_eq!(output.len(), rows / (p.height * p.width) * p.pixels() * n);
            }
        }
        if let Some(r) = residual {
            assert_eq!(r.len(), rows * n);
        }
        let packed = match layout {
            RowLayout::Dense => Self::can_write_padded(),
            RowLayout::Padded(_) => Self::cpu_has_avx512(),
        };
        #[cfg(target_arch = "x86_64")]
        if packed {
            let threads = rayon::current_num_threads();
            let panels = self.packed.panel_count();
            let out = SendPtr(output.as_mut_ptr());
            let res = SendPtr(residual.map_or(std::ptr::null_mut(), |r| r.as_ptr() as *mut f32));
            let inp = input.as_ptr() as usize;
            // About 8 tasks per thread: row tiles (multiples of the 8-row microkernel, small
            // enough for the tile's inputs to stay in L2), and panel ranges when the rows alone
            // give too few tasks (the 7×7 and 14×14 maps at batch 1, the classifier).
            let target = threads * 8;
            let cache_rows = (32768 / k.max(1)).max(8).next_multiple_of(8);
            let tile = rows
                .div_ceil(target)
                .next_multiple_of(8)
                .clamp(8, cache_rows);
            let panel_step = panels.div_ceil((target / rows.div_ceil(tile)).clamp(1, panels));
            let row_tiles = rows.div_ceil(tile);
            let panel_tiles = panels.div_ceil(panel_step);
            (0..row_tiles * panel_tiles).into_par_iter().for_each(|t| {
                let (out, res) = (out, res);
                let (rt, pt) = (t / panel_tiles, t % panel_tiles);
                let (r0, r1) = (rt * tile, ((rt + 1) * tile).min(rows));
                let (p0, p1) = (pt * panel_step, ((pt + 1) * panel_step).min(panels));
                // SAFETY: AVX-512F checked above; sizes asserted above; tasks cover disjoint
                // (rows, panels) blocks of the output.
                unsafe {
                    self.packed.run_block(
                        inp as *const f32,
                        r0,
                        r1,
                        p0,
                        p1,
                        act,
                        res.0,
                        out.0,
                        layout,
                    );
                }
            });
            let _ = PANEL;
            return true;
        }
        if layout != RowLayout::Dense {
            return false;
        }
        pointwise(
            input,
            rows,
            k,
            &self.weights,
            n,
            &self.bias,
            act,
            residual,
            output,
        );
        true
    }
}

impl Pointwise {
    /// [`Self::run_into`] on the calling thread only, for callers that split the work
    /// themselves (the fused MBConv block). Returns false, writing nothing, without AVX-512F
    /// (the packed kernel is the only serial path); unlike [`Self::can_write_padded`] it
    /// ignores [`crate::simd::MAX_LEVEL`], so that a caller that checked that once is not caught out by a
    /// change of level.
    pub fn run_serial(
        &self,
        input: &[f32],
        rows: usize,
        act: Activation,
        residual: Option<&[f32]>,
        output: &mut [f32],
        layout: RowLayout,
    ) -> bool {
        if !Self::cpu_has_avx512() {
            return false;
        }
        let (k, n) = (self.k, self.n);
        assert_eq!(input.len(), rows * k);
        match layout {
            RowLayout::Dense => assert_eq!(output.len(), rows * n),
            RowLayout::Padded(p) => {
                assert_eq!(rows, p.height * p.width);
                assert_eq!(output.len(), p.pixels() * n);
            }
        }
        if let Some(r) = residual {
            assert_eq!(r.len(), rows * n);
        }
        let res = residual.map_or(std::ptr::null(), |r| r.as_ptr());
        // SAFETY: AVX-512F checked above; sizes asserted above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.packed.run_block(
                input.as_ptr(),
                0,
                rows,
                0,
                self.packed.panel_count(),
                act,
                res,
                output.as_mut_ptr(),
                layout,
            );
        }
        true
    }
}

/// `output[r, :] = act(input[r, :] @ weights + bias) (+ residual[r, :])` for `rows` rows.
///
/// `input` is `[rows, k]`, `weights` `[k, n]` (input-channel-major), `bias` `[n]`,
/// `residual` and `output` `[rows, n]`. The residual is added after the activation (the
/// MBConv skip follows a linear projection, so `act` is `None` there).
#[allow(clippy::too_many_arguments)]
fn pointwise(
    input: &[f32],
    rows: usize,
    k: usize,
    weights: &[f32],
    n: usize,
    bias: &[f32],
    act: Activation,
    residual: Option<&[f32]>,
    output: &mut [f32],
) {
    assert_eq!(input.len(), rows * k);
    assert_eq!(weights.len(), k * n);
    assert_eq!(bias.len(), n);
    assert_eq!(output.len(), rows * n);
    if let Some(r) = residual {
        assert_eq!(r.len(), rows * n);
    }
    if rows == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    if rows >= threads * 64 || n < threads * 32 {
        let tile = rows_per_tile(rows, n, threads);
        output
            .par_chunks_mut(tile * n)
            .enumerate()
            .for_each(|(t, out)| {
                let r0 = t * tile;
                let m = out.len() / n;
                let inp = &input[r0 * k..(r0 + m) * k];
                // SAFETY: the pointers and strides describe the slices above exactly.
                unsafe {
                    gemm_tile(
                        m,
                        n,
                        k,
                        out.as_mut_ptr(),
                        n,
                        inp.as_ptr(),
                        k,
                        weights.as_ptr(),
                        n,
                    )
                };
                for (i, row) in out.chunks_exact_mut(n).enumerate() {
                    let res = residual.map(|r| &r[(r0 + i) * n..(r0 + i + 1) * n]);
                    epilogue(row, bias, act, res);
                }
            });
    } else {
        // Few rows (late layers at batch 1): split the output columns instead.
        let width = n.div_ceil(threads * 2).next_multiple_of(16);
        let out = SendPtr(output.as_mut_ptr());
        (0..n.div_ceil(width)).into_par_iter().for_each(|t| {
            // Capture the whole (Send) wrapper, not its raw pointer field.
            #[allow(clippy::redundant_locals)]
            let out = out;
            let (j0, j1) = (t * width, ((t + 1) * width).min(n));
            // SAFETY: this task writes only columns j0..j1 of each output row; the slices and
            // strides stay inside `input`, `weights` and `output`.
            unsafe {
                gemm_tile(
                    rows,
                    j1 - j0,
                    k,
                    out.0.add(j0),
                    n,
                    input.as_ptr(),
                    k,
                    weights.as_ptr().add(j0),
                    n,
                );
                for r in 0..rows {
                    let row = std::slice::from_raw_parts_mut(out.0.add(r * n + j0), j1 - j0);
                    let res = residual.map(|res| &res[r * n + j0..r * n + j1]);
                    epilogue(row, &bias[j0..j1], act, res);
                }
            }
        });
    }
}

/// Row-major `dst[m, n] = lhs[m, k] @ rhs[k, n]` with the given row strides, single-threaded.
///
/// # Safety
/// `lhs` is valid for `m` rows of stride `lhs_rs` holding `k` values, `rhs` for `k` rows of
/// stride `rhs_rs` holding `n`, `dst` for `m` rows of stride `dst_rs` holding `n`, which no
/// one else accesses meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_tile(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: *const f32,
    lhs_rs: usize,
    rhs: *const f32,
    rhs_rs: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            lhs,
            1,
            lhs_rs as isize,
            rhs,
            1,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

simd_dispatch!(fn epilogue = epilogue_simd | epilogue_scalar(
    row: &mut [f32],
    bias: &[f32],
    act: Activation,
    residual: Option<&[f32]>,
));

/// # Safety
/// The CPU has `S`'s feature (slice lengths are checked here).
#[inline(always)]
unsafe fn epilogue_simd<S: Simd>(
    row: &mut [f32],
    bias: &[f32],
    act: Activation,
    residual: Option<&[f32]>,
) {
    let (n, l) = (row.len(), S::LANES);
    assert!(bias.len() >= n && residual.is_none_or(|r| r.len() >= n));
    let full = n / l * l;
    // SAFETY: the CPU feature is the caller's; every access is at `j + LANES <= full <= n`,
    // inside `row`, `bias` and `residual` (asserted above).
    unsafe {
        let (zero, six) = (S::splat(0.0), S::splat(6.0));
        let mut j = 0;
        while j < full {
            let p = row.as_mut_ptr().add(j);
            let mut v = S::fma(S::load(p), S::splat(1.0), S::load(bias.as_ptr().add(j)));
            if act == Activation::Relu6 {
                v = S::clamp(v, zero, six);
            }
            if let Some(r) = residual {
                v = S::fma(S::load(r.as_ptr().add(j)), S::splat(1.0), v);
            }
            S::store(p, v);
            j += l;
        }
    }
    epilogue_scalar(
        &mut row[full..],
        &bias[full..],
        act,
        residual.map(|r| &r[full..]),
    );
}

fn epilogue_scalar(row: &mut [f32], bias: &[f32], act: Activation, residual: Option<&[f32]>) {
    for (j, v) in row.iter_mut().enumerate() {
        let mut x = *v + bias[j];
        if act == Activation::Relu6 {
            x = relu6(x);
        }
        if let Some(r) = residual {
            x += r[j];
        }
        *v = x;
    }
}

/// Plain reference: the triple loop.
#[allow(clippy::too_many_arguments)]
pub fn reference(
    input: &[f32],
    rows: usize,
    k: usize,
    weights: &[f32],
    n: usize,
    bias: &[f32],
    act: Activation,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = vec![0f32; rows * n];
    for r in 0..rows {
        for j in 0..n {
            let mut sum = bias[j] as f64;
            for i in 0..k {
                sum += input[r * k + i] as f64 * weights[i * n + j] as f64;
            }
            let mut v = sum as f32;
            if act == Activation::Relu6 {
                v = v.clamp(0.0, 6.0);
            }
            if let Some(res) = residual {
                v += res[r * n + j];
            }
            out[r * n + j] = v;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::kernels::testutil::{max_abs_diff, values};
    use crate::simd::for_each_level;

    #[test]
    fn fast_pointwise_matches_reference() {
        // Many rows (row tiles), few rows (column split), odd sizes, with and without residual.
        for &(rows, k, n) in &[
            (3000, 24, 144),
            (49, 320, 1280),
            (2, 1280, 1000),
            (777, 17, 33),
            (5, 3, 7),
        ] {
            let input = values(rows * k, 11);
            let weights = values(k * n, 12);
            let bias = values(n, 13);
            let residual = values(rows * n, 14);
            for (act, res) in [
                (Activation::Relu6, None),
                (Activation::None, None),
                (Activation::None, Some(&residual[..])),
            ] {
                let want = reference(&input, rows, k, &weights, n, &bias, act, res);
                for_each_level(|level| {
                    let mut out = vec![f32::NAN; rows * n];
                    Pointwise::new(weights.clone(), k, n, bias.clone())
                        .run(&input, rows, act, res, &mut out);
                    assert!(
                        max_abs_diff(&out, &want) < 1e-4,
                        "{rows}x{k}x{n} {act:?} level {level}"
                    );
                });
            }
        }
    }

    #[test]
    fn padded_output_layout_places_rows_inside_zero_borders() {
        use crate::encoder::kernels::Padding;
        if !Pointwise::can_write_padded() {
            return;
        }
        let (h, w, k, n) = (5, 6, 24, 48);
        let pad = Padding::same(h, w, 5, 2);
        let rows = 2 * h * w;
        let (input, weights, bias) = (values(rows * k, 31), values(k * n, 32), values(n, 33));
        let want = reference(&input, rows, k, &weights, n, &bias, Activation::Relu6, None);
        let mut out = vec![f32::NAN; 2 * pad.pixels() * n];
        pad.zero_borders(&mut out, 2, n);
        let pw = Pointwise::new(weights, k, n, bias);
        assert!(pw.run_into(
            &input,
            rows,
            Activation::Relu6,
            None,
            &mut out,
            RowLayout::Padded(pad)
        ));
        for img in 0..2 {
            for y in 0..pad.padded_height {
                for x in 0..pad.padded_width {
                    let got =
                        &out[((img * pad.padded_height + y) * pad.padded_width + x) * n..][..n];
                    let inside =
                        y >= pad.top && y < pad.top + h && x >= pad.left && x < pad.left + w;
                    if inside {
                        let r = (img * h + y - pad.top) * w + x - pad.left;
                        assert!(max_abs_diff(got, &want[r * n..(r + 1) * n]) < 1e-4);
                    } else {
                        assert!(got.iter().all(|&v| v == 0.0));
                    }
                }
            }
        }
    }
}
