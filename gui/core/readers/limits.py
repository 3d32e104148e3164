"""The size limits every reader applies from a file's header, and the reasons a user is given."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from gui.core.readers.scan import ImageReadError

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

T = TypeVar("T")


def os_reason(exc: OSError) -> str:
    """Why the operating system would not give us the file's bytes, for a user."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied (the file cannot be read)"
    return f"cannot read the file ({exc.strerror or exc})"


def check_file_size(path: Path) -> None:
    """Every format: a 10 GB sparse "JPEG" is refused before any decoder sees it."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImageReadError(path, f"file is {size / 1e9:.1f} GB, above the {MAX_FILE_BYTES / 1e9:.0f} GB limit")


def check_dimensions(path: Path, frame_pixels: int, total: int, described: str) -> None:
    """One size rule for every format, applied from the header before any pixel is decoded."""
    if frame_pixels <= 0:
        raise ImageReadError(path, f"the header gives no image size ({described})")
    if frame_pixels > MAX_PIXELS:
        raise ImageReadError(path, f"image is {described}, above the {MAX_PIXELS:,}-pixel limit per frame")
    if total > MAX_VOXELS:
        raise ImageReadError(path, f"image is {described}, above the {MAX_VOXELS:,}-voxel limit per file")


def guarded(path: Path, kind: str, decode: Callable[[], T]) -> T:
    """Run a decoder so that only ImageReadError leaves it (the readers' documented contract)."""
    try:
        return decode()
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise ImageReadError(path, "the image is too large to fit in memory") from exc
    except Exception as exc:
        raise ImageReadError(path, f"cannot decode the {kind} file ({type(exc).__name__}: {exc})") from exc
