"""The per-user folder the app keeps its own files in (log, measured engine settings). No Qt.

The same folder Qt's ``AppLocalDataLocation`` names for this app: Linux ``$XDG_DATA_HOME`` or
``~/.local/share``, Windows ``%LOCALAPPDATA%``, macOS ``~/Library/Application Support``, then
``MRI Tumor Classifier/mri-classifier``. Never next to a scan.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ORGANISATION = "MRI Tumor Classifier"
APPLICATION = "mri-classifier"


def data_dir(*parts: str) -> Path:
    """The app's per-user folder (or a sub-folder of it), created when missing."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = base.joinpath(ORGANISATION, APPLICATION, *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created when missing) while the block runs: the per-user
    files are shared by every process of the app (two shards, the window and a batch), and a
    read-modify-write must not interleave. Blocks until the lock is free; OSError when the file
    cannot be created."""
    with open(path, "a+b") as fh:
        if sys.platform == "win32":
            import msvcrt

            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
