"""One grey scale per study from its stored values: the model's intensity standardisation and the default display window.

The model's grey levels must not depend on how a scan was packaged (PNG, NIfTI, DICOM with any
window), so they come from the stored values (modality LUT applied) by one rule for every
container, computed once over the whole study (never per slice, never from a VOI window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from gui.core.display import Window

#: The rule's name in a model card's ``input.intensity``.
INTENSITY_RULE = "study-head-percentiles-v1"
INTENSITY_DESCRIPTION = (
    "DICOM and NIfTI: stored values after the modality LUT (each frame's own rescale in an enhanced multi-frame "
    "file; MONOCHROME1 or Presentation LUT Shape INVERSE: negated before any percentile), the plane turned to the "
    "radiological display wherever the file states its orientation (DICOM ImageOrientationPatient, a NIfTI "
    "affine), mapped to 0-255 once per study: the 0.5th percentile of up to 32 evenly spaced slices -> 0, the 99.9th percentile of the head "
    "(values above 12% of the way from that to the 99th percentile) -> 255, as float32 with values below 0 raised "
    "to 0 and values above 255 kept (the preprocessing standardises each slice); never a VOI window or a "
    "per-slice stretch; JPEG/PNG/BMP/TIFF/GIF as stored")
#: Slices sampled for a study's levels: evenly spaced, so a streamed volume is never read whole.
SAMPLE_SLICES = 32
#: Values kept per sampled slice (every k-th), enough for stable percentiles.
SAMPLE_VALUES = 65_536
#: Head = values above this share of the way from the background to bright tissue.
HEAD_SHARE = 0.12


@dataclass(frozen=True)
class Levels:
    """A study's grey scale: ``low`` -> 0 and ``high`` -> 255 for the model; ``display`` is the
    window shown when the file names none (0.5th to 99.9th percentile of every value)."""

    low: float
    high: float
    display: Window


def sample_indices(n: int) -> list[int]:
    """Up to ``SAMPLE_SLICES`` evenly spaced slice numbers of a study of ``n`` slices."""
    return [int(k) for k in np.unique(np.linspace(0, n - 1, min(n, SAMPLE_SLICES)).astype(int))]


def subsample(values: np.ndarray) -> np.ndarray:
    """A slice's finite values, every k-th, as float32."""
    flat = np.asarray(values).ravel()
    flat = flat[:: max(1, flat.size // SAMPLE_VALUES)].astype(np.float32)
    return flat[np.isfinite(flat)]


def study_levels(samples: Iterable[np.ndarray], inverted: bool = False) -> Levels | None:
    """The levels of a study from its sampled slices' values (None when no value is finite).

    The top is the head's 99.9th percentile, not the volume's maximum: one hot voxel must not
    darken the study, and a FLAIR tumour (among the brightest voxels) must not be clipped.
    ``inverted`` (MONOCHROME1): every percentile is taken of the negated values (the image turned the
    right way up first), so the model and the screen get what the same image stored upright gives; the
    display window is then stated on the stored values, which the screen inverts after the window as
    the standard says."""
    values = np.concatenate([subsample(s) for s in samples] or [np.empty(0, np.float32)])
    if values.size == 0:
        return None
    if inverted:
        values = -values
    low, top, d_low, d_high = (float(v) for v in np.percentile(values, [0.5, 99, 0.5, 99.9]))
    head = values[values > low + HEAD_SHARE * (top - low)]
    high = float(np.percentile(head, 99.9)) if head.size else top
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        high = low + 1.0
    if d_high <= d_low:
        d_low, d_high = low, high
    if inverted:  # the window is applied to the stored values, and the screen inverts after it
        d_low, d_high = -d_high, -d_low
    return Levels(low, high, Window.spanning(d_low, d_high))
