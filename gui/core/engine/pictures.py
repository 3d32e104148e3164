"""A batch row's picture after the fact: its scan read again (the batch keeps heatmaps, not frames) and its heatmap drawn over it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gui.core.engine.heatmap import blend, heat_to_frame
from gui.core.engine.result import Result
from gui.core.readers import open_study, read_image
from gui.core.readers.dicom_series import open_series


def result_frame(r: Result) -> np.ndarray:
    """The frame a batch row's heatmap belongs to, read again from its file (the batch keeps heatmaps,
    not frames): a study's key slice (of a DICOM series: the key slice's file alone, from the series
    the batch found), else the file's image. Raises ImageReadError when the file can no longer be read."""
    if r.series is not None:
        return open_series(r.series, levels=r.levels).frame(r.max_slice)
    return open_study(r.path).frame(r.max_slice) if r.is_study else read_image(r.path)


def result_picture(r: Result, size: int, opacity: float = 0.45, colormap: str = "inferno") -> np.ndarray:
    """A batch row's scan with its heatmap, fitted inside ``size`` x ``size`` (thumbnails, the batch
    preview)."""
    frame = result_frame(r)
    if r.heat is not None and r.geometry is not None:
        frame = blend(frame, heat_to_frame(r.heat, r.geometry, frame.shape[0], frame.shape[1]), opacity, colormap)
    picture = Image.fromarray(frame)
    picture.thumbnail((size, size), Image.Resampling.BILINEAR)
    return np.asarray(picture)
