"""The result panel: the answer in words, probabilities, cautions, timing, and the heatmap and slice controls."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from gui.app import theme
from gui.app.formatting import ANSWERS, elide_middle, group_title, percent, sequence_words, type_words
from gui.app.viewer import to_qimage
from gui.core.engine.classifier import TYPE_GROUP_SUFFIX
from gui.core.engine.contract import DISCLAIMER
from gui.core.names import display_path
from gui.core.engine.heatmap import COLORMAPS, colormap_lut
from gui.core.readers import Scan
from gui.core.engine.result import Result
from gui.core.engine.study import StudyRule


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
        self.contour_toggle = QCheckBox("Outline where P(tumour) ≥ 50 %")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.legend = QLabel()
        self.legend.setScaledContents(True)
        self.legend.setFixedHeight(14)
        self.frame = QSlider(Qt.Orientation.Horizontal)
        self.frame.setTracking(True)  # live while dragged: a scored slice's answer comes from the study's cache
        self.frame.setPageStep(10)
        self.frame_label = QLabel("")
        self.key_slice = QPushButton("Go to the key slice")
        self.key_slice.setToolTip("The study's most suspicious slice; the slice you opened stays until you ask")
        self.key_slice.hide()
        self.window_label = QLabel("")
        self.window_label.setWordWrap(True)
        self.heat_strength = QLabel("")
        self.heat_strength.setWordWrap(True)
        heat_box = QGroupBox("Heatmap: where the model looked")
        hl = QFormLayout(heat_box)
        hl.addRow(self.heat_toggle)
        hl.addRow(self.contour_toggle)
        hl.addRow("Opacity", self.opacity)
        hl.addRow("Colours", self.colormap)
        legend_row = QHBoxLayout()
        legend_row.addWidget(QLabel("P 0"))
        legend_row.addWidget(self.legend, 1)
        legend_row.addWidget(QLabel("1"))
        hl.addRow(legend_row)
        hl.addRow(self.heat_strength)
        self.frame_box = QGroupBox("Slice (numbered from 0, as in the CSV)")
        self.frame_box.setToolTip("On the image: wheel or Up/Down one slice, PgUp/PgDn ten, Home/End the ends; "
                                  "Ctrl+wheel zooms, right-drag sets window/level")
        fl = QVBoxLayout(self.frame_box)
        row = QHBoxLayout()
        row.addWidget(self.frame, 1)
        row.addWidget(self.frame_label)
        fl.addLayout(row)
        fl.addWidget(self.key_slice)
        self.frame_box.hide()
        self.disclaimer = disclaimer = QLabel(DISCLAIMER)
        disclaimer.setWordWrap(True)
        self.apply_theme()

        layout = QVBoxLayout(self)
        for w in (self.study, self.answer, self.detail, self.warning, self.bars_box, self.timing, heat_box, self.frame_box,
                  self.window_label):
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
            lines.append(f"Most likely type, if tumour: <b>{html.escape(type_words(r.tumor_type))}</b> "
                         f"({percent(r.tumor_type_confidence)})")
        if scan is not None:
            name = display_path(scan.path.name)
            series = scan.info.get("series description", "")
            named = [html.escape(series)] if series else []
            if r.sequence:
                named.append(f"sequence {sequence_words(r)}")
            if named:
                lines.append(" · ".join(named))
            lines.append(f"<small>{html.escape(elide_middle(name))} · {scan.info.get('format', '')} · "
                         f"{scan.info.get('size', '')}</small>")
            self.detail.setToolTip(name)
        self.detail.setText("<br>".join(lines))
        self.warning.setText(f"⚠ Caution — {r.ood_warning}. Treat this answer as uncertain." if r.ood_warning else "")
        while self.bars.rowCount():
            self.bars.removeRow(0)
        for group, probs in r.probabilities.items():
            if group.endswith(TYPE_GROUP_SUFFIX) and r.prediction != "tumor":
                continue  # a type is an answer only when the answer is "tumour"
            header = QLabel(f"<b>{group_title(group)}</b>")
            header.setWordWrap(True)
            self.bars.addRow(header)
            for label, p in probs.items():
                bar = QProgressBar()
                bar.setRange(0, 1000)
                bar.setValue(int(round(1000 * p)))
                bar.setFormat(percent(p))
                self.bars.addRow(type_words(label, short=True) if group.endswith(TYPE_GROUP_SUFFIX) else label, bar)
        n = len([g for g in r.probabilities if not g.endswith(TYPE_GROUP_SUFFIX)])  # a type head is no extra model
        self.timing.setText(f"Classified in {1000 * r.seconds:.0f} ms ({n} model{'s' if n > 1 else ''}, heatmap included)")

    def show_heat_strength(self, heat: np.ndarray | None, is_probability: bool) -> None:
        """The map's peak, in words: its colours are P(tumour) at each place (a multi-task model),
        or, for a class activation map, evidence relative to its own strongest place."""
        if heat is None or not np.size(heat):
            self.heat_strength.setText("")
        elif is_probability:
            self.heat_strength.setText(f"Colour = P(tumour) at each place; transparent where it is 0. "
                                       f"Strongest place: <b>{percent(float(np.max(heat)))}</b>.")
        else:
            self.heat_strength.setText("Colour = evidence relative to the strongest place (1).")

    def show_error(self, path: str, reason: str, title: str = "Could not read this file") -> None:
        self.answer.setText(title)
        self.answer.setStyleSheet(f"font-size: 18px; font-weight: bold; color: {theme.colour('error')};")
        name = display_path(Path(path).name)
        self.detail.setText(html.escape(f"{elide_middle(name)}: {display_path(reason)}"))
        self.detail.setToolTip(name)
        self.warning.setText("")
        self.timing.setText("")
        while self.bars.rowCount():
            self.bars.removeRow(0)
