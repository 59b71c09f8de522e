"""The image index from Python against `mmkit index build` / `mmkit search`."""
import numpy as np
import pytest

import mmkit
from conftest import cli_json, run_cli


def test_build_search_and_reopen(clip_path, shapes_dir, images, work):
    model = mmkit.load(clip_path)
    out = work / "py_index"
    r = mmkit.Index.build(model, shapes_dir, out, progress=False)
    assert r["count"] == len(images) and r["complete"] and r["kind"] == "flat"
    again = mmkit.Index.build(model, shapes_dir, out, progress=False)  # resumable: nothing new
    assert again["embedded"] == 0 and again["already_done"] == len(images)

    idx = mmkit.load_index(out)  # the model recorded in the index, loaded on the first text query
    assert len(idx) == len(images) and idx.dim == 64
    hits = idx.search(text="a red circle", k=3)
    j = cli_json("search", "--index", out, "--top-k", "3", "a red circle")
    assert [h["path"] for h in hits] == [h["path"] for h in j["results"]]
    assert [np.float32(h["score"]) for h in hits] == [np.float32(np.float64(h["score"])) for h in j["results"]]

    by_image = idx.search(image=images[1], k=1)
    assert by_image[0]["path"] == images[1] and by_image[0]["score"] > 0.999
    vec = model.encode_image(images[2])[0]
    assert idx.search(vector=vec, k=1)[0]["path"] == images[2]
    assert np.allclose(idx.embedding(by_image[0]["id"]), model.encode_image(images[1])[0], atol=1e-6)


def test_index_built_by_the_cli_opens_and_bad_queries_raise(clip_path, shapes_dir, work, tmp_path):
    out = work / "cli_index"
    run_cli("index", "build", "--model", clip_path, "--images", shapes_dir, "--out", out)
    idx = mmkit.Index.open(out, mmkit.load(clip_path))
    assert len(idx.search(text="a blue square", k=2)) == 2
    with pytest.raises(ValueError, match="exactly one"):
        idx.search(text="x", vector=np.zeros(64, np.float32))
    with pytest.raises(ValueError, match="64 floats"):
        idx.search(vector=np.zeros(63, np.float32))
    with pytest.raises(FileNotFoundError):
        mmkit.Index.open(tmp_path / "no_index")
    other = tmp_path / "other.safetensors"
    run_cli("init-clip", "--preset", "tiny", "--seed", "9", "--out", other)
    with pytest.raises(mmkit.Error):  # another model than the index's: refused as `mmkit search` does
        mmkit.Index.open(out, mmkit.load(other))
