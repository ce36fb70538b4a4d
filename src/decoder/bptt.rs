//! The whole decoder's training pass written out by hand: forward over the caption with
//! teacher forcing (GRU + additive attention + output projection + masked, label-smoothed
//! cross-entropy), then backpropagation through time walking the steps in reverse.
//!
//! Why by hand: candle's autograd records every tiny per-step op (candle issues 1241 and
//! 2913), which makes a 20-step GRU several times slower than PyTorch; here each step is a
//! few batched matmuls (`gemm`) plus elementwise loops. The forward caches what the backward
//! needs. The same code runs in f64 for the finite-difference gradient check.
//!
//! Rows are time-major: row `t * B + b` is clip `b` at caption position `t`.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::linalg::{
    Real, StepWeight, Update, View, add_row_sums, dot, in_pool, matmul, max_lanes, r, sigmoid,
    sigmoid_act, sum_lanes,
};
use super::params::{Dims, Weights, layout};
use crate::simd::vectorized;
use crate::text::vocab::PAD;

/// A batch for one training step.
pub struct Batch<'a, T> {
    /// Per clip its `N_b × feat` items (T frames × R regions, row-major).
    pub clips: Vec<&'a [T]>,
    /// `B × len` decoder inputs (`<bos>` w1 w2 …), row-major by clip.
    pub tokens_in: &'a [u32],
    /// `B × len` targets (w1 w2 … `<eos>`), `<pad>` where there is no target.
    pub targets: &'a [u32],
    pub len: usize,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PassOptions {
    /// Dropout probability on word embeddings and on the GRU output (0 = off).
    pub dropout: f64,
    pub label_smoothing: f64,
    /// Seeds the dropout masks (the trainer derives it from seed, epoch and step).
    pub seed: u64,
    /// Also compute logits where the target is `<pad>` (they add nothing to the loss or the
    /// gradient; only for like-for-like timing against peers that compute them).
    pub all_positions: bool,
}

/// Mean of a clip's items: the input of the initial-state layer.
pub fn mean_items<T: Real>(items: &[T], feat: usize, out: &mut [T]) {
    out.fill(T::zero());
    let n = items.len() / feat;
    for item in items.chunks_exact(feat) {
        for (o, x) in out.iter_mut().zip(item) {
            *o += *x;
        }
    }
    let inv = T::one() / r(n.max(1) as f64);
    out.iter_mut().for_each(|o| *o = *o * inv);
}

/// The clip's items plus their learned region embedding (what attention attends over).
pub fn items_with_regions<T: Real>(w: &Weights<T>, d: &Dims, items: &[T]) -> Vec<T> {
    let mut fprime = items.to_vec();
    for (i, row) in fprime.chunks_exact_mut(d.feat).enumerate() {
        let region = &w.region[(i % d.regions) * d.feat..][..d.feat];
        row.iter_mut().zip(region).for_each(|(x, e)| *x += *e);
    }
    fprime
}

/// Additive attention of one clip for one query: `pre_i = tanh(key_i + hp)`,
/// `e_i = v·pre_i`, `alpha = softmax(e)`, `ctx = Σ alpha_i f_i`.
pub fn attend<T: Real>(
    keys: &[T],
    fprime: &[T],
    hp: &[T],
    v: &[T],
    pre: &mut [T],
    alpha: &mut [T],
    ctx: &mut [T],
) {
    attention_weights(keys, hp, v, pre, alpha);
    weighted_sum(fprime, alpha, ctx);
}

/// The `alpha` of `attend` (and the `pre` activations BPTT needs).
pub fn attention_weights<T: Real>(keys: &[T], hp: &[T], v: &[T], pre: &mut [T], alpha: &mut [T]) {
    attention_weights_with(keys, hp, v, pre, alpha, T::tanh, T::exp);
}

/// `attention_weights` with the activation functions given (search passes vectorising
/// approximations).
// Always inlined, so that it takes the instruction set of its caller (`simd::vectorized`).
#[inline(always)]
pub fn attention_weights_with<T: Real>(
    keys: &[T],
    hp: &[T],
    v: &[T],
    pre: &mut [T],
    alpha: &mut [T],
    tanh: impl Fn(T) -> T,
    exp: impl Fn(T) -> T,
) {
    let a = hp.len();
    let mut max = T::neg_infinity();
    for ((key, p), e) in keys
        .chunks_exact(a)
        .zip(pre.chunks_exact_mut(a))
        .zip(alpha.iter_mut())
    {
        // Two loops, so that the first vectorises (the sum keeps its order).
        for j in 0..a {
            p[j] = tanh(key[j] + hp[j]);
        }
        let mut s = T::zero();
        for j in 0..a {
            s += v[j] * p[j];
        }
        *e = s;
        max = max.max(s);
    }
    let mut total = T::zero();
    alpha.iter_mut().for_each(|e| {
        *e = exp(*e - max);
        total += *e;
    });
    alpha.iter_mut().for_each(|e| *e = *e / total);
}

/// `out = Σ_i weights_i · rows_i` over the rows of a row-major matrix.
pub fn weighted_sum<T: Real>(rows: &[T], weights: &[T], out: &mut [T]) {
    out.fill(T::zero());
    for (row, &wgt) in rows.chunks_exact(out.len()).zip(weights) {
        out.iter_mut().zip(row).for_each(|(o, x)| *o += wgt * *x);
    }
}
/// Vocabulary logits `[rows, V]` of hidden states `[rows, H]`: the output projection plus bias.
pub fn output_logits<T: Real>(w: &Weights<T>, hidden: &[T], rows: usize, h: usize) -> Vec<T> {
    let v = w.out_b.len();
    let mut logits = Vec::with_capacity(rows * v);
    for _ in 0..rows {
        logits.extend_from_slice(&w.out_b);
    }
    matmul(
        &mut logits,
        v,
        View::new(hidden, rows, h),
        View::new(&w.out_w, v, h).t(),
        Update::Add,
    );
    logits
}

