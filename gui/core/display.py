"""Grey values to screen grey levels: the DICOM VOI window as the standard defines it, percentile windows.

Display only: nothing here feeds a model (the model's grey levels come from
``gui.core.readers.levels``), so changing a window never changes an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: VOI LUT functions of DICOM PS3.3 C.11.2.1.3 (LINEAR when the file names none).
FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class Window:
    """A grey window: ``center`` and ``width`` in the values' units (after the modality LUT) and the
    VOI LUT function that maps them to 0..255 (DICOM PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: str = "LINEAR"

    @classmethod
    def spanning(cls, low: float, high: float) -> "Window":
        """The window that shows ``low`` as black and ``high`` as white (LINEAR_EXACT)."""
        return cls((low + high) / 2.0, max(high - low, 1e-6), "LINEAR_EXACT")

    def apply(self, values: np.ndarray) -> np.ndarray:
        """``values`` as ``uint8`` grey levels (NaN and infinities black)."""
        return voi_window(values, self.center, self.width, self.function)


def voi_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 with the output range 0..255: values below the window are black, above it
    white, saturated values stay saturated (no second stretch of the result).

    LINEAR: ``x <= c - 0.5 - (w - 1) / 2`` -> 0, ``x > c - 0.5 + (w - 1) / 2`` -> 255, else
    ``((x - (c - 0.5)) / (w - 1) + 0.5) * 255``; LINEAR_EXACT: the same with ``c`` and ``w`` taken
    exactly; SIGMOID: ``255 / (1 + exp(-4 (x - c) / w))``."""
    x = np.asarray(values, dtype=np.float64)
    function = function.upper() if function.upper() in FUNCTIONS else "LINEAR"
    if function == "SIGMOID":
        y = 255.0 / (1.0 + np.exp(np.clip(-4.0 * (x - center) / max(width, 1e-6), -700, 700)))
    elif function == "LINEAR_EXACT":
        w = max(width, 1e-6)
        y = np.clip(((x - center) / w + 0.5) * 255.0, 0.0, 255.0)
    else:
        w = max(width, 1.0)  # the standard requires width >= 1 for LINEAR
        if w == 1.0:
            y = np.where(x <= center - 0.5, 0.0, 255.0)
        else:
            y = np.clip(((x - (center - 0.5)) / (w - 1.0) + 0.5) * 255.0, 0.0, 255.0)
    return np.where(np.isfinite(x), np.rint(y), 0).astype(np.uint8)


def window_to_uint8(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Map ``[low, high]`` linearly to 0..255 (min and max of the finite values by default).

    NaN and infinite values become black; a constant image becomes black rather than
    dividing by zero.
    """
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    if low is None or high is None:
        low = float(values[finite].min()) if low is None else low
        high = float(values[finite].max()) if high is None else high
    span = float(high) - float(low)
    if span <= 0:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.where(finite, values, low) - low) * (255.0 / span)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """``[H, W]`` grey levels as ``[H, W, 3]``."""
    return np.stack([grey, grey, grey], axis=-1)
