"""Which models run: the ``--model`` files or the bundled ones, each loaded and checked against the contract."""

from __future__ import annotations

from pathlib import Path

from gui.core.engine.model import ModelContractError, load_model
from gui.core.resources import bundled_models


def model_files(paths: list[str] | None) -> list[Path]:
    """The ``--model`` files, else the bundled ones."""
    files = [Path(p) for p in paths] if paths else bundled_models()
    if not files:
        raise ModelContractError("assets/models", "no bundled model found and no --model given")
    return files


def load_models(paths: list[str] | None, threads: int | None = None) -> list:
    """The models, each on a session of ``threads`` intra-op threads (None: every core)."""
    return [load_model(f, threads) for f in model_files(paths)]
