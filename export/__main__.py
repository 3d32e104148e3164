"""``python -m export runs/NAME --out assets/models/NAME.onnx`` (and ``recard``, ``int8``, ``fold``, ``int8-folds``): thin command-line entry point."""

from __future__ import annotations

import argparse
import sys


def recard(argv: list[str]) -> int:
    """``python -m export recard MODEL.onnx --run runs/multitask``: the card's input and study rules
    made again, and the run's caution rule and orientation figures (measured on this very file) added (export.card.refresh);
    the graph untouched, checked by the app's loader before it replaces the file."""
    import json
    from pathlib import Path

    from export.card import refresh
    from export.convert import replace_card
    from gui.core.engine.model import load_model

    p = argparse.ArgumentParser(prog="python -m export recard")
    p.add_argument("model")
    p.add_argument("--run", default="runs/multitask", help="the run whose series.json holds the study rule")
    p.add_argument("--by-sequence", nargs="+", metavar="SCORED.json", default=[],
                   help="`python -m training score` results of this file on folds it never trained on: the card's "
                        "held-out figures by sequence (the app cautions a sequence below 85 %% sensitivity)")
    p.add_argument("--nested", action="store_true",
                   help="instead: the run's nested.json (`python -m training nested`), each sequence's mean over the "
                        "held-out folds (for a file that trained on every source)")
    args = p.parse_args(argv)
    series_file = Path(args.run) / "series.json"
    series = json.loads(series_file.read_text()) if series_file.exists() else None
    orientation_file = Path(args.run) / "orientation.json"
    orientation = json.loads(orientation_file.read_text()) if orientation_file.exists() else None
    caution_file = Path(args.run) / "caution.json"
    caution = json.loads(caution_file.read_text()) if caution_file.exists() else None
    scored = [json.loads(Path(f).read_text()) for f in args.by_sequence]
    nested_file = Path(args.run) / "nested.json"
    nested = json.loads(nested_file.read_text()) if args.nested else None
    card = refresh(load_model(args.model).card, series, orientation, caution, scored, nested)
    replace_card(args.model, card)
    print(f"{args.model}: input rule {card['input']['intensity']}, study rule {card.get('series_rule', {}).get('rule')}")
    return 0


def int8(argv: list[str]) -> int:
    """``python -m export int8 MODEL.onnx --out assets/models/int8/MODEL.onnx``: the model's int8 file by
    issue 31's recipe (``export.int8``), written only when it keeps float32's answers."""
    from pathlib import Path

    from export.int8 import FLOAT_BLOCKS, build_int8
    from export.verify import VerificationError

    p = argparse.ArgumentParser(prog="python -m export int8")
    p.add_argument("model", help="the float32 model file")
    p.add_argument("--out", required=True, help="the int8 file to write (the app looks in assets/models/int8/)")
    p.add_argument("--catalogue", default="runs/splits/multisource-v4.json",
                   help="the split whose in-distribution training part calibrates and whose test part checks")
    p.add_argument("--fold", help="a held-out fold of the catalogue (a leave-one-source-out fold's own model): "
                                  "calibrate on its training part, check on the source it never saw")
    p.add_argument("--report", help="also write the figures here as JSON, whether or not the file passes")
    p.add_argument("--test-per-cell", type=int,
                   help="compare on at most this many test images of each (source, sequence) cell (default: 120 "
                        "in-distribution, every image of a --fold)")
    p.add_argument("--float-blocks", type=int, default=FLOAT_BLOCKS,
                   help=f"keep ImageNet MobileNetV2's blocks 0 .. N-1 in float32 (default {FLOAT_BLOCKS}, the shipped recipe)")
    args = p.parse_args(argv)
    try:
        figures = build_int8(Path(args.model), Path(args.out), Path(args.catalogue), args.fold,
                             Path(args.report) if args.report else None, args.float_blocks,
                             test_per_cell=args.test_per_cell)
    except VerificationError as exc:
        print(f"int8 FAILED its check, nothing written: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: same answer on {figures['same_answer']:.2%} of {figures['n']} test images, mean |dP| "
          f"{figures['mean_abs_dp']:.4f}, largest AUC move of a source or sequence {figures['max_auc_move']:.4f}")
    for group in ("auc", "auc_by_cell"):
        for name, auc in figures[group].items():
            print(f"  {name:18s} n={auc['n']:5d} AUC {auc['float32']:.4f} -> {auc['int8']:.4f}")
    point = figures["pointing_game"]
    if point["float32"]["n"]:
        print(f"  pointing game on {point['float32']['n']} masked tumours: heatmap {point['float32']['heatmap']:.2%} -> "
              f"{point['int8']['heatmap']:.2%}")
    return 0


