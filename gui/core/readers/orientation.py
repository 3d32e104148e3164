"""Which way a stored plane is shown, and fed to a model: the radiological convention from an affine or a DICOM orientation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gui.core.readers.scan import Plane


@dataclass(frozen=True)
class DisplayPlan:
    """How a stored plane ``[i, j]`` becomes the displayed image: transpose, then flips.

    Radiological convention, the one DICOM viewers use: axial and coronal slices show the patient's
    right on the screen's left; axial slices have anterior up, coronal and sagittal superior up, and
    sagittal slices anterior on the left. A DICOM series stored the usual way is shown as stored.
    """

    transpose: bool
    flip_rows: bool
    flip_cols: bool
    plane: str

    def apply(self, data: np.ndarray) -> np.ndarray:
        """The displayed plane of ``data`` (``[i, j]`` or ``[i, j, channel]``)."""
        if self.transpose:
            data = np.swapaxes(data, 0, 1)
        if self.flip_rows:
            data = data[::-1]
        if self.flip_cols:
            data = data[:, ::-1]
        return data

    def describe(self) -> str:
        return f"{self.plane} slices, radiological convention"

    def screen_directions(self, right: np.ndarray, down: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The patient directions of the displayed image's right and down, from the stored plane's
        (a DICOM file's row and column direction cosines): what the orientation letters are made from."""
        if self.transpose:
            right, down = down, right
        return (-right if self.flip_cols else right), (-down if self.flip_rows else down)

    def orient(self, plane: Plane) -> Plane:
        """A stored plane as displayed: the model and the screen get the same turned pixels."""
        return Plane(values=None if plane.values is None else np.ascontiguousarray(self.apply(plane.values)),
                     rgb=None if plane.rgb is None else np.ascontiguousarray(self.apply(plane.rgb)),
                     voi=plane.voi, inverted=plane.inverted, voi_window=plane.voi_window)


#: Screen-right and screen-down world axes (RAS: 0 x, 1 y, 2 z) for the world axis a slice is normal to.
_SCREEN_AXES = {2: (0, 1, "axial"), 1: (0, 2, "coronal"), 0: (1, 2, "sagittal")}


def display_plan(affine: np.ndarray) -> DisplayPlan | None:
    """The display of plane ``[:, :, k]`` of an array whose voxel-to-RAS+ mapping is ``affine``:
    nibabel's ``io_orientation`` names each array axis's nearest world axis and direction, and
    the screen's right and down point to the patient's left/posterior/inferior (see DisplayPlan).
    None when the affine gives no orientation (degenerate)."""
    import nibabel as nib

    try:
        ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))
    except (ValueError, np.linalg.LinAlgError):
        return None
    if ornt.shape[0] < 3 or np.isnan(ornt[:3]).any():
        return None
    world, sign = ornt[:3, 0].astype(int), ornt[:3, 1]
    col_world, _row_world, plane = _SCREEN_AXES[int(world[2])]
    col_axis = 0 if world[0] == col_world else 1
    return DisplayPlan(transpose=col_axis == 0, flip_rows=bool(sign[1 - col_axis] > 0),
                       flip_cols=bool(sign[col_axis] > 0), plane=plane)


#: The display of an array stored in RAS+ order (an identity affine).
RAS_PLAN = DisplayPlan(transpose=True, flip_rows=True, flip_cols=True, plane="axial")


def iop_cosines(iop) -> tuple[np.ndarray, np.ndarray] | None:
    """A DICOM ImageOrientationPatient as its row and column direction cosines (LPS+), or None when it
    is not two orthogonal unit vectors (a damaged or missing value: the plane is shown as stored)."""
    try:
        values = np.asarray([float(v) for v in iop], np.float64)
    except (TypeError, ValueError):
        return None
    if values.shape != (6,) or not np.isfinite(values).all():
        return None
    row, col = values[:3], values[3:]
    if abs(np.linalg.norm(row) - 1) > 0.01 or abs(np.linalg.norm(col) - 1) > 0.01 or abs(row @ col) > 0.01:
        return None
    return row, col


def iop_plan(iop) -> DisplayPlan | None:
    """The display of one DICOM plane from its ImageOrientationPatient: the same plan a series of such
    planes gets (nibabel's rotation: array axis 0 along the column cosine, axis 1 along the row cosine),
    so a file opened alone and the same file in its series feed the model the same pixels."""
    cosines = iop_cosines(iop)
    if cosines is None:
        return None
    row, col = cosines
    return lps_rotation_plan(np.column_stack([col, row, np.cross(col, row)]))


def lps_rotation_plan(rotation: np.ndarray) -> DisplayPlan | None:
    """The display of a DICOM slice stack from nibabel's rotation matrix (in DICOM's LPS+)."""
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rotation
    return display_plan(affine)
