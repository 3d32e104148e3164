"""Which files in a watched folder are ready to classify: a file once its size and modification time
have stayed still for ``settle`` seconds, a DICOM series once none of its files has arrived or changed
for ``quiet`` seconds (then its files are scored as one study). Qt-free, with an injectable clock."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gui.core.readers import DicomSeries, group_dicom_series, is_image_file, stack_key

Stat = tuple[int, int]  # size, modification time (ns)


@dataclass
class _Seen:
    stat: Stat
    since: float  # when this stat was first seen
    stack: tuple | None = None  # the DICOM series stack, once the file has settled
    looked: bool = False  # its series membership is known


@dataclass
class Arrivals:
    """Feed :meth:`scan` the folder every poll; :meth:`ready` gives what can be classified now."""

    settle: float = 1.0
    quiet: float = 5.0
    clock: Callable[[], float] = time.monotonic
    seen: dict[Path, _Seen] = field(default_factory=dict)

    def scan(self, folder: Path, recursive: bool = False) -> None:
        """Look at the folder's image files now (hidden files and the app's own files are skipped)."""
        now = self.clock()
        present = {}
        for path in _files(folder, recursive):
            try:
                st = os.stat(path)
            except OSError:
                continue
            present[path] = (st.st_size, st.st_mtime_ns)
        for path, stat in present.items():
            old = self.seen.get(path)
            if old is None or old.stat != stat:
                self.seen[path] = _Seen(stat, now)
        for path in set(self.seen) - set(present):
            del self.seen[path]

    def ready(self, done: Callable[[Path, Stat], bool]) -> list[Path | DicomSeries]:
        """Settled files not ``done`` yet, with the files of each series gathered once the whole series
        is quiet; a series still receiving files waits, and so does each of its files."""
        now = self.clock()
        settled = [p for p, s in self.seen.items() if now - s.since >= self.settle and not done(p, s.stat)]
        for p in settled:
            if not self.seen[p].looked:
                self.seen[p].stack, self.seen[p].looked = stack_key(p), True
        singles = [p for p in settled if self.seen[p].stack is None]
        stacks: dict[tuple, list[Path]] = {}
        for p in settled:
            if self.seen[p].stack is not None:
                stacks.setdefault(self.seen[p].stack, []).append(p)
        out: list[Path | DicomSeries] = sorted(singles)
        settled_set = set(settled)
        for stack, members in stacks.items():
            # the series' own files, and any file still arriving in the same folder (it may be the next slice)
            folders = {p.parent for p in members}
            everyone = [p for p, s in self.seen.items()
                        if s.stack == stack or (p.parent in folders and p not in settled_set and not s.looked)]
            last = max(self.seen[p].since for p in everyone)
            if now - last >= self.quiet:
                out.extend(group_dicom_series(sorted(members)))
        return out


def _files(folder: Path, recursive: bool) -> list[Path]:
    """The folder's image files; OSError when the folder itself is gone (``rglob`` alone would say
    "empty", and every file seen so far would be forgotten)."""
    if not folder.is_dir():
        raise FileNotFoundError(errno.ENOENT, "the folder is not there", str(folder))
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in paths if p.is_file() and not p.name.startswith(".") and is_image_file(p))
