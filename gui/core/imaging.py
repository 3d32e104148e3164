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
    """An opened file or DICOM series: one or more 2-D frames (DICOM frames or files, NIfTI slices).

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
    #: What a result must say about the file (a 4-D file scored on its first volume, missing slices).
    notes: list[str] = field(default_factory=list)
    #: A volume, multi-frame DICOM or DICOM series: every slice is scored and judged as one study.
    is_study: bool = False

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

    return Scan(path, "DICOM", n_frames, n_frames // 2, render, info, is_study=n_frames > 1)


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


# ---------------------------------------------------------------- DICOM series (pydicom + nibabel)


@dataclass(frozen=True)
class DicomSeries:
    """Single-frame DICOM files of one series (one SeriesInstanceUID) found in one folder, in slice
    order: by position along the slice normal (nibabel's ``slice_indicator``, from
    ImagePositionPatient and ImageOrientationPatient), else by InstanceNumber, else by file name.
    Only technical header fields are kept; patient fields are never read into it."""

    files: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...]
    positions: tuple[float, ...] | None  # mm along the DICOM slice normal (row x column), when every file has one
    instance_numbers: tuple[int, ...] | None
    plan: DisplayPlan | None
    modality: str = ""
    series_number: str = ""

    @property
    def path(self) -> Path:
        """The file of slice 0: the name a result row and the window carry for the series."""
        return self.files[0]

    @property
    def order(self) -> str:
        if self.positions is not None:
            return "position along the slice normal"
        return "instance number" if self.instance_numbers is not None else "file name (no position or number)"


@dataclass(frozen=True)
class _SliceHeader:
    path: Path
    series_uid: str
    size: tuple[int, int]
    position: float | None
    orientation: tuple[float, ...] | None
    instance: int | None
    rotation: np.ndarray | None
    modality: str
    series_number: str


def _nibabel_dicom_wrapper(ds):
    """nibabel's DICOM wrapper (slice normal, position along it, rotation), without its import warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom.dicomwrappers import wrapper_from_data
    return wrapper_from_data(ds)


def _slice_header(path: Path) -> _SliceHeader | None:
    """The series facts of a single-frame DICOM image, or None (not DICOM, multi-frame, no series
    UID, unreadable: such a file is classified on its own and the reader reports any problem)."""
    import pydicom

    try:
        if _sniff_file(path) != "DICOM":
            return None
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid or int(ds.get("NumberOfFrames", 1) or 1) != 1 or not ds.get("Rows"):
            return None
        wrapper = _nibabel_dicom_wrapper(ds)
        try:
            # nibabel's normal is column x row direction, the reverse of DICOM's row x column: negated,
            # axial slices run from the feet up, as in a NIfTI volume.
            position = None if wrapper.slice_indicator is None else -wrapper.slice_indicator
            rotation = wrapper.rotation_matrix
        except Exception:  # an orientation nibabel cannot use: ordered by instance number instead
            position, rotation = None, None
        iop = ds.get("ImageOrientationPatient")
        instance = ds.get("InstanceNumber")
        return _SliceHeader(path, uid, (int(ds.Rows), int(ds.Columns)),
                            None if position is None else float(position),
                            None if iop is None else tuple(round(float(v), 3) for v in iop),
                            None if instance in (None, "") else int(instance), rotation,
                            str(ds.get("Modality", "")), str(ds.get("SeriesNumber", "") or ""))
    except Exception:  # pydicom raises many kinds on damaged headers; the full read reports them
        return None


def group_dicom_series(files: list[Path]) -> list[Path | DicomSeries]:
    """A folder's files with the single-frame DICOM files of each series (two or more files with one
    SeriesInstanceUID) gathered into one :class:`DicomSeries`, placed where its first file was;
    every other file stays as it is."""
    headers = {f: _slice_header(f) for f in files}
    members: dict[str, list[_SliceHeader]] = {}
    for h in headers.values():
        if h is not None:
            members.setdefault(h.series_uid, []).append(h)
    out: list[Path | DicomSeries] = []
    placed: set[str] = set()
    for f in files:
        h = headers[f]
        if h is None or len(members[h.series_uid]) < 2:
            out.append(f)
        elif h.series_uid not in placed:
            placed.add(h.series_uid)
            out.append(_ordered_series(members[h.series_uid]))
    return out


