"""Side-by-side Markdown table of every evaluated run (``training/RESULTS.md``)."""

from __future__ import annotations

import json
from pathlib import Path


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def rows_for(run: Path) -> list[str]:
    config = json.loads((run / "config.json").read_text())
    if "task" not in config:  # a multi-task run: its own table (multitask_tables)
        return []
    metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").exists() else {}
    out = []
    for name, m in metrics.items():
        d = m["tumor_detection"]
        counts = m.get("split_method", {})
        test_set = f"{Path(m['split_file']).stem}:{m['part']}" + (f" (holdout {counts['holdout']})" if counts.get("holdout") else "")
        auc = "n/a" if d["roc_auc"] is None else f"{d['roc_auc']:.4f}"
        out.append(
            f"| {run.name} | {config['arch']} | {config['task']} | {test_set} | {m['n']} | {_pct(m['accuracy'])} "
            f"| {_pct(d['sensitivity'])} | {_pct(d['specificity'])} | {_pct(d['precision'])} | {_pct(d['f1'])} "
            f"| {auc} | {m['ece']:.4f} "
            f"| {config['parameters']:,} | {config['train_seconds'] / 60:.1f} |"
        )
    return out


def by_dataset_table(run_dirs: list[Path]) -> str:
    """The same test parts broken down by source dataset (for runs tested on more than one)."""
    lines = []
    for run in run_dirs:
        metrics_file = run / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        for name, m in metrics.items():
            for dataset, d in m.get("by_dataset", {}).items():
                t = d["tumor_detection"]
                lines.append(f"| {run.name} | {name} | {dataset} | {d['n']} | {t['tp'] + t['fn']} | {t['tn'] + t['fp']} "
                             f"| {_pct(d['accuracy'])} | {_pct(t['sensitivity'])} | {_pct(t['specificity'])} |")
    if not lines:
        return ""
    return ("\nBy source dataset, same test parts:\n\n"
            "| run | evaluation | dataset | n | tumour | no tumour | accuracy % | sensitivity % | specificity % |\n"
            "|---|---|---|---|---|---|---|---|---|\n" + "\n".join(lines) + "\n")


