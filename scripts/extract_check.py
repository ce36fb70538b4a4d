#!/usr/bin/env python3
"""Dev-only cross-check of `vidcap extract` against independent tools.

For every entry of a feature cache: each cached timestamp's frame is decoded again by the
ffmpeg CLI (at native size), preprocessed and encoded by the onnxruntime EfficientNet-Lite0
of ../shared/bench/encoder_ort.py (graph built from the .pth, torch-style bilinear resize),
and compared with the cached global features (region 0). Prints, per clip, the worst cosine
similarity and relative L2 error, and whether every cached frame matches its own
timestamp's reference frame best (a wrong frame/timestamp pairing shows up there).

vidcap scales frames with swscale (bilinear) to the 256 short side in the decoder; by
default the reference does the same through the ffmpeg CLI's scale filter, so only the
encoders and the two swscale call sites differ. `--native` instead resizes the native frame
the torch way (no antialiasing), which differs much more on detailed or noisy downscaled
video.

Run with the bench venv:  /tmp/vidcap-bench-venv/bin/python scripts/extract_check.py CACHE_DIR
"""
import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np


def read_entry(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]

    def tensor(name, dtype):
        info = header[name]
        a, b = info["data_offsets"]
        return np.frombuffer(body[a:b], dtype=dtype).reshape(info["shape"])

    ts_dtype = {"F64": "<f8", "F32": "<f4"}[header["timestamps"]["dtype"]]
    return tensor("features", "<f4"), tensor("timestamps", ts_dtype), header["__metadata__"]


def video_size(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height", "-of", "json", path],
        check=True, capture_output=True, text=True).stdout
    s = json.loads(out)["streams"][0]
    return s["width"], s["height"]


def frame_at(path, t, w, h, short_side):
    """The frame cached at t (accurate seek: first frame with pts >= t - 1 ms), RGB24, at
    native size, or scaled by ffmpeg's bilinear swscale to `short_side` as vidcap does."""
    cmd = ["ffmpeg", "-v", "error", "-ss", f"{max(t - 1e-3, 0):.6f}", "-i", path, "-frames:v", "1"]
    if short_side:
        if w <= h:
            w, h = short_side, short_side * h // w
        else:
            w, h = short_side * w // h, short_side
        cmd += ["-vf", f"scale={w}:{h}:flags=bilinear"]
    raw = subprocess.run(cmd + ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cache")
    ap.add_argument("--native", action="store_true",
                    help="decode at native size and leave all resizing to the torch-style "
                         "reference (default: ffmpeg scales to the 256 short side first, as vidcap)")
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench"))
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.bench))
    import encoder_ort

    sess = encoder_ort.make_session(encoder_ort.build_onnx(encoder_ort.load_weights(encoder_ort.DEFAULT_PTH)), 2)
    worst = 1.0
    all_aligned = True
    for name in sorted(os.listdir(a.cache)):
        if not name.endswith(".safetensors"):
            continue
        feats, stamps, meta = read_entry(os.path.join(a.cache, name))
        video = meta["video_path"]
        w, h = video_size(video)
        ref = []
        for t in stamps:
            x, _ = encoder_ort.preprocess(frame_at(video, float(t), w, h, None if a.native else 256))
            ref.append(sess.run(["features"], {sess.get_inputs()[0].name: x})[0][0])
        ref = np.stack(ref)
        ours = feats[:, 0, :].astype(np.float64)
        unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)
        cos = unit(ours) @ unit(ref).T
        own = np.diag(cos)
        rel = np.linalg.norm(ours - ref, axis=1) / np.linalg.norm(ref, axis=1)
        aligned = bool((cos.argmax(axis=1) == np.arange(len(stamps))).all())
        worst = min(worst, own.min())
        all_aligned &= aligned
        print(f"{meta['clip_id']}: T={len(stamps)} R={feats.shape[1]} window=[{meta['window_start']},{meta['window_end']}] "
              f"cos min {own.min():.6f} rel-L2 max {rel.max():.2e} frames aligned: {aligned}")
    print(f"overall: worst cosine {worst:.5f}, all aligned: {all_aligned}")


if __name__ == "__main__":
    main()