/// PyTorch nn.GRU gate equations (order r, z, n) for one row, given `gi = W_ih x + b_ih`
/// and `gh = W_hh h + b_hh`. Writes the gates (kept for BPTT) and the new state.
#[allow(clippy::too_many_arguments)]
pub fn gru_cell<T: Real>(
    gi: &[T],
    gh: &[T],
    h_prev: &[T],
    r_out: &mut [T],
    z_out: &mut [T],
    n_out: &mut [T],
    h_out: &mut [T],
) {
    gru_cell_with(gi, gh, h_prev, r_out, z_out, n_out, h_out, sigmoid, T::tanh);
}

/// `gru_cell` with the activation functions given.
#[allow(clippy::too_many_arguments)]
// Always inlined, as `attention_weights_with`.
#[inline(always)]
pub fn gru_cell_with<T: Real>(
    gi: &[T],
    gh: &[T],
    h_prev: &[T],
    r_out: &mut [T],
    z_out: &mut [T],
    n_out: &mut [T],
    h_out: &mut [T],
    sigmoid: impl Fn(T) -> T,
    tanh: impl Fn(T) -> T,
) {
    let hs = h_prev.len();
    for j in 0..hs {
        let rg = sigmoid(gi[j] + gh[j]);
        let zg = sigmoid(gi[hs + j] + gh[hs + j]);
        let ng = tanh(gi[2 * hs + j] + rg * gh[2 * hs + j]);
        r_out[j] = rg;
        z_out[j] = zg;
        n_out[j] = ng;
        h_out[j] = (T::one() - zg) * ng + zg * h_prev[j];
    }
}

/// `rows × 3H` matrix of `W_hh h + b_hh`.
pub fn hidden_gates<T: Real>(w: &Weights<T>, hidden: usize, h: &[T], rows: usize) -> Vec<T> {
    let mut gh = Vec::with_capacity(rows * 3 * hidden);
    for _ in 0..rows {
        gh.extend_from_slice(&w.b_hh);
    }
    matmul(
        &mut gh,
        3 * hidden,
        View::new(h, rows, hidden),
        View::new(&w.w_hh, 3 * hidden, hidden).t(),
        Update::Add,
    );
    gh
}

/// Inverted-dropout mask (0 or 1/(1-p)) into `mask`, or `None` without dropout.
fn dropout_mask<T: Real>(rng: &mut ChaCha8Rng, mask: &mut Option<Vec<T>>, len: usize, p: f64) {
    if p <= 0.0 {
        *mask = None;
        return;
    }
    let keep: T = r(1.0 / (1.0 - p));
    let m = mask.get_or_insert_with(Vec::new);
    m.clear();
    m.extend((0..len).map(|_| {
        if rng.random::<f64>() < p {
            T::zero()
        } else {
            keep
        }
    }));
}

/// `buf` as `len` values for a pass that overwrites all of them. Buffers live in the tape
/// and are reused across steps: a fresh allocation of this size is fresh pages, and their
/// first-touch faults cost more than the arithmetic of many of the passes.
fn sized<T: Real>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.resize(len, T::zero());
    buf
}

/// `buf` as `len` zeros (an accumulator), reusing its allocation.
fn zeroed<T: Real>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.clear();
    buf.resize(len, T::zero());
    buf
}

/// Prepares `g` for a backward pass: zeroes the tensors the pass adds into; the rest are
/// overwritten by a product (`Update::Set`), so only a change of shape reallocates.
fn reset_gradient<T: Real>(g: &mut Weights<T>, d: &Dims) {
    let shapes = layout(d);
    let same_shapes = g
        .tensors()
        .iter()
        .zip(&shapes)
        .all(|(t, (_, shape))| t.len() == shape.iter().product::<usize>());
    if !same_shapes {
        *g = Weights::zeros(d);
        return;
    }
    for t in [
        &mut g.init_b,
        &mut g.embed,
        &mut g.b_ih,
        &mut g.b_hh,
        &mut g.region,
        &mut g.att_b_feat,
        &mut g.att_v,
        &mut g.out_b,
    ] {
        t.fill(T::zero());
    }
}

/// Mean loss over the non-`<pad>` targets; when `grad` is given it is overwritten with the
/// gradient of that loss with respect to every parameter.
pub fn loss_and_grad<T: Real>(
    w: &Weights<T>,
    d: &Dims,
    batch: &Batch<T>,
    opts: &PassOptions,
    grad: Option<&mut Weights<T>>,
) -> T {
    loss_and_grad_with(&mut Tape::default(), w, d, batch, opts, grad)
}

/// [`loss_and_grad`] on the buffers of `tape`, which a training loop keeps across steps.
pub fn loss_and_grad_with<T: Real>(
    tape: &mut Tape<T>,
    w: &Weights<T>,
    d: &Dims,
    batch: &Batch<T>,
    opts: &PassOptions,
    grad: Option<&mut Weights<T>>,
) -> T {
    tape.record(w, d, batch, opts);
    if let Some(g) = grad {
        tape.backward(w, d, g);
    }
    tape.loss
}

