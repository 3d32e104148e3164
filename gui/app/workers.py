"""Background work off the GUI thread: QRunnables that report through Qt signals.

The compute itself is the core's (``gui.core.engine``); these classes only move it to a pool
thread, forward progress, and honour Cancel between batches.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Signal

from gui.core.records import csvout
from gui.core.engine import stream, tuning
from gui.core.engine.classifier import Classifier
from gui.core.names import display_path
from gui.core.engine.heatmap import result_frame
from gui.core.records.heatmaps import overlay_label, save_overlay_png
from gui.core.engine.priority import lower_this_thread
from gui.core.readers import ImageReadError, Scan, open_study
from gui.core.engine.result import Result


class OpenSignals(QObject):
    opened = Signal(int, object, object, object, object)  # task number, Scan, Plane, frame rgb, Result
    failed = Signal(int, str, str)  # task number, path, reason


class OpenWorker(QRunnable):
    """Open a file (or one frame of it) and classify its model image; with ``cached`` (a slice the
    study has scored already) only decode the frame, so moving through slices needs no inference.

    Results carry the ``task`` number they were started with, so the window can drop the answer
    of an older file or slice that finishes after a newer one was asked for.
    """

    def __init__(self, classifier: Classifier, path: Path, frame: int | None = None,
                 scan: Scan | None = None, task: int = 0, cached: Result | None = None) -> None:
        super().__init__()
        self.classifier, self.path, self.frame, self.scan, self.task = classifier, path, frame, scan, task
        self.cached = cached
        self.signals = OpenSignals()

    def run(self) -> None:
        try:
            scan = self.scan or open_study(self.path)
            plane = scan.plane(self.frame)
            rgb = scan.display(plane)
            if self.cached is not None:
                result = self.cached
            else:
                image, scale = scan.model_view(self.frame, self.classifier.need, in_hand=plane)
                result = replace(self.classifier.classify_image(image, str(self.path), scale=scale),
                                 sequence=scan.sequence)
            self.signals.opened.emit(self.task, scan, plane, rgb, result)
        except ImageReadError as exc:
            self.signals.failed.emit(self.task, str(self.path), exc.reason)
        except Exception as exc:  # never let a worker die silently
            self.signals.failed.emit(self.task, str(self.path), f"unexpected error: {exc}\n{traceback.format_exc()}")


class BatchSignals(QObject):
    started = Signal(int)  # total files
    note = Signal(str)  # what the worker is doing before the first result (timing the engine once)
    results = Signal(list)  # list[Result], one batch at a time (not one signal per file)
    progress = Signal(int, int, float)  # done, total, elapsed seconds
    finished = Signal(bool)  # cancelled?
    failed = Signal(str)


class BatchWorker(QRunnable):
    """Classify a folder (or files) with the engine; emits results batch by batch."""

    def __init__(self, classifier: Classifier, paths: list[Path], recursive: bool) -> None:
        super().__init__()
        self.classifier, self.paths, self.recursive = classifier, paths, recursive
        self.signals = BatchSignals()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self) -> None:
        lower_this_thread()  # the window's thread comes first (gui.core.engine.priority)
        try:
            files = list(stream.collect_files(self.paths, recursive=self.recursive))
            self.signals.started.emit(len(files))
            # A first long batch on this machine times the engine's layouts once (a few seconds), said on screen.
            engine = tuning.engine_settings(self.classifier, len(files),
                                            lambda msg: self.signals.note.emit(msg.capitalize() + "…"))
            t0 = time.perf_counter()
            pending, done, last_emit = [], 0, 0.0
            for r in stream.classify_files(files, self.classifier, engine, with_heat=True,
                                            should_cancel=self._cancel.is_set):
                pending.append(r)
                done += 1
                now = time.perf_counter()
                if now - last_emit > 0.1 or done == len(files):
                    self.signals.results.emit(pending)
                    self.signals.progress.emit(done, len(files), now - t0)
                    pending, last_emit = [], now
            if pending:
                self.signals.results.emit(pending)
                self.signals.progress.emit(done, len(files), time.perf_counter() - t0)
            self.signals.finished.emit(self._cancel.is_set())
        except Exception as exc:
            self.signals.failed.emit(f"{exc}\n{traceback.format_exc()}")
            self.signals.finished.emit(True)


class ExportSignals(QObject):
    done = Signal(str)
    failed = Signal(str)


class ExportWorker(QRunnable):
    """Write the results CSV (atomically) and, optionally, heatmap overlay PNGs."""

    def __init__(self, classifier: Classifier, results: list, csv_path: Path, heatmap_dir: Path | None) -> None:
        super().__init__()
        self.classifier, self.results, self.csv_path, self.heatmap_dir = classifier, results, csv_path, heatmap_dir
        self.signals = ExportSignals()

    def run(self) -> None:
        """The heatmaps first, so each row can name its PNG (failures named per file; an unreadable scan
        is counted and named, as the CLI's error rows do); then the CSV, published whole."""
        written, unreadable, failed, pictures = 0, [], [], {}
        if self.heatmap_dir is not None:
            written, unreadable, failed, pictures = self._heatmaps()
        try:
            # The save dialog has already asked before replacing an existing file.
            csvout.write_csv_atomic(self.csv_path, csvout.columns(self.classifier),
                                    (csvout.row(self.classifier, r, pictures.get(id(r))) for r in self.results),
                                    force=True)
        except OSError as exc:
            self.signals.failed.emit(f"Could not write the CSV {display_path(str(self.csv_path))}: {exc.strerror or exc}")
            return
        except Exception as exc:  # never leave "Exporting..." on screen for ever
            self.signals.failed.emit(f"Could not write the CSV {display_path(str(self.csv_path))}: {type(exc).__name__}: {exc}")
            return
        message = f"Exported {len(self.results)} rows to {display_path(str(self.csv_path))}"
        if self.heatmap_dir is not None:
            message += f"; {written} heatmaps to {display_path(str(self.heatmap_dir))}"
            if unreadable:
                message += (f"; {len(unreadable)} not drawn, the scan can no longer be read: "
                            + ", ".join(display_path(Path(p).name) for p in unreadable[:3]) + ("…" if len(unreadable) > 3 else ""))
            if failed:
                self.signals.failed.emit(message + f". Heatmaps could not be written: {failed[0]}"
                                         + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))
                return
        self.signals.done.emit(message)

    def _heatmaps(self) -> tuple[int, list[str], list[str], dict[int, Path]]:
        """Heatmap PNGs of the rows that have a map: (written, unreadable scans, other failures in words,
        the PNG of each result by ``id``)."""
        written, unreadable, failed, pictures = 0, [], [], {}
        try:
            self.heatmap_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return 0, [], [f"{display_path(str(self.heatmap_dir))}: {exc.strerror or exc}"], {}
        for r in self.results:
            if not (r.ok and r.heat is not None):
                continue
            try:  # the batch keeps heat maps, not frames (memory): decode the scan again
                pictures[id(r)] = save_overlay_png(overlay_label(r.path, r.max_slice), result_frame(r), r.heat,
                                                   r.geometry, self.heatmap_dir)
                written += 1
            except ImageReadError:
                unreadable.append(r.path)  # the file changed or vanished since it was classified
            except Exception as exc:  # a full disk, no permission, out of memory: named, the rest go on
                failed.append(f"{display_path(Path(r.path).name)}: {getattr(exc, 'strerror', None) or exc}")
        return written, unreadable, failed, pictures


