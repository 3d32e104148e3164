"""Find bundled resources (models, icons) from source, an editable install or a frozen build."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def assets_dir() -> Path:
    """``assets/`` of the project or of the PyInstaller bundle (``MRI_CLASSIFIER_ASSETS`` overrides)."""
    override = os.environ.get("MRI_CLASSIFIER_ASSETS")
    if override:
        return Path(override)
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "assets"
    return Path(__file__).resolve().parents[2] / "assets"  # gui/core/resources.py -> the project root


def bundled_models() -> list[Path]:
    """The default models, detector first: every ``*.onnx`` in ``assets/models`` sorted by name."""
    return sorted((assets_dir() / "models").glob("*.onnx"))
