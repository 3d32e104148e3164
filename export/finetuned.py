"""Export the fine-tuned multi-task run (``python -m training finetune`` + ``choose``) as one ONNX file.

The graph is the whole path from pixels: ImageNet MobileNetV2's front (frozen), the fine-tuned
``block_13`` ... ``Conv_1``, the head and the 14x14 heatmap, with the same contract outputs as the
frozen multi-task model (``export/multitask.py``: same verification, same checks), and the
calibration chosen on the held-out folds folded in. The card carries the operating point chosen on
the pooled held-out folds (``runs/<run>/choice.json``), the held-out figures it was chosen on, the
orientation figures (``orientation.json``) and the study rule; data, sources and split come from the
run's own catalogue.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.special import logit

from export import card as cards, convert
from export.multitask import contract_model, draft_and_verify, ood_statistics
from training import finetune as ft, front
from training import multitask as mt
from training import split as splits

SHIPPED_FOLD = "in-distribution"


def build_keras(weights: str, fold_weights: Path, temperature: float, labels: tuple[list[str], list[str]],
                calibration: dict | None = None):
    """(the pixel model with the contract's outputs, the trainable model on front maps, the head, the
    temperature the graph divides by). A ``calibration`` (``choose.py``'s Platt anchored at the threshold,
    ``sigmoid(slope * (logit(p) - logit(anchor)))``) is folded into the graph: the detector's tumour bias
    moves by ``-T * logit(anchor)`` and the temperature becomes ``T / slope``, so ``probabilities`` *is*
    the shown probability and the CAM stays exact (softmax((mean(cam) + bias) / T'))."""
    full, model, head, _ = ft.build(weights, None, labels=labels)
    model.load_weights(fold_weights)
    if calibration:
        kernel, bias = head.get_layer("logits").get_weights()
        anchor = float(calibration["anchor"])
        bias = bias.copy()
        bias[1] -= temperature * float(logit(anchor))
        head.get_layer("logits").set_weights([kernel, bias])
        temperature = temperature / float(calibration["slope"])
    fmap, expand = ft.tail_of(full, full.get_layer(front.LAYER).output)
    out = ft.heads_on(model, head, fmap, expand)
    return contract_model(full.inputs, out, head, temperature, "heat14_logits", ft.HEAT_GRID), model, head, temperature


def export_finetuned(run_dir: str, out: str, weights: str, name: str = "Tumour model (MobileNetV2, fine-tuned multi-task)",
                     version: str = "3.0.0", seed: int = 0) -> dict:
    run = Path(run_dir)
    choice = json.loads((run / "choice.json").read_text())
    metrics = json.loads((run / SHIPPED_FOLD / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    folds = {p.parent.name: json.loads(p.read_text()) for p in sorted(run.glob("*/metrics.json"))}
    doc = splits.load(config["catalogue"])
    t0 = time.time()
    labels = mt.labels_of(run)
    calibration = choice.get("calibration")
    model, trainable, head, temperature = build_keras(
        weights, run / SHIPPED_FOLD / f"epoch-{choice['epoch']}.weights.h5", metrics["temperature"], labels, calibration)
    mm, meta = front.load(config["front_dir"])
    f0 = mm[0]
    rng = np.random.default_rng(seed)
    ood = ood_statistics(doc, lambda idx: ft.predict(trainable, np.asarray(f0[idx]))["embedding"], rng)
    out_path = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        draft, report = draft_and_verify(
            model, Path(tmp), doc, rng, lambda idx: ft.predict(trainable, np.asarray(f0[idx]), temperature)
            ["probabilities"], head.get_layer("logits").get_weights()[1], temperature, meta)
        before = json.loads((Path(config["init"][0]) / "config.json").read_text()) if config.get("init") else None
        arch = ARCH.format(sequence="sequence and " if labels[1] else "and ")
        card_config = {**mt.data_config(doc, config["catalogue"]), "arch": arch, "parameters": int(model.count_params()),
                       "type_labels": labels[0],
                       "method": {"fine_tuning": config, **({"continued_from": before} if before else {}),
                                  "views": "as read + the families of training/views.py, one drawn per image and epoch"}}
        extras = {name: json.loads((run / f"{name}.json").read_text()) if (run / f"{name}.json").exists() else None
                  for name in ("caution", "series", "orientation")}
        epochs = choice["epoch"] if isinstance(choice["epoch"], int) else \
            f"the average of epochs {metrics['averaged_epochs'][0]}-{metrics['averaged_epochs'][-1]}'s weights"
        shipped = {**metrics, "epochs": epochs}
        card = cards.build_multitask_card(name, version, card_config, {**folds, SHIPPED_FOLD: shipped}, report, ood,
                                          str(run), extras["caution"], extras["series"], grid=ft.HEAT_GRID,
                                          operating_point=choice, orientation=extras["orientation"],
                                          sequence_labels=labels[1],
                                          calibration=_calibration_entry(metrics["temperature"], temperature, calibration))
        convert.publish(draft, card, out_path)
    print(f"{out_path}: {out_path.stat().st_size / 1e6:.1f} MB in {time.time() - t0:.0f} s; verification "
          f"{json.dumps(report)}; OOD threshold {ood['threshold']:.2f}; decision threshold {card['decision_threshold']}")
    return card


def _calibration_entry(validation_temperature: float, temperature: float, calibration: dict | None) -> dict | None:
    """The card's calibration field for a run calibrated on its held-out folds (None: temperature only)."""
    if not calibration:
        return None
    return {"method": "temperature scaling on the validation part, then Platt scaling anchored at the chosen threshold "
                      "(it shows as 50 %), slope fitted on the held-out source folds pooled (training/choose.py); both "
                      "folded into the graph", "temperature": temperature,
            "validation_temperature": validation_temperature, "slope": calibration["slope"],
            "anchor_threshold": calibration["anchor"]}


ARCH = ("mobilenetv2-multitask-finetuned (ImageNet MobileNetV2: front to block_12_add frozen, block_13...Conv_1 "
        "fine-tuned after a linear probe (LP-FT); 1x1-conv adapter + detector, type, {sequence}14x14 heatmap heads)")
