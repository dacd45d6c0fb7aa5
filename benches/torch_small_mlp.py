#!/usr/bin/env python3
"""PyTorch CPU eager peer for pipelines/bench_mlp_small.yaml: a 784-200-200-10 MLP, SGD
momentum 0.9, lr 0.01, at a small batch (10 or 100), where per-step overhead decides.

Usage: python benches/torch_small_mlp.py --batch 100 [--threads 2] [--steps 500] [--reps 3]

The protocol is that of ../shared/bench/torch_bench.py (W1/W2): 8 resident random batches,
a first step, 20 warm-up steps, then `reps` timed blocks of `steps` steps, median block
reported as a RESULT line. PyTorch is not a project dependency (see docs/performance.md).
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0x5EED2026)
    g = torch.Generator().manual_seed(0x5EED2026)
    batches = [
        (torch.rand(a.batch, 784, generator=g), torch.randint(0, 10, (a.batch,), generator=g))
        for _ in range(8)
    ]
    model = nn.Sequential(
        nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    i = 0

    def step():
        nonlocal i
        x, y = batches[i % len(batches)]
        i += 1
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    t0 = time.perf_counter()
    step().item()
    first = time.perf_counter() - t0
    for _ in range(20):
        step()
    times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            last = step()
        last.item()
        times.append(time.perf_counter() - t0)
    med = sorted(times)[len(times) // 2]
    print(
        f"RESULT peer=torch-cpu workload=mlp_small batch={a.batch} steps={a.steps} "
        f"median_ms_step={med * 1e3 / a.steps:.4f} median_samples_s={a.steps * a.batch / med:.1f} "
        f"first_step_ms={first * 1e3:.1f} torch={torch.__version__} threads={torch.get_num_threads()}"
    )


if __name__ == "__main__":
    main()
