#!/usr/bin/env python3
"""Reference for the hub backbones' resize + centre crop (src/encoder/hub.rs), by torch.

Shorter side to S with torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
antialias=False) in float, the longer side int(S * long / short), centre crop C at
int(round((H - C) / 2)), int(round((W - C) / 2)). Small random images, so the committed JSON
stays small. Run once: /tmp/vidcap-bench-venv/bin/python scripts/make_hub_preprocess_reference.py
"""
import json
from pathlib import Path

import torch
import torch.nn.functional as F

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "hub_preprocess_reference.json"


def case(h, w, shorter, crop, seed):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
    short, long = min(h, w), max(h, w)
    out_long = int(shorter * long / short)
    out_h, out_w = (shorter, out_long) if h <= w else (out_long, shorter)
    x = rgb.permute(2, 0, 1)[None].to(torch.float32)
    y = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False, antialias=False)
    top, left = int(round((out_h - crop) / 2)), int(round((out_w - crop) / 2))
    y = y[0, :, top:top + crop, left:left + crop]
    return {"height": h, "width": w, "shorter": shorter, "crop": crop,
            "rgb": rgb.reshape(-1).tolist(), "chw": [float(v) for v in y.reshape(-1).tolist()]}


def main():
    cases = [case(23, 37, 16, 12, 1),   # landscape, downscale
             case(41, 19, 24, 20, 2),   # portrait, upscale
             case(30, 30, 17, 15, 3)]   # square, odd sizes
    OUT.write_text(json.dumps(cases) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
