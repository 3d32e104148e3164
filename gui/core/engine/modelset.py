"""Which models run: the ``--model`` files or the bundled ones in the precision asked for, each loaded and
checked against the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gui.core.engine import precision as precisions
from gui.core.engine.model import ModelContractError, load_model


def model_files(paths: list[str] | None, precision: str = precisions.DEFAULT,
                report: Callable[[str], None] | None = None) -> list[Path]:
    """The ``--model`` files (they run as they are), else the bundled ones in ``precision`` where this
    computer can run it (:func:`gui.core.engine.precision.bundled`); ``report`` hears why not."""
    if paths:
        if precision != precisions.DEFAULT and report is not None:
            report("--precision applies to the bundled models; the --model files run as they are")
        return [Path(p) for p in paths]
    choice = precisions.bundled(precision)
    if choice.note and report is not None:
        report(choice.note)
    if not choice.files:
        raise ModelContractError("assets/models", "no bundled model found and no --model given")
    return choice.files


def load_models(paths: list[str] | None, threads: int | None = None, precision: str = precisions.DEFAULT,
                report: Callable[[str], None] | None = None) -> list:
    """The models (:func:`model_files`), each on a session of ``threads`` intra-op threads (None: every core)."""
    return [load_model(f, threads) for f in model_files(paths, precision, report)]
