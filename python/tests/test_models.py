"""VQA answers, captions and ViT labels from Python against `mmkit vqa / caption / classify`."""
import os

import numpy as np
import pytest

import mmkit
from conftest import cli_json, first_jsonl_image, first_jsonl_question, run_cli


def f32(x):
    """A float the CLI printed as JSON, as the float32 it was."""
    return np.float32(np.float64(x))


def test_vqa_answer_matches_the_cli(vqa_path, soc_dir):
    model = mmkit.load(vqa_path)
    assert isinstance(model, mmkit.VqaModel) and mmkit.model_kind(vqa_path) == "vqa"
    image = first_jsonl_image(soc_dir)
    question = first_jsonl_question(soc_dir)
    j = cli_json("vqa", "--model", vqa_path, "--image", image, "--question", question, "--top-k", "3")
    a = model.answer(image, question, top_k=3)
    assert a["answer"] == j["answer"] and np.float32(a["probability"]) == f32(j["probability"])
    assert [t[0] for t in a["top"]] == [t["answer"] for t in j["top"]]
    assert [np.float32(t[1]) for t in a["top"]] == [f32(t["probability"]) for t in j["top"]]
    with_maps = model.answer(image, question, top_k=3, attention=True)
    assert with_maps["answer"] == a["answer"]
    assert len(with_maps["attention"]) >= 1
    label, grid = with_maps["attention"][0]
    assert isinstance(label, str) and grid.ndim == 2 and grid.shape[0] == grid.shape[1]
    assert abs(float(grid.sum()) - 1.0) < 1e-4


def test_vqa_bad_input(vqa_path, soc_dir, tmp_path):
    model = mmkit.load(vqa_path)
    image = first_jsonl_image(soc_dir)
    code, _, err = run_cli("vqa", "--model", vqa_path, "--image", image, "--question", "what is zorblax?", check=False)
    assert code == 1
    with pytest.raises(mmkit.Error) as e:
        model.answer(image, "what is zorblax?")
    assert str(e.value) in err and "zorblax" in str(e.value)
    with pytest.raises(FileNotFoundError):
        model.answer(str(tmp_path / "none.png"), first_jsonl_question(soc_dir))
    with pytest.raises(ValueError, match="top_k"):
        model.answer(image, first_jsonl_question(soc_dir), top_k=0)


def test_captions_match_the_cli_greedy_and_beam(caption_path, cap_data):
    model = mmkit.load(caption_path)
    assert isinstance(model, mmkit.CaptionModel)
    image = first_jsonl_image(cap_data)
    for beam in (1, 3):
        j = cli_json("caption", "--model", caption_path, "--beam", beam, "--max-tokens", 6, image)
        c = model.caption([image], beam=beam, max_tokens=6)
        assert len(c) == 1
        assert c[0]["caption"] == j[0]["caption"]
        assert c[0]["log_prob"] == j[0]["log_prob"] and c[0]["score"] == j[0]["score"]
        assert c[0]["finished"] == j[0]["finished"]
    att = model.caption(image, attention=True, max_tokens=5)[0]["attention"]
    assert att.dtype == np.float32 and att.ndim == 2 and att.shape[0] >= 1
    with pytest.raises(mmkit.Error, match="beam"):
        model.caption(image, beam=0)


@pytest.fixture(scope="session")
def vit_path(work):
    if not os.path.isdir("/usr/share/datasets/fashion-mnist"):
        pytest.skip("Fashion-MNIST (Debian dataset-fashion-mnist) absent: no ViT to train for the classify test")
    out = work / "vit"
    code, _, err = run_cli("train", "vit", "--out", out, "--epochs", "1", "--limit-train", "64", "--limit-test", "16",
                           "--batch", "32", "--dim", "16", "--depth", "1", "--heads", "2", "--mlp-dim", "32",
                           "--max-steps", "1", "--threads", "2", check=False)
    if code != 0:
        pytest.skip(f"no ViT to test (train vit failed, Fashion-MNIST missing?): {err.strip()[-200:]}")
    return str(out)


def test_classify_matches_the_cli(vit_path, images):
    model = mmkit.load(vit_path)
    assert isinstance(model, mmkit.VitModel) and mmkit.model_kind(vit_path) == "vit"
    j = cli_json("classify", "--model", vit_path, "--top-k", "3", *images)
    res = model.classify(images, top_k=3)
    assert len(res) == len(j)
    for r, c in zip(res, j):
        assert r["label"] == c["label"] and r["index"] == c["index"]
        assert np.array_equal(r["probs"], np.array(c["probs"], dtype=np.float64).astype(np.float32))
        assert np.array_equal(r["logits"], np.array(c["logits"], dtype=np.float64).astype(np.float32))
        assert [t[0] for t in r["top"]] == [t["label"] for t in c["top"]]
    with pytest.raises(ValueError, match="labels"):
        mmkit.load(vit_path, labels=["only", "two"])
    named = mmkit.load(vit_path, labels=[f"class {k}" for k in range(model.num_classes)])
    assert named.classify(images[0])[0]["label"].startswith("class ")


def test_load_rejects_a_non_model(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(mmkit.Error):
        mmkit.load(junk)
    with pytest.raises(ValueError, match="kind"):
        mmkit.load(junk, kind="nonsense")
