#!/usr/bin/python3
"""A folder of real JPEG and PNG photos of mixed sizes for the end-to-end benchmarks.

    /usr/bin/python3 tools/make_photo_set.py OUT_DIR [--count 256] [--seed 0]
    /usr/bin/python3 tools/make_photo_set.py --one-640x480 FILE.jpg

--one-640x480: a single 640x480 JPEG (quality 90, 4:2:0), a crop of the motorcycle photograph, for
the decode + preprocess latency of bench/image_bench.cpp.

Sources: the photographs Debian's python3-skimage ships (scikit-image's data folder: astronaut,
chelsea, coffee, the Hubble deep field, motorcycle, retina, rocket, ...; grey ones too). Each output
is a random crop (aspect 3:4 to 16:9, either orientation) of a random source, resized with Pillow's
LANCZOS so its longer side is 320..1024 px (upscaled where the source is smaller, as camera
downloads and thumbnails are), then saved as JPEG (about 60%: quality 70-95, 4:2:0 mostly, some
4:4:4 and progressive) or PNG. Deterministic for a seed: same files, same bytes, with the same
Pillow. About 256 files -> ~40 MB; not committed, made where they are needed.
"""
import argparse
import os
import random
import sys

from PIL import Image

SOURCES = [
    "astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
    "motorcycle_left.png", "motorcycle_right.png", "retina.jpg", "rocket.jpg", "color.png",
    "camera.png", "moon.png",
]


def skimage_data_dir():
    try:
        import skimage.data  # noqa: F401  (python3-skimage)
        return os.path.dirname(skimage.data.__file__)
    except ImportError:
        d = "/usr/lib/python3/dist-packages/skimage/data"
        if os.path.isdir(d):
            return d
    sys.exit("make_photo_set: scikit-image's data is missing: apt-get install python3-skimage "
             "(or MMKIT_BENCH=1 scripts/setup.sh)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?")
    ap.add_argument("--one-640x480", dest="one")
    ap.add_argument("--count", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    src_dir = skimage_data_dir()
    if a.one:
        im = Image.open(os.path.join(src_dir, "motorcycle_left.png")).convert("RGB")
        im.crop((50, 10, 690, 490)).save(a.one, quality=90)
        print(f"make_photo_set: {a.one}")
        return
    if not a.out:
        ap.error("OUT_DIR is required")
    photos = []
    for name in SOURCES:
        try:
            im = Image.open(os.path.join(src_dir, name))
            im.load()
        except OSError as e:  # a source the package build left out or truncated
            print(f"make_photo_set: skipping {name}: {e}", file=sys.stderr)
            continue
        photos.append((name, im.convert("L" if im.mode == "L" else "RGB")))
    if len(photos) < 4:
        sys.exit(f"make_photo_set: only {len(photos)} usable photos in {src_dir}")
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    for i in range(a.count):
        name, src = photos[rng.randrange(len(photos))]
        aspect = rng.uniform(3 / 4, 16 / 9)
        if rng.random() < 0.3:
            aspect = 1 / aspect  # portrait
        w, h = src.size
        cw = min(w, int(h * aspect))
        ch = min(h, int(cw / aspect))
        cw = max(16, int(cw * rng.uniform(0.6, 1.0)))
        ch = max(16, int(ch * rng.uniform(0.6, 1.0)))
        x0, y0 = rng.randrange(w - cw + 1), rng.randrange(h - ch + 1)
        im = src.crop((x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        longer = rng.randint(320, 1024)
        s = longer / max(cw, ch)
        im = im.resize((max(1, round(cw * s)), max(1, round(ch * s))), Image.LANCZOS)
        stem = os.path.join(a.out, f"photo_{i:04d}_{os.path.splitext(name)[0]}")
        if rng.random() < 0.6:
            sub = 2 if rng.random() < 0.8 else 0  # 4:2:0 (Pillow's default) or 4:4:4
            im.save(stem + ".jpg", quality=rng.randint(70, 95), subsampling=sub,
                    progressive=rng.random() < 0.15)
        else:
            im.save(stem + ".png", compress_level=rng.choice([1, 6]))
    print(f"make_photo_set: {a.count} photos from {len(photos)} sources in {a.out}")


if __name__ == "__main__":
    main()