/// The model's most likely next word at every position under teacher forcing (`B × len`,
/// row-major by clip; `<pad>` where there is no target), e.g. for scheduled sampling.
pub fn teacher_forced_argmax<T: Real>(w: &Weights<T>, d: &Dims, batch: &Batch<T>) -> Vec<u32> {
    let tape = forward(w, d, batch, &PassOptions::default());
    let (bsz, len) = (tape.bsz, tape.len);
    let mut preds = vec![PAD; batch.tokens_in.len()];
    for (&row, &best) in tape.active.iter().zip(&tape.argmax) {
        preds[(row % bsz) * len + row / bsz] = best;
    }
    preds
}

/// The attention inputs of every clip of a batch, concatenated: items `offsets[b]..
/// offsets[b + 1]` are clip b's.
#[derive(Default)]
struct Memory<T> {
    offsets: Vec<usize>,
    /// Items plus their region embedding, `[items, feat]`.
    fprime: Vec<T>,
    /// `W_f f' + b_f`, `[items, att]`.
    keys: Vec<T>,
    /// `W_ih[:, ctx] · f'` of every item, `[items, 3H]`: the context's share of a step's
    /// input gates is `Σ alpha_i` of these rows, so the context block of `W_ih` meets the
    /// items once per batch in one large product instead of once per step in a 32-row one
    /// (and its backward is `dalpha_i = gates_i · dgi`, with no per-step product at all).
    gates: Vec<T>,
}

impl<T: Real> Memory<T> {
    /// The memory of `clips` (none without attention), reusing the buffers. Keys and gates
    /// are one product each over the items of all clips.
    fn fill(&mut self, w: &Weights<T>, d: &Dims, clips: &[&[T]]) {
        self.offsets.clear();
        self.offsets.push(0);
        if !d.attention {
            self.fprime.clear();
            self.keys.clear();
            self.gates.clear();
            return;
        }
        let (fd, a, h3) = (d.feat, d.att, 3 * d.hidden);
        for items in clips {
            self.offsets.push(self.items() + items.len() / fd);
        }
        let n = self.items();
        let fprime = sized(&mut self.fprime, n * fd);
        for (items, lo) in clips.iter().zip(&self.offsets) {
            let rows = fprime[lo * fd..][..items.len()].chunks_exact_mut(fd);
            for (k, (row, item)) in rows.zip(items.chunks_exact(fd)).enumerate() {
                let region = &w.region[(k % d.regions) * fd..][..fd];
                for ((x, f), e) in row.iter_mut().zip(item).zip(region) {
                    *x = *f + *e;
                }
            }
        }
        let keys = sized(&mut self.keys, n * a);
        for row in keys.chunks_exact_mut(a) {
            row.copy_from_slice(&w.att_b_feat);
        }
        let fprime = View::new(&self.fprime, n, fd);
        matmul(
            keys,
            a,
            fprime,
            View::new(&w.att_w_feat, a, fd).t(),
            Update::Add,
        );
        matmul(
            sized(&mut self.gates, n * h3),
            h3,
            fprime,
            View::columns(&w.w_ih, h3, d.gru_input(), d.embed, fd).t(),
            Update::Set,
        );
    }

    fn items(&self) -> usize {
        *self.offsets.last().unwrap()
    }
}

/// What the forward pass keeps for the backward pass. Rows are time-major (`t * B + b`).
/// One tape can serve pass after pass ([`Tape::record`], [`loss_and_grad_with`]): its
/// buffers, and the backward pass's, keep their allocations.
#[derive(Default)]
pub struct Tape<T> {
    /// Mean loss over the non-`<pad>` targets.
    pub loss: T,
    bsz: usize,
    len: usize,
    /// Decoder input token and target of every row.
    tokens: Vec<usize>,
    targets: Vec<u32>,
    emb_mask: Option<Vec<T>>,
    out_mask: Option<Vec<T>>,
    /// Mean item of every clip, `[B, feat]` (input of the initial state).
    mean: Vec<T>,
    /// `hs[0]` = h0, `hs[t + 1]` the state after step t, each `[B, H]`.
    hs: Vec<T>,
    /// The (dropped-out) word embedding of every row, `[rows, embed]`.
    x: Vec<T>,
    mem: Memory<T>,
    /// Per step and item: `tanh(key + W_hid h)` `[len · items, att]` and the weights `alpha`.
    pre: Vec<T>,
    alpha: Vec<T>,
    /// Gates r, z, n and `W_hn h + b_hn` of every row, `[rows, H]` each.
    rg: Vec<T>,
    zg: Vec<T>,
    ng: Vec<T>,
    ghn: Vec<T>,
    /// Rows projected to the vocabulary, their (dropped-out) states `[active, H]`, the loss
    /// gradient with respect to their logits `[active, V]` and their most likely word.
    active: Vec<usize>,
    hact: Vec<T>,
    dlogits: Vec<T>,
    argmax: Vec<u32>,
    /// Buffers of the forward steps: input gates `[rows, 3H]`, and per step the hidden
    /// gates `[B, 3H]` and attention queries `[B, att]`.
    gi: Vec<T>,
    gh: Vec<T>,
    hp: Vec<T>,
    /// Buffers of the backward pass.
    grads: BackwardBuffers<T>,
}

/// The intermediate gradients of [`Tape::backward`], kept for the next pass.
#[derive(Default)]
struct BackwardBuffers<T> {
    dh_out: Vec<T>,
    dh_act: Vec<T>,
    dgi: Vec<T>,
    dgh: Vec<T>,
    dhp: Vec<T>,
    dkeys: Vec<T>,
    dgates: Vec<T>,
    dh: Vec<T>,
    dh_prev: Vec<T>,
    dx_emb: Vec<T>,
}

/// The forward pass with teacher forcing: the loss, and the tape its gradient needs.
pub fn forward<T: Real>(w: &Weights<T>, d: &Dims, batch: &Batch<T>, opts: &PassOptions) -> Tape<T> {
    let mut tape = Tape::default();
    tape.record(w, d, batch, opts);
    tape
}

