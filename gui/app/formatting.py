"""How answers and probabilities read on screen, in one place for the window, the table and the report."""

from __future__ import annotations

from gui.core.engine.classifier import TYPE_GROUP_SUFFIX
from gui.core.engine.result import Result

ANSWERS = {"tumor": "Tumour likely", "no_tumor": "No tumour found", "": ""}
#: How close to the decision threshold P(tumour) must be for the batch to call an answer uncertain
#: whatever the caution says (0.35-0.65 around the usual 0.5).
UNCERTAIN_HALF_WIDTH = 0.15


def is_uncertain(r: Result) -> bool:
    """An answer to look at twice (the batch's tally and filter): any caution (unlike the training
    images, low confidence, no head, missing slices...), answers that disagree, or P(tumour) within
    UNCERTAIN_HALF_WIDTH of the threshold. A policy of the window's, not a property of the answer."""
    p = r.tumor_probability
    return r.ok and (bool(r.ood_warning) or bool(r.models_disagree)
                     or (p is not None and abs(p - r.threshold) <= UNCERTAIN_HALF_WIDTH))


def percent(p: float | None) -> str:
    """A probability for a reader: never "100.0 %" or "0.0 %" for a model that is not certain."""
    if p is None:
        return ""
    if p > 0.999:
        return "> 99.9 %"
    if p < 0.001:
        return "< 0.1 %"
    return f"{100 * p:.1f} %"


def measured_percent(v: float | None) -> str:
    """A measured rate (accuracy, sensitivity...) for the model card: two decimals, "n/a" when absent."""
    return "n/a" if v is None else f"{100 * v:.2f} %"


def group_title(group: str) -> str:
    """How a ``Result.probabilities`` group is titled: a type head says what it is."""
    if group.endswith(TYPE_GROUP_SUFFIX):
        return f"Tumour type, if tumour ({group.removesuffix(TYPE_GROUP_SUFFIX)})"
    return group
