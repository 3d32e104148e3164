"""Hostile inputs built during the test run: a corpus of bad files, a network block, a tree digest.

Shared by the reader and the GUI reliability tests (a helper module, not a test module).
"""

from __future__ import annotations

import hashlib
import io
import socket
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def hostile_corpus(root: Path) -> dict[str, str]:
    """Write the hostile inputs; returns file name -> expected status ('ok' or 'error')."""
    import nibabel as nib
    import pydicom
    from pydicom.data import get_testdata_file

    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, str] = {}

    def put(name: str, data: bytes, status: str) -> None:
        (root / name).write_bytes(data)
        expect[name] = status

    rgb = Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    put("zero.jpg", b"", "error")
    put("truncated.jpg", png_bytes(rgb, "JPEG")[:300], "error")
    put("truncated.png", png_bytes(rgb)[:200], "error")
    put("text.jpg", b"Dear radiologist, this is not an image.\n", "error")
    (root / "scan.png").mkdir()
    expect["scan.png"] = "error"
    put("deep16.png", png_bytes(Image.fromarray(np.arange(4096, dtype=np.uint16).reshape(64, 64) * 16)), "ok")
    put("palette.png", png_bytes(rgb.convert("P")), "ok")
    put("rgba.png", png_bytes(rgb.convert("RGBA")), "ok")
    put("cmyk.jpg", png_bytes(rgb.convert("CMYK"), "JPEG"), "ok")
    put("one_pixel.png", png_bytes(Image.new("L", (1, 1), 128)), "ok")
    put("bomb.png", png_bytes(Image.new("1", (20000, 20000))), "error")
    frames = [Image.new("L", (32, 32), v) for v in (20, 220)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    put("animated.gif", gif.getvalue(), "ok")
    exif = Image.Exif()
    exif[0x0112] = 8
    put("exif_rotated.jpg", png_bytes(rgb, "JPEG", exif=exif), "ok")

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.PatientName = "Müller^Zoë^José"
    ds.PatientID = "SECRET-ID-4711"
    ds.save_as(root / "non_ascii_patient.dcm")
    expect["non_ascii_patient.dcm"] = "ok"
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.RescaleSlope, ds.RescaleIntercept = 3, -50
    ds.save_as(root / "mono1_rescaled.dcm")
    expect["mono1_rescaled.dcm"] = "ok"
    del ds.PixelData
    ds.save_as(root / "no_pixels.dcm")
    expect["no_pixels.dcm"] = "error"
    put("jpegls.dcm", Path(get_testdata_file("MR_small_jpeg_ls_lossless.dcm")).read_bytes(), "error")

    vol = np.random.default_rng(1).random((20, 16, 6, 2)).astype(np.float32)
    vol[:4, :4] = np.nan
    for name, data in [("flat.nii", vol[:, :, 0, 0]), ("vol.nii", vol[..., 0]), ("series.nii", vol)]:
        nib.save(nib.Nifti1Image(data, np.eye(4)), root / name)
        expect[name] = "ok"
    nib.save(nib.Nifti1Image(np.full((8, 8, 3), np.nan, np.float32), np.eye(4)), root / "all_nan.nii")
    expect["all_nan.nii"] = "error"
    (root / "spaced ünïcode 日本.png").write_bytes(png_bytes(rgb))
    expect["spaced ünïcode 日本.png"] = "ok"
    return expect


def block_network(monkeypatch) -> list:
    """Make every connection or name lookup fail (and record it), as on an offline workstation."""
    attempts: list = []

    def refuse(*a, **k):
        attempts.append(a)
        raise OSError("network access attempted")

    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}
