#!/usr/bin/python3
"""Pillow peer of bench/image_bench.cpp: openai/CLIP's preprocessing, the code a PyTorch user runs.

    /usr/bin/python3 bench/pil_preprocess.py time  FILE [--reps 50]          # one JSON line
    /usr/bin/python3 bench/pil_preprocess.py bytes LIST OUT.u8                # parity dump
    /usr/bin/python3 bench/pil_preprocess.py throughput LIST [--reps 1]      # one JSON line

The transform is openai/CLIP clip.py's _transform(224), verbatim: Compose([Resize(224,
interpolation=BICUBIC), CenterCrop(224), _convert_image_to_rgb, ToTensor(), Normalize(CLIP mean,
std)]) on Image.open(path) (no draft(): CLIP's loader calls none, so the JPEG is decoded at full
size with libjpeg-turbo's defaults, as mmkit does). One thread (torch.set_num_threads(1)).
time: open + decode + transform of FILE from memory (io.BytesIO of its bytes: no disk in the
  timing), min and median ms over --reps runs after 3 warm-ups, and the same for decode alone
  (Image.open + load()) so the split is visible.
bytes: for each path in LIST (one a line) the uint8 [224, 224, 3] RGB image after CenterCrop +
  convert("RGB") (the tensor before ToTensor), concatenated into OUT.u8, for a byte comparison.
throughput: every file of LIST read, decoded and transformed in order; images per second.
"""
import io
import json
import statistics
import sys
import time

import torch
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, Normalize, Resize, ToTensor

try:  # as openai/CLIP's clip.py writes it
    from torchvision.transforms import InterpolationMode
    BICUBIC = InterpolationMode.BICUBIC
except ImportError:
    BICUBIC = Image.BICUBIC

torch.set_num_threads(1)


def _convert_image_to_rgb(image):
    return image.convert("RGB")


def clip_transform(n_px=224, tensor=True):
    steps = [Resize(n_px, interpolation=BICUBIC), CenterCrop(n_px), _convert_image_to_rgb]
    if tensor:
        steps += [ToTensor(), Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))]
    return Compose(steps)


def main():
    cmd = sys.argv[1]
    if cmd == "time":
        path = sys.argv[2]
        reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 50
        data = open(path, "rb").read()
        tf = clip_transform()

        def full():
            tf(Image.open(io.BytesIO(data)))

        def decode():
            Image.open(io.BytesIO(data)).load()

        out = {"file": path}
        for name, fn in (("decode", decode), ("full", full)):
            for _ in range(3):
                fn()
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
            out[name + "_ms_min"] = min(ts)
            out[name + "_ms_median"] = statistics.median(ts)
        print(json.dumps(out))
    elif cmd == "bytes":
        paths = [p for p in open(sys.argv[2]).read().split("\n") if p]
        tf = clip_transform(tensor=False)
        with open(sys.argv[3], "wb") as f:
            for p in paths:
                im = tf(Image.open(p))
                assert im.size == (224, 224) and im.mode == "RGB", (p, im.size, im.mode)
                f.write(im.tobytes())
    elif cmd == "throughput":
        paths = [p for p in open(sys.argv[2]).read().split("\n") if p]
        reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 1
        tf = clip_transform()
        best = None
        for _ in range(reps):
            t0 = time.perf_counter()
            for p in paths:
                with open(p, "rb") as fh:
                    tf(Image.open(io.BytesIO(fh.read())))
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        print(json.dumps({"images": len(paths), "seconds": best, "images_per_s": len(paths) / best}))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
