"""A frame's grey levels as the brain crop reads them: samples, percentiles, thresholds and the 8-bit window.

The brain crop (``gui.core.engine.preprocess``) works on the channel mean in float32. For an 8-bit frame
(JPEG, PNG: most files) that mean can take only 766 values, ``sum / 3`` for a channel sum of 0..765,
so :class:`CodedGrey` keeps the integer sum as a code and answers every question from a 766-entry
table: percentiles from a histogram instead of a partition of every pixel, thresholds and the
window as table look-ups. Any other frame (float32 DICOM and NIfTI) is read by :class:`FloatGrey`,
whose percentiles of one sample share one partial sort (:class:`OrderStatistics`). Every answer is
bit for bit what numpy's ``percentile`` on the float32 means gives, so the model's inputs do not
change; they cost a fraction of the time.
"""

from __future__ import annotations

import bisect
from typing import Callable

import numpy as np

from gui.core.display import window_to_uint8

#: The channel mean of every possible channel sum of an 8-bit RGB pixel, exactly as ``as_float`` makes it.
_MEANS = np.arange(766, dtype=np.float32) / np.float32(3)


def as_float(image: np.ndarray) -> np.ndarray:
    """The channel mean in float32, bit for bit ``rgb.mean(axis=2, dtype=float32)`` (the integer sum
    of three bytes is exact), without numpy's slow reduction over a 3-long axis."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return channel_sum(image).astype(np.float32) / np.float32(3)


def channel_sum(image: np.ndarray) -> np.ndarray:
    """The sum of the three channels of an 8-bit image as uint16 (the grey code of :class:`CodedGrey`)."""
    total = image[..., 0].astype(np.uint16)
    total += image[..., 1]
    total += image[..., 2]
    return total


class FloatGrey:
    """Grey levels of any frame as float32 channel means; numpy's percentiles from partial sorts."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        h, w = image.shape[:2]
        self._full = as_float(image) if h * w <= 1 << 20 else None  # small frames: one conversion serves every step
        self._ordered: dict[tuple, OrderStatistics | None] = {}

    def sample(self, rows: slice, cols: slice) -> np.ndarray:
        """The grey levels of ``image[rows, cols]`` (in this class's representation)."""
        return self._full[rows, cols] if self._full is not None else as_float(self.image[rows, cols])

    def percentile(self, rows: slice, cols: slice, q):
        """``np.percentile(grey, q)`` of the sample ``image[rows, cols]``, bit for bit: float32 for one
        ``q``, float64 for a list (a sample with NaN: numpy's own answer, NaN)."""
        key = _key(rows, cols)
        if key not in self._ordered:  # the head box and the background level often share a sample
            sample = self.sample(rows, cols)
            self._ordered[key] = None if np.isnan(sample).any() else OrderStatistics(sample)
        stats = self._ordered[key]
        if stats is None:
            return np.percentile(self.sample(rows, cols), q)
        return ordered_percentiles(stats.values.size, q, stats)

    def above(self, sample: np.ndarray, level) -> np.ndarray:
        """Where the sample's grey level is above ``level``."""
        return sample > level

    def to_uint8(self, sample: np.ndarray, low: float, high: float) -> np.ndarray:
        """``display.window_to_uint8(grey, low, high)`` of a sample."""
        return window_to_uint8(sample, low, high)


