"""An ONNX Runtime session that honours the model contract: load, a blank test run, run. No Qt, no TensorFlow.

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
not a traceback. The contract itself (names, shapes, the card's fields) is checked in :mod:`gui.core.engine.contract`;
this module loads a file, runs it and answers for it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gui.core.engine.contract import INPUT, OUTPUTS, OPTIONAL_OUTPUTS, ModelContractError, validate_session
from gui.core.engine.ood import OodScorer
from gui.core.engine.precision import FP32, INT8, NAMES as PRECISION_NAMES
from gui.core.engine.study import StudyRule


@dataclass
class Prediction:
    """What one model says about a batch of images."""

    probabilities: np.ndarray  # [N, C]
    cam: np.ndarray  # [N, h, w, C]
    ood_score: np.ndarray  # [N]
    ood_flag: np.ndarray  # [N] bool
    type_probabilities: np.ndarray | None = None  # [N, T], P(type | tumour), multi-task models only
    heatmap: np.ndarray | None = None  # [N, h, w], P(tumour) per location, multi-task models only
    sequence_probabilities: np.ndarray | None = None  # [N, Q], P(sequence), models with a sequence head


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
        #: How a study's slices make its verdict (``gui.core.engine.study``).
        self.study_rule = StudyRule.from_card(card.get("series_rule"), self.threshold)
        outputs = {o.name for o in session.get_outputs()}
        self.extra_outputs = [o for o in OPTIONAL_OUTPUTS if o in outputs]
        self.type_labels: list[str] = list(card.get("type_labels", [])) if "type_probabilities" in outputs else []
        self.sequence_labels: list[str] = (list(card.get("sequence_labels", []))
                                           if "sequence_probabilities" in outputs else [])
        #: Held-out tumour sensitivity by sequence, where the card gives it (a caution below SEQUENCE_CAUTION).
        self.sensitivity_by_sequence: dict[str, float] = {
            q: float(v["sensitivity"]) for q, v in (card.get("held_out_by_sequence") or {}).items()}
        batch = session.get_inputs()[0].shape[0]
        #: The graph's batch size when it is fixed (an export with a static batch of 1), else None.
        self.fixed_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None

    @property
    def precision(self) -> str:
        """The arithmetic this file runs in, as its card says (``export.int8``); a card without it: float32."""
        return INT8 if (self.card.get("precision") or {}).get("arithmetic") == INT8 else FP32

    @property
    def name(self) -> str:
        """Name and version, and "int8" for an int8 file: every place that names the model says which runs."""
        suffix = f" {PRECISION_NAMES[INT8]}" if self.precision == INT8 else ""
        return f"{self.card['name']} {self.card['version']}{suffix}"

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
        second than one batch spread over both (``gui.core.engine.tuning``); the window keeps its own session
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
        return Prediction(probs, cam, score, ~(score <= self.ood.threshold), named.get("type_probabilities"), heat,
                          named.get("sequence_probabilities"))


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
