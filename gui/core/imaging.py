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
import os
import stat
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gui.core.errors import FileProblem

#: Raster formats handed to Pillow; anything else Pillow could open is refused.
RASTER_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "GIF")
#: Largest image accepted, in pixels per frame, for every format. A 20000x20000 "decompression
#: bomb" is refused from its header, before a single pixel is decoded.
MAX_PIXELS = 64_000_000
#: Largest volume accepted (DICOM frames x rows x columns, NIfTI voxels of the first volume): a
#: 512x512x512 volume. With the limits below, one file never takes more than ~1 GB of memory.
MAX_VOXELS = 134_217_728
#: Largest amount of data inflated from a compressed container (.nii.gz, deflated DICOM): a tiny
#: file must not be able to expand into gigabytes before its header is even checked.
MAX_INFLATED_BYTES = 600_000_000
#: Largest file read whole into memory (DICOM, NIfTI); scans are far below this.
MAX_FILE_BYTES = 1_000_000_000

# Our own limit is checked from the header of every image (thread-safe, unlike catching the
# warning); Pillow's warning between its limit and ours would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


T = TypeVar("T")


class ImageReadError(FileProblem):
    """A file could not be turned into an image; ``reason`` is written for a user."""


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
    """The format of a file from its first bytes; unreadable, empty, unknown or non-regular files raise.

    Only regular files are opened: reading a FIFO would block for ever, a device could be endless.
    """
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            if not os.access(path, os.R_OK | os.X_OK):
                raise ImageReadError(path, "is a folder that cannot be read (permission denied)")
            raise ImageReadError(path, "is a folder, not an image file")
        if not stat.S_ISREG(mode):
            raise ImageReadError(path, f"is not a regular file (it is a {_file_kind(mode)}); only files are read")
        with path.open("rb") as fh:
            head = fh.read(544)
    except ImageReadError:
        raise
    except OSError as exc:
        raise ImageReadError(path, _os_reason(exc)) from exc
    if not head:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    kind = sniff_format(head)
    if kind is None:
        raise ImageReadError(path, "not a supported image (JPEG, PNG, BMP, TIFF, GIF, DICOM or NIfTI)")
    return kind


def _os_reason(exc: OSError) -> str:
    """Why the operating system would not give us the file's bytes, for a user."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied (the file cannot be read)"
    return f"cannot read the file ({exc.strerror or exc})"


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


#: File name endings that always mean "an image": a damaged file with one of them is reported,
#: not skipped, by a folder scan. Anything else counts when its first bytes are a supported format.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".gif", ".dcm", ".dicom", ".ima",
                  ".nii", ".nii.gz")


def is_image_file(path: str | Path) -> bool:
    """Whether a folder scan should pick this file up: a regular, non-hidden file whose first bytes
    are a supported format (content decides: ``.jfif``, DICOM files named by UID and extensionless
    files all count) or whose name ends like an image (so a damaged scan is reported, not skipped).
    The one rule for every folder scan in the project (app, headless batch, training, audit)."""
    path = Path(path)
    if path.name.startswith("."):
        return False
    if path.name.lower().endswith(IMAGE_SUFFIXES):
        return True
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return False
        with path.open("rb") as fh:
            return sniff_format(fh.read(544)) is not None
    except OSError:
        return False


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
    _check_file_size(path)  # every format: a 10 GB sparse "JPEG" is refused before any decoder sees it
    return _guarded(path, kind, lambda: _open_kind(path, kind))


def read_image(path: str | Path) -> np.ndarray:
    """The displayed 8-bit RGB image of a file's default frame (what the window shows)."""
    return open_scan(path).frame()


# ---------------------------------------------------------------- raster (Pillow)