def fold(argv: list[str]) -> int:
    """``python -m export fold RUN --fold NAME --choice nested.json --out F.onnx``: a held-out fold's own
    model as an app file, for measuring (``export.fold``)."""
    from export.fold import export_fold

    p = argparse.ArgumentParser(prog="python -m export fold")
    p.add_argument("run", help="the fine-tuned run holding the fold's epoch weights")
    p.add_argument("--fold", required=True)
    p.add_argument("--choice", required=True, help="the nested.json whose epoch and operating point of the fold apply")
    p.add_argument("--out", required=True)
    p.add_argument("--card-from", default="assets/models/tumor-multitask.onnx",
                   help="the shipped file whose card (input rule, labels) the fold's file takes")
    p.add_argument("--weights", default="../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5")
    args = p.parse_args(argv)
    choice = export_fold(args.run, args.fold, args.out, args.weights, args.choice, args.card_from)
    print(f"{args.out}: fold {args.fold}, epoch {choice['epoch']}, threshold {choice['threshold']} shown as 50 %")
    return 0


def int8_folds(argv: list[str]) -> int:
    """``python -m export int8-folds runs/int8-folds``: the fold reports as a table and whether issue 31's
    rule holds on every held-out fold (exit 0 only then: int8 may become the default)."""
    import json
    from pathlib import Path

    from export.int8 import holds, summary
    from training import catalogue, split as splits

    p = argparse.ArgumentParser(prog="python -m export int8-folds")
    p.add_argument("reports", help="the folder of FOLD.json reports (training/int8_folds.sh)")
    p.add_argument("--catalogue", default="runs/splits/multisource-v4.json")
    p.add_argument("--card", metavar="INT8.onnx",
                   help="also write each fold's figures into this int8 file's card (precision.held_out), which the "
                        "app shows beside the in-distribution figure")
    args = p.parse_args(argv)
    doc = splits.load(args.catalogue)
    folds = [*doc["sources"], *catalogue.SEQUENCE_FOLDS]
    reports = {f.stem: json.loads(f.read_text()) for f in sorted(Path(args.reports).glob("*.json"))}
    table, every = summary(reports, folds)
    print(table)
    if args.card:
        from export.convert import replace_card
        from export.int8 import held_out_entry
        from gui.core.engine.model import load_model

        card = load_model(args.card).card
        if (card.get("precision") or {}).get("arithmetic") != "int8":
            print(f"{args.card}: not an int8 file, its card left alone", file=sys.stderr)
            return 2
        replace_card(args.card, dict(card, precision={**card["precision"], "held_out": held_out_entry(reports)}))
        print(f"{args.card}: card's precision.held_out now lists {', '.join(sorted(reports))}")
    failed = [f for f in folds if f in reports and not holds(reports[f])]
    missing = [f for f in folds if f not in reports]
    print("the rule holds on every held-out fold" if every else
          f"the rule does not hold: fails on {', '.join(failed) or 'none'}; not measured: {', '.join(missing) or 'none'}")
    return 0 if every else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["recard"]:
        return recard(argv[1:])
    if argv[:1] == ["int8"]:
        return int8(argv[1:])
    if argv[:1] == ["fold"]:
        return fold(argv[1:])
    if argv[:1] == ["int8-folds"]:
        return int8_folds(argv[1:])
    p = argparse.ArgumentParser(prog="python -m export", description="Export a trained run to the app's ONNX contract, verified.")
    p.add_argument("run", help="training run folder (runs/NAME)")
    p.add_argument("--out", required=True, help="ONNX file to write")
    p.add_argument("--name", help="model name in the card (default: the run's folder name)")
    p.add_argument("--version", help="model version in the card (default: 1.0.0; multi-task: 2.0.0)")
    p.add_argument("--quantize", choices=["int8"], help="also try static int8 quantization (kept only if it holds accuracy and is faster)")
    p.add_argument("--weights", default="../shared/weights/mobilenet_v2_1.0_224_imagenet_no_top.weights.h5",
                   help="ImageNet MobileNetV2 no-top weights (multi-task runs: the frozen backbone)")
    args = p.parse_args(argv)
    import json
    from pathlib import Path

    from export.verify import VerificationError

    try:
        if (Path(args.run) / "choice.json").exists():
            from export.finetuned import export_finetuned

            given = {k: v for k, v in (("name", args.name), ("version", args.version)) if v}
            export_finetuned(args.run, args.out, args.weights, **given)
        elif "multitask" in json.loads((Path(args.run) / "config.json").read_text())["arch"]:
            from export.multitask import export_multitask

            given = {k: v for k, v in (("name", args.name), ("version", args.version)) if v}
            export_multitask(args.run, args.out, args.weights, **given)
        else:
            from export.pipeline import export_run

            export_run(args.run, args.out, name=args.name, version=args.version or "1.0.0",
                       quantize_int8=args.quantize == "int8")
    except VerificationError as exc:
        print(f"export FAILED verification, nothing written: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
