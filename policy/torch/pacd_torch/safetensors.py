"""Read and write the safetensors container (8-byte little-endian header
length, JSON header, raw little-endian tensor data), for F32, F16 and BF16
tensors. Written here because Debian 12 has no python3-safetensors."""

import json
import struct

import numpy as np
import torch

_TORCH_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
_NAMES = {v: k for k, v in _TORCH_DTYPES.items()}
_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2}


def dtype_name(dtype):
    """safetensors dtype string of a torch dtype (F32, F16, BF16)."""
    if dtype not in _NAMES:
        raise ValueError(f"unsupported dtype {dtype}; use float32, float16 or bfloat16")
    return _NAMES[dtype]


def _tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the same 16 bits as int16
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    if t.dtype == torch.float16:
        return t.numpy().astype("<f2").tobytes()
    if t.dtype == torch.float32:
        return t.numpy().astype("<f4").tobytes()
    raise ValueError(f"unsupported dtype {t.dtype}")


def write(path, tensors, metadata=None):
    """Write `tensors` (name -> torch tensor of float32/float16/bfloat16) in
    the given order, with `metadata` (str -> str) as "__metadata__"."""
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved")
        data = _tensor_bytes(t)
        header[name] = {
            "dtype": dtype_name(t.dtype),
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"metadata must map str to str (key {k!r})")
        header = {"__metadata__": dict(metadata), **header}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)   # pad so the data section starts 8-aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read(path):
    """Return (tensors, metadata): tensors maps name -> torch tensor in its
    stored dtype (float32, float16 or bfloat16); metadata is a dict."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: shorter than 8 bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError(f"{path}: header length {n} past the end of the file")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    base = 8 + n
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = buf[base + b:base + end]
        shape = tuple(e["shape"])
        dt = e["dtype"]
        if dt == "F32":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f4").copy())
        elif dt == "F16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<f2").copy())
        elif dt == "BF16":
            t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
        else:
            raise ValueError(f"{path}: tensor {name!r}: dtype {dt} not supported")
        tensors[name] = t.reshape(shape)
    return tensors, metadata
