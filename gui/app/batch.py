"""Batch panel: classify a folder in the background; sortable, filterable results; CSV export."""

from __future__ import annotations

import html
from collections import Counter
from functools import partial
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QSize,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from gui.app import theme
from gui.app.formatting import ANSWERS, is_uncertain, items_in_words, percent, row_name, type_words
from gui.app.histogram import ProbabilityHistogram
from gui.app.thumbnails import PictureCache
from gui.app.viewer import ImageViewer
from gui.app.tasks import BACKGROUND, INTERACTIVE, Task, TaskRunner
from gui.app.workers import batch_work, export_work
from gui.core.engine.classifier import Classifier
from gui.core.names import display_path
from gui.core.engine.result import Result

THUMBNAIL = 64

COLUMNS = [("Scan", "thumbnail"), ("File", "path"), ("Answer", "prediction"), ("Tumour probability", "tumor_probability"),
           ("Type", "tumor_type"), ("Confidence", "confidence"), ("Slices", "n_slices"), ("Status", "status"),
           ("Warnings", "ood_warning")]


class ResultsModel(QAbstractTableModel):
    """The batch table's rows: the results of one batch, with the classifier that produced them
    (an export after File > Load model must write these rows with their own columns) and a running
    count of failures (progress updates must not rescan every row on the GUI thread)."""

    def __init__(self, tasks: TaskRunner) -> None:
        super().__init__()
        self.results: list[Result] = []
        self.classifier: Classifier | None = None
        self.failed = 0
        self.tally: Counter[str] = Counter()  # running counts for the summary: no rescans per update
        self.probabilities: list[float] = []
        self.thumbnails = PictureCache(THUMBNAIL, capacity=2000, tasks=tasks, parent=self)
        self.thumbnails.ready.connect(self._thumbnail_ready)
        self._rows_of: dict[str, list[int]] = {}

    def _thumbnail_ready(self, path: str) -> None:
        for row in self._rows_of.get(path, []):
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.results)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][0]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        r = self.results[index.row()]
        key = COLUMNS[index.column()][1]
        if key == "thumbnail":  # rendered when first painted, off the GUI thread
            if role == Qt.ItemDataRole.DecorationRole:
                return self.thumbnails.get(r)
            if role == Qt.ItemDataRole.SizeHintRole:
                return QSize(THUMBNAIL + 6, THUMBNAIL + 4)
            if role == Qt.ItemDataRole.UserRole:
                return index.row()  # sorting by this column restores the input order
            return None
        value = getattr(r, key)
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "path":
                return display_path(row_name(r))
            if key == "prediction":
                return ANSWERS[value]
            if key == "tumor_type":
                return type_words(value, short=True)
            if key in ("tumor_probability", "confidence"):
                return percent(value)
            if key == "status":
                return "ok" if r.ok else f"error: {display_path(r.error)}"
            if key == "n_slices":
                return "" if value is None or not r.ok else (
                    f"{value}: key slice {r.max_slice}" + (f", tumour in {r.tumor_slices}" if r.tumor_slices else ""))
            return value
        if role == Qt.ItemDataRole.UserRole:  # sort key
            return -1.0 if value is None else value
        if role == Qt.ItemDataRole.ToolTipRole:
            return display_path(r.path) if key == "path" else (display_path(r.error) or None)
        if role == Qt.ItemDataRole.ForegroundRole and not r.ok:
            return QColor(theme.colour("error"))
        return None

    def extend(self, results: list[Result]) -> None:
        self.beginInsertRows(QModelIndex(), len(self.results), len(self.results) + len(results) - 1)
        for k, r in enumerate(results, start=len(self.results)):
            self._rows_of.setdefault(r.path, []).append(k)
            self.tally["tumor" if r.ok and r.prediction == "tumor" else "no_tumor" if r.ok else "failed"] += 1
            self.tally["cautioned"] += r.ok and bool(r.ood_warning)
            self.tally["disagree"] += r.ok and bool(r.models_disagree)
            self.tally["uncertain"] += is_uncertain(r)
            if r.ok and r.tumor_probability is not None:
                self.probabilities.append(r.tumor_probability)
        self.results.extend(results)
        self.failed = self.tally["failed"]
        self.endInsertRows()

    def clear(self, classifier: Classifier | None = None) -> None:
        self.beginResetModel()
        self.results = []
        self.classifier = classifier
        self.failed = 0
        self.tally = Counter()
        self.probabilities = []
        self._rows_of = {}
        self.thumbnails.clear()
        self.endResetModel()


