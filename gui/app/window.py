"""The main window: viewer with result and heatmap, batch tab, menus, drag-and-drop, settings."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui.app import theme
from gui.app.batch import BatchPanel
from gui.app.dialogs import ModelCardDialog
from gui.app.formatting import app_version, elide_middle
from gui.app.panel import ResultPanel
from gui.app.strip import SliceStrip
from gui.app.viewer import ImageViewer
from gui.app.tasks import BACKGROUND, INTERACTIVE, RENDER, TaskRunner
from gui.app.workers import open_work, study_work
from gui.core.engine.classifier import Classifier
from gui.core.display import Window
from gui.core.engine.contract import DISCLAIMER
from gui.core.engine import precision as precisions
from gui.core.engine.model import Model, ModelContractError, load_model
from gui.core.names import display_path
from gui.core.engine.heatmap import COLORMAPS, blend, draw_contour, heat_to_frame
from gui.core.readers import IMAGE_SUFFIXES, Plane, Scan
from gui.core.engine.result import Result
from gui.core.engine.study import StudyRule
from gui.core.session import OpenRequest, ViewerSession
from gui.core.viewstate import dragged_window, stepped

MAX_RECENT = 10


def report_name(scan_path: Path) -> str:
    """``X-report.pdf`` for ``X.nii.gz``, ``X.nii``, ``X.dcm`` or ``X`` (every suffix of a scan dropped,
    never a UID's dotted digits: those are the name)."""
    name = scan_path.name
    for suffix in (".nii.gz", ".nii", ".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name}-report.pdf"



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
        # What is shown and which requests still count: the Qt-free rules of every transition.
        self.session = ViewerSession()
        self.rgb: np.ndarray | None = None
        self._heat: np.ndarray | None = None
        self.startup_notice: QMessageBox | None = None  # set by start-up when a bundled model is refused
        # Every piece of work off this thread, in lanes (a slice never waits behind a study or a batch),
        # its answers back through one path that drops stale ones and turns errors into messages.
        self.tasks = TaskRunner(self)
        self.tasks.failed.connect(lambda key, message: self.statusBar().showMessage(f"{key}: {message}"))
        self._window_start: Window | None = None

        self.viewer = ImageViewer()
        self.strip = SliceStrip()
        self.strip.hide()
        image_area = QWidget()
        image_layout = QVBoxLayout(image_area)
        image_layout.setContentsMargins(0, 0, 0, 0)
        image_layout.addWidget(self.viewer, 1)
        image_layout.addWidget(self.strip)
        self.panel = ResultPanel()
        # In a scroll area: on a short screen or at 200 % the panel scrolls instead of being squeezed
        # (a squeezed word-wrapped label, such as a long model name, had its second line cut off).
        panel_scroll = QScrollArea()
        panel_scroll.setWidget(self.panel)
        panel_scroll.setWidgetResizable(True)
        panel_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        panel_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        panel_scroll.setMinimumWidth(320)
        panel_scroll.setMaximumWidth(440)
        splitter = QSplitter()
        splitter.addWidget(image_area)
        splitter.addWidget(panel_scroll)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 0)
        splitter.setSizes([800, 380])
        self.batch = BatchPanel(lambda: self.classifier, self.settings, self.tasks)
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
        self.panel.contour_toggle.toggled.connect(self.render_image)
        self.panel.opacity.valueChanged.connect(self._on_opacity)
        self.panel.colormap.currentTextChanged.connect(self._on_colormap)
        self.panel.frame.valueChanged.connect(self._on_frame)
        self.viewer.slice_step.connect(lambda d: self._go_to_slice(stepped(self.panel.frame.value(), d, self._n_frames())))
        self.viewer.slice_end.connect(lambda last: self._go_to_slice(self._n_frames() - 1 if last else 0))
        self.viewer.window_drag.connect(self._on_window_drag)
        self.strip.slice_chosen.connect(self.panel.frame.setValue)
        self.panel.key_slice.clicked.connect(self._go_to_key_slice)
        self.batch.open_requested.connect(self.open_path)
        QApplication.instance().styleHints().colorSchemeChanged.connect(self._on_system_scheme)
        self._build_menus()
        geometry = self.settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 760)

    @property
    def scan(self) -> Scan | None:
        return self.session.scan

    @property
    def plane(self) -> Plane | None:
        """The shown frame as stored (window/level re-renders it)."""
        return self.session.plane

    @property
    def result(self) -> Result | None:
        return self.session.result

    @result.setter
    def result(self, value: Result | None) -> None:
        self.session.result = value

    @property
    def study_result(self) -> Result | None:
        return self.session.study.result

    @property
    def display_window(self) -> Window | None:
        """The user's window/level; None: the file's own, else the study's percentile window."""
        return self.session.display.window

    # ---------------------------------------------------------------- menus

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&Open…", self.open_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &Folder (batch)…", self.open_folder_dialog, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self._rebuild_recent()
        file_menu.addSeparator()
        self._action(file_menu, "Save Re&port (PDF)…", self.save_report, "Ctrl+P")
        self._action(file_menu, "&Load model…", self.load_model_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        view = self.menuBar().addMenu("&View")
        self._action(view, "Toggle &heatmap", self.panel.heat_toggle.toggle, "H")
        self._action(view, "Zoom &in", lambda: self.viewer.zoom(1.25), QKeySequence.StandardKey.ZoomIn)
        self._action(view, "Zoom &out", lambda: self.viewer.zoom(0.8), QKeySequence.StandardKey.ZoomOut)
        self._action(view, "&Fit to window", self.viewer.fit, "Ctrl+0")
        view.addSeparator()
        levels = view.addMenu("&Window/level (right-drag on the image)")
        self._action(levels, "&Auto (the study's percentiles)", lambda: self.set_display_window("auto"), "Ctrl+1")
        self.file_window_action = self._action(levels, "From the &file (its VOI window)",
                                               lambda: self.set_display_window("file"), "Ctrl+2")
        self.file_window_action.setEnabled(False)  # only a file with a VOI window of its own has one
        self._action(levels, "&Reset", lambda: self.set_display_window(None), "Ctrl+R")
        self._action(view, "&Mirror left-right (display only)", lambda: self._turn(0, True), "Ctrl+M")
        self._action(view, "Rotate 90° &clockwise (display only)", lambda: self._turn(1, False), "Ctrl+]")
        self._action(view, "Original orie&ntation", self._upright, "Ctrl+[")
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
        arithmetic = view.addMenu("&Arithmetic of the bundled model")
        group = QActionGroup(self)
        self.precision_actions: dict[str, QAction] = {}
        why_not = precisions.int8_unavailable()
        for choice, label in ((precisions.FP32, "&Float32 (the default)"),
                              (precisions.INT8, "&Int8 (faster; keeps nearly every answer: see Help > Model card)")):
            action = QAction(label + (f" — {why_not}" if choice == precisions.INT8 and why_not else ""), self,
                             checkable=True)
            action.setEnabled(choice == precisions.FP32 or not why_not)
            action.triggered.connect(lambda *_, c=choice: self.set_precision(c))
            group.addAction(action)
            arithmetic.addAction(action)
            self.precision_actions[choice] = action
        self._check_precision()
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
        models = "\n".join(f"• {m.name}" for m in self.models) or "• none loaded"
        QMessageBox.about(self, "About MRI Tumor Classifier",
                          f"MRI Tumor Classifier {app_version()}\n\nModels:\n{models}\n\n"
                          "It runs entirely on this computer: no file leaves it, "
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

    def open_folder_dialog(self) -> None:
        """File > Open Folder: the batch runs in the Batch tab, so that tab comes to the front."""
        self.tabs.setCurrentWidget(self.batch)
        self.batch.choose_folder()

    def open_path(self, path: str, frame: int | None = None) -> None:
        """Show a file (Open, Recent, a drop, a batch row: read and scored afresh, even the file already
        shown) or, with ``frame``, one slice of the shown file."""
        if self.classifier is None:
            QMessageBox.warning(self, "No model", "No model is loaded (File > Load model).")
            return
        self.tabs.setCurrentIndex(0)
        request = self.session.open(path, frame)
        if request.new_file:
            self._stop_study_worker()  # the old study's late answers no longer count (session tokens)
            self.statusBar().showMessage(f"Opening {display_path(Path(path).name)}…")
        self._run_open(request)

    def _run_open(self, request: OpenRequest) -> None:
        token, path = request.token, request.path
        self.tasks.submit("open", INTERACTIVE,
                          partial(open_work, self.classifier, Path(path), request.frame, request.scan, request.cached),
                          done=lambda o: self._on_opened(token, o.scan, o.plane, o.rgb, o.result),
                          error=lambda reason: self._on_failed(token, path, reason), token=token)

    def _on_opened(self, task: int, scan: Scan, plane: Plane, rgb: np.ndarray, result: Result) -> None:
        shown = self.session.opened(task, scan, plane, result)
        if shown is None:  # a newer file or slice was asked for meanwhile
            return
        if shown.new_file:
            self.viewer.has_slices = scan.n_frames > 1
            self.viewer.edges = scan.edges
            self.viewer.set_orientation(0, False)  # a mirror or turn never carries over to the next file
            self.viewer.setFocus()  # keys and the wheel go to the image, not the tab bar
            self.settings.setValue("last_folder", str(Path(scan.path).parent))
            self._add_recent(str(scan.path))  # only files that could be read
            self.setWindowTitle(f"{self._scan_title(scan)} — MRI Tumor Classifier — research use only, not for diagnosis")
        self.rgb = rgb if self.display_window is None else scan.display(plane, self.display_window)
        self._heat = heat_to_frame(result.heat, result.geometry, rgb.shape[0], rgb.shape[1]) \
            if result.ok and result.heat is not None and result.geometry is not None else None
        if result.ok:
            self.panel.show_result(result, scan, *self._rules())
        else:  # the model could not answer (an invalid value): the image stays, the reason is said
            self.panel.show_error(str(scan.path), result.error, "The model could not answer for this image")
        if shown.new_file:
            self.panel.frame.blockSignals(True)
            self.panel.frame.setRange(0, scan.n_frames - 1)
            self.panel.frame.setValue(shown.frame)
            self.panel.frame.blockSignals(False)
            self.panel.frame_box.setVisible(scan.n_frames > 1)
            self._start_study(shown.study_task)
        self.panel.show_study(scan, self.study_result, self.strip.scored if scan.is_study else 0)
        self.panel.key_slice.setVisible(self.session.key_slice() is not None and self.session.key_slice() != shown.frame)
        self.panel.frame_label.setText(f"{self.panel.frame.value()} of 0–{scan.n_frames - 1}")
        self.file_window_action.setEnabled(plane.voi is not None)
        self._update_view_text()
        self.strip.set_current(self.panel.frame.value())
        self.render_image(keep_view=not shown.new_file)
        self.statusBar().showMessage(self._models_text())

    @staticmethod
    def _scan_title(scan: Scan) -> str:
        """How the window names what it shows: the series' description where the file gives one."""
        description = scan.info.get("series description", "")
        name = elide_middle(display_path(Path(scan.path).name))
        return f"{description} ({name})" if description else name

    def _rules(self) -> tuple[StudyRule | None, float]:
        """The study rule and the decision threshold the panel words a slice's answer against."""
        if self.classifier is None:
            return None, 0.5
        return self.classifier.study_rule, self.classifier.detector.threshold

    def _on_failed(self, task: int, path: str, reason: str) -> None:
        failure = self.session.failed(task, path, reason)
        if failure is None:
            return
        name = display_path(Path(path).name)
        if failure.slice_only:  # one slice of the shown study: the file, slider, strip and study stay
            self.panel.show_error(path, reason, f"Slice {failure.frame} could not be read")
            self.panel.frame_label.setText(f"{failure.frame} of 0–{self._n_frames() - 1}")
            self.rgb, self._heat = None, None
            self.viewer.clear_picture()
            self.statusBar().showMessage(f"Slice {failure.frame} of {name} could not be read: "
                                         f"{display_path(reason.splitlines()[0])}")
            return
        self._stop_study_worker()
        self.panel.show_error(path, reason)
        self.viewer.clear()
        self.viewer.set_orientation(0, False)
        self.panel.study.hide()
        self.panel.key_slice.hide()
        self.panel.frame_box.hide()
        self.panel.show_heat_strength(None, False)
        self.panel.window_label.setText("")
        self.strip.hide()
        self.file_window_action.setEnabled(False)
        self.rgb, self._heat = None, None
        self.setWindowTitle("MRI Tumor Classifier — research use only, not for diagnosis")
        self.statusBar().showMessage(f"Could not read {name}: {display_path(reason.splitlines()[0])}")

    def _n_frames(self) -> int:
        return self.scan.n_frames if self.scan is not None else 0

    def _go_to_slice(self, index: int) -> None:
        if self.scan is not None and self.scan.n_frames > 1:
            self.panel.frame.setValue(index)

    def _go_to_key_slice(self) -> None:
        key = self.session.key_slice()
        if key is not None:
            self._go_to_slice(key)

    def _on_frame(self, index: int) -> None:
        if self.scan is not None:
            self.open_path(str(self.scan.path), frame=index)

    # ---------------------------------------------------------------- studies

    def _stop_study_worker(self) -> None:
        """Stop the scoring of the shown study between two batches (its answers are dropped by their token anyway)."""
        self.tasks.cancel("study")

    def _start_study(self, task: int | None) -> None:
        """Score every slice of the shown study as task ``task`` (None: not a study)."""
        self._stop_study_worker()
        scan = self.scan
        self.strip.setVisible(scan is not None and scan.is_study)
        if task is None or scan is None or self.classifier is None:
            return
        self.strip.start(scan.n_frames, self.classifier.study_rule.threshold, self.session.frame)
        self.tasks.submit("study", BACKGROUND, partial(study_work, self.classifier, scan),
                          done=lambda r: self._on_study_done(task, r) if r is not None else None,
                          error=lambda reason: self._on_study_failed(task, reason),
                          progress=lambda results: self._on_study_slices(task, results), token=task)

    def _on_study_slices(self, task: int, results: list) -> None:
        if not self.session.study_slices(task, results):
            return
        self.strip.set_scores([r.slice for r in results], [r.tumor_probability if r.ok else float("nan") for r in results])
        self.panel.show_study(self.scan, None, self.strip.scored)

    def _on_study_done(self, task: int, result: Result) -> None:
        current, jump = self.session.study_done(task, result)
        if not current:
            return
        self.panel.show_study(self.scan, result)
        key = self.session.key_slice()
        self.panel.key_slice.setText(f"Go to the key slice ({key})" if key is not None else "")
        self.panel.key_slice.setVisible(key is not None and jump is None and key != self.session.frame)
        if jump is not None:
            self.panel.frame.setValue(jump)  # the most suspicious slice

    def _on_study_failed(self, task: int, reason: str) -> None:
        if self.session.study.current(task) and self.scan is not None:
            self.panel.study.setText(f"Study could not be scored: {reason}")

    # ---------------------------------------------------------------- rendering

    def overlay_image(self) -> np.ndarray | None:
        if self.rgb is None or self._heat is None:
            return None
        over = blend(self.rgb, self._heat, self.panel.opacity.value() / 100, self.panel.colormap.currentText())
        return draw_contour(over, self._heat, 0.5) if self.panel.contour_toggle.isChecked() else over

    def render_image(self, *_args, keep_view: bool = True) -> None:
        if self.rgb is None:
            return
        overlay = self.overlay_image() if self.panel.heat_toggle.isChecked() else None
        self.viewer.show_rgb(self.rgb if overlay is None else overlay, keep_view=keep_view)  # no map: the image
        self.panel.show_heat_strength(self.result.heat if self.result is not None else None,
                                      self.classifier is not None and self.classifier.detector.extra_outputs.count("heatmap") > 0)

    # ---------------------------------------------------------------- window/level and the text on the image

    def set_display_window(self, preset: str | None) -> None:
        """A window/level preset: "auto" (the study's percentile window), "file" (the file's own VOI
        window, where it has one) or None (reset: the file's, else the study's). Display only."""
        if self.scan is None or self.plane is None:
            return
        if preset == "auto" and self.plane.values is not None:
            self.session.display.window = self.scan.levels(self.plane).display
        else:
            self.session.display.window = None
        self._redisplay()

    def _on_window_drag(self, dx: float, dy: float, pressed: bool) -> None:
        if self.scan is None or self.plane is None:
            return
        if pressed:
            self._window_start = self._current_window()
            return
        if self._window_start is None:
            return
        self.session.display.window = dragged_window(self._window_start, dx, dy, self._display_span())
        self._redisplay()

    def _current_window(self) -> Window:
        """The window on screen now, as centre and width: the user's, the file's own VOI window, else
        the study's percentile window (a drag starts from what is shown, so the picture never jumps)."""
        if self.plane.values is None:
            return self.display_window or Window(127.5, 255.0, "LINEAR_EXACT")
        return self.session.drag_start(self.plane.voi_window, self.scan.levels(self.plane).display)

    def _display_span(self) -> float:
        return 255.0 if self.plane.values is None else self.scan.levels(self.plane).display.width

    def _redisplay(self) -> None:
        """The shown frame again through the window in use, without decoding or classifying anything."""
        self.rgb = self.scan.display(self.plane, self.display_window)
        self.render_image()
        self._update_view_text()

    def _update_view_text(self) -> None:
        """Slice, position and window/level on the image, as DICOM viewers show them."""
        scan, k = self.scan, self.panel.frame.value()
        where = ""
        if scan is not None and scan.n_frames > 1:
            where = f"slice {k} of 0–{scan.n_frames - 1}"
            if scan.positions is not None and 0 <= k < len(scan.positions):
                where += f"  ·  {scan.positions[k]:.1f} mm"
        if self.display_window is not None:
            w = self.display_window
            level = f"W {w.width:.0f}  L {w.center:.0f}"
        elif self.plane is not None and self.plane.voi is not None:
            level = "window from the file"
        else:
            level = "auto window" if self.plane is not None and self.plane.values is not None else ""
        turned = []
        if self.viewer.flipped:
            turned.append("mirrored")
        if self.viewer.turns:
            turned.append(f"turned {90 * self.viewer.turns}°")
        top = "" if scan is None or scan.edges is not None else "orientation unknown"
        if turned:  # a display-only change is always said: with no letters, a mirror is invisible
            top = "; ".join(filter(None, [top, "display " + " and ".join(turned)]))
        self.viewer.corner_text.update(bottom_left=where, bottom_right=level, top_left=top)
        self.panel.window_label.setText(f"Window/level: {level} (right-drag on the image; View > Window/level)"
                                        if level else "")
        self.viewer.viewport().update()

    def _turn(self, quarter_turns: int, mirror: bool) -> None:
        display = self.session.turn(quarter_turns, mirror)
        self.viewer.set_orientation(display.turns, display.mirrored)
        self._update_view_text()

    def _upright(self) -> None:
        display = self.session.upright()
        self.viewer.set_orientation(display.turns, display.mirrored)
        self._update_view_text()

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
        self._use_models([model])
        return True

    @property
    def precision(self) -> str:
        """The arithmetic the loaded models run in (int8 when any of them is an int8 file)."""
        return precisions.INT8 if any(m.precision == precisions.INT8 for m in self.models) else precisions.FP32

    def _check_precision(self) -> None:
        self.precision_actions[self.precision].setChecked(True)

    def set_precision(self, choice: str) -> bool:
        """View > Arithmetic: the bundled models in float32 or int8 replace the loaded ones of their task,
        the shown image and study are answered again, and the choice is kept for the next start."""
        picked = precisions.bundled(choice)
        if picked.note:
            QMessageBox.information(self, "Arithmetic", picked.note[0].upper() + picked.note[1:] + ".")
        try:
            models = [load_model(f) for f in picked.files]
        except ModelContractError as exc:
            QMessageBox.critical(self, "Model refused", f"This file cannot be used as a model:\n\n{exc}")
            self._check_precision()
            return False
        self.settings.setValue("precision", picked.precision)
        self._use_models(models)
        return picked.precision == choice

    def _use_models(self, models: list[Model]) -> None:
        """``models`` replace the loaded ones of their tasks; every answer of the old ones is forgotten and
        the shown image (and its study) answered again by the new."""
        tasks = {m.card["task"] for m in models}
        self.models = [m for m in self.models if m.card["task"] not in tasks] + list(models)
        self.models.sort(key=lambda m: m.card["task"] != "binary")
        self.classifier = Classifier(self.models)
        self._check_precision()
        self.batch.table_model.thumbnails.clear()  # pictures drawn with the old model are not reused
        self.batch.preview_pictures.clear()
        self.statusBar().showMessage(self._models_text())
        request = self.session.model_changed()  # every answer of the old model is forgotten
        self._stop_study_worker()
        if request is not None:
            self._run_open(request)  # the shown slice, answered by the new model
            self._start_study(self.session.restart_study())  # and the study scored again by it

    def save_report(self, path: str | None = None) -> None:
        if self.result is None or self.rgb is None:
            QMessageBox.information(self, "No result", "Open an image first.")
            return
        if path is None:
            start = str(Path(str(self.settings.value("last_report_dir", Path.home()))) / report_name(self.scan.path))
            path, _ = QFileDialog.getSaveFileName(self, "Save report", start, "PDF (*.pdf)")
            if not path:
                return
        from gui.app.report import StudyReport, write_pdf_report

        self.settings.setValue("last_report_dir", str(Path(path).parent))
        study = None
        if self.scan.is_study and self.study_result is not None and self.study_result.ok:
            study = StudyReport(self.study_result, self.scan, self.strip.p.copy(), self.classifier.study_rule.threshold,
                                self.panel.opacity.value() / 100, self.panel.colormap.currentText())
        write = partial(write_pdf_report, path, self.scan.path.name, self.rgb, self.overlay_image(), self.result,
                        self.classifier, dict(self.scan.info), study, self.scan.edges, self.panel.colormap.currentText())
        # QPdfWriter and QPainter paint on a file, not a widget, which Qt allows off the GUI thread.
        self.tasks.submit("report", RENDER, lambda _ctx: write(),
                          done=lambda _v: self.statusBar().showMessage(f"Report saved to {path}"),
                          error=lambda reason: QMessageBox.critical(self, "Report not saved",
                                                                    f"Could not write {path}: {reason}"))
        self.statusBar().showMessage(f"Writing the report to {path}…")

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
        self.tasks.cancel_all()
        self.tasks.wait(5000)  # the batch and a study stop between two batches of images
        self.settings.setValue("geometry", self.saveGeometry())
        super().closeEvent(event)
