"""Writes digits.svm.gz (LIBSVM / svmlight text) from the engine's digits.csv.gz.

Standard-library Python, reproducible byte for byte: `python3 make_svm.py`.
"""
import csv
import gzip

with gzip.open("../../../pipelines/data/digits.csv.gz", "rt") as f:
    rows = list(csv.reader(f))
lines = []
for row in rows:
    pixels, label = row[:64], row[64]
    cells = [f"{j + 1}:{int(float(v))}" for j, v in enumerate(pixels) if float(v) != 0.0]
    lines.append(" ".join([str(int(float(label)))] + cells))
with open("digits.svm.gz", "wb") as raw:
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out:
        out.write(("\n".join(lines) + "\n").encode())
