//! One MBConv block (expand 1×1 → depthwise k×k → project 1×1, plus the skip) fused over bands
//! of output rows, for the large early feature maps of one image.
//!
//! Layer by layer, the 6×-expanded activation of a 112×112 or 56×56 map (up to 4.8 MB) goes
//! out to memory and comes back for the depthwise convolution, and so does the depthwise
//! output for the projection: at batch 1 those layers ran at a third of the GEMM's speed
//! elsewhere. Here each task walks a run of bands: it expands just the padded input rows a
//! band of output rows reads into a small buffer (kept in L2), convolves them, and projects
//! the result straight into the block's output. Consecutive bands of a task share the
//! `kernel - stride` halo rows, which are moved to the top of the buffer instead of being
//! expanded again.
//!
//! AVX-512 only (it drives the packed GEMM and the padded depthwise kernel directly).
use std::cell::RefCell;

use rayon::prelude::*;

use super::depthwise::Depthwise;
use super::matmul::{PANEL, RowLayout};
use super::pointwise::Pointwise;
use super::{Activation, Padding};
use crate::simd::SendPtr;

/// Bytes of expanded rows a band may hold: a fraction of the 1 MiB L2 of current x86 cores,
/// leaving room for the depthwise output, the weights and the input rows.
const BAND_BYTES: usize = 256 * 1024;

/// Runs of bands per thread: more than one, so that a thread slowed by another process does
/// not hold up the block, unless that would expand more than 1/[`MAX_HALO_SHARE`] of the
/// input rows twice (each run expands its first band's halo afresh).
const RUNS_PER_THREAD: usize = 2;

/// `output` (`oh` rows of `row_len`) in `runs` parts with their row ranges: run `r` takes
/// rows `r * oh / runs ..`, equal shares split off in order (whole bands per run left the
/// last run of a 28-row map with one band of four).
fn split_rows(
    output: &mut [f32],
    oh: usize,
    row_len: usize,
    runs: usize,
) -> Vec<(std::ops::Range<usize>, &mut [f32])> {
    let mut parts = Vec::with_capacity(runs);
    let mut rest = output;
    for r in 0..runs {
        let rows = r * oh / runs..(r + 1) * oh / runs;
        let (part, tail) = rest.split_at_mut(rows.len() * row_len);
        parts.push((rows, part));
        rest = tail;
    }
    parts
}
const MAX_HALO_SHARE: usize = 8;

thread_local! {
    /// Per-thread band buffers (expanded rows, depthwise output), reused across calls.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// The three folded convolutions of one block with an expansion.
pub struct MbConv<'a> {
    pub expand: &'a Pointwise,
    /// The depthwise convolution's shape (over the expanded channels).
    pub depthwise: Depthwise,
    pub depthwise_weights: &'a [f32],
    pub depthwise_bias: &'a [f32],
    pub project: &'a Pointwise,
    /// Threads to split the block over: the pool's size for an image alone, 1 for an image of
    /// a batch whose images already run in parallel.
    pub threads: usize,
}

