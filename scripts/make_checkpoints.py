#!/usr/bin/env python3
"""Writes the checkpoint-reader test fixtures under tests/data/checkpoints/ with torch.

Run once by a developer (CI has no torch); its small outputs are committed:
  tiny_zip.pt / tiny_legacy.pt    the same state dict in the zip (torch >= 1.6) and the legacy format
  nested_zip.pt                   {"state_dict": ..., "epoch": 3}: tensors below a nested dict
  params_{zip,legacy}.pt          a dict holding an nn.Parameter (values 0..5, shape 2x3)
  shared_dict_zip.pt              {"model": d, "ema": d}, d = {"w": [0, 1, 2]}: one dict twice
  tiny_expected.json              in order, per tensor: name, dtype, shape and the values (as float64), from torch
  hostile/*.pt                    files a reader must refuse (non-allowlisted globals, sizes that
                                  exceed the file, bad magic)
  efficientnet_lite0_summary.json with the real checkpoint present (--pth): in order, per tensor the name, shape,
                                  the sum, the sum of |x| and the first 4 values, computed by torch

Usage: /tmp/vidcap-bench-venv/bin/python scripts/make_checkpoints.py [--pth FILE]
"""
import argparse
import collections
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "checkpoints"
# A file a hostile pickle would create if anything were executed; the tests check it stays absent.
PWNED_MARKER = "/tmp/vidcap-checkpoint-test-pwned"


