"""DICOM and NIfTI the way scanners and converters really write them: dual echoes, gaps, enhanced
multi-frame positions, several orientations in one series, palettes, raw datasets, 12-bit JPEG, 5-D NIfTI."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from gui.core.engine import stream
from gui.core.readers import ImageReadError, open_item, open_scan
from tests.series_factory import stack, write_dicom_series, write_nifti


def _items(folder):
    return list(stream.collect_files([folder]))


def test_two_echoes_per_position_do_not_hide_a_missing_position(tmp_path):
    images, _ = stack(10, size=32)
    positions = [3.0 * k for k in range(10) if k != 6]  # position 18 mm is missing
    both = np.concatenate([images[:9], images[:9]])
    write_dicom_series(tmp_path / "s", both, positions=positions + positions)
    [series] = _items(tmp_path / "s")
    notes = open_item(series).notes
    assert any("hold more than one slice" in n for n in notes)
    assert any("1 slice(s) missing" in n and "6.0 mm apart where 3.0 mm is usual" in n for n in notes)


def test_duplicated_positions_are_said(tmp_path):
    images, _ = stack(6, size=32)
    write_dicom_series(tmp_path / "s", images, positions=[0, 3, 6, 6, 9, 12])
    [series] = _items(tmp_path / "s")
    assert any("1 position(s) hold more than one slice" in n for n in open_item(series).notes)


def test_a_series_in_three_orientations_is_three_studies(tmp_path):
    images, _ = stack(9, size=32)
    files = write_dicom_series(tmp_path / "s", images)
    uid = pydicom.dcmread(files[0]).SeriesInstanceUID
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = uid
        ds.ImageOrientationPatient = [[1, 0, 0, 0, 1, 0], [1, 0, 0, 0, 0, -1], [0, 1, 0, 0, 0, -1]][k % 3]
        ds.save_as(f)
    items = _items(tmp_path / "s")
    assert len(items) == 3 and all(len(i.files) == 3 for i in items)
    assert all(any("3 orientations" in n for n in open_item(i).notes) for i in items)


def _enhanced_mr(path, frames: np.ndarray, z: list[float]):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.Modality, ds.SeriesInstanceUID = "MR", generate_uid()
    ds.NumberOfFrames, (ds.Rows, ds.Columns) = len(frames), frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    shared = Dataset()
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for zk in z:
        item, pos = Dataset(), Dataset()
        pos.ImagePositionPatient = [0, 0, zk]
        item.PlanePositionSequence = [pos]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = frames.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_an_enhanced_multi_frame_is_scored_in_position_order(tmp_path):
    frames = np.stack([np.full((16, 16), 100 * (k + 1), np.uint16) for k in range(4)])
    stored_z = [9.0, 0.0, 6.0, 3.0]  # stored out of order
    scan = open_scan(_enhanced_mr(tmp_path / "e.dcm", frames, stored_z))
    firsts = [float(scan.plane(k).values[0, 0]) for k in range(4)]
    assert firsts == [200.0, 400.0, 300.0, 100.0]  # z = 0, 3, 6, 9
    assert any("ordered by their positions" in n for n in scan.notes)


def test_a_palette_colour_image_is_scored_through_its_palette(tmp_path):
    """An inverting palette: the model sees what the palette shows, not the raw indices."""
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    grey = write_dicom_series(tmp_path / "g", (255 - ramp)[None] // 16)[0]  # reference: the shown picture
    ds = pydicom.dcmread(grey)
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "PALETTE COLOR", 8, 8, 7
    lut = (255 - np.arange(256)).astype(np.uint8).tobytes()
    for k in range(3):  # red, green and blue: descriptor (0028,110x) and data (0028,120x)
        ds.add_new(0x00281101 + k, "US", [256, 0, 8])
        ds.add_new(0x00281201 + k, "OW", lut)
    ds.PixelData = ramp.tobytes()
    ds.save_as(tmp_path / "p.dcm")
    shown = open_scan(tmp_path / "p.dcm").model_frame()
    assert shown.shape == (64, 64, 3) and np.array_equal(shown[..., 0], 255 - ramp)


def test_a_raw_dataset_without_preamble_or_file_meta_is_read(tmp_path):
    images, _ = stack(1, size=32)
    ds = pydicom.dcmread(write_dicom_series(tmp_path / "s", images)[0])
    del ds.file_meta
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    pydicom.filewriter.write_dataset(buffer, ds)  # implicit VR little endian, nothing before it
    raw = tmp_path / "raw.dcm"
    raw.write_bytes(buffer.getvalue())
    assert raw.read_bytes()[:2] == b"\x08\x00"
    scan = open_scan(raw)
    assert scan.format == "DICOM" and np.array_equal(scan.plane().values, images[0].astype(np.float32) * 16)


def test_twelve_bit_jpeg_without_its_decoder_names_the_package():
    from pydicom.data import get_testdata_file
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGExtended12Bit

    if set(get_decoder(JPEGExtended12Bit).available_plugins) - {"pillow"}:
        pytest.skip("a 12-bit JPEG decoder is installed here")
    with pytest.raises(ImageReadError, match="reads only 8-bit JPEG; install one of .*pylibjpeg"):
        open_scan(get_testdata_file("JPGExtended.dcm")).frame()


def test_a_five_d_nifti_says_which_volume_was_scored(tmp_path):
    import nibabel as nib

    images, _ = stack(4, size=16)
    data = np.zeros((16, 16, 4, 1, 3), np.int16)
    data[..., 0, 0] = np.transpose(images, (2, 1, 0))
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "five.nii")
    scan = open_scan(tmp_path / "five.nii")
    assert scan.n_frames == 4 and any("5-D file" in n and "volume 1 of 3" in n for n in scan.notes)
    write_nifti(tmp_path / "four.nii", images, volumes=2)
    assert any("volume 1 of 2" in n for n in open_scan(tmp_path / "four.nii").notes)
