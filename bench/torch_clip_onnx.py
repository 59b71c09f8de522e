#!/usr/bin/python3
"""Exports the benchmark's CLIP towers to ONNX for the ONNX Runtime peer (bench/ort/ort_clip_bench.js).

    /usr/bin/python3 bench/torch_clip_onnx.py --model W.safetensors --out-dir DIR [--opset 14]

Loads W.safetensors into bench/torch_clip.py's model (the same random weights every peer uses) and writes
DIR/clip_image.onnx  (input "images" f32 [B, 3, R, R] -> "embeddings" f32 [B, E])
DIR/clip_text.onnx   (input "ids" i64 [B, T]          -> "embeddings" f32 [B, E], pooled at argmax(ids))
with a dynamic batch axis, through torch.onnx.export (Debian's torch 1.13 serialises ONNX itself; the
`onnx` Python package is not needed). Each file is written to a temporary name and renamed, and is
re-exported only when it is older than the weights. Prints one JSON line.
"""
import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch_clip  # noqa: E402


class ImageTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, images):
        return self.clip.encode_image(images)


class TextTower(torch.nn.Module):
    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, ids):
        return self.clip.encode_text(ids)


def fresh(out, src):
    return os.path.exists(out) and os.path.getmtime(out) >= os.path.getmtime(src)


def export(module, example, in_name, out, opset):
    tmp = f"{out}.tmp.{os.getpid()}"
    # Traced with gradients enabled on purpose: under no_grad nn.MultiheadAttention takes its fused
    # fast path (aten::_native_multi_head_attention), which torch 1.13 cannot export.
    torch.onnx.export(module, (example,), tmp, input_names=[in_name], output_names=["embeddings"],
                      dynamic_axes={in_name: {0: "batch"}, "embeddings": {0: "batch"}},
                      opset_version=opset, do_constant_folding=True)
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--opset", type=int, default=14)
    args = ap.parse_args()
    tensors, meta = torch_clip.load_safetensors_mmap(args.model)
    model = torch_clip.build(json.loads(meta["config"]))
    model.load_state_dict(tensors, strict=True)
    c = model.config
    t0 = time.perf_counter()
    res = {}
    img_out = os.path.join(args.out_dir, "clip_image.onnx")
    txt_out = os.path.join(args.out_dir, "clip_text.onnx")
    R = c["image_resolution"]
    if not fresh(img_out, args.model):
        export(ImageTower(model).eval(), torch.zeros(2, 3, R, R), "images", img_out, args.opset)
        res["image_exported"] = True
    if not fresh(txt_out, args.model):
        ids = torch.zeros(2, c["context_length"], dtype=torch.long)
        ids[:, 0], ids[:, 5] = c["vocab_size"] - 2, c["vocab_size"] - 1
        export(TextTower(model).eval(), ids, "ids", txt_out, args.opset)
        res["text_exported"] = True
    res.update({"image": img_out, "text": txt_out, "seconds": round(time.perf_counter() - t0, 2),
                "torch": torch.__version__, "opset": args.opset})
    print(json.dumps(res))


if __name__ == "__main__":
    main()