impl<T: Real> Tape<T> {
    /// The forward pass ([`forward`]) into this tape, reusing its buffers.
    pub fn record(&mut self, w: &Weights<T>, d: &Dims, batch: &Batch<T>, opts: &PassOptions) {
        in_pool(|| self.record_in_pool(w, d, batch, opts));
    }

    fn record_in_pool(&mut self, w: &Weights<T>, d: &Dims, batch: &Batch<T>, opts: &PassOptions) {
        let (bsz, len) = (batch.clips.len(), batch.len);
        let (e, h, fd, inp) = (d.embed, d.hidden, d.feat, d.gru_input());
        let (rows, h3) = (bsz * len, 3 * d.hidden);
        assert_eq!(batch.tokens_in.len(), rows);
        assert_eq!(batch.targets.len(), rows);
        (self.bsz, self.len) = (bsz, len);
        self.tokens.clear();
        self.tokens
            .extend((0..rows).map(|row| batch.tokens_in[(row % bsz) * len + row / bsz] as usize));
        self.targets.clear();
        self.targets
            .extend((0..rows).map(|row| batch.targets[(row % bsz) * len + row / bsz]));

        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        dropout_mask(&mut rng, &mut self.emb_mask, rows * e, opts.dropout);
        dropout_mask(&mut rng, &mut self.out_mask, rows * h, opts.dropout);

        let mean = sized(&mut self.mean, bsz * fd);
        for (items, out) in batch.clips.iter().zip(mean.chunks_exact_mut(fd)) {
            mean_items(items, fd, out);
        }
        let hs = sized(&mut self.hs, (len + 1) * bsz * h);
        initial_state(w, d, &self.mean, &mut hs[..bsz * h]);

        let x = sized(&mut self.x, rows * e);
        for (row, (dst, &tok)) in x.chunks_exact_mut(e).zip(&self.tokens).enumerate() {
            dst.copy_from_slice(&w.embed[tok * e..][..e]);
            if let Some(m) = &self.emb_mask {
                dst.iter_mut()
                    .zip(&m[row * e..])
                    .for_each(|(x, k)| *x = *x * *k);
            }
        }
        // The word's share of the input gates, for all steps at once.
        let mut gi = std::mem::take(&mut self.gi);
        let gi_all = sized(&mut gi, rows * h3);
        for row in gi_all.chunks_exact_mut(h3) {
            row.copy_from_slice(&w.b_ih);
        }
        matmul(
            gi_all,
            h3,
            View::new(&self.x, rows, e),
            View::columns(&w.w_ih, h3, inp, 0, e).t(),
            Update::Add,
        );

        self.mem.fill(w, d, &batch.clips);
        let items = self.mem.items();
        // Every step writes its share of these.
        sized(&mut self.pre, len * items * d.att);
        sized(&mut self.alpha, len * items);
        for gate in [&mut self.rg, &mut self.zg, &mut self.ng, &mut self.ghn] {
            sized(gate, rows * h);
        }
        let recurrent = Recurrent::forward(w, d);
        for t in 0..len {
            self.step(w, d, t, &recurrent, &mut gi);
        }
        self.gi = gi;
        self.project_and_loss(w, d, opts);
    }
}

/// The weights of the products at every step, packed once per pass (`StepWeight`).
struct Recurrent<'a, T> {
    /// `W_hhᵀ` with `b_hh` (forward) or `W_hh` (backward).
    w_hh: StepWeight<'a, T>,
    /// `W_hidᵀ` (forward) or `W_hid` (backward), with attention.
    att_hid: Option<StepWeight<'a, T>>,
}

impl<'a, T: Real> Recurrent<'a, T> {
    fn forward(w: &'a Weights<T>, d: &Dims) -> Self {
        let (h, a) = (d.hidden, d.att);
        Self {
            w_hh: StepWeight::new(View::new(&w.w_hh, 3 * h, h).t(), Some(&w.b_hh)),
            att_hid: d
                .attention
                .then(|| StepWeight::new(View::new(&w.att_w_hid, a, h).t(), None)),
        }
    }

    fn backward(w: &'a Weights<T>, d: &Dims) -> Self {
        let (h, a) = (d.hidden, d.att);
        Self {
            w_hh: StepWeight::new(View::new(&w.w_hh, 3 * h, h), None),
            att_hid: d
                .attention
                .then(|| StepWeight::new(View::new(&w.att_w_hid, a, h), None)),
        }
    }
}

/// `h0 = tanh(W_init · mean + b_init)` of every clip into `h0` (`[B, H]`).
fn initial_state<T: Real>(w: &Weights<T>, d: &Dims, mean: &[T], h0: &mut [T]) {
    let (h, fd) = (d.hidden, d.feat);
    let bsz = mean.len() / fd;
    for row in h0.chunks_exact_mut(h) {
        row.copy_from_slice(&w.init_b);
    }
    matmul(
        h0,
        h,
        View::new(mean, bsz, fd),
        View::new(&w.init_w, h, fd).t(),
        Update::Add,
    );
    h0.iter_mut().for_each(|x| *x = x.tanh());
}

