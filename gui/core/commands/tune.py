"""The headless ``tune`` command: time the engine layouts on this machine again and keep the fastest."""

from __future__ import annotations

import argparse
import sys

from gui.core.commands.common import add_precision_argument, note
from gui.core.engine import tuning
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import ModelContractError
from gui.core.engine.modelset import load_models


def tune_main(argv: list[str]) -> int:
    """``mri-classifier tune``: measure the engine layouts again, print them, keep the fastest."""
    p = argparse.ArgumentParser(prog="mri-classifier tune",
                                description="Time the batch engine's layouts on this machine and keep the fastest "
                                            "(done by itself before the first batch of 64 files or more).")
    p.add_argument("--model", action="append", metavar="FILE", help="ONNX model to tune for instead of the bundled ones")
    add_precision_argument(p)
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        classifier = Classifier(load_models(args.model, precision=args.precision, report=note))
    except ModelContractError as exc:
        print(f"error: cannot use model {exc}", file=sys.stderr)
        return 2
    best, rates = tuning.measure(classifier, lambda msg: print(msg, file=sys.stderr))
    tuning.keep(classifier, best, rates)
    for name, rate in rates.items():
        print(f"{rate:7.1f} images/s  {name}{'  <- kept' if name == best.describe() else ''}")
    print(f"kept in {tuning.settings_path()}")
    return 0
