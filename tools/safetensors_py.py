#!/usr/bin/python3
"""Minimal safetensors reader/writer in pure Python + numpy (torch optional).

Debian ships no `safetensors` package, so fixture scripts import this instead:

    import sys; sys.path.insert(0, "tools")
    from safetensors_py import save, load
    save("x.safetensors", {"w": torch.randn(2, 3), "ids": np.arange(4)}, metadata={"k": "v"})
    tensors, metadata = load("x.safetensors")          # torch tensors (numpy arrays: load_numpy)

Format: u64 little-endian header length N, N bytes of JSON header, then the data buffer; see
src/mmkit/io/safetensors.h. Like the reference writer (and mmkit's), data is laid out by decreasing
element size so every tensor is aligned without gaps, and the header is space-padded so the data
starts on an 8-byte boundary.

Command line (used by tests/test_safetensors.cpp and to regenerate its fixture):
    /usr/bin/python3 tools/safetensors_py.py dump FILE         # JSON: metadata + tensors as f64 lists
    /usr/bin/python3 tools/safetensors_py.py make-sample OUT   # tests/fixtures/safetensors_py_sample
"""
import json
import struct
import sys

import numpy as np

# safetensors dtype name -> (numpy dtype for raw storage, element size). BF16 has no numpy type:
# it is stored/loaded as raw uint16 bits.
_DTYPES = {
    "F64": (np.float64, 8), "F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2),
    "I64": (np.int64, 8), "I32": (np.int32, 4), "I16": (np.int16, 2), "I8": (np.int8, 1),
    "U8": (np.uint8, 1), "BOOL": (np.bool_, 1),
}
_NP_TO_NAME = {np.dtype(v[0]): k for k, v in _DTYPES.items() if k != "BF16"}


def _to_raw(value):
    """(dtype name, shape, little-endian bytes) for a torch tensor or numpy array."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch for numpy-only users
        import torch
        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return "BF16", list(t.shape), t.view(torch.int16).numpy().astype("<i2").tobytes()
        value = t.numpy()
    a = np.asarray(value)  # not ascontiguousarray: it turns 0-d arrays into shape [1]
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    if a.dtype not in _NP_TO_NAME:
        raise ValueError(f"unsupported dtype {a.dtype}")
    return _NP_TO_NAME[a.dtype], list(a.shape), a.astype(a.dtype.newbyteorder("<")).tobytes()


def save(path, tensors, metadata=None):
    """Writes {name: torch tensor | numpy array} with optional {str: str} metadata."""
    raws = {name: _to_raw(v) for name, v in tensors.items()}
    # Data order: decreasing element size, then header order (stable sort).
    order = sorted(raws, key=lambda n: -_DTYPES[raws[n][0]][1])
    header, offset = {}, 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    spans = {}
    for name in order:
        spans[name] = [offset, offset + len(raws[name][2])]
        offset += len(raws[name][2])
    for name, (dtype, shape, _) in raws.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": spans[name]}
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name in order:
            f.write(raws[name][2])


def _read(path):
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError(f"{path}: header length {n} exceeds file size")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    out = {}
    for name, e in header.items():
        np_dtype, size = _DTYPES[e["dtype"]]
        b, end = e["data_offsets"]
        if end > len(data) or end - b != size * int(np.prod(e["shape"], dtype=np.int64)):
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {e['data_offsets']}")
        a = np.frombuffer(data[b:end], dtype=np.dtype(np_dtype).newbyteorder("<")).reshape(e["shape"])
        out[name] = (e["dtype"], a)
    return out, metadata


def load_numpy(path):
    """({name: numpy array}, metadata). BF16 comes back as float32 (exact widening)."""
    raw, metadata = _read(path)
    out = {}
    for name, (dtype, a) in raw.items():
        out[name] = (a.astype(np.uint32) << 16).view(np.float32) if dtype == "BF16" else a.copy()
    return out, metadata


def load(path):
    """({name: torch tensor}, metadata), BF16 as torch.bfloat16."""
    import torch
    raw, metadata = _read(path)
    out = {}
    for name, (dtype, a) in raw.items():
        t = torch.from_numpy(a.view(np.int16).copy() if dtype == "BF16" else a.copy())
        out[name] = t.view(torch.bfloat16) if dtype == "BF16" else t
    return out, metadata


def _make_sample(out):
    # Values checked verbatim by tests/test_safetensors.cpp (PythonFixture); keep them in sync.
    import torch
    f16 = np.array([0.0, -0.0, 1.0, -2.5, 65504.0, 2.0 ** -24, 2.0 ** -14 * 0.5, np.inf, -np.inf, np.nan],
                   dtype=np.float16)
    save(out, {
        "weight": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0,
        "half": f16,
        "bf": torch.tensor([1.0, -3.140625, 1e-3, 3.0e38], dtype=torch.float32).to(torch.bfloat16),
        "step": torch.tensor(7, dtype=torch.int64),          # 0-d
        "empty": torch.zeros(0, 3, dtype=torch.float32),
        "bytes": np.array([0, 1, 255], dtype=np.uint8),
        "codes": np.array([[-128, 127]], dtype=np.int8),
        "ids": np.array([-1, 2147483647], dtype=np.int32),
    }, metadata={"format": "pt", "config": '{"dim": 4}'})


def _dump(path):
    tensors, metadata = load_numpy(path)
    raw, _ = _read(path)

    def num(x):  # JSON has no inf/nan; encode them as strings
        x = float(x)
        return x if np.isfinite(x) else ("nan" if np.isnan(x) else ("inf" if x > 0 else "-inf"))

    print(json.dumps({"metadata": metadata, "tensors": {
        name: {"dtype": raw[name][0], "shape": list(a.shape), "values": [num(v) for v in a.reshape(-1)]}
        for name, a in tensors.items()}}))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        _dump(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "make-sample":
        _make_sample(sys.argv[2])
    else:
        sys.exit(__doc__)