class ReportSignals(QObject):
    done = Signal(int, str)  # task number, path
    failed = Signal(int, str)  # task number, reason


class ReportWorker(QRunnable):
    """Write the PDF report off the GUI thread (QPdfWriter and QPainter paint on a file, not a
    widget, which Qt allows in a pool thread). Carries its task number like ``OpenWorker``."""

    def __init__(self, task: int, path: str, write) -> None:
        super().__init__()
        self.task, self.path, self.write = task, path, write
        self.signals = ReportSignals()

    def run(self) -> None:
        try:
            self.write()
            self.signals.done.emit(self.task, self.path)
        except Exception as exc:  # a report that cannot be written is a message, never a lost window
            self.signals.failed.emit(self.task, f"Could not write {self.path}: {exc}")


class StudySignals(QObject):
    slices = Signal(int, list)  # task number, the slices' own answers (Result, with .slice)
    done = Signal(int, object)  # task number, the study's Result
    failed = Signal(int, str)  # task number, reason


class StudyWorker(QRunnable):
    """Score every slice of an open study with the engine's batches; the strip fills batch by batch.
    Cancelled (between batches) when the window opens another file."""

    def __init__(self, classifier: Classifier, scan: Scan, task: int) -> None:
        super().__init__()
        self.classifier, self.scan, self.task = classifier, scan, task
        self.signals = StudySignals()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def _on_slices(self, _path: str, results: list) -> None:
        self.signals.slices.emit(self.task, list(results))

    def run(self) -> None:
        lower_this_thread()  # the window's thread comes first (gui.core.engine.priority)
        try:
            for r in stream.classify_files([self.scan], self.classifier, tuning.engine_settings(self.classifier),
                                           should_cancel=self._cancel.is_set, on_slices=self._on_slices):
                self.signals.done.emit(self.task, r)
        except Exception as exc:  # a study that cannot be scored is a message, never a lost window
            self.signals.failed.emit(self.task, f"{exc}")
