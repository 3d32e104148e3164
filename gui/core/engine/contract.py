"""The ONNX model contract, checked: input and output names, ranks and dtypes, and every field of the model card the app relies on.

Checked once when a file is loaded, so a foreign or damaged file is refused with a sentence
naming it and the reason (:class:`ModelContractError`), never a traceback on every row later.
"""

from __future__ import annotations

import json
from pathlib import Path

from gui.core.engine.ood import OodScorer
from gui.core.errors import FileProblem

INPUT = "image"
OUTPUTS = ("probabilities", "cam", "embedding")
OPTIONAL_OUTPUTS = ("type_probabilities", "heatmap", "sequence_probabilities")
#: The MR sequences a card may name (a sequence head's labels, held-out figures by sequence).
SEQUENCES = ("t1", "t1c", "t2", "flair")
CARD_KEY = "model_card"
REQUIRED_CARD_FIELDS = ("name", "version", "task", "labels", "no_tumor_labels", "input", "decision_threshold",
                        "calibration", "ood", "intended_use", "disclaimer")
DISCLAIMER = "Research use only, not a medical device. Not for diagnosis."


class ModelContractError(FileProblem):
    """A file is not a usable model of this contract; ``reason`` is written for a user."""


def validate_session(path: Path, session) -> dict:
    """Check names, ranks, dtypes and the model card; return the card."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT:
        raise ModelContractError(path, f"expected one input named '{INPUT}', found {[i.name for i in inputs]}")
    shape = inputs[0].shape
    if inputs[0].type != "tensor(float)" or len(shape) != 4 or shape[3] != 3:
        raise ModelContractError(path, f"input '{INPUT}' must be float32 [N, H, W, 3], found {inputs[0].type} {shape}")
    outputs = {o.name: o for o in session.get_outputs()}
    missing = [o for o in OUTPUTS if o not in outputs]
    if missing:
        raise ModelContractError(path, f"missing output(s) {missing}; found {sorted(outputs)}")
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_KEY not in meta:
        raise ModelContractError(path, "no model card in the file's metadata (was it made by `python -m export`?)")
    try:
        card = json.loads(meta[CARD_KEY])
    except json.JSONDecodeError as exc:
        raise ModelContractError(path, f"the model card is not valid JSON ({exc})") from exc
    validate_card(path, card, outputs)
    n_classes = outputs["probabilities"].shape[1]
    if isinstance(n_classes, int) and n_classes != len(card["labels"]):
        raise ModelContractError(path, f"{n_classes} outputs but {len(card['labels'])} labels in the card")
    size = card["input"]["size"]
    for axis, what in ((1, "high"), (2, "wide")):
        if isinstance(shape[axis], int) and shape[axis] not in (size, -1, 0):
            raise ModelContractError(path, f"input is {shape[axis]} pixels {what} but the card says {size}")
    return card


def _is_labels(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, str) and x for x in v) and len(set(v)) == len(v)


def validate_card(path: Path, card, outputs: dict) -> None:
    """Every field the app relies on, of the type it relies on: a foreign or damaged card is refused
    with a sentence here, never a traceback later."""
    from gui.core.engine.preprocess import PREPROCESSING
    from gui.core.readers.levels import INTENSITY_RULE

    if not isinstance(card, dict):
        raise ModelContractError(path, f"the model card must be a JSON object, not {type(card).__name__}")
    absent = [k for k in REQUIRED_CARD_FIELDS if k not in card]
    if absent:
        raise ModelContractError(path, f"the model card lacks {absent}")
    if not _is_labels(card["labels"]):
        raise ModelContractError(path, "the card's labels must be a list of distinct names")
    if not _is_labels(card["no_tumor_labels"]) or not set(card["no_tumor_labels"]) <= set(card["labels"]):
        raise ModelContractError(path, "the card's no-tumour labels must be some of its labels")
    if set(card["labels"]) == set(card["no_tumor_labels"]):
        raise ModelContractError(path, "every label of the card means 'no tumour': the model cannot find a tumour")
    threshold = card["decision_threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ModelContractError(path, f"the card's decision threshold must be a number between 0 and 1, not {threshold!r}")
    spec = card["input"]
    if not isinstance(spec, dict) or not isinstance(spec.get("size"), int) or isinstance(spec.get("size"), bool) \
            or not 8 <= spec["size"] <= 4096:
        raise ModelContractError(path, "the card's input must give a pixel size (an integer from 8 to 4096)")
    if spec.get("intensity", INTENSITY_RULE) != INTENSITY_RULE:
        raise ModelContractError(path, f"unknown input intensity rule {spec.get('intensity')!r}; this app knows {INTENSITY_RULE!r}")
    if spec.get("preprocessing", "pad-resize") not in PREPROCESSING:
        raise ModelContractError(path, f"unknown input preprocessing {spec.get('preprocessing')!r}; this app knows {list(PREPROCESSING)}")
    if not isinstance(card["name"], str) or not isinstance(card["version"], str) or not isinstance(card["task"], str):
        raise ModelContractError(path, "the card's name, version and task must be text")
    ranks = {"probabilities": (2,), "cam": (4,), "embedding": (2,), "type_probabilities": (2,), "heatmap": (3, 4),
             "sequence_probabilities": (2,)}
    for name, allowed in ranks.items():
        if name in outputs and (len(outputs[name].shape) not in allowed or outputs[name].type != "tensor(float)"):
            raise ModelContractError(path, f"output '{name}' must be a float32 tensor of rank {' or '.join(map(str, allowed))}")
    if "type_probabilities" in outputs:
        if not _is_labels(card.get("type_labels")):
            raise ModelContractError(path, "output 'type_probabilities' needs the card's 'type_labels'")
        n_types = outputs["type_probabilities"].shape[1]
        if isinstance(n_types, int) and n_types != len(card["type_labels"]):
            raise ModelContractError(path, f"{n_types} type outputs but {len(card['type_labels'])} type labels in the card")
    if "sequence_probabilities" in outputs:
        labels = card.get("sequence_labels")
        if not _is_labels(labels) or not set(labels) <= set(SEQUENCES):
            raise ModelContractError(path, f"output 'sequence_probabilities' needs the card's 'sequence_labels', "
                                           f"some of {list(SEQUENCES)}")
        n_seq = outputs["sequence_probabilities"].shape[1]
        if isinstance(n_seq, int) and n_seq != len(labels):
            raise ModelContractError(path, f"{n_seq} sequence outputs but {len(labels)} sequence labels in the card")
    by_sequence = card.get("held_out_by_sequence")
    if by_sequence is not None:
        if not isinstance(by_sequence, dict) or not set(by_sequence) <= set(SEQUENCES) or not all(
                isinstance(v, dict) and isinstance(v.get("sensitivity"), (int, float))
                and not isinstance(v.get("sensitivity"), bool) and 0 <= v["sensitivity"] <= 1
                for v in by_sequence.values()):
            raise ModelContractError(path, "the card's held-out figures by sequence must give a sensitivity from 0 "
                                           f"to 1 for some of {list(SEQUENCES)}")
    caution = card.get("caution")
    if caution is not None:
        band = caution.get("band_half_width") if isinstance(caution, dict) else None
        if isinstance(band, bool) or not isinstance(band, (int, float)) or not 0 <= band < 0.5:
            raise ModelContractError(path, "the card's caution band must be a number from 0 to 0.5")
        level = caution.get("heat_level", 0.5)
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
            raise ModelContractError(path, "the card's caution heat level must be a number between 0 and 1")
    rule = card.get("series_rule")
    if rule is not None:
        run = rule.get("run") if isinstance(rule, dict) else None
        threshold = rule.get("threshold") if isinstance(rule, dict) else None
        if (isinstance(run, bool) or not isinstance(run, int) or run < 1 or isinstance(threshold, bool)
                or not isinstance(threshold, (int, float)) or not 0 < threshold < 1):
            raise ModelContractError(path, "the card's series rule needs a whole number of slices 'run' >= 1 "
                                           "and a 'threshold' between 0 and 1")
    if not isinstance(card["ood"], dict):
        raise ModelContractError(path, "the card's out-of-distribution statistics must be a JSON object")
    try:
        OodScorer.from_card(card["ood"])
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ModelContractError(path, f"the card's out-of-distribution statistics are unusable ({exc})") from exc