impl<T: Real> Tape<T> {
    /// Forward step `t`: attention of the state before it (adds the context's share of the
    /// input gates into `gi`, `[rows, 3H]`), then the GRU cell.
    fn step(&mut self, w: &Weights<T>, d: &Dims, t: usize, rec: &Recurrent<T>, gi: &mut [T]) {
        let (bsz, h, a, h3) = (self.bsz, d.hidden, d.att, 3 * d.hidden);
        let (done, rest) = self.hs.split_at_mut((t + 1) * bsz * h);
        let h_prev = &done[t * bsz * h..];
        let h_next = &mut rest[..bsz * h];
        let step = t * bsz..(t + 1) * bsz;
        if d.attention {
            let mem = &self.mem;
            let items = mem.items();
            let hp = sized(&mut self.hp, bsz * a);
            rec.att_hid.as_ref().expect("attention").product(
                hp,
                View::new(h_prev, bsz, h),
                Update::Set,
            );
            let hp = &*hp;
            let pre_t = &mut self.pre[t * items * a..(t + 1) * items * a];
            let alpha_t = &mut self.alpha[t * items..(t + 1) * items];
            split_by_offsets(pre_t, &mem.offsets, a)
                .into_par_iter()
                .zip(split_by_offsets(alpha_t, &mem.offsets, 1))
                .zip(gi[step.start * h3..step.end * h3].par_chunks_mut(h3))
                .enumerate()
                .for_each(|(b, ((pre_b, alpha_b), gi_row))| {
                    vectorized(
                        #[inline(always)]
                        || {
                            let (lo, hi) = (mem.offsets[b], mem.offsets[b + 1]);
                            attention_weights_with(
                                &mem.keys[lo * a..hi * a],
                                &hp[b * a..(b + 1) * a],
                                &w.att_v,
                                pre_b,
                                alpha_b,
                                T::tanh_act,
                                T::exp_act,
                            );
                            for (gates, &al) in
                                mem.gates[lo * h3..hi * h3].chunks_exact(h3).zip(&*alpha_b)
                            {
                                gi_row
                                    .iter_mut()
                                    .zip(gates)
                                    .for_each(|(g, x)| *g += al * *x);
                            }
                        },
                    )
                });
        }
        let gh = sized(&mut self.gh, bsz * h3);
        rec.w_hh.product(gh, View::new(h_prev, bsz, h), Update::Set);
        let gh = &self.gh;
        let rows_t = step.start * h..step.end * h;
        h_next
            .par_chunks_mut(h)
            .zip(self.rg[rows_t.clone()].par_chunks_mut(h))
            .zip(self.zg[rows_t.clone()].par_chunks_mut(h))
            .zip(self.ng[rows_t.clone()].par_chunks_mut(h))
            .zip(self.ghn[rows_t].par_chunks_mut(h))
            .enumerate()
            .for_each(|(b, ((((h_out, r_b), z_b), n_b), ghn_b))| {
                vectorized(
                    #[inline(always)]
                    || {
                        let row = t * bsz + b;
                        ghn_b.copy_from_slice(&gh[b * h3 + 2 * h..(b + 1) * h3]);
                        gru_cell_with(
                            &gi[row * h3..(row + 1) * h3],
                            &gh[b * h3..(b + 1) * h3],
                            &h_prev[b * h..(b + 1) * h],
                            r_b,
                            z_b,
                            n_b,
                            h_out,
                            sigmoid_act,
                            T::tanh_act,
                        );
                    },
                )
            });
    }

    /// Output projection of the rows that reach the loss (all with `all_positions`),
    /// masked label-smoothed cross-entropy; keeps its gradient with respect to the logits.
    fn project_and_loss(&mut self, w: &Weights<T>, d: &Dims, opts: &PassOptions) {
        let (h, v) = (d.hidden, d.vocab);
        let targets = &self.targets;
        let rows = targets.len();
        // Only rows with a target reach the loss, so only they are projected to the vocabulary.
        self.active.clear();
        self.active
            .extend((0..rows).filter(|&row| opts.all_positions || targets[row] != PAD));
        let n_act = self.active.len();
        let hout = &self.hs[self.bsz * h..];
        let hact = sized(&mut self.hact, n_act * h);
        for (dst, &row) in hact.chunks_exact_mut(h).zip(&self.active) {
            dst.copy_from_slice(&hout[row * h..(row + 1) * h]);
            if let Some(m) = &self.out_mask {
                dst.iter_mut()
                    .zip(&m[row * h..])
                    .for_each(|(x, k)| *x = *x * *k);
            }
        }
        // The product alone; the loss pass adds the bias while the row is in cache.
        let logits = sized(&mut self.dlogits, n_act * v);
        matmul(
            logits,
            v,
            View::new(&self.hact, n_act, h),
            View::new(&w.out_w, v, h).t(),
            Update::Set,
        );
        // Log-softmax and the loss; `logits` becomes d loss / d logits in place.
        let count = targets.iter().filter(|&&y| y != PAD).count();
        let eps: T = r(opts.label_smoothing);
        let inv_count: T = r(1.0 / count.max(1) as f64);
        let inv_v: T = r(1.0 / v as f64);
        // Per-row results collected in order and summed sequentially: the loss is the same
        // bits whatever the thread split.
        let per_row: Vec<(T, u32)> = logits
            .par_chunks_mut(v)
            .zip(self.active.par_iter())
            .map(|(z, &row)| {
                vectorized(
                    #[inline(always)]
                    || {
                        let y = targets[row];
                        if y == PAD {
                            z.fill(T::zero());
                            return (T::zero(), PAD);
                        }
                        z.iter_mut().zip(&w.out_b).for_each(|(x, b)| *x += *b);
                        let max = max_lanes(z);
                        // The first index of the maximum, as a strict `>` scan finds it.
                        let best = z.iter().position(|&x| x == max).unwrap_or(0) as u32;
                        let mean_logit = sum_lanes(z) * inv_v;
                        let zy = z[y as usize];
                        // z becomes e^(z - max); softmax = that / its sum, so one exp per logit.
                        z.iter_mut().for_each(|x| *x = (*x - max).exp_act());
                        let sum = sum_lanes(z);
                        let lse = max + sum.ln();
                        let row_loss = -(T::one() - eps) * (zy - lse) - eps * (mean_logit - lse);
                        let (inv_sum, smooth) = (T::one() / sum, eps * inv_v);
                        for x in z.iter_mut() {
                            *x = (*x * inv_sum - smooth) * inv_count;
                        }
                        z[y as usize] = z[y as usize] - (T::one() - eps) * inv_count;
                        (row_loss, best)
                    },
                )
            })
            .collect();
        self.loss = per_row.iter().fold(T::zero(), |acc, (l, _)| acc + *l) * inv_count;
        self.argmax.clear();
        self.argmax.extend(per_row.iter().map(|&(_, best)| best));
    }

