"""What the viewer shows, without Qt: orientation letters on the image's edges, display flips and
turns, window/level from a mouse drag, and slice stepping. None of it changes an answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gui.core.display import Window

#: Patient directions of DICOM's LPS+ axes: +x towards the patient's left, +y posterior, +z superior.
_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))


def direction_letters(vector: np.ndarray) -> str:
    """The patient direction a screen direction points to, in LPS+ (``[1, 0, 0]`` -> "L"): the
    dominant axis first, then any other axis with a share above 0.35 (an oblique plane: "LA")."""
    v = np.asarray(vector, np.float64)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0:
        return "?"
    v = v / norm
    order = np.argsort(-np.abs(v))
    return "".join(_LETTERS[k][int(v[k] > 0)] for i, k in enumerate(order) if i == 0 or abs(v[k]) > 0.35)


@dataclass(frozen=True)
class Edges:
    """The patient direction at each edge of the displayed image (radiologists' orientation letters)."""

    left: str
    right: str
    top: str
    bottom: str

    @classmethod
    def from_directions(cls, right_lps: np.ndarray, down_lps: np.ndarray) -> "Edges":
        """Letters from the screen's right and down directions in the patient's LPS+ frame (a DICOM
        image shown as stored: ImageOrientationPatient's row and column direction cosines)."""
        right, down = np.asarray(right_lps, np.float64), np.asarray(down_lps, np.float64)
        return cls(direction_letters(-right), direction_letters(right), direction_letters(-down), direction_letters(down))

    def turned(self, quarter_turns: int = 0, flipped: bool = False) -> "Edges":
        """The letters after a display-only mirror (left-right, first) and clockwise quarter turns."""
        e = Edges(self.right, self.left, self.top, self.bottom) if flipped else self
        for _ in range(quarter_turns % 4):
            e = Edges(left=e.bottom, right=e.top, top=e.left, bottom=e.right)
        return e


#: The radiological convention the readers display NIfTI volumes and ordered DICOM series in
#: (``gui.core.readers.orientation.DisplayPlan``): the patient's right on the screen's left.
RADIOLOGICAL = {"axial": Edges("R", "L", "A", "P"), "coronal": Edges("R", "L", "S", "I"),
                "sagittal": Edges("A", "P", "S", "I")}


def dragged_window(start: Window, dx: float, dy: float, span: float) -> Window:
    """Window/level after a right-drag of (``dx``, ``dy``) pixels from ``start``, the convention of
    DICOM viewers: right widens the window, down raises the level (the image darkens); one pixel
    moves the level by 1/256 of ``span`` (the study's display range), the width by a factor."""
    step = max(span, 1e-6) / 256.0
    return Window(start.center + dy * step, max(start.width * float(np.exp(dx / 200.0)), 1.0), "LINEAR_EXACT")


def stepped(current: int, delta: int, n: int) -> int:
    """Slice ``current`` moved by ``delta``, kept inside ``0 .. n - 1``."""
    return int(min(max(current + delta, 0), max(n - 1, 0)))
