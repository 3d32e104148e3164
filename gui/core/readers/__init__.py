"""Scan files into frames, one reader per container: the package's public face (open, read, what is a study).

Formats are detected by content, never by extension: JPEG, PNG, BMP, TIFF, GIF (first frame),
DICOM (with or without the 128-byte preamble) and NIfTI-1/2 (plain or gzipped). Every failure
is raised as :class:`ImageReadError`, which names the file and the reason. No Qt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gui.core.readers.dicom import open_dicom, read_header
from gui.core.readers.dicom_series import (
    DicomSeries,
    group_dicom_series,
    open_series,
    series_of,
    stack_key,
)
from gui.core.readers.limits import MAX_PIXELS, check_file_size, guarded
from gui.core.readers.nifti import nifti_slices, open_nifti
from gui.core.readers.raster import open_raster
from gui.core.readers.scan import ImageReadError, Plane, Scan
from gui.core.readers.sniff import (
    IMAGE_SUFFIXES,
    is_image_file,
    read_head,
    sniff_file,
    sniff_format,
)

__all__ = ["DicomSeries", "IMAGE_SUFFIXES", "ImageReadError", "MAX_PIXELS", "Plane", "Scan", "group_dicom_series",
           "is_image_file", "is_study_file", "open_item", "open_scan", "open_study", "read_image", "sniff_format",
           "stack_key"]


def open_scan(path: str | Path) -> Scan:
    """Open a file and describe its frames; pixels of large volumes decode lazily."""
    path = Path(path)
    kind = sniff_file(path)
    check_file_size(path)
    opener = open_dicom if kind == "DICOM" else open_nifti if kind in ("NIfTI", "GZIP") else open_raster
    return guarded(path, kind, lambda: opener(path))


def open_item(item: Path | DicomSeries) -> Scan:
    """Open a file or a DICOM series."""
    return open_series(item) if isinstance(item, DicomSeries) else open_scan(item)


def open_study(path: str | Path) -> Scan:
    """What the window opens for a file: the file itself, or, for one slice of a DICOM series in its
    folder, the whole series named by and showing that file (its slice is shown first)."""
    path = Path(path)
    scan = open_scan(path)
    if scan.format == "DICOM" and scan.n_frames == 1:
        series = series_of(path)
        if series is not None:
            return open_series(series, opened=path)
    return scan


def read_image(path: str | Path) -> np.ndarray:
    """The displayed 8-bit RGB image of a file's default frame (what the window shows)."""
    return open_scan(path).frame()


def is_study_file(path: Path) -> bool:
    """Whether a file holds more than one slice (:attr:`Scan.is_study`), from its header alone, so a
    batch can plan a study's slices before decoding any: a NIfTI whose third dimension is above 1,
    a DICOM with NumberOfFrames above 1. Unreadable files are not: the reader reports them."""
    try:
        head = read_head(path)
        kind = sniff_format(head)
        if kind in ("NIfTI", "GZIP"):
            return nifti_slices(path) > 1
        if kind == "DICOM":
            header = read_header(path, head, specific_tags=["NumberOfFrames"])
            return int(header.get("NumberOfFrames", 1) or 1) > 1
    except Exception:  # any read or header failure: the file goes the single-image way and is reported there
        return False
    return False
