"""Fixtures of the Python module's tests: the `mmkit` program beside the module (to compare with
the CLI bit for bit) and tiny seeded models and data made once per session with it.

Run: PYTHONPATH=build/python /usr/bin/python3 -m pytest -q python/tests
(MMKIT_BUILD_DIR=other/build for another build folder)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("MMKIT_BUILD_DIR", os.path.join(ROOT, "build"))
MMKIT = os.path.join(BUILD, "mmkit")
SHARED = os.path.join(ROOT, "..", "shared")

try:
    import mmkit  # noqa: F401
except ImportError:  # the module of the build folder, as with PYTHONPATH=build/python
    sys.path.insert(0, os.path.join(BUILD, "python"))
    import mmkit  # noqa: F401


def run_cli(*args, check=True):
    """Runs the `mmkit` program; returns (exit code, stdout, stderr)."""
    p = subprocess.run([MMKIT, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"mmkit {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p.returncode, p.stdout, p.stderr


def cli_json(*args):
    return json.loads(run_cli(*args, "--json")[1])


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    if not os.path.exists(MMKIT):
        pytest.skip(f"{MMKIT} not built (cmake --build build --target mmkit_cli)")
    return tmp_path_factory.mktemp("mmkit_py")


@pytest.fixture(scope="session")
def clip_path(work):
    """A tiny seeded CLIP with its own tokenizer stored in the file."""
    p = work / "clip.safetensors"
    run_cli("init-clip", "--preset", "tiny", "--seed", "3", "--out", p)
    return str(p)


@pytest.fixture(scope="session")
def shapes_dir(work):
    """Generated PNG images of coloured shapes (and one JPEG made from the first one)."""
    d = work / "shapes"
    run_cli("data", "shapes", "--n", "5", "--out", d)
    from PIL import Image
    first = sorted(p for p in os.listdir(d) if p.endswith(".png"))[0]
    Image.open(d / first).convert("RGB").save(d / "zz_photo.jpg", quality=90)
    return str(d)


@pytest.fixture(scope="session")
def images(shapes_dir):
    return sorted(os.path.join(shapes_dir, p) for p in os.listdir(shapes_dir) if p.endswith((".png", ".jpg")))


@pytest.fixture(scope="session")
def soc_dir(work):
    d = work / "soc"
    run_cli("data", "sort-of-clevr", "--out", d, "--train", "8", "--test", "2")
    return str(d)


@pytest.fixture(scope="session")
def vqa_path(work, soc_dir):
    """A VQA model after one training step (the run folder)."""
    out = work / "vqa"
    run_cli("train", "vqa", "--data", soc_dir, "--out", out, "--batch", "4", "--dim", "16", "--mlp-dim", "32",
            "--stem-dim", "8", "--max-steps", "1", "--threads", "2")
    return str(out)


@pytest.fixture(scope="session")
def cap_data(work):
    d = work / "cap"
    run_cli("data", "soc-captions", "--out", d, "--train", "8", "--test", "2")
    return str(d)


@pytest.fixture(scope="session")
def caption_path(work, cap_data):
    out = work / "captioner"
    run_cli("train", "caption", "--data", cap_data, "--out", out, "--batch", "4", "--dim", "16", "--depth", "1",
            "--dec-dim", "16", "--dec-depth", "1", "--mlp-dim", "32", "--dec-mlp-dim", "32", "--val-images", "2",
            "--max-steps", "2", "--threads", "2")
    return str(out)


def first_jsonl_image(data_dir, name="test.jsonl"):
    with open(os.path.join(data_dir, name), encoding="utf-8") as f:
        row = json.loads(f.readline())
    p = row["image"]
    return p if os.path.isabs(p) else os.path.join(data_dir, p)


def first_jsonl_question(data_dir, name="test.jsonl"):
    with open(os.path.join(data_dir, name), encoding="utf-8") as f:
        return json.loads(f.readline())["question"]
