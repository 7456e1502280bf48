#!/usr/bin/env python3
"""Check a packed Fashion-MNIST dataset folder with h5py + PIL against the idx files.

usage: data_h5py_check.py DATASET_DIR IDX_DIR SPLIT
Every record: PNG decodes (PIL) to exactly the idx pixels of the image its key names, and its
label equals the idx label; schema attributes and Fletcher32 filters are present."""
import gzip
import io
import json
import os
import sys

import h5py
import numpy as np
from PIL import Image


def main():
    ds, idx, split = sys.argv[1:4]
    stem = "train" if split == "train" else "t10k"
    with gzip.open(os.path.join(idx, stem + "-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    pixels = np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)
    with gzip.open(os.path.join(idx, stem + "-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    index = json.load(open(os.path.join(ds, "index.json")))
    assert index["format_version"] == 1 and index["task"] == "multiclass", index
    assert index["num_records"] == n, (index["num_records"], n)
    seen = np.zeros(n, np.int32)
    for sh in index["shards"]:
        with h5py.File(os.path.join(ds, sh["file"]), "r") as h:
            assert h.attrs["schema_version"] == 1
            for name in ("images", "offsets", "labels", "keys"):
                assert h[name].fletcher32 and h[name].chunks, name
            off = h["offsets"][:]
            img = h["images"][:]
            lab = h["labels"][:]
            keys = h["keys"][:]
            assert len(off) == sh["count"] + 1 and off[-1] == len(img)
            for i in range(sh["count"]):
                k = int(keys[i].decode().split("/")[1])
                png = Image.open(io.BytesIO(img[off[i]:off[i + 1]].tobytes()))
                assert png.format == "PNG" and png.size == (cols, rows)
                assert np.array_equal(np.asarray(png.convert("L")), pixels[k]), k
                assert lab[i] == labels[k], (k, lab[i], labels[k])
                seen[k] += 1
    assert (seen == 1).all(), "records missing or duplicated"
    print("h5py check: %s: %d records match the idx files" % (ds, n))


if __name__ == "__main__":
    main()
