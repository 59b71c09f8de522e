"""CLIP from Python against `mmkit embed / tokenize / zero-shot` on the same files: bit for bit.

The engine reads a layer's weights in place at its first call and packs them for oneDNN from the
second call on; both give the same bits (infer/packed_linear.h pads calls of fewer than 16 rows), so
a one-shot CLI run, a model's first call and its later calls agree; python/tests/test_siglip.py
checks repeated calls bit for bit."""
import errno
import os

import numpy as np
import pytest

import mmkit
from conftest import cli_json, run_cli


@pytest.fixture(scope="module")
def model(clip_path):
    return mmkit.load(clip_path)


def npy_of_folder(clip_path, folder, out, *flags):
    """`mmkit embed --images FOLDER --out OUT.npy`: the embeddings and the image order."""
    run_cli("embed", "--model", clip_path, "--images", folder, "--out", out, *flags)
    with open(str(out) + ".paths.txt", encoding="utf-8") as f:
        paths = [line.rstrip("\n") for line in f]
    return np.load(out), paths


def test_load_reads_the_kind(model, clip_path):
    assert isinstance(model, mmkit.ClipModel)
    assert mmkit.model_kind(clip_path) == "clip"
    assert model.embed_dim == 64 and model.image_resolution == 64 and model.context_length == 77
    assert isinstance(mmkit.__version__, str) and mmkit.__version__.count(".") == 2


@pytest.mark.parametrize("raw", [False, True])
def test_image_embeddings_match_the_cli_bit_for_bit(clip_path, shapes_dir, work, raw):
    cli, paths = npy_of_folder(clip_path, shapes_dir, work / f"cli_{raw}.npy", *(["--raw"] if raw else []))
    model = mmkit.load(clip_path)
    py = model.encode_image(paths, normalize=not raw)
    assert py.dtype == np.float32 and py.shape == cli.shape == (len(paths), 64)
    assert np.array_equal(py.view(np.uint32), cli.view(np.uint32))
    # Later calls run on packed weights: the same bits as the first call's.
    again = model.encode_image(paths, normalize=not raw)
    assert np.array_equal(again.view(np.uint32), py.view(np.uint32))
    norms = np.linalg.norm(py, axis=1)
    if raw:
        assert not np.allclose(norms, 1.0)
    else:
        assert np.allclose(norms, 1.0, atol=1e-5)


def test_text_embeddings_and_token_ids_match_the_cli(clip_path):
    texts = ["a red circle", "a photo of a blue square on a light background.", "Grüße, ünïcödé & <html>"]
    j = cli_json("embed", "--model", clip_path, *sum((["--text", t] for t in texts), []))
    model = mmkit.load(clip_path)
    py = model.encode_text(texts)
    cli = np.array(j["text_embeddings"], dtype=np.float64).astype(np.float32)
    assert np.array_equal(py.view(np.uint32), cli.view(np.uint32))
    assert np.array_equal(model.tokenize(texts), np.array(j["token_ids"], dtype=np.int32))
    tk = cli_json("tokenize", "--model", clip_path, *texts)
    assert np.array_equal(mmkit.tokenize(texts, model=clip_path), np.array([r["token_ids"] for r in tk], dtype=np.int32))
    raw = mmkit.load(clip_path).encode_text(texts, normalize=False)
    j_raw = cli_json("embed", "--model", clip_path, "--raw", *sum((["--text", t] for t in texts), []))
    assert np.array_equal(raw, np.array(j_raw["text_embeddings"], dtype=np.float64).astype(np.float32))


def test_openai_vocabulary_tokenize_matches_the_cli():
    vocab = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "clip", "bpe_simple_vocab_16e6.txt.gz")
    if not os.path.exists(vocab):
        pytest.skip("../shared/clip/bpe_simple_vocab_16e6.txt.gz absent (the OpenAI vocabulary case needs it)")
    texts = ["a diagram", "A photo of a cat!", "naïve café 123"]
    tk = cli_json("tokenize", "--vocab", vocab, *texts)
    ids = mmkit.tokenize(texts, vocab=vocab)
    assert ids.shape == (3, 77)
    assert np.array_equal(ids, np.array([r["token_ids"] for r in tk], dtype=np.int32))


def test_zero_shot_matches_the_cli(clip_path, images):
    labels = ["circle", "square", "stripe"]
    templates = ["a photo of a {}.", "a drawing of a {}"]
    j = cli_json("zero-shot", "--model", clip_path, "--labels", ",".join(labels),
                 *sum((["--template", t] for t in templates), []), *images)
    probs = mmkit.load(clip_path).zero_shot(images, labels, templates)
    assert probs.shape == (len(images), 3) and probs.dtype == np.float32
    cli = np.array([r["probs"] for r in j], dtype=np.float64).astype(np.float32)
    assert np.array_equal(probs, cli)
    assert [labels[i] for i in probs.argmax(1)] == [r["label"] for r in j]
    default = cli_json("zero-shot", "--model", clip_path, "--labels", ",".join(labels), *images)
    assert np.array_equal(mmkit.load(clip_path).zero_shot(images, labels),
                          np.array([r["probs"] for r in default], dtype=np.float64).astype(np.float32))


