#!/usr/bin/python3
"""SigLIP in plain PyTorch, written from transformers' src/transformers/models/siglip/modeling_siglip.py
(the version at commit 00b206564aa29563b46bfce0511de4a4f1eefc8c; class names below are its classes):
SiglipModel with its Hugging Face state-dict names (vision_model.*, text_model.*, logit_scale,
logit_bias), for the parity fixtures (tools/fixtures/gen_siglip_fixture.py) and the benchmark peer
(bench/torch_clip_bench.py --arch siglip). Configs are dicts with SiglipVisionConfig /
SiglipTextConfig keys.

    model = torch_siglip.SiglipModel(vision_config, text_config)
    img = model.vision_model(pixels)          # [B, 3, R, R] -> [B, W] pooled (not normalised)
    txt = model.text_model(ids)               # [B, 64] -> [B, E]
    probs = model.probs(img, txt)             # sigmoid(exp(scale) cos + bias)

to_mmkit_names / from_mmkit_names convert a state dict to and from mmkit's own SigLIP names
(src/mmkit/io/layouts.cpp hf_siglip_rules, q/k/v packed into in_proj).
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F


def gelu_tanh(x):
    return F.gelu(x, approximate="tanh")  # ACT2FN["gelu_pytorch_tanh"]


class Attention(nn.Module):  # SiglipAttention: separate q/k/v/out projections, scale head_dim^-0.5
    def __init__(self, d, h):
        super().__init__()
        self.h = h
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = (p(x).view(B, T, self.h, D // self.h).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        a = torch.softmax(q @ k.transpose(2, 3) * (D // self.h) ** -0.5, dim=-1)  # no mask in either tower
        return self.out_proj((a @ v).transpose(1, 2).reshape(B, T, D))


class Mlp(nn.Module):  # SiglipMLP
    def __init__(self, d, m):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, m), nn.Linear(m, d)

    def forward(self, x):
        return self.fc2(gelu_tanh(self.fc1(x)))


class EncoderLayer(nn.Module):  # SiglipEncoderLayer: pre-norm
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c["hidden_size"], c["num_attention_heads"])
        self.layer_norm1 = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.mlp = Mlp(c["hidden_size"], c["intermediate_size"])
        self.layer_norm2 = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c["num_hidden_layers"]))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Head(nn.Module):  # SiglipMultiheadAttentionPoolingHead
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.probe = nn.Parameter(torch.randn(1, 1, d))
        self.attention = nn.MultiheadAttention(d, c["num_attention_heads"], batch_first=True)
        self.layernorm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.mlp = Mlp(d, c["intermediate_size"])

    def forward(self, x):
        h = self.attention(self.probe.repeat(x.shape[0], 1, 1), x, x)[0]
        h = h + self.mlp(self.layernorm(h))
        return h[:, 0]


class VisionEmbeddings(nn.Module):  # SiglipVisionEmbeddings: conv with bias, no class token
    def __init__(self, c):
        super().__init__()
        p, d = c["patch_size"], c["hidden_size"]
        self.patch_embedding = nn.Conv2d(c["num_channels"], d, p, stride=p)
        self.position_embedding = nn.Embedding((c["image_size"] // p) ** 2, d)

    def forward(self, x):
        return self.patch_embedding(x).flatten(2).transpose(1, 2) + self.position_embedding.weight[None]


class VisionModel(nn.Module):  # SiglipVisionTransformer: embeddings, encoder, post_layernorm, head
    def __init__(self, c):
        super().__init__()
        self.embeddings = VisionEmbeddings(c)
        self.encoder = Encoder(c)
        self.post_layernorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.head = Head(c)

    def forward(self, x):
        return self.head(self.post_layernorm(self.encoder(self.embeddings(x))))


class TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])

    def forward(self, ids):
        return self.token_embedding(ids) + self.position_embedding.weight[None, :ids.shape[1]]


class TextModel(nn.Module):  # SiglipTextTransformer: no causal mask, pooled = last position, head
    def __init__(self, c):
        super().__init__()
        self.embeddings = TextEmbeddings(c)
        self.encoder = Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.head = nn.Linear(c["hidden_size"], c["projection_size"])

    def forward(self, ids):
        x = self.final_layer_norm(self.encoder(self.embeddings(ids)))
        return self.head(x[:, -1, :])  # "Assuming sticky EOS tokenization, last token is always EOS."


class SiglipModel(nn.Module):
    def __init__(self, vc, tc):
        super().__init__()
        self.vision_model = VisionModel(vc)
        self.text_model = TextModel(tc)
        self.logit_scale = nn.Parameter(torch.randn(1))
        self.logit_bias = nn.Parameter(torch.randn(1))

    def probs(self, img, txt):
        # SiglipModel.forward: logits_per_text = txt_n @ img_n^T * exp(logit_scale) + logit_bias;
        # probabilities are sigmoids of logits_per_image.
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return torch.sigmoid(img @ txt.t() * self.logit_scale.exp() + self.logit_bias)



# mmkit's names (models/clip.h) <-> Hugging Face's, as src/mmkit/io/layouts.cpp maps them.
_RULES = [
    (r"vision_model\.embeddings\.patch_embedding\.(weight|bias)", r"visual.conv1.\1"),
    (r"vision_model\.embeddings\.position_embedding\.weight", r"visual.positional_embedding"),
    (r"vision_model\.post_layernorm\.(weight|bias)", r"visual.ln_post.\1"),
    (r"vision_model\.head\.probe", r"visual.head.probe"),
    (r"vision_model\.head\.attention\.(in_proj_weight|in_proj_bias)", r"visual.head.attn.\1"),
    (r"vision_model\.head\.attention\.out_proj\.(weight|bias)", r"visual.head.attn.out_proj.\1"),
    (r"vision_model\.head\.layernorm\.(weight|bias)", r"visual.head.ln.\1"),
    (r"vision_model\.head\.mlp\.fc1\.(weight|bias)", r"visual.head.mlp.c_fc.\1"),
    (r"vision_model\.head\.mlp\.fc2\.(weight|bias)", r"visual.head.mlp.c_proj.\1"),
    (r"vision_model\.encoder\.layers\.(\d+)\.", r"visual.transformer.resblocks.\1."),
    (r"text_model\.embeddings\.token_embedding\.weight", r"token_embedding.weight"),
    (r"text_model\.embeddings\.position_embedding\.weight", r"positional_embedding"),
    (r"text_model\.final_layer_norm\.(weight|bias)", r"ln_final.\1"),
    (r"text_model\.head\.(weight|bias)", r"text_head.\1"),
    (r"text_model\.encoder\.layers\.(\d+)\.", r"transformer.resblocks.\1."),
]
_LAYER = [("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."), ("mlp.fc1.", "mlp.c_fc."), ("mlp.fc2.", "mlp.c_proj."),
          ("self_attn.out_proj.", "attn.out_proj.")]


def to_mmkit_names(sd):
    out = {}
    for name, t in sd.items():
        if ".self_attn.q_proj." in name or ".self_attn.k_proj." in name or ".self_attn.v_proj." in name:
            continue
        new = name
        for pat, rep in _RULES:
            if re.match(pat, name):
                new = re.sub(pat, rep, name, count=1)
                break
        for a, b in _LAYER:
            new = new.replace(a, b)
        out[new] = t
    for name in sd:
        if ".self_attn.q_proj." in name:
            kind = name.rsplit(".", 1)[1]
            base = name[:name.index(".self_attn.q_proj.")]
            parts = [sd[f"{base}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
            packed = None if parts[0] is None else torch.cat(parts)
            new = base + ".self_attn.in_proj_" + kind
            for pat, rep in _RULES:
                if re.match(pat, new):
                    new = re.sub(pat, rep, new, count=1)
                    break
            out[new.replace(".self_attn.", ".attn.")] = packed
    return out


def from_mmkit_names(model, sd):
    """The model's own state dict filled from mmkit-named tensors (the inverse of to_mmkit_names)."""
    out = {}
    for hf in model.state_dict():
        if ".self_attn." in hf and hf.split(".self_attn.")[1][:2] in ("q_", "k_", "v_"):
            base, rest = hf.split(".self_attn.")
            kind = rest.rsplit(".", 1)[1]
            trio = {f"{base}.self_attn.{p}_proj.{kind}": None for p in "qkv"}
            packed = next(iter(to_mmkit_names(trio)))
            out[hf] = sd[packed].chunk(3)[("q_", "k_", "v_").index(rest[:2])]
        else:
            out[hf] = sd[next(iter(to_mmkit_names({hf: None})))]
    return out


