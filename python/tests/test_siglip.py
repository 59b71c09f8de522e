"""SigLIP from Python (issues #18 and #19): `mmkit.load` on a Hugging Face SigLIP folder (the committed
tiny fixture, tests/fixtures/siglip_tiny) against `mmkit embed / zero-shot` bit for bit; repeated
calls bit for bit; and a folder fine-tuned by `mmkit train clip --loss sigmoid` loaded into the
PyTorch SigLIP of the fixture generator (bench/torch_siglip.py, written from transformers'
modeling_siglip.py) with strict names, giving the embeddings mmkit gives."""
import json
import os
import shutil
import sys

import numpy as np
import pytest

import mmkit
from conftest import ROOT, cli_json, run_cli

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "siglip_tiny")
LABELS = ["cat", "dog", "shirt", "red car"]
TEXTS = ["a photo of a cat.", "A PHOTO of a Dog!!!", "Crème brûlée, naïve café; Über-cool."]


@pytest.fixture(scope="module")
def images(work):
    d = work / "siglip_images"
    d.mkdir(exist_ok=True)
    for i in range(3):
        shutil.copy(os.path.join(FIXTURE, f"image_{i}.png"), d / f"image_{i}.png")
    return str(d), [str(d / f"image_{i}.png") for i in range(3)]


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def test_siglip_folder_loads_as_a_clip_model():
    assert mmkit.model_kind(FIXTURE) == "clip"
    m = mmkit.load(FIXTURE)
    assert isinstance(m, mmkit.ClipModel)
    assert m.embed_dim == 32 and m.image_resolution == 32 and m.context_length == 64


@pytest.mark.parametrize("raw", [False, True])
def test_siglip_image_embeddings_match_the_cli_bit_for_bit(images, work, raw):
    folder, paths = images
    out = work / f"siglip_cli_{raw}.npy"
    run_cli("embed", "--model", FIXTURE, "--images", folder, "--out", out, *(["--raw"] if raw else []))
    cli = np.load(out)
    with open(str(out) + ".paths.txt", encoding="utf-8") as f:
        order = [line.rstrip("\n") for line in f]
    py = mmkit.load(FIXTURE).encode_image(order, normalize=not raw)
    assert py.shape == cli.shape == (3, 32)
    assert np.array_equal(bits(py), bits(cli))


def test_siglip_text_embeddings_and_ids_match_the_cli_bit_for_bit():
    j = cli_json("embed", "--model", FIXTURE, *sum((["--text", t] for t in TEXTS), []))
    m = mmkit.load(FIXTURE)
    py = m.encode_text(TEXTS)
    assert np.array_equal(bits(py), bits(np.array(j["text_embeddings"], dtype=np.float64)))
    ids = m.tokenize(TEXTS)
    assert ids.shape == (3, 64) and ids.dtype == np.int32
    assert np.array_equal(ids, np.array(j["token_ids"], dtype=np.int32))


def test_siglip_zero_shot_sigmoid_probabilities_match_the_cli(images):
    _, paths = images
    j = cli_json("zero-shot", "--model", FIXTURE, "--labels", ",".join(LABELS), *paths)
    py = mmkit.load(FIXTURE).zero_shot(paths, LABELS)
    assert py.shape == (3, 4)
    cli = np.array([r["probs"] for r in j], dtype=np.float64).astype(np.float32)
    assert np.array_equal(bits(py), bits(cli))
    assert all(r["probabilities"] == "sigmoid" for r in j)
    # Independent sigmoids (they need not sum to 1), as the PyTorch reference computes them.
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from safetensors_py import load
    want = load(os.path.join(FIXTURE, "expected.safetensors"))[0]["f32.probs"].numpy()
    worst = np.abs(py - want).max()
    print(f"  sigmoid probabilities vs PyTorch: max |diff| {worst:.2e}")
    assert worst <= 1e-3
    assert not np.allclose(py.sum(axis=1), 1.0)


def test_first_and_later_calls_are_bit_identical(images, clip_path, shapes_dir):
    """The engine's first call and the later ones (weights packed for oneDNN by then) give the same bits."""
    _, paths = images
    m = mmkit.load(FIXTURE)
    first = m.encode_image(paths, normalize=False)
    for _ in range(2):
        assert np.array_equal(bits(m.encode_image(paths, normalize=False)), bits(first))
    t_first = m.encode_text(TEXTS, normalize=False)
    assert np.array_equal(bits(m.encode_text(TEXTS, normalize=False)), bits(t_first))
    clip = mmkit.load(clip_path)
    shapes = sorted(os.path.join(shapes_dir, p) for p in os.listdir(shapes_dir) if p.endswith(".png"))
    c_first = clip.encode_image(shapes, normalize=False)
    assert np.array_equal(bits(clip.encode_image(shapes, normalize=False)), bits(c_first))
    ct_first = clip.encode_text(TEXTS, normalize=False)
    assert np.array_equal(bits(clip.encode_text(TEXTS, normalize=False)), bits(ct_first))


def test_fine_tuned_folder_loads_in_the_pytorch_siglip(work, images):
    torch = pytest.importorskip("torch")
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from safetensors_py import load
    from torch_siglip import SiglipModel
    _, paths = images
    pairs = work / "siglip_pairs.jsonl"
    with open(pairs, "w", encoding="utf-8") as f:
        for i, c in enumerate(["a red and green pattern", "a grey gradient", "random coloured noise"] * 2):
            f.write(json.dumps({"image": paths[i % 3], "caption": c}) + "\n")
    out = work / "siglip_ft"
    run_cli("train", "clip", "--init", FIXTURE, "--data", pairs, "--loss", "sigmoid", "--out", out, "--epochs", "1",
            "--batch", "3", "--warmup-steps", "0", "--lr", "0.001")
    with open(out / "config.json", encoding="utf-8") as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "siglip"
    sd, _ = load(str(out / "model.safetensors"))
    src, _ = load(os.path.join(FIXTURE, "model.safetensors"))
    assert sorted(sd) == sorted(src) and all(sd[k].shape == src[k].shape for k in sd)
    ref = SiglipModel(cfg["vision_config"], cfg["text_config"]).double().eval()
    ref.load_state_dict({k: v.double() for k, v in sd.items()}, strict=True)
    m = mmkit.load(str(out))
    pixels = m.preprocess(paths)
    ids = m.tokenize(TEXTS)
    img, txt = m.encode_image(pixels, normalize=False), m.encode_text(TEXTS, normalize=False)
    with torch.no_grad():
        want_img = ref.vision_model(torch.from_numpy(pixels).double()).numpy()
        want_txt = ref.text_model(torch.from_numpy(ids).long()).numpy()
    for name, got, want in (("image", img, want_img), ("text", txt, want_txt)):
        diff = np.abs(got - want)
        i = np.unravel_index(diff.argmax(), diff.shape)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        print(f"  fine-tuned {name} embeddings vs PyTorch: worst {diff[i]:.2e} at {i} "
              f"(got {got[i]:.6f}, want {want[i]:.6f}), lowest cosine {cos.min():.7f}")
        assert diff[i] <= 2e-5 and cos.min() >= 0.9999