def test_every_image_type_gives_the_cli_embeddings(clip_path, shapes_dir, work, images):
    from PIL import Image
    cli, paths = npy_of_folder(clip_path, shapes_dir, work / "cli_types.npy")
    assert paths == images
    pil = [Image.open(p) for p in images]
    arrays = [np.asarray(im) for im in pil]
    pixels = mmkit.load(clip_path).preprocess(images)
    assert pixels.shape == (len(images), 3, 64, 64) and pixels.dtype == np.float32
    for kind, inputs in (("paths", images), ("PIL", pil), ("uint8 arrays", arrays), ("float32 pixels", pixels)):
        got = mmkit.load(clip_path).encode_image(inputs)  # a fresh model: the CLI's first call
        assert np.array_equal(got.view(np.uint32), cli.view(np.uint32)), kind


def test_every_image_type_gives_the_same_embedding(model, images):
    from PIL import Image
    model.encode_image(images)  # the packed path from here on
    by_path = model.encode_image(images)
    pil = [Image.open(p) for p in images]
    arrays = [np.asarray(im) for im in pil]
    assert np.array_equal(model.encode_image(pil), by_path)
    assert np.array_equal(model.encode_image(arrays), by_path)
    pixels = model.preprocess(images)
    assert pixels.shape == (len(images), 3, 64, 64) and pixels.dtype == np.float32
    assert np.array_equal(model.encode_image(pixels), by_path)
    # A single image (a batch of one: its own GEMM shapes, so compared with a batch of one), os.PathLike,
    # a non-contiguous array and a palette PIL image.
    import pathlib
    one = model.encode_image(images[0])
    assert one.shape == (1, 64)
    assert np.array_equal(model.encode_image(pathlib.Path(images[0])), one)
    wide = np.zeros((arrays[0].shape[0], arrays[0].shape[1] * 2, arrays[0].shape[2]), np.uint8)
    wide[:, ::2] = arrays[0]
    assert np.array_equal(model.encode_image(wide[:, ::2]), one)
    assert np.array_equal(model.encode_image(np.asfortranarray(pixels)), by_path)
    assert model.encode_image(pil[0].convert("P")).shape == (1, 64)


def test_results_own_their_memory(clip_path, images):
    import gc
    model = mmkit.load(clip_path)
    a = model.encode_image(images[:2])
    b = model.encode_image(images[:2])
    # Handed over without a copy: the array's base is the capsule that owns the engine's output buffer.
    assert type(a.base).__name__ == "PyCapsule" and a.flags.writeable and a.flags.c_contiguous
    assert a.base is not b.base
    kept = b.copy()
    a += 1  # writable, and not shared with the next result
    assert not np.array_equal(a, b)
    del model
    gc.collect()
    model2 = mmkit.load(clip_path)
    model2.encode_image(images)  # new buffers allocated after the first model is gone
    assert np.array_equal(b, kept)


def test_missing_files_raise_file_not_found(model, tmp_path, clip_path):
    with pytest.raises(FileNotFoundError) as e:
        model.encode_image([str(tmp_path / "nope.png")])
    assert e.value.filename == str(tmp_path / "nope.png") and e.value.errno == errno.ENOENT
    assert "cannot open (No such file or directory)" in str(e.value)  # the library's (the CLI's) message
    with pytest.raises(FileNotFoundError, match="not found") as e:
        mmkit.load(tmp_path / "missing.safetensors")
    assert e.value.filename == str(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError):
        mmkit.ClipModel(str(tmp_path / "missing.safetensors"))


def test_corrupt_image_raises_mmkit_error_with_the_cli_message(model, tmp_path, clip_path):
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(mmkit.Error) as e:
        model.encode_image([str(bad)])
    code, _, err = run_cli("zero-shot", "--model", clip_path, "--labels", "a,b", bad, check=False)
    assert code == 1
    assert str(e.value) in err and "corrupt.png" in str(e.value)
    gif = tmp_path / "x.gif"
    gif.write_bytes(b"GIF89a" + b"\x00" * 20)
    with pytest.raises(mmkit.Error, match="GIF"):
        model.encode_image(str(gif))


def test_wrong_arrays_raise_value_error(model):
    with pytest.raises(ValueError, match="uint8"):
        model.encode_image(np.zeros((8, 8, 3), np.float64))
    with pytest.raises(ValueError, match=r"got shape \(8, 8, 2\)"):
        model.encode_image(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match=r"float32 \[N, 3, 64, 64\].*got shape \(1, 3, 32, 32\)"):
        model.encode_image(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="got dtype float64"):
        model.encode_image(np.zeros((1, 3, 64, 64), np.float64))
    with pytest.raises(ValueError, match="empty"):
        model.encode_image([])
    with pytest.raises(TypeError, match="expected a path, a PIL image or a uint8 numpy array"):
        model.encode_image([3])


def test_bad_text_raises(model):
    with pytest.raises(mmkit.Error, match="not valid UTF-8"):
        model.encode_text([b"caf\xe9"])
    with pytest.raises(ValueError, match="not valid Unicode"):
        model.encode_text(["\ud800 lone surrogate"])
    with pytest.raises(TypeError):
        model.encode_text([1, 2])
    with pytest.raises(mmkit.Error, match="placeholder"):
        model.zero_shot([np.zeros((8, 8, 3), np.uint8)], ["a", "b"], ["no placeholder"])
    assert model.encode_text(["caf\u00e9"]).shape == (1, 64)  # still usable after the errors