    /// Backpropagation through time: overwrites `g` with the gradient of the loss.
    pub fn backward(&mut self, w: &Weights<T>, d: &Dims, g: &mut Weights<T>) {
        in_pool(|| self.backward_in_pool(w, d, g));
    }

    fn backward_in_pool(&mut self, w: &Weights<T>, d: &Dims, g: &mut Weights<T>) {
        let (bsz, len) = (self.bsz, self.len);
        let (h, a, inp) = (d.hidden, d.att, d.gru_input());
        let (rows, h3, items) = (bsz * len, 3 * d.hidden, self.mem.items());
        reset_gradient(g, d);
        let mut bufs = std::mem::take(&mut self.grads);
        self.output_backward(w, d, g, &mut bufs);
        let BackwardBuffers {
            dh_out,
            dgi,
            dgh,
            dhp,
            dkeys,
            dgates,
            dh,
            dh_prev,
            dx_emb,
            ..
        } = &mut bufs;
        // gru_backward writes every row of these.
        let dgi = sized(dgi, rows * h3);
        // d/d(W_hh h + b_hh) and d/d(W_hid h) of every row; their weight gradients are one
        // matmul each after the loop instead of one per step.
        let dgh = sized(dgh, rows * h3);
        let dhp = zeroed(dhp, if d.attention { rows * a } else { 0 });
        let dkeys = zeroed(dkeys, items * a);
        let dgates = sized(dgates, items * h3);
        let mut dh = zeroed(dh, bsz * h);
        let mut dh_prev = sized(dh_prev, bsz * h);
        let recurrent = Recurrent::backward(w, d);
        for t in (0..len).rev() {
            let rows_t = t * bsz..(t + 1) * bsz;
            self.gru_backward(d, t, dh, dh_out, dgi, dgh, dh_prev);
            recurrent.w_hh.product(
                dh_prev,
                View::new(&dgh[rows_t.start * h3..rows_t.end * h3], bsz, h3),
                Update::Add,
            );
            if d.attention {
                let dhp_t = &mut dhp[rows_t.start * a..rows_t.end * a];
                self.attention_backward(
                    w,
                    d,
                    t,
                    &dgi[rows_t.start * h3..rows_t.end * h3],
                    dkeys,
                    dhp_t,
                    &mut g.att_v,
                );
                recurrent.att_hid.as_ref().expect("attention").product(
                    dh_prev,
                    View::new(dhp_t, bsz, a),
                    Update::Add,
                );
            }
            std::mem::swap(&mut dh, &mut dh_prev);
        }
        // Weight gradients of the per-step products, each one product over all steps.
        let h_prevs = View::new(&self.hs[..rows * h], rows, h);
        matmul(
            &mut g.w_hh,
            h,
            View::new(dgh, rows, h3).t(),
            h_prevs,
            Update::Set,
        );
        add_row_sums(&mut g.b_hh, dgh, h3);
        if d.attention {
            matmul(
                &mut g.att_w_hid,
                h,
                View::new(dhp, rows, a).t(),
                h_prevs,
                Update::Set,
            );
        }
        matmul(
            &mut g.w_ih,
            inp,
            View::new(dgi, rows, h3).t(),
            View::new(&self.x, rows, d.embed),
            Update::Set,
        );
        add_row_sums(&mut g.b_ih, dgi, h3);
        self.embedding_backward(w, d, dgi, g, dx_emb);
        if d.attention {
            self.gates_backward(d, dgi, dgates);
            self.memory_backward(w, d, dkeys, dgates, g);
        }
        self.initial_state_backward(d, dh, g);
        self.grads = bufs;
    }

    /// Gradients of the output projection; writes d loss / d h of every row `[rows, H]`
    /// into `bufs.dh_out`.
    fn output_backward(
        &self,
        w: &Weights<T>,
        d: &Dims,
        g: &mut Weights<T>,
        bufs: &mut BackwardBuffers<T>,
    ) {
        let (h, v, n_act) = (d.hidden, d.vocab, self.active.len());
        let rows = self.bsz * self.len;
        let dlogits = View::new(&self.dlogits, n_act, v);
        matmul(
            &mut g.out_w,
            h,
            dlogits.t(),
            View::new(&self.hact, n_act, h),
            Update::Set,
        );
        add_row_sums(&mut g.out_b, &self.dlogits, v);
        let w_out = View::new(&w.out_w, v, h);
        if n_act == rows {
            // Every row is active, in order: the product lands in place.
            matmul(
                sized(&mut bufs.dh_out, rows * h),
                h,
                dlogits,
                w_out,
                Update::Set,
            );
        } else {
            let dh_act = sized(&mut bufs.dh_act, n_act * h);
            matmul(dh_act, h, dlogits, w_out, Update::Set);
            let dh_out = zeroed(&mut bufs.dh_out, rows * h);
            for (src, &row) in dh_act.chunks_exact(h).zip(&self.active) {
                dh_out[row * h..(row + 1) * h].copy_from_slice(src);
            }
        }
        if let Some(m) = &self.out_mask {
            bufs.dh_out
                .iter_mut()
                .zip(m)
                .for_each(|(x, k)| *x = *x * *k);
        }
    }