impl MbConv<'_> {
    /// Whether this CPU and shape have the kernels the fused block drives.
    pub fn applies(&self) -> bool {
        Pointwise::can_write_padded()
            && self.depthwise.padded_input().is_some()
            && self.expand.n == self.depthwise.channels
            && self.project.k == self.depthwise.channels
    }

    /// Panics unless `input` and `output` are one image in and out of this block, and a
    /// `skip` fits it (stride 1, equal widths).
    fn check_shapes(&self, input: &[f32], skip: bool, output: &[f32]) {
        let dw = self.depthwise;
        let (oh, ow) = dw.output_size();
        let (cin, cout) = (self.expand.k, self.project.n);
        assert_eq!(input.len(), dw.height * dw.width * cin);
        assert_eq!(output.len(), oh * ow * cout);
        if skip {
            assert_eq!(
                (dw.stride, cin),
                (1, cout),
                "a skip needs stride 1 and equal widths"
            );
        }
    }

    /// Output rows per band: as many as fit [`BAND_BYTES`] of expanded rows, at least one.
    fn band_rows(&self, padded_width: usize) -> usize {
        let (k, s) = (self.depthwise.kernel, self.depthwise.stride);
        let row_bytes = padded_width * self.depthwise.channels * 4;
        let fit = (BAND_BYTES / row_bytes).saturating_sub(k) / s + 1;
        fit.clamp(1, self.depthwise.output_size().0)
    }

    /// `input [height * width, in]` (one NHWC image) → `output [out_h * out_w, out]`, with
    /// ReLU6 after the expansion and the depthwise convolution, none after the projection,
    /// and `input` added to the output when `skip`. Returns false, writing nothing, unless
    /// [`Self::applies`] (checked once: a later change of level does not matter).
    pub fn run(&self, input: &[f32], skip: bool, output: &mut [f32]) -> bool {
        if !self.applies() {
            return false;
        }
        self.check_shapes(input, skip, output);
        let dw = self.depthwise;
        let (oh, ow) = dw.output_size();
        let cout = self.project.n;
        let pad = Padding::same(dw.height, dw.width, dw.kernel, dw.stride);
        let band = self.band_rows(pad.padded_width);
        let (k, s) = (dw.kernel, dw.stride);
        let threads = self.threads.clamp(1, oh);
        let mut runs = (threads * RUNS_PER_THREAD).min(oh);
        if (k - s) * runs * MAX_HALO_SHARE > oh * s {
            runs = threads;
        }
        split_rows(output, oh, ow * cout, runs)
            .into_par_iter()
            .for_each(|(rows, out)| {
                SCRATCH.with_borrow_mut(|(expanded, convolved)| {
                    self.run_rows(input, skip, pad, band, rows, out, expanded, convolved);
                })
            });
        true
    }

    /// The block on a small map (14×14, 7×7 at batch 1), split by expanded channels instead
    /// of bands: part `t` expands its share of the channels (whole panels of the expansion's
    /// GEMM) over the whole map, convolves them, and projects them into a partial sum of the
    /// output; the partials are then added, with the bias and the skip. That is one parallel
    /// section per block instead of one per layer, and each part's expanded channels stay in
    /// its own core's cache from the expansion to the projection. `expanded`, `convolved` and
    /// `partials` are scratch buffers. Returns false, writing nothing, unless [`Self::applies`].
    pub fn run_split(
        &self,
        input: &[f32],
        skip: bool,
        output: &mut [f32],
        expanded: &mut Vec<f32>,
        convolved: &mut Vec<f32>,
        partials: &mut Vec<f32>,
    ) -> bool {
        if !self.applies() {
            return false;
        }
        self.check_shapes(input, skip, output);
        let dw = self.depthwise;
        let (oh, ow) = dw.output_size();
        let (rows_in, rows_out) = (dw.height * dw.width, oh * ow);
        let (mid, cout) = (dw.channels, self.project.n);
        let pad = Padding::same(dw.height, dw.width, dw.kernel, dw.stride);
        let panels = self.expand.packed().panel_count();
        let parts = self.threads.clamp(1, panels);
        for (buf, len) in [
            (&mut *expanded, pad.pixels() * mid),
            (&mut *convolved, rows_out * mid),
            (&mut *partials, (parts - 1) * rows_out * cout),
        ] {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
        }
        // Every part writes its own channels of the shared `expanded` and `convolved`, so those
        // travel as raw pointers; the outputs are disjoint slices.
        let (exp, conv) = (
            SendPtr(expanded.as_mut_ptr()),
            SendPtr(convolved.as_mut_ptr()),
        );
        let mut outs: Vec<&mut [f32]> = vec![&mut *output];
        outs.extend(partials[..(parts - 1) * rows_out * cout].chunks_exact_mut(rows_out * cout));
        let project_panels = self.project.packed().panel_count();
        outs.into_par_iter().enumerate().for_each(|(t, out)| {
            let (p0, p1) = (t * panels / parts, (t + 1) * panels / parts);
            let (c0, c1) = (p0 * PANEL, (p1 * PANEL).min(mid));
            // Capture the whole (Send) wrappers, not their raw pointer fields.
            #[allow(clippy::redundant_locals)]
            let (exp, conv) = (exp, conv);
            let (exp, conv) = (exp.0, conv.0);
            // SAFETY: part `t` alone touches channels c0..c1 of `expanded` and `convolved`
            // (whole panels of the expansion; `mid` is a multiple of 16, checked by `applies`)
            // and writes `out`, its own; AVX-512F and the padded layout were checked by
            // `applies`; the buffers were sized above and the shapes checked.
            unsafe {
                zero_border_channels(exp, pad, mid, c0, c1);
                self.expand.packed().run_block(
                    input.as_ptr(),
                    0,
                    rows_in,
                    p0,
                    p1,
                    Activation::Relu6,
                    std::ptr::null(),
                    exp,
                    RowLayout::Padded(pad),
                );
                let (w, b) = (self.depthwise_weights, self.depthwise_bias);
                dw.run_padded_channels(exp, w, b, Activation::Relu6, c0, c1, conv);
                self.project.packed().run_block_partial(
                    conv.add(c0),
                    mid,
                    c0,
                    c1,
                    0,
                    rows_out,
                    0,
                    project_panels,
                    out.as_mut_ptr(),
                );
            }
        });
        // Sum the partials, with the bias and the skip, into part 0's output.
        let bias = self.project.bias();
        for (r, row) in output.chunks_exact_mut(cout).enumerate() {
            for t in 1..parts {
                let part = &partials[((t - 1) * rows_out + r) * cout..][..cout];
                row.iter_mut().zip(part).for_each(|(o, p)| *o += p);
            }
            row.iter_mut().zip(bias).for_each(|(o, b)| *o += b);
            if skip {
                let res = &input[r * cout..(r + 1) * cout];
                row.iter_mut().zip(res).for_each(|(o, x)| *o += x);
            }
        }
        true
    }

    /// Output rows `rows`, in bands of at most `band` rows, into `out` (those rows); `pad` is
    /// the depthwise convolution's padded layout. Needs AVX-512F.
    #[allow(clippy::too_many_arguments)]
    fn run_rows(
        &self,
        input: &[f32],
        skip: bool,
        pad: Padding,
        band: usize,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
        expanded: &mut Vec<f32>,
        convolved: &mut Vec<f32>,
    ) {
        let dw = self.depthwise;
        let ow = dw.output_size().1;
        let (k, s, mid) = (dw.kernel, dw.stride, dw.channels);
        let (w, cin, cout) = (dw.width, self.expand.k, self.project.n);
        let row_len = pad.padded_width * mid;
        let max_rows = (band - 1) * s + k;
        if expanded.len() < max_rows * row_len {
            expanded.resize(max_rows * row_len, 0.0);
        }
        if convolved.len() < band * ow * mid {
            convolved.resize(band * ow * mid, 0.0);
        }
        let first_row = rows.start;
        // Padded rows held in `expanded` from the previous band: [held0, held1).
        let mut held = (0, 0);
        for oy0 in rows.clone().step_by(band) {
            let oy1 = (oy0 + band).min(rows.end);
            let (p0, p1) = (oy0 * s, (oy1 - 1) * s + k);
            // Halo rows shared with the previous band move to the top of the buffer.
            let keep = if held.1 > p0 {
                expanded.copy_within((p0 - held.0) * row_len..(held.1 - held.0) * row_len, 0);
                held.1 - p0
            } else {
                0
            };
            // The remaining padded rows: zero outside the image, expanded inside it.
            let (n0, n1) = (p0 + keep, p1);
            let v0 = n0.clamp(pad.top, pad.top + pad.height);
            let v1 = n1.clamp(v0, pad.top + pad.height);
            let rows = Padding {
                height: v1 - v0,
                width: w,
                top: v0 - n0,
                left: pad.left,
                padded_height: n1 - n0,
                padded_width: pad.padded_width,
            };
            let fresh = &mut expanded[keep * row_len..(p1 - p0) * row_len];
            rows.zero_borders(fresh, 1, mid);
            // One call per image row, each a dense run of pixels inside its padded row (a
            // padded layout would cost integer divisions per output row of the GEMM).
            for py in v0..v1 {
                let src = &input[(py - pad.top) * w * cin..][..w * cin];
                let at = ((py - n0) * pad.padded_width + pad.left) * mid;
                let dst = &mut fresh[at..at + w * mid];
                let (relu, dense) = (Activation::Relu6, RowLayout::Dense);
                assert!(self.expand.run_serial(src, w, relu, None, dst, dense));
            }
            held = (p0, p1);
            let conv = &mut convolved[..(oy1 - oy0) * ow * mid];
            dw.run_band(
                &expanded[..(p1 - p0) * row_len],
                self.depthwise_weights,
                self.depthwise_bias,
                Activation::Relu6,
                oy0,
                oy1,
                conv,
            );
            let dst = &mut out[(oy0 - first_row) * ow * cout..(oy1 - first_row) * ow * cout];
            let residual = skip.then(|| &input[oy0 * ow * cout..oy1 * ow * cout]);
            let pixels = (oy1 - oy0) * ow;
            let (none, dense) = (Activation::None, RowLayout::Dense);
            assert!(
                self.project
                    .run_serial(conv, pixels, none, residual, dst, dense)
            );
        }
    }
}

