"""The ONNX model contract and an ONNX Runtime session that honours it. No Qt, no TensorFlow.

Every model the app runs is one ONNX file that carries all it needs:

* input ``image``: float32 ``[N, H, W, 3]``, RGB 0-255 (all scaling happens in the graph);
* output ``probabilities``: float32 ``[N, C]``, calibrated (temperature scaling);
* output ``cam``: float32 ``[N, h, w, C]``, class activation map of every class;
* output ``embedding``: float32 ``[N, F]``, pooled features for the out-of-distribution score;
* ``metadata_props["model_card"]``: JSON model card (labels in output order, which labels
  mean "no tumour", input size and preprocessing, metrics, calibration, OOD statistics, intended use).

Optional outputs of a multi-task model (one backbone pass for every answer):

* ``type_probabilities``: float32 ``[N, T]``, P(type | tumour) for the card's ``type_labels``;
* ``heatmap``: float32 ``[N, h, w]`` or ``[N, h, w, 1]``, P(tumour) at each location in [0, 1],
  shown instead of the class activation map when present.

:func:`load_model` refuses anything else with :class:`ModelContractError`, whose message
names the file and what is wrong, so a user who loads a foreign file gets a sentence,
not a traceback.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gui.core.errors import FileProblem
from gui.core.ood import OodScorer
from gui.core.study import StudyRule

INPUT = "image"
OUTPUTS = ("probabilities", "cam", "embedding")
OPTIONAL_OUTPUTS = ("type_probabilities", "heatmap")
CARD_KEY = "model_card"
REQUIRED_CARD_FIELDS = ("name", "version", "task", "labels", "no_tumor_labels", "input", "decision_threshold",
                        "calibration", "ood", "intended_use", "disclaimer")
DISCLAIMER = "Research use only, not a medical device. Not for diagnosis."


class ModelContractError(FileProblem):
    """A file is not a usable model of this contract; ``reason`` is written for a user."""


@dataclass
class Prediction:
    """What one model says about a batch of images."""

    probabilities: np.ndarray  # [N, C]
    cam: np.ndarray  # [N, h, w, C]
    ood_score: np.ndarray  # [N]
    ood_flag: np.ndarray  # [N] bool
    type_probabilities: np.ndarray | None = None  # [N, T], P(type | tumour), multi-task models only
    heatmap: np.ndarray | None = None  # [N, h, w], P(tumour) per location, multi-task models only


class Model:
    """A validated ONNX model and its session, sized for a desktop (no busy-spinning threads)."""

    def __init__(self, path: Path, session, card: dict, threads: int | None = None) -> None:
        self.path = path
        self.session = session
        #: The intra-op threads of ``session``; a batch layout may ask for other counts (:meth:`session_for`).
        self.threads = threads
        self._sessions: dict[int, object] = {}  # other thread counts' sessions, made on first use
        self._sessions_lock = threading.Lock()
        self.card = card
        self.labels: list[str] = list(card["labels"])
        self.no_tumor_labels: list[str] = list(card["no_tumor_labels"])
        self.input_size = int(card["input"]["size"])
        self.preprocessing: str = card["input"].get("preprocessing", "pad-resize")
        self.threshold = float(card["decision_threshold"])
        #: Half-width of the band of P(tumour) around the threshold flagged "low confidence" (0: none).
        self.caution_band = float((card.get("caution") or {}).get("band_half_width", 0.0))
        #: The tumour map's peak at or above which the map "says tumour" (the disagreement check): chosen
        #: on held-out collections for a fine 14x14 map, whose peak runs high on normal scans too.
        self.heat_level = float((card.get("caution") or {}).get("heat_level", 0.5))
        self.ood = OodScorer.from_card(card["ood"])
        #: How a study's slices make its verdict (``gui.core.study``).
        self.study_rule = StudyRule.from_card(card.get("series_rule"), self.threshold)
        outputs = {o.name for o in session.get_outputs()}
        self.extra_outputs = [o for o in OPTIONAL_OUTPUTS if o in outputs]
        self.type_labels: list[str] = list(card.get("type_labels", [])) if "type_probabilities" in outputs else []
        batch = session.get_inputs()[0].shape[0]
        #: The graph's batch size when it is fixed (an export with a static batch of 1), else None.
        self.fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None

    @property
    def name(self) -> str:
        return f"{self.card['name']} {self.card['version']}"

    @property
    def is_binary_detector(self) -> bool:
        return self.card["task"] == "binary"

    def tumor_probability(self, probabilities: np.ndarray) -> np.ndarray:
        """``1 - P(no-tumour classes)``: the figure the decision threshold applies to."""
        no = [self.labels.index(c) for c in self.no_tumor_labels]
        return 1.0 - probabilities[:, no].sum(axis=1)

    @property
    def has_type_head(self) -> bool:
        return bool(self.type_labels)

    def session_for(self, threads: int | None) -> object:
        """A session of this model with ``threads`` intra-op threads (None: the loaded one). The batch
        engine may run several single-threaded batches at once, which on 2 cores gets more images per
        second than one batch spread over both (``gui.core.tuning``); the window keeps its own session
        over every core for the lowest single-image latency. Made once, on first use; ONNX Runtime
        sessions may be run from several threads at once."""
        if threads is None or threads == self.threads:
            return self.session
        with self._sessions_lock:
            if threads not in self._sessions:
                import onnxruntime as ort

                self._sessions[threads] = ort.InferenceSession(str(self.path), sess_options=session_options(threads),
                                                               providers=["CPUExecutionProvider"])
            return self._sessions[threads]

    def predict(self, images: np.ndarray, threads: int | None = None) -> Prediction:
        """Run a batch ``float32 [N, S, S, 3]`` (RGB 0-255, already fitted to the input size) on the
        session with ``threads`` intra-op threads (:meth:`session_for`); a graph whose batch
        dimension is fixed (say at 1) runs it in chunks of that size."""
        images = np.asarray(images, np.float32)
        names = list(OUTPUTS) + self.extra_outputs
        session = self.session_for(threads)
        if self.fixed_batch is None or len(images) == self.fixed_batch:
            outs = session.run(names, {INPUT: images})
        else:
            b, n = self.fixed_batch, len(images)
            padded = np.concatenate([images, np.zeros((-n % b,) + images.shape[1:], np.float32)])
            chunks = [session.run(names, {INPUT: padded[s:s + b]}) for s in range(0, len(padded), b)]
            outs = [np.concatenate([c[k] for c in chunks])[:n] for k in range(len(names))]
        probs, cam, emb, *extra = outs
        named = dict(zip(self.extra_outputs, extra))
        heat = named.get("heatmap")
        if heat is not None and heat.ndim == 4:
            heat = heat[..., 0]
        score = self.ood.score(emb)
        # NaN is not <= anything: an embedding the model could not compute is "unlike the training images"
        return Prediction(probs, cam, score, ~(score <= self.ood.threshold), named.get("type_probabilities"), heat)


def session_options(threads: int | None = None):
    """Desktop-friendly ONNX Runtime options: threads = cores unless given, and no spinning when idle."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or cpu_count()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def cpu_count() -> int:
    """The cores this process may use (its affinity where the platform says, else every core)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def load_model(path: str | Path, threads: int | None = None) -> Model:
    """Open and validate a model file; raises :class:`ModelContractError` with the reason."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelContractError(path, "model file not found")
    opts = session_options(threads)
    try:
        session = ort.InferenceSession(str(path), sess_options=opts,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelContractError(path, f"not a valid ONNX model ({first})") from exc
    card = validate_session(path, session)
    try:
        model = Model(path, session, card, opts.intra_op_num_threads)
    except ValueError as exc:
        raise ModelContractError(path, f"the card's out-of-distribution statistics do not fit: {exc}") from exc
    smoke_test(model)
    return model


def smoke_test(model: Model) -> None:
    """Run the model once on a blank input before any work: a model that cannot run, or whose outputs do
    not fit its card, is refused now with a sentence (exit 2 in ``classify``), never on every row later."""
    size = model.input_size
    try:
        probs, _cam, emb, *_extra = model.session.run(list(OUTPUTS) + model.extra_outputs,
                                                      {INPUT: np.zeros((model.fixed_batch or 1, size, size, 3), np.float32)})
    except Exception as exc:  # onnxruntime's own exception types
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelContractError(model.path, f"the model fails on a test input of {size}x{size} pixels ({first})") from exc
    if probs.ndim != 2 or probs.shape[1] != len(model.labels):
        raise ModelContractError(model.path, f"the model gives {list(probs.shape)} probabilities for {len(model.labels)} labels")
    try:
        model.ood.check(int(emb.shape[-1]))
    except ValueError as exc:
        raise ModelContractError(model.path, f"the card's out-of-distribution statistics do not fit: {exc}") from exc


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
    from gui.core.preprocess import PREPROCESSING
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
    ranks = {"probabilities": (2,), "cam": (4,), "embedding": (2,), "type_probabilities": (2,), "heatmap": (3, 4)}
    for name, allowed in ranks.items():
        if name in outputs and (len(outputs[name].shape) not in allowed or outputs[name].type != "tensor(float)"):
            raise ModelContractError(path, f"output '{name}' must be a float32 tensor of rank {' or '.join(map(str, allowed))}")
    if "type_probabilities" in outputs:
        if not _is_labels(card.get("type_labels")):
            raise ModelContractError(path, "output 'type_probabilities' needs the card's 'type_labels'")
        n_types = outputs["type_probabilities"].shape[1]
        if isinstance(n_types, int) and n_types != len(card["type_labels"]):
            raise ModelContractError(path, f"{n_types} type outputs but {len(card['type_labels'])} type labels in the card")
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
