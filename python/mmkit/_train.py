"""mmkit.train: `mmkit train <kind>` run in this process, so its options, defaults, checks and
--resume rules are the command line's (docs/CLI.md, `mmkit train <kind> --help`)."""
import json
import os
import signal

from . import _mmkit
from ._stderr import stderr_to_python

KINDS = ("vit", "clip", "vqa", "caption")


def _flags(options):
    """{'epochs': 2, 'no_augment': True, 'template': ['a {}.', 'the {}.']} -> ['--epochs', '2', ...]."""
    args = []
    for key, value in options.items():
        if value is None or value is False:
            continue  # an unset option or a flag left off: the CLI's default
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:  # a repeatable option: one value per occurrence
                args += [flag, os.fspath(v) if hasattr(v, "__fspath__") else str(v)]
        else:
            args += [flag, os.fspath(value) if hasattr(value, "__fspath__") else str(value)]
    return args


def train(kind, data=None, out=None, **options):
    """Train a model as `mmkit train KIND --data DATA --out OUT --option value ...` does.

    kind: 'vit', 'clip', 'vqa' or 'caption'. Options are the command's flags with '_' for '-'
    (epochs=2, lr=1e-3, batch=64, limit_train=1000, resume=True, no_augment=True, ...), with the
    CLI's defaults when left out. Progress goes to stderr as with the CLI: the terminal, or (where
    sys.stderr is not the process's stderr, as in a notebook) sys.stderr.

    Returns the run's history: one dict per epoch (the run folder's history.json). Ctrl-C stops the
    run cleanly: the checkpoint is saved in `out` (continue with resume=True) and KeyboardInterrupt
    is raised. Bad options raise ValueError naming the flag; bad data raise mmkit.Error.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if out is None:
        raise ValueError("out= is required: the run folder (checkpoints, model.safetensors, history)")
    args = ["train", kind] + _flags({"data": data, "out": out, **options})
    with stderr_to_python():
        code = _mmkit.run_cli(args)
    if code >= 128:
        name = signal.Signals(code - 128).name if code - 128 in signal.Signals._value2member_map_ else str(code - 128)
        raise KeyboardInterrupt(f"training stopped by {name}; checkpoint saved in {os.fspath(out)} "
                                f"(mmkit.train(..., resume=True) continues it)")
    if code != 0:
        raise _mmkit.Error(f"mmkit train {kind} exited with code {code}")
    path = os.path.join(os.fspath(out), "history.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        history = json.load(f)
    return history if isinstance(history, list) else history.get("epochs", history)
