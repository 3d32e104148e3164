"""The batch's export, offscreen: the CSV and the heatmaps fail separately and say which failed; a
scan that can no longer be read is named, not skipped in silence."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")
pytest.importorskip("onnx")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from gui.app.window import MainWindow  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402


@pytest.fixture
def finished_batch(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "critical", lambda *a, **k: None)
    scans = tmp_path / "scans"
    scans.mkdir()
    for k in range(3):
        Image.fromarray(np.full((64, 64), 60 + 70 * k, np.uint8)).save(scans / f"s{k}.png")
    w = MainWindow([load_model(make_contract_model(tmp_path / "m.onnx", multitask=True))],
                   QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    w.batch.start([scans])
    qtbot.waitUntil(lambda: not w.batch.running and len(w.batch.table_model.results) == 3, timeout=20000)
    return w, scans


def test_an_unreadable_scan_is_named_and_the_rest_exported(finished_batch, qtbot, tmp_path):
    w, scans = finished_batch
    (scans / "s1.png").write_bytes(b"gone")
    w.batch.heatmaps.setChecked(True)
    w.batch.export_csv(str(tmp_path / "out.csv"))
    qtbot.waitUntil(lambda: w.batch.status.text().startswith("Exported"), timeout=10000)
    assert "2 heatmaps" in w.batch.status.text() and "s1.png" in w.batch.status.text()
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(rows) == 3
    named = {Path(r["path"]).name: r["heatmap"] for r in rows}
    assert named["s1.png"] == "" and all(Path(named[n]).is_file() for n in named if n != "s1.png")


def test_heatmaps_that_cannot_be_written_are_not_reported_as_the_csv(finished_batch, qtbot, tmp_path):
    w, _ = finished_batch
    (tmp_path / "out-heatmaps").write_text("a file where the heatmap folder should go")
    w.batch.heatmaps.setChecked(True)
    w.batch.export_csv(str(tmp_path / "out.csv"))
    qtbot.waitUntil(lambda: "Heatmaps could not be written" in w.batch.status.text(), timeout=10000)
    assert (tmp_path / "out.csv").exists() and "Could not write the CSV" not in w.batch.status.text()


def test_a_csv_that_cannot_be_written_says_so(finished_batch, qtbot, tmp_path):
    w, _ = finished_batch
    w.batch.export_csv(str(tmp_path / "no such folder" / "out.csv"))
    qtbot.waitUntil(lambda: w.batch.status.text().startswith("Could not write the CSV"), timeout=10000)
