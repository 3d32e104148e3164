"""Batch panel: classify a folder in the background; sortable, filterable results; CSV export."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import (QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, QThreadPool, Signal)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox,
                               QProgressBar, QPushButton, QTableView, QVBoxLayout, QWidget)

from gui.core import engine
from gui.app.formatting import ANSWERS, percent
from gui.app.workers import BatchWorker, ExportWorker

COLUMNS = [("File", "path"), ("Answer", "prediction"), ("Tumour probability", "tumor_probability"),
           ("Type", "tumor_type"), ("Confidence", "confidence"), ("Warnings", "ood_warning"), ("Status", "status")]


class ResultsModel(QAbstractTableModel):
    """The batch table's rows: the results of one batch, with the classifier that produced them
    (an export after File > Load model must write these rows with their own columns) and a running
    count of failures (progress updates must not rescan every row on the GUI thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[engine.Result] = []
        self.classifier: engine.Classifier | None = None
        self.failed = 0

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
        value = getattr(r, key)
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "path":
                return Path(r.path).name
            if key == "prediction":
                return ANSWERS[value]
            if key in ("tumor_probability", "confidence"):
                return percent(value)
            if key == "status":
                return "ok" if r.ok else f"error: {r.error}"
            return value
        if role == Qt.ItemDataRole.UserRole:  # sort key
            return -1.0 if value is None else value
        if role == Qt.ItemDataRole.ToolTipRole:
            return r.path if key == "path" else (r.error or None)
        if role == Qt.ItemDataRole.ForegroundRole and not r.ok:
            return QColor("#b00020")
        return None

    def extend(self, results: list[engine.Result]) -> None:
        self.beginInsertRows(QModelIndex(), len(self.results), len(self.results) + len(results) - 1)
        self.results.extend(results)
        self.failed += sum(1 for r in results if not r.ok)
        self.endInsertRows()

    def clear(self, classifier: engine.Classifier | None = None) -> None:
        self.beginResetModel()
        self.results = []
        self.classifier = classifier
        self.failed = 0
        self.endResetModel()


class BatchPanel(QWidget):
    """The Batch tab: classify a folder in a pool thread with progress and Cancel, a sortable and
    filterable table of the results (``ResultsModel``), a summary line, and CSV/heatmap export in the
    background. A double-click asks the window to open the file (``open_requested``)."""

    open_requested = Signal(str)

    def __init__(self, classifier_getter, settings, parent=None) -> None:
        super().__init__(parent)
        self._classifier = classifier_getter
        self._settings = settings
        self.worker: BatchWorker | None = None
        self.table_model = ResultsModel()
        self.proxy = QSortFilterProxyModel(self)
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
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # input order until a click
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        # Fit columns to the first rows only: measuring thousands of rows froze the window ~100-170 ms.
        self.table.horizontalHeader().setResizeContentsPrecision(64)
        self.table.verticalHeader().setVisible(False)

        top = QHBoxLayout()
        for w in (self.choose, self.recursive, self.cancel_button):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.heatmaps)
        top.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)

        self.choose.clicked.connect(self.choose_folder)
        self.cancel_button.clicked.connect(self.cancel)
        self.export_button.clicked.connect(lambda: self.export_csv())
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table.doubleClicked.connect(self._open_row)

    # ---------------------------------------------------------------- running

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Classify folder", self._settings.value("last_folder", ""))
        if folder:
            self.start([Path(folder)])

    def start(self, paths: list[Path]) -> None:
        """Classify ``paths``; a batch still running is cancelled and its late results are dropped
        (every signal is checked against the worker that is current when it arrives)."""
        classifier = self._classifier()
        if classifier is None:
            QMessageBox.warning(self, "No model", "No model is loaded (File > Load model).")
            return
        if self.running:
            self.worker.cancel()
        if paths:
            self._settings.setValue("last_folder", str(paths[0] if paths[0].is_dir() else paths[0].parent))
        self.table_model.clear(classifier)
        worker = self.worker = BatchWorker(classifier, paths, self.recursive.isChecked())

        def current(slot):  # self.worker keeps the current worker (and its signals) alive
            return lambda *args: slot(*args) if worker is self.worker else None

        s = worker.signals
        s.started.connect(current(self._on_started))
        s.results.connect(current(self.table_model.extend))
        s.progress.connect(current(self._on_progress))
        s.finished.connect(current(self._on_finished))
        s.failed.connect(current(lambda msg: QMessageBox.critical(self, "Batch failed", msg)))
        self.cancel_button.setEnabled(True)
        self.choose.setEnabled(False)
        self.export_button.setEnabled(False)
        self.status.setText("Listing files…")
        QThreadPool.globalInstance().start(self.worker)

    @property
    def running(self) -> bool:
        return self.worker is not None and self.cancel_button.isEnabled()

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.status.setText("Cancelling…")

    def _on_started(self, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)
        self.status.setText(f"0 of {total} files")

    def _on_progress(self, done: int, total: int, elapsed: float) -> None:
        self.progress.setValue(done)
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        self.status.setText(f"{done} of {total} files · {rate:.1f} files/s · {left:.0f} s left · "
                            f"{self.table_model.failed} could not be read")

    def _on_finished(self, cancelled: bool) -> None:
        self.cancel_button.setEnabled(False)
        self.choose.setEnabled(True)
        self.export_button.setEnabled(bool(self.table_model.results))
        results = self.table_model.results
        tumours = sum(1 for r in results if r.ok and r.prediction == "tumor")
        failed = sum(1 for r in results if not r.ok)
        cautioned = sum(1 for r in results if r.ok and r.ood_warning)
        disagree = sum(1 for r in results if r.ok and r.models_disagree)
        prefix = "Cancelled" if cancelled else "Done"
        self.status.setText(f"{prefix}: {len(results)} files · {tumours} tumour likely · "
                            f"{len(results) - tumours - failed} no tumour found · {cautioned} with a caution "
                            f"({disagree} where the models disagree) · "
                            f"{failed} could not be read")
        self.table.resizeColumnsToContents()

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
        worker = ExportWorker(classifier, list(self.table_model.results), target,
                              target.with_name(target.stem + "-heatmaps") if self.heatmaps.isChecked() else None)
        worker.signals.done.connect(self.status.setText)
        worker.signals.failed.connect(lambda msg: QMessageBox.critical(self, "Export failed", msg))
        self.status.setText(f"Exporting to {target}…")
        QThreadPool.globalInstance().start(worker)
