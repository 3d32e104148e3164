"""The shared reader: formats by content, windowing, orientation, real MRI files from pydicom and nibabel."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gui.core.display import window_to_uint8
from gui.core.engine.preprocess import fit_square
from gui.core.readers import MAX_PIXELS, ImageReadError, open_scan, read_image


def save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_formats_by_content_not_extension(tmp_path):
    rgb = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    for fmt, name in [("PNG", "a.jpg"), ("JPEG", "b.png"), ("BMP", "c"), ("TIFF", "d.dat"), ("GIF", "e.jpeg")]:
        path = save(Image.fromarray(rgb), tmp_path / name, format=fmt)
        scan = open_scan(path)
        out = scan.frame()
        assert scan.format == fmt and out.shape == (20, 30, 3) and out.dtype == np.uint8
        if fmt in ("PNG", "BMP", "TIFF"):
            assert np.array_equal(out, rgb)


def test_sixteen_bit_png_is_windowed_min_max(tmp_path):
    a = np.linspace(1000, 3000, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = save(Image.fromarray(a), tmp_path / "deep.png")
    out = read_image(path)
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255
    assert np.array_equal(out[..., 0], out[..., 2])


def test_palette_rgba_cmyk_and_greyscale(tmp_path):
    grey = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)))
    assert read_image(save(grey.convert("P"), tmp_path / "p.png")).shape == (64, 64, 3)
    rgba = Image.new("RGBA", (8, 8), (200, 100, 50, 0))
    assert read_image(save(rgba, tmp_path / "t.png")).max() == 0  # fully transparent -> black background
    cmyk = Image.new("CMYK", (8, 8), (0, 0, 0, 0))
    assert read_image(save(cmyk, tmp_path / "c.jpg")).min() > 240  # no ink -> white
    assert np.array_equal(read_image(save(grey, tmp_path / "g.png"))[..., 1], np.asarray(grey))


def test_exif_rotated_jpeg_is_shown_upright(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(img, tmp_path / "rot.jpg", exif=exif)
    assert read_image(path).shape == (40, 20, 3)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("L", (10, 10), v) for v in (10, 200)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    scan = open_scan(path)
    assert scan.n_frames == 1 and abs(int(scan.frame()[0, 0, 0]) - 10) <= 2


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, I am a text file"), "not a supported image"),
    (lambda p: p.mkdir(), "folder"),
])
def test_bad_files_raise_reader_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "scan.jpg"
    make(path)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert reason in info.value.reason and "scan.jpg" in str(info.value)


def test_truncated_images(tmp_path):
    rgb = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt)
        path = tmp_path / f"cut.{fmt.lower()}"
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        with pytest.raises(ImageReadError, match="truncated or damaged"):
            read_image(path)


def test_decompression_bomb_refused_from_header(tmp_path):
    side = int(np.sqrt(MAX_PIXELS)) + 100
    path = tmp_path / "huge.png"
    Image.new("1", (side, side)).save(path)  # 1-bit: small file, huge image
    with pytest.raises(ImageReadError, match="pixel limit|too large"):
        read_image(path)


def test_missing_file():
    with pytest.raises(ImageReadError, match="not found"):
        read_image("/nonexistent/x.png")


def test_real_dicom_files_from_pydicom(tmp_path):
    from pydicom.data import get_testdata_file

    scan = open_scan(get_testdata_file("MR_small.dcm"))
    assert scan.format == "DICOM" and scan.frame().shape == (64, 64, 3)
    assert "PatientName" not in str(scan.info) and scan.info["modality"] == "MR"
    rle = open_scan(get_testdata_file("MR_small_RLE.dcm")).frame()
    assert np.array_equal(rle, scan.frame())  # lossless compression: the same displayed image
    no_extension = tmp_path / "IM0001"
    shutil.copy(get_testdata_file("MR_small.dcm"), no_extension)
    assert open_scan(no_extension).format == "DICOM"
    with pytest.raises(ImageReadError, match="DICOM pixel data"):
        read_image(get_testdata_file("MR_truncated.dcm"))


def test_dicom_monochrome1_rescale_and_window(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    base = open_scan(get_testdata_file("MR_small.dcm")).frame()[..., 0].astype(int)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    inverted = read_image(tmp_path / "m1.dcm")[..., 0].astype(int)
    assert np.abs((255 - base) - inverted).max() <= 1
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.RescaleSlope, ds.RescaleIntercept = 2, -100
    ds.WindowCenter, ds.WindowWidth = 600, 400  # in rescaled units: 400..800 mapped to 0..255
    ds.save_as(tmp_path / "win.dcm")
    scan = open_scan(tmp_path / "win.dcm")
    windowed = scan.frame()[..., 0].astype(float)
    raw = ds.pixel_array * 2.0 - 100
    assert windowed[raw <= 400].max() == 0 and windowed[raw >= 800].min() == 255
    inside = (raw > 400) & (raw < 800)  # the standard's line, not a second stretch of the windowed values
    assert inside.sum() > 100
    assert np.abs(windowed[inside] - ((raw[inside] - 599.5) / 399 + 0.5) * 255).max() <= 0.5
    # the model image is the stored values on the study's scale, whatever the window: an affine map of raw
    model = scan.model_frame().astype(float)
    kept = model > 0
    fit = np.polyfit(raw[kept], model[kept], 1)
    assert np.abs(np.polyval(fit, raw[kept]) - model[kept]).max() < 1e-2


def test_compressed_dicom_without_decoder_names_the_fix():
    from pydicom.data import get_testdata_file

    with pytest.raises(ImageReadError, match="no decoder"):
        read_image(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))


def test_real_nifti_from_nibabel_middle_axial_slice():
    import nibabel

    path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    scan = open_scan(path)
    assert scan.format == "NIfTI" and scan.n_frames == 25 and scan.default_frame == 12
    assert scan.frame().shape == (41, 33, 3) and scan.frame().max() > 200  # windowed to the volume, not dim
    assert not np.array_equal(scan.frame(0), scan.frame(12))


def test_nifti_dimensions_nan_and_gzip(tmp_path):
    import gzip

    import nibabel as nib

    vol = np.random.default_rng(2).random((16, 12, 5, 3)).astype(np.float32)
    vol[0, 0, :, :] = np.nan
    nib.save(nib.Nifti1Image(vol, np.eye(4)), tmp_path / "v4.nii")
    scan = open_scan(tmp_path / "v4.nii")
    assert scan.n_frames == 5 and "volume 1 of 3" in scan.info["size"] and scan.frame().shape == (12, 16, 3)
    nib.save(nib.Nifti1Image(vol[:, :, 0, 0], np.eye(4)), tmp_path / "flat.nii")
    assert open_scan(tmp_path / "flat.nii").n_frames == 1
    (tmp_path / "v4.nii.gz").write_bytes(gzip.compress((tmp_path / "v4.nii").read_bytes()))
    assert np.array_equal(open_scan(tmp_path / "v4.nii.gz").frame(2), scan.frame(2))


def test_window_and_fit_square():
    assert window_to_uint8(np.array([np.nan, 0.0, 5.0, 10.0])).tolist() == [0, 0, 128, 255]
    assert window_to_uint8(np.full((2, 2), 7.0)).max() == 0
    tall = np.full((40, 20, 3), 255, np.uint8)
    sq = fit_square(tall, 20)
    assert sq.shape == (20, 20, 3) and sq[:, 0].max() == 0 and sq[10, 10, 0] == 255  # black pad left/right
