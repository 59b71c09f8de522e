#!/usr/bin/python3
"""PyTorch peer for the tiny-ViT training benchmark (mmkit's bench/ launches it side by side with its own).

    /usr/bin/python3 bench/torch_vit_train.py [--threads 2] [--steps 30] [--warmup 5] [--batch 128]
                                              [--data /usr/share/datasets/fashion-mnist]
    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/torch_vit_train.py    # Debian torch's best setting here

Model: ViT image 28, patch 4 (49 patches + cls = 50 tokens), chans 1, dim 64, depth 4, heads 4, mlp 256,
10 classes, post-norm nn.TransformerEncoderLayer (GELU, dropout 0); AdamW lr 1e-3; cross-entropy.
Data: random N(0,1) images and random labels, or Fashion-MNIST (train-images-idx3-ubyte.gz, ...) from --data,
scaled to [0,1] and normalised with mean 0.2860, std 0.3530.

Prints one JSON line:
  {"framework":"pytorch","images_per_s":..,"step_ms_min":..,"step_ms_median":..,"threads":..,"batch":..,...}
images_per_s = batch / median step time. Environment that matters here: OMP_WAIT_POLICY (torch's OpenMP
pool spins by default and fights OpenBLAS's pthread pool), OPENBLAS_NUM_THREADS (set from --threads unless
given), OPENBLAS_CORETYPE (Haswell in this environment: AVX2 kernels, about half the AVX-512 GEMM speed).
A step = forward + backward + optimizer step (zero_grad included).
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time


def _threads_arg():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "2"


# Debian's torch does its GEMMs in OpenBLAS (pthread build, libblas.so.3), whose own pool ignores
# torch.set_num_threads and defaults to one thread per core. Cap it to --threads (before torch loads it)
# so "--threads 1" really means one thread; an OPENBLAS_NUM_THREADS already set is respected.
os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads_arg())

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools", "fixtures"))
from torch_vit import ViT  # noqa: E402


def load_idx_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051:
        raise SystemExit(f"{path}: bad IDX image magic {magic}, expected 2051")
    return torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).view(n, 1, rows, cols)


def load_idx_labels(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    if magic != 2049:
        raise SystemExit(f"{path}: bad IDX label magic {magic}, expected 2049")
    return torch.frombuffer(bytearray(raw[8:]), dtype=torch.uint8).view(n).long()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--data", default=None, help="directory with Fashion-MNIST train-*-idx*-ubyte.gz")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = ViT(image=28, patch=4, chans=1, dim=64, depth=4, heads=4, mlp=256, classes=10, norm_first=False)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    B = args.batch
    total = args.warmup + args.steps
    if args.data:
        imgs = load_idx_images(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
        labels = load_idx_labels(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
        perm = torch.randperm(imgs.shape[0])
        batches = []
        for s in range(total):
            idx = perm[(s * B + torch.arange(B)) % imgs.shape[0]]
            x = (imgs[idx].float() / 255.0 - 0.2860) / 0.3530
            batches.append((x, labels[idx]))
    else:
        batches = [(torch.randn(B, 1, 28, 28), torch.randint(0, 10, (B,))) for _ in range(total)]

    times, losses = [], []
    for s, (x, y) in enumerate(batches):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if s >= args.warmup:
            times.append(dt)

    med = statistics.median(times)
    print(json.dumps({
        "framework": "pytorch",
        "images_per_s": round(B / med, 1),
        "step_ms_min": round(1e3 * min(times), 2),
        "step_ms_median": round(1e3 * med, 2),
        "step_ms_mean": round(1e3 * statistics.mean(times), 2),
        "threads": args.threads,
        "batch": B,
        "steps": args.steps,
        "data": "fashion-mnist" if args.data else "random",
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
