"""Read any supported scan file into the 8-bit RGB image that is displayed and classified.

This module is the single place where pixels enter the project: the desktop app, the
headless batch command and the training pipeline all call it, so a model is trained on
exactly what the app later shows it. It has no Qt import.

Formats are detected by content, never by extension: JPEG, PNG, BMP, TIFF, GIF (first
frame), DICOM (with or without the 128-byte preamble) and NIfTI-1/2 (plain or gzipped).
Greyscale and high-bit-depth data are windowed to 8 bits the way a viewer shows them.
Every failure is raised as :class:`ImageReadError`, which names the file and the reason.
"""

from __future__ import annotations

import gzip
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: Raster formats handed to Pillow; anything else Pillow could open is refused.
RASTER_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "GIF")
#: Largest image accepted, in pixels. A 20000x20000 "decompression bomb" is refused
#: from its header, before a single pixel is decoded.
MAX_PIXELS = 64_000_000
#: Largest file read whole into memory (DICOM, NIfTI); scans are far below this.
MAX_FILE_BYTES = 2_000_000_000

# Our own limit is checked from the header of every image (thread-safe, unlike catching the
# warning); Pillow's warning between its limit and ours would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


T = TypeVar("T")


class ImageReadError(Exception):
    """A file could not be turned into an image; ``reason`` is written for a user."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


@dataclass
class Scan:
    """An opened file: one or more 2-D frames (DICOM frames, NIfTI axial slices).

    ``frame(i)`` returns the displayed image of frame ``i`` as ``uint8 [H, W, 3]``.
    ``info`` holds technical facts only (format, size, modality); it never holds
    patient identifiers, so it is safe to show, log or write to a CSV.
    """

    path: Path
    format: str
    n_frames: int
    default_frame: int
    _render: Callable[[int], np.ndarray] = field(repr=False)
    info: dict[str, str] = field(default_factory=dict)

    def frame(self, index: int | None = None) -> np.ndarray:
        """The 8-bit RGB image of one frame (the default frame when ``index`` is None)."""
        i = self.default_frame if index is None else index
        if not 0 <= i < self.n_frames:
            raise ImageReadError(self.path, f"frame {i} is out of range (0..{self.n_frames - 1})")
        try:
            return self._render(i)
        except ImageReadError:
            raise
        except Exception as exc:  # a decoder failing on one frame must not escape raw
            raise ImageReadError(self.path, f"cannot decode frame {i}: {exc}") from exc


def sniff_format(head: bytes) -> str | None:
    """Name the format of a file from its first 544 bytes, or None when unknown.

    DICOM is checked first: its 128-byte preamble may itself look like a TIFF header.
    """
    if head[128:132] == b"DICM":
        return "DICOM"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM"):
        return "BMP"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "TIFF"
    if head.startswith(b"\x1f\x8b"):
        return "GZIP"
    if _is_nifti_header(head):
        return "NIfTI"
    if _looks_like_raw_dicom(head):
        return "DICOM"
    return None


def _is_nifti_header(head: bytes) -> bool:
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return True
    return len(head) >= 12 and head[4:8] in (b"n+2\x00", b"ni2\x00")


def _looks_like_raw_dicom(head: bytes) -> bool:
    """DICOM written without preamble starts with a group 0x0002 or 0x0008 tag."""
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00"


def _sniff_file(path: Path) -> str:
    """The format of a file from its first bytes; unreadable, empty or unknown files raise."""
    try:
        if path.is_dir():
            raise ImageReadError(path, "is a folder, not an image file")
        with path.open("rb") as fh:
            head = fh.read(544)
    except ImageReadError:
        raise
    except FileNotFoundError as exc:
        raise ImageReadError(path, "file not found") from exc
    except PermissionError as exc:
        raise ImageReadError(path, "permission denied (the file cannot be read)") from exc
    except OSError as exc:
        raise ImageReadError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    if not head:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    kind = sniff_format(head)
    if kind is None:
        raise ImageReadError(path, "not a supported image (JPEG, PNG, BMP, TIFF, GIF, DICOM or NIfTI)")
    return kind


def _guarded(path: Path, kind: str, decode: Callable[[], T]) -> T:
    """Run a decoder so that only ImageReadError leaves it (the reader's documented contract)."""
    try:
        return decode()
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise ImageReadError(path, "the image is too large to fit in memory") from exc
    except Exception as exc:
        raise ImageReadError(path, f"cannot decode the {kind} file ({type(exc).__name__}: {exc})") from exc


def _open_kind(path: Path, kind: str) -> Scan:
    if kind == "DICOM":
        return _open_dicom(path)
    if kind in ("NIfTI", "GZIP"):
        return _open_nifti(path)
    return _open_raster(path)


def open_scan(path: str | Path) -> Scan:
    """Open a file and describe its frames; pixels of large volumes decode lazily."""
    path = Path(path)
    kind = _sniff_file(path)
    return _guarded(path, kind, lambda: _open_kind(path, kind))


def read_image(path: str | Path, reduce_to: int | None = None) -> np.ndarray:
    """The displayed 8-bit RGB image of a file's default frame.

    ``reduce_to`` lets the JPEG decoder skip detail that a model of that input size would
    discard anyway (Pillow's ``draft``: DCT scaling by 1/2, 1/4, 1/8, never below the
    requested size). Training and batch classification pass the same value, so they see
    the same pixels.
    """
    path = Path(path)
    kind = _sniff_file(path)
    if reduce_to is not None and kind == "JPEG":
        return _guarded(path, kind, lambda: _raster_pixels(path, reduce_to))
    return _guarded(path, kind, lambda: _open_kind(path, kind)).frame()


# ---------------------------------------------------------------- raster (Pillow)


def _open_checked(path: Path) -> Image.Image:
    """Open with Pillow restricted to our formats, refusing oversized images from the header."""
    try:
        img = Image.open(path, formats=RASTER_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image is above the {MAX_PIXELS:,}-pixel limit ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "the file is damaged or not a supported image") from exc
    except PermissionError as exc:
        raise ImageReadError(path, "permission denied (the file cannot be read)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(path, f"the image data is truncated or damaged ({exc})") from exc
    w, h = img.size
    if w * h > MAX_PIXELS or w <= 0 or h <= 0:
        img.close()
        raise ImageReadError(path, f"image is {w}x{h} pixels, above the {MAX_PIXELS:,}-pixel limit")
    return img


def _raster_pixels(path: Path, reduce_to: int | None = None) -> np.ndarray:
    with _open_checked(path) as img:
        return _decode_opened(path, img, reduce_to)


def _decode_opened(path: Path, img: Image.Image, reduce_to: int | None) -> np.ndarray:
    try:
        if reduce_to and img.format == "JPEG" and min(img.size) >= 2 * reduce_to:
            img.draft(img.mode if img.mode in ("L", "RGB") else "RGB", (reduce_to, reduce_to))
        img.seek(0)
        img.load()
        return pil_to_rgb(ImageOps.exif_transpose(img))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(path, f"the image data is truncated or damaged ({exc})") from exc


def _open_raster(path: Path) -> Scan:
    with _open_checked(path) as img:  # one open for the facts and the pixels
        fmt = img.format or "image"
        info = {"format": fmt, "size": f"{img.size[0]}x{img.size[1]}", "mode": img.mode}
        if getattr(img, "n_frames", 1) > 1:
            info["frames in file"] = f"{img.n_frames} (first shown)"
        rgb = _decode_opened(path, img, None)
    return Scan(path, fmt, 1, 0, lambda _i: rgb, info)


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to ``uint8 [H, W, 3]``; high bit depths are windowed min-max."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        grey = window_to_uint8(np.asarray(img, dtype=np.float32))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent areas become black, the background of an MRI slice.
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    if mode == "L":
        grey = np.asarray(img, dtype=np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


# ---------------------------------------------------------------- windowing


def window_to_uint8(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Map ``[low, high]`` linearly to 0..255 (min and max of the finite values by default).

    NaN and infinite values become black; a constant image becomes black rather than
    dividing by zero.
    """
    values = np.asarray(values, dtype=np.float32)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    if low is None or high is None:
        lo_default = float(values[finite].min())
        hi_default = float(values[finite].max())
        low = lo_default if low is None else low
        high = hi_default if high is None else high
    span = float(high) - float(low)
    if span <= 0:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (np.where(finite, values, low) - low) * (255.0 / span)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[:, :, None], 3, axis=2)


# ---------------------------------------------------------------- DICOM (pydicom)


def _open_dicom(path: Path) -> Scan:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, force=True)
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a valid DICOM file ({exc})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageReadError(path, "DICOM file has no pixel data (it is not an image)")
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        name = getattr(tsyntax, "name", str(tsyntax))
        if tsyntax is not None and getattr(tsyntax, "is_compressed", False):
            raise ImageReadError(
                path,
                f"compressed DICOM ({name}) and no decoder for it is installed: "
                "install pylibjpeg with pylibjpeg-libjpeg / pylibjpeg-openjpeg, or python-gdcm",
            ) from exc
        raise ImageReadError(path, f"cannot decode the DICOM pixel data ({exc})") from exc
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    if n_frames == 1:
        pixels = pixels[None]
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    info = {
        "format": "DICOM",
        "size": f"{pixels.shape[2]}x{pixels.shape[1]}",
        "frames": str(n_frames),
        "modality": str(getattr(ds, "Modality", "")),
        "photometric": photometric,
        "transfer syntax": getattr(tsyntax, "name", "") if tsyntax is not None else "",
    }

    def render(i: int) -> np.ndarray:
        frame = pixels[i]
        if samples == 3:
            return window_to_uint8(frame) if frame.dtype != np.uint8 else np.ascontiguousarray(frame)
        return grey_to_rgb(dicom_frame_to_uint8(ds, frame))

    return Scan(path, "DICOM", n_frames, n_frames // 2, render, info)


def dicom_frame_to_uint8(ds, frame: np.ndarray) -> np.ndarray:
    """Modality LUT (rescale), then the VOI window or LUT of the file, then MONOCHROME1 inversion."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(frame, ds).astype(np.float32)
    has_voi = "WindowCenter" in ds or "VOILUTSequence" in ds
    if has_voi:
        values = np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float32)
    grey = window_to_uint8(values)
    if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        grey = 255 - grey
    return grey


# ---------------------------------------------------------------- NIfTI (nibabel)


def _open_nifti(path: Path) -> Scan:
    import nibabel as nib

    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageReadError(path, f"file is {size / 1e9:.1f} GB, too large to open")
    raw = path.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ImageReadError(path, f"the gzip data is truncated or damaged ({exc})") from exc
        if not _is_nifti_header(raw[:544]):
            raise ImageReadError(path, "gzip file does not contain a NIfTI image")
    cls = nib.Nifti2Image if raw[4:8] in (b"n+2\x00", b"ni2\x00") else nib.Nifti1Image
    if raw[344:348] == b"ni1\x00" or raw[4:8] == b"ni2\x00":
        raise ImageReadError(path, "NIfTI header/image pair (.hdr/.img) is not supported; use a single .nii file")
    img = nib.as_closest_canonical(cls.from_stream(io.BytesIO(raw)))
    data = np.asanyarray(img.dataobj)
    if data.ndim < 2:
        raise ImageReadError(path, f"NIfTI image has {data.ndim} dimension(s); at least 2 are needed")
    data = data.astype(np.float32, copy=False)
    extra = ""
    if data.ndim == 2:
        data = data[:, :, None]
    while data.ndim > 3:  # 4-D time series or 5-D: the first volume is shown
        extra = f"; volume 1 of {data.shape[3]} shown" if data.ndim == 4 else extra
        data = data[..., 0]
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise ImageReadError(path, "NIfTI image holds no finite values")
    low, high = np.percentile(finite, [0.5, 99.5])
    n = data.shape[2]
    info = {"format": "NIfTI", "size": "x".join(str(s) for s in data.shape) + extra, "slices": str(n)}

    def render(k: int) -> np.ndarray:
        # RAS voxel order: rotate so anterior is up and the patient's right on the left.
        axial = np.rot90(data[:, :, k])
        return grey_to_rgb(window_to_uint8(axial, float(low), float(high)))

    return Scan(path, "NIfTI", n, n // 2, render, info)


# ---------------------------------------------------------------- model input


def fit_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Pad to a centred square with black, then resize to ``size`` x ``size`` (bilinear).

    Padding keeps the anatomy's aspect ratio for scans of any shape; black is the
    background of an MRI slice, so the pad adds no edge the model could learn from.
    """
    h, w = rgb.shape[:2]
    side = max(h, w)
    if h != w:
        square = np.zeros((side, side, 3), dtype=np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = rgb
        rgb = square
    if side == size:
        return np.ascontiguousarray(rgb)
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))
