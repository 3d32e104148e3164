"""How much the answer depends on the way a scan is turned: P(tumour) of the shipped ONNX model on a
fold's test images as read, mirrored left-right, upside down and turned by 90/180/270 degrees, each
through the app's own reader and preprocessing (the transform is applied to the model image, before
the brain crop, as a differently oriented file would give it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gui.core.engine.classifier import Classifier
from gui.core.engine.model import load_model
from gui.core.readers import open_scan
from training import catalogue
from training import split as splits

TRANSFORMS = {"mirror left-right": lambda a: a[:, ::-1], "upside down": lambda a: a[::-1],
              "turned 90": lambda a: np.rot90(a, 1), "turned 180": lambda a: np.rot90(a, 2),
              "turned 270": lambda a: np.rot90(a, 3)}


def measure(model_path: str, catalogue_path: str, fold: str = "in-distribution", batch: int = 32,
            items: np.ndarray | None = None) -> dict:
    """Per transform: mean and 95th percentile of |dP(tumour)| against the image as read, and the share
    of answers that flip at the decision threshold; on the fold's test part, or on the catalogue
    ``items`` given (the int8 check measures its own test sample)."""
    doc = splits.load(catalogue_path)
    idx = catalogue.fold(doc, None if fold == "in-distribution" else fold)["test"] if items is None else items
    classifier = Classifier([load_model(model_path)])
    names = ["as read", *TRANSFORMS]
    p = {name: [] for name in names}
    for start in range(0, len(idx), batch):
        fitted = {name: [] for name in names}
        for i in idx[start:start + batch]:
            rec = doc["items"][int(i)]
            image, scale = open_scan(Path(doc["datasets"][rec["dataset"]]) / rec["path"]).model_view(
                need=classifier.need)
            fitted["as read"].append(classifier.fit(image, scale))
            for name, turn in TRANSFORMS.items():
                fitted[name].append(classifier.fit(np.ascontiguousarray(turn(image)), scale))
        for name in names:
            results = classifier.classify_batch(fitted[name], [""] * len(fitted[name]))
            p[name].extend(r.tumor_probability for r in results)
    base = np.array(p["as read"])
    t = classifier.detector.threshold
    out = {"fold": fold, "n": int(len(base)), "model": model_path}
    for name in TRANSFORMS:
        d = np.abs(np.array(p[name]) - base)
        out[name] = {"mean_abs_dp": float(d.mean()), "p95_abs_dp": float(np.percentile(d, 95)),
                     "answers_flipped": float(np.mean((np.array(p[name]) >= t) != (base >= t)))}
    out["all transforms"] = {"mean_abs_dp": float(np.mean([out[n]["mean_abs_dp"] for n in TRANSFORMS]))}
    return out
