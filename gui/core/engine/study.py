"""A study (a volume, a multi-frame DICOM, a DICOM series) judged from its slices' answers.

Every slice is classified by the same engine as a single image; this module turns the slice
probabilities into the study's verdict, its key slice and the slices to look at. Qt-free and
numpy-only, so the window, the headless command and the training analysis share one rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gui.core.engine.result import Result


@dataclass(frozen=True)
class StudyRule:
    """"Tumour" when ``run`` consecutive slices all reach P(tumour) >= ``threshold``.

    A model card carries the rule chosen for it on the lgg volumes (``series_rule``, from
    ``python -m training series``, figures in training/RESULTS.md); a card without one gets
    ``run = 1`` at the model's decision threshold: the study is a tumour when any slice is."""

    run: int = 1
    threshold: float = 0.5

    def as_dict(self) -> dict:
        return {"run": self.run, "threshold": self.threshold}

    @classmethod
    def from_card(cls, entry: dict | None, decision_threshold: float) -> "StudyRule":
        """The card's rule (checked by ``gui.core.engine.contract.validate_card``), else any slice at the threshold."""
        if entry is None:
            return cls(1, decision_threshold)
        return cls(int(entry["run"]), float(entry["threshold"]))


def run_minima(p: np.ndarray, run: int) -> np.ndarray:
    """For each window of ``run`` consecutive slices, its lowest probability (empty if too few slices)."""
    p = np.asarray(p, dtype=np.float64)
    if run <= 1 or len(p) == 0:
        return p
    if len(p) < run:
        return np.empty(0)
    return np.lib.stride_tricks.sliding_window_view(p, run).min(axis=1)


def study_score(p: np.ndarray, rule: StudyRule) -> float:
    """The study's probability: the best run's lowest slice probability (the maximum when run = 1).

    With fewer slices than the run, the weakest slice's probability (a short study is judged on
    all it has)."""
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    minima = run_minima(p, rule.run)
    return float(minima.max()) if len(minima) else float(p.min())


def key_slice(p: np.ndarray) -> int:
    """The most suspicious slice: the highest probability (the first of equals)."""
    return int(np.argmax(np.asarray(p)))


def tumour_ranges(p: np.ndarray, rule: StudyRule) -> list[tuple[int, int]]:
    """Inclusive (first, last) slice ranges where the rule fires: runs of at least ``rule.run``
    slices at or above the threshold (a study shorter than the run: all of it when its score passes)."""
    above = np.asarray(p) >= rule.threshold
    if len(above) < rule.run:
        return [(0, len(above) - 1)] if len(above) and above.all() else []
    out, start = [], None
    for k, a in enumerate(np.append(above, False)):
        if a and start is None:
            start = k
        elif not a and start is not None:
            if k - start >= rule.run:
                out.append((start, k - 1))
            start = None
    return out


def format_ranges(ranges: list[tuple[int, int]]) -> str:
    """``12-19;31``: 0-based slice numbers, as the window's slice control shows them."""
    return ";".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def restate_slices(slices: list[Result], rule: StudyRule) -> list[Result]:
    """Each readable slice's answer said at the study's threshold: "tumor" exactly when its own P(tumour)
    reaches ``rule.threshold`` (the decision threshold for every shipped card), so no slice row says
    "no tumour" beside a probability above the threshold and ``confidence``, the probability of the
    stated answer, is at least 50 %. A slice at or above the threshold outside a run of ``rule.run``
    slices keeps its answer; the study does not count it (``tumor_slices`` names the runs it counts).
    New results: the slices given are not changed."""
    out = []
    for r in slices:
        if not r.ok:
            out.append(r)
            continue
        tumour = r.tumor_probability >= rule.threshold
        kind = {} if tumour else {"tumor_type": "", "tumor_type_confidence": None}
        out.append(replace(r, prediction="tumor" if tumour else "no_tumor",
                           confidence=float(r.tumor_probability if tumour else 1.0 - r.tumor_probability), **kind))
    return out


def summarise(path: str, slices: list[Result], rule: StudyRule, notes: list[str], description: str = "",
              sequence: str = "") -> Result:
    """The study's row from its slices' answers (in slice order).

    Verdict and probability follow ``rule``, and every slice's answer is said at its threshold
    (:func:`restate_slices`); the key slice is the most suspicious readable slice and lends the row
    its type, probabilities, heatmap, disagreement and cautions. A slice that could not be read
    counts as no evidence and is named in the warning; a study with no readable slice is an error
    row with the first slice's reason. ``description`` is a DICOM series' SeriesDescription, ``sequence``
    the sequence its tags name."""
    readable = np.array([r.ok for r in slices], bool)
    if not readable.any():
        reason = slices[0].error if slices else "the study has no slices"
        return Result(path=path, status="error", error=f"no slice could be read ({reason})",
                      n_slices=len(slices), slices=slices, series_description=description, sequence=sequence,
                      sequence_from="tags" if sequence else "")
    p = np.array([r.tumor_probability if r.ok else 0.0 for r in slices], np.float64)
    slices = restate_slices(slices, rule)
    score = study_score(p, rule)
    key = key_slice(np.where(readable, p, -1.0))
    at_key = slices[key]
    is_tumour = score >= rule.threshold
    warnings = list(notes)
    failed = [r for r in slices if not r.ok]
    if failed:
        warnings.append(f"{len(failed)} of {len(slices)} slices could not be read "
                        f"(slice {failed[0].slice}: {failed[0].error})")
    warnings += [w for w in at_key.ood_warning.split("; ") if w]
    return Result(
        path=path, prediction="tumor" if is_tumour else "no_tumor", tumor_probability=score,
        confidence=score if is_tumour else 1.0 - score,
        tumor_type=at_key.tumor_type if is_tumour else "",
        tumor_type_confidence=at_key.tumor_type_confidence if is_tumour else None,
        ood_warning="; ".join(warnings), models_disagree=at_key.models_disagree,
        probabilities=at_key.probabilities, heat=at_key.heat, geometry=at_key.geometry,
        seconds=float(sum(r.seconds for r in slices)), n_slices=len(slices), max_slice=key,
        tumor_slices=format_ranges(tumour_ranges(p, rule)) if is_tumour else "", slices=slices,
        series_description=description, sequence=sequence or at_key.sequence,
        sequence_from="tags" if sequence else at_key.sequence_from,
        sequence_confidence=None if sequence else at_key.sequence_confidence, threshold=rule.threshold)
