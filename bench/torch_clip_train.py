#!/usr/bin/python3
"""PyTorch peer for the CLIP training benchmark (bench/clip_train_bench launches it beside mmkit).

    /usr/bin/python3 bench/torch_clip_train.py [--threads 2] [--batch 32] [--steps 3] [--warmup 1]

Model: OpenAI CLIP ViT-B/32 architecture (bench/torch_clip.py: image 224, patch 32, width 768, 12 layers,
12 heads; text context 77, width 512, 12 layers, 8 heads, vocab 49408; embed 512; QuickGELU), random init.
A step = zero_grad + both towers forward + CLIP's symmetric contrastive loss + backward + clip_grad_norm_(1.0)
+ AdamW (weight decay 0.1 on matrices) + logit_scale clamp: what `mmkit train clip` does per batch.
--autocast: forward and loss under torch.autocast("cpu", dtype=torch.bfloat16) (PyTorch's CPU mixed
precision: the matmul family in bf16, fp32 master weights and optimizer), as a PyTorch user would write it.
Data: random N(0,1) pixels and random token rows (start token, --words random ids (20), end token = highest id).
Prints one JSON line: {"framework":"pytorch","pairs_per_s":..,"step_ms_min":..,"step_ms_median":..,"cpu_ms_median":..}
(cpu = process CPU time, all threads: comparable across runs on a busy machine).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time


def _threads_arg():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
    return "2"


os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads_arg())

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_clip import build  # noqa: E402

VIT_B32 = {"embed_dim": 512, "image_resolution": 224, "vision_layers": 12, "vision_width": 768,
           "vision_patch_size": 32, "vision_heads": 12, "context_length": 77, "vocab_size": 49408,
           "transformer_width": 512, "transformer_heads": 8, "transformer_layers": 12}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--autocast", action="store_true", help="bf16 autocast for forward and loss")
    ap.add_argument("--words", type=int, default=20, help="random ids between start and end token (max 75)")
    args = ap.parse_args()
    if not 1 <= args.words <= 75:
        sys.exit("--words must be in [1, 75]")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(VIT_B32, init_seed=0).train()
    no_decay = {"token_embedding.weight", "positional_embedding", "visual.positional_embedding"}
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and n not in no_decay]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and n not in no_decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=1e-5)
    B, T, V = args.batch, 77, 49408
    pixels = torch.randn(B, 3, 224, 224)
    ids = torch.zeros(B, T, dtype=torch.long)
    ids[:, 0] = V - 2
    ids[:, 1:1 + args.words] = torch.randint(1, V - 2, (B, args.words))
    ids[:, 1 + args.words] = V - 1
    labels = torch.arange(B)
    times, cpu = [], []
    for s in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        c0 = time.process_time()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast):
            img = model.encode_image(pixels)
            txt = model.encode_text(ids)
            img = img / img.norm(dim=-1, keepdim=True)
            txt = txt / txt.norm(dim=-1, keepdim=True)
            logits = model.logit_scale.exp() * img @ txt.t()
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        dt = (time.perf_counter() - t0) * 1000
        dc = (time.process_time() - c0) * 1000
        print(f"step {s}: {dt:.0f} ms (CPU {dc:.0f} ms), loss {loss.item():.4f}", file=sys.stderr)
        if s >= args.warmup:
            times.append(dt)
            cpu.append(dc)
    med = statistics.median(times)
    print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "autocast": args.autocast, "threads": args.threads, "batch": B,
                      "pairs_per_s": B * 1000 / med, "step_ms_min": min(times), "step_ms_median": med,
                      "cpu_ms_median": statistics.median(cpu)}))


if __name__ == "__main__":
    main()
