#!/usr/bin/python3
"""A compact PyTorch CLIP (Radford et al. 2021, OpenAI architecture), the peer for bench/clip_bench.

    from torch_clip import build, load_safetensors_mmap
    tensors, meta = load_safetensors_mmap("clip.safetensors")
    model = build(json.loads(meta["config"]))  # config keys: CONFIG_KEYS below; build(cfg, init_seed=0): random
    model.load_state_dict(tensors)           # OpenAI tensor names, see below
    img = model.encode_image(pixels)         # [B, 3, R, R] -> [B, E]
    txt = model.encode_text(ids)             # int64 [B, T] -> [B, E], pooled at argmax(ids)

    /usr/bin/python3 bench/torch_clip.py --selftest     # parity with ../shared/reference/clip_tiny:
                                                         # cosine > 0.9999 and max abs diff <= 1e-3

Module names reproduce the OpenAI state dict exactly (visual.conv1.weight, visual.class_embedding,
visual.positional_embedding, visual.ln_pre, visual.transformer.resblocks.N.{ln_1, attn.in_proj_weight,
attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}, visual.ln_post, visual.proj,
token_embedding.weight, positional_embedding, transformer.resblocks.N..., ln_final, text_projection,
logit_scale), so checkpoints load with strict=True in both directions.

Architecture: pre-LN residual blocks (x + attn(ln_1(x)), x + mlp(ln_2(x))), LayerNorm eps 1e-5,
QuickGELU x*sigmoid(1.702x), nn.MultiheadAttention with the packed q/k/v in_proj, causal mask in the text
tower; vision: conv1 (no bias) patchify, class token + positional embedding, ln_pre, blocks,
ln_post(class token) @ proj; text: token + positional embedding, blocks, ln_final, pooled at the
end-of-text token (the highest id) @ text_projection.
Shape letters: B batch, T tokens, W width, E embed dim, R image resolution, p patch size.
"""
import json
import mmap
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CONFIG_KEYS = ("embed_dim", "image_resolution", "vision_layers", "vision_width", "vision_patch_size",
               "vision_heads", "context_length", "vocab_size", "transformer_width", "transformer_heads",
               "transformer_layers")


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualBlock(nn.Module):
    """Pre-LN transformer block; x is [B, T, W] (batch first, so torch may take its fused MHA path)."""

    def __init__(self, width, heads, device=None, activation="quick_gelu"):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, device=device)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True, device=device)
        self.ln_2 = nn.LayerNorm(width, device=device)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width, device=device)),
            ("gelu", QuickGELU() if activation == "quick_gelu" else nn.GELU()),
            ("c_proj", nn.Linear(4 * width, width, device=device)),
        ]))

    def forward(self, x, mask=None):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, device=None, activation="quick_gelu"):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualBlock(width, heads, device, activation) for _ in range(layers)])

    def forward(self, x, mask=None):
        for blk in self.resblocks:
            x = blk(x, mask)
        return x


class VisionTower(nn.Module):
    def __init__(self, resolution, patch, width, layers, heads, embed_dim, device=None, activation="quick_gelu"):
        super().__init__()
        n_tokens = (resolution // patch) ** 2 + 1
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch, stride=patch, bias=False, device=device)
        self.class_embedding = nn.Parameter(torch.empty(width, device=device))
        self.positional_embedding = nn.Parameter(torch.empty(n_tokens, width, device=device))
        self.ln_pre = nn.LayerNorm(width, device=device)
        self.transformer = Transformer(width, layers, heads, device, activation)
        self.ln_post = nn.LayerNorm(width, device=device)
        self.proj = nn.Parameter(torch.empty(width, embed_dim, device=device))

    def forward(self, images):                                      # [B, 3, R, R]
        x = self.conv1(images).flatten(2).transpose(1, 2)           # [B, P, W]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding  # [B, P+1, W]
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj                    # [B, E]