    /// Backward of the GRU cell at step `t` given `dh` (from step t + 1) and `dh_out` (from
    /// the output): writes the step's input- and hidden-gate gradients into `dgi`/`dgh` and
    /// the direct part of d loss / d h_{t-1} (the `z · h` term) into `dh_prev`.
    #[allow(clippy::too_many_arguments)]
    fn gru_backward(
        &self,
        d: &Dims,
        t: usize,
        dh: &[T],
        dh_out: &[T],
        dgi: &mut [T],
        dgh: &mut [T],
        dh_prev: &mut [T],
    ) {
        let (bsz, h, h3) = (self.bsz, d.hidden, 3 * d.hidden);
        let h_prev = &self.hs[t * bsz * h..(t + 1) * bsz * h];
        let rows_t = t * bsz..(t + 1) * bsz;
        let (rg, zg, ng, ghn) = (&self.rg, &self.zg, &self.ng, &self.ghn);
        dgi[rows_t.start * h3..rows_t.end * h3]
            .par_chunks_mut(h3)
            .zip(dgh[rows_t.start * h3..rows_t.end * h3].par_chunks_mut(h3))
            .zip(dh_prev.par_chunks_mut(h))
            .enumerate()
            .for_each(|(b, ((gi_row, gh_row), dhp_row))| {
                vectorized(
                    #[inline(always)]
                    || {
                        let row = t * bsz + b;
                        for j in 0..h {
                            let k = row * h + j;
                            let dhj = dh[b * h + j] + dh_out[k];
                            let (rr, zz, nn, hp) = (rg[k], zg[k], ng[k], h_prev[b * h + j]);
                            let dn = dhj * (T::one() - zz);
                            let dz = dhj * (hp - nn);
                            dhp_row[j] = dhj * zz;
                            let dan = dn * (T::one() - nn * nn);
                            let dar = dan * ghn[k] * rr * (T::one() - rr);
                            let daz = dz * zz * (T::one() - zz);
                            gi_row[j] = dar;
                            gi_row[h + j] = daz;
                            gi_row[2 * h + j] = dan;
                            gh_row[j] = dar;
                            gh_row[h + j] = daz;
                            gh_row[2 * h + j] = dan * rr;
                        }
                    },
                )
            });
    }

