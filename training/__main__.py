"""``python -m training audit|split|catalogue|features|front|finetune|choose|nested|ablation|multitask|score|caution|series|orientation|train|evaluate|report``: thin command-line entry point."""

from __future__ import annotations

import argparse
import json
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

    c = sub.add_parser("catalogue", help="every image of the data folders with label, mask, source, group, part")
    c.add_argument("data_dirs", nargs="+")
    c.add_argument("--out", default="runs/splits/multisource.json")

    f = sub.add_parser("features", help="cache frozen MobileNetV2 feature maps of a catalogue (resumable)")
    f.add_argument("--catalogue", default="runs/splits/multisource.json")
    f.add_argument("--weights", required=True, help="local ImageNet MobileNetV2 no-top weights (.h5)")
    f.add_argument("--out", default="runs/.cache/features")
    f.add_argument("--views", type=int, default=2, help="view 0 as read, views 1.. appearance-augmented")
    f.add_argument("--mirror", action="store_true", help="also the mirrored view (test-time augmentation, for the caution study)")

    fr = sub.add_parser("front", help="augmented views through the frozen front (block_12_add), cached (resumable)")
    fr.add_argument("--catalogue", default="runs/splits/multisource.json")
    fr.add_argument("--weights", required=True, help="local ImageNet MobileNetV2 no-top weights (.h5)")
    fr.add_argument("--out", default="runs/.cache/front")

    ft = sub.add_parser("finetune", help="LP-FT of block_13...Conv_1 + heads on cached views, every fold (resumable)")
    ft.add_argument("--front", default="runs/.cache/front")
    ft.add_argument("--catalogue", default="runs/splits/multisource.json")
    ft.add_argument("--weights", required=True, help="local ImageNet MobileNetV2 no-top weights (.h5)")
    ft.add_argument("--out", default="runs/finetune")
    ft.add_argument("--families", nargs="+", default=["as read", "geometry", "mild", "strong", "paste"])
    ft.add_argument("--epochs", type=int, default=3)
    ft.add_argument("--lr", type=float, default=1e-4)
    ft.add_argument("--freeze", action="store_true", help="train the head only (the augmented-views arm)")
    ft.add_argument("--folds", nargs="*")
    ft.add_argument("--swa", action="store_true", help="also score the average of each fold's epoch weights")
    ft.add_argument("--swa-from", type=int, default=1, help="the first epoch in that average (default 1)")
    ft.add_argument("--frozen-run", default="runs/multitask",
                    help="run whose per-fold heads start the fine-tuning; 'none': a fresh head (see --probe-epochs)")
    ft.add_argument("--probe-epochs", type=int, default=0,
                    help="first epochs that train the head alone at 10x the rate (a fresh head's linear probe)")
    ft.add_argument("--init", nargs=2, metavar=("RUN", "EPOCH"),
                    help="continue each fold from RUN/<fold>/epoch-EPOCH (taken over as epoch 0; with --frozen-run none)")
    ft.add_argument("--negative-peak", type=float, default=0.0,
                    help="weight of the cold-peak map term on tumour-free images (default 0: off)")
    ft.add_argument("--consistency", type=float, default=0.0,
                    help="weight of the P(tumour) consistency between a view and its turned partner (default 0: off)")

    ch = sub.add_parser("choose", help="epochs and operating point of a fine-tuned run, chosen on the pooled held-out folds")
    ch.add_argument("run", nargs="?", default="runs/finetune")
    ch.add_argument("--catalogue", default="runs/splits/multisource.json")

    ne = sub.add_parser("nested", help="each held-out fold by sequence, its epoch and threshold chosen on the other folds")
    ne.add_argument("run", nargs="?", default="runs/finetune-v4")
    ne.add_argument("--catalogue", default="runs/splits/multisource-v4.json")

    ab = sub.add_parser("ablation", help="the round-2 ablation tables into training/RESULTS.md")
    ab.add_argument("--catalogue", default="runs/splits/multisource.json")
    ab.add_argument("--out", default="training/RESULTS.md")

    m = sub.add_parser("multitask", help="train the multi-task head in-distribution and leave-one-source-out")
    m.add_argument("--catalogue", default="runs/splits/multisource.json")
    m.add_argument("--features", default="runs/.cache/features")
    m.add_argument("--out", default="runs/multitask")
    m.add_argument("--folds", nargs="*", help="fold names (default: in-distribution and every source)")
    m.add_argument("--epochs", type=int, default=20)
    m.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed (a seed ensemble: one run per seed)")
    m.add_argument("--balance-power", type=float, default=0.5,
                   help="weight of a (source, label) cell's images: 1/count**POWER (0 none, 1 every cell alike)")

    sc = sub.add_parser("score", help="score exported ONNX models through the app's engine on a fold's test images")
    sc.add_argument("models", nargs="+", help="ONNX files used together (detector first)")
    sc.add_argument("--fold", required=True, help="in-distribution or a source name (leave-one-source-out)")
    sc.add_argument("--catalogue", default="runs/splits/multisource.json")
    sc.add_argument("--out", help="also write the figures as JSON here")

    ca = sub.add_parser("caution", help="caution scores and a band rule measured on a multi-task run's folds")
    ca.add_argument("run", nargs="?", default="runs/multitask")
    ca.add_argument("--catalogue", default="runs/splits/multisource.json")
    ca.add_argument("--compare", nargs="*", metavar="SEED_RUN",
                    help="also compare mirror test-time augmentation and a seed ensemble with these runs "
                         "(python -m training multitask --seed N; needs the mirror view: features --mirror)")
    ca.add_argument("--features", default="runs/.cache/features")
    ca.add_argument("--pair", action="store_true",
                    help="also measure a diverse pair: the fine-tuned run's chosen epoch with the frozen model it started from")

    se = sub.add_parser("series", help="study verdict rule chosen and measured on the lgg volumes (held-out hospitals)")
    se.add_argument("run", nargs="?", default="runs/multitask")
    se.add_argument("--catalogue", default="runs/splits/multisource.json")
    se.add_argument("--check-model", nargs="*", metavar="ONNX",
                    help="also score the in-distribution test patients' volumes with these models through the app's engine")
    se.add_argument("--lgg", default="../shared/data/lgg", help="the lgg data folder (for --check-model)")

    o = sub.add_parser("orientation", help="how P(tumour) moves when a fold's test images are mirrored or turned")
    o.add_argument("model")
    o.add_argument("--catalogue", default="runs/splits/multisource.json")
    o.add_argument("--fold", default="in-distribution")
    o.add_argument("--out", help="write the figures as JSON here")

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
    r.add_argument("--weights", help="also draw feature-map and architecture figures of the multi-task run "
                                     "(training/figures/; needs the backbone weights)")

    args = p.parse_args(argv)
    if args.command == "audit":
        from training.audit import audit

        audit(args.data_dirs, args.out)
    elif args.command == "split":
        from training import split

        doc = split.make_split(args.data_dirs, args.task, seed=args.seed, holdout=args.holdout)
        split.save(doc, args.out)
        print(f"{args.out}: {doc['counts']}; groups {doc['groups']}; unreadable {len(doc['excluded_unreadable'])}")
    elif args.command == "catalogue":
        from training import catalogue, split

        doc = catalogue.build(args.data_dirs)
        split.save(doc, args.out)
        print(f"{args.out}: {len(doc['items'])} images; unreadable {len(doc['excluded_unreadable'])}")
        for source, counts in doc["counts"].items():
            print(f"  {source}: {dict(sorted(counts.items()))}")
    elif args.command == "features":
        from training import features, split

        doc = split.load(args.catalogue)
        for view in [*range(args.views), *([features.MIRROR_VIEW] if args.mirror else [])]:
            features.extract(doc, args.weights, args.out, view=view)
    elif args.command == "front":
        from training import front

        front.extract(args.catalogue, args.weights, args.out)
    elif args.command == "finetune":
        from training import finetune

        finetune.run(args.catalogue, args.front, args.out, args.weights, args.families, args.epochs, args.freeze,
                     args.lr, args.folds, args.swa, None if args.frozen_run == "none" else args.frozen_run,
                     args.probe_epochs, args.swa_from, args.init, args.negative_peak, args.consistency)
    elif args.command == "choose":
        from training import choose

        c = choose.write(args.run, args.catalogue)
        op = c["operating_point"]
        print(f"epoch {c['epoch']} (mean held-out AUC by epoch {json.dumps(c['mean_held_out_auc_by_epoch'])}); "
              f"threshold {op['threshold_before_calibration']:.2f} (shown as {op['threshold']:.0%}, calibration slope "
              f"{c['calibration']['slope']:.3f}): {op['rule']}; pooled {json.dumps(op['pooled'])}")
    elif args.command == "nested":
        from training import nested

        print(nested.table(nested.write(args.run, args.catalogue)))
    elif args.command == "ablation":
        from training import ablation

        print(ablation.write(args.catalogue, args.out))
    elif args.command == "multitask":
        from training import multitask

        multitask.run(args.catalogue, args.features, args.out, folds=args.folds, epochs=args.epochs,
                      seed=args.seed, balance_power=args.balance_power)
    elif args.command == "score":
        from pathlib import Path

        from training.score import score_models

        res = score_models(args.models, args.catalogue, args.fold)
        d = res["tumor_detection"]
        print(f"{args.fold}: n={res['n']} accuracy={d['accuracy']:.4f} sensitivity={d['sensitivity']} "
              f"specificity={d['specificity']} auc={d['roc_auc']} ece={res['ece']:.4f}")
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(res, indent=1))
    elif args.command == "caution":
        from training import caution

        result = caution.write(args.run, args.catalogue)
        print(f"{result['rule']}; per fold: " + "; ".join(
            f"{k} flagged {v['flagged_share']:.1%}, unflagged accuracy {v['accuracy_unflagged']}" for k, v in result["folds"].items()))
        if args.pair:
            from pathlib import Path

            paired = caution.pair(args.run, args.catalogue)
            (Path(args.run) / "caution-pair.json").write_text(json.dumps(paired, indent=1))
            for name, s in paired["schemes"].items():
                print(f"{name}: " + "; ".join(f"{f} acc {v['accuracy']:.3f} AUROC {v['error_auroc']} answered "
                                              f"{v['answered']:.1%} unflagged acc {v['accuracy_unflagged']}"
                                              for f, v in s["folds"].items()))
        if args.compare is not None:
            from pathlib import Path

            compared = caution.compare(args.run, args.compare, args.features, args.catalogue)
            (Path(args.run) / "caution-compare.json").write_text(json.dumps(compared, indent=1))
            for name, s in compared["schemes"].items():
                print(f"{name}: " + "; ".join(f"{f} acc {v['accuracy']:.3f} AUROC {v['error_auroc']} answered "
                                              f"{v['answered']:.1%} unflagged acc {v['accuracy_unflagged']}"
                                              for f, v in s["folds"].items()))
    elif args.command == "series":
        from training import series

        result = series.write(args.run, args.catalogue, args.check_model, args.lgg)
        print(f"rule {result['rule']}; pooled {json.dumps(result['pooled_with_final_rule'])}; nested per hospital: "
              + "; ".join(f"{h} sens {v['sensitivity']:.1%} spec {v['specificity']:.1%} key slice {v['key_slice_in_marked_range_pm1']:.1%} "
                          f"slice AUC {v['slice_auc']:.3f}" for h, v in result["hospitals"].items()))
    elif args.command == "orientation":
        from pathlib import Path

        from training.orientation import measure

        res = measure(args.model, args.catalogue, args.fold)
        for name, v in res.items():
            if isinstance(v, dict):
                print(f"{name}: " + ", ".join(f"{k} {x:.4f}" for k, x in v.items()))
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1))
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
        if args.weights:
            from pathlib import Path

            from training import figures, split

            for run in (Path(r) for r in args.runs):
                config_file = run / "config.json"
                if config_file.exists() and "multitask" in json.loads(config_file.read_text())["arch"]:
                    config = json.loads(config_file.read_text())
                    folder = Path(args.out).parent / "figures"
                    print(figures.activation_figure(args.weights, split.load(config["catalogue"]), folder / "activations.png"))
                    print(figures.architecture_figure(config, folder / "architecture.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
