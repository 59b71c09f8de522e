#!/usr/bin/python3
"""PyTorch peer for the CLIP encode_image benchmark (bench/clip_bench.cpp launches it; usable alone).

    /usr/bin/python3 bench/torch_clip_bench.py make-weights --out W.safetensors [--seed 0] [--config JSON]
    /usr/bin/python3 bench/torch_clip_bench.py time --model W.safetensors [--tower image|text] [--batches 1,32] [--threads 2]
                      [--warmup 2] [--reps 20] [--reps-large 5] [--seed 1] [--dump CHECK.safetensors]
    /usr/bin/python3 bench/torch_clip_bench.py first-embedding --model W.safetensors --image F [--threads 2]
    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/torch_clip_bench.py time ...   # torch's best setting here

make-weights: random CLIP weights (default ViT-B/32: embed 512, image 224, patch 32, vision width 768 x 12
  layers x 12 heads; text width 512 x 12 layers x 8 heads, context 77, vocab 49408), OpenAI tensor names,
  the config JSON in the safetensors metadata ("config"); written to a temporary name and renamed.
time: encode_image (--tower image) or encode_text (--tower text) under torch.no_grad() on inputs[:B]
  of one seeded batch: images N(0,1) [max B, 3, R, R], or token rows [max B, T] (text_inputs below);
  the rest of this paragraph says "images" for either. Images:
  (torch.Generator().manual_seed(seed), so clip_bench.cpp can read the same pixels from --dump). One JSON
  line per batch: {"batch":B,"ms_min":..,"ms_median":..,"reps":..,...}. --dump writes "images" [max B,3,R,R]
  and "embeddings" [max B, E] (from the first warm-up call at the largest batch) for the parity check.
  Batches > 8 use --reps-large repetitions (a ViT-B/32 batch of 32 takes seconds).
first-embedding: what a user's script does to embed one photo: import torch, load the safetensors weights,
  PIL preprocessing (bicubic resize, center crop, CLIP normalisation), encode_image, L2-normalise. Prints
  one JSON line with the embedding and the time of each phase since interpreter start.

Environment that matters (see bench/torch_vit_train.py): OMP_WAIT_POLICY, OPENBLAS_NUM_THREADS (set from
--threads unless given: Debian's torch does its GEMMs in a pthread OpenBLAS whose pool ignores
torch.set_num_threads), OPENBLAS_CORETYPE.
"""
import os
import sys
import time

T_START = time.perf_counter()


def _threads_arg():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "2"


os.environ.setdefault("OPENBLAS_NUM_THREADS", _threads_arg())

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402

import torch  # noqa: E402

T_IMPORT_TORCH = time.perf_counter()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import torch_clip  # noqa: E402
import torch_siglip  # noqa: E402

VIT_B_32 = {"embed_dim": 512, "image_resolution": 224, "vision_layers": 12, "vision_width": 768,
            "vision_patch_size": 32, "vision_heads": 12, "context_length": 77, "vocab_size": 49408,
            "transformer_width": 512, "transformer_heads": 8, "transformer_layers": 12}


def make_weights(args):
    from safetensors_py import save
    config = json.loads(args.config) if args.config else VIT_B_32
    if config.get("arch") == "siglip":
        # SigLIP (bench/torch_siglip.py), saved under mmkit's names with mmkit's config JSON.
        torch.manual_seed(args.seed)
        model = torch_siglip.from_mmkit_config(config)
        tmp = f"{args.out}.tmp.{os.getpid()}"
        save(tmp, torch_siglip.to_mmkit_names(model.state_dict()), metadata={"format": "pt", "config": json.dumps(config)})
        os.replace(tmp, args.out)
        print(json.dumps({"out": args.out, "params": sum(p.numel() for p in model.parameters()), "config": config}))
        return
    model = torch_clip.build(config, init_seed=args.seed)
    tmp = f"{args.out}.tmp.{os.getpid()}"
    save(tmp, model.state_dict(), metadata={"format": "pt", "config": json.dumps(model.config)})
    os.replace(tmp, args.out)
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"out": args.out, "params": n, "config": model.config}))


def load_model(path):
    tensors, meta = torch_clip.load_safetensors_mmap(path)
    config = json.loads(meta["config"])
    if config.get("arch") == "siglip":
        model = torch_siglip.from_mmkit_config(config)
        model.load_state_dict(torch_siglip.from_mmkit_names(model, tensors), strict=True)
        return model
    model = torch_clip.build(config)
    model.load_state_dict(tensors, strict=True)
    return model


