"""``python -m training audit|split|train|evaluate|report``: thin command-line entry point."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    a = sub.add_parser("audit", help="inventory, duplicates and figures of datasets")
    a.add_argument("data_dirs", nargs="+")
    a.add_argument("--out", default="runs/audit")

    s = sub.add_parser("split", help="leakage-free train/val/test split by near-duplicate group")
    s.add_argument("data_dirs", nargs="+")
    s.add_argument("--task", choices=["binary", "tumor-type"], required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--holdout", help="dataset name to use as a cross-source test set (its images with no near-duplicate elsewhere)")

    t = sub.add_parser("train", help="train one model")
    t.add_argument("--arch", choices=["baseline", "cnn", "mobilenetv2"], required=True)
    t.add_argument("--splits", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--weights", help="local ImageNet MobileNetV2 no-top weights (.h5)")
    t.add_argument("--size", type=int, default=224)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every phase's epoch count (smoke runs)")

    e = sub.add_parser("evaluate", help="test metrics and plots of a run")
    e.add_argument("run")
    e.add_argument("--split", default="test", choices=["train", "val", "test"])
    e.add_argument("--splits", help="split file to evaluate on (default: the run's own); for cross-source tests")
    e.add_argument("--name", help="name of this evaluation in metrics.json (default: the part name)")

    r = sub.add_parser("report", help="Markdown table comparing evaluated runs")
    r.add_argument("runs", nargs="+")
    r.add_argument("--out", default="training/RESULTS.md")

    args = p.parse_args(argv)
    if args.command == "audit":
        from training.audit import audit

        audit(args.data_dirs, args.out)
    elif args.command == "split":
        from training import split

        doc = split.make_split(args.data_dirs, args.task, seed=args.seed, holdout=args.holdout)
        split.save(doc, args.out)
        print(f"{args.out}: {doc['counts']}; groups {doc['groups']}; unreadable {len(doc['excluded_unreadable'])}")
    elif args.command == "train":
        from training.train import train

        train(args.arch, args.splits, args.out, weights=args.weights, size=args.size, batch=args.batch,
              seed=args.seed, epochs_scale=args.epochs_scale)
    elif args.command == "evaluate":
        from training.evaluate import evaluate

        evaluate(args.run, part=args.split, splits_path=args.splits, name=args.name)
    elif args.command == "report":
        from training.report import write_report

        write_report(args.runs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