/// Rows of a band of [`depthwise_project`]: its depthwise output (at 112×112×32, 14 KiB a row)
/// stays in L1/L2 until the projection reads it.
const DEPTHWISE_BAND_BYTES: usize = 64 * 1024;

/// A block without expansion (Lite0's first: depthwise 3×3 then project 32→16, no skip) over
/// bands of output rows, on `threads` threads: each band's depthwise output goes straight into
/// the projection while still in cache, instead of 1.6 MB out to memory and back.
/// `padded` is the whole image in `dw`'s padded layout (borders zero), `output` `[out_h * out_w,
/// project.n]`. Returns false, writing nothing, without AVX-512F.
pub fn depthwise_project(
    dw: &Depthwise,
    padded: &[f32],
    weights: &[f32],
    bias: &[f32],
    project: &Pointwise,
    threads: usize,
    output: &mut [f32],
) -> bool {
    let Some(pad) = dw.padded_input() else {
        return false;
    };
    if !Pointwise::can_write_padded() || project.k != dw.channels {
        return false;
    }
    let (oh, ow) = dw.output_size();
    let (c, k, s, cout) = (dw.channels, dw.kernel, dw.stride, project.n);
    let row_len = pad.padded_width * c;
    assert_eq!(padded.len(), pad.pixels() * c);
    assert_eq!(output.len(), oh * ow * cout);
    let band = (DEPTHWISE_BAND_BYTES / (ow * c * 4)).clamp(1, oh);
    let runs = (threads.max(1) * RUNS_PER_THREAD).min(oh);
    split_rows(output, oh, ow * cout, runs)
        .into_par_iter()
        .for_each(|(rows, out)| {
            SCRATCH.with_borrow_mut(|(_, convolved)| {
                if convolved.len() < band * ow * c {
                    convolved.resize(band * ow * c, 0.0);
                }
                for oy0 in rows.clone().step_by(band) {
                    let oy1 = (oy0 + band).min(rows.end);
                    let input = &padded[oy0 * s * row_len..((oy1 - 1) * s + k) * row_len];
                    let conv = &mut convolved[..(oy1 - oy0) * ow * c];
                    dw.run_band(input, weights, bias, Activation::Relu6, oy0, oy1, conv);
                    let at = (oy0 - rows.start) * ow * cout;
                    let dst = &mut out[at..at + (oy1 - oy0) * ow * cout];
                    let (pixels, none, dense) =
                        ((oy1 - oy0) * ow, Activation::None, RowLayout::Dense);
                    assert!(project.run_serial(conv, pixels, none, None, dst, dense));
                }
            })
        });
    true
}

