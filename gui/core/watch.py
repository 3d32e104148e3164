"""The headless ``watch`` command: classify new files and completed DICOM series as they arrive in a
folder, append their rows to a CSV, resume after a restart, stop cleanly on Ctrl-C. No Qt.

Polling (every ``--interval`` seconds), not file-system events: it works the same on network shares
and every platform, and a file is only read once it has stopped changing."""

from __future__ import annotations

import argparse
import csv
import signal
import sys
import time
from pathlib import Path

from gui.core import archive, csvout, stream
from gui.core.arrivals import Arrivals
from gui.core.classifier import Classifier
from gui.core.cli import interrupt, load_models
from gui.core.logs import attach_log_file, log
from gui.core.model import ModelContractError
from gui.core.names import display_path


class LiveCsv:
    """A CSV that grows row by row (flushed at once, so another program can read it live), backed by
    the run's journal: on a restart the CSV is written again from the journal (a row cut by a crash is
    gone), and files already rowed (same path, size and modification time) are not classified again."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns
        self.journal = archive.Journal(path, columns)
        entries = self.journal.load()
        self.done = {tuple(f) for key in entries for f in key}
        csvout.write_csv_atomic(path, columns, (e["row"] for e in entries.values()), force=True)
        self.journal.start(entries.values())
        self._fh = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=columns)
        self.rows = len(entries)

    def is_done(self, path: Path, stat: tuple[int, int]) -> bool:
        return (str(path), *stat) in self.done

    def add(self, item, row: dict[str, str]) -> None:
        key = archive.identity(item)
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


def poll(folder: Path, live: LiveCsv, classifier: Classifier, arrivals: Arrivals, interval: float,
         recursive: bool = False) -> None:
    """Look at the folder every ``interval`` seconds and classify what is ready, until interrupted."""
    while True:
        arrivals.scan(folder, recursive)
        items = arrivals.ready(live.is_done)
        for item, r in zip(items, stream.classify_files(items, classifier)):
            live.add(item, classifier.row(r))
            print(f"{display_path(r.path)}: {r.prediction or 'error: ' + r.error}", file=sys.stderr)
        time.sleep(interval)


def serve(folder: Path, out: Path, live: LiveCsv, classifier: Classifier, arrivals: Arrivals, interval: float,
          recursive: bool = False) -> int:
    """:func:`poll` until Ctrl-C or SIGTERM (exit 0) or until the CSV cannot be written, a full disk
    (exit 2, said); the CSV and its journal are closed either way. ``watch`` and ``listen`` both end here."""
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        poll(folder, live, classifier, arrivals, interval, recursive)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"error: cannot write {out} ({exc.strerror or exc}); stopped", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        live.close()
    print(f"stopped: {live.rows} rows in {out}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mri-classifier watch",
                                description="Classify files and completed DICOM series as they arrive in a folder; "
                                            "rows are appended to the CSV. Stop with Ctrl-C. Research use only.")
    p.add_argument("folder")
    p.add_argument("--csv", required=True, help="the CSV to append to (kept across restarts)")
    p.add_argument("--recursive", "-r", action="store_true", help="also watch sub-folders")
    p.add_argument("--settle", type=float, default=1.0, help="seconds a file must stay unchanged (default 1)")
    p.add_argument("--series-quiet", type=float, default=5.0,
                   help="seconds with no new file of a DICOM series before it is scored whole (default 5)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between two looks at the folder")
    p.add_argument("--model", action="append", metavar="FILE", help="ONNX model instead of the bundled ones")
    return p


def watch_main(argv: list[str]) -> int:
    """Exit 0 when stopped with Ctrl-C or SIGTERM, 2 on bad arguments or an unusable model."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    folder, out = Path(args.folder), Path(args.csv)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder", file=sys.stderr)
        return 2
    try:
        classifier = Classifier(load_models(args.model))
    except ModelContractError as exc:
        print(f"error: cannot use model {exc}", file=sys.stderr)
        return 2
    attach_log_file()
    try:
        live = LiveCsv(out, classifier.columns())
    except OSError as exc:
        print(f"error: cannot write {out} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    arrivals = Arrivals(settle=args.settle, quiet=args.series_quiet)
    print(f"watching {folder} into {out} ({live.rows} rows already); Ctrl-C stops", file=sys.stderr)
    log.info("watch %s into %s", display_path(str(folder)), display_path(str(out)))
    return serve(folder, out, live, classifier, arrivals, args.interval, args.recursive)
