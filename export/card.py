"""The model card: everything a user (and the app) needs to know about an exported model."""

from __future__ import annotations

import datetime as dt

import numpy as np

from gui.core.engine.contract import DISCLAIMER, SEQUENCES
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
        **_decision_and_provenance("tumour if 1 - P(no-tumour labels) >= decision_threshold", config["temperature"],
                                   ood, verification, INTENDED_USE, LIMITATIONS),
    }


def _decision_and_provenance(rule: str, temperature: float, ood: dict, verification: dict, intended_use: str,
                             limitations: str, threshold: float = DECISION_THRESHOLD,
                             calibration: dict | None = None) -> dict:
    """The fields every card ends with: decision rule, calibration, OOD statistics, verification,
    date, intended use, limitations and the disclaimer."""
    return {
        "decision_threshold": threshold,
        "decision_rule": rule,
        "calibration": calibration or {"method": "temperature scaling fitted on the validation part",
                                       "temperature": temperature},
        "ood": ood,
        "verification": verification,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "intended_use": intended_use,
        "limitations": limitations,
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


def multitask_limitations(type_labels: list[str], grid: int, sources: list[str]) -> str:
    """What the card says a multi-task model cannot do, from what it was trained with: its type labels
    (a model with "other" knows tumours beyond the three it names), its map's grid and its collections."""
    types = ("Tumour-type answers name glioma, meningioma or pituitary tumour, or \"other tumour\" (schwannoma, "
             "neurocytoma, metastasis, papilloma...); tumours of kinds never trained on may get any of them."
             if "other" in type_labels else "Tumour-type answers cover glioma, meningioma and pituitary tumours only.")
    return (
        "Cross-source figures (leave-one-source-out: trained without a collection, tested on it) are the ones to "
        "expect on scans from elsewhere; they are lower than the in-distribution figures, and a hospital or "
        f"sequence unlike all {len(sources)} training collections may do worse still. {types} The heatmap is "
        f"P(tumour) on a {grid}x{grid} grid over the cropped head, trained on expert masks of gliomas and T1+C "
        "tumours: a coarse pointer, not a segmentation."
    )


MULTITASK_INTENDED_USE = (
    "Research and teaching: flags 2-D brain MRI slices (T1, T1+C, T2, FLAIR; axial, coronal or sagittal) that may "
    "show a tumour, names the most likely tumour type, and marks where the tumour probably is. Not "
    "validated on any hospital's scanners, not for screening, triage or diagnosis."
)


def _fold_summary(m: dict) -> dict:
    d = m["tumor_detection"]
    heat = m.get("heatmap", {}).get("heatmap")
    return {
        "n": m["n"], "accuracy": d["accuracy"], "sensitivity": d["sensitivity"], "specificity": d["specificity"],
        "roc_auc": d["roc_auc"], "ece": m["ece"], "type_accuracy": (m.get("type") or {}).get("accuracy"),
        "pointing_game": heat["pointing_game"] if heat else None,
        "heat_mass_inside_mask": heat["mass_inside_mask"] if heat else None,
        "by_dataset": m.get("by_source", {}),
    }


def _caution_entry(caution: dict) -> dict:
    return {
        "band_half_width": caution["band_half_width"],
        **({"heat_level": caution["heat_level"]} if "heat_level" in caution else {}),
        "rule": caution["rule"] + " (the app says 'low confidence' or 'the models disagree')",
        "chosen_on": "the leave-one-source-out test parts, pooled with equal weight (training/caution.py)",
        "target_unflagged_accuracy": caution["target_unflagged_accuracy"],
        "measured": {f: {"flagged_share": v["flagged_share"], "accuracy_unflagged": v["accuracy_unflagged"],
                         "accuracy_flagged": v["accuracy_flagged"], "error_auroc_margin": v["error_auroc"]["margin"]}
                     for f, v in caution["folds"].items()},
    }


def input_rule() -> dict:
    """How the app makes the input from a file, in words another tool can reproduce: the intensity
    rule (stored values to grey levels, once per study) and the range after the preprocessing."""
    from gui.core.readers.levels import INTENSITY_DESCRIPTION, INTENSITY_RULE

    return {"intensity": INTENSITY_RULE, "intensity_rule": INTENSITY_DESCRIPTION,
            "range": "RGB 0-255 after gui.core.engine.preprocess.model_input(brain-crop-v1): a square crop around the head, "
                     "grey levels standardised (background 0, the head's 99.5th percentile 255)"}


def refresh(card: dict, series: dict | None, orientation: dict | None = None, caution: dict | None = None,
            by_sequence: list[dict] | None = None, nested: dict | None = None) -> dict:
    """A shipped card with its input rule and study rule made again from the code and the run's
    ``series.json``, the orientation figures measured on the exported file added, and its held-out
    figures by sequence from ``python -m training score`` runs of this very file on folds it never
    trained on, or from the run's nested leave-one-source-out figures (``python -m export recard``): the
    graph and every other measured figure stay."""
    out = {**card, "input": {**card["input"], **input_rule()}}
    if by_sequence:
        out["held_out_by_sequence"] = sequence_entry(by_sequence)
    elif nested:
        out["held_out_by_sequence"] = sequence_entry_from_nested(nested)
    if series is not None:
        out["series_rule"] = _series_entry(series)
    if orientation is not None:
        out["orientation"] = _orientation_entry(orientation)
    if caution is not None:
        out["caution"] = _caution_entry(caution)
    return out


def sequence_entry(scored: list[dict]) -> dict:
    """Held-out detection by MR sequence, from ``training.score`` results of the shipped file (each at
    the card's threshold, on a fold it never trained on); a sequence measured on several folds keeps
    the one with most tumours. The app cautions answers on a sequence whose sensitivity is below 85 %."""
    out: dict[str, dict] = {}
    for s in scored:
        for q, m in (s.get("by_sequence") or {}).items():
            tumours = int(m.get("tp", 0)) + int(m.get("fn", 0))
            if q not in SEQUENCES or not tumours or tumours <= out.get(q, {}).get("tumours", 0):
                continue
            out[q] = {"sensitivity": m["sensitivity"], "specificity": m.get("specificity"),
                      "roc_auc": m.get("roc_auc"), "tumours": tumours, "threshold": m.get("threshold"),
                      "measured_on": f"{s.get('fold')} (never trained on), through the app's engine "
                                     "(python -m training score)"}
    return out


def sequence_entry_from_nested(nested: dict) -> dict:
    """Held-out detection by MR sequence from ``python -m training nested`` (each fold scored by the model
    that never trained on it, at the epoch and threshold the other folds chose): per sequence the mean over
    the held-out folds that have its tumours (every collection counts alike, as in the threshold's choice),
    with each fold's own figure. The shipped file trained on every source, so no fold is held out from
    *it*: these are the leave-one-source-out estimates of how it does on a new collection."""
    out: dict[str, dict] = {}
    for q in SEQUENCES:
        rows = {f: v["by_sequence"][q] for f, v in nested.items()
                if q in (v.get("by_sequence") or {}) and v["by_sequence"][q].get("tumour")}
        if not rows:
            continue
        spec = [r["specificity"] for r in rows.values() if r.get("specificity") is not None]
        auc = [r["roc_auc"] for r in rows.values() if r.get("roc_auc") is not None]
        out[q] = {"sensitivity": float(np.mean([r["sensitivity"] for r in rows.values()])),
                  "specificity": float(np.mean(spec)) if spec else None,
                  "roc_auc": float(np.mean(auc)) if auc else None,
                  "tumours": int(sum(r["tumour"] for r in rows.values())),
                  "by_fold": {f: {k: r[k] for k in ("sensitivity", "specificity", "roc_auc", "tumour")}
                              for f, r in rows.items()},
                  "measured_on": f"mean of {len(rows)} held-out fold(s) ({', '.join(rows)}), each scored by the "
                                 "fold model that never trained on it at the threshold the other folds chose "
                                 "(python -m training nested)"}
    return out


def _orientation_entry(o: dict) -> dict:
    """How much P(tumour) moves when the scan is mirrored or turned (training/orientation.py)."""
    turns = {k: v for k, v in o.items() if isinstance(v, dict) and "answers_flipped" in v}
    return {"measured_on": f"{o['fold']} test part, {o['n']} images, each turned before the brain crop",
            "mean_abs_dp_all": o["all transforms"]["mean_abs_dp"], "by_transform": turns}


def _series_entry(series: dict) -> dict:
    return {
        **series["rule"],
        "rule": f"a study is a tumour when {series['rule']['run']} consecutive slice(s) reach P(tumour) >= "
                f"{series['rule']['threshold']:.2f}; its probability is the best such run's lowest slice probability",
        "chosen_on": "the lgg volumes of three hospitals, each scored by the fold that never saw it; the threshold is "
                     "the decision threshold (one threshold on every screen), the run length sensitivity first "
                     "(training/series.py); tumour-free volumes are runs of tumour-free slices at the top or "
                     "bottom of a head",
        **({"pooled": {k: series["pooled_with_final_rule"][k] for k in ("sensitivity", "specificity",
                                                                        "key_slice_in_marked_range_pm1")}}
           if "pooled_with_final_rule" in series else {}),
        "measured_nested": {h: {k: v[k] for k in ("sensitivity", "specificity", "key_slice_in_marked_range_pm1",
                                                  "slice_auc", "tumour_volumes", "tumour_free_volumes")}
                            for h, v in series["hospitals"].items()},
    }


def build_multitask_card(name: str, version: str, config: dict, folds: dict[str, dict], verification: dict,
                         ood: dict, source_run: str, caution: dict | None = None, series: dict | None = None,
                         grid: int = 7, operating_point: dict | None = None, orientation: dict | None = None,
                         sequence_labels: list[str] | None = None, calibration: dict | None = None) -> dict:
    """The card of the multi-task model: in-distribution test figures and, as the headline, every
    leave-one-source-out fold; where given, the operating point chosen on the pooled held-out folds
    (``training/choose.py``), how much the answer moves when the scan is turned, and the sequence
    head's labels (a model with ``sequence_probabilities``)."""
    shipped = folds["in-distribution"]
    threshold = operating_point["operating_point"]["threshold"] if operating_point else DECISION_THRESHOLD
    sequence = {"sequence_labels": list(sequence_labels)} if sequence_labels else {}
    return {
        **sequence,
        "name": name,
        "version": version,
        "task": "binary",
        "labels": config["labels"],
        "no_tumor_labels": ["no_tumor"],
        "type_labels": config["type_labels"],
        "input": {"name": "image", "size": config["input_size"], "layout": "NHWC", "dtype": "float32",
                  "preprocessing": config["preprocessing"],
                  **input_rule()},
        "outputs": {"probabilities": "calibrated P(no tumour), P(tumour) [N, 2]",
                    "cam": "class activation map of both classes [N, 7, 7, 2] (adapter features x classifier kernel)",
                    "embedding": "globally pooled adapter features [N, 256]",
                    "type_probabilities": f"P(type | tumour) for type_labels [N, {len(config['type_labels'])}]",
                    **({"sequence_probabilities": f"P(sequence) for sequence_labels [N, {len(sequence_labels)}]"}
                       if sequence_labels else {}),
                    "heatmap": f"P(tumour) at each location of a {grid}x{grid} grid over the model input [N, {grid}, {grid}]"},
        "architecture": config["arch"],
        "parameters": config["parameters"],
        "training": {
            "datasets": config["datasets"],
            "sources": config["sources"],
            "counts": config["counts"],
            "split_method": config["split_method"],
            "epochs": shipped.get("epochs"),
            "train_minutes_on_2_core_cpu": round(shipped["train_seconds"] / 60, 1),
            "method": config["method"],
            "run": source_run,
        },
        "test_metrics": {**_fold_summary(shipped),
                         "split": f"in-distribution test part of {config.get('catalogue', 'runs/splits/multisource.json')}"},
        "cross_source": {k: _fold_summary(v) for k, v in folds.items() if k != "in-distribution"},
        "heatmap_faithfulness": shipped.get("heatmap"),
        "type_metrics": shipped.get("type"),
        **({"caution": _caution_entry(caution)} if caution else {}),
        **({"series_rule": _series_entry(series)} if series else {}),
        **({"operating_point": {**operating_point["operating_point"], "epochs_chosen_on": "mean ROC AUC of the held-out "
                                "source folds", "epochs": operating_point["epoch"]}} if operating_point else {}),
        **({"orientation": _orientation_entry(orientation)} if orientation else {}),
        **_decision_and_provenance("tumour if P(tumour) >= decision_threshold", shipped["temperature"], ood,
                                   verification, MULTITASK_INTENDED_USE,
                                   multitask_limitations(config["type_labels"], grid, config["sources"]), threshold,
                                   calibration),
    }