def _open_checked(path: Path) -> Image.Image:
    """Open with Pillow restricted to our formats, refusing oversized images from the header."""
    try:
        img = Image.open(path, formats=RASTER_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image is above the {MAX_PIXELS:,}-pixel limit ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "the file is damaged or not a supported image") from exc
    except (FileNotFoundError, PermissionError) as exc:
        raise ImageReadError(path, _os_reason(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(path, f"the image data is truncated or damaged ({exc})") from exc
    w, h = img.size
    if w * h > MAX_PIXELS or w <= 0 or h <= 0:
        img.close()
        raise ImageReadError(path, f"image is {w}x{h} pixels, above the {MAX_PIXELS:,}-pixel limit")
    return img


def _decode_opened(path: Path, img: Image.Image) -> np.ndarray:
    try:
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
        rgb = _decode_opened(path, img)
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

    _check_deflated_dicom(path)
    try:
        ds = pydicom.dcmread(path, force=True)
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a valid DICOM file ({exc})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageReadError(path, "DICOM file has no pixel data (it is not an image)")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    _check_dimensions(path, rows * cols, rows * cols * n_frames, f"{cols}x{rows} pixels x {n_frames} frame(s)")
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        raise ImageReadError(path, _dicom_decode_failure(tsyntax, exc)) from exc
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


def _dicom_decode_failure(tsyntax, exc: Exception) -> str:
    """Why pixel data did not decode: a missing decoder (named, with what to install) or damaged data."""
    from pydicom.pixels import get_decoder

    name = getattr(tsyntax, "name", str(tsyntax))
    if tsyntax is None or not getattr(tsyntax, "is_compressed", False):
        return f"cannot decode the DICOM pixel data ({exc})"
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        return f"compressed DICOM ({name}): no decoder exists for this transfer syntax"
    if decoder.is_available:
        return f"the compressed pixel data ({name}) is damaged or truncated ({exc})"
    return (f"compressed DICOM ({name}) and no decoder for it is installed: install one of "
            + "; ".join(decoder.missing_dependencies))


def _check_file_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageReadError(path, f"file is {size / 1e9:.1f} GB, above the {MAX_FILE_BYTES / 1e9:.0f} GB limit")


def _check_dimensions(path: Path, frame_pixels: int, total: int, described: str) -> None:
    """One size rule for every format, applied from the header before any pixel is decoded."""
    if frame_pixels <= 0:
        raise ImageReadError(path, f"the header gives no image size ({described})")
    if frame_pixels > MAX_PIXELS:
        raise ImageReadError(path, f"image is {described}, above the {MAX_PIXELS:,}-pixel limit per frame")
    if total > MAX_VOXELS:
        raise ImageReadError(path, f"image is {described}, above the {MAX_VOXELS:,}-voxel limit per file")


def _check_deflated_dicom(path: Path) -> None:
    """A deflated DICOM inflates whole when read: count its inflated size first, in bounded chunks."""
    from pydicom.filereader import read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    try:
        meta = read_file_meta_info(path)
    except Exception:
        return  # no readable file meta: not deflated (the full read reports real damage)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    with path.open("rb") as fh:
        read_preamble(fh, True)
        from pydicom.filereader import _read_file_meta_info

        _read_file_meta_info(fh)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total, data = 0, fh.read(1 << 20)
        while data and not inflater.eof:
            while data and not inflater.eof:
                total += len(inflater.decompress(data, 1 << 24))
                if total > MAX_INFLATED_BYTES:
                    raise ImageReadError(path, f"deflated DICOM expands to more than {MAX_INFLATED_BYTES / 1e6:.0f} MB")
                data = inflater.unconsumed_tail
            data = fh.read(1 << 20)


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
    """A NIfTI-1/2 file (plain or gzipped): the first volume, in RAS orientation, sliced axially.

    Only the header and the first volume's bytes are read (and, for .nii.gz, inflated): a 4-D
    series or a gzip bomb costs no more than the volume that is shown.
    """
    import nibabel as nib

    with _nifti_stream(path) as fh:
        head = fh.read(544)
        if len(head) < 348 or not _is_nifti_header(head):
            raise ImageReadError(path, "gzip file does not contain a NIfTI image")
        if head[344:348] == b"ni1\x00" or head[4:8] == b"ni2\x00":
            raise ImageReadError(path, "NIfTI header/image pair (.hdr/.img) is not supported; use a single .nii file")
        cls = nib.Nifti2Image if head[4:8] == b"n+2\x00" else nib.Nifti1Image
        header = cls.header_class.from_fileobj(io.BytesIO(head), check=False)
        shape = tuple(int(d) for d in header.get_data_shape())
        if len(shape) < 2:
            raise ImageReadError(path, f"NIfTI image has {len(shape)} dimension(s); at least 2 are needed")
        first = (shape + (1,))[:3]
        described = "x".join(str(d) for d in shape) + " voxels"
        _check_dimensions(path, first[0] * first[1], first[0] * first[1] * first[2], described)
        needed = int(header.get_data_offset()) + first[0] * first[1] * first[2] * header.get_data_dtype().itemsize
        if needed > MAX_INFLATED_BYTES:
            raise ImageReadError(path, f"the first volume takes {needed / 1e6:.0f} MB, above the "
                                       f"{MAX_INFLATED_BYTES / 1e6:.0f} MB limit")
        raw = head + fh.read(max(needed - len(head), 0))
    if len(raw) < needed:
        raise ImageReadError(path, f"the NIfTI data is truncated ({len(raw):,} of {needed:,} bytes)")
    img = cls.from_stream(io.BytesIO(raw))
    index = (slice(None),) * min(len(shape), 3) + (0,) * max(len(shape) - 3, 0)
    data = np.asarray(img.dataobj[index])  # only the first volume's bytes are touched
    del raw
    if data.ndim == 2:
        data = data[:, :, None]
    extra = f"; volume 1 of {shape[3]} shown" if len(shape) >= 4 and shape[3] > 1 else ""
    orientation = "RAS"
    try:  # nibabel's orientation maths (as_closest_canonical, on the first volume only)
        ornt = nib.orientations.io_orientation(img.affine)
        data = nib.orientations.apply_orientation(data, ornt)
    except (nib.orientations.OrientationError, ValueError):
        orientation = "unknown (shown as stored)"
    sample = data.ravel()[:: max(1, data.size // 2_000_000)]
    finite = sample[np.isfinite(sample)] if np.issubdtype(sample.dtype, np.floating) else sample
    if finite.size == 0:
        raise ImageReadError(path, "NIfTI image holds no finite values")
    low, high = np.percentile(finite.astype(np.float32), [0.5, 99.5])
    n = data.shape[2]
    info = {"format": "NIfTI", "size": described + extra, "slices": str(n), "orientation": orientation}

    def render(k: int) -> np.ndarray:
        # RAS voxel order: rotate so anterior is up and the patient's right on the left.
        axial = np.rot90(data[:, :, k].astype(np.float32))
        return grey_to_rgb(window_to_uint8(axial, float(low), float(high)))

    return Scan(path, "NIfTI", n, n // 2, render, info)


def _nifti_stream(path: Path):
    """The file's bytes as a stream, inflated on the fly (and only as far as read) when gzipped."""
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else path.open("rb")


# ---------------------------------------------------------------- model input

#: How a displayed frame becomes a model's input; a model card names one (``input.preprocessing``).
#: ``pad-resize``: pad to a centred black square, resize. ``brain-crop-v1``: crop a square around
#: the head, standardise its grey levels (see :func:`brain_crop`).
PREPROCESSING = ("pad-resize", "brain-crop-v1")


@dataclass(frozen=True)
class Geometry:
    """The square region of the frame a model saw: ``side`` x ``side`` pixels from (``top``, ``left``).

    The region may reach outside the frame (padding, filled with black); a heatmap over the model
    input maps back onto the frame through it (``gui.core.overlay.heat_to_frame``).
    """

    top: int
    left: int
    side: int


@dataclass(frozen=True)
class ModelInput:
    """One frame fitted to a model: ``pixels`` uint8 [S, S, 3] and the region they came from.
    ``head_found`` is False when the brain crop found no head (a blank or uniform frame): any
    answer on such an input deserves a caution."""

    pixels: np.ndarray
    geometry: Geometry
    head_found: bool = True


def model_input(rgb: np.ndarray, size: int, preprocessing: str = "pad-resize") -> ModelInput:
    """The one way a displayed frame becomes a model input: window, batch, training and export all call it."""
    if preprocessing == "pad-resize":
        h, w = rgb.shape[:2]
        side = max(h, w)
        geometry = Geometry(-((side - h) // 2), -((side - w) // 2), side)
        return ModelInput(_crop_resize(rgb, geometry, size), geometry)
    if preprocessing == "brain-crop-v1":
        return brain_crop(rgb, size)
    raise ValueError(f"unknown preprocessing {preprocessing!r}; known: {PREPROCESSING}")


#: Largest square canvas (side, pixels) built before resizing; regions beyond it are resized first.
_MAX_CANVAS = 4096


def _crop_resize(rgb: np.ndarray, g: Geometry, size: int) -> np.ndarray:
    """The frame's square region ``g`` (black outside the frame), resized to ``size`` (bilinear);
    ``rgb`` may be ``[H, W, 3]`` or a grey ``[H, W]``.

    Up to ``_MAX_CANVAS`` pixels a side the region is cut out onto a black square and resized,
    so the resampling filter sees the black border exactly as it did when the models were
    trained. Beyond that (a 1x40000 strip would make a 40000x40000 square) the part inside the
    frame is resized first and placed on a black canvas of the output size.
    """
    h, w = rgb.shape[:2]
    y0, x0 = max(g.top, 0), max(g.left, 0)
    y1, x1 = min(g.top + g.side, h), min(g.left + g.side, w)
    if g.side <= _MAX_CANVAS:
        if (g.top, g.left, g.side) == (0, 0, h) and h == w:
            square = rgb
        else:
            square = np.zeros((g.side, g.side) + rgb.shape[2:], dtype=np.uint8)
            if y1 > y0 and x1 > x0:
                square[y0 - g.top:y1 - g.top, x0 - g.left:x1 - g.left] = rgb[y0:y1, x0:x1]
        if g.side == size:
            return np.ascontiguousarray(square)
        return np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))
    out = np.zeros((size, size) + rgb.shape[2:], dtype=np.uint8)
    if y1 <= y0 or x1 <= x0:
        return out
    scale = size / g.side
    dy0, dx0 = int(round((y0 - g.top) * scale)), int(round((x0 - g.left) * scale))
    dy1 = min(size, max(dy0 + 1, int(round((y1 - g.top) * scale))))
    dx1 = min(size, max(dx0 + 1, int(round((x1 - g.left) * scale))))
    part = Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1])).resize((dx1 - dx0, dy1 - dy0), Image.BILINEAR)
    out[dy0:dy1, dx0:dx1] = np.asarray(part)
    return out


#: Foreground = grey level above this share of the way from background to bright tissue.
_FOREGROUND_SHARE = 0.12
#: Margin around the head, as a share of its larger extent.
_CROP_MARGIN = 0.06


def head_box(small: np.ndarray, step: int = 1) -> tuple[int, int, int, int] | None:
    """Bounding box ``(top, left, bottom, right)`` of the head, or None if unclear, from ``small``: the
    frame's grey levels at every ``step``-th pixel (about 256 px across is plenty).

    The 1st and 99th percentiles of the foreground's coordinates, not its extremes: specks and small
    burnt-in markers in a corner must not widen the box.
    """
    low, high = np.percentile(small, [2, 99])
    if high - low < 8:
        return None
    ys, xs = np.nonzero(small > low + _FOREGROUND_SHARE * (high - low))
    if len(ys) < 0.01 * small.size:
        return None
    top, bottom = np.percentile(ys, [1, 99])
    left, right = np.percentile(xs, [1, 99])
    return int(top * step), int(left * step), int(bottom * step) + step, int(right * step) + step


def _grey(rgb: np.ndarray) -> np.ndarray:
    """The channel mean in float32, bit for bit ``rgb.mean(axis=2, dtype=float32)`` (the integer sum
    of three bytes is exact), without numpy's slow reduction over a 3-long axis."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    total = rgb[..., 0].astype(np.uint16)
    total += rgb[..., 1]
    total += rgb[..., 2]
    return total.astype(np.float32) / np.float32(3)


def brain_crop(rgb: np.ndarray, size: int) -> ModelInput:
    """Crop a square around the head and standardise grey levels, so that framing, borders, colour
    tint and intensity range (which identify the collection an image comes from, not the tumour)
    look alike for every source.

    Grey = channel mean (MRI is grey; a tint is a property of the file, not the anatomy). Levels:
    the frame's 1st percentile (background) -> 0 and the head's 99.5th percentile -> 255.
    A frame with no clear head falls back to the whole frame. Statistics come from subsampled
    pixels and only the cropped part of the frame is converted, so a large scan costs little more
    than a small one.
    """
    h, w = rgb.shape[:2]
    full = _grey(rgb) if h * w <= 1 << 20 else None  # small frames: one conversion serves every step

    def grey(rows: slice, cols: slice) -> np.ndarray:
        return full[rows, cols] if full is not None else _grey(rgb[rows, cols])

    step = max(1, max(h, w) // 256)
    box = head_box(grey(slice(None, None, step), slice(None, None, step)), step)
    top, left, bottom, right = box if box is not None else (0, 0, h, w)
    side = int(round(max(bottom - top, right - left) * (1 + 2 * _CROP_MARGIN))) if box else max(h, w)
    side = max(side, 8)
    g = Geometry((top + bottom - side) // 2, (left + right - side) // 2, side)
    rows, cols = slice(max(top, 0), bottom), slice(max(left, 0), right)
    step = max(1, max(len(range(h)[rows]), len(range(w)[cols])) // 256)
    low = float(np.percentile(grey(slice(None, None, step), slice(None, None, step)), 1))
    region = grey(slice(rows.start, rows.stop, step), slice(cols.start, cols.stop, step))
    high = float(np.percentile(region, 99.5)) if region.size else low
    y0, x0 = max(g.top, 0), max(g.left, 0)
    part = grey(slice(y0, min(g.top + side, h)), slice(x0, min(g.left + side, w)))
    grey8 = window_to_uint8(part, low, high) if high > low else np.zeros(part.shape, np.uint8)
    pixels = _crop_resize(grey8, Geometry(g.top - y0, g.left - x0, side), size)
    return ModelInput(grey_to_rgb(pixels), g, head_found=box is not None)


def fit_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Pad to a centred square with black, then resize to ``size`` x ``size`` (bilinear).

    Padding keeps the anatomy's aspect ratio for scans of any shape; black is the
    background of an MRI slice, so the pad adds no edge the model could learn from.
    """
    return model_input(rgb, size, "pad-resize").pixels
