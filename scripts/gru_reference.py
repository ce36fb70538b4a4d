#!/usr/bin/env python3
"""Reference values for the decoder tests, computed once with PyTorch (CI has no torch).

Writes tests/data/decoder/gru_reference.json:
  gru:   nn.GRU (1 layer) one step and a 4-step sequence, batch 2, with its own weights;
  model: the vidcap decoder (both archs) written in plain PyTorch: loss (cross-entropy over
         non-<pad> targets, label smoothing 0.1) and every parameter's gradient by autograd.
Run: /tmp/vidcap-bench-venv/bin/python scripts/gru_reference.py
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
torch.set_default_dtype(torch.float64)
OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "decoder", "gru_reference.json")


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def gru_part():
    I, H, B, L = 5, 4, 2, 4
    gru = torch.nn.GRU(I, H, num_layers=1)
    x = torch.randn(L, B, I)
    h0 = torch.randn(1, B, H)
    with torch.no_grad():
        seq, _ = gru(x, h0)
        one, _ = gru(x[:1], h0)
    sd = {k: flat(v) for k, v in gru.state_dict().items()}
    return {"input_size": I, "hidden": H, "batch": B, "len": L, "weights": sd,
            "x": flat(x), "h0": flat(h0), "step1": flat(one), "sequence": flat(seq)}


def model_part(attention):
    V, E, H, D, R, A = 9, 3, 4, 5, 2, 3
    T_frames, B, L = 2, 3, 4
    N = T_frames * R
    gin = E + (D if attention else 0)
    p = {
        "init_h.weight": torch.randn(H, D) * 0.5, "init_h.bias": torch.randn(H) * 0.1,
        "embed.weight": torch.randn(V, E) * 0.5,
        "gru.weight_ih_l0": torch.randn(3 * H, gin) * 0.4, "gru.weight_hh_l0": torch.randn(3 * H, H) * 0.4,
        "gru.bias_ih_l0": torch.randn(3 * H) * 0.1, "gru.bias_hh_l0": torch.randn(3 * H) * 0.1,
        "out.weight": torch.randn(V, H) * 0.5, "out.bias": torch.randn(V) * 0.1,
    }
    if attention:
        p.update({
            "region_embed.weight": torch.randn(R, D) * 0.3,
            "att_feat.weight": torch.randn(A, D) * 0.4, "att_feat.bias": torch.randn(A) * 0.1,
            "att_hid.weight": torch.randn(A, H) * 0.4, "att_v.weight": torch.randn(1, A) * 0.5,
        })
    for t in p.values():
        t.requires_grad_(True)
    feats = torch.rand(B, N, D) * 2.0
    tokens_in = torch.tensor([[1, 4, 5, 6], [1, 7, 0, 0], [1, 8, 4, 0]])
    targets = torch.tensor([[4, 5, 6, 2], [7, 2, 0, 0], [8, 4, 2, 0]])

    cell = lambda x, h: torch._VF.gru_cell(x, h, p["gru.weight_ih_l0"], p["gru.weight_hh_l0"],
                                           p["gru.bias_ih_l0"], p["gru.bias_hh_l0"])
    h = torch.tanh(feats.mean(dim=1) @ p["init_h.weight"].T + p["init_h.bias"])
    if attention:
        region = p["region_embed.weight"].repeat(T_frames, 1)          # item i -> region i % R
        fprime = feats + region.unsqueeze(0)
        keys = fprime @ p["att_feat.weight"].T + p["att_feat.bias"]
    logits = []
    for t in range(L):
        x = p["embed.weight"][tokens_in[:, t]]
        if attention:
            e = torch.tanh(keys + (h @ p["att_hid.weight"].T).unsqueeze(1)) @ p["att_v.weight"][0]
            alpha = torch.softmax(e, dim=1)
            ctx = (alpha.unsqueeze(2) * fprime).sum(dim=1)
            x = torch.cat([x, ctx], dim=1)
        h = cell(x, h)
        logits.append(h @ p["out.weight"].T + p["out.bias"])
    logits = torch.stack(logits, dim=1)
    loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=0, label_smoothing=0.1)
    loss.backward()
    return {"dims": {"vocab": V, "embed": E, "hidden": H, "feat": D, "regions": R, "att": A,
                     "frames": T_frames, "batch": B, "len": L},
            "weights": {k: flat(v) for k, v in p.items()},
            "grads": {k: flat(v.grad) for k, v in p.items()},
            "feats": flat(feats), "tokens_in": tokens_in.reshape(-1).tolist(),
            "targets": targets.reshape(-1).tolist(), "label_smoothing": 0.1, "loss": float(loss)}


ref = {"torch": torch.__version__, "gru": gru_part(),
       "meanpool": model_part(False), "attention": model_part(True)}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(ref, f)
print(f"wrote {OUT}: loss meanpool {ref['meanpool']['loss']:.6f}, attention {ref['attention']['loss']:.6f}")