    /// Backward of the attention at step `t` given the step's input-gate gradients
    /// `dgi_t` (`[B, 3H]`): accumulates key and `v` gradients, writes the query gradients
    /// `dhp_t` (`[B, att]`). (The item gates' gradient waits for [`Self::gates_backward`].)
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self,
        w: &Weights<T>,
        d: &Dims,
        t: usize,
        dgi_t: &[T],
        dkeys: &mut [T],
        dhp_t: &mut [T],
        dv: &mut [T],
    ) {
        let (a, h3) = (d.att, 3 * d.hidden);
        let (mem, items) = (&self.mem, self.mem.items());
        let pre_t = &self.pre[t * items * a..(t + 1) * items * a];
        let alpha_t = &self.alpha[t * items..(t + 1) * items];
        let dv_clips: Vec<Vec<T>> = split_by_offsets(dkeys, &mem.offsets, a)
            .into_par_iter()
            .zip(dhp_t.par_chunks_mut(a))
            .enumerate()
            .map(|(b, (dk, dhp_b))| {
                vectorized(
                    #[inline(always)]
                    || {
                        let (lo, hi) = (mem.offsets[b], mem.offsets[b + 1]);
                        attend_backward(
                            &dgi_t[b * h3..(b + 1) * h3],
                            &mem.gates[lo * h3..hi * h3],
                            &pre_t[lo * a..hi * a],
                            &alpha_t[lo..hi],
                            &w.att_v,
                            dk,
                            dhp_b,
                        )
                    },
                )
            })
            .collect();
        for dv_b in dv_clips {
            dv.iter_mut().zip(dv_b).for_each(|(g, x)| *g += x);
        }
    }

    /// Gradient of the word embeddings from the input-gate gradients `dgi` (`[rows, 3H]`).
    fn embedding_backward(
        &self,
        w: &Weights<T>,
        d: &Dims,
        dgi: &[T],
        g: &mut Weights<T>,
        dx_emb: &mut Vec<T>,
    ) {
        let (e, inp, h3) = (d.embed, d.gru_input(), 3 * d.hidden);
        let rows = self.tokens.len();
        let dx_emb = sized(dx_emb, rows * e);
        matmul(
            dx_emb,
            e,
            View::new(dgi, rows, h3),
            View::columns(&w.w_ih, h3, inp, 0, e),
            Update::Set,
        );
        for (row, &tok) in self.tokens.iter().enumerate() {
            let dst = &mut g.embed[tok * e..(tok + 1) * e];
            let src = &dx_emb[row * e..(row + 1) * e];
            match &self.emb_mask {
                Some(m) => dst
                    .iter_mut()
                    .zip(src.iter().zip(&m[row * e..]))
                    .for_each(|(d, (s, k))| *d += *s * *k),
                None => dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s),
            }
        }
    }

    /// Gradients of the key layer, of the context block of `W_ih` and of the region
    /// embedding, given the key and item-gate gradients.
    fn memory_backward(
        &self,
        w: &Weights<T>,
        d: &Dims,
        dkeys: &[T],
        dgates: &[T],
        g: &mut Weights<T>,
    ) {
        let (fd, a, e, inp, h3, mem) = (
            d.feat,
            d.att,
            d.embed,
            d.gru_input(),
            3 * d.hidden,
            &self.mem,
        );
        let items = mem.items();
        let fprime = View::new(&mem.fprime, items, fd);
        matmul(
            &mut g.att_w_feat,
            fd,
            View::new(dkeys, items, a).t(),
            fprime,
            Update::Set,
        );
        add_row_sums(&mut g.att_b_feat, dkeys, a);
        matmul(
            &mut g.w_ih[e..],
            inp,
            View::new(dgates, items, h3).t(),
            fprime,
            Update::Set,
        );
        // A region's embedding is added to each of its items, so its gradient is the sum of
        // d loss / d f' over them; f' enters linearly (keys and gates), so the sums go through
        // the two layers once per region instead of once per item.
        let regions = d.regions;
        let (mut dgates_sum, mut dkeys_sum) =
            (vec![T::zero(); regions * h3], vec![T::zero(); regions * a]);
        for pair in mem.offsets.windows(2) {
            for (k, i) in (pair[0]..pair[1]).enumerate() {
                let region = k % regions;
                let add = |sum: &mut [T], src: &[T]| {
                    sum.iter_mut().zip(src).for_each(|(s, x)| *s += *x);
                };
                add(
                    &mut dgates_sum[region * h3..(region + 1) * h3],
                    &dgates[i * h3..(i + 1) * h3],
                );
                add(
                    &mut dkeys_sum[region * a..(region + 1) * a],
                    &dkeys[i * a..(i + 1) * a],
                );
            }
        }
        matmul(
            &mut g.region,
            fd,
            View::new(&dgates_sum, regions, h3),
            View::columns(&w.w_ih, h3, inp, e, fd),
            Update::Add,
        );
        matmul(
            &mut g.region,
            fd,
            View::new(&dkeys_sum, regions, a),
            View::new(&w.att_w_feat, a, fd),
            Update::Add,
        );
    }

    /// d loss / d mem.gates (`[items, 3H]`) from the input-gate gradients `dgi`: item i of
    /// clip b gets `Σ_t alpha_{t,i} · dgi_{t,b}`. One pass per item after the time loop, with
    /// the item's row in cache, instead of a read-modify-write of all of them every step.
    fn gates_backward(&self, d: &Dims, dgi: &[T], dgates: &mut [T]) {
        let (bsz, len, h3, mem) = (self.bsz, self.len, 3 * d.hidden, &self.mem);
        let items = mem.items();
        split_by_offsets(dgates, &mem.offsets, h3)
            .into_par_iter()
            .enumerate()
            .for_each(|(b, dg)| {
                vectorized(
                    #[inline(always)]
                    || {
                        for (k, row) in dg.chunks_exact_mut(h3).enumerate() {
                            let i = mem.offsets[b] + k;
                            row.fill(T::zero());
                            for t in (0..len).rev() {
                                let al = self.alpha[t * items + i];
                                let src = &dgi[(t * bsz + b) * h3..][..h3];
                                row.iter_mut().zip(src).for_each(|(g, x)| *g += al * *x);
                            }
                        }
                    },
                )
            });
    }

    /// Gradients of the initial-state layer given d loss / d h0 (`[B, H]`).
    fn initial_state_backward(&self, d: &Dims, dh0: &[T], g: &mut Weights<T>) {
        let (h, fd) = (d.hidden, d.feat);
        let h0 = &self.hs[..self.bsz * h];
        let da0: Vec<T> = dh0
            .iter()
            .zip(h0)
            .map(|(g, y)| *g * (T::one() - *y * *y))
            .collect();
        matmul(
            &mut g.init_w,
            fd,
            View::new(&da0, self.bsz, h).t(),
            View::new(&self.mean, self.bsz, fd),
            Update::Set,
        );
        add_row_sums(&mut g.init_b, &da0, h);
    }
}

/// Backward of the attention weights of one clip and step, given the gradient `dgi` of the
/// step's input gates, whose context share is `Σ alpha_i gates_i`: accumulates into the
/// clip's key gradients, writes the query gradient `dhp`, returns this clip's gradient of
/// `v`.
fn attend_backward<T: Real>(
    dgi: &[T],
    gates: &[T],
    pre: &[T],
    alpha: &[T],
    v: &[T],
    dkeys: &mut [T],
    dhp: &mut [T],
) -> Vec<T> {
    let h3 = dgi.len();
    let a = v.len();
    let dalpha: Vec<T> = gates.chunks_exact(h3).map(|g| dot(g, dgi)).collect();
    let s: T = alpha.iter().zip(&dalpha).map(|(al, da)| *al * *da).sum();
    let mut dv = vec![T::zero(); a];
    for (i, &al) in alpha.iter().enumerate() {
        let de = al * (dalpha[i] - s);
        let p = &pre[i * a..(i + 1) * a];
        for j in 0..a {
            dv[j] += de * p[j];
            let du = de * v[j] * (T::one() - p[j] * p[j]);
            dkeys[i * a + j] += du;
            dhp[j] += du;
        }
    }
    dv
}

/// Disjoint mutable per-clip blocks of a buffer holding `width` values per item.
fn split_by_offsets<'a, T>(
    mut buf: &'a mut [T],
    offsets: &[usize],
    width: usize,
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(offsets.len() - 1);
    for pair in offsets.windows(2) {
        let (head, tail) = buf.split_at_mut((pair[1] - pair[0]) * width);
        out.push(head);
        buf = tail;
    }
    out
}
