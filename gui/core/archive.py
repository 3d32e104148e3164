"""Large archives: a run's journal (``classify --resume`` continues a killed run), deterministic shards
for array jobs (``--shard K/N``), and ``merge`` of the shards' CSVs. No Qt."""

from __future__ import annotations

import csv
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


class Journal:
    """Every finished row of a run, appended as a JSON line beside the CSV (``.NAME.journal``) and
    fsync'd every ``SYNC_EVERY`` rows; removed once the CSV is published whole. ``--resume`` reads it
    back: rows whose files are unchanged are written again instead of classified again."""

    def __init__(self, csv_path: Path, columns: list[str]) -> None:
        self.path = csv_path.with_name(f".{csv_path.name}.journal")
        self.columns = columns
        self._fh = None
        self._unsynced = 0

    def load(self) -> dict[Identity, dict]:
        """The finished rows of an earlier run with the same columns (same models), by identity."""
        done: dict[Identity, dict] = {}
        try:
            lines = self.path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        except OSError:
            return done
        if not lines or _json(lines[0]).get("columns") != self.columns:
            return done  # no journal, or one written with other models: nothing can be reused
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
                fh.write(json.dumps({"columns": self.columns}) + "\n")
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


def shard_of(item: Path | DicomSeries, roots: list[Path], shards: int) -> int:
    """The shard (0-based) of a file or study: a stable hash of its path relative to the folder it was
    found in (a study by its first file, so its files never split), the same on every machine."""
    first = item.files[0] if isinstance(item, DicomSeries) else item
    relative = first.name
    for root in roots:
        try:
            relative = first.relative_to(root).as_posix()
            break
        except ValueError:
            continue
    digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (1, 4): the 0-based shard and the count; ValueError when it is not K/N with 1 <= K <= N."""
    k, _, n = text.partition("/")
    k_i, n_i = int(k), int(n)
    if not 1 <= k_i <= n_i:
        raise ValueError(text)
    return k_i - 1, n_i


def read_csvs(paths: list[Path]) -> tuple[list[str], list[dict[str, str]]]:
    """Rows of CSVs made by ``classify`` with the same columns; ValueError naming a file whose columns
    differ or a path found twice (a shard run twice, or two overlapping runs)."""
    columns: list[str] | None = None
    rows: list[dict[str, str]] = []
    seen: dict[str, Path] = {}
    for p in paths:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if columns is None:
                columns = list(reader.fieldnames or [])
            elif list(reader.fieldnames or []) != columns:
                raise ValueError(f"{p} has other columns than {paths[0]} (made with other models?)")
            for row in reader:
                if row["path"] in seen:
                    raise ValueError(f"{row['path']} is in both {seen[row['path']]} and {p}")
                seen[row["path"]] = p
                rows.append(row)
    return columns or [], rows
