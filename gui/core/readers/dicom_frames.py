"""An enhanced multi-frame DICOM's per-frame functional groups: each frame's position, orientation and rescale (shared values where a frame has none)."""

from __future__ import annotations

import numpy as np

from gui.core.readers.orientation import iop_cosines


def frame_order(ds, n_frames: int) -> tuple[list[int], list[str]]:
    """An enhanced multi-frame image's frames in slice order: by each frame's ImagePositionPatient
    (per-frame functional groups) along the slice normal of its orientation (per-frame, else shared),
    when every frame has both and they share one orientation; else the stored order. Frame ``k`` of
    the scan is stored frame ``order[k]``."""
    stored = list(range(n_frames))
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if n_frames < 2 or not per_frame or len(per_frame) != n_frames:
        return stored, []
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    positions, normals = [], set()
    for item in per_frame:
        ipp = _first_item(item, "PlanePositionSequence", "ImagePositionPatient")
        iop = _first_item(item, "PlaneOrientationSequence", "ImageOrientationPatient") or \
            _first_item(shared, "PlaneOrientationSequence", "ImageOrientationPatient")
        if ipp is None or iop is None or len(ipp) != 3 or len(iop) != 6:
            return stored, []
        normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
        normals.add(tuple(np.round(normal, 2)))
        positions.append(float(np.dot(np.asarray(ipp, float), normal)))
    if len(normals) != 1:
        return stored, [f"the frames lie in {len(normals)} orientations; scored in stored order"]
    order = [int(k) for k in np.argsort(positions, kind="stable")]
    return order, ([] if order == stored else ["frames ordered by their positions (stored in another order)"])


def _first_item(item, sequence: str, keyword: str):
    """``item.sequence[0].keyword`` as a list of floats, or None when any part is missing."""
    try:
        value = getattr(item, sequence)[0].get(keyword)
        return None if value is None else [float(v) for v in value]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def frame_orientation(ds) -> list[float] | None:
    """The one ImageOrientationPatient of a file's frames: the top-level value (a classic image), else
    the per-frame or shared PlaneOrientationSequence (enhanced multi-frame) when every frame has the same
    one; None when there is none or the frames lie in several orientations (shown as stored, said)."""
    top = ds.get("ImageOrientationPatient")
    if top is not None:
        return [float(v) for v in top] if iop_cosines(top) is not None else None
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    common = _first_item(shared, "PlaneOrientationSequence", "ImageOrientationPatient")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    found = {tuple(np.round(v, 4)) for v in (_first_item(item, "PlaneOrientationSequence", "ImageOrientationPatient")
                                             for item in per_frame) if v is not None}
    if not found:
        return common
    if len(found) > 1 or len(found) == 1 and common is not None and tuple(np.round(common, 4)) not in found:
        return None
    return list(next(iter(found)))


def frame_rescale(ds, stored_index: int) -> tuple[float, float] | None:
    """(slope, intercept) of one frame of an enhanced multi-frame image: its own Pixel Value
    Transformation, else the shared one; None when neither names one (pydicom's top-level modality
    LUT or rescale then applies)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    items = ([per_frame[stored_index]] if stored_index < len(per_frame) else []) + ([shared] if shared is not None else [])
    for item in items:
        try:
            transform = item.PixelValueTransformationSequence[0]
            return float(transform.RescaleSlope), float(transform.RescaleIntercept)
        except (AttributeError, IndexError, TypeError, ValueError, KeyError):
            continue
    return None
