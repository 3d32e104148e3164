"""Score exported ONNX models, through the app's own engine, on a catalogue fold's test images.

The figures are what a user of the app would get: the same reader, the same model input, the
same ONNX Runtime session, the same decision rule. Used to compare any shipped file (the old
two-model pair included) with the leave-one-source-out figures of the training runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gui.core.engine import stream
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import load_model
from training import catalogue
from training import split as splits
from training.metrics import classification_metrics


def score_models(model_paths: list[str], catalogue_path: str, fold: str) -> dict:
    """Detection metrics (pooled, per source and per sequence) of the models used together, on ``fold``'s test part."""
    doc = splits.load(catalogue_path)
    idx = catalogue.fold(doc, None if fold == "in-distribution" else fold)["test"]
    items = [doc["items"][i] for i in idx]
    files = [Path(doc["datasets"][r["dataset"]]) / r["path"] for r in items]
    classifier = Classifier([load_model(p) for p in model_paths])
    p_tumor = np.array([r.tumor_probability for r in stream.classify_files(files, classifier)], np.float64)
    y = np.array([r["label"] == "tumor" for r in items], np.int64)
    probs = np.stack([1 - p_tumor, p_tumor], axis=1)
    t = classifier.detector.threshold  # the app's decision: sensitivity as a user meets it, not at 0.5
    out = classification_metrics(y, probs, ["no_tumor", "tumor"], ["no_tumor"], t)
    sources = np.array([r["source"] for r in items])
    out["by_source"] = {s: classification_metrics(y[sources == s], probs[sources == s], ["no_tumor", "tumor"],
                                                  ["no_tumor"], t)["tumor_detection"] for s in sorted(set(sources))}
    seqs = np.array([r.get("sequence") or "unknown" for r in items])
    out["by_sequence"] = {q: classification_metrics(y[seqs == q], probs[seqs == q], ["no_tumor", "tumor"],
                                                    ["no_tumor"], t)["tumor_detection"] for q in sorted(set(seqs))}
    out["models"] = [str(p) for p in model_paths]
    out["fold"] = fold
    return out
