"""The main window: viewer with result and heatmap, batch tab, menus, drag-and-drop, settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QThreadPool
from PySide6.QtGui import QAction, QKeySequence, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QMainWindow, QMessageBox, QProgressBar, QSlider, QSplitter, QTabWidget, QVBoxLayout,
                               QWidget)

from gui.app.batch import BatchPanel
from gui.app.dialogs import ModelCardDialog
from gui.app.formatting import ANSWER_COLOURS, ANSWERS, group_title, percent
from gui.app.viewer import ImageViewer, to_qimage
from gui.app.workers import OpenWorker, ReportWorker
from gui.core.engine import TYPE_GROUP_SUFFIX, Classifier
from gui.core.result import Result
from gui.core.imaging import IMAGE_SUFFIXES, Scan
from gui.core.model import DISCLAIMER, Model, ModelContractError, load_model
from gui.core.overlay import COLORMAPS, blend, colormap_lut, heat_to_frame

MAX_RECENT = 10



class ResultPanel(QWidget):
    """The answer in words, the probabilities, timing, warnings and the heatmap controls."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.answer = QLabel("Open or drop a brain MRI image")
        self.answer.setWordWrap(True)
        self.answer.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #8a4b00; font-weight: bold;")
        self.bars_box = QGroupBox("Class probabilities")
        self.bars = QFormLayout(self.bars_box)
        self.timing = QLabel("")
        self.timing.setStyleSheet("color: grey;")

        self.heat_toggle = QCheckBox("Show heatmap (H)")
        self.heat_toggle.setChecked(True)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.legend = QLabel()
        self.legend.setScaledContents(True)
        self.legend.setFixedHeight(14)
        self.frame = QSlider(Qt.Orientation.Horizontal)
        self.frame.setTracking(False)
        self.frame_label = QLabel("")
        heat_box = QGroupBox("Heatmap: where the model looked")
        hl = QFormLayout(heat_box)
        hl.addRow(self.heat_toggle)
        hl.addRow("Opacity", self.opacity)
        hl.addRow("Colours", self.colormap)
        legend_row = QHBoxLayout()
        legend_row.addWidget(QLabel("low"))
        legend_row.addWidget(self.legend, 1)
        legend_row.addWidget(QLabel("high"))
        hl.addRow(legend_row)
        self.frame_box = QGroupBox("Frame / slice")
        fl = QHBoxLayout(self.frame_box)
        fl.addWidget(self.frame, 1)
        fl.addWidget(self.frame_label)
        self.frame_box.hide()
        disclaimer = QLabel(DISCLAIMER)
        disclaimer.setWordWrap(True)
        disclaimer.setStyleSheet("color: #b00020; font-weight: bold;")

        layout = QVBoxLayout(self)
        for w in (self.answer, self.detail, self.warning, self.bars_box, self.timing, heat_box, self.frame_box):
            layout.addWidget(w)
        layout.addStretch(1)
        layout.addWidget(disclaimer)
        self.colormap.currentTextChanged.connect(self._update_legend)

    def _update_legend(self, name: str) -> None:
        lut = np.ascontiguousarray(np.repeat(colormap_lut(name)[None], 8, axis=0))
        self.legend.setPixmap(QPixmap.fromImage(to_qimage(lut)))

    def show_result(self, r: Result, scan: Scan | None) -> None:
        text, colour = ANSWERS.get(r.prediction, ""), ANSWER_COLOURS.get(r.prediction, "black")
        self.answer.setText(text)
        self.answer.setStyleSheet(f"font-size: 22px; font-weight: bold; color: {colour};")
        lines = [f"Tumour probability: <b>{percent(r.tumor_probability)}</b>"]
        if r.tumor_type:
            lines.append(f"Most likely type, if tumour: <b>{r.tumor_type}</b> ({percent(r.tumor_type_confidence)})")
        if scan is not None:
            lines.append(f"<small>{scan.path.name} · {scan.info.get('format', '')} · {scan.info.get('size', '')}</small>")
        self.detail.setText("<br>".join(lines))
        self.warning.setText(f"⚠ Caution — {r.ood_warning}. Treat this answer as uncertain." if r.ood_warning else "")
        while self.bars.rowCount():
            self.bars.removeRow(0)
        for group, probs in r.probabilities.items():
            header = QLabel(f"<b>{group_title(group)}</b>")
            header.setWordWrap(True)
            self.bars.addRow(header)
            for label, p in probs.items():
                bar = QProgressBar()
                bar.setRange(0, 1000)
                bar.setValue(int(round(1000 * p)))
                bar.setFormat(percent(p))
                self.bars.addRow(label, bar)
        n = len([g for g in r.probabilities if not g.endswith(TYPE_GROUP_SUFFIX)])  # a type head is no extra model
        self.timing.setText(f"Classified in {1000 * r.seconds:.0f} ms ({n} model{'s' if n > 1 else ''}, heatmap included)")

    def show_error(self, path: str, reason: str) -> None:
        self.answer.setText("Could not read this file")
        self.answer.setStyleSheet("font-size: 18px; font-weight: bold; color: #b00020;")
        self.detail.setText(f"{Path(path).name}: {reason}")
        self.warning.setText("")
        self.timing.setText("")
        while self.bars.rowCount():
            self.bars.removeRow(0)


