"""What a file is, from its first bytes (never its name), and which files a folder scan picks up."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from gui.core.readers.limits import os_reason
from gui.core.readers.scan import ImageReadError

#: Bytes read to name a format: a NIfTI-1 header is 348 bytes, DICOM's preamble and magic 132.
HEAD_BYTES = 544
#: File name endings that always mean "an image": a damaged file with one of them is reported,
#: not skipped, by a folder scan. Anything else counts when its first bytes are a supported format.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".tif", ".tiff", ".gif", ".dcm", ".dicom", ".ima",
                  ".nii", ".nii.gz")


def sniff_format(head: bytes) -> str | None:
    """Name the format of a file from its first bytes, or None when unknown.

    DICOM is checked first: its 128-byte preamble may itself look like a TIFF header.
    """
    if head[128:132] == b"DICM":
        return "DICOM"
    for magic, name in ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"),
                        (b"GIF87a", "GIF"), (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                        (b"\x1f\x8b", "GZIP")):
        if head.startswith(magic):
            return name
    if is_nifti_header(head):
        return "NIfTI"
    if _looks_like_raw_dicom(head):
        return "DICOM"
    return None


def is_nifti_header(head: bytes) -> bool:
    """A NIfTI-1 (magic at byte 344) or NIfTI-2 (magic at byte 4) header."""
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return True
    return len(head) >= 12 and head[4:8] in (b"n+2\x00", b"ni2\x00")


def _looks_like_raw_dicom(head: bytes) -> bool:
    """DICOM written without preamble starts with a group 0x0002 or 0x0008 tag."""
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3:4] == b"\x00"


def read_head(path: Path) -> bytes:
    """The first bytes of a regular file; folders, special files and unreadable files raise.

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
            return fh.read(HEAD_BYTES)
    except ImageReadError:
        raise
    except OSError as exc:
        raise ImageReadError(path, _link_reason(path, exc) or os_reason(exc)) from exc


def _link_reason(path: Path, exc: OSError) -> str | None:
    """Why a symbolic link gives no file: its target is missing, or links lead back to themselves."""
    try:
        if not path.is_symlink():
            return None
    except OSError:
        return None
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop (its links lead back to themselves)"
    if isinstance(exc, FileNotFoundError):
        return f"is a broken symbolic link (its target {os.readlink(path)!r} does not exist)"
    return None


def sniff_file(path: Path) -> str:
    """The format of a file from its first bytes; unreadable, empty, unknown or non-regular files raise."""
    head = read_head(path)
    if not head:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    kind = sniff_format(head)
    if kind is None:
        raise ImageReadError(path, "not a supported image (JPEG, PNG, BMP, TIFF, GIF, DICOM or NIfTI)")
    return kind


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


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
        return sniff_format(read_head(path)) is not None
    except ImageReadError:
        return False