class Clip(nn.Module):
    def __init__(self, config, device=None):
        super().__init__()
        c = config
        self.config = {k: int(c[k]) for k in CONFIG_KEYS}
        self.visual = VisionTower(c["image_resolution"], c["vision_patch_size"], c["vision_width"],
                                  c["vision_layers"], c["vision_heads"], c["embed_dim"], device,
                                  c.get("activation", "quick_gelu"))
        W, T = c["transformer_width"], c["context_length"]
        self.token_embedding = nn.Embedding(c["vocab_size"], W, device=device)
        self.positional_embedding = nn.Parameter(torch.empty(T, W, device=device))
        self.transformer = Transformer(W, c["transformer_layers"], c["transformer_heads"], device,
                                       c.get("activation", "quick_gelu"))
        self.ln_final = nn.LayerNorm(W, device=device)
        self.text_projection = nn.Parameter(torch.empty(W, c["embed_dim"], device=device))
        self.logit_scale = nn.Parameter(torch.empty((), device=device))
        # Additive causal mask [T, T]: -inf above the diagonal (a token sees itself and the past).
        self.register_buffer("causal_mask", torch.full((T, T), float("-inf"), device=device).triu(1),
                             persistent=False)

    def encode_image(self, images):
        return self.visual(images)

    def encode_text(self, ids):                                     # int [B, T], T <= context_length
        T = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:T]
        x = self.ln_final(self.transformer(x, self.causal_mask[:T, :T]))
        eot = ids.argmax(dim=-1)                                    # <|endoftext|> has the highest id
        return x[torch.arange(x.shape[0]), eot] @ self.text_projection

    @torch.no_grad()
    def init_random(self, seed, perturb=0.1):
        """OpenAI-style init (std width^-0.5 for projections, 0.02 / 0.01 for embeddings), then LayerNorm
        gains/biases, attention and MLP biases perturbed by N(0, perturb) so that no parameter is trivially
        0 or 1 and a port that drops one of them diverges visibly."""
        g = torch.Generator().manual_seed(seed)

        def normal_(t, std):
            t.copy_(torch.randn(t.shape, generator=g) * std)

        c = self.config
        Wv, Wt = c["vision_width"], c["transformer_width"]
        normal_(self.visual.conv1.weight, (3 * c["vision_patch_size"] ** 2) ** -0.5)
        normal_(self.visual.class_embedding, Wv ** -0.5)
        normal_(self.visual.positional_embedding, Wv ** -0.5)
        normal_(self.visual.proj, Wv ** -0.5)
        normal_(self.token_embedding.weight, 0.02)
        normal_(self.positional_embedding, 0.01)
        normal_(self.text_projection, Wt ** -0.5)
        self.logit_scale.fill_(float(np.log(1 / 0.07)))
        for tower, W, L in ((self.visual.transformer, Wv, c["vision_layers"]),
                            (self.transformer, Wt, c["transformer_layers"])):
            proj_std = W ** -0.5 * (2 * L) ** -0.5
            for blk in tower.resblocks:
                normal_(blk.attn.in_proj_weight, W ** -0.5)
                normal_(blk.attn.out_proj.weight, proj_std)
                normal_(blk.mlp.c_fc.weight, (2 * W) ** -0.5)
                normal_(blk.mlp.c_proj.weight, proj_std)
                for b in (blk.attn.in_proj_bias, blk.attn.out_proj.bias, blk.mlp.c_fc.bias, blk.mlp.c_proj.bias):
                    normal_(b, perturb * 0.2)
        for m in self.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + torch.randn(m.weight.shape, generator=g) * perturb)
                normal_(m.bias, perturb)


def build(config, init_seed=None):
    """A Clip in eval mode. Without init_seed the parameters are left uninitialised (constructed on the
    meta device, then materialised empty): the caller loads a state dict, and skipping torch's default
    init saves ~1 s at ViT-B size, which would otherwise count against PyTorch's start-up time."""
    if init_seed is None:
        model = torch.nn.utils.skip_init(Clip, config)
    else:
        model = Clip(config)
        model.init_random(init_seed)
    # skip_init leaves non-persistent buffers empty too; rebuild the mask.
    T = model.config["context_length"]
    model.causal_mask = torch.full((T, T), float("-inf")).triu(1)
    return model.eval()