class MainWindow(QMainWindow):
    """The app's one window: an Image tab (viewer with heatmap, result panel, slice slider) and a
    Batch tab. It only wires the Qt-free core to the screen: opening, classifying and exporting run
    in pool threads (``gui.app.workers``), and every answer that arrives is checked against the
    newest request before it is shown."""

    def __init__(self, models: list[Model], settings: QSettings | None = None) -> None:
        super().__init__()
        self.setWindowTitle("MRI Tumor Classifier — research use only, not for diagnosis")
        self.setAcceptDrops(True)
        self.settings = settings or QSettings()
        self.models = models
        self.classifier: Classifier | None = Classifier(models) if models else None
        self.scan: Scan | None = None
        self.rgb: np.ndarray | None = None
        self.result: Result | None = None
        self._open_task = 0  # number of the newest open/slice request; older answers are dropped
        self._report_task = 0
        self._heat: np.ndarray | None = None
        self.startup_notice: QMessageBox | None = None  # set by start-up when a bundled model is refused
        self.pool = QThreadPool.globalInstance()

        self.viewer = ImageViewer()
        self.panel = ResultPanel()
        self.panel.setMinimumWidth(320)
        self.panel.setMaximumWidth(440)
        splitter = QSplitter()
        splitter.addWidget(self.viewer)
        splitter.addWidget(self.panel)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 0)
        splitter.setSizes([800, 380])
        self.batch = BatchPanel(lambda: self.classifier, self.settings)
        self.tabs = QTabWidget()
        self.tabs.addTab(splitter, "Image")
        self.tabs.addTab(self.batch, "Batch")
        self.setCentralWidget(self.tabs)
        self.statusBar().showMessage(self._models_text())

        self.panel.opacity.setValue(int(self.settings.value("overlay_opacity", 45)))
        cmap = str(self.settings.value("colormap", "inferno"))
        self.panel.colormap.setCurrentText(cmap if cmap in COLORMAPS else "inferno")
        self.panel._update_legend(self.panel.colormap.currentText())
        self.panel.heat_toggle.toggled.connect(self.render_image)
        self.panel.opacity.valueChanged.connect(self._on_opacity)
        self.panel.colormap.currentTextChanged.connect(self._on_colormap)
        self.panel.frame.valueChanged.connect(self._on_frame)
        self.batch.open_requested.connect(self.open_path)
        self._build_menus()
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 760)

    # ---------------------------------------------------------------- menus

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &Folder (batch)…", self.batch.choose_folder, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._rebuild_recent()
        file_menu.addSeparator()
        self._action(file_menu, "Save &Report (PDF)…", self.save_report, "Ctrl+P")
        self._action(file_menu, "&Load model…", self.load_model_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        view = self.menuBar().addMenu("&View")
        self._action(view, "Toggle &heatmap", self.panel.heat_toggle.toggle, "H")
        self._action(view, "Zoom &in", lambda: self.viewer.zoom(1.25), QKeySequence.StandardKey.ZoomIn)
        self._action(view, "Zoom &out", lambda: self.viewer.zoom(0.8), QKeySequence.StandardKey.ZoomOut)
        self._action(view, "&Fit to window", self.viewer.fit, "Ctrl+0")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Model card…", lambda: ModelCardDialog(self.models, self).exec())
        self._action(help_menu, "&About", self.about)

    def _action(self, menu, text, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda *_: slot())
        menu.addAction(action)
        self.addAction(action)
        return action

    def _models_text(self) -> str:
        if not self.models:
            return "No model loaded: File > Load model. " + DISCLAIMER
        return "Models: " + "; ".join(m.name for m in self.models) + ". " + DISCLAIMER

    def about(self) -> None:
        QMessageBox.about(self, "About MRI Tumor Classifier",
                          "MRI Tumor Classifier runs entirely on this computer: no file leaves it, "
                          f"no network is used, and scans are never modified.\n\n{DISCLAIMER}")

    # ---------------------------------------------------------------- opening

    def open_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open MRI images", str(self.settings.value("last_folder", "")),
            f"Images ({' '.join('*' + s for s in IMAGE_SUFFIXES)} *);;All files (*)")
        self.open_paths([Path(f) for f in files])

    def open_paths(self, paths: list[Path]) -> None:
        """One file: show it. Several files or any folder: classify them in the Batch tab."""
        if not paths:
            return
        if len(paths) == 1 and not paths[0].is_dir():
            self.open_path(str(paths[0]))
        else:
            self.tabs.setCurrentWidget(self.batch)
            self.batch.start(paths)

    def open_path(self, path: str, frame: int | None = None) -> None:
        if self.classifier is None:
            QMessageBox.warning(self, "No model", "No model is loaded (File > Load model).")
            return
        self.tabs.setCurrentIndex(0)
        scan = self.scan if (frame is not None and self.scan is not None and str(self.scan.path) == path) else None
        self._open_task += 1
        worker = OpenWorker(self.classifier, Path(path), frame, scan, task=self._open_task)
        worker.signals.opened.connect(self._on_opened)
        worker.signals.failed.connect(self._on_failed)
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        self.pool.start(worker)
        self.settings.setValue("last_folder", str(Path(path).parent))
        self._add_recent(path)

    def _on_opened(self, task: int, scan: Scan, rgb: np.ndarray, result: Result) -> None:
        if task != self._open_task:  # a newer file or slice was asked for meanwhile
            return
        new_file = self.scan is None or self.scan.path != scan.path
        self.scan, self.rgb, self.result = scan, rgb, result
        self._heat = heat_to_frame(result.heat, result.geometry, rgb.shape[0], rgb.shape[1])
        self.panel.show_result(result, scan)
        if new_file:
            self.panel.frame.blockSignals(True)
            self.panel.frame.setRange(0, scan.n_frames - 1)
            self.panel.frame.setValue(scan.default_frame)
            self.panel.frame.blockSignals(False)
            self.panel.frame_box.setVisible(scan.n_frames > 1)
        self.panel.frame_label.setText(f"{self.panel.frame.value() + 1} / {scan.n_frames}")
        self.render_image(keep_view=not new_file)
        self.statusBar().showMessage(self._models_text())

    def _on_failed(self, task: int, path: str, reason: str) -> None:
        if task != self._open_task:
            return
        self.panel.show_error(path, reason)
        self.viewer.clear()
        self.scan = self.rgb = self.result = None
        self.statusBar().showMessage(f"Could not read {Path(path).name}: {reason.splitlines()[0]}")

    def _on_frame(self, index: int) -> None:
        if self.scan is not None:
            self.open_path(str(self.scan.path), frame=index)

    # ---------------------------------------------------------------- rendering

    def overlay_image(self) -> np.ndarray | None:
        if self.rgb is None or self._heat is None:
            return None
        return blend(self.rgb, self._heat, self.panel.opacity.value() / 100, self.panel.colormap.currentText())

    def render_image(self, *_args, keep_view: bool = True) -> None:
        if self.rgb is None:
            return
        shown = self.overlay_image() if self.panel.heat_toggle.isChecked() else self.rgb
        self.viewer.show_rgb(shown, keep_view=keep_view)

    def _on_opacity(self, value: int) -> None:
        self.settings.setValue("overlay_opacity", value)
        self.render_image()

    def _on_colormap(self, name: str) -> None:
        self.settings.setValue("colormap", name)
        self.render_image()

    # ---------------------------------------------------------------- recent files

    def _recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _add_recent(self, path: str) -> None:
        recent = [path] + [p for p in self._recent() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for p in self._recent():
            action = self.recent_menu.addAction(p)
            action.triggered.connect(lambda *_, p=p: self.open_path(p))
        self.recent_menu.setEnabled(bool(self._recent()))

    # ---------------------------------------------------------------- models and report

    def load_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load ONNX model", "", "ONNX models (*.onnx);;All files (*)")
        if path:
            self.load_model_file(path)

    def load_model_file(self, path: str) -> bool:
        """Load a model that passes the contract check; it replaces the loaded one of the same task."""
        try:
            model = load_model(path)
        except ModelContractError as exc:
            QMessageBox.critical(self, "Model refused", f"This file cannot be used as a model:\n\n{exc}")
            return False
        self.models = [m for m in self.models if m.card["task"] != model.card["task"]] + [model]
        self.models.sort(key=lambda m: m.card["task"] != "binary")
        self.classifier = Classifier(self.models)
        self.statusBar().showMessage(self._models_text())
        if self.scan is not None:
            self.open_path(str(self.scan.path), frame=self.panel.frame.value())
        return True

    def save_report(self, path: str | None = None) -> None:
        if self.result is None or self.rgb is None:
            QMessageBox.information(self, "No result", "Open an image first.")
            return
        if path is None:
            start = str(Path(str(self.settings.value("last_report_dir", Path.home()))) / f"{self.scan.path.stem}-report.pdf")
            path, _ = QFileDialog.getSaveFileName(self, "Save report", start, "PDF (*.pdf)")
            if not path:
                return
        from functools import partial

        from gui.app.report import write_pdf_report

        self.settings.setValue("last_report_dir", str(Path(path).parent))
        self._report_task += 1  # a newer report request supersedes the message of an older one
        worker = ReportWorker(self._report_task, path, partial(
            write_pdf_report, path, self.scan.path.name, self.rgb, self.overlay_image(), self.result, self.classifier,
            dict(self.scan.info)))
        # Bound methods, not lambdas: a queued signal reaches a receiver that outlives the worker.
        worker.signals.done.connect(self._on_report_done)
        worker.signals.failed.connect(self._on_report_failed)
        self.statusBar().showMessage(f"Writing the report to {path}…")
        self.pool.start(worker)

    def _on_report_done(self, task: int, path: str) -> None:
        if task == self._report_task:
            self.statusBar().showMessage(f"Report saved to {path}")

    def _on_report_failed(self, task: int, message: str) -> None:
        if task == self._report_task:
            QMessageBox.critical(self, "Report not saved", message)

    # ---------------------------------------------------------------- drag and drop, closing

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.batch.running:
            self.batch.cancel()
        self.pool.waitForDone(5000)  # the batch stops between two batches of images
        self.settings.setValue("geometry", self.saveGeometry())
        super().closeEvent(event)
