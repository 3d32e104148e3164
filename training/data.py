"""Find the images of class-folder datasets, map their folders to task labels, load them.

A dataset is a folder of class folders (``br35h/yes``), optionally below split folders
(``brain-tumor-mri/Training/glioma``). Every image is read through ``gui.core.imaging`` (the
app's own reader) and fitted to the model input the same way the app fits it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from gui.core.engine.preprocess import model_input, model_need
from gui.core.readers import is_image_file, open_scan

IMAGE_SIZE = 224

#: Folder name -> label, per task. A folder missing from a task's map is not used by it.
TASK_LABELS: dict[str, dict[str, str]] = {
    "binary": {
        "no": "no_tumor",
        "notumor": "no_tumor",
        "yes": "tumor",
        "glioma": "tumor",
        "meningioma": "tumor",
        "pituitary": "tumor",
    },
    "tumor-type": {
        "glioma": "glioma",
        "meningioma": "meningioma",
        "notumor": "no_tumor",
        "pituitary": "pituitary",
    },
}
#: Labels in model output order, per task.
TASK_CLASSES: dict[str, list[str]] = {
    "binary": ["no_tumor", "tumor"],
    "tumor-type": ["glioma", "meningioma", "no_tumor", "pituitary"],
}
#: Labels that mean "no tumour", recorded in every model card.
NO_TUMOR_LABELS = ["no_tumor"]


@dataclass(frozen=True)
class Item:
    """One image file of a dataset: where it is and what its folders say it shows."""

    dataset: str  # name of the dataset folder, e.g. "br35h"
    path: str  # relative to the dataset folder, POSIX separators
    folder_class: str  # class folder name, e.g. "glioma"
    official_split: str  # "Training", "Testing" or "" when the dataset has none

    def file(self, roots: dict[str, str | Path]) -> Path:
        return Path(roots[self.dataset]) / self.path


def discover(data_dir: str | Path) -> list[Item]:
    """List the image files of one dataset folder in a stable (sorted) order."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    known = set(TASK_LABELS["binary"]) | set(TASK_LABELS["tumor-type"])
    items = []
    for file in sorted(root.rglob("*")):
        if not file.is_file() or not is_image_file(file):
            continue
        rel = file.relative_to(root)
        parts = rel.parts
        if len(parts) < 2 or parts[-2] not in known:
            continue
        split = parts[-3] if len(parts) >= 3 else ""
        items.append(Item(root.name, rel.as_posix(), parts[-2], split))
    return items


def discover_all(data_dirs: Sequence[str | Path]) -> tuple[list[Item], dict[str, str]]:
    """Items of several datasets and the root folder of each dataset name."""
    items: list[Item] = []
    roots: dict[str, str] = {}
    for d in data_dirs:
        name = Path(d).name
        if name in roots:
            raise ValueError(f"two datasets are named {name!r}")
        roots[name] = str(d)
        items.extend(discover(d))
    return items, roots


def load_model_image(path: Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """The model input for one file: the app's reader (a large JPEG decoded reduced, as the app does
    for a model of this size), then the app's square fit."""
    image, _scale = open_scan(path).model_view(need=model_need(2 * size))
    return model_input(image, size, "pad-resize").pixels


def load_images(files: Iterable[Path], size: int, cache_dir: Path | None = None) -> np.ndarray:
    """Decode files into a ``uint8 [N, size, size, 3]`` array, cached on disk by content of the list.

    Decoding ~10,000 JPEGs takes tens of seconds; every training epoch and every
    evaluation reuses the cache instead. Unreadable files raise: a split must only
    hold files the reader accepts (``split`` drops and reports the others).
    """
    files = [Path(f) for f in files]
    cache = None
    if cache_dir is not None:
        key = hashlib.sha256(json.dumps([str(f) for f in files] + [size]).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"images-{size}-{key}.npy"
        if cache.exists():
            return np.load(cache, mmap_mode="r")
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        out[i] = load_model_image(f, size)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(cache)
    return out

