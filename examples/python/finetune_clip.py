"""Fine-tune a CLIP model on a JSONL file of {"image": ..., "caption": ...} lines, then use it.

    python3 examples/python/finetune_clip.py BASE_MODEL train.jsonl OUT_DIR [--epochs 2] [--batch 32]

The options are `mmkit train clip`'s (see `mmkit train clip --help`); Ctrl-C stops with a
checkpoint, and running the script again with --resume continues.
"""
import argparse

import mmkit


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="CLIP model to start from")
    ap.add_argument("data", help="JSONL file of image/caption pairs")
    ap.add_argument("out", help="run folder")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args()

    history = mmkit.train("clip", data=a.data, out=a.out, init=a.base, epochs=a.epochs, batch=a.batch, lr=a.lr,
                          threads=a.threads, resume=a.resume, eval_images=0)
    for h in history:
        print({k: v for k, v in h.items() if isinstance(v, (int, float))})
    tuned = mmkit.load(a.out)
    print("fine-tuned model:", tuned.path, "embedding size", tuned.embed_dim)


if __name__ == "__main__":
    main()