def text_inputs(config, n, seed):
    """n seeded token rows [n, T]: <|startoftext|> (vocab-2), 3..T-2 random word ids, <|endoftext|>
    (vocab-1, the highest id, where the text tower pools), zeros after."""
    g = torch.Generator().manual_seed(seed)
    T, V = config["context_length"], config["vocab_size"]
    if config.get("arch") == "siglip":
        # SigLIP: word ids, then </s> (1) to the end (its padding), as SiglipTokenizer pads.
        ids = torch.ones(n, T, dtype=torch.long)
        for i in range(n):
            length = int(torch.randint(3, T - 1, (1,), generator=g))
            ids[i, :length] = torch.randint(3, V, (length,), generator=g)
        return ids
    ids = torch.zeros(n, T, dtype=torch.long)
    for i in range(n):
        length = int(torch.randint(3, T - 1, (1,), generator=g))
        ids[i, 0] = V - 2
        ids[i, 1:length] = torch.randint(1, V - 2, (length - 1,), generator=g)
        ids[i, length] = V - 1
    return ids


def time_encode(args):
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    batches = [int(b) for b in args.batches.split(",")]
    R = model.config["image_resolution"]
    if args.tower == "image":
        inputs = torch.randn(max(batches), 3, R, R, generator=torch.Generator().manual_seed(args.seed))
        encode, input_name = model.encode_image, "images"
    else:
        inputs = text_inputs(model.config, max(batches), args.seed)
        encode, input_name = model.encode_text, "ids"
    dumped = None
    with torch.no_grad():
        for B in batches:
            x = inputs[:B].contiguous()
            reps = args.reps_large if B > 8 else args.reps
            times, cpu = [], []
            for r in range(args.warmup + reps):
                t0, c0 = time.perf_counter(), time.process_time()
                e = encode(x)
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                if r >= args.warmup:
                    times.append(dt)
                    cpu.append(dc)
                if r == 0 and B == max(batches):
                    dumped = e.clone()
            med = statistics.median(times)
            print(json.dumps({
                "framework": "pytorch", "tower": args.tower, "batch": B, "threads": args.threads, "reps": reps,
                "ms_min": round(1e3 * min(times), 3), "ms_median": round(1e3 * med, 3),
                "images_per_s": round(B / med, 2), "cpu_ms_median": round(1e3 * statistics.median(cpu), 3),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
                "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", ""),
                "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
                "torch": torch.__version__,
            }), flush=True)
    if args.dump:
        from safetensors_py import save
        tmp = f"{args.dump}.tmp.{os.getpid()}"
        save(tmp, {input_name: inputs, "embeddings": dumped},
             metadata={"seed": str(args.seed), "model": os.path.abspath(args.model)})
        os.replace(tmp, args.dump)


def first_embedding(args):
    torch.set_num_threads(args.threads)
    t = {"import_torch_s": T_IMPORT_TORCH - T_START}
    model = load_model(args.model)
    t["load_s"] = time.perf_counter() - T_START
    if model.config.get("arch") == "siglip":
        x = torch_siglip.preprocess(args.image, model.config["image_resolution"])
    else:
        x = torch_clip.preprocess(args.image, model.config["image_resolution"])
    t["preprocess_s"] = time.perf_counter() - T_START
    with torch.no_grad():
        e = model.encode_image(x)
        e = e / e.norm(dim=-1, keepdim=True)
    t["embedding_s"] = time.perf_counter() - T_START
    print(json.dumps({"framework": "pytorch", **{k: round(v, 4) for k, v in t.items()},
                      "embedding": [round(float(v), 7) for v in e[0]]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    mw = sub.add_parser("make-weights")
    mw.add_argument("--out", required=True)
    mw.add_argument("--seed", type=int, default=0)
    mw.add_argument("--config", default=None, help="CLIP config JSON (default: ViT-B/32)")
    tm = sub.add_parser("time")
    tm.add_argument("--model", required=True)
    tm.add_argument("--batches", default="1,32")
    tm.add_argument("--threads", type=int, default=2)
    tm.add_argument("--warmup", type=int, default=2)
    tm.add_argument("--reps", type=int, default=20)
    tm.add_argument("--reps-large", type=int, default=5)
    tm.add_argument("--seed", type=int, default=1)
    tm.add_argument("--dump", default=None)
    tm.add_argument("--tower", choices=["image", "text"], default="image")
    fe = sub.add_parser("first-embedding")
    fe.add_argument("--model", required=True)
    fe.add_argument("--image", required=True)
    fe.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    {"make-weights": make_weights, "time": time_encode, "first-embedding": first_embedding}[args.cmd](args)


if __name__ == "__main__":
    main()
