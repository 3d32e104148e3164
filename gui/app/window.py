"""The main window: viewer with result and heatmap, batch tab, menus, drag-and-drop, settings."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QThreadPool
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QSlider,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui.app import theme
from gui.app.batch import BatchPanel
from gui.app.dialogs import ModelCardDialog
from gui.app.formatting import ANSWERS, group_title, percent
from gui.app.strip import SliceStrip
from gui.app.viewer import ImageViewer, to_qimage
from gui.app.workers import OpenWorker, ReportWorker, StudyWorker
from gui.core.classifier import TYPE_GROUP_SUFFIX, Classifier
from gui.core.model import DISCLAIMER, Model, ModelContractError, load_model
from gui.core.names import display_path
from gui.core.overlay import COLORMAPS, blend, colormap_lut, heat_to_frame
from gui.core.readers import IMAGE_SUFFIXES, Scan
from gui.core.result import Result
from gui.core.study import StudyRule

MAX_RECENT = 10



class ResultPanel(QWidget):
    """The answer in words, the probabilities, timing, warnings and the heatmap controls."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.study = QLabel("")
        self.study.setWordWrap(True)
        self.study.hide()
        self.answer = QLabel("Open or drop a brain MRI image")
        self.answer.setWordWrap(True)
        self.answer.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.bars_box = QGroupBox("Class probabilities")
        self.bars = QFormLayout(self.bars_box)
        self.timing = QLabel("")

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
        self.frame_box = QGroupBox("Slice (numbered from 0, as in the CSV)")
        fl = QHBoxLayout(self.frame_box)
        fl.addWidget(self.frame, 1)
        fl.addWidget(self.frame_label)
        self.frame_box.hide()
        self.disclaimer = disclaimer = QLabel(DISCLAIMER)
        disclaimer.setWordWrap(True)
        self.apply_theme()

        layout = QVBoxLayout(self)
        for w in (self.study, self.answer, self.detail, self.warning, self.bars_box, self.timing, heat_box, self.frame_box):
            layout.addWidget(w)
        layout.addStretch(1)
        layout.addWidget(disclaimer)
        self.colormap.currentTextChanged.connect(self._update_legend)

    def apply_theme(self) -> None:
        """Colours of the theme in use (set again when the user switches theme)."""
        self.warning.setStyleSheet(f"color: {theme.colour('warning')}; font-weight: bold;")
        self.timing.setStyleSheet(f"color: {theme.colour('muted')};")
        self.disclaimer.setStyleSheet(f"color: {theme.colour('error')}; font-weight: bold;")

    def _update_legend(self, name: str) -> None:
        lut = np.ascontiguousarray(np.repeat(colormap_lut(name)[None], 8, axis=0))
        self.legend.setPixmap(QPixmap.fromImage(to_qimage(lut)))

    def show_study(self, scan: Scan, study: Result | None, scored: int = 0) -> None:
        """The study's verdict above the current slice's own answer (or the scoring progress)."""
        self.study.setVisible(scan.is_study)
        if not scan.is_study:
            return
        n = scan.n_frames
        if study is None:
            self.study.setText(f"<b>Study of {n} slices:</b> scoring every slice… {scored} of {n} done. "
                               "The answer below is the shown slice's.")
            return
        if not study.ok:
            self.study.setText(f"<b>Study of {n} slices:</b> could not be scored: {study.error}")
            return
        colour = theme.answer_colour(study.prediction)
        where = (f"in slices <b>{study.tumor_slices.replace(';', ', ')}</b>" if study.tumor_slices else
                 f"in none of the {n} slices")
        caution = f"<br>⚠ {study.ood_warning}" if study.ood_warning else ""
        self.study.setText(
            f"<span style='font-size: 17px; font-weight: bold; color: {colour};'>Study: "
            f"{ANSWERS.get(study.prediction, '')}</span> (tumour probability {percent(study.tumor_probability)})<br>"
            f"Tumour evidence {where}; most suspicious: slice <b>{study.max_slice}</b> of 0–{n - 1}.{caution}")

    def show_result(self, r: Result, scan: Scan | None, rule: StudyRule | None = None, threshold: float = 0.5) -> None:
        """A file's or slice's own answer. In a study judged by a rule other than "any slice at the
        decision threshold", the slice line gives its probability against the study's threshold
        instead of an answer of its own, so it cannot contradict the study's verdict."""
        text, colour = ANSWERS.get(r.prediction, ""), theme.answer_colour(r.prediction)
        if scan is not None and scan.is_study:
            if rule is not None and (rule.run, rule.threshold) != (1, threshold):
                side = "at or above" if (r.tumor_probability or 0) >= rule.threshold else "below"
                text, colour = f"This slice: {side} the study's {percent(rule.threshold)}", theme.colour("muted")
            else:
                text = f"This slice: {text}"
        self.answer.setText(text)
        self.answer.setStyleSheet(f"font-size: 22px; font-weight: bold; color: {colour};")
        lines = [f"Tumour probability: <b>{percent(r.tumor_probability)}</b>"]
        if r.tumor_type:
            lines.append(f"Most likely type, if tumour: <b>{r.tumor_type}</b> ({percent(r.tumor_type_confidence)})")
        if scan is not None:
            lines.append(f"<small>{html.escape(display_path(scan.path.name))} · {scan.info.get('format', '')} · {scan.info.get('size', '')}</small>")
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
        self.answer.setStyleSheet(f"font-size: 18px; font-weight: bold; color: {theme.colour('error')};")
        self.detail.setText(f"{display_path(Path(path).name)}: {display_path(reason)}")
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
        # The theme first: widgets built below take their colours from it.
        self.theme_choice = str(self.settings.value("theme", "system"))
        if self.theme_choice not in theme.CHOICES:
            self.theme_choice = "system"
        self.theme_name = theme.apply(QApplication.instance(), self.theme_choice)
        self.models = models
        self.classifier: Classifier | None = Classifier(models) if models else None
        self.scan: Scan | None = None
        self.rgb: np.ndarray | None = None
        self.result: Result | None = None
        self._open_task = 0  # number of the newest open/slice request; older answers are dropped
        self._study_task = 0  # number of the newest study scoring; older ones are cancelled and dropped
        self._study_worker: StudyWorker | None = None
        self.study_result: Result | None = None
        self._slice_moved = False  # the user chose a slice while the study was scored: do not jump
        self._jump_target: int | None = None  # the slice the window itself moved to
        self._report_task = 0
        self._heat: np.ndarray | None = None
        self.startup_notice: QMessageBox | None = None  # set by start-up when a bundled model is refused
        self.pool = QThreadPool.globalInstance()

        self.viewer = ImageViewer()
        self.strip = SliceStrip()
        self.strip.hide()
        image_area = QWidget()
        image_layout = QVBoxLayout(image_area)
        image_layout.setContentsMargins(0, 0, 0, 0)
        image_layout.addWidget(self.viewer, 1)
        image_layout.addWidget(self.strip)
        self.panel = ResultPanel()
        self.panel.setMinimumWidth(320)
        self.panel.setMaximumWidth(440)
        splitter = QSplitter()
        splitter.addWidget(image_area)
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
        self.strip.slice_chosen.connect(self.panel.frame.setValue)
        self.batch.open_requested.connect(self.open_path)
        QApplication.instance().styleHints().colorSchemeChanged.connect(self._on_system_scheme)
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
        view.addSeparator()
        themes = view.addMenu("&Theme")
        group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for choice, label in (("system", "Follow the &system"), ("light", "&Light"), ("dark", "&Dark (reading room)")):
            action = QAction(label, self, checkable=True)
            action.triggered.connect(lambda *_, c=choice: self.set_theme(c))
            group.addAction(action)
            themes.addAction(action)
            self.theme_actions[choice] = action
        self.theme_actions[self.theme_choice].setChecked(True)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Model card…", lambda: ModelCardDialog(self.models, self).exec())
        self._action(help_menu, "&About", self.about)

    def set_theme(self, choice: str) -> None:
        """Switch theme ("system", "light", "dark"), save the choice, and repaint what carries colours."""
        self.theme_choice = choice
        self.settings.setValue("theme", choice)
        self.theme_name = theme.apply(QApplication.instance(), choice)
        self.theme_actions[choice].setChecked(True)
        self.panel.apply_theme()
        if self.result is not None and self.scan is not None:
            self.panel.show_result(self.result, self.scan, *self._rules())
            self.panel.show_study(self.scan, self.study_result, self.strip.scored)
        self.strip.update()
        self.batch.update_summary()
        self.batch.table.viewport().update()

    def _on_system_scheme(self, *_args) -> None:
        if self.theme_choice == "system":
            self.set_theme("system")

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
        self.statusBar().showMessage(f"Opening {display_path(Path(path).name)}…")
        self.pool.start(worker)
        self.settings.setValue("last_folder", str(Path(path).parent))
        self._add_recent(path)

    def _on_opened(self, task: int, scan: Scan, rgb: np.ndarray, result: Result) -> None:
        if task != self._open_task:  # a newer file or slice was asked for meanwhile
            return
        new_file = self.scan is None or self.scan.path != scan.path
        self.scan, self.rgb, self.result = scan, rgb, result
        self._heat = heat_to_frame(result.heat, result.geometry, rgb.shape[0], rgb.shape[1])
        self.panel.show_result(result, scan, *self._rules())
        if new_file:
            self.panel.frame.blockSignals(True)
            self.panel.frame.setRange(0, scan.n_frames - 1)
            self.panel.frame.setValue(scan.default_frame)
            self.panel.frame.blockSignals(False)
            self.panel.frame_box.setVisible(scan.n_frames > 1)
            self._start_study(scan)
        self.panel.show_study(scan, self.study_result, self.strip.scored if scan.is_study else 0)
        self.panel.frame_label.setText(f"{self.panel.frame.value()} of 0–{scan.n_frames - 1}")
        self.strip.set_current(self.panel.frame.value())
        self.render_image(keep_view=not new_file)
        self.statusBar().showMessage(self._models_text())

    def _rules(self) -> tuple[StudyRule | None, float]:
        """The study rule and the decision threshold the panel words a slice's answer against."""
        if self.classifier is None:
            return None, 0.5
        return self.classifier.study_rule, self.classifier.detector.threshold

    def _on_failed(self, task: int, path: str, reason: str) -> None:
        if task != self._open_task:
            return
        self.panel.show_error(path, reason)
        self.viewer.clear()
        self.panel.study.hide()
        self.strip.hide()
        if self._study_worker is not None:
            self._study_worker.cancel()
            self._study_worker = None
        self.scan = self.rgb = self.result = None
        self.statusBar().showMessage(f"Could not read {display_path(Path(path).name)}: {display_path(reason.splitlines()[0])}")

    def _on_frame(self, index: int) -> None:
        if index != self._jump_target:
            self._slice_moved = True  # slider, keys or strip: the user's choice wins over the jump
        if self.scan is not None:
            self.open_path(str(self.scan.path), frame=index)

    # ---------------------------------------------------------------- studies

    def _start_study(self, scan: Scan) -> None:
        """A new file: cancel the scoring of the previous study; score every slice of this one."""
        if self._study_worker is not None:
            self._study_worker.cancel()
            self._study_worker = None
        self._study_task += 1
        self.study_result = None
        self._slice_moved = False
        self._jump_target = None
        self.strip.setVisible(scan.is_study)
        if not scan.is_study or self.classifier is None:
            return
        self.strip.start(scan.n_frames, self.classifier.study_rule.threshold, scan.default_frame)
        worker = StudyWorker(self.classifier, scan, self._study_task)
        worker.signals.slices.connect(self._on_study_slices)
        worker.signals.done.connect(self._on_study_done)
        worker.signals.failed.connect(self._on_study_failed)
        self._study_worker = worker
        self.pool.start(worker)

    def _on_study_slices(self, task: int, slices: list, probabilities: list) -> None:
        if task != self._study_task or self.scan is None:
            return
        self.strip.set_scores(slices, probabilities)
        self.panel.show_study(self.scan, None, self.strip.scored)

    def _on_study_done(self, task: int, result: Result) -> None:
        if task != self._study_task or self.scan is None:
            return
        self.study_result = result
        self._study_worker = None
        self.panel.show_study(self.scan, result)
        if result.ok and result.max_slice is not None and not self._slice_moved:
            self._jump_target = result.max_slice  # jump to the most suspicious slice
            self.panel.frame.setValue(result.max_slice)

    def _on_study_failed(self, task: int, reason: str) -> None:
        if task == self._study_task and self.scan is not None:
            self._study_worker = None
            self.panel.study.setText(f"Study could not be scored: {reason}")

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
            if self.scan.is_study:
                self._start_study(self.scan)  # the study's slices are scored again by the new model
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

        from gui.app.report import StudyReport, write_pdf_report

        self.settings.setValue("last_report_dir", str(Path(path).parent))
        self._report_task += 1  # a newer report request supersedes the message of an older one
        study = None
        if self.scan.is_study and self.study_result is not None and self.study_result.ok:
            study = StudyReport(self.study_result, self.scan, self.strip.p.copy(), self.classifier.study_rule.threshold,
                                self.panel.opacity.value() / 100, self.panel.colormap.currentText())
        worker = ReportWorker(self._report_task, path, partial(
            write_pdf_report, path, self.scan.path.name, self.rgb, self.overlay_image(), self.result, self.classifier,
            dict(self.scan.info), study))
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
        if self._study_worker is not None:
            self._study_worker.cancel()
        self.pool.waitForDone(5000)  # the batch stops between two batches of images
        self.settings.setValue("geometry", self.saveGeometry())
        super().closeEvent(event)
