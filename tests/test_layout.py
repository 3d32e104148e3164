"""Nothing clipped at 1280x800, at 1x and 2x scale: every single-line label, group title and table
header fits its widget (checked with QFontMetrics against each widget's geometry)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("onnx")

ROOT = Path(__file__).resolve().parents[1]

CHECK = r'''
import json, sys, time, tempfile
from pathlib import Path
import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QGroupBox, QLabel
from gui.app.window import MainWindow
from gui.core.engine.model import load_model
from gui.core.resources import bundled_models
from tests.series_factory import stack, write_nifti

app = QApplication([])
tmp = Path(tempfile.mkdtemp())
w = MainWindow([load_model(p) for p in bundled_models()],  # the shipped model: its long name wraps
               QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
w.resize(1280, 800)
w.show()
images, _ = stack(12, size=128)
w.open_path(str(write_nifti(tmp / "a long name of a study volume from the scanner.nii", images)))
t0 = time.time()
while time.time() - t0 < 20 and (w.study_result is None or w.result is None):
    app.processEvents(); time.sleep(0.01)
for _ in range(30):
    app.processEvents(); time.sleep(0.01)
clipped = []
for widget in w.findChildren(QLabel):
    if widget.isVisible() and not widget.wordWrap() and widget.text() and "<" not in widget.text():
        need = widget.fontMetrics().horizontalAdvance(widget.text())
        if need > widget.contentsRect().width():
            clipped.append(f"label {widget.text()!r}: {need} > {widget.contentsRect().width()}")
    if widget.isVisible() and widget.wordWrap() and widget.text():
        need = widget.heightForWidth(widget.width())
        if need > widget.height() + 1:
            clipped.append(f"wrapped label {widget.text()[:40]!r}: {need} > {widget.height()} high")
for box in w.findChildren(QGroupBox):
    if box.isVisible() and box.title():
        need = box.fontMetrics().horizontalAdvance(box.title()) + 16
        if need > box.width():
            clipped.append(f"group {box.title()!r}: {need} > {box.width()}")
w.tabs.setCurrentWidget(w.batch)
header = w.batch.table.horizontalHeader()
for k in range(header.count()):
    title = w.batch.table.model().headerData(k, Qt.Orientation.Horizontal)
    if header.fontMetrics().horizontalAdvance(str(title)) + 12 > header.sectionSize(k):
        clipped.append(f"column {title!r}: {header.sectionSize(k)}")
if header.sectionViewportPosition(header.count() - 1) > w.batch.table.viewport().width():
    clipped.append("the last column starts off-screen")
print(json.dumps(clipped))
'''


@pytest.mark.parametrize("scale", ["1", "2"])
def test_nothing_is_clipped_at_1280_by_800(scale):
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"), QT_SCALE_FACTOR=scale)
    proc = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    clipped = json.loads(proc.stdout.strip().splitlines()[-1])
    assert clipped == [], clipped
