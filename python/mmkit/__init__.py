"""mmkit: vision-language models (CLIP, ViT, VQA, captioning) in mmkit's C++ engine.

    import mmkit
    model = mmkit.load("clip.safetensors")             # the kind is read from the file
    img = model.encode_image(["cat.png", "dog.jpg"])    # float32 [2, E], L2-normalised
    txt = model.encode_text(["a photo of a cat."])      # float32 [1, E]
    probs = model.zero_shot(["cat.png"], ["cat", "dog"])  # float32 [1, 2]

Results are numpy arrays that own their memory. Compute runs without the GIL. Errors raise
FileNotFoundError (a missing file), ValueError / TypeError (a bad argument) or mmkit.Error (the
library's message, the same as the CLI's).
"""
import errno as _errno
import os as _os

# libgomp reads its wait policy when it is loaded, i.e. when the extension below is imported. Its
# default (spinning) makes compute ~20x slower whenever other processes share the cores, which is
# why the `mmkit` program sets passive too (docs/BENCHMARKS.md). A value the user set is kept.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "passive"

from . import _mmkit  # noqa: E402
from ._mmkit import (  # noqa: E402,F401
    CaptionModel,
    ClipModel,
    Error,
    Index,
    VitModel,
    VqaModel,
    get_num_threads,
    model_kind,
    set_num_threads,
    tokenize,
)
from ._stderr import stderr_to_python as _stderr_to_python  # noqa: E402
from ._train import train  # noqa: E402,F401

__version__ = _mmkit.__version__


def _build_index(model, images, out, *args, **options):
    with _stderr_to_python():  # the progress bar, in a notebook too
        return _build_index_engine(model, images, out, *args, **options)


_build_index_engine = Index.build
_build_index.__doc__ = Index.build.__doc__
Index.build = staticmethod(_build_index)

_LOADERS = {"clip": ClipModel, "vit": VitModel, "vqa": VqaModel, "caption": CaptionModel}


def load(path, kind=None, **options):
    """Load any model mmkit reads; the kind ('clip', 'vit', 'vqa', 'caption') is taken from the file.

    path: a .safetensors file, a run folder (from `mmkit train` / mmkit.train) or a Hugging Face
    folder. options go to the model's constructor: ClipModel(vocab=, preprocess=),
    VitModel(heads=, labels=, preprocess=).
    """
    path = _os.fspath(path)
    if not _os.path.exists(path):  # the library's message for a missing --model, errno and filename set
        raise FileNotFoundError(_errno.ENOENT, f"model {path} not found", path)
    k = kind or model_kind(path)
    if k not in _LOADERS:
        raise ValueError(f"kind must be one of {sorted(_LOADERS)}, got {k!r}")
    return _LOADERS[k](path, **options)


def load_index(path, model=None):
    """Open an image index folder (Index.open)."""
    return Index.open(path, model)


__all__ = [
    "CaptionModel", "ClipModel", "Error", "Index", "VitModel", "VqaModel", "get_num_threads", "load",
    "load_index", "model_kind", "set_num_threads", "tokenize", "train", "__version__",
]
