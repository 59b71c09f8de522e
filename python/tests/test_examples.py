"""Each script of examples/python/ runs on the tiny models and data of the suite."""
import os
import subprocess
import sys

import mmkit
from conftest import ROOT, first_jsonl_image, first_jsonl_question

EXAMPLES = os.path.join(ROOT, "examples", "python")


def run_example(name, *args):
    env = dict(os.environ)
    # The mmkit the tests import (a venv install or the build folder).
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(mmkit.__file__)) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), *map(str, args)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, f"{name} exited {p.returncode}:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def test_zero_shot_folder(clip_path, shapes_dir, images):
    out = run_example("zero_shot_folder.py", clip_path, shapes_dir, "circle,square,stripe")
    lines = out.strip().splitlines()
    assert len(lines) == len(images)
    assert all(line.split("\t")[1] in ("circle", "square", "stripe") for line in lines)


def test_text_to_image_search(clip_path, shapes_dir, work):
    out = run_example("text_to_image_search.py", clip_path, shapes_dir, work / "ex_index", "a red circle", "-k", "2")
    assert "images indexed" in out and out.count(" 1  ") + out.count(" 2  ") >= 2


def test_finetune_clip(clip_path, cap_data, work):
    out = run_example("finetune_clip.py", clip_path, os.path.join(cap_data, "train.jsonl"), work / "ex_ft",
                      "--epochs", "1", "--batch", "4", "--threads", "2")
    assert "fine-tuned model:" in out
    assert os.path.exists(work / "ex_ft" / "model.safetensors")


def test_vqa_and_caption(vqa_path, caption_path, soc_dir):
    out = run_example("vqa_and_caption.py", "--vqa", vqa_path, "--caption", caption_path, first_jsonl_image(soc_dir),
                      first_jsonl_question(soc_dir))
    assert "A: " in out and "greedy: " in out and "beam 3: " in out
