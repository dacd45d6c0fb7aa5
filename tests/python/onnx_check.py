"""Checks an ONNX export against `engine predict`: onnxruntime runs the exported graph on
the raw feature columns of a CSV file and its probabilities (or values) must match the
engine's predictions within 1e-4.

usage: onnx_check.py MODEL.onnx DATA.csv[.gz] PREDICTIONS.jsonl
The feature columns are read as the model card (in the ONNX metadata) names them.
"""
import csv
import gzip
import json
import sys

import numpy as np
import onnxruntime as ort

model_path, data_path, predictions_path = sys.argv[1:4]
session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
card = json.loads(session.get_modelmeta().custom_metadata_map["engine.card"])

opener = gzip.open if data_path.endswith(".gz") else open
with opener(data_path, "rt", newline="") as f:
    rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
header = rows.pop(0) if card["input"]["header"] else None
features = card["input"]["features"]
if "named" in features:
    columns = [header.index(n) for n in features["named"]]
elif "range" in features:
    columns = list(range(features["range"]["start"], features["range"]["end"]))
else:
    columns = features["list"]
x = np.array([[float(r[c]) for c in columns] for r in rows], dtype=np.float32)

outputs = {o.name: v for o, v in zip(session.get_outputs(), session.run(None, {"features.raw": x}))}
with open(predictions_path) as f:
    predicted = [json.loads(line) for line in f]
assert len(predicted) == len(x), (len(predicted), len(x))

task = card["task"]
if task["kind"] == "classify":
    names = task["class_names"] or [str(i) for i in range(task["classes"])]
    engine = np.array([[p["probabilities"][n] for n in names] for p in predicted])
    ours = outputs["probabilities"]
    classes = [names[i] for i in ours.argmax(axis=1)]
    agree = sum(c == p["class"] for c, p in zip(classes, predicted))
else:
    engine = np.array([[p[t] for t in task["targets"]] for p in predicted])
    ours = outputs["output"]
    agree = None
diff = float(np.abs(ours - engine).max())
scale = 1.0 if task["kind"] == "classify" else max(1.0, float(np.abs(engine).max()))
same = "" if agree is None else f", same class {agree}/{len(x)}"
print(f"{model_path}: {len(x)} rows, max |onnxruntime - engine| = {diff:.3g}{same}")
assert diff <= 1e-4 * scale, f"ONNX and engine differ by {diff}"
