"""Generates signals.csv.gz: 3,000 noisy 1-D waveforms of 6 shapes, 128 samples each.

Standard-library Python only (random.Random is the same Mersenne Twister in every Python 3
version), so the file is reproducible byte for byte: python3 make_signals.py

Each row: 128 values (written with 3 decimals), then the class 0-5:
  0 sine, 1 square, 2 triangle, 3 sawtooth, 4 damped sine (a decaying burst),
  5 two-tone (a sine plus a sine at 2.5x its frequency).
Every waveform has a random frequency (2 to 6 cycles over the 128 samples), phase,
amplitude (0.5 to 1.5) and offset (-0.5 to 0.5), plus Gaussian noise of standard deviation
0.35 times its amplitude and, with probability 0.3, a random step of up to one amplitude
somewhere in the signal. The class is the shape, not the frequency or the position, so a
classifier must recognise local patterns anywhere in the signal.
"""
import gzip
import math
import random

LENGTH, PER_CLASS, CLASSES = 128, 500, 6


def wave(kind, t):
    """One period-normalised waveform value at phase t (in cycles)."""
    f = t - math.floor(t)
    if kind == 0:
        return math.sin(2 * math.pi * t)
    if kind == 1:
        return 1.0 if f < 0.5 else -1.0
    if kind == 2:
        return 4 * f - 1 if f < 0.5 else 3 - 4 * f
    if kind == 3:
        return 2 * f - 1
    raise ValueError(kind)


def signal(rng, label):
    cycles = rng.uniform(2, 6)
    phase = rng.random()
    amp = rng.uniform(0.5, 1.5)
    offset = rng.uniform(-0.5, 0.5)
    decay = rng.uniform(2, 5)
    start = rng.uniform(0, 0.4)
    values = []
    for i in range(LENGTH):
        x = i / LENGTH
        t = cycles * x + phase
        if label < 4:
            v = wave(label, t)
        elif label == 4:
            v = math.sin(2 * math.pi * t) * math.exp(-decay * max(x - start, 0)) * (x >= start)
        else:
            v = 0.6 * math.sin(2 * math.pi * t) + 0.6 * math.sin(2 * math.pi * (2.5 * t + 0.3))
        values.append(amp * v + offset)
    if rng.random() < 0.3:
        at, step = rng.randrange(LENGTH), rng.uniform(-amp, amp)
        values = [v + (step if i >= at else 0.0) for i, v in enumerate(values)]
    return [v + rng.gauss(0, 0.35 * amp) for v in values]


def main():
    rng = random.Random(20261201)
    rows = []
    for n in range(PER_CLASS * CLASSES):
        label = n % CLASSES
        rows.append(",".join(f"{v:.3f}" for v in signal(rng, label)) + f",{label}")
    data = ("\n".join(rows) + "\n").encode()
    with open("signals.csv.gz", "wb") as f:
        f.write(gzip.compress(data, mtime=0))


if __name__ == "__main__":
    main()
