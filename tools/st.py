"""safetensors read/write in pure Python + numpy (spec 10.3); no safetensors package needed.

File layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON (tensor name ->
{"dtype", "shape", "data_offsets": [begin, end)} relative to the first data byte, plus
"__metadata__": {"format": "pt"}), then the raw little-endian C-contiguous tensor data packed in
header order without holes. The header is padded with spaces so data starts 8-byte aligned (as the
reference writer does).

write(path, tensors, metadata=None): tensors is a dict name -> numpy array (or anything
np.asarray accepts). Dtypes are kept as given (float32 -> F32, float64 -> F64, int64 -> I64,
int32 -> I32, uint8 -> U8, bool -> BOOL, ...); nothing is silently narrowed, so callers that
want F32 convert first. Written to "<path>.tmp" and renamed into place.

read(path) -> dict name -> numpy array: F32, F16 and BF16 come back as float32, F64 as float64,
integers and BOOL in their own dtype. read_metadata(path) gives the "__metadata__" map.
Every entry is validated (known dtype, end - begin == numel * itemsize, ranges inside the buffer,
disjoint and covering it), and a bad file raises ValueError naming the file and tensor.

Not a streaming or mmap reader: fine for test fixtures and checkpoints that fit in memory.
"""
import json
import os
import struct

import numpy as np

MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's cap

_NP_TO_ST = {
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("float64"): "F64",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("uint16"): "U16",
    np.dtype("uint32"): "U32",
    np.dtype("uint64"): "U64",
    np.dtype("bool"): "BOOL",
}

# dtype name -> (numpy dtype of the stored bytes, itemsize)
_ST_TO_NP = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # widened to float32 by hand below
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "U16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "U64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}


def _to_numpy(value):
    if hasattr(value, "detach"):  # torch tensor without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def write(path, tensors, metadata=None):
    """Write dict name -> array to path (via path.tmp + rename). Insertion order is kept."""
    meta = {"format": "pt"}
    if metadata:
        meta.update({str(k): str(v) for k, v in metadata.items()})
    header = {"__metadata__": meta}
    blobs = []
    offset = 0
    for name, value in tensors.items():
        arr = _to_numpy(value)
        if arr.dtype not in _NP_TO_ST:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {arr.dtype}")
        st_dtype = _NP_TO_ST[arr.dtype]
        data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": st_dtype, "shape": [int(s) for s in arr.shape],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)  # data starts 8-byte aligned
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_header(path, buf):
    if len(buf) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER or 8 + n > len(buf):
        raise ValueError(f"{path}: header length {n} out of range (file {len(buf)} bytes)")
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: bad JSON header: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    return header, 8 + n


def read_metadata(path):
    with open(path, "rb") as f:
        buf = f.read()
    header, _ = _read_header(path, buf)
    return dict(header.get("__metadata__", {}))


def read(path):
    """Read every tensor of a safetensors file into a dict of numpy arrays (copies)."""
    with open(path, "rb") as f:
        buf = f.read()
    header, start = _read_header(path, buf)
    data_len = len(buf) - start
    out = {}
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name = info["dtype"]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name}: malformed header entry") from None
        if dtype_name not in _ST_TO_NP:
            raise ValueError(f"{path}: tensor {name}: unknown dtype {dtype_name}")
        np_dtype = _ST_TO_NP[dtype_name]
        numel = int(np.prod(shape)) if shape else 1
        if any(s < 0 for s in shape) or end - begin != numel * np_dtype.itemsize:
            raise ValueError(f"{path}: tensor {name}: data_offsets [{begin}, {end}) do not hold "
                             f"shape {shape} of {dtype_name}")
        if begin < 0 or end > data_len:
            raise ValueError(f"{path}: tensor {name}: data_offsets outside the data buffer")
        spans.append((begin, end, name))
        arr = np.frombuffer(buf, dtype=np_dtype, count=numel, offset=start + begin).reshape(shape)
        if dtype_name == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        elif dtype_name == "F16":
            arr = arr.astype(np.float32)
        out[name] = np.array(arr, dtype=arr.dtype.newbyteorder("="))
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise ValueError(f"{path}: tensor {name}: data overlaps or leaves a hole at {pos}")
        pos = end
    if pos != data_len:
        raise ValueError(f"{path}: {data_len - pos} trailing bytes after the last tensor")
    return out
