"""The epoch count and the operating point, chosen on the pooled leave-one-source-out folds.

In-distribution figures are a floor, not a guide: a threshold chosen on the validation part gave
26-52% sensitivity on held-out Br35H (issue 24's pilot), and validation loss did not pick good
epochs. So both choices are made on the held-out sources' test parts, pooled:

* epochs: the count with the highest mean held-out ROC AUC over the source folds (0, the frozen
  starting model, is a candidate, and so is ``swa``, the average of every epoch's weights; ties go
  to fewer epochs);
* threshold: the one giving held-out sensitivity >= 90% with specificity >= 85% (the highest
  specificity among those), else the point of least cost when a missed tumour costs ``MISS_COST``
  (2) false alarms (highest 2 x sensitivity + specificity: a screening tool leans to sensitivity);
  each figure the mean over the held-out collections, so that every collection counts alike;
* calibration: Platt scaling anchored at that threshold (``training/calibrate.py``), its slope fitted
  on the same held-out images pooled, so that the shown probability crosses 50 % exactly at the
  threshold and means what it says.

The chosen epoch's predictions, calibrated, become each fold's ``predictions.npz`` and its figures,
answered at 0.5 of the calibrated probability (the threshold), its ``metrics.json``: the layout
``training/caution.py``, ``training/series.py``, export and the card read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training import multitask as mt
from training import split as splits
from training.calibrate import apply_anchored_platt, fit_anchored_platt

MIN_SENSITIVITY, MIN_SPECIFICITY = 0.90, 0.85
#: How many false alarms one missed tumour is worth where no threshold meets both targets.
MISS_COST = 2.0
#: The decision threshold on the calibrated probability: the chosen threshold maps to it.
SHOWN_THRESHOLD = 0.5
GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def decision_threshold(run: Path) -> float:
    """The run's chosen threshold (``choice.json``), else the frozen models' 0.5."""
    choice = run / "choice.json"
    return json.loads(choice.read_text())["operating_point"]["threshold"] if choice.exists() else 0.5


def epochs_of(run: Path) -> dict[str, dict[int | str, dict]]:
    """Every fold's metrics by epoch (``swa``: the average of its epochs' weights)."""
    out: dict[str, dict[int | str, dict]] = {}
    for f in sorted(run.glob("*/metrics-*.json")):
        key = f.stem.split("-", 1)[1]
        out.setdefault(f.parent.name, {})[int(key) if key.isdigit() else key] = json.loads(f.read_text())
    return out


def order(e: int | str) -> tuple[int, int]:
    """Candidates in order of cost: fewer epochs first, the weight average after every epoch."""
    return (0, e) if isinstance(e, int) else (1, 0)


def choose_epoch(folds: dict[str, dict[int | str, dict]], sources: list[str]) -> tuple[int | str, dict]:
    """The epoch with the best mean held-out ROC AUC over the source folds that reached it (a fold
    with one class only, figshare's tumours, has no AUC and does not vote)."""
    common = set.intersection(*(set(folds[s]) for s in sources))
    mean = {e: float(np.mean([a for s in sources if (a := folds[s][e]["tumor_detection"]["roc_auc"]) is not None]))
            for e in sorted(common, key=order)}
    best = max(mean.values())
    return min((e for e, v in mean.items() if v >= best - 1e-9), key=order), mean


def rates(y: np.ndarray, p: np.ndarray, t: float) -> tuple[float, float]:
    """(sensitivity, specificity) of 'tumour if p >= t' (NaN where there are no such images)."""
    pos, neg = p[y == 1], p[y == 0]
    return (float((pos >= t).mean()) if len(pos) else float('nan'),
            float((neg < t).mean()) if len(neg) else float('nan'))


def fold_mean_rates(ys: dict[str, np.ndarray], ps: dict[str, np.ndarray], t: float) -> tuple[float, float]:
    """Sensitivity and specificity at ``t``, each the mean over the folds that have such images: every
    collection counts alike, as a new hospital would be one more of them (pooled by image count,
    figshare's and SARTAJ's 7,400 tumours would decide the threshold for everyone)."""
    sens = [rates(ys[f], ps[f], t)[0] for f in ys if (ys[f] == 1).any()]
    spec = [rates(ys[f], ps[f], t)[1] for f in ys if (ys[f] == 0).any()]
    return float(np.mean(sens)), float(np.mean(spec))


def operating_point(ys: dict[str, np.ndarray], ps: dict[str, np.ndarray]) -> dict:
    """The threshold rule of the module docstring on the held-out folds (each fold weighted alike),
    with per-fold figures."""
    table = [(t, *fold_mean_rates(ys, ps, t)) for t in GRID]
    ok = [row for row in table if row[1] >= MIN_SENSITIVITY and row[2] >= MIN_SPECIFICITY]
    if ok:
        t, sens, spec = max(ok, key=lambda r: (r[2], r[0]))
        how = (f"held-out sensitivity >= {MIN_SENSITIVITY:.0%} with specificity >= {MIN_SPECIFICITY:.0%} "
               "(means over the held-out collections)")
    else:
        t, sens, spec = max(table, key=lambda r: (MISS_COST * r[1] + r[2], r[0]))
        how = (f"least cost with a missed tumour worth {MISS_COST:g} false alarms (highest {MISS_COST:g} x sensitivity + "
               f"specificity; no threshold reached sensitivity >= {MIN_SENSITIVITY:.0%} with specificity >= "
               f"{MIN_SPECIFICITY:.0%}), means over the held-out collections")
    per_fold = {}
    for f in ys:
        s1, p1 = rates(ys[f], ps[f], float(t))
        per_fold[f] = {"n": int(len(ys[f])), "sensitivity": s1, "specificity": None if np.isnan(p1) else p1}
    y, p = np.concatenate(list(ys.values())), np.concatenate(list(ps.values()))
    s_all, p_all = rates(y, p, float(t))
    return {"threshold": float(t), "rule": how, "miss_cost": MISS_COST,
            "pooled": {"n": int(len(y)), "sensitivity": sens, "specificity": spec, "weighting": "mean over collections"},
            "pooled_by_image": {"sensitivity": s_all, "specificity": p_all}, "folds": per_fold}


def write(run_dir: str, catalogue_path: str) -> dict:
    """Choose, write ``choice.json`` and make the chosen epoch each fold's predictions and metrics."""
    run = Path(run_dir)
    doc = splits.load(catalogue_path)
    tg = mt.targets(doc)
    folds = epochs_of(run)
    sources = [s for s in doc["sources"] if s in folds]
    epoch, mean_auc = choose_epoch(folds, sources)
    ys, ps = {}, {}
    for s in sources:
        z = np.load(run / s / f"predictions-{epoch}.npz")
        ys[s], ps[s] = tg["y"][z["index"]], z["probabilities"][:, 1]
    point = operating_point(ys, ps)
    t = point["threshold"]
    slope = fit_anchored_platt(np.concatenate(list(ps.values())), np.concatenate(list(ys.values())), t)
    calibration = {"method": "Platt scaling anchored at the threshold: P = sigmoid(slope * (logit(p) - logit(anchor))), "
                             "so the threshold shows as 50 %", "slope": slope, "anchor": t,
                   "fitted_on": "the held-out source folds' test images at the chosen epoch, pooled"}
    for f in folds:
        if epoch in folds[f]:
            z = dict(np.load(run / f / f"predictions-{epoch}.npz"))
            for key in ("probabilities", "val_probabilities"):
                q = apply_anchored_platt(z[key][:, 1], t, slope)
                z[key] = np.stack([1.0 - q, q], axis=1).astype(z[key].dtype)
            np.savez_compressed(run / f / "predictions.npz", **z)
            pred = {"probabilities": z["probabilities"], "type_probabilities": z["type_probabilities"],
                    "heatmap": z["heatmap"].astype(np.float32)}
            at_t = mt.fold_metrics(doc, tg, z["index"], pred, {}, with_heatmaps=False, threshold=SHOWN_THRESHOLD)
            kept = {k: v for k, v in folds[f][epoch].items() if k in ("heatmap", "lgg_by_level", "epoch", "temperature",
                                                                      "train_loss", "seconds", "averaged_epochs")}
            last = epoch if isinstance(epoch, int) else max(e for e in folds[f] if isinstance(e, int))
            seconds = sum(folds[f][e].get("seconds", 0) for e in range(1, last + 1) if e in folds[f])
            (run / f / "metrics.json").write_text(json.dumps({**at_t, **kept, "decision_threshold": SHOWN_THRESHOLD,
                                                              "train_seconds": seconds}, indent=1))
    choice = {"epoch": epoch, "mean_held_out_auc_by_epoch": mean_auc, "held_out_sources": sources,
              "operating_point": {**point, "threshold": SHOWN_THRESHOLD, "threshold_before_calibration": t},
              "calibration": calibration}
    (run / "choice.json").write_text(json.dumps(choice, indent=1))
    return choice