class BenchSiglip(SiglipModel):
    """SiglipModel with the CLIP peer's interface (config, encode_image, encode_text)."""

    def __init__(self, config, vc, tc):
        super().__init__(vc, tc)
        self.config = config

    def encode_image(self, x):
        return self.vision_model(x)

    def encode_text(self, ids):
        return self.text_model(ids)


def from_mmkit_config(config):
    """A SigLIP from mmkit's ClipConfig JSON (arch "siglip"; models/clip.h)."""
    eps = config.get("layer_norm_eps", 1e-6)
    vc = dict(hidden_size=config["vision_width"], intermediate_size=config["vision_mlp"],
              num_hidden_layers=config["vision_layers"], num_attention_heads=config["vision_heads"],
              image_size=config["image_resolution"], patch_size=config["vision_patch_size"], num_channels=3,
              layer_norm_eps=eps)
    tc = dict(hidden_size=config["transformer_width"], intermediate_size=config["text_mlp"],
              num_hidden_layers=config["transformer_layers"], num_attention_heads=config["transformer_heads"],
              max_position_embeddings=config["context_length"], projection_size=config["embed_dim"],
              vocab_size=config["vocab_size"], layer_norm_eps=eps)
    return BenchSiglip(config, vc, tc)


def preprocess_image(img, size):
    """transformers' SiglipImageProcessor on a PIL image: do_convert_rgb, resize to size x size BICUBIC
    without crop, rescale as image_transforms.rescale (float64 v * (1/255), then float32), normalize
    (x - 0.5) / 0.5 in float32 -> [3, size, size]."""
    import numpy as np
    from PIL import Image
    x = np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC))
    x = (x.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array([0.5] * 3, np.float32)) / np.array([0.5] * 3, np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def preprocess(path, size):
    from PIL import Image
    return preprocess_image(Image.open(path), size)[None]
