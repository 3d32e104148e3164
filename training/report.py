"""Side-by-side Markdown table of every evaluated run (``training/RESULTS.md``)."""

from __future__ import annotations

import json
from pathlib import Path


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def rows_for(run: Path) -> list[str]:
    config = json.loads((run / "config.json").read_text())
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
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    if start in text and end in text:
        text = text[: text.index(start) + len(start)] + "\n" + table + text[text.index(end):]
    else:
        text = text + f"\n{start}\n{table}{end}\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text)
    print(table)
    return table
