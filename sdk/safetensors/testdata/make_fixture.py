#!/usr/bin/python3
"""Cross-check fixtures for the Go safetensors package, written independently of it.

The `safetensors` pip package is not available here, so this file implements
the format with json + struct + numpy, following the reference library
(huggingface/safetensors, safetensors/src/tensor.rs):

  * 8-byte little-endian header length, then compact JSON, then the data;
  * tensors laid out sorted by descending dtype (the Dtype enum order, which
    is increasing alignment), then by name;
  * "__metadata__" first in the header; the header padded with spaces to a
    multiple of 8 bytes.

Usage:
  make_fixture.py          write torch_fixture.safetensors and torch_fixture.json
                           next to this script
  make_fixture.py dump F   decode F strictly and print its content as JSON on
                           stdout, plus whether re-encoding it here reproduces
                           F byte for byte (used by the Go test behind
                           GENPIPE_PYTHON=1)
"""

import json
import os
import struct
import sys

import numpy as np

# The reference Dtype enum order; sorting by it descending puts the widest
# (most aligned) types first.
DTYPE_ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3",
               "F8_E8M0", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64",
               "F64", "I64", "U64"]

# Little-endian numpy dtypes for the types this script can turn into values.
# BF16 is handled separately (numpy has no bfloat16).
NUMPY = {"BOOL": "?", "U8": "u1", "I8": "i1", "I16": "<i2", "U16": "<u2", "F16": "<f2",
         "I32": "<i4", "U32": "<u4", "F32": "<f4", "F64": "<f8", "I64": "<i8", "U64": "<u8"}


def encode(tensors, metadata=None):
    """tensors: {name: (dtype string, shape list, raw little-endian bytes)}."""
    names = sorted(tensors, key=lambda n: (-DTYPE_ORDER.index(tensors[n][0]), n))
    header = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for n in names:
        dtype, shape, raw = tensors[n]
        header[n] = {"dtype": dtype, "shape": list(shape),
                     "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(tensors[n][2] for n in names)


def decode(buf):
    """Strict reader: returns (metadata, {name: (dtype, shape, raw)})."""
    if len(buf) < 8:
        raise ValueError("too short")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > 100_000_000 or 8 + n > len(buf):
        raise ValueError("bad header length %d" % n)
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    metadata = header.pop("__metadata__", None)
    pos = 0
    out = {}
    for name, info in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        b, e = info["data_offsets"]
        if b != pos or e < b:
            raise ValueError("tensor %r: bad offsets %r" % (name, info["data_offsets"]))
        pos = e
        out[name] = (info["dtype"], info["shape"], data[b:e])
    if pos != len(data):
        raise ValueError("tensors cover %d of %d data bytes" % (pos, len(data)))
    return metadata, out


def values(dtype, shape, raw):
    """Flat list of Python numbers for the element bytes."""
    if dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype("<u4") << 16
        a = u.view("<f4")
    else:
        a = np.frombuffer(raw, dtype=NUMPY[dtype])
    if dtype == "BOOL":
        a = a.astype("u1")  # JSON true/false would not compare as numbers
    if a.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError("element count %d does not match shape %r" % (a.size, shape))
    return [x.item() for x in a]


def make_fixture(here):
    rng = np.random.default_rng(20240601)
    f32 = {
        "encoder.0.weight": rng.standard_normal((4, 1, 3, 3)).astype("<f4"),
        "encoder.0.bias": rng.standard_normal(4).astype("<f4"),
        "fc.weight": rng.standard_normal((3, 5)).astype("<f4"),
        "fc.bias": rng.standard_normal(3).astype("<f4"),
    }
    tensors = {k: ("F32", list(v.shape), v.tobytes()) for k, v in f32.items()}
    # A scalar I64 (as PyTorch's BatchNorm num_batches_tracked) sorts before the
    # F32 tensors in the reference layout; an F16 tensor with a subnormal, a
    # negative zero and the largest finite half checks the widening conversion.
    tensors["encoder.1.num_batches_tracked"] = ("I64", [], np.array(7, dtype="<i8").tobytes())
    half = np.array([[0.5, -1.25, 2.0 ** -20], [-0.0, 65504.0, -3.140625]], dtype="<f2")
    tensors["proj.weight"] = ("F16", list(half.shape), half.tobytes())
    metadata = {"format": "pt", "arch": "tiny-cnn"}

    blob = encode(tensors, metadata)
    with open(os.path.join(here, "torch_fixture.safetensors"), "wb") as f:
        f.write(blob)
    want = {"metadata": metadata,
            "tensors": {k: {"dtype": d, "shape": s, "values": values(d, s, r)}
                        for k, (d, s, r) in sorted(tensors.items())}}
    with open(os.path.join(here, "torch_fixture.json"), "w") as f:
        json.dump(want, f, indent=1, sort_keys=True)
        f.write("\n")


def dump(path):
    with open(path, "rb") as f:
        buf = f.read()
    metadata, tensors = decode(buf)
    out = {"metadata": metadata or {},
           "tensors": {k: {"dtype": d, "shape": s, "values": values(d, s, r)}
                       for k, (d, s, r) in tensors.items()},
           "reencoded_identical": encode(tensors, metadata) == buf}
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        dump(sys.argv[2])
    elif len(sys.argv) == 1:
        make_fixture(os.path.dirname(os.path.abspath(__file__)))
    else:
        sys.exit(__doc__)
