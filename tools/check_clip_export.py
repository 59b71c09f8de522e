#!/usr/bin/python3
"""Checks that a CLIP model written by `mmkit train clip` (OpenAI/OpenCLIP layout) loads into a PyTorch
CLIP with the OpenAI module names (bench/torch_clip.py) with strict=True, and that PyTorch's text and
image embeddings equal mmkit's for the same inputs.

    /usr/bin/python3 tools/check_clip_export.py runs/clip-fmnist/model.safetensors [image.png ...]

Token ids come from `build/mmkit tokenize --model M --json` (the model's own tokenizer), mmkit's
embeddings from `build/mmkit embed --raw --json`; images are preprocessed by mmkit's CLIP preset and by
this script's Pillow path for square images of the model's resolution (no resize needed).
Exit status 0 when every cosine >= 0.9999 and max |diff| <= 1e-3.
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "bench"))
from torch_clip import build, load_safetensors_mmap  # noqa: E402

MMKIT = os.path.join(REPO, "build", "mmkit")
TEXTS = ["a photo of a sneaker.", "a low resolution photo of a bag.", "itap of a dress."]
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def main():
    model_path, images = sys.argv[1], sys.argv[2:]
    tensors, meta = load_safetensors_mmap(model_path)
    cfg = json.loads(meta["config"])
    model = build(cfg)
    model.load_state_dict(tensors, strict=True)
    ok = True
    toks = json.loads(subprocess.check_output([MMKIT, "tokenize", "--model", model_path, "--json"] + TEXTS))
    args = [MMKIT, "embed", "--model", model_path, "--raw", "--json"]
    for t in TEXTS:
        args += ["--text", t]
    for im in images:
        args += ["--image", im]
    ours = json.loads(subprocess.check_output(args))
    with torch.no_grad():
        ids = torch.tensor([t["token_ids"] for t in toks], dtype=torch.long)
        ref = model.encode_text(ids).numpy()
        checks = [("text", ref, np.array(ours["text_embeddings"], dtype=np.float32))]
        if images:
            from PIL import Image
            px = []
            for im in images:
                a = np.asarray(Image.open(im).convert("RGB"), dtype=np.float32) / 255.0
                assert a.shape[0] == a.shape[1] == cfg["image_resolution"], "use images of the model's resolution"
                px.append(((a - MEAN) / STD).transpose(2, 0, 1))
            ref_i = model.encode_image(torch.tensor(np.stack(px))).numpy()
            checks.append(("image", ref_i, np.array(ours["image_embeddings"], dtype=np.float32)))
    for name, a, b in checks:
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        diff = np.abs(a - b).max()
        good = cos.min() >= 0.9999 and diff <= 1e-3
        ok &= bool(good)
        print(f"{name}: {len(a)} embeddings, min cosine {cos.min():.7f}, max |diff| {diff:.2e} "
              f"{'OK' if good else 'MISMATCH'}")
    print("strict load_state_dict into the OpenAI-named PyTorch CLIP: OK")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
