#!/usr/bin/python3
"""PyTorch peer of bench/embed_bench.cpp: what a user writes to embed a folder of photos with CLIP.

    OMP_WAIT_POLICY=passive /usr/bin/python3 bench/torch_embed_folder.py --model W.safetensors \\
        --images DIR --out E.npy [--workers 2] [--threads 2] [--batch 32]
    /usr/bin/python3 bench/torch_embed_folder.py ... --feed-ort    # raw batches to stdout (ORT peer)

A torch.utils.data.DataLoader over the folder's JPEG/PNG files (sorted), each item opened with
PIL and put through openai/CLIP's preprocessing (bench/pil_preprocess.py's clip_transform: Resize
BICUBIC, CenterCrop, RGB, ToTensor, Normalize) in --workers worker processes (0: in the main
process), batches of --batch fed to model.encode_image under torch.no_grad() (the bench's own
PyTorch CLIP, bench/torch_clip.py, with the safetensors weights), embeddings L2-normalised and
written with numpy.save. Prints one JSON line: images, seconds from interpreter start to the file
written (import torch included, as the user waits for it) and images/s.
--feed-ort: no model; each batch goes to stdout as int32 n then n*3*224*224 float32 (the ONNX
Runtime peer, bench/ort/ort_embed_stream.js, reads them), so ORT is fed by the same PIL pipeline.
"""
import os
import sys
import time

T_START = time.perf_counter()


def _arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


os.environ.setdefault("OPENBLAS_NUM_THREADS", _arg("--threads", "2"))

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pil_preprocess  # noqa: E402
import torch_clip_bench  # noqa: E402


class Folder(torch.utils.data.Dataset):
    def __init__(self, d):
        self.paths = sorted(os.path.join(d, f) for f in os.listdir(d)
                            if f.lower().endswith((".png", ".jpg", ".jpeg")))
        self.tf = pil_preprocess.clip_transform(224)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.tf(Image.open(self.paths[i]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--images", required=True)
    ap.add_argument("--out")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--feed-ort", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ds = Folder(a.images)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, num_workers=a.workers, shuffle=False)
    if a.feed_ort:
        out = sys.stdout.buffer
        for x in dl:
            out.write(np.int32(x.shape[0]).tobytes())
            out.write(x.numpy().astype(np.float32, copy=False).tobytes())
        out.flush()
        return
    model = torch_clip_bench.load_model(a.model)
    embs = []
    with torch.no_grad():
        for x in dl:
            e = model.encode_image(x)
            embs.append(e / e.norm(dim=-1, keepdim=True))
    np.save(a.out, torch.cat(embs).numpy())
    dt = time.perf_counter() - T_START
    print(json.dumps({"framework": "pytorch", "workers": a.workers, "threads": a.threads, "images": len(ds),
                      "seconds": dt, "images_per_s": len(ds) / dt}))


if __name__ == "__main__":
    main()
