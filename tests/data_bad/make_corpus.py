#!/usr/bin/env python3
"""Writes the corpus of broken data files that tests/data.rs feeds to the data stages.

Run once from the repository root: python3 tests/data_bad/make_corpus.py
Standard library only; byte-for-byte reproducible. See README.md for what each file breaks.
"""
import gzip
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def csv(rows):
    return "".join(",".join(str(cell) for cell in row) + "\n" for row in rows)


good = [[1.0, 2.0, 3.0, 0], [4.0, 5.0, 6.0, 1], [7.0, 8.0, 9.0, 2], [1.5, 2.5, 3.5, 1]]


def write(name, data):
    (HERE / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# Row 3 has 3 cells instead of 4.
write("ragged_row.csv", csv(good[:2] + [[7.0, 8.0, 2]] + good[3:]))
# Row 4, column 2 is not a number.
write("non_numeric.csv", csv(good[:3] + [[1.5, "abc", 3.5, 1]]))
# Row 2's label is 10 with classes: 10 configured.
write("label_out_of_range.csv", csv(good[:1] + [[4.0, 5.0, 6.0, 10]] + good[2:]))
# Row 3's label is negative.
write("negative_label.csv", csv(good[:2] + [[7.0, 8.0, 9.0, -1]] + good[3:]))
# A header-only file and a 0-byte file.
write("header_only.csv", "a,b,c,label\n")
write("empty.csv", b"")
# A gzip stream cut in half.
packed = gzip.compress(csv(good * 50).encode(), compresslevel=9, mtime=0)
write("truncated.csv.gz", packed[: len(packed) // 2])

# IDX: images [10, 8, 8] u8 (640 bytes promised, 300 present), matching labels [10].
write("truncated-images.idx", struct.pack(">IIII", 0x0803, 10, 8, 8) + bytes(300))
write("labels10.idx", struct.pack(">II", 0x0801, 10) + bytes(range(10)))
# Magic written little-endian by mistake: bytes 03 08 00 00.
write("wrong_magic-images.idx", struct.pack("<IIII", 0x0803, 10, 8, 8) + bytes(640))


def npy(descr, shape, data):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1") + data


# npy: features [10, 4] f4 (160 bytes promised, 100 present), matching labels [10] i8.
write("truncated-features.npy", npy("<f4", (10, 4), bytes(100)))
write("labels10.npy", npy("<i8", (10,), b"".join(struct.pack("<q", i % 3) for i in range(10))))