def _auc(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


FOLD_NAMES = {"in-distribution": "in-distribution test part (all six sources)"}


def multitask_tables(run: Path, bundled_scores: Path | None = None) -> str:
    """Leave-one-source-out table of a multi-task run (the headline), its by-source breakdown, and
    the previously shipped pair scored through the app on the same test images."""
    folds = {p.parent.name: json.loads(p.read_text()) for p in sorted(run.glob("*/metrics.json"))}
    if not folds:
        return ""
    method = json.loads((run / "config.json").read_text()).get("method", {})
    title = (f"Run `{run}`: loss weights {method.get('weighting', 'n/a')}, at most {method.get('epochs_max')} "
             f"epochs, {method.get('early_stopping', '')}.\n\n")
    order = ["in-distribution"] + [f for f in folds if f != "in-distribution"]
    lines = ["| test set | n | tumour | no tumour | accuracy % | sensitivity % | specificity % | ROC AUC | ECE "
             "| type accuracy % | pointing game % | heat inside mask % | train min |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in order:
        if name not in folds:
            continue
        m = folds[name]
        d = m["tumor_detection"]
        heat = (m.get("heatmap") or {}).get("heatmap")
        label = FOLD_NAMES.get(name, f"**{name}** held out")
        lines.append(f"| {label} | {m['n']} | {d['tp'] + d['fn']} | {d['tn'] + d['fp']} | {_pct(d['accuracy'])} "
                     f"| {_pct(d['sensitivity'])} | {_pct(d['specificity'])} | {_auc(d['roc_auc'])} | {m['ece']:.4f} "
                     f"| {_pct((m.get('type') or {}).get('accuracy'))} | {_pct(heat['pointing_game']) if heat else 'n/a'} "
                     f"| {_pct(heat['mass_inside_mask']) if heat else 'n/a'} | {m['train_seconds'] / 60:.1f} |")
    if "in-distribution" not in folds:  # an ablation run: its folds only, beside the main run's
        return "Ablation. " + title + "\n".join(lines) + "\n"
    ind = folds["in-distribution"]
    by = ["| source | n | accuracy % | sensitivity % | specificity % | ROC AUC | ECE |", "|---|---|---|---|---|---|---|"]
    for src, b in (ind.get("by_source") or {}).items():
        by.append(f"| {src} | {b['n']} | {_pct(b['accuracy'])} | {_pct(b['sensitivity'])} | {_pct(b['specificity'])} "
                  f"| {_auc(b['roc_auc'])} | {b['ece']:.4f} |")
    text = title + "\n".join(lines) + "\n\nIn-distribution test part by source:\n\n" + "\n".join(by) + "\n"
    caution_file = run / "caution.json"
    if caution_file.exists():
        c = json.loads(caution_file.read_text())
        rows = ["| test set | n | accuracy % | error AUROC: margin | heads | embedding | flagged % | accuracy unflagged % "
                "| accuracy flagged % | accuracy of the 60% most confident % |", "|---|---|---|---|---|---|---|---|---|---|"]
        for name in order:
            f = c["folds"].get(name)
            if f is None:
                continue
            a = f["error_auroc"]
            top60 = next(p["accuracy"] for p in f["risk_coverage_by_margin"] if p["coverage"] == 0.6)
            rows.append(f"| {name} | {f['n']} | {_pct(f['accuracy'])} | {_auc(a['margin'])} | {_auc(a['heads'])} "
                        f"| {_auc(a['embedding'])} | {_pct(f['flagged_share'])} | {_pct(f['accuracy_unflagged'])} "
                        f"| {_pct(f['accuracy_flagged'])} | {_pct(top60)} |")
        text += (f"\nWhen to caution (`python -m training caution {run}`, `training/caution.py`): how well "
                 f"each score ranks the wrong answers first (AUROC for errors), and the band rule \"{c['rule']}\", "
                 f"the narrowest that brings the unflagged answers to {100 * c['target_unflagged_accuracy']:.0f}% on "
                 "the held-out folds pooled:\n\n" + "\n".join(rows) + "\n")
    if bundled_scores is not None and bundled_scores.is_dir():
        rows = ["| test set | n | accuracy % | sensitivity % | specificity % | ROC AUC | seen in its training? |",
                "|---|---|---|---|---|---|---|"]
        for f in sorted(bundled_scores.glob("*.json")):
            m = json.loads(f.read_text())
            d = m["tumor_detection"]
            seen = "yes (leaky)" if m["fold"] in ("br35h", "sartaj", "figshare") else "no"
            rows.append(f"| {m['fold']} | {m['n']} | {_pct(d['accuracy'])} | {_pct(d['sensitivity'])} "
                        f"| {_pct(d['specificity'])} | {_auc(d['roc_auc'])} | {seen} |")
        text += ("\nThe previously shipped pair (v1 detector + type model, trained on brain-tumor-mri + Br35H), "
                 "scored through the app on the same test images (`python -m training score v1-detector.onnx "
                 "v1-type.onnx --fold F`, the files as shipped before the multi-task model: "
                 "`git show e4a8692:assets/models/1-tumor-detector.onnx > v1-detector.onnx`, likewise "
                 "`2-tumor-type.onnx`). Rows marked leaky are collections it was trained on:\n\n"
                 + "\n".join(rows) + "\n")
    return text


def _replace_between(text: str, start: str, end: str, body: str) -> str:
    if start in text and end in text:
        return text[: text.index(start) + len(start)] + "\n" + body + text[text.index(end):]
    return text + f"\n{start}\n{body}{end}\n"


def write_report(runs: list[str], out: str) -> str:
    header = (
        "| run | arch | task | test set | n | accuracy % | sensitivity % | specificity % | precision % | F1 % "
        "| ROC AUC | ECE | parameters | train min |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    run_dirs = [Path(r) for r in runs if (Path(r) / "config.json").exists()]  # `runs/*/` also matches splits/, logs/
    body = "\n".join(row for r in run_dirs for row in rows_for(r))
    table = header + body + "\n" + by_dataset_table(run_dirs)
    text = Path(out).read_text() if Path(out).exists() else ""
    text = _replace_between(text, "<!-- results:start -->", "<!-- results:end -->", table)
    for run in run_dirs:
        multi = multitask_tables(run, run.parent / "bundled-v1-scores")
        if multi:
            text = _replace_between(text, f"<!-- {run.name}:start -->", f"<!-- {run.name}:end -->", multi)
            print(multi)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(table)
    return table
