"""A frame's model image to a model input: the square region the model sees (geometry) and its pixels.

One path for the window, the batch, training and export (:func:`model_input`); a model card
names the preprocessing it was trained with (``input.preprocessing``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from gui.core.display import grey_to_rgb
from gui.core.engine.grey_stats import FloatGrey, grey_of, histogram_percentiles
from gui.core.readers.scan import ModelNeed

#: ``pad-resize``: pad to a centred black square, resize. ``brain-crop-v1``: crop a square around
#: the head, standardise its grey levels (see :func:`brain_crop`).
PREPROCESSING = ("pad-resize", "brain-crop-v1")


@dataclass(frozen=True)
class Geometry:
    """The square region of the frame a model saw: ``side`` x ``side`` pixels from (``top``, ``left``).

    The region may reach outside the frame (padding, filled with black); a heatmap over the model
    input maps back onto the frame through it (``gui.core.engine.heatmap.heat_to_frame``).
    """

    top: int
    left: int
    side: int

    def scaled(self, scale: float) -> "Geometry":
        """The same region in a frame ``scale`` times larger (a model image decoded reduced)."""
        if scale == 1.0:
            return self
        return Geometry(int(round(self.top * scale)), int(round(self.left * scale)), max(1, int(round(self.side * scale))))

    def overlap(self, height: int, width: int) -> tuple[slice, slice, slice, slice] | None:
        """Where this square and a ``height`` x ``width`` frame overlap, as (frame rows, frame columns,
        square rows, square columns); None when they do not: the one clipping rule for crops and maps."""
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + self.side, height), min(self.left + self.side, width)
        if y1 <= y0 or x1 <= x0:
            return None
        return slice(y0, y1), slice(x0, x1), slice(y0 - self.top, y1 - self.top), slice(x0 - self.left, x1 - self.left)


@dataclass(frozen=True)
class ModelInput:
    """One frame fitted to a model: ``pixels`` uint8 [S, S, 3] and the region they came from.
    ``head_found`` is False when the brain crop found no head (a blank or uniform frame): any
    answer on such an input deserves a caution."""

    pixels: np.ndarray
    geometry: Geometry
    head_found: bool = True


def model_input(image: np.ndarray, size: int, preprocessing: str = "pad-resize") -> ModelInput:
    """The one way a model image (``Scan.model_frame``: uint8 RGB [H, W, 3] as stored, or grey
    [H, W] on the study's 0-255 scale, float32 for DICOM and NIfTI) becomes a model input: window,
    batch, training and export all call it."""
    if preprocessing == "pad-resize":
        if image.dtype != np.uint8:
            image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        h, w = image.shape[:2]
        side = max(h, w)
        geometry = Geometry(-((side - h) // 2), -((side - w) // 2), side)
        pixels = crop_resize(image, geometry, size)
        return ModelInput(grey_to_rgb(pixels) if pixels.ndim == 2 else pixels, geometry)
    if preprocessing == "brain-crop-v1":
        return brain_crop(image, size)
    raise ValueError(f"unknown preprocessing {preprocessing!r}; known: {PREPROCESSING}")


def model_input_scaled(image: np.ndarray, scale: float, size: int, preprocessing: str) -> ModelInput:
    """:func:`model_input` of a model image decoded at 1/``scale`` of its frame, with the geometry
    given in the frame's pixels (where the heatmap is drawn)."""
    fitted = model_input(image, size, preprocessing)
    return fitted if scale == 1.0 else ModelInput(fitted.pixels, fitted.geometry.scaled(scale), fitted.head_found)


#: Largest square canvas (side, pixels) built before resizing; regions beyond it are resized first.
_MAX_CANVAS = 4096


def crop_resize(image: np.ndarray, g: Geometry, size: int) -> np.ndarray:
    """The frame's square region ``g`` (black outside the frame), resized to ``size`` (bilinear);
    ``image`` may be ``[H, W, 3]`` or a grey ``[H, W]``.

    Up to ``_MAX_CANVAS`` pixels a side the region is cut out onto a black square and resized,
    so the resampling filter sees the black border exactly as it did when the models were
    trained. Beyond that (a 1x40000 strip would make a 40000x40000 square) the part inside the
    frame is resized first and placed on a black canvas of the output size.
    """
    h, w = image.shape[:2]
    where = g.overlap(h, w)
    if g.side <= _MAX_CANVAS:
        if (g.top, g.left, g.side) == (0, 0, h) and h == w:
            square = image
        else:
            square = np.zeros((g.side, g.side) + image.shape[2:], dtype=np.uint8)
            if where is not None:
                rows, cols, s_rows, s_cols = where
                square[s_rows, s_cols] = image[rows, cols]
        if g.side == size:
            return np.ascontiguousarray(square)
        return np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))
    out = np.zeros((size, size) + image.shape[2:], dtype=np.uint8)
    if where is None:
        return out
    rows, cols, s_rows, s_cols = where
    scale = size / g.side
    dy0, dx0 = int(round(s_rows.start * scale)), int(round(s_cols.start * scale))
    dy1 = min(size, max(dy0 + 1, int(round(s_rows.stop * scale))))
    dx1 = min(size, max(dx0 + 1, int(round(s_cols.stop * scale))))
    part = Image.fromarray(np.ascontiguousarray(image[rows, cols])).resize((dx1 - dx0, dy1 - dy0), Image.BILINEAR)
    out[dy0:dy1, dx0:dx1] = np.asarray(part)
    return out


