#!/usr/bin/env python3
"""Writes the small idx and npy copies of the first 200 digits, for tests and examples.

Run once from the repository root: python3 pipelines/data/make_small.py
Needs only the standard library; the output is byte-for-byte reproducible.
"""
import gzip
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROWS = 200

lines = gzip.decompress((HERE / "digits.csv.gz").read_bytes()).decode().split("\n")
rows = [[float(cell) for cell in line.split(",")] for line in lines if line.strip()][:ROWS]
pixels = bytes(int(value) for row in rows for value in row[:64])
labels = bytes(int(row[64]) for row in rows)
assert len(pixels) == ROWS * 64 and len(labels) == ROWS


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9, mtime=0)


# IDX, as MNIST: 0x00000803 images [n, 8, 8] u8 and 0x00000801 labels [n] u8, big-endian.
(HERE / "digits200-images.idx.gz").write_bytes(gz(struct.pack(">IIII", 0x0803, ROWS, 8, 8) + pixels))
(HERE / "digits200-labels.idx.gz").write_bytes(gz(struct.pack(">II", 0x0801, ROWS) + labels))


def npy(descr: str, shape: tuple, data: bytes) -> bytes:
    """An .npy version 1.0 file, header padded to 64 bytes as numpy.save does."""
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + data


(HERE / "digits200-features.npy").write_bytes(npy("|u1", (ROWS, 8, 8), pixels))
(HERE / "digits200-labels.npy").write_bytes(
    npy("<i8", (ROWS,), b"".join(struct.pack("<q", label) for label in labels))
)
print("class counts of the first", ROWS, "rows:", [labels.count(c) for c in range(10)])
