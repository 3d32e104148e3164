"""Held-out figures by sequence, each fold's epoch and threshold chosen without it (nested rule).

``training/choose.py`` picks one epoch and one threshold on every held-out source fold and then
reports those same folds: a selection that flatters them. Here each reported fold F gets the epoch
(best mean held-out ROC AUC) and the threshold (``choose.operating_point``) chosen on the *other*
source folds only, and is then scored at that epoch and threshold, pooled and per sequence
(``sequence`` of the catalogue; "unknown" for the class-folder sets). The leave-one-sequence-out
folds are reported the same way and never vote.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training import catalogue, choose
from training import multitask as mt
from training import split as splits
from training.calibrate import apply_anchored_platt, fit_anchored_platt
from training.metrics import expected_calibration_error, roc_auc


def figures(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    """n, tumours, ROC AUC, sensitivity and specificity at ``t`` (None where undefined)."""
    s, q = choose.rates(y, p, t)
    return {"n": int(len(y)), "tumour": int((y == 1).sum()),
            "roc_auc": roc_auc(y, p) if len(set(y.tolist())) > 1 else None,
            "sensitivity": None if np.isnan(s) else s, "specificity": None if np.isnan(q) else q}


def nested(run_dir: str, catalogue_path: str) -> dict:
    """Every fold of the run scored at the epoch and threshold the other source folds chose."""
    run = Path(run_dir)
    doc = splits.load(catalogue_path)
    tg = mt.targets(doc)
    folds = choose.epochs_of(run)
    sources = [s for s in doc["sources"] if s in folds]
    reported = sources + [f for f in catalogue.SEQUENCE_FOLDS if f in folds]
    cache: dict[tuple[str, object], dict] = {}

    def preds(fold: str, epoch) -> dict:
        if (fold, epoch) not in cache:
            z = np.load(run / fold / f"predictions-{epoch}.npz")
            cache[fold, epoch] = {"y": tg["y"][z["index"]], "p": z["probabilities"][:, 1].astype(np.float64),
                                  "sequence": tg["sequence"][z["index"]],
                                  "peak": (z["heatmap"].reshape(len(z["index"]), -1).max(axis=1).astype(np.float64)
                                           if "heatmap" in z.files else None)}
        return cache[fold, epoch]

    out = {}
    for f in reported:
        voters = [s for s in sources if s != f]
        epoch, _mean = choose.choose_epoch(folds, voters)
        point = choose.operating_point({s: preds(s, epoch)["y"] for s in voters},
                                       {s: preds(s, epoch)["p"] for s in voters})
        t = point["threshold"]
        pooled_y = np.concatenate([preds(s, epoch)["y"] for s in voters])
        pooled_p = np.concatenate([preds(s, epoch)["p"] for s in voters])
        slope = fit_anchored_platt(pooled_p, pooled_y, t)  # on the other folds' held-out images, pooled
        d = preds(f, epoch)
        shown = apply_anchored_platt(d["p"], t, slope)
        by_sequence = {}
        for k in sorted(set(d["sequence"].tolist())):
            m = d["sequence"] == k
            by_sequence[mt.SEQUENCE_LABELS[k] if k >= 0 else "unknown"] = figures(d["y"][m], d["p"][m], t)
        out[f] = {"epoch": epoch, "threshold": t, "chosen_on": voters, **figures(d["y"], d["p"], t),
                  "by_sequence": by_sequence,
                  "normals_hot_map": _hot_normals(d, HEAT_LEVEL),
                  "pointing_game": folds[f][epoch].get("heatmap", {}).get("heatmap", {}).get("pointing_game"),
                  "calibration": {"method": "Platt anchored at the threshold (it shows as 50 %), slope fitted "
                                            "on the other source folds' held-out images pooled",
                                  "slope": slope, "ece_raw": _ece(d["y"], d["p"]), "ece_shown": _ece(d["y"], shown)}}
    return out


#: The tumour-map level a caution is given at (the card's ``caution.heat_level``, 0.5 unless it says other).
HEAT_LEVEL = 0.5


def _hot_normals(d: dict, level: float) -> float | None:
    """Share of the fold's tumour-free images whose tumour map peaks at or above ``level`` (issue 28's
    "heat on normal images"; target <= 5 %); None without maps or normals."""
    normal = d["y"] == 0
    if d["peak"] is None or not normal.any():
        return None
    return float((d["peak"][normal] >= level).mean())


def _ece(y: np.ndarray, p: np.ndarray) -> float:
    """Expected calibration error of P(tumour) (both classes' probabilities, 15 bins)."""
    return expected_calibration_error(y.astype(int), np.stack([1 - p, p], axis=1))


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def table(result: dict) -> str:
    """Markdown: one row per (fold, sequence)."""
    rows = ["| held-out fold | sequence | n | tumour | ROC AUC | sensitivity % | specificity % | epoch | threshold |",
            "|---|---|---|---|---|---|---|---|---|"]
    for f, r in result.items():
        for seq, m in r["by_sequence"].items():
            auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
            rows.append(f"| {f} | {seq} | {m['n']} | {m['tumour']} | {auc} | {_pct(m['sensitivity'])} | "
                        f"{_pct(m['specificity'])} | {r['epoch']} | {r['threshold']:.2f} |")
    rows += ["", "| held-out fold | ECE as trained % | ECE shown (threshold at 50 %) % | slope | normals with map >= 0.5 % "
                 "| pointing game % |", "|---|---|---|---|---|---|"]
    for f, r in result.items():
        c = r.get("calibration")
        if c:
            rows.append(f"| {f} | {_pct(c['ece_raw'])} | {_pct(c['ece_shown'])} | {c['slope']:.2f} | "
                        f"{_pct(r.get('normals_hot_map'))} | {_pct(r.get('pointing_game'))} |")
    return "\n".join(rows)


def write(run_dir: str, catalogue_path: str) -> dict:
    """``nested.json`` in the run and the table printed."""
    result = nested(run_dir, catalogue_path)
    (Path(run_dir) / "nested.json").write_text(json.dumps(result, indent=1))
    return result
