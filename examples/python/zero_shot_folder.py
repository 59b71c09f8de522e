"""Zero-shot classification of every image in a folder with a CLIP model.

    python3 examples/python/zero_shot_folder.py MODEL FOLDER cat,dog,car [--template "a photo of a {}."]
"""
import argparse
import os

import mmkit


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="CLIP model: .safetensors file, run folder or Hugging Face folder")
    ap.add_argument("folder", help="folder of PNG/JPEG images")
    ap.add_argument("labels", help="comma-separated class names")
    ap.add_argument("--template", action="append", help="prompt with {} for the label (repeatable)")
    a = ap.parse_args()

    model = mmkit.load(a.model)
    labels = [s.strip() for s in a.labels.split(",") if s.strip()]
    files = sorted(os.path.join(a.folder, f) for f in os.listdir(a.folder)
                   if f.lower().endswith((".png", ".jpg", ".jpeg")))
    probs = model.zero_shot(files, labels, a.template)  # float32 [images, labels]
    for path, p in zip(files, probs):
        best = int(p.argmax())
        print(f"{os.path.basename(path)}\t{labels[best]}\t{p[best]:.3f}")


if __name__ == "__main__":
    main()
