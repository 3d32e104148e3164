"""The per-user folder the app keeps its own files in (log, measured engine settings). No Qt.

The same folder Qt's ``AppLocalDataLocation`` names for this app: Linux ``$XDG_DATA_HOME`` or
``~/.local/share``, Windows ``%LOCALAPPDATA%``, macOS ``~/Library/Application Support``, then
``MRI Tumor Classifier/mri-classifier``. Never next to a scan.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
