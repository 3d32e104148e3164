"""The headless ``watch`` command: classify new files and completed DICOM series as they arrive in a
folder, append their rows to a CSV, resume after a restart, stop cleanly on Ctrl-C. No Qt.

Polling (every ``--interval`` seconds), not file-system events: it works the same on network shares
and every platform, and a file is only read once it has stopped changing."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from gui.core.commands.arrivals import Arrivals
from gui.core.commands.common import Stop, add_precision_argument, note, stop_signals
from gui.core.engine import stream
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import ModelContractError
from gui.core.engine.modelset import load_models
from gui.core.records import csvout
from gui.core.names import display_path
from gui.core.records.journal import models_identity
from gui.core.records.livecsv import LiveCsv, NotOursError
from gui.core.records.logs import attach_log_file, log


def poll(folder: Path, live: LiveCsv, classifier: Classifier, arrivals: Arrivals, interval: float,
         recursive: bool = False, stop: Stop | None = None) -> None:
    """Look at the folder every ``interval`` seconds and classify what is ready, until ``stop`` is asked
    for (checked between batches and looks: a Ctrl-C never lands inside the engine) or, without one,
    until interrupted. A folder that cannot be read (an unmounted share, a removed folder) is said once
    and waited for."""
    stopped = stop.requested.is_set if stop is not None else (lambda: False)
    away = False
    while not stopped():
        try:
            arrivals.scan(folder, recursive)
        except OSError as exc:
            if not away:
                print(f"cannot read the watched folder {display_path(str(folder))} ({exc.strerror or exc}): "
                      "unmounted or removed? Waiting for it; Ctrl-C stops", file=sys.stderr)
                log.warning("watched folder %s unreadable: %s", display_path(str(folder)), exc.strerror or exc)
                away = True
            time.sleep(interval)
            continue
        if away:
            print(f"the watched folder {display_path(str(folder))} is back", file=sys.stderr)
            away = False
        items = arrivals.ready(live.is_done)
        for item, r in zip(items, stream.classify_files(items, classifier, should_cancel=stopped)):
            live.add(item, csvout.row(classifier, r))
            print(f"{display_path(r.path)}: {r.prediction or 'error: ' + r.error}", file=sys.stderr)
        time.sleep(interval)


def serve(folder: Path, out: Path, live: LiveCsv, classifier: Classifier, arrivals: Arrivals, interval: float,
          recursive: bool = False) -> int:
    """:func:`poll` until Ctrl-C or SIGTERM (exit 0) or until the CSV cannot be written, a full disk
    (exit 2, said); the CSV and its journal are closed either way. ``watch`` and ``listen`` both end here."""
    with stop_signals() as stop:
        try:
            with stop.soft():
                poll(folder, live, classifier, arrivals, interval, recursive, stop)
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            print(f"error: cannot write {out} ({exc.strerror or exc}); stopped", file=sys.stderr)
            return 2
        finally:
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
    add_precision_argument(p)
    p.add_argument("--force", action="store_true",
                   help="start the CSV again when it was not written by watch with these models")
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
        classifier = Classifier(load_models(args.model, precision=args.precision, report=note))
    except ModelContractError as exc:
        print(f"error: cannot use model {exc}", file=sys.stderr)
        return 2
    attach_log_file()
    try:
        live = LiveCsv(out, csvout.columns(classifier), models_identity(classifier.models), args.force)
    except NotOursError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {out} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    arrivals = Arrivals(settle=args.settle, quiet=args.series_quiet)
    print(f"watching {folder} into {out} ({live.rows} rows already); Ctrl-C stops", file=sys.stderr)
    log.info("watch %s into %s", display_path(str(folder)), display_path(str(out)))
    return serve(folder, out, live, classifier, arrivals, args.interval, args.recursive)
