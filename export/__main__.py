"""``python -m export runs/NAME --out assets/models/NAME.onnx``: thin command-line entry point."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
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
        if "multitask" in json.loads((Path(args.run) / "config.json").read_text())["arch"]:
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