class ResultsFilter(QSortFilterProxyModel):
    """The table's filter: the text box (any column) and, with ``uncertain_only``, only the rows to
    look at twice (``formatting.is_uncertain``: a caution, disagreeing answers, P(tumour) within 0.15 of the threshold)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.uncertain_only = False

    def set_uncertain_only(self, on: bool) -> None:
        if not hasattr(self, "beginFilterChange"):  # Qt < 6.10
            self.uncertain_only = on
            self.invalidateFilter()
            return
        self.beginFilterChange()  # Qt 6.10+: invalidateFilter() is deprecated
        self.uncertain_only = on
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, row: int, parent) -> bool:  # noqa: N802 (Qt naming)
        if self.uncertain_only and not is_uncertain(self.sourceModel().results[row]):
            return False
        return super().filterAcceptsRow(row, parent)


NO_ROW = "Select a row (arrow keys move through them) to see the scan here."


class BatchPanel(QWidget):
    """The Batch tab: classify a folder in a pool thread with progress and Cancel, a sortable and
    filterable table of the results (``ResultsModel``), a summary line, and CSV/heatmap export in the
    background. A double-click asks the window to open the file (``open_requested``)."""

    open_requested = Signal(str)

    def __init__(self, classifier_getter, settings, tasks: TaskRunner | None = None, parent=None) -> None:
        super().__init__(parent)
        self._classifier = classifier_getter
        self._settings = settings
        self.tasks = tasks or TaskRunner(self)
        self.worker: Task | None = None  # the batch in flight (its ``cancel`` stops it between two batches)
        self.table_model = ResultsModel(self.tasks)
        self.proxy = ResultsFilter(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

        self.choose = QPushButton("Classify folder…")
        self.recursive = QCheckBox("Include sub-folders")
        self.recursive.setChecked(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.heatmaps = QCheckBox("Also export heatmap PNGs")
        self.progress = QProgressBar()
        self.status = QLabel("Choose a folder, or drop one on the window.")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter rows (file name, answer, type, error)…")
        self.filter.setAcceptDrops(False)  # a dropped file goes to the window (classify it), not into the text
        self.uncertain = QPushButton("Only uncertain rows")
        self.uncertain.setCheckable(True)
        self.uncertain.setToolTip("Show only answers with a caution, answers where the models disagree, "
                                  "and tumour probabilities within 15 points of the decision threshold")
        self.counts = QLabel("")
        self.counts.setWordWrap(True)
        self.histogram = ProbabilityHistogram()
        self.preview = ImageViewer()
        self.preview.setMinimumWidth(260)
        self.preview_pictures = PictureCache(512, capacity=32, tasks=self.tasks, parent=self)
        self.preview_pictures.ready.connect(self._preview_ready)
        self.preview_caption = QLabel(NO_ROW)
        self.preview_caption.setWordWrap(True)
        self._preview_path: str | None = None
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # input order until a click
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long name keeps its ending ("….dcm")
        metrics = self.table.horizontalHeader().fontMetrics()
        for k, (title, key) in enumerate(COLUMNS):  # every column on screen at 1280 px, each title whole
            self.table.setColumnWidth(k, {"thumbnail": THUMBNAIL + 8, "path": 200}.get(
                key, metrics.horizontalAdvance(title) + 28))
        # Fit columns to the first rows only: measuring thousands of rows froze the window ~100-170 ms.
        self.table.horizontalHeader().setResizeContentsPrecision(64)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL + 4)
        self.table.setIconSize(QSize(THUMBNAIL, THUMBNAIL))

        top = QHBoxLayout()
        for w in (self.choose, self.recursive, self.cancel_button):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.heatmaps)
        top.addWidget(self.export_button)
        summary = QHBoxLayout()
        summary.addWidget(self.counts, 1)
        summary.addWidget(self.histogram)
        filters = QHBoxLayout()
        filters.addWidget(self.filter, 1)
        filters.addWidget(self.uncertain)
        preview = QWidget()
        preview_layout = QVBoxLayout(preview)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        preview_layout.addWidget(self.preview, 1)
        preview_layout.addWidget(self.preview_caption)
        split = QSplitter()
        split.addWidget(self.table)
        split.addWidget(preview)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(summary)
        layout.addLayout(filters)
        layout.addWidget(split, 1)

        self.choose.clicked.connect(self.choose_folder)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.uncertain.toggled.connect(self.proxy.set_uncertain_only)
        self.table.doubleClicked.connect(self._open_row)
        self.table.selectionModel().currentRowChanged.connect(self._show_row)

    # ---------------------------------------------------------------- running

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Classify folder", self._settings.value("last_folder", ""))
        if folder:
            self.start([Path(folder)])

    def start(self, paths: list[Path]) -> None:
        """Classify ``paths``; a batch still running is cancelled and its late results are dropped
        (the task runner keeps one current request per key)."""
        classifier = self._classifier()
        if classifier is None:
            QMessageBox.warning(self, "No model", "No model is loaded (File > Load model).")
            return
        if self.running:
            self.worker.cancel()
        if paths:
            self._settings.setValue("last_folder", str(paths[0] if paths[0].is_dir() else paths[0].parent))
        self.table_model.clear(classifier)
        self.preview_pictures.clear()  # nothing of the previous batch (or model) stays on screen
        self.preview.clear()
        self._preview_path = None
        self.preview_caption.setText(NO_ROW)
        self.cancel_button.setEnabled(True)
        self.choose.setEnabled(False)
        self.export_button.setEnabled(False)
        self.status.setText("Listing files…")
        # A batch still running is replaced: the runner drops its late answers (one key, "batch").
        self.worker = self.tasks.submit("batch", BACKGROUND, partial(batch_work, classifier, paths, self.recursive.isChecked()),
                                        done=self._on_finished, error=self._on_batch_failed, progress=self._on_batch_report)

    def _on_batch_report(self, payload) -> None:
        kind, value = payload
        if kind == "started":
            self._on_started(value)
        elif kind == "note":
            self.status.setText(value)
        elif kind == "results":
            self.table_model.extend(value)
        elif kind == "progress":
            self._on_progress(*value)

    def _on_batch_failed(self, reason: str) -> None:
        QMessageBox.critical(self, "Batch failed", reason)
        self._on_finished(True)

    @property
    def running(self) -> bool:
        return self.tasks.running("batch")

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.status.setText("Cancelling…")

    def _on_started(self, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)
        self.status.setText(f"0 of {total} files")

    def update_summary(self) -> None:
        """Counts by answer in words and the histogram of tumour probabilities, from running tallies."""
        t = self.table_model.tally
        self.counts.setText(f"<b>{t['tumor']}</b> tumour likely · <b>{t['no_tumor']}</b> no tumour found · "
                            f"<b>{t['failed']}</b> could not be read<br>{t['cautioned']} with a caution, "
                            f"{t['disagree']} where the models disagree; {t['uncertain']} uncertain in all")
        self.uncertain.setText(f"Only uncertain rows ({t['uncertain']})")
        classifier = self.table_model.classifier
        self.histogram.set_probabilities(self.table_model.probabilities,
                                         classifier.detector.threshold if classifier is not None else 0.5)

    def _show_row(self, current, _previous=None) -> None:
        """The selected row's scan with its heatmap in the preview (arrow keys move the selection); no
        selected row (a filter hid it) empties the preview: it never shows a row the table does not."""
        if not current.isValid():
            self._preview_path = None
            self.preview.clear()
            self.preview_caption.setText(NO_ROW)
            return
        r = self.table_model.results[self.proxy.mapToSource(current).row()]
        self._preview_path = r.path
        where = f" · key slice {r.max_slice} of {r.n_slices}" if r.is_study else ""
        self.preview_caption.setText(
            f"<b>{html.escape(display_path(row_name(r)))}</b>{where}<br>" + (f"{ANSWERS[r.prediction]} · {percent(r.tumor_probability)}"
                                                       if r.ok else f"could not be read: {r.error}"))
        picture = self.preview_pictures.get(r)
        if picture is not None:
            self.preview.show_pixmap(picture)
        else:
            self.preview.clear()

    def _export_failed(self, message: str) -> None:
        self.status.setText(message)
        QMessageBox.critical(self, "Export failed", message)

    def _preview_ready(self, path: str) -> None:
        if path == self._preview_path:
            current = self.table.currentIndex()
            if current.isValid():
                self._show_row(current)

    def _on_progress(self, done: int, total: int, elapsed: float) -> None:
        self.progress.setValue(done)
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        self.status.setText(f"{done} of {total} files · {rate:.1f} files/s · {left:.0f} s left · "
                            f"{self.table_model.failed} could not be read")
        self.update_summary()

    def _on_finished(self, cancelled: bool) -> None:
        self.cancel_button.setEnabled(False)
        self.choose.setEnabled(True)
        self.export_button.setEnabled(bool(self.table_model.results))
        held = items_in_words(self.table_model.results)
        self.status.setText(f"Cancelled after {held}." if cancelled else f"Done: {held}.")
        self.update_summary()  # the counts by answer, cautions and disagreements
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Columns as wide as their contents, within bounds, so every one stays on screen; the last
        (Warnings) takes the rest, and a long name or warning is elided with its tooltip whole."""
        metrics = self.table.horizontalHeader().fontMetrics()
        for k, (title, key) in enumerate(COLUMNS[:-1]):
            self.table.resizeColumnToContents(k)
            floor = metrics.horizontalAdvance(title) + 28
            self.table.setColumnWidth(k, min(max(self.table.columnWidth(k), floor), 260 if key == "path" else max(floor, 150)))

    def _open_row(self, index) -> None:
        r = self.table_model.results[self.proxy.mapToSource(index).row()]
        self.open_requested.emit(r.path)

    # ---------------------------------------------------------------- export

    def export_csv(self, path: str | None = None) -> None:
        classifier = self.table_model.classifier  # the one that produced these rows, not the one loaded now
        if classifier is None:
            return
        if path is None:
            start = str(Path(self._settings.value("last_csv_dir", str(Path.home()))) / "mri-results.csv")
            path, _ = QFileDialog.getSaveFileName(self, "Export CSV", start, "CSV (*.csv)")
            if not path:
                return
        target = Path(path)
        self._settings.setValue("last_csv_dir", str(target.parent))
        heatmaps = target.with_name(target.stem + "-heatmaps") if self.heatmaps.isChecked() else None
        self.status.setText(f"Exporting to {target}…")
        # In the interactive lane: never queued behind a running batch.
        self.tasks.submit("export", INTERACTIVE, partial(export_work, classifier, list(self.table_model.results), target,
                                                         heatmaps),
                          done=lambda e: self.status.setText(e.message) if e.ok else self._export_failed(e.message),
                          error=lambda reason: self._export_failed(f"Could not write the CSV {target}: {reason}"))