def tiny_state_dict():
    g = torch.Generator().manual_seed(1234)
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    sd["conv.bias"] = torch.randn(4, generator=g)
    sd["bn.running_var"] = torch.rand(4, generator=g) + 0.5
    sd["bn.num_batches_tracked"] = torch.tensor(7, dtype=torch.int64)
    sd["scalar"] = torch.tensor(2.5)
    # Non-contiguous: a transposed view is saved as its storage plus strides (1, 3).
    sd["fc.weight_t"] = torch.arange(15, dtype=torch.float32).reshape(5, 3).t()
    # Two tensors sharing one storage; the second starts at an offset.
    big = torch.linspace(-1.0, 1.0, 10)
    sd["shared.full"] = big
    sd["shared.slice"] = big[3:7]
    sd["empty"] = torch.zeros(0, 3)
    sd["double"] = torch.tensor([1.0 / 3.0, -2.0, 1e-300], dtype=torch.float64)
    sd["half"] = torch.tensor([0.5, -1.25, 65504.0], dtype=torch.float16)
    sd["bfloat"] = torch.tensor([1.5, -3.0, 256.0], dtype=torch.bfloat16)
    sd["int32"] = torch.tensor([[1, -2], [3, 2147483647]], dtype=torch.int32)
    sd["uint8"] = torch.tensor([0, 7, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    return sd


def expected(sd):
    out = []
    for name, t in sd.items():
        out.append({
            "name": name,
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "values": [float(v) for v in t.reshape(-1).to(torch.float64).tolist()],
        })
    return out


# ---- hostile files --------------------------------------------------------------------------

class Storage:
    """Stands for a storage in a hand-made legacy pickle (see persistent_id)."""

    def __init__(self, key, numel, dtype=torch.FloatStorage):
        self.key, self.numel, self.dtype = key, numel, dtype


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class Call:
    """Pickles as a call of an arbitrary global: what a malicious checkpoint contains."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


class LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.dtype, obj.key, "cpu", obj.numel, None)
        return None


def legacy_bytes(obj, storages, magic=0x1950A86A20F9469CFC6C):
    """The legacy layout by hand: magic, protocol, sys_info, object, keys, raw storages."""
    buf = io.BytesIO()
    for header in (magic, 1001, {"protocol_version": 1001, "little_endian": True,
                                 "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, buf, protocol=2)
    LegacyPickler(buf, protocol=2).dump(obj)
    pickle.dump([s.key for s, _ in storages], buf, protocol=2)
    for storage, raw in storages:
        buf.write(struct.pack("<q", storage.numel))
        buf.write(raw)
    return buf.getvalue()


def hostile_files():
    files = {}
    four = Storage("0", 4)
    four_raw = struct.pack("<4f", 1, 2, 3, 4)

    def sd(**tensors):
        return collections.OrderedDict(tensors)

    files["os_system_legacy.pt"] = legacy_bytes(
        sd(w=Call(os.system, "touch " + PWNED_MARKER)), [])
    files["eval_legacy.pt"] = legacy_bytes(
        sd(w=Call(eval, "__import__('os').system('touch %s')" % PWNED_MARKER)), [])
    # A storage whose declared size (2^61 floats) is far beyond the file.
    huge = Storage("0", 1 << 61)
    files["huge_storage_legacy.pt"] = legacy_bytes(sd(w=Tensor(huge, 0, [4], [1])), [(huge, four_raw)])
    files["huge_shape_legacy.pt"] = legacy_bytes(
        sd(w=Tensor(four, 0, [1 << 31, 1 << 31, 1 << 31], [1, 1, 1])), [(four, four_raw)])
    files["huge_stride_legacy.pt"] = legacy_bytes(
        sd(w=Tensor(four, 0, [2, 2], [1 << 62, 1])), [(four, four_raw)])
    files["huge_offset_legacy.pt"] = legacy_bytes(
        sd(w=Tensor(four, (1 << 63) - 2, [2], [1])), [(four, four_raw)])
    files["offset_past_end_legacy.pt"] = legacy_bytes(
        sd(w=Tensor(four, 3, [2], [1])), [(four, four_raw)])
    files["negative_size_legacy.pt"] = legacy_bytes(
        sd(w=Tensor(four, 0, [-4], [1])), [(four, four_raw)])
    files["bad_magic_legacy.pt"] = legacy_bytes(
        sd(w=Tensor(four, 0, [4], [1])), [(four, four_raw)], magic=0x1950A86A20F9469CFC6D)
    # One 64 KiB storage named by 200 tensors: 12.5 MiB of tensors from an 80 KiB file.
    shared = Storage("0", 16384)
    files["shared_storage_bomb_legacy.pt"] = legacy_bytes(
        collections.OrderedDict((f"w{i}", Tensor(shared, 0, [16384], [1])) for i in range(200)),
        [(shared, bytes(4 * 16384))])
    # A storage key the object never mentions.
    files["unknown_key_legacy.pt"] = legacy_bytes(
        sd(w=Tensor(four, 0, [4], [1])), [(Storage("9", 4), four_raw)])

    # Zip format: a data.pkl that calls os.system.
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle.dumps(
            sd(w=Call(os.system, "touch " + PWNED_MARKER)), protocol=2))
        z.writestr("archive/version", "3\n")
    files["os_system_zip.pt"] = zbuf.getvalue()
    # Zip format: a storage entry shorter than the declared element count.
    small = io.BytesIO()
    torch.save({"w": torch.arange(8, dtype=torch.float32)}, small)
    with zipfile.ZipFile(io.BytesIO(small.getvalue())) as src, \
            zipfile.ZipFile(zbuf := io.BytesIO(), "w", compression=zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if "/data/" in info.filename:
                data = data[:12]
            dst.writestr(info.filename, data)
    files["short_storage_zip.pt"] = zbuf.getvalue()
    # Zip64 end records declaring 2^40 entries and a 2^50-byte central directory at 2^45.
    files["zip64_huge_directory_zip.pt"] = with_zip64_end(small.getvalue(), 1 << 40, 1 << 50, 1 << 45)
    return files


def with_zip64_end(archive, entries, cd_size, cd_offset):
    """Replaces the end of central directory of `archive` by zip64 records declaring the
    given entry count, directory size and offset."""
    eocd_at = archive.rfind(b"PK\x05\x06")
    _, _, _, _, _, size, offset, _ = struct.unpack("<IHHHHIIH", archive[eocd_at:eocd_at + 22])
    body = archive[:offset + size]
    eocd64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, entries, entries,
                         cd_size, cd_offset)
    locator = struct.pack("<IIQI", 0x07064B50, 0, len(body), 1)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + eocd64 + locator + eocd


def summary(pth):
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    out = []
    for name, t in sd.items():
        v = t.reshape(-1).to(torch.float64)
        out.append({"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                     "sum": float(v.sum()), "abs_sum": float(v.abs().sum()),
                     "first": [float(x) for x in v[:4].tolist()]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pth", help="efficientnet-lite0-57934424.pth, for the summary of the real file")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    sd = tiny_state_dict()
    torch.save(sd, OUT / "tiny_zip.pt")
    torch.save(sd, OUT / "tiny_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"state_dict": sd, "epoch": 3}, OUT / "nested_zip.pt")
    # nn.Parameter objects (what `torch.save(dict(model.named_parameters()))` writes) pickle
    # through torch._utils._rebuild_parameter: values 0..5 as a 2x3 float32 parameter.
    # One dict object under two keys: the pickle fills it once and refers to it again.
    shared = collections.OrderedDict(w=torch.arange(3, dtype=torch.float32))
    torch.save({"model": shared, "ema": shared}, OUT / "shared_dict_zip.pt")
    params = {"p": torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(2, 3))}
    torch.save(params, OUT / "params_zip.pt")
    torch.save(params, OUT / "params_legacy.pt", _use_new_zipfile_serialization=False)
    (OUT / "tiny_expected.json").write_text(json.dumps(expected(sd), indent=1) + "\n")
    (OUT / "hostile").mkdir(exist_ok=True)
    for name, data in hostile_files().items():
        (OUT / "hostile" / name).write_bytes(data)
    if args.pth:
        (OUT / "efficientnet_lite0_summary.json").write_text(json.dumps(summary(args.pth)) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
