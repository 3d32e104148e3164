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
from training.metrics import roc_auc


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
                                  "sequence": tg["sequence"][z["index"]]}
        return cache[fold, epoch]

    out = {}
    for f in reported:
        voters = [s for s in sources if s != f]
        epoch, _mean = choose.choose_epoch(folds, voters)
        point = choose.operating_point({s: preds(s, epoch)["y"] for s in voters},
                                       {s: preds(s, epoch)["p"] for s in voters})
        t = point["threshold"]
        d = preds(f, epoch)
        by_sequence = {}
        for k in sorted(set(d["sequence"].tolist())):
            m = d["sequence"] == k
            by_sequence[mt.SEQUENCE_LABELS[k] if k >= 0 else "unknown"] = figures(d["y"][m], d["p"][m], t)
        out[f] = {"epoch": epoch, "threshold": t, "chosen_on": voters, **figures(d["y"], d["p"], t),
                  "by_sequence": by_sequence}
    return out


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
    return "\n".join(rows)


def write(run_dir: str, catalogue_path: str) -> dict:
    """``nested.json`` in the run and the table printed."""
    result = nested(run_dir, catalogue_path)
    (Path(run_dir) / "nested.json").write_text(json.dumps(result, indent=1))
    return result
