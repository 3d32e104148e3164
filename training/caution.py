"""When to say "don't trust this answer": caution scores measured on the leave-one-source-out folds.

Each fold's test part is a collection the model never saw, so a caution rule chosen here is judged
on the situation it is for (a scan from elsewhere), not on the training collections. Candidate
scores of one image:

* ``margin``: closeness of P(tumour) to the decision threshold, ``1 - |2p - 1|``;
* ``heads``: disagreement of the detector and the heatmap head, ``|P(tumour) - max heatmap|``;
* ``embedding``: Mahalanobis distance of the embedding to the fold's validation embeddings
  (what the app's out-of-distribution score measures, fitted on in-distribution images).

The rule shipped flags an answer when its detector and tumour-map heads disagree (one says tumour,
the other not: what the app reports as "the models disagree") or when P(tumour) lies in a band around
the threshold: the narrowest band whose unflagged answers reach the target accuracy on the held-out
folds pooled with equal weight (a plain held-out quantile; no promise beyond those folds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training import multitask as mt, split as splits
from training.metrics import roc_auc

TARGET_ACCURACY = 0.95


def fold_scores(run: Path, fold: str, tg: dict) -> dict[str, np.ndarray]:
    z = np.load(run / fold / "predictions.npz")
    idx = z["index"]
    p = z["probabilities"][:, 1]
    err = ((p >= 0.5) != (tg["y"][idx] == 1)).astype(np.int64)
    heat = z["heatmap"].reshape(len(idx), -1).max(axis=1)
    ve = z["val_embedding"].astype(np.float64)
    precision = np.linalg.pinv(np.cov(ve.T) + 1e-3 * np.eye(ve.shape[1]))
    d = z["embedding"] - ve.mean(axis=0)
    return {"p": p, "error": err, "margin": 1 - np.abs(2 * p - 1), "heads": np.abs(p - heat),
            "disagree": (p >= 0.5) != (heat >= 0.5), "embedding": np.einsum("nf,fg,ng->n", d, precision, d)}


def flagged(s: dict[str, np.ndarray], h: float) -> np.ndarray:
    """The shipped rule: heads disagree, or P(tumour) within ``h`` of the threshold."""
    return s["disagree"] | (np.abs(s["p"] - 0.5) < h)


def band_for(folds: dict[str, dict], target: float = TARGET_ACCURACY) -> float:
    """Half-width h of the band ``|p - 0.5| < h`` flagged as uncertain (beside disagreeing heads): the
    smallest h (0.01 steps) whose unflagged answers are at least ``target`` accurate, pooling folds
    with equal weight."""
    for h in np.arange(0.0, 0.5, 0.01):
        accs = [1 - f["error"][~flagged(f, h)].mean() for f in folds.values() if (~flagged(f, h)).any()]
        if accs and np.mean(accs) >= target:
            return float(round(h, 2))
    return 0.5


def analyse(run_dir: str, catalogue_path: str, target: float = TARGET_ACCURACY) -> dict:
    """AUROC of each score for errors, risk-coverage points and the band's figures per fold."""
    run = Path(run_dir)
    tg = mt.targets(splits.load(catalogue_path))
    names = sorted(p.parent.name for p in run.glob("*/predictions.npz"))
    scores = {f: fold_scores(run, f, tg) for f in names}
    held_out = {f: s for f, s in scores.items() if f != "in-distribution"}
    h = band_for(held_out, target)
    out: dict = {"target_unflagged_accuracy": target, "band_half_width": h,
                 "rule": f"caution when the heads disagree or |P(tumour) - 0.5| < {h:.2f}", "folds": {}}
    for f, s in scores.items():
        flags = flagged(s, h)
        err = s["error"]
        curve = []
        for coverage in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
            keep = s["margin"] <= np.quantile(s["margin"], coverage)
            curve.append({"coverage": coverage, "accuracy": float(1 - err[keep].mean())})
        out["folds"][f] = {
            "n": int(len(err)), "accuracy": float(1 - err.mean()),
            "error_auroc": {k: (roc_auc(err, s[k]) if 0 < err.sum() < len(err) else None)
                            for k in ("margin", "heads", "embedding")},
            "flagged_share": float(flags.mean()),
            "disagree_share": float(s["disagree"].mean()),
            "accuracy_unflagged": float(1 - err[~flags].mean()) if (~flags).any() else None,
            "accuracy_flagged": float(1 - err[flags].mean()) if flags.any() else None,
            "risk_coverage_by_margin": curve,
        }
    return out


def write(run_dir: str, catalogue_path: str) -> dict:
    result = analyse(run_dir, catalogue_path)
    (Path(run_dir) / "caution.json").write_text(json.dumps(result, indent=1))
    return result
