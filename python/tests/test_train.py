"""mmkit.train: the CLI's training run in-process (same options, defaults and files), history,
bad options, and Ctrl-C -> a checkpoint and KeyboardInterrupt."""
import hashlib
import json
import os
import signal
import threading
import time

import pytest

import mmkit
from conftest import run_cli

CLIP_OPTS = dict(batch=4, image_size=32, patch=8, bpe_merges=50, threads=2)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_train_clip_matches_the_cli_and_returns_the_history(cap_data, work):
    hist = mmkit.train("clip", data=cap_data, out=work / "py_run", epochs=2, **CLIP_OPTS)
    assert len(hist) == 2 and [h["epoch"] for h in hist] == [1, 2]
    with open(work / "py_run" / "history.json", encoding="utf-8") as f:
        assert json.load(f) == hist
    run_cli("train", "clip", "--data", cap_data, "--out", work / "cli_run", "--epochs", "2", "--batch", "4",
            "--image-size", "32", "--patch", "8", "--bpe-merges", "50", "--threads", "2")
    assert sha(work / "py_run" / "model.safetensors") == sha(work / "cli_run" / "model.safetensors")
    model = mmkit.load(work / "py_run")  # a run folder loads as its model
    assert model.encode_text("a red circle").shape[0] == 1


def test_bf16_precision_passes_through_and_matches_the_cli(cap_data, work):
    # precision="bf16" is `--precision bf16`: the same model bytes as the CLI's bf16 run, another
    # model than the fp32 run's, and the option stored with the run.
    mmkit.train("clip", data=cap_data, out=work / "py_bf16", epochs=1, precision="bf16", **CLIP_OPTS)
    run_cli("train", "clip", "--data", cap_data, "--out", work / "cli_bf16", "--epochs", "1", "--batch", "4",
            "--image-size", "32", "--patch", "8", "--bpe-merges", "50", "--threads", "2", "--precision", "bf16")
    mmkit.train("clip", data=cap_data, out=work / "py_fp32", epochs=1, **CLIP_OPTS)
    assert sha(work / "py_bf16" / "model.safetensors") == sha(work / "cli_bf16" / "model.safetensors")
    assert sha(work / "py_bf16" / "model.safetensors") != sha(work / "py_fp32" / "model.safetensors")
    with pytest.raises(ValueError, match="--precision"):
        mmkit.train("clip", data=cap_data, out=work / "bad_prec", precision="fp16", **CLIP_OPTS)


def test_progress_reaches_python_stderr(cap_data, work, capsys):
    # capsys: sys.stderr is a Python object, not descriptor 2 (as in a notebook).
    mmkit.train("clip", data=cap_data, out=work / "progress_run", epochs=1, **CLIP_OPTS)
    err = capsys.readouterr().err
    assert "epoch 1" in err, err[-500:]


def test_bad_options_raise(cap_data, work):
    with pytest.raises(ValueError, match="--no-such-option"):
        mmkit.train("clip", data=cap_data, out=work / "bad1", no_such_option=3)
    with pytest.raises(ValueError, match="kind"):
        mmkit.train("gpt", data=cap_data, out=work / "bad2")
    with pytest.raises(mmkit.Error, match="nope.jsonl"):
        mmkit.train("caption", data=work / "nope.jsonl", test_data=work / "nope2.jsonl", out=work / "bad3")


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(cap_data, work):
    out = work / "interrupted"

    def interrupt_after_first_epoch():
        deadline = time.monotonic() + 120
        while not os.path.exists(out / "history.json") and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=interrupt_after_first_epoch)
    t.start()
    with pytest.raises(KeyboardInterrupt, match="checkpoint saved"):
        mmkit.train("clip", data=cap_data, out=out, epochs=500, **CLIP_OPTS)
    t.join()
    assert os.path.exists(out / "checkpoint.safetensors") and os.path.exists(out / "model.safetensors")
    with open(out / "history.json", encoding="utf-8") as f:
        done = len(json.load(f))
    assert 1 <= done < 500
    hist = mmkit.train("clip", data=cap_data, out=out, resume=True, override=True, epochs=done + 1, threads=2)
    assert len(hist) == done + 1
