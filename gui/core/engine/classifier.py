"""The models used together on fitted images: the answer, its type, its cautions and its heatmap.

No Qt: the window, the batch and the headless command share it (``gui.core.engine.stream`` feeds it).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from gui.core.engine import study
from gui.core.engine.model import Model
from gui.core.engine.heatmap import normalise_cam
from gui.core.engine.preprocess import ModelInput, model_input_scaled, model_need
from gui.core.readers.scan import ModelNeed
from gui.core.readers.sequence import SEQUENCE_NAMES
from gui.core.engine.result import Result

OOD_MESSAGE = "image looks unlike the brain MRI the model was trained on"
LOW_CONFIDENCE_MESSAGE = "low confidence: the answer is close to the decision threshold"
DISAGREE_MESSAGE = "the models disagree"
NO_HEAD_MESSAGE = "no head found in the image"
#: Held-out tumour sensitivity on a sequence below which an answer on that sequence carries a caution.
SEQUENCE_CAUTION = 0.85
#: ``Result.probabilities`` key suffix of a model's type head (the detector's group has the model name).
TYPE_GROUP_SUFFIX = " type"
#: How a model wants its input: (pixel size, preprocessing name of ``gui.core.engine.preprocess.model_input``).
InputKey = tuple[int, str]
#: (probability group, label, column) of each ``p_`` column of the CSV.
ProbabilityColumns = list[tuple[str, str, str]]


class Classifier:
    """The models used together: a tumour detector and, optionally, a tumour-type answer.

    The first binary model decides "tumour / no tumour"; with none loaded, the type model's
    ``1 - P(no tumour)`` does. The tumour type comes from the detector's own type head (a
    multi-task model) or else from a type model.
    """

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ValueError("no model loaded")
        self.models = list(models)
        binary = [m for m in self.models if m.is_binary_detector]
        typed = [m for m in self.models if not m.is_binary_detector]
        self.detector = binary[0] if binary else typed[0]
        self.typer = None if self.detector.has_type_head else (typed[0] if typed else None)
        self.input_keys: list[InputKey] = sorted({(m.input_size, m.preprocessing) for m in self.models})
        self.study_rule: study.StudyRule = self.detector.study_rule
        self.group = self._group_names()
        self.prob_columns = self._probability_columns()  # fixed for the models: not per row

    def _group_names(self) -> dict[int, str]:
        """Each model's name in results and reports, made unique: two files that carry the same name
        and version are told apart as "NAME (2)", so their probabilities never share a key."""
        out: dict[int, str] = {}
        for m in self.models:
            name, k = m.name, 1
            while name in out.values():
                k += 1
                name = f"{m.name} ({k})"
            out[id(m)] = name
        return out

    @property
    def detector_key(self) -> InputKey:
        return (self.detector.input_size, self.detector.preprocessing)

    def probability_columns(self) -> list[str]:
        """The ``p_`` column names, in order: ``p_<label>`` per label of each model and of a type head
        (``p_<task>_<label>`` where a label name is already taken by an earlier model)."""
        return [col for _group, _label, col in self.prob_columns]

    def _probability_columns(self) -> ProbabilityColumns:
        out, taken = [], set()
        for m in self.models:
            name = self.group[id(m)]
            groups = [(name, m.labels, m.card["task"])]
            if m.has_type_head:
                groups.append((name + TYPE_GROUP_SUFFIX, m.type_labels, "type"))
            for group, labels, task in groups:
                for label in labels:
                    candidates = [f"p_{label}", f"p_{task}_{label}"] + [f"p_{task}{k}_{label}" for k in range(2, 1000)]
                    col = next(c for c in candidates if c not in taken)
                    taken.add(col)
                    out.append((group, label, col))
        return out

    @property
    def need(self) -> ModelNeed:
        """What a decode must keep for these models: twice the largest input across the brain crop; a
        larger JPEG is decoded reduced to this (``Scan.model_view``), at no cost to what the models see
        after resizing."""
        return model_need(2 * max(size for size, _p in self.input_keys))

    def fit(self, image: np.ndarray, scale: float = 1.0) -> dict[InputKey, ModelInput]:
        """A model image (``Scan.model_view``) fitted to every model's input, geometry in the frame's
        pixels: the one path from pixels to models. Never a displayed frame: a display window must
        not change an answer."""
        return {key: model_input_scaled(image, scale, *key) for key in self.input_keys}

    def prepare_sessions(self, threads: int | None) -> None:
        """Make every model's session of ``threads`` intra-op threads now, in the calling thread, so that
        the batch engine's workers only ever run sessions: none is built inside a worker while others
        run (ONNX Runtime does not promise that building sessions concurrently is safe:
        microsoft/onnxruntime#27089)."""
        for m in self.models:
            m.session_for(threads)

    def classify_batch(self, inputs: Sequence[dict[InputKey, ModelInput]], paths: Sequence[str],
                       with_heat: bool = False, threads: int | None = None) -> list[Result]:
        """Classify fitted images (one ``fit`` result per path) on sessions with ``threads`` intra-op
        threads (None: each model's own; see ``Model.session_for``)."""
        t0 = time.perf_counter()
        preds = {id(m): m.predict(np.stack([x[(m.input_size, m.preprocessing)].pixels for x in inputs])
                                  .astype(np.float32), threads) for m in self.models}
        per_image = (time.perf_counter() - t0) / max(len(paths), 1)
        det = preds[id(self.detector)]
        p_tumor = self.detector.tumor_probability(det.probabilities)
        results = []
        for i, path in enumerate(paths):
            bad = [m.name for m in self.models if not _finite_row(preds[id(m)], i)]
            if bad:
                results.append(Result(path=path, status="error",
                                      error=f"the model returned an invalid value (NaN or infinity): {', '.join(bad)}"))
                continue
            is_tumor = bool(p_tumor[i] >= self.detector.threshold)
            kind, kind_p = self._tumor_type(preds, i) if is_tumor else ("", None)
            disagree = self._disagree(preds, i, is_tumor)
            probabilities = {self.group[id(m)]: {lab: float(p) for lab, p in zip(m.labels, preds[id(m)].probabilities[i])}
                             for m in self.models}
            for m in self.models:
                if m.has_type_head:
                    probabilities[self.group[id(m)] + TYPE_GROUP_SUFFIX] = dict(
                        zip(m.type_labels, map(float, preds[id(m)].type_probabilities[i])))
            seq_p = det.sequence_probabilities
            seq_k = int(np.argmax(seq_p[i])) if seq_p is not None else None
            results.append(Result(
                path=path, seconds=per_image, threshold=self.detector.threshold,
                sequence=self.detector.sequence_labels[seq_k] if seq_k is not None else "",
                sequence_from="model" if seq_k is not None else "",
                sequence_confidence=float(seq_p[i][seq_k]) if seq_k is not None else None,
                tumor_probability=float(p_tumor[i]), prediction="tumor" if is_tumor else "no_tumor",
                confidence=float(p_tumor[i] if is_tumor else 1.0 - p_tumor[i]),
                tumor_type=kind, tumor_type_confidence=kind_p, models_disagree=disagree,
                ood_warning="; ".join(self._cautions(preds, i, float(p_tumor[i]), disagree,
                                                     inputs[i][self.detector_key].head_found)),
                probabilities=probabilities, geometry=inputs[i][self.detector_key].geometry,
                heat=(det.heatmap[i] if det.heatmap is not None else self.heat_for(det.cam[i], is_tumor))
                if with_heat else None))
        return results

    def with_sequence(self, r: Result, named: str) -> Result:
        """The sequence the file's own tags name (``named``) overrides the model's reading; an answer on a
        sequence whose held-out sensitivity (the detector card's ``held_out_by_sequence``) is below
        SEQUENCE_CAUTION carries a caution naming it."""
        if named:
            r = replace(r, sequence=named, sequence_from="tags", sequence_confidence=None)
        sensitivity = self.detector.sensitivity_by_sequence.get(r.sequence)
        if not r.ok or sensitivity is None or sensitivity >= SEQUENCE_CAUTION:
            return r
        note = (f"on {SEQUENCE_NAMES.get(r.sequence, r.sequence)} images this model found {100 * sensitivity:.0f} % "
                "of held-out tumours: a tumour may be missed")
        return replace(r, ood_warning="; ".join(w for w in (r.ood_warning, note) if w))

    def _disagree(self, preds: dict, i: int, is_tumor: bool) -> bool:
        """Whether the answers behind this row contradict each other: the detector against the type
        model's own P(no tumour), or, for one multi-task model, against its tumour map (a location
        at or above the card's ``heat_level`` somewhere, 0.5 unless the card says otherwise).
        Measured on collections the model never saw, answers whose heads disagree were right 37-76%
        of the time, against 84-99% when they agree (v2)."""
        if self.typer is not None:
            p_no = float(sum(preds[id(self.typer)].probabilities[i][self.typer.labels.index(lab)]
                             for lab in self.typer.no_tumor_labels))
            return is_tumor == (p_no >= 0.5)
        heat = preds[id(self.detector)].heatmap
        if heat is not None:
            return is_tumor != bool(heat[i].max() >= self.detector.heat_level)
        return False

    def _cautions(self, preds: dict, i: int, p_tumor: float, disagree: bool, head_found: bool) -> list[str]:
        """Why this answer should not be trusted, in words: an image unlike the training images (any
        model's out-of-distribution score), P(tumour) inside the detector card's low-confidence band
        (chosen on collections the model never saw, see ``training/caution.py``), or answers that
        disagree, or an input where the brain crop found no head (blank, uniform)."""
        reasons = [] if head_found else [NO_HEAD_MESSAGE]
        if any(preds[id(m)].ood_flag[i] for m in self.models):
            reasons.append(OOD_MESSAGE)
        if abs(p_tumor - self.detector.threshold) < self.detector.caution_band:
            reasons.append(LOW_CONFIDENCE_MESSAGE)
        if disagree:
            reasons.append(DISAGREE_MESSAGE)
        return reasons

    def _tumor_type(self, preds: dict, i: int) -> tuple[str, float | None]:
        """The most likely type and P(type | tumour), from the detector's type head or the type model."""
        if self.detector.has_type_head:
            probs = preds[id(self.detector)].type_probabilities[i]
            k = int(np.argmax(probs))
            return self.detector.type_labels[k], float(probs[k] / max(float(probs.sum()), 1e-12))
        if self.typer is None:
            return "", None
        probs = preds[id(self.typer)].probabilities[i]
        tumour_labels = [k for k, lab in enumerate(self.typer.labels) if lab not in self.typer.no_tumor_labels]
        k = max(tumour_labels, key=lambda j: probs[j])
        total = float(sum(probs[j] for j in tumour_labels))
        return self.typer.labels[k], (float(probs[k] / total) if total > 0 else None)

    def heat_for(self, cam: np.ndarray, is_tumor: bool) -> np.ndarray:
        """The map of the evidence for the detector's answer (tumour classes summed when it says
        tumour, the no-tumour class otherwise), scaled to 0..1."""
        labels = self.detector.labels
        no = [k for k, lab in enumerate(labels) if lab in self.detector.no_tumor_labels]
        yes = [k for k in range(len(labels)) if k not in no]
        return normalise_cam(cam[..., yes if is_tumor else no].sum(axis=-1))

    def classify_image(self, image: np.ndarray, path: str = "", with_heat: bool = True, scale: float = 1.0) -> Result:
        """One model image (``Scan.model_view``) -> result with heatmap."""
        t0 = time.perf_counter()
        r = self.classify_batch([self.fit(image, scale)], [path], with_heat=with_heat)[0]
        return replace(r, seconds=time.perf_counter() - t0)



def _finite_row(pred, i: int) -> bool:
    arrays = [pred.probabilities[i]] + [a[i] for a in (pred.type_probabilities, pred.heatmap) if a is not None]
    return all(bool(np.isfinite(a).all()) for a in arrays)
