"""Which MR sequence a DICOM file says it is (T1, T1 with contrast, T2, FLAIR), from its own tags, never guessed from pixels.

The series' own words come first (SeriesDescription, then ProtocolName: "AX FLAIR", "T1 POST GD",
"t2_tse_tra"); where they name none, the timings decide only when they are unambiguous: an inversion
time of 1,500 ms or more with a long TR is FLAIR; a short TR with a short TE is T1 (with contrast when
the file names a contrast agent); a long TR with a long TE is T2. Anything else: "" (unknown), and the
model's own sequence answer, where it has one, is what is shown.
"""

from __future__ import annotations

import re

SEQUENCES = ("t1", "t1c", "t2", "flair")
#: How a sequence is named to a reader.
SEQUENCE_NAMES = {"t1": "T1", "t1c": "T1 with contrast", "t2": "T2", "flair": "FLAIR"}
#: Words of a series description that mean a contrast agent was given.
_CONTRAST = re.compile(r"(\+\s*C\b|\bC\s*\+|\bPOST\b|\bGD\b|GADO|\bCE\b|CONTRAST|\bENH|\+GD|MPRAGE\s*\+)")


def sequence_from_text(text: str) -> str:
    """The sequence a series description or protocol name names, or ""."""
    words = text.upper().replace("_", " ").replace("-", " ")
    if "FLAIR" in words or re.search(r"\bDARK\s*FLUID\b|\bTIRM\b", words):
        return "flair"
    if re.search(r"\bT2(?!\s*\*)(?:W\w*)?\b", words) and not re.search(r"\bT1", words):
        return "t2"
    if re.search(r"\bT1|MPRAGE|SPGR|\bBRAVO\b|\bVIBE\b", words):
        return "t1c" if _CONTRAST.search(words) else "t1"
    return ""


def sequence_from_timing(tr: float | None, te: float | None, ti: float | None, contrast: bool) -> str:
    """The sequence the timings (ms) leave no doubt about, or "" (a gradient echo, a DWI, a missing value)."""
    if ti is not None and ti >= 1500 and tr is not None and tr >= 5000:
        return "flair"
    if tr is not None and te is not None:
        if tr <= 800 and te <= 30:
            return "t1c" if contrast else "t1"
        if tr >= 2000 and te >= 70 and (ti is None or ti < 1500):
            return "t2"
    return ""


def dicom_sequence(ds) -> str:
    """A DICOM dataset's sequence: its description's words first, then unambiguous timings; "" unknown."""
    if str(ds.get("Modality", "MR") or "MR").upper() != "MR":
        return ""
    for keyword in ("SeriesDescription", "ProtocolName"):
        found = sequence_from_text(str(ds.get(keyword, "") or ""))
        if found:
            return found
    contrast = bool(str(ds.get("ContrastBolusAgent", "") or "").strip())
    return sequence_from_timing(_number(ds, "RepetitionTime"), _number(ds, "EchoTime"),
                                _number(ds, "InversionTime"), contrast)


def _number(ds, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None
