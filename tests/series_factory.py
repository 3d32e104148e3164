"""Volumes and DICOM series built during the test run (nothing committed).

Slices come from one lgg patient of ``../shared/data/lgg`` when it is there (a real FLAIR stack in
order, with its expert tumour flags), else from synthetic head-like slices (a fresh clone).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import SHARED_DATA

LGG = SHARED_DATA / "lgg"
#: ImageOrientationPatient of the usual axial, coronal and sagittal stacks, and of unusual ones.
AXIAL = (1, 0, 0, 0, 1, 0)
ORIENTATIONS = {"axial": AXIAL, "coronal": (1, 0, 0, 0, 0, -1), "sagittal": (0, 1, 0, 0, 0, -1),
                "axial mirrored": (-1, 0, 0, 0, 1, 0), "axial transposed": (0, 1, 0, 1, 0, 0),
                "coronal upside down": (-1, 0, 0, 0, 0, 1)}


def stack(n: int | None = None, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """``[n, H, W]`` uint8 slices in order and their tumour flags: an lgg patient's FLAIR slices
    (resized to ``size``), or synthetic ones with a bright blob in the middle third."""
    if (LGG / "labels.csv").is_file():
        with (LGG / "labels.csv").open() as fh:
            rows = [r for r in csv.DictReader(fh) if r["patient"] == "TCGA_CS_4941"]
        rows.sort(key=lambda r: int(r["slice"]))
        rows = rows[:n] if n else rows
        images = np.stack([np.asarray(Image.open(LGG / r["image"]).convert("L").resize((size, size))) for r in rows])
        return images, np.array([r["label"] == "tumor" for r in rows])
    n = n or 24
    yy, xx = np.mgrid[0:size, 0:size]
    head = ((xx - size / 2) / (size * 0.4)) ** 2 + ((yy - size / 2) / (size * 0.45)) ** 2 < 1
    flags = np.zeros(n, bool)
    flags[n // 3: 2 * n // 3] = True
    images = np.stack([np.where(head, 60, 0).astype(np.uint8) for _ in range(n)])
    for k in np.flatnonzero(flags):
        images[k][(xx - size * 0.6) ** 2 + (yy - size * 0.4) ** 2 < (size / 6) ** 2] = 250
    return images, flags


def write_dicom_series(folder: Path, images: np.ndarray, uid: str | None = None, names: list[str] | None = None,
                       positions: list[float] | None = None, instance_numbers: list[int] | None = None,
                       series_number: int = 1, window: tuple[float, float] | None = None,
                       description: str = "", transfer_syntax: str | None = None,
                       orientation: tuple[float, ...] = AXIAL) -> list[Path]:
    """One single-frame MR file per slice, slice ``k`` at ``positions[k]`` mm (default 3 mm apart) along
    the slice normal, 12-bit values ``16 * image``, with a VOI ``window`` (centre, width) when given.
    ``images`` are the slices as a viewer displays them; with another ``orientation``
    (ImageOrientationPatient) they are stored turned so that the radiological display gives them back.
    A patient name is written so a test can check it never leaves the file."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    paths = []
    normal = np.cross(orientation[:3], orientation[3:])
    for k, shown in enumerate(images):
        img = stored_as(shown, orientation)
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "Doe^Jane", "SECRET-ID-42"
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "MR", uid, series_number
        ds.InstanceNumber = instance_numbers[k] if instance_numbers else k + 1
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = list(np.array([-100.0, -100.0, 0.0]) + normal * (positions[k] if positions else 3.0 * k))
        ds.PixelSpacing, ds.SliceThickness = [1, 1], 3
        ds.Rows, ds.Columns = img.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = (img.astype(np.uint16) * 16).tobytes()
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        if description:
            ds.SeriesDescription = description
        path = folder / (names[k] if names else f"IM{k:04d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def stored_as(shown: np.ndarray, orientation) -> np.ndarray:
    """The stored plane whose radiological display (the app's reader rule) is ``shown``."""
    from gui.core.readers.orientation import iop_plan

    plan = iop_plan(orientation)
    out = shown[::-1] if plan.flip_rows else shown
    out = out[:, ::-1] if plan.flip_cols else out
    return np.ascontiguousarray(np.swapaxes(out, 0, 1) if plan.transpose else out)


def converter_nifti(path: Path, images: np.ndarray, orientation, spacing: float = 3.0) -> Path:
    """The NIfTI a DICOM converter writes of :func:`write_dicom_series`'s files: the stored planes
    with the array's first axis along the DICOM rows (x), its affine from the orientation and the
    positions (DICOM's LPS turned into RAS), slices in order along the normal."""
    import nibabel as nib

    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row, col)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, 0], affine[:3, 1], affine[:3, 2] = lps_to_ras @ row, lps_to_ras @ col, lps_to_ras @ normal * spacing
    affine[:3, 3] = lps_to_ras @ np.array([-100.0, -100.0, 0.0])
    volume = np.stack([stored_as(s, orientation).T for s in images], axis=2).astype(np.int16) * 16
    nib.save(nib.Nifti1Image(volume, affine), str(path))
    return path


def write_nifti(path: Path, images: np.ndarray, affine: np.ndarray | None = None, volumes: int = 1) -> Path:
    """Slices ``[n, H, W]`` as displayed, saved as a RAS+ NIfTI volume (training's own writer)."""
    from training.series import write_volume

    return write_volume(path, images, affine, volumes)


def write_enhanced_dicom(path: Path, images: np.ndarray, orientation=AXIAL, spacing: float = 3.0,
                         photometric: str = "MONOCHROME2", presentation_shape: str | None = None) -> Path:
    """One enhanced MR multi-frame file of the displayed ``images``: the orientation in the shared
    functional groups, each frame's position and its own rescale (odd frames stored halved with slope 2,
    so only a reader of per-frame rescale gets the values back), frames stored in reverse order.
    ``photometric`` MONOCHROME1 stores ``4080 - value`` (what a viewer shows is unchanged)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import EnhancedMRImageStorage, ExplicitVRLittleEndian, generate_uid

    normal = np.cross(orientation[:3], orientation[3:])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = EnhancedMRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = "MR", generate_uid()
    n = len(images)
    ds.NumberOfFrames = n
    rows, cols = stored_as(images[0], orientation).shape
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    if presentation_shape:
        ds.PresentationLUTShape = presentation_shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = Dataset()
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = list(orientation)
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing, shared.PixelMeasuresSequence[0].SliceThickness = [1, 1], spacing
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    frames, per_frame = [], []
    for k in reversed(range(n)):
        values = stored_as(images[k], orientation).astype(np.int32) * 16
        if photometric == "MONOCHROME1":
            values = 4080 - values
        slope = 2.0 if k % 2 else 1.0
        frames.append((values / slope).astype(np.uint16))
        item = Dataset()
        item.PlanePositionSequence = Sequence([Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = list(np.array([-100.0, -100.0, 0.0]) + normal * spacing * k)
        item.PixelValueTransformationSequence = Sequence([Dataset()])
        item.PixelValueTransformationSequence[0].RescaleSlope = slope
        item.PixelValueTransformationSequence[0].RescaleIntercept = 0
        item.PixelValueTransformationSequence[0].RescaleType = "US"
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = np.stack(frames).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
