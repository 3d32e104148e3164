"""Test-part predictions of stored leave-one-source-out heads, recomputed from the images.

``predictions.npz`` of a fold (its test outputs) stays out of git; the heads' weights are kept.
The study rule (``training/series.py``) needs the lgg folds' slice probabilities, so this
recomputes them: each test image through the app's reader and ``model_input`` (via
:func:`training.features.item_input`), the frozen backbone, then the fold's head at its fitted
temperature. Resumable by fold: a fold whose ``predictions.npz`` exists is skipped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from training import catalogue
from training import features as feats
from training import multitask as mt
from training import split as splits


def predict_folds(run_dir: str, catalogue_path: str, weights: str, folds: list[str]) -> None:
    """Write ``run_dir/<fold>/predictions.npz`` (``index``, ``probabilities``) for each fold in ``folds``."""
    doc = splits.load(catalogue_path)
    backbone = None
    for name in folds:
        folder = Path(run_dir) / name
        if (folder / "predictions.npz").exists():
            print(f"[{name}] predictions exist", flush=True)
            continue
        if backbone is None:
            backbone = feats.backbone(weights)
        test = catalogue.fold(doc, None if name == "in-distribution" else name)["test"]
        t0 = time.time()
        maps = np.empty((len(test), feats.GRID, feats.GRID, feats.CHANNELS), np.float32)
        for start in range(0, len(test), feats.BATCH):
            idx = test[start:start + feats.BATCH]
            batch = np.stack([feats.item_input(doc, doc["items"][int(i)])[1].pixels for i in idx]).astype(np.float32)
            maps[start:start + len(idx)] = backbone.predict_on_batch(batch)
            print(f"[{name}] {start + len(idx)}/{len(test)} images ({time.time() - t0:.0f} s)", flush=True)
        head = mt.build_head(*mt.labels_of(run_dir))
        head.load_weights(folder / "head.weights.h5")
        temperature = json.loads((folder / "metrics.json").read_text())["temperature"]
        pred = mt.predict(head, maps, temperature)
        np.savez_compressed(folder / "predictions.npz", index=test, probabilities=pred["probabilities"])
        print(f"[{name}] written ({time.time() - t0:.0f} s)", flush=True)