def _ordered_series(headers: list[_SliceHeader]) -> DicomSeries:
    same_plane = len({h.orientation for h in headers}) == 1
    by_position = same_plane and all(h.position is not None for h in headers)
    by_instance = all(h.instance is not None for h in headers)
    if by_position:
        headers = sorted(headers, key=lambda h: (h.position, h.instance or 0, h.path.name))
    elif by_instance:
        headers = sorted(headers, key=lambda h: (h.instance, h.path.name))
    else:
        headers = sorted(headers, key=lambda h: h.path.name)
    plan = None
    rotation = headers[0].rotation
    if by_position and rotation is not None:  # nibabel's rotation is in DICOM's LPS+: flip to RAS+
        affine = np.eye(4)
        affine[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ rotation
        plan = display_plan(affine)
    return DicomSeries(tuple(h.path for h in headers), tuple(h.size for h in headers),
                       tuple(h.position for h in headers) if by_position else None,
                       tuple(h.instance for h in headers) if by_instance else None,
                       plan, headers[0].modality, headers[0].series_number)


def series_of(path: str | Path) -> DicomSeries | None:
    """The series a single DICOM file belongs to among the files of its folder (None when alone)."""
    path = Path(path)
    try:
        siblings = sorted(f for f in path.parent.iterdir() if f.is_file() and is_image_file(f))
    except OSError:
        return None
    mine = _slice_header(path)
    if mine is None:
        return None
    for item in group_dicom_series(siblings):
        if isinstance(item, DicomSeries) and path.resolve() in {f.resolve() for f in item.files}:
            return item
    return None


def missing_slices(series: DicomSeries) -> list[str]:
    """Gaps in a series, in words: spacing along the normal above 1.5 times the usual one, or
    missing instance numbers when there are no positions."""
    notes = []
    if series.positions is not None and len(series.positions) > 2:
        steps = np.diff(series.positions)
        usual = float(np.median(steps))
        if usual > 0:
            for k in np.flatnonzero(steps > 1.5 * usual):
                lost = int(round(steps[k] / usual)) - 1
                notes.append(f"{lost} slice(s) missing between slices {k} and {k + 1} "
                             f"({steps[k]:.1f} mm apart where {usual:.1f} mm is usual)")
    elif series.positions is None and series.instance_numbers is not None:
        numbers = np.array(series.instance_numbers)
        for k in np.flatnonzero(np.diff(numbers) > 1):
            notes.append(f"{int(numbers[k + 1] - numbers[k] - 1)} slice(s) missing between slices {k} and {k + 1} "
                         f"(instance numbers {numbers[k]} and {numbers[k + 1]})")
    if series.positions is None:
        notes.append(f"slice order from the {series.order}")
    return notes


def open_series(series: DicomSeries) -> Scan:
    """A DICOM series as one scan: slice ``k`` is file ``k`` in slice order, decoded when shown.

    Slices of different sizes cannot form a volume: that is an error naming two of the files."""
    sizes = sorted(set(series.sizes))
    if len(sizes) > 1:
        first = series.files[series.sizes.index(sizes[0])]
        other = series.files[series.sizes.index(sizes[1])]
        raise ImageReadError(series.path, "the series' slices have different sizes: "
                                          f"{sizes[0][1]}x{sizes[0][0]} ({first.name}) and "
                                          f"{sizes[1][1]}x{sizes[1][0]} ({other.name}); each file is read on its own "
                                          "when opened by itself")
    rows, cols = sizes[0]
    n = len(series.files)
    info = {"format": "DICOM series", "size": f"{cols}x{rows} pixels x {n} slices", "slices": str(n),
            "modality": series.modality, "series number": series.series_number, "slice order": series.order,
            "orientation": series.plan.describe() if series.plan is not None else "as stored"}

    def render(k: int) -> np.ndarray:
        frame = open_scan(series.files[k]).frame(0)
        return series.plan.apply(frame) if series.plan is not None else frame

    return Scan(series.path, "DICOM series", n, n // 2, render, info, notes=missing_slices(series), is_study=True)


def open_item(item: Path | DicomSeries) -> Scan:
    """Open a file or a DICOM series."""
    return open_series(item) if isinstance(item, DicomSeries) else open_scan(item)


def open_study(path: str | Path) -> Scan:
    """What the window opens for a file: the whole series when the file is one slice of a DICOM
    series in its folder, else the file itself."""
    path = Path(path)
    scan = open_scan(path)
    if scan.format == "DICOM" and scan.n_frames == 1:
        series = series_of(path)
        if series is not None:
            return open_series(series)
    return scan


# ---------------------------------------------------------------- NIfTI (nibabel)


def _open_nifti(path: Path) -> Scan:
    """A NIfTI-1/2 file (plain or gzipped): the first volume, sliced along its third array axis.

    Slice ``k`` is the array's ``[:, :, k]`` (the number the window and the CSV show), displayed in
    the radiological convention worked out from the affine (:func:`display_plan`). Only the header
    and the first volume are read: a plain ``.nii`` streams slice by slice from disk (a 1,000-slice
    volume never sits in memory whole); a ``.nii.gz`` inflates its first volume once, bounded by
    ``MAX_INFLATED_BYTES``, so a 4-D series or a gzip bomb costs no more than the volume scored.
    """
    import nibabel as nib
    from nibabel.fileholders import FileHolder

    with _nifti_stream(path) as fh:
        head = fh.read(544)
        compressed = isinstance(fh, gzip.GzipFile)
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
        # nibabel picks a decompressor by file name: a plain file named .gz is read from memory instead.
        streamed = not compressed and not path.name.lower().endswith((".gz", ".bz2", ".zst"))
        raw = b"" if streamed else head + fh.read(max(needed - len(head), 0))
    size = path.stat().st_size if streamed else len(raw)
    if size < needed:
        raise ImageReadError(path, f"the NIfTI data is truncated ({size:,} of {needed:,} bytes)")
    if streamed:  # slices are read from the file when asked for (nibabel's lazy array proxy)
        holder = {"header": FileHolder(filename=str(path)), "image": FileHolder(filename=str(path))}
        img = cls.from_file_map(holder, mmap=False)
        volume = img.dataobj
    else:
        img = cls.from_stream(io.BytesIO(raw))
        volume = np.asarray(img.dataobj[(slice(None),) * min(len(shape), 3) + (0,) * max(len(shape) - 3, 0)])
        del raw
    extra = (0,) * max(len(shape) - 3, 0)  # first volume of a 4-D (or longer) file

    def plane(k: int) -> np.ndarray:
        if len(shape) == 2 or not streamed:
            data = volume if len(shape) == 2 else volume[:, :, k]
        else:
            data = volume[(slice(None), slice(None), k) + extra]
        return np.asarray(data)

    n = first[2]
    plan = display_plan(img.affine)
    low, high = _window_from_slices(path, plane, n)
    info = {"format": "NIfTI", "size": described, "slices": str(n),
            "orientation": plan.describe() if plan is not None else "unknown (shown as stored)"}
    notes = []
    if len(shape) >= 4 and shape[3] > 1:
        info["size"] += f"; volume 1 of {shape[3]} shown"
        notes.append(f"4-D file: only volume 1 of {shape[3]} is shown and scored")

    def render(k: int) -> np.ndarray:
        shown = (plan or RAS_PLAN).apply(plane(k).astype(np.float32))
        return grey_to_rgb(window_to_uint8(shown, low, high))

    return Scan(path, "NIfTI", n, n // 2, render, info, notes=notes, is_study=True)


def _window_from_slices(path: Path, plane: Callable[[int], np.ndarray], n: int) -> tuple[float, float]:
    """One grey window for the whole volume (0.5th-99.9th percentile), from up to 32 evenly spaced
    slices, so every slice is shown alike and a streamed volume is not read whole to find it.

    The top is the 99.9th percentile, not the 99.5th: a FLAIR tumour is among the brightest voxels
    of a volume, and clipping it changes what the model sees. Measured on 18 lgg patients' slices
    scored as a volume and as their own files: |dP(tumour)| 95th percentile 0.042 (0.057 with
    99.5), largest 0.16 (0.26)."""
    samples = []
    for k in np.unique(np.linspace(0, n - 1, min(n, 32)).astype(int)):
        values = plane(int(k)).ravel()
        values = values[:: max(1, values.size // 65_536)].astype(np.float32)
        samples.append(values[np.isfinite(values)])
    finite = np.concatenate(samples)
    if finite.size == 0:
        raise ImageReadError(path, "NIfTI image holds no finite values")
    low, high = np.percentile(finite, [0.5, 99.9])
    return float(low), float(high)


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
