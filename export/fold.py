"""A held-out fold's own model as an app file: what issue 31 checks int8 on, fold by fold.

    python -m export fold runs/refold-v4n --fold radiopaedia --choice runs/finetune-v4n/nested.json --out F.onnx

The shipped file trained on every source, so it cannot say how int8 behaves on a collection it never
saw; a leave-one-source-out fold's model can. This builds that fold's pixel model the way the shipped
file is built (``export.finetuned.build_keras``: the fold's chosen epoch, its nested threshold
calibrated to show as 50 %, Platt slope of the other folds; ``training/nested.py`` chose both without
the fold), so int8 is compared at the same decision the app would take. The card is the shipped
file's, named for the fold and marked ``held_out_fold``: the input rule is the same, and nothing else
on the card describes this model, so it is for measuring, never for shipping.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from export import convert
from export.finetuned import build_keras
from gui.core.engine.model import load_model
from training import multitask as mt


def export_fold(run_dir: str, fold: str, out: str, weights: str, choice_file: str, card_from: str) -> dict:
    """Write ``fold``'s model of ``run_dir`` at the epoch and operating point ``choice_file`` (a
    ``nested.json``) chose for it to ``out``; returns the fold's choice."""
    run = Path(run_dir)
    choice = json.loads(Path(choice_file).read_text())[fold]
    epoch = choice["epoch"]
    metrics = json.loads((run / fold / f"metrics-{epoch}.json").read_text())
    calibration = {"anchor": choice["threshold"], "slope": choice["calibration"]["slope"]}
    model, _trainable, _head, _t = build_keras(weights, run / fold / f"epoch-{epoch}.weights.h5",
                                              metrics["temperature"], mt.labels_of(run), calibration)
    shipped = load_model(card_from).card
    card = dict(shipped, name=f"{shipped['name']} (held-out fold {fold})",
                held_out_fold={"fold": fold, "run": str(run), "epoch": epoch, "threshold": choice["threshold"],
                               "slope": choice["calibration"]["slope"], "chosen_on": choice.get("chosen_on"),
                               "use": "measurement only: trained without this fold's source"})
    with tempfile.TemporaryDirectory() as tmp:
        draft = convert.to_onnx(model, Path(tmp) / "fold.onnx")
        convert.publish(draft, card, out)
    return choice
