"""The app's log file, for the window and the headless command alike. No Qt.

Where (the same folder Qt's ``AppLocalDataLocation`` names for this app): Linux
``$XDG_DATA_HOME`` or ``~/.local/share``, then ``MRI Tumor Classifier/mri-classifier/logs``;
Windows ``%LOCALAPPDATA%\\MRI Tumor Classifier\\mri-classifier\\logs``; macOS
``~/Library/Application Support/MRI Tumor Classifier/mri-classifier/logs``. Never next to a scan.
DICOM patient fields never reach it: the reader does not read them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from gui.core.userdirs import APPLICATION, ORGANISATION, data_dir

__all__ = ["APPLICATION", "ORGANISATION", "LOG_NAME", "OneRecordPerLine", "attach_log_file", "log", "log_dir"]
LOG_NAME = "mri-classifier.log"

log = logging.getLogger("mri_classifier")


def log_dir() -> Path:
    """The per-user log folder (created when missing)."""
    return data_dir("logs")


class OneRecordPerLine(logging.Formatter):
    """Only a record's first line starts at the margin: any later line of it (a traceback, or a name
    that slipped past ``gui.core.names.display_path``) is indented, so no text can pass for a record."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "\\r").replace("\n", "\n    | ")


def attach_log_file(log_file: Path | None = None) -> Path | None:
    """Send the app's log to ``log_file`` (default: the per-user folder); None when it cannot be
    written (a read-only home must not stop a batch)."""
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    try:
        log_file = log_file or log_dir() / LOG_NAME
        handler = logging.FileHandler(log_file, encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(OneRecordPerLine("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log_file
