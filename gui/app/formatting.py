"""How answers and probabilities read on screen, in one place for the window, the table and the report."""

from __future__ import annotations

from pathlib import Path

from gui.core.engine.classifier import TYPE_GROUP_SUFFIX
from gui.core.engine.result import Result
from gui.core.readers.sequence import SEQUENCE_NAMES

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


def app_version() -> str:
    """The installed app's version (the package's own metadata), or "(development copy)"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mri-classifier")
    except PackageNotFoundError:
        return "(development copy)"


#: Longest file name shown whole in the panel and the title (a DICOM file named by its 64-character UID
#: would otherwise widen the panel past its dock); the full name is the tooltip.
NAME_CHARS = 36


def elide_middle(text: str, limit: int = NAME_CHARS) -> str:
    """``text`` shortened in the middle with "…" to at most ``limit`` characters (both ends stay: a
    UID's root and its last digits, a name's start and its extension)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head):]


#: How a type label reads where the label itself would not say enough: (in a sentence, beside a bar).
TYPE_NAMES = {"other": ("other tumour (not glioma, meningioma or pituitary)", "other tumour")}


def type_words(label: str, short: bool = False) -> str:
    """A tumour type as a reader should see it: "other" is the fourth type of a model that knows
    schwannomas, neurocytomas, metastases and papillomas are none of the three it names (``short``:
    the label beside a probability bar, where the bar's group already says what the types are)."""
    names = TYPE_NAMES.get(label)
    return names[short] if names else label


def sequence_words(r: Result) -> str:
    """The sequence and where it comes from, for a reader: "FLAIR (from the file's tags)", "T1 (the
    model's reading, 87 %)", or "" when neither names one."""
    if not r.sequence:
        return ""
    name = SEQUENCE_NAMES.get(r.sequence, r.sequence)
    if r.sequence_from == "tags":
        return f"{name} (from the file's tags)"
    sure = f", {percent(r.sequence_confidence)}" if r.sequence_confidence is not None else ""
    return f"{name} (the model's reading{sure})"


def row_name(r: Result) -> str:
    """How a batch row names its scan: a DICOM series by its description and folder ("AX FLAIR — 
    study3"), never by the UID its first file is named after; anything else by its file name."""
    path = Path(r.path)
    if r.series is not None:
        folder = path.parent.name or str(path.parent)
        return f"{r.series_description} — {folder}" if r.series_description else f"series in {folder}"
    return path.name


def items_in_words(results: list[Result]) -> str:
    """What a batch held: "3 studies (101 files)", "12 files", or both ("2 studies (40 files) and 3 files")."""
    studies = [r for r in results if r.is_study]
    files_in_studies = sum(len(r.series.files) if r.series is not None else 1 for r in studies)
    singles = len(results) - len(studies)
    parts = []
    if studies:
        parts.append(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} "
                     f"({files_in_studies} file{'' if files_in_studies == 1 else 's'})")
    if singles or not studies:
        parts.append(f"{singles} file{'' if singles == 1 else 's'}")
    return " and ".join(parts)


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
