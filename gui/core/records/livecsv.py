"""The CSV of ``watch`` and ``listen``: grows row by row, readable live, rebuilt from its journal after a restart."""

from __future__ import annotations

import csv
from pathlib import Path

from gui.core.records import csvout, journal


class NotOursError(FileExistsError):
    """An existing CSV that this command did not journal with these models: never overwritten."""


class LiveCsv:
    """A CSV that grows row by row (flushed at once, so another program can read it live), backed by
    the run's journal: on a restart the CSV is written again from the journal (a row cut by a crash is
    gone), and files already rowed (same path, size and modification time) are not classified again.

    An existing CSV is only ever rebuilt from its own journal, written by these models: a CSV of
    ``classify`` (no journal) or of other models is refused with :class:`NotOursError` and left
    untouched, unless ``force`` (then it starts again, empty)."""

    def __init__(self, path: Path, columns: list[str], models: list[dict], force: bool = False) -> None:
        self.path, self.columns = path, columns
        self.journal = journal.Journal(path, columns, models)
        try:
            entries = self.journal.load()
        except journal.OtherModelsError:
            if not force:
                raise NotOursError(f"{path} was written with {self.journal.describe_models()}, not these models; "
                                   "nothing was touched (use --force to start it again, or another --csv)") from None
            entries = {}
        if path.exists() and not entries and not self.journal.exists() and not force:
            raise NotOursError(f"{path} exists and was not written by watch or listen (it has no journal); "
                               "nothing was touched (use --force to start it again, or another --csv)")
        self.done = {tuple(f) for key in entries for f in key}
        csvout.write_csv_atomic(path, columns, (e["row"] for e in entries.values()), force=True)
        self.journal.start(entries.values())
        self._fh = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=columns)
        self.rows = len(entries)

    def is_done(self, path: Path, stat: tuple[int, int]) -> bool:
        return (str(path), *stat) in self.done

    def add(self, item, row: dict[str, str]) -> None:
        key = journal.identity(item)
        self._writer.writerow(row)
        self._fh.flush()
        self.journal.add(key, row, [])
        self.journal.sync()
        self.rows += 1
        if key is not None:  # a file gone since it was read has no identity: it cannot come back as done
            self.done |= set(key)

    def close(self) -> None:
        self._fh.close()
        self.journal.close(finished=False)  # a watch never finishes: the journal is its memory
