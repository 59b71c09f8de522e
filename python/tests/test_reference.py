"""The OpenAI-layout reference CLIP of ../shared/reference (real photographs: RGB, grayscale, JPEG,
RGBA, odd sizes) through the module: the CLI's bits, and the PyTorch reference within its tolerances.
Skipped where ../shared is absent."""
import json
import os

import numpy as np
import pytest

import mmkit
from conftest import SHARED, cli_json, run_cli

REF = os.path.join(SHARED, "reference")
MODEL = os.path.join(REF, "clip_tiny", "clip_tiny_f32.safetensors")
VOCAB = os.path.join(SHARED, "clip", "bpe_simple_vocab_16e6.txt.gz")

pytestmark = pytest.mark.skipif(not (os.path.exists(MODEL) and os.path.exists(VOCAB)),
                                reason="../shared/reference/clip_tiny or ../shared/clip vocabulary absent")


@pytest.fixture(scope="module")
def ref():
    with open(os.path.join(REF, "clip_tiny", "clip_tiny_f32.json"), encoding="utf-8") as f:
        return json.load(f)


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_reference_images_and_texts(ref, work):
    images = [os.path.join(REF, "inputs", name) for name in ref["images"]]
    out = work / "ref.npy"
    run_cli("embed", "--model", MODEL, "--vocab", VOCAB, "--images", os.path.join(REF, "inputs"), "--out", out, "--raw")
    with open(str(out) + ".paths.txt", encoding="utf-8") as f:
        order = [line.rstrip("\n") for line in f]
    cli = np.load(out)
    model = mmkit.load(MODEL, vocab=VOCAB)
    py = model.encode_image(order, normalize=False)
    assert np.array_equal(py.view(np.uint32), cli.view(np.uint32))
    rows = [order.index(p) for p in images]
    assert cosines(py[rows], ref["image_embeddings"]).min() >= 0.9999
    assert np.abs(py[rows] - np.array(ref["image_embeddings"], np.float32)).max() <= 1e-3

    texts = ref["texts"]
    assert np.array_equal(model.tokenize(texts), np.array(ref["token_ids"], np.int32))
    j = cli_json("embed", "--model", MODEL, "--vocab", VOCAB, "--raw", *sum((["--text", t] for t in texts), []))
    t = mmkit.load(MODEL, vocab=VOCAB).encode_text(texts, normalize=False)  # a first call, as the CLI's
    assert np.array_equal(t, np.array(j["text_embeddings"], np.float64).astype(np.float32))
    assert cosines(t, ref["text_embeddings"]).min() >= 0.9999


def test_reference_zero_shot(ref):
    images = [os.path.join(REF, "inputs", name) for name in ref["images"]]
    probs = mmkit.load(MODEL, vocab=VOCAB).zero_shot(images, ref["zeroshot_labels"], ["a photo of a {}."])
    assert np.abs(probs - np.array(ref["probs"], np.float32)).max() <= 1e-3
    assert (probs.argmax(1) == np.array(ref["probs"]).argmax(1)).all()