def load_safetensors_mmap(path):
    """({name: torch tensor viewing a read-only mmap}, metadata); F32/F16/I32/I64 only. Zero-copy, so
    load_state_dict does the one copy (the fair fast path: Debian has no `safetensors` package)."""
    dtypes = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None) or {}
    base, out = 8 + n, {}
    for name, e in header.items():
        if e["dtype"] not in dtypes:
            raise ValueError(f"{path}: tensor {name}: dtype {e['dtype']} not supported here")
        b, end = e["data_offsets"]
        a = np.frombuffer(buf, dtype=dtypes[e["dtype"]], count=(end - b) // np.dtype(dtypes[e["dtype"]]).itemsize,
                          offset=base + b).reshape(e["shape"])
        with np.testing.suppress_warnings() as sup:  # read-only buffer: torch warns, we never write to it
            sup.filter(UserWarning)
            out[name] = torch.from_numpy(a)
    return out, metadata


def preprocess(path, resolution):
    """OpenAI CLIP's transform: PIL bicubic resize of the shorter side, center crop, RGB, normalise."""
    from PIL import Image
    img = Image.open(path)
    w, h = img.size
    s = resolution / min(w, h)
    size = (resolution, int(h * s)) if w <= h else (int(w * s), resolution)
    img = img.resize(size, Image.BICUBIC)
    w, h = img.size
    left, top = int(round((w - resolution) / 2.0)), int(round((h - resolution) / 2.0))
    img = img.crop((left, top, left + resolution, top + resolution)).convert("RGB")
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    return ((x - mean) / std).unsqueeze(0)                          # [1, 3, R, R]


def _cosines(a, b):
    a, b = a.double(), b.double()
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1))


def selftest():
    sys.path.insert(0, os.path.join(REPO, "tools"))
    from safetensors_py import load
    ref_dir = os.path.join(REPO, "..", "shared", "reference")
    tensors, meta = load(os.path.join(ref_dir, "clip_tiny", "clip_tiny_f32.safetensors"))
    with open(os.path.join(ref_dir, "clip_tiny", "clip_tiny_f32.json")) as f:
        ref = json.load(f)
    model = build(json.loads(meta["config"]))
    model.load_state_dict(tensors, strict=True)
    ok = True
    with torch.no_grad():
        txt = model.encode_text(torch.tensor(ref["token_ids"], dtype=torch.long))
        cos = _cosines(txt, torch.tensor(ref["text_embeddings"]))
        diff = (txt - torch.tensor(ref["text_embeddings"])).abs().max().item()
        worst = int(cos.argmin())
        print(f"text:  {len(cos)} texts, min cosine {cos.min().item():.8f} (text {worst}: "
              f"{ref['texts'][worst]!r}), max |diff| {diff:.2e}")
        ok &= bool(cos.min() > 0.9999) and diff <= 1e-3
        # Images go through PIL preprocessing too, so this also checks preprocess() (PNG/JPEG inputs).
        R = model.config["image_resolution"]
        x = torch.cat([preprocess(os.path.join(ref_dir, "inputs", n), R) for n in ref["images"]])
        img = model.encode_image(x)
        cos = _cosines(img, torch.tensor(ref["image_embeddings"]))
        diff = (img - torch.tensor(ref["image_embeddings"])).abs().max().item()
        worst = int(cos.argmin())
        print(f"image: {len(cos)} images, min cosine {cos.min().item():.8f} ({ref['images'][worst]}), "
              f"max |diff| {diff:.2e}")
        ok &= bool(cos.min() > 0.9999) and diff <= 1e-3
        # And the random init's state dict round-trips through the OpenAI names.
        fresh = build(model.config, init_seed=0)
        missing, unexpected = model.load_state_dict(fresh.state_dict(), strict=False)
        ok &= not missing and not unexpected and set(fresh.state_dict()) == set(tensors)
    print("selftest", "PASSED" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    if sys.argv[1:] == ["--selftest"]:
        sys.exit(selftest())
    sys.exit(__doc__)