class CodedGrey(FloatGrey):
    """Grey levels of an 8-bit frame kept as channel-sum codes (0..765); the same answers as
    :class:`FloatGrey` from look-up tables (``tests/test_grey_stats.py`` holds them to it)."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        h, w = image.shape[:2]
        self._full = self._codes(image) if h * w <= 1 << 20 else None
        self._histograms: dict[tuple, np.ndarray] = {}

    @staticmethod
    def _codes(image: np.ndarray) -> np.ndarray:
        if image.ndim == 3:
            return channel_sum(image)
        return image.astype(np.uint16) * np.uint16(3)  # a grey frame: its code is 3 x its level

    def sample(self, rows: slice, cols: slice) -> np.ndarray:
        return self._full[rows, cols] if self._full is not None else self._codes(self.image[rows, cols])

    def percentile(self, rows: slice, cols: slice, q):
        key = _key(rows, cols)
        if key not in self._histograms:  # the head box and the background level often share a sample
            self._histograms[key] = np.bincount(self.sample(rows, cols).ravel(), minlength=_MEANS.size)
        return histogram_percentiles(self._histograms[key], _MEANS, q)

    def above(self, sample: np.ndarray, level) -> np.ndarray:
        # The means rise with the code, so "mean above level" is "code at or above the first such code".
        return sample >= np.count_nonzero(~(_MEANS > level))

    def to_uint8(self, sample: np.ndarray, low: float, high: float) -> np.ndarray:
        return np.take(window_to_uint8(_MEANS, low, high), sample)


def _key(rows: slice, cols: slice) -> tuple:
    """A sample's cache key (slices are not hashable before Python 3.12)."""
    return rows.start, rows.stop, rows.step, cols.start, cols.stop, cols.step


def grey_of(image: np.ndarray) -> FloatGrey:
    """The fast exact reader for an 8-bit frame, numpy's for anything else (float32 DICOM, NIfTI)."""
    return CodedGrey(image) if image.dtype == np.uint8 and image.ndim in (2, 3) else FloatGrey(image)


def histogram_percentiles(counts: np.ndarray, values: np.ndarray, q):
    """``np.percentile(data, q)`` (linear method) bit for bit, where ``data`` holds ``counts[i]``
    copies of ``values[i]`` (``values`` increasing: float32 grey levels, or integer coordinates, whose
    percentiles then need no listing of a mask's pixels): the order statistics come from the
    cumulative counts."""
    ends = np.cumsum(counts)
    return ordered_percentiles(int(ends[-1]), q, lambda k: values[np.searchsorted(ends, k, side="right")])


def ordered_percentiles(n: int, q, kth: Callable[[np.ndarray], np.ndarray]):
    """``np.percentile`` (linear method) of ``n`` values, bit for bit, given ``kth(k)``: the ``k``-th
    smallest values for an array of positions ``k``. The interpolation is numpy's ``_lerp`` in numpy's
    dtypes (for float32 values: float32 for one ``q``, float64 for a list of them)."""
    weak = type(q) in (int, float)
    virtual = (n - 1) * np.true_divide(q, 100)
    below = np.floor(virtual)
    last = virtual >= n - 1
    lo = np.where(last, n - 1, below).astype(np.intp)
    hi = np.where(last, n - 1, below + 1).astype(np.intp)
    a, b = kth(lo), kth(hi)
    gamma = np.asarray(virtual - np.where(last, -1, below), dtype=np.float64)
    if weak:
        t = float(gamma)
        diff = b - a
        return b - diff * (1 - t) if t >= 0.5 else a + diff * t
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe")
    return out


class OrderStatistics:
    """A sample's values, sorted only where asked: the ``k``-th smallest costs one partition of the
    unsorted stretch between the positions already fixed, so the brain crop's three percentiles of one
    sample cost about one partition of it (``np.percentile`` partitions a full copy every call)."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = np.array(values, dtype=np.float32).ravel()  # a copy: partitioned in place
        self._fixed = [-1, self.values.size]  # positions holding their sorted value, with sentinels

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        out = np.empty(np.shape(positions), np.float32)
        for i, k in np.ndenumerate(positions):
            k = int(k)
            j = bisect.bisect_left(self._fixed, k)
            if self._fixed[j] != k:
                start = self._fixed[j - 1] + 1
                stretch = self.values[start:self._fixed[j]]
                if k == start:  # the smallest of the stretch (a percentile's upper neighbour): a minimum, not a sort
                    m = int(np.argmin(stretch))
                    stretch[0], stretch[m] = stretch[m], stretch[0]
                else:
                    stretch.partition(k - start)
                self._fixed.insert(j, k)
            out[i] = self.values[k]
        return out[()] if out.ndim == 0 else out
