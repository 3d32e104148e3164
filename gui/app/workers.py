"""Background work off the GUI thread: QRunnables that report through Qt signals.

The compute itself is the core's (``gui.core.engine``); these classes only move it to a pool
thread, forward progress, and honour Cancel between batches.
"""

from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Signal

from gui.core import csvout, stream
from gui.core.classifier import Classifier
from gui.core.overlay import overlay_label, result_frame, save_overlay_png
from gui.core.readers import ImageReadError, Scan, open_study


class OpenSignals(QObject):
    opened = Signal(int, object, object, object)  # task number, Scan, frame rgb, Result
    failed = Signal(int, str, str)  # task number, path, reason


class OpenWorker(QRunnable):
    """Open a file (or one frame of it) and classify the displayed image.

    Results carry the ``task`` number they were started with, so the window can drop the answer
    of an older file or slice that finishes after a newer one was asked for.
    """

    def __init__(self, classifier: Classifier, path: Path, frame: int | None = None,
                 scan: Scan | None = None, task: int = 0) -> None:
        super().__init__()
        self.classifier, self.path, self.frame, self.scan, self.task = classifier, path, frame, scan, task
        self.signals = OpenSignals()

    def run(self) -> None:
        try:
            scan = self.scan or open_study(self.path)
            rgb, image = scan.images(self.frame)
            result = self.classifier.classify_image(image, str(self.path))
            self.signals.opened.emit(self.task, scan, rgb, result)
        except ImageReadError as exc:
            self.signals.failed.emit(self.task, str(self.path), exc.reason)
        except Exception as exc:  # never let a worker die silently
            self.signals.failed.emit(self.task, str(self.path), f"unexpected error: {exc}\n{traceback.format_exc()}")


class BatchSignals(QObject):
    started = Signal(int)  # total files
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
        try:
            files = list(stream.collect_files(self.paths, recursive=self.recursive))
            self.signals.started.emit(len(files))
            t0 = time.perf_counter()
            pending, done, last_emit = [], 0, 0.0
            for r in stream.classify_files(files, self.classifier, with_heat=True,
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
        try:
            # The save dialog has already asked before replacing an existing file.
            csvout.write_csv_atomic(self.csv_path, self.classifier.columns(),
                                    (self.classifier.row(r) for r in self.results), force=True)
            written = 0
            if self.heatmap_dir is not None:
                self.heatmap_dir.mkdir(parents=True, exist_ok=True)
                for r in self.results:
                    if r.ok and r.heat is not None:
                        try:  # the batch keeps heat maps, not frames (memory): decode the scan again
                            save_overlay_png(overlay_label(r.path, r.max_slice), result_frame(r), r.heat, r.geometry,
                                             self.heatmap_dir)
                            written += 1
                        except ImageReadError:
                            continue  # the file changed or vanished since it was classified
            extra = f" and {written} heatmaps to {self.heatmap_dir}" if self.heatmap_dir else ""
            self.signals.done.emit(f"Exported {len(self.results)} rows to {self.csv_path}{extra}")
        except OSError as exc:
            self.signals.failed.emit(f"Could not write {self.csv_path}: {exc}")


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
    slices = Signal(int, list, list)  # task number, slice indices, their P(tumour) (NaN: unreadable)
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
        self.signals.slices.emit(self.task, [r.slice for r in results],
                                 [r.tumor_probability if r.ok else float("nan") for r in results])

    def run(self) -> None:
        try:
            for r in stream.classify_files([self.scan], self.classifier, should_cancel=self._cancel.is_set,
                                           on_slices=self._on_slices):
                self.signals.done.emit(self.task, r)
        except Exception as exc:  # a study that cannot be scored is a message, never a lost window
            self.signals.failed.emit(self.task, f"{exc}")
