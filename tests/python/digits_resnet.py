"""The forward pass of pipelines/digits_resnet.yaml in NumPy, from exported weights alone
(docs/checkpoints.md: tensor names and layouts). Prints the accuracy over a digits CSV as
JSON: python3 digits_resnet.py WEIGHTS.safetensors digits.csv.gz"""
import gzip
import json
import sys

import numpy as np
from safetensors.numpy import load_file

w = load_file(sys.argv[1])
with gzip.open(sys.argv[2], "rt") as f:
    rows = np.loadtxt(f, delimiter=",", dtype=np.float64)
x = (rows[:, :64] * 0.0625).reshape(-1, 1, 8, 8)  # normalize: scale 1/16, shape [1, 8, 8]
labels = rows[:, 64].astype(int)


def conv(x, n):  # nn.Conv2d(kernel 3, padding 1, bias=False): weight [out, in, 3, 3]
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3)
    )  # [N, C, H, W, 3, 3]
    return np.einsum("nchwij,ocij->nohw", windows, w[f"{n}.weight"])


def bn(x, n, eps=1e-5):  # nn.BatchNorm2d in eval mode: the running statistics
    c = lambda t: w[f"{n}.{t}"][None, :, None, None]
    return (x - c("running_mean")) / np.sqrt(c("running_var") + eps) * c("weight") + c("bias")


relu = lambda t: np.maximum(t, 0)


def residual(x, n):  # the `residual` block: conv-bn-relu-conv-bn, + x, relu
    y = relu(bn(conv(x, f"{n}.conv1"), f"{n}.bn1"))
    return relu(bn(conv(y, f"{n}.conv2"), f"{n}.bn2") + x)


def forward(x):
    x = relu(bn(conv(x, "stem"), "stem_bn"))
    x = residual(residual(x, "block1"), "block2")
    n, c, h, wd = x.shape
    x = x.reshape(n, c, h // 2, 2, wd // 2, 2).max(axis=(3, 5))  # max_pool2d 2
    x = residual(x, "block3").reshape(n, -1)  # flatten [C, H, W]; dropout is off
    return x @ w["head.weight"].T + w["head.bias"]


correct = int((forward(x).argmax(axis=1) == labels).sum())
print(json.dumps({"samples": len(labels), "correct": correct, "accuracy": correct / len(labels)}))
