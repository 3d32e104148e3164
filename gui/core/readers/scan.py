"""An opened file or DICOM series: its frames as stored, what the screen shows, and what a model is fed."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from gui.core.display import Window, grey_to_rgb
from gui.core.errors import FileProblem
from gui.core.readers.levels import Levels, sample_indices, study_levels
from gui.core.viewstate import Edges


class ImageReadError(FileProblem):
    """A file could not be turned into an image; ``reason`` is written for a user."""


@dataclass(frozen=True)
class ModelNeed:
    """What a model's input needs of a decode: ``min_side`` pixels across the square that ``crop_side``
    (the engine's brain-crop rule, measured on a small decode) would cut. Given by the engine, so a
    reader decodes no more than needed without a model rule of its own."""

    min_side: int
    crop_side: Callable[[np.ndarray], int]


@dataclass(frozen=True)
class Plane:
    """One frame as stored, oriented for display: grey ``values`` (float32, modality LUT applied) or
    colour ``rgb`` (uint8, for files whose pixels are what was exported: JPEG, PNG, RGB DICOM...).

    ``voi`` is the file's own VOI transform (DICOM window or VOI LUT) to 0..255, when it has one, and
    ``voi_window`` that window when it is one (a right-drag starts from it); ``inverted`` marks
    MONOCHROME1 (high values dark)."""

    values: np.ndarray | None = None
    rgb: np.ndarray | None = None
    voi: Callable[[np.ndarray], np.ndarray] | None = None
    inverted: bool = False
    voi_window: Window | None = None


@dataclass
class Scan:
    """An opened file or DICOM series: one or more 2-D frames (DICOM frames or files, NIfTI slices).

    ``frame(i)`` is what the screen shows (the file's VOI window, else the study's percentile window,
    or a window the user chose); ``model_frame(i)`` is what a model is fed: the stored values
    standardised once for the whole study (:mod:`gui.core.readers.levels`), so no display window
    changes an answer. ``info`` holds technical facts only, never a patient field.
    """

    path: Path
    format: str
    n_frames: int
    default_frame: int
    _read: Callable[[int], Plane] = field(repr=False)
    info: dict[str, str] = field(default_factory=dict)
    #: What a result must say about the file (a 4-D file scored on its first volume, missing slices).
    notes: list[str] = field(default_factory=list)
    #: The patient direction at each edge of the displayed image, when the file says (viewer letters).
    edges: Edges | None = None
    #: Each slice's position in mm along the slice normal, when the file says.
    positions: list[float] | None = None
    #: The MR sequence the file's own tags name (``t1``, ``t1c``, ``t2``, ``flair``), "" when they name none.
    sequence: str = ""
    #: A cheaper decode for the model, when the format has one (JPEG's DCT scaling): given the pixels the
    #: model needs across its crop, the reduced image and its scale, or None for the full decode.
    reduce: Callable[[ModelNeed], tuple[np.ndarray, float] | None] | None = field(default=None, repr=False)
    #: Computed from up to 32 slices on first use (thread-safe: the engine decodes in a pool).
    _levels: Levels | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def is_study(self) -> bool:
        """The one rule: a file or series with more than one slice is judged as a study."""
        return self.n_frames > 1

    def plane(self, index: int | None = None) -> Plane:
        """Frame ``index`` (the default frame when None) as stored; only ImageReadError leaves."""
        i = self.default_frame if index is None else index
        if not 0 <= i < self.n_frames:
            raise ImageReadError(self.path, f"frame {i} is out of range (0..{self.n_frames - 1})")
        try:
            return self._read(i)
        except ImageReadError:
            raise
        except MemoryError as exc:
            raise ImageReadError(self.path, "the image is too large to fit in memory") from exc
        except Exception as exc:  # a decoder failing on one frame must not escape raw
            raise ImageReadError(self.path, f"cannot decode frame {i}: {exc}") from exc

    @property
    def known_levels(self) -> Levels | None:
        """The study's grey scale if it has been computed (or given), else None: never computes it."""
        return self._levels

    def levels(self, in_hand: Plane | None = None) -> Levels:
        """The study's grey scale, from up to 32 evenly spaced frames (a one-frame file: ``in_hand``)."""
        with self._lock:
            if self._levels is None:
                self._levels = self._compute_levels(in_hand)
            return self._levels

    def _compute_levels(self, in_hand: Plane | None) -> Levels:
        samples, problem, inverted = [], None, False
        for k in ([0] if self.n_frames == 1 else sample_indices(self.n_frames)):
            try:
                plane = in_hand if in_hand is not None and self.n_frames == 1 else self.plane(k)
            except ImageReadError as exc:  # a damaged slice: the others still give the study's levels
                problem = exc
                continue
            if plane.values is not None:
                samples.append(plane.values)
                inverted = inverted or plane.inverted
        levels = study_levels(samples, inverted)
        if levels is None:
            raise problem or ImageReadError(self.path, "the image holds no finite values")
        return levels

    def display(self, plane: Plane, window: Window | None = None) -> np.ndarray:
        """``plane`` as shown: uint8 [H, W, 3] through ``window``, else the file's VOI, else the study's.
        Colour pixels are shown as stored, or each channel through ``window`` when one is given."""
        if plane.values is None:
            return plane.rgb if window is None else window.apply(plane.rgb.astype(np.float32))
        if window is not None:
            grey = window.apply(plane.values)
        elif plane.voi is not None:
            grey = plane.voi(plane.values)
        else:
            grey = self.levels(plane).display.apply(plane.values)
        return grey_to_rgb(255 - grey if plane.inverted else grey)

    def model_image(self, plane: Plane) -> np.ndarray:
        """``plane`` as a model is fed it: the stored colour as uint8 RGB, or grey values as float32 on
        the study's scale (its ``low`` 0, its ``high`` 255; below 0 raised to 0, above 255 kept: a
        lesion brighter than the study's top is not flattened before the model's own preprocessing,
        which standardises each slice the way it was trained). MONOCHROME1 (or a Presentation LUT Shape
        INVERSE) is turned the right way up before the study's percentiles, as the card says: its levels
        were taken from the negated values."""
        if plane.values is None:
            return plane.rgb
        levels = self.levels(plane)
        values = -plane.values if plane.inverted else plane.values  # turned the right way up first
        values = np.nan_to_num(values, nan=levels.low, posinf=levels.high, neginf=levels.low)
        scaled = (values - np.float32(levels.low)) * np.float32(255.0 / (levels.high - levels.low))
        return np.maximum(scaled, np.float32(0.0), dtype=np.float32)

    def model_view(self, index: int | None = None, need: ModelNeed | None = None,
                   in_hand: Plane | None = None) -> tuple[np.ndarray, float]:
        """The model image of a frame and its scale (frame pixels per model-image pixel): a JPEG larger
        than needed is decoded reduced, keeping ``need.min_side`` pixels across the crop (the window, the
        batch and training all call this, so they feed a model identical pixels); anything else at full
        size (``in_hand``: a plane already decoded)."""
        if need is not None and self.reduce is not None:
            try:
                reduced = self.reduce(need)
            except ImageReadError:
                raise
            except Exception as exc:  # a decoder failing must not escape raw
                raise ImageReadError(self.path, f"cannot decode the image: {exc}") from exc
            if reduced is not None:
                return reduced
        return self.model_image(in_hand if in_hand is not None else self.plane(index)), 1.0

    def frame(self, index: int | None = None, window: Window | None = None) -> np.ndarray:
        """The displayed uint8 RGB image of a frame."""
        return self.display(self.plane(index), window)

    def model_frame(self, index: int | None = None) -> np.ndarray:
        """A frame's model image (see :meth:`model_image`)."""
        return self.model_image(self.plane(index))
