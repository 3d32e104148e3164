"""The model card: everything a user (and the app) needs to know about an exported model."""

from __future__ import annotations

import datetime as dt

from gui.model import DISCLAIMER
from training.metrics import DECISION_THRESHOLD

LIMITATIONS = (
    "In the public training data, source and label are entangled: the Brain Tumor MRI Dataset's no-tumour "
    "images are Br35H's, its tumour images come from other collections. A model trained on one dataset and "
    "tested on the other detected far fewer tumours than the in-source test suggests (training/RESULTS.md, "
    "cross-source rows), and the per-source figures below differ. Expect lower accuracy on scans from other "
    "hospitals, scanners or sequences; the out-of-distribution warning catches only inputs far from the "
    "training images."
)
INTENDED_USE = (
    "Research and teaching: flags 2-D brain MRI slices (T1/T2/FLAIR, axial, coronal or sagittal, as in the "
    "public Kaggle datasets it was trained on) that may show a tumour, with a heatmap of the regions that drove "
    "the answer. Not validated on any hospital's scanners, not for screening, triage or diagnosis."
)


def build_card(name: str, version: str, config: dict, metrics: dict, verification: dict, ood: dict,
               source_run: str) -> dict:
    """Assemble the JSON model card stored in the ONNX file."""
    test = metrics.get("test", {})
    external = {k: _summary(v) for k, v in metrics.items() if k != "test"}
    return {
        "name": name,
        "version": version,
        "task": config["task"],
        "labels": config["classes"],
        "no_tumor_labels": config["no_tumor_labels"],
        "input": {"name": "image", "size": config["input_size"], "layout": "NHWC", "dtype": "float32",
                  "range": "RGB 0-255; images are padded to a square with black, then resized (bilinear)"},
        "outputs": {"probabilities": "calibrated class probabilities [N, C]",
                    "cam": "class activation map of every class [N, h, w, C] (features x classifier kernel)",
                    "embedding": "globally pooled features [N, F]"},
        "architecture": config["arch"],
        "parameters": config["parameters"],
        "training": {
            "datasets": config["datasets"],
            "counts": config["split_counts"],
            "split_method": config["split_method"],
            "epochs_per_phase": config.get("epochs_per_phase"),
            "train_minutes_on_2_core_cpu": round(config["train_seconds"] / 60, 1),
            "run": source_run,
        },
        "test_metrics": _summary(test) if test else None,
        "other_evaluations": external,
        "decision_threshold": DECISION_THRESHOLD,
        "decision_rule": "tumour if 1 - P(no-tumour labels) >= decision_threshold",
        "calibration": {"method": "temperature scaling fitted on the validation part", "temperature": config["temperature"]},
        "ood": ood,
        "verification": verification,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "intended_use": INTENDED_USE,
        "limitations": LIMITATIONS,
        "disclaimer": DISCLAIMER,
    }


def _summary(m: dict) -> dict:
    d = m["tumor_detection"]
    return {
        "split": f"{m['split_file']}:{m['part']}",
        "n": m["n"],
        "accuracy": m["accuracy"],
        "sensitivity": d["sensitivity"],
        "specificity": d["specificity"],
        "precision": d["precision"],
        "f1": d["f1"],
        "roc_auc": d["roc_auc"],
        "ece": m["ece"],
        "per_class": m["per_class"],
        "by_dataset": {d: {"n": x["n"], "accuracy": x["accuracy"],
                           "sensitivity": x["tumor_detection"]["sensitivity"],
                           "specificity": x["tumor_detection"]["specificity"]}
                       for d, x in m.get("by_dataset", {}).items()},
    }
