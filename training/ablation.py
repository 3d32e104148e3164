"""The round-2 ablation table (issue 24) for training/RESULTS.md: every arm on every fold.

Arms: the frozen multi-task model (``runs/multitask``), the same with the augmented views and a
frozen backbone (``runs/finetune-frozen``), partial fine-tuning on images as read
(``runs/finetune-plain``, with the 14x14 map too), and partial fine-tuning with every view family and the 14x14 map
(``runs/finetune``). Each fine-tuned arm is shown at its epoch chosen on the held-out folds
(``choice.json``); arms whose runs are missing or unfinished are listed as such, not guessed.
"""

from __future__ import annotations

import json
from pathlib import Path

from training import choose
from training import split as splits
from training.report import _replace_between

ARMS = (("frozen backbone, heads only (shipped v2)", "runs/multitask"),
        ("+ augmented views (backbone frozen)", "runs/finetune-frozen"),
        ("+ partial fine-tuning + 14x14 map (images as read)", "runs/finetune-plain"),
        ("+ views + partial fine-tuning + 14x14 map", "runs/finetune"))


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def _cell(m: dict | None, key: str = "roc_auc") -> str:
    if m is None:
        return "-"
    d = m["tumor_detection"]
    auc = "n/a" if d["roc_auc"] is None else f"{d['roc_auc']:.3f}"
    return f"{auc} / {_pct(d['sensitivity'])} / {_pct(d['specificity'])}"


def arm_metrics(run: Path) -> tuple[dict[str, dict], str]:
    """Per fold the arm's figures (a fine-tuned arm at its chosen epoch) and a note on its state."""
    if (run / "choice.json").exists():
        choice = json.loads((run / "choice.json").read_text())
        epoch, state = choice["epoch"], f"epoch {choice['epoch']}"
        if epoch == 0:  # the untrained start won: show what training did, at its best trained epoch
            trained = {k: v for k, v in choice["mean_held_out_auc_by_epoch"].items() if k != "0"}
            best = max(trained, key=trained.get)
            epoch = int(best) if best.isdigit() else best
            state = (f"epoch {best} (the best trained; every trained epoch was below the start, mean held-out AUC "
                     f"{trained[best]:.3f} vs {choice['mean_held_out_auc_by_epoch']['0']:.3f})")
        folds = choose.epochs_of(run)
        return {f: e[epoch] for f, e in folds.items() if epoch in e}, state
    if run.name == "multitask":
        return {p.parent.name: json.loads(p.read_text()) for p in run.glob("*/metrics.json")}, "as shipped"
    return {}, "not run" if not run.exists() else "unfinished"


def table(catalogue_path: str) -> str:
    sources = splits.load(catalogue_path)["sources"]
    folds = ["in-distribution", *sources]
    lines = ["ROC AUC / sensitivity % / specificity % at P(tumour) >= 0.5, each held-out fold's own test part "
             "(the in-distribution column: the 15% test part of all six sources).", "",
             "| arm | epochs | " + " | ".join(folds) + " |", "|---|---|" + "---|" * len(folds)]
    for label, run in ARMS:
        m, state = arm_metrics(Path(run))
        lines.append(f"| {label} | {state} | " + " | ".join(_cell(m.get(f)) for f in folds) + " |")
    lines += ["", "Pointing game % (heatmap maximum within 15 px of the expert mask) and type accuracy %:", "",
              "| arm | " + " | ".join(f"{f} pointing / type" for f in ("in-distribution", "figshare", "lgg-CS", "lgg-DU", "lgg-HT"))
              + " |", "|---|" + "---|" * 5]
    for label, run in ARMS:
        m, _ = arm_metrics(Path(run))
        cells = []
        for f in ("in-distribution", "figshare", "lgg-CS", "lgg-DU", "lgg-HT"):
            x = m.get(f)
            heat = (x or {}).get("heatmap", {}).get("heatmap", {})
            cells.append("-" if x is None else f"{_pct(heat.get('pointing_game'))} / {_pct((x.get('type') or {}).get('accuracy'))}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def epochs_table(run: Path, sources: list[str]) -> str:
    """Held-out ROC AUC of every fold at every epoch of a fine-tuned run (0: the frozen start)."""
    folds = choose.epochs_of(run)
    epochs = sorted(set.union(*(set(v) for v in folds.values())), key=choose.order) if folds else []
    lines = [f"`{run}`, held-out ROC AUC by epoch (0 = the frozen model it starts from):", "",
             "| fold | " + " | ".join(f"epoch {e}" if isinstance(e, int) else "average of epochs" for e in epochs) + " |", "|---|" + "---|" * len(epochs)]
    for f in ["in-distribution", *sources]:
        if f in folds:
            lines.append(f"| {f} | " + " | ".join(
                "-" if e not in folds[f] or folds[f][e]["tumor_detection"]["roc_auc"] is None
                else f"{folds[f][e]['tumor_detection']['roc_auc']:.3f}" for e in epochs) + " |")
    return "\n".join(lines) + "\n"


def levels_table(run: Path, doc: dict, fold_names: tuple[str, ...] = ("lgg-CS", "lgg-DU", "lgg-HT")) -> str:
    """Sensitivity and specificity by fifth of the lgg volume on the held-out hospitals, at the run's
    threshold and at 0.5, from the chosen epoch's predictions."""
    import numpy as np

    from training import finetune as ft
    from training import multitask as mt

    threshold = choose.decision_threshold(run)
    y, levels = mt.targets(doc)["y"], ft.level_fifths(doc)
    lines = [f"`{run}`: lgg held-out hospitals by fifth of the volume from the skull base up: tumour / tumour-free "
             f"slices, then sensitivity % / specificity % at the chosen threshold {threshold:.2f} (at 0.5 in brackets).",
             "", "| hospital | " + " | ".join(f"fifth {k}" for k in range(1, 6)) + " |", "|---|" + "---|" * 5]
    for f in fold_names:
        if not (run / f / "predictions.npz").exists():
            continue
        z = np.load(run / f / "predictions.npz")
        idx, p = z["index"], z["probabilities"][:, 1]
        at_t = ft.by_level(y[idx], p, levels[idx], threshold)
        at_half = ft.by_level(y[idx], p, levels[idx], 0.5)
        lines.append(f"| {f} | " + " | ".join(
            (f"{v['tumour']}/{v['tumour_free']}: {_pct(v['sensitivity'])} / {_pct(v['specificity'])} "
             f"({_pct(at_half[k]['sensitivity'])} / {_pct(at_half[k]['specificity'])})"
             if (v := at_t.get(k)) else "-") for k in (f"fifth {i}" for i in range(1, 6))) + " |")
    return "\n".join(lines) + "\n"


def write(catalogue_path: str, out: str = "training/RESULTS.md") -> str:
    doc = splits.load(catalogue_path)
    sources = doc["sources"]
    body = table(catalogue_path)
    for _label, run in ARMS[1:]:
        if choose.epochs_of(Path(run)):
            body += "\n" + epochs_table(Path(run), sources)
    for run in (Path(ARMS[0][1]), Path(ARMS[-1][1])):  # the frozen start beside the candidate
        if (run / "lgg-HT" / "predictions.npz").exists():
            body += "\n" + levels_table(run, doc)
    text = Path(out).read_text()
    Path(out).write_text(_replace_between(text, "<!-- round2:start -->", "<!-- round2:end -->", body))
    return body
