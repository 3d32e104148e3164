"""The brain crop's fast 8-bit statistics give exactly what numpy gives on the float32 grey levels."""

from __future__ import annotations

import numpy as np

from gui.core.engine.grey_stats import _MEANS, FloatGrey, as_float, histogram_percentiles
from gui.core.engine.preprocess import brain_crop


def test_histogram_percentiles_are_numpys_bit_for_bit():
    """Order statistics and numpy's interpolation, in numpy's dtypes (float32 for one q, float64 for a
    list), over many small samples: enough cases where rounding from the lower or the upper end differs."""
    rng = np.random.default_rng(7)
    for trial in range(3000):
        n = int(rng.integers(1, 400)) if trial < 2990 else 65_536
        codes = rng.integers(0, 766, n)
        if trial % 2:
            codes[: n // 2] = rng.integers(0, 4, n // 2)  # a dark background: long ties
        counts = np.bincount(codes, minlength=766)
        for q in (1, 99.5, 0, 100, 2.0, [2, 99], [0, 1, 99.5, 100]):
            expected = np.asarray(np.percentile(_MEANS[codes], q))
            got = np.asarray(histogram_percentiles(counts, _MEANS, q))
            assert got.dtype == expected.dtype and np.array_equal(got, expected), (n, q, got, expected)


def test_a_masks_coordinate_percentiles_from_its_counts_are_numpys():
    """The head box's 1st and 99th percentile rows, from per-row counts, as np.percentile of np.nonzero."""
    rng = np.random.default_rng(2)
    for _trial in range(3000):
        mask = rng.random(tuple(rng.integers(1, 80, 2))) < rng.random()
        if mask.any():
            rows = np.count_nonzero(mask, axis=1)
            got = histogram_percentiles(rows, np.arange(rows.size), [1, 99])
            expected = np.percentile(np.nonzero(mask)[0], [1, 99])
            assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_float_percentiles_share_partial_sorts_and_stay_numpys():
    """Several percentiles of one sample, asked in any order, from one cached partial sort."""
    rng = np.random.default_rng(11)
    everything = slice(None)
    for trial in range(400):
        n = int(rng.integers(1, 3000))
        values = (rng.random(n) * rng.choice([1, 300, 4000])).astype(np.float32)
        if trial % 3 == 0:
            values[: n // 2] = 0  # background ties
        if trial % 7 == 0:
            values[-1] = np.inf
        grey = FloatGrey(values[None, :])
        for q in rng.permutation([1, 99.5, 2.0, 50, 0, 100]).tolist() + [[2, 99], [1, 99.5]]:
            q = q if isinstance(q, list) else (int(q) if float(q).is_integer() and trial % 2 else float(q))
            with np.errstate(invalid="ignore"):  # inf - inf, as numpy meets it too
                expected = np.asarray(np.percentile(values, q))
                got = np.asarray(grey.percentile(everything, everything, q))
            assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True), (n, q, got, expected)
    with_nan = FloatGrey(np.array([[1.0, np.nan, 3.0]], np.float32))
    assert np.isnan(with_nan.percentile(everything, everything, 50))


def _frames():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:300, 0:260]
    head = (((yy - 160) / 120.0) ** 2 + ((xx - 130) / 100.0) ** 2) < 1
    scan = np.where(head, 40 + rng.integers(0, 180, head.shape), rng.integers(0, 6, head.shape)).astype(np.uint8)
    tinted = np.stack([scan, (scan * 0.9).astype(np.uint8), np.minimum(scan.astype(int) + 7, 255).astype(np.uint8)], -1)
    large = np.repeat(np.repeat(tinted, 4, axis=0), 4, axis=1)  # 1200x1040: the subsampled path (> 1 MP)
    yield np.repeat(scan[..., None], 3, axis=2)
    yield tinted
    yield large
    yield (rng.random((37, 411, 3)) * 255).astype(np.uint8)  # a strip
    edge = np.zeros((120, 120, 3), np.uint8)  # the foreground level lands exactly on a grey level
    edge[20:100, 20:100] = 100  # low 0, high 100: foreground is above 12.0 exactly
    edge[5:115, 5:15] = (12, 12, 12)  # grey 12.0: background
    edge[5:115, 105:115] = (12, 12, 13)  # grey 12.33: foreground, widens the box
    yield edge
    yield np.zeros((64, 64, 3), np.uint8)  # blank: no head
    yield np.full((40, 40, 3), 200, np.uint8)


def test_the_crop_is_numpys_for_8bit_and_float_frames(monkeypatch):
    """Both fast paths against the crop computed with ``np.percentile`` itself."""
    frames = list(_frames())
    floats = [as_float(f) * np.float32(1.7) for f in frames]  # float frames above 255, as a study's scale gives
    fast = [brain_crop(f, 224) for f in frames + floats]
    monkeypatch.setattr(FloatGrey, "percentile", lambda self, rows, cols, q: np.percentile(self.sample(rows, cols), q))
    monkeypatch.setattr("gui.core.engine.preprocess.grey_of", FloatGrey)  # every frame through numpy
    reference = [brain_crop(f, 224) for f in frames + floats]
    for a, b in zip(fast, reference, strict=True):
        assert a.geometry == b.geometry and a.head_found == b.head_found
        assert np.array_equal(a.pixels, b.pixels)


def test_an_8bit_frame_is_cropped_exactly_as_its_float_grey_levels():
    """The look-up-table path (8-bit frames) against numpy on the same grey levels in float32 (the path
    of DICOM and NIfTI): the same square, the same pixels, the same head verdict."""
    for frame in _frames():
        fast, reference = brain_crop(frame, 224), brain_crop(as_float(frame), 224)
        assert fast.geometry == reference.geometry
        assert fast.head_found == reference.head_found
        assert np.array_equal(fast.pixels, reference.pixels)
    grey = next(_frames())[..., 0]  # a grey 2-D frame: its code is three times its level
    assert np.array_equal(brain_crop(grey, 96).pixels, brain_crop(grey.astype(np.float32), 96).pixels)
