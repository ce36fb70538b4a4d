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
    Real, StepWeight, Update, View, add_row_sums, dot, matmul, max_lanes, r, sigmoid, sigmoid_act,
    sum_lanes,
};
use super::params::{Dims, Weights};
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

/// Attention inputs of one clip: items plus their learned region embedding, and the keys
/// `W_f f + b_f`, both fixed over the caption.
pub fn attention_memory<T: Real>(w: &Weights<T>, d: &Dims, items: &[T]) -> (Vec<T>, Vec<T>) {
    let n = items.len() / d.feat;
    let fprime = items_with_regions(w, d, items);
    let mut keys = vec![T::zero(); n * d.att];
    for row in keys.chunks_exact_mut(d.att) {
        row.copy_from_slice(&w.att_b_feat);
    }
    matmul(
        &mut keys,
        d.att,
        View::new(&fprime, n, d.feat),
        View::new(&w.att_w_feat, d.att, d.feat).t(),
        Update::Add,
    );
    (fprime, keys)
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
#[inline]
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
#[inline]
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

/// Inverted-dropout mask: 0 or 1/(1-p).
fn dropout_mask<T: Real>(rng: &mut ChaCha8Rng, len: usize, p: f64) -> Option<Vec<T>> {
    if p <= 0.0 {
        return None;
    }
    let keep: T = r(1.0 / (1.0 - p));
    Some(
        (0..len)
            .map(|_| {
                if rng.random::<f64>() < p {
                    T::zero()
                } else {
                    keep
                }
            })
            .collect(),
    )
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
    let tape = forward(w, d, batch, opts);
    let loss = tape.loss;
    if let Some(g) = grad {
        tape.backward(w, d, g);
    }
    loss
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
    fn new(w: &Weights<T>, d: &Dims, clips: &[&[T]]) -> Self {
        let mut m = Memory {
            offsets: vec![0],
            fprime: vec![],
            keys: vec![],
            gates: vec![],
        };
        if d.attention {
            for items in clips {
                let (f, k) = attention_memory(w, d, items);
                m.fprime.extend(f);
                m.keys.extend(k);
                m.offsets.push(m.fprime.len() / d.feat);
            }
            let (h3, n) = (3 * d.hidden, m.items());
            m.gates = vec![T::zero(); n * h3];
            matmul(
                &mut m.gates,
                h3,
                View::new(&m.fprime, n, d.feat),
                View::columns(&w.w_ih, h3, d.gru_input(), d.embed, d.feat).t(),
                Update::Set,
            );
        }
        m
    }

    fn items(&self) -> usize {
        *self.offsets.last().unwrap()
    }
}

/// What the forward pass keeps for the backward pass. Rows are time-major (`t * B + b`).
pub struct Tape<T> {
    /// Mean loss over the non-`<pad>` targets.
    pub loss: T,
    bsz: usize,
    len: usize,
    /// Decoder input token of every row.
    tokens: Vec<usize>,
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
}

/// The forward pass with teacher forcing: the loss, and the tape its gradient needs.
pub fn forward<T: Real>(w: &Weights<T>, d: &Dims, batch: &Batch<T>, opts: &PassOptions) -> Tape<T> {
    let (bsz, len) = (batch.clips.len(), batch.len);
    let (e, h, fd, inp) = (d.embed, d.hidden, d.feat, d.gru_input());
    let (rows, h3) = (bsz * len, 3 * d.hidden);
    assert_eq!(batch.tokens_in.len(), rows);
    assert_eq!(batch.targets.len(), rows);
    let tokens: Vec<usize> = (0..rows)
        .map(|row| batch.tokens_in[(row % bsz) * len + row / bsz] as usize)
        .collect();
    let targets: Vec<u32> = (0..rows)
        .map(|row| batch.targets[(row % bsz) * len + row / bsz])
        .collect();

    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let emb_mask = dropout_mask::<T>(&mut rng, rows * e, opts.dropout);
    let out_mask = dropout_mask::<T>(&mut rng, rows * h, opts.dropout);

    let mut mean = vec![T::zero(); bsz * fd];
    for (b, items) in batch.clips.iter().enumerate() {
        mean_items(items, fd, &mut mean[b * fd..(b + 1) * fd]);
    }
    let mut hs = vec![T::zero(); (len + 1) * bsz * h];
    initial_state(w, d, &mean, &mut hs[..bsz * h]);

    let mut x = vec![T::zero(); rows * e];
    for (row, &tok) in tokens.iter().enumerate() {
        let dst = &mut x[row * e..(row + 1) * e];
        dst.copy_from_slice(&w.embed[tok * e..][..e]);
        if let Some(m) = &emb_mask {
            dst.iter_mut()
                .zip(&m[row * e..])
                .for_each(|(x, k)| *x = *x * *k);
        }
    }
    // The word's share of the input gates, for all steps at once.
    let mut gi = Vec::with_capacity(rows * h3);
    for _ in 0..rows {
        gi.extend_from_slice(&w.b_ih);
    }
    matmul(
        &mut gi,
        h3,
        View::new(&x, rows, e),
        View::columns(&w.w_ih, h3, inp, 0, e).t(),
        Update::Add,
    );

    let mem = Memory::new(w, d, &batch.clips);
    let mut tape = Tape {
        loss: T::zero(),
        bsz,
        len,
        tokens,
        emb_mask,
        out_mask,
        mean,
        hs,
        x,
        pre: vec![T::zero(); len * mem.items() * d.att],
        alpha: vec![T::zero(); len * mem.items()],
        mem,
        rg: vec![T::zero(); rows * h],
        zg: vec![T::zero(); rows * h],
        ng: vec![T::zero(); rows * h],
        ghn: vec![T::zero(); rows * h],
        active: vec![],
        hact: vec![],
        dlogits: vec![],
        argmax: vec![],
    };
    let recurrent = Recurrent::forward(w, d);
    for t in 0..len {
        tape.step(w, d, t, &recurrent, &mut gi);
    }
    tape.project_and_loss(w, d, &targets, opts);
    tape
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
            let mut hp = vec![T::zero(); bsz * a];
            rec.att_hid.as_ref().expect("attention").product(
                &mut hp,
                View::new(h_prev, bsz, h),
                Update::Set,
            );
            let pre_t = &mut self.pre[t * items * a..(t + 1) * items * a];
            let alpha_t = &mut self.alpha[t * items..(t + 1) * items];
            split_by_offsets(pre_t, &mem.offsets, a)
                .into_par_iter()
                .zip(split_by_offsets(alpha_t, &mem.offsets, 1))
                .zip(gi[step.start * h3..step.end * h3].par_chunks_mut(h3))
                .enumerate()
                .for_each(|(b, ((pre_b, alpha_b), gi_row))| {
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
                    for (gates, &al) in mem.gates[lo * h3..hi * h3].chunks_exact(h3).zip(&*alpha_b)
                    {
                        gi_row
                            .iter_mut()
                            .zip(gates)
                            .for_each(|(g, x)| *g += al * *x);
                    }
                });
        }
        let mut gh = vec![T::zero(); bsz * h3];
        rec.w_hh
            .product(&mut gh, View::new(h_prev, bsz, h), Update::Set);
        let rows_t = step.start * h..step.end * h;
        h_next
            .par_chunks_mut(h)
            .zip(self.rg[rows_t.clone()].par_chunks_mut(h))
            .zip(self.zg[rows_t.clone()].par_chunks_mut(h))
            .zip(self.ng[rows_t.clone()].par_chunks_mut(h))
            .zip(self.ghn[rows_t].par_chunks_mut(h))
            .enumerate()
            .for_each(|(b, ((((h_out, r_b), z_b), n_b), ghn_b))| {
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
            });
    }

    /// Output projection of the rows that reach the loss (all with `all_positions`),
    /// masked label-smoothed cross-entropy; keeps its gradient with respect to the logits.
    fn project_and_loss(&mut self, w: &Weights<T>, d: &Dims, targets: &[u32], opts: &PassOptions) {
        let (h, v) = (d.hidden, d.vocab);
        let rows = targets.len();
        let mut hout = self.hs[self.bsz * h..].to_vec();
        if let Some(m) = &self.out_mask {
            hout.iter_mut().zip(m).for_each(|(x, k)| *x = *x * *k);
        }
        // Only rows with a target reach the loss, so only they are projected to the vocabulary.
        self.active = (0..rows)
            .filter(|&row| opts.all_positions || targets[row] != PAD)
            .collect();
        self.hact = self
            .active
            .iter()
            .flat_map(|&row| hout[row * h..(row + 1) * h].iter().copied())
            .collect();
        let mut logits = output_logits(w, &self.hact, self.active.len(), h);
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
                let y = targets[row];
                if y == PAD {
                    z.fill(T::zero());
                    return (T::zero(), PAD);
                }
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
            })
            .collect();
        self.loss = per_row.iter().fold(T::zero(), |acc, (l, _)| acc + *l) * inv_count;
        self.argmax = per_row.iter().map(|&(_, best)| best).collect();
        self.dlogits = logits;
    }

    /// Backpropagation through time: overwrites `g` with the gradient of the loss.
    pub fn backward(self, w: &Weights<T>, d: &Dims, g: &mut Weights<T>) {
        let (bsz, len) = (self.bsz, self.len);
        let (h, a, inp) = (d.hidden, d.att, d.gru_input());
        let (rows, h3, items) = (bsz * len, 3 * d.hidden, self.mem.items());
        *g = Weights::zeros(d);
        let dh_out = self.output_backward(w, d, g);

        let mut dgi = vec![T::zero(); rows * h3];
        // d/d(W_hh h + b_hh) and d/d(W_hid h) of every row; their weight gradients are one
        // matmul each after the loop instead of one per step.
        let mut dgh = vec![T::zero(); rows * h3];
        let mut dhp = vec![T::zero(); if d.attention { rows * a } else { 0 }];
        let mut dkeys = vec![T::zero(); items * a];
        // d loss / d mem.gates: Σ over steps of alpha · dgi.
        let mut dgates = vec![T::zero(); items * h3];
        let mut dh = vec![T::zero(); bsz * h];
        let recurrent = Recurrent::backward(w, d);
        for t in (0..len).rev() {
            let rows_t = t * bsz..(t + 1) * bsz;
            let mut dh_prev = self.gru_backward(d, t, &dh, &dh_out, &mut dgi, &mut dgh);
            recurrent.w_hh.product(
                &mut dh_prev,
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
                    &mut dkeys,
                    &mut dgates,
                    dhp_t,
                    &mut g.att_v,
                );
                recurrent.att_hid.as_ref().expect("attention").product(
                    &mut dh_prev,
                    View::new(dhp_t, bsz, a),
                    Update::Add,
                );
            }
            dh = dh_prev;
        }
        // Weight gradients of the per-step products, each one product over all steps.
        let h_prevs = View::new(&self.hs[..rows * h], rows, h);
        matmul(
            &mut g.w_hh,
            h,
            View::new(&dgh, rows, h3).t(),
            h_prevs,
            Update::Set,
        );
        add_row_sums(&mut g.b_hh, &dgh, h3);
        if d.attention {
            matmul(
                &mut g.att_w_hid,
                h,
                View::new(&dhp, rows, a).t(),
                h_prevs,
                Update::Set,
            );
        }
        matmul(
            &mut g.w_ih,
            inp,
            View::new(&dgi, rows, h3).t(),
            View::new(&self.x, rows, d.embed),
            Update::Set,
        );
        add_row_sums(&mut g.b_ih, &dgi, h3);
        self.embedding_backward(w, d, &dgi, g);
        if d.attention {
            self.memory_backward(w, d, &dkeys, &dgates, g);
        }
        self.initial_state_backward(d, &dh, g);
    }

    /// Gradients of the output projection; returns d loss / d h of every row `[rows, H]`.
    fn output_backward(&self, w: &Weights<T>, d: &Dims, g: &mut Weights<T>) -> Vec<T> {
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
        let mut dh_act = vec![T::zero(); n_act * h];
        matmul(
            &mut dh_act,
            h,
            dlogits,
            View::new(&w.out_w, v, h),
            Update::Set,
        );
        let mut dh_out = vec![T::zero(); rows * h];
        for (k, &row) in self.active.iter().enumerate() {
            dh_out[row * h..(row + 1) * h].copy_from_slice(&dh_act[k * h..(k + 1) * h]);
        }
        if let Some(m) = &self.out_mask {
            dh_out.iter_mut().zip(m).for_each(|(x, k)| *x = *x * *k);
        }
        dh_out
    }

    /// Backward of the GRU cell at step `t` given `dh` (from step t + 1) and `dh_out` (from
    /// the output): writes the step's input- and hidden-gate gradients into `dgi`/`dgh` and
    /// returns the direct part of d loss / d h_{t-1} (the `z · h` term).
    fn gru_backward(
        &self,
        d: &Dims,
        t: usize,
        dh: &[T],
        dh_out: &[T],
        dgi: &mut [T],
        dgh: &mut [T],
    ) -> Vec<T> {
        let (bsz, h, h3) = (self.bsz, d.hidden, 3 * d.hidden);
        let h_prev = &self.hs[t * bsz * h..(t + 1) * bsz * h];
        let rows_t = t * bsz..(t + 1) * bsz;
        let (rg, zg, ng, ghn) = (&self.rg, &self.zg, &self.ng, &self.ghn);
        let mut dh_prev = vec![T::zero(); bsz * h];
        dgi[rows_t.start * h3..rows_t.end * h3]
            .par_chunks_mut(h3)
            .zip(dgh[rows_t.start * h3..rows_t.end * h3].par_chunks_mut(h3))
            .zip(dh_prev.par_chunks_mut(h))
            .enumerate()
            .for_each(|(b, ((gi_row, gh_row), dhp_row))| {
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
            });
        dh_prev
    }

    /// Backward of the attention at step `t` given the step's input-gate gradients
    /// `dgi_t` (`[B, 3H]`): accumulates key, item-gate and `v` gradients, writes the query
    /// gradients `dhp_t` (`[B, att]`).
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self,
        w: &Weights<T>,
        d: &Dims,
        t: usize,
        dgi_t: &[T],
        dkeys: &mut [T],
        dgates: &mut [T],
        dhp_t: &mut [T],
        dv: &mut [T],
    ) {
        let (a, h3) = (d.att, 3 * d.hidden);
        let (mem, items) = (&self.mem, self.mem.items());
        let pre_t = &self.pre[t * items * a..(t + 1) * items * a];
        let alpha_t = &self.alpha[t * items..(t + 1) * items];
        let dv_clips: Vec<Vec<T>> = split_by_offsets(dkeys, &mem.offsets, a)
            .into_par_iter()
            .zip(split_by_offsets(dgates, &mem.offsets, h3))
            .zip(dhp_t.par_chunks_mut(a))
            .enumerate()
            .map(|(b, ((dk, dg), dhp_b))| {
                let (lo, hi) = (mem.offsets[b], mem.offsets[b + 1]);
                attend_backward(
                    &dgi_t[b * h3..(b + 1) * h3],
                    &mem.gates[lo * h3..hi * h3],
                    &pre_t[lo * a..hi * a],
                    &alpha_t[lo..hi],
                    &w.att_v,
                    dk,
                    dg,
                    dhp_b,
                )
            })
            .collect();
        for dv_b in dv_clips {
            dv.iter_mut().zip(dv_b).for_each(|(g, x)| *g += x);
        }
    }

    /// Gradient of the word embeddings from the input-gate gradients `dgi` (`[rows, 3H]`).
    fn embedding_backward(&self, w: &Weights<T>, d: &Dims, dgi: &[T], g: &mut Weights<T>) {
        let (e, inp, h3) = (d.embed, d.gru_input(), 3 * d.hidden);
        let rows = self.tokens.len();
        let mut dx_emb = vec![T::zero(); rows * e];
        matmul(
            &mut dx_emb,
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
        let dgates = View::new(dgates, items, h3);
        matmul(&mut g.w_ih[e..], inp, dgates.t(), fprime, Update::Set);
        let mut dfprime = vec![T::zero(); items * fd];
        matmul(
            &mut dfprime,
            fd,
            dgates,
            View::columns(&w.w_ih, h3, inp, e, fd),
            Update::Set,
        );
        matmul(
            &mut dfprime,
            fd,
            View::new(dkeys, items, a),
            View::new(&w.att_w_feat, a, fd),
            Update::Add,
        );
        for b in 0..self.bsz {
            for (k, i) in (mem.offsets[b]..mem.offsets[b + 1]).enumerate() {
                let region = (k % d.regions) * fd;
                g.region[region..region + fd]
                    .iter_mut()
                    .zip(&dfprime[i * fd..(i + 1) * fd])
                    .for_each(|(g, x)| *g += *x);
            }
        }
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

/// Backward of the attention of one clip and step, given the gradient `dgi` of the step's
/// input gates, whose context share is `Σ alpha_i gates_i`: accumulates into the clip's key
/// and item-gate gradients, writes the query gradient `dhp`, returns this clip's gradient
/// of `v`.
#[allow(clippy::too_many_arguments)]
fn attend_backward<T: Real>(
    dgi: &[T],
    gates: &[T],
    pre: &[T],
    alpha: &[T],
    v: &[T],
    dkeys: &mut [T],
    dgates: &mut [T],
    dhp: &mut [T],
) -> Vec<T> {
    let (a, h3) = (v.len(), dgi.len());
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
        dgates[i * h3..(i + 1) * h3]
            .iter_mut()
            .zip(dgi)
            .for_each(|(dg, x)| *dg += al * *x);
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