#: Foreground = grey level above this share of the way from background to bright tissue.
_FOREGROUND_SHARE = 0.12
#: Margin around the head, as a share of its larger extent.
_CROP_MARGIN = 0.06


def head_box(grey: FloatGrey, step: int = 1) -> tuple[int, int, int, int] | None:
    """Bounding box ``(top, left, bottom, right)`` of the head, or None if unclear, from the frame's
    grey levels at every ``step``-th pixel (about 256 px across is plenty).

    The 1st and 99th percentiles of the foreground's coordinates, not its extremes: specks and small
    burnt-in markers in a corner must not widen the box.
    """
    every = slice(None, None, step)
    low, high = grey.percentile(every, every, [2, 99])
    if high - low < 8:
        return None
    small = grey.sample(every, every)
    foreground = grey.above(small, low + _FOREGROUND_SHARE * (high - low))
    rows = np.count_nonzero(foreground, axis=1)
    if rows.sum() < 0.01 * small.size:
        return None
    columns = np.count_nonzero(foreground, axis=0)
    top, bottom = histogram_percentiles(rows, np.arange(rows.size), [1, 99])
    left, right = histogram_percentiles(columns, np.arange(columns.size), [1, 99])
    return int(top * step), int(left * step), int(bottom * step) + step, int(right * step) + step


def _head_square(grey: FloatGrey, h: int, w: int):
    """The head box (None if unclear), the box used (the whole frame without a head) and the square
    crop around it with its margin: the brain crop's framing."""
    step = max(1, max(h, w) // 256)
    box = head_box(grey, step)
    top, left, bottom, right = box if box is not None else (0, 0, h, w)
    side = int(round(max(bottom - top, right - left) * (1 + 2 * _CROP_MARGIN))) if box else max(h, w)
    side = max(side, 8)
    return box, (top, left, bottom, right), Geometry((top + bottom - side) // 2, (left + right - side) // 2, side)


def crop_side(image: np.ndarray) -> int:
    """The side, in ``image`` pixels, of the square the brain crop would cut from it."""
    h, w = image.shape[:2]
    return _head_square(grey_of(image), h, w)[2].side


def model_need(min_side: int) -> ModelNeed:
    """What a reader must keep of a decode for a model input: ``min_side`` pixels across the brain crop."""
    return ModelNeed(min_side, crop_side)


def brain_crop(image: np.ndarray, size: int) -> ModelInput:
    """Crop a square around the head and standardise grey levels, so that framing, borders, colour
    tint and intensity range (which identify the collection an image comes from, not the tumour)
    look alike for every source.

    Grey = channel mean (MRI is grey; a tint is a property of the file, not the anatomy). Levels:
    the frame's 1st percentile (background) -> 0 and the head's 99.5th percentile -> 255.
    A frame with no clear head falls back to the whole frame. Statistics come from subsampled
    pixels and only the cropped part of the frame is converted, so a large scan costs little more
    than a small one; an 8-bit frame is read through exact look-up tables (``gui.core.engine.grey_stats``).
    """
    h, w = image.shape[:2]
    grey = grey_of(image)
    box, (top, left, bottom, right), g = _head_square(grey, h, w)
    side = g.side
    rows, cols = slice(max(top, 0), bottom), slice(max(left, 0), right)
    step = max(1, max(len(range(h)[rows]), len(range(w)[cols])) // 256)
    every = slice(None, None, step)
    low = float(grey.percentile(every, every, 1))
    rows, cols = slice(rows.start, rows.stop, step), slice(cols.start, cols.stop, step)
    high = float(grey.percentile(rows, cols, 99.5)) if len(range(h)[rows]) * len(range(w)[cols]) else low
    y0, x0 = max(g.top, 0), max(g.left, 0)
    part = grey.sample(slice(y0, min(g.top + side, h)), slice(x0, min(g.left + side, w)))
    grey8 = grey.to_uint8(part, low, high) if high > low else np.zeros(part.shape, np.uint8)
    pixels = crop_resize(grey8, Geometry(g.top - y0, g.left - x0, side), size)
    return ModelInput(grey_to_rgb(pixels), g, head_found=box is not None)


def fit_square(image: np.ndarray, size: int) -> np.ndarray:
    """Pad to a centred square with black, then resize to ``size`` x ``size`` (bilinear).

    Padding keeps the anatomy's aspect ratio for scans of any shape; black is the
    background of an MRI slice, so the pad adds no edge the model could learn from.
    """
    return model_input(image, size, "pad-resize").pixels
