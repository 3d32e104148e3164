"""A run's journal: every finished row kept beside the CSV, so ``--resume``, ``watch`` and ``listen`` continue where a killed run stopped."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from gui.core.readers import DicomSeries

#: Rows appended between two fsyncs of the journal: a power loss costs at most this many files again.
SYNC_EVERY = 16

Identity = tuple[tuple[str, int, int], ...]


def identity(item: Path | DicomSeries) -> Identity | None:
    """What makes a file (or a study's files) the same one again: path, size and modification time of
    each file; None when a file cannot be looked at (it is classified again, never skipped)."""
    files = item.files if isinstance(item, DicomSeries) else (item,)
    try:
        return tuple((str(f), st.st_size, st.st_mtime_ns) for f in files for st in (os.stat(f),))
    except OSError:
        return None


def models_identity(models) -> list[dict]:
    """What makes a run's answers the same again: each model's file name, card version and SHA-256
    (two models with the same labels, v3 and v4 say, give the same columns but other answers)."""
    out = []
    for m in models:
        digest = hashlib.sha256()
        with open(m.path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        out.append({"file": Path(m.path).name, "version": str(m.card.get("version", "")), "sha256": digest.hexdigest()})
    return out


def describe(models: list) -> str:
    """Models by :func:`models_identity`, in words: ``m.onnx v3.0.0 (sha256 0123456789ab)``."""
    return ", ".join(f"{m.get('file')} v{m.get('version')} (sha256 {str(m.get('sha256'))[:12]})"
                     for m in models if isinstance(m, dict))


def journal_path(csv_path: Path) -> Path:
    """Where a CSV's journal lives: ``.NAME.journal`` beside it."""
    return csv_path.with_name(f".{csv_path.name}.journal")


class OtherModelsError(ValueError):
    """A journal written by other models (or another column layout): its rows cannot be reused."""


class Journal:
    """Every finished row of a run, appended as a JSON line beside the CSV (``.NAME.journal``) and
    fsync'd every ``SYNC_EVERY`` rows; removed once the CSV is published whole. ``--resume`` reads it
    back: rows whose files are unchanged are written again instead of classified again. Its header
    names the columns and the models (:func:`models_identity`): rows of other models are never reused."""

    def __init__(self, csv_path: Path, columns: list[str], models: list[dict]) -> None:
        self.path = journal_path(csv_path)
        self.header = {"columns": columns, "models": models}
        self._fh = None
        self._unsynced = 0

    def exists(self) -> bool:
        return self.path.exists()

    def describe_models(self) -> str:
        """The models a journal on disk was written with, in words (for a refusal)."""
        try:
            with self.path.open(encoding="utf-8", errors="surrogateescape") as fh:
                header = _json(fh.readline())
        except OSError:
            return "unknown models"
        models = header.get("models")
        if not isinstance(models, list) or not models:
            return "models of an earlier version of this app"
        return describe(models)

    def load(self) -> dict[Identity, dict]:
        """The finished rows of an earlier run by identity; {} when there is no journal. Raises
        :class:`OtherModelsError` when the journal was written with other models or columns."""
        done: dict[Identity, dict] = {}
        try:
            lines = self.path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        except OSError:
            return done
        if not lines:
            return done
        if _json(lines[0]) != self.header:
            raise OtherModelsError(f"{self.path} was written with {self.describe_models()}")
        for line in lines[1:]:
            entry = _json(line)  # a line cut by a power loss is not JSON: that file is classified again
            if "key" in entry:
                done[tuple(tuple(k) for k in entry["key"])] = entry
        return done

    def start(self, reused: Iterable[dict]) -> None:
        """A new journal holding the header and the rows taken over from the old one."""
        tmp = self.path.with_name(self.path.name + ".new")
        try:
            with tmp.open("w", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write(json.dumps(self.header) + "\n")
                for entry in reused:
                    fh.write(json.dumps(entry) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        self._fh = self.path.open("a", encoding="utf-8", errors="surrogateescape")

    def add(self, key: Identity | None, row: dict, slice_rows: list[dict]) -> None:
        if key is None or self._fh is None:
            return
        self._fh.write(json.dumps({"key": key, "row": row, "slices": slice_rows}) + "\n")
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        if self._fh is not None and self._unsynced:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._unsynced = 0

    def close(self, finished: bool) -> None:
        """Flush; remove the journal when the run finished and its CSV is published whole. A full disk
        here costs only what a later ``--resume`` could have reused: it is not an error."""
        if self._fh is not None:
            try:
                self.sync()
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        if finished:
            self.path.unlink(missing_ok=True)


def _json(line: str) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