/// Zeroes channels `c0..c1` of the border pixels of one padded image of `channels`.
///
/// # Safety
/// `buf` is valid for `pad.pixels() * channels` values and no one else accesses those
/// channels meanwhile.
unsafe fn zero_border_channels(buf: *mut f32, pad: Padding, channels: usize, c0: usize, c1: usize) {
    for y in 0..pad.padded_height {
        let inside = y >= pad.top && y < pad.top + pad.height;
        for x in 0..pad.padded_width {
            if inside && x >= pad.left && x < pad.left + pad.width {
                continue;
            }
            let at = (y * pad.padded_width + x) * channels;
            // SAFETY: forwarded from the caller.
            unsafe { std::slice::from_raw_parts_mut(buf.add(at + c0), c1 - c0).fill(0.0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::kernels::testutil::{max_abs_diff, values};
    use crate::encoder::kernels::{depthwise, pointwise};
    use crate::simd::at_max_level;

    /// The banded depthwise → projection against the two reference layers, on bands that do
    /// and do not divide the map, both strides.
    #[test]
    fn depthwise_project_matches_the_reference_layers() {
        for &(h, w, c, cout, k, s) in &[(112, 112, 32, 16, 3, 1), (23, 17, 48, 24, 5, 2)] {
            let dw = Depthwise {
                height: h,
                width: w,
                channels: c,
                kernel: k,
                stride: s,
            };
            let Some(pad) = at_max_level(|| dw.padded_input()) else {
                return; // no AVX-512 here: the layer-by-layer path runs instead
            };
            let input = values(h * w * c, 21);
            let (dww, dwb) = (values(k * k * c, 22), values(c, 23));
            let (pw, pb) = (values(c * cout, 24), values(cout, 25));
            let project = Pointwise::new(pw.clone(), c, cout, pb.clone());
            let mut padded = vec![f32::NAN; pad.pixels() * c];
            pad.zero_borders(&mut padded, 1, c);
            for r in 0..h * w {
                padded[pad.row(r) * c..][..c].copy_from_slice(&input[r * c..][..c]);
            }
            let d = depthwise::reference(&dw, &input, &dww, &dwb, Activation::Relu6);
            let (oh, ow) = dw.output_size();
            let none = Activation::None;
            let want = pointwise::reference(&d, oh * ow, c, &pw, cout, &pb, none, None);
            for threads in [1, 2, 3] {
                let mut out = vec![f32::NAN; oh * ow * cout];
                let ran = at_max_level(|| {
                    depthwise_project(&dw, &padded, &dww, &dwb, &project, threads, &mut out)
                });
                assert!(ran);
                let diff = max_abs_diff(&out, &want);
                assert!(
                    diff < 1e-4,
                    "{h}x{w}x{c} k{k} s{s} threads {threads}: {diff}"
                );
            }
        }
    }

    /// The fused block against the three plain reference layers, over the geometries that
    /// matter: stride 1 with a skip, stride 2 (with TF's one-sided padding on even sizes and
    /// two-sided on odd), both kernel sizes, bands that do and do not divide the map.
    #[test]
    fn fused_block_matches_the_reference_layers() {
        for &(h, w, cin, mid, cout, k, s) in &[
            (20, 18, 16, 96, 24, 3, 2),
            (17, 13, 24, 144, 24, 3, 1),
            (21, 22, 24, 144, 40, 5, 2),
            (16, 16, 40, 240, 40, 5, 1),
            (57, 9, 8, 32, 8, 3, 1),
        ] {
            let dw = Depthwise {
                height: h,
                width: w,
                channels: mid,
                kernel: k,
                stride: s,
            };
            let (ew, eb) = (values(cin * mid, 1), values(mid, 2));
            let (dww, dwb) = (values(k * k * mid, 3), values(mid, 4));
            let (pw, pb) = (values(mid * cout, 5), values(cout, 6));
            let expand = Pointwise::new(ew.clone(), cin, mid, eb.clone());
            let project = Pointwise::new(pw.clone(), mid, cout, pb.clone());
            let mut block = MbConv {
                expand: &expand,
                depthwise: dw,
                depthwise_weights: &dww,
                depthwise_bias: &dwb,
                project: &project,
                threads: rayon::current_num_threads(),
            };
            if !at_max_level(|| block.applies()) {
                return; // no AVX-512 here: the layer-by-layer path runs instead
            }
            let input = values(h * w * cin, 7);
            let relu = Activation::Relu6;
            let e = pointwise::reference(&input, h * w, cin, &ew, mid, &eb, relu, None);
            let d = depthwise::reference(&dw, &e, &dww, &dwb, relu);
            let (oh, ow) = dw.output_size();
            let skip = s == 1 && cin == cout;
            let res = skip.then_some(&input[..]);
            let none = Activation::None;
            let want = pointwise::reference(&d, oh * ow, mid, &pw, cout, &pb, none, res);
            let mut out = vec![f32::NAN; oh * ow * cout];
            assert!(at_max_level(|| block.run(&input, skip, &mut out)));
            let diff = max_abs_diff(&out, &want);
            assert!(
                diff < 1e-4,
                "{h}x{w} {cin}->{mid}->{cout} k{k} s{s}: {diff}"
            );
            // Split by channels, over one to three parts.
            let (mut e, mut c, mut p) = (vec![f32::NAN; 7], Vec::new(), Vec::new());
            for threads in [1, 2, 3] {
                block.threads = threads;
                let mut out = vec![f32::NAN; oh * ow * cout];
                let ran = at_max_level(|| {
                    block.run_split(&input, skip, &mut out, &mut e, &mut c, &mut p)
                });
                assert!(ran);
                let diff = max_abs_diff(&out, &want);
                assert!(diff < 1e-4, "split {threads}: {h}x{w} k{k} s{s}: {diff}");
            }
            // Other band heights, down to one output row, in two runs (a halo expanded twice)
            // split at a row that is not a multiple of the band.
            let pad = at_max_level(|| dw.padded_input()).unwrap();
            for band in [1, 2, 3] {
                let split = oh / 2 + 1;
                let mut out = vec![f32::NAN; oh * ow * cout];
                let (first, second) = out.split_at_mut(split * ow * cout);
                let (mut e, mut c) = (Vec::new(), Vec::new());
                block.run_rows(&input, skip, pad, band, 0..split, first, &mut e, &mut c);
                block.run_rows(&input, skip, pad, band, split..oh, second, &mut e, &mut c);
                let diff = max_abs_diff(&out, &want);
                assert!(diff < 1e-4, "{h}x{w} k{k} s{s} band {band}: {diff}");
            }
        }
    }
}
