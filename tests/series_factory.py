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
                       description: str = "", transfer_syntax: str | None = None) -> list[Path]:
    """One single-frame MR file per slice, axial (ImageOrientationPatient 1,0,0,0,1,0), slice ``k`` at
    z = ``positions[k]`` (default 3 mm apart), 12-bit values ``16 * image``, with a VOI ``window``
    (centre, width) when given. A patient name is written so a test can check it never leaves the file."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    paths = []
    for k, img in enumerate(images):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID = "Doe^Jane", "SECRET-ID-42"
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "MR", uid, series_number
        ds.InstanceNumber = instance_numbers[k] if instance_numbers else k + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-100, -100, positions[k] if positions else 3.0 * k]
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


def write_nifti(path: Path, images: np.ndarray, affine: np.ndarray | None = None, volumes: int = 1) -> Path:
    """Slices ``[n, H, W]`` as displayed, saved as a RAS+ NIfTI volume (training's own writer)."""
    from training.series import write_volume

    return write_volume(path, images, affine, volumes)
