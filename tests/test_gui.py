"""The window, offscreen: open, heatmap, drop, batch with a bad file, cancel, bad model, report."""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("onnx")

from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

from gui.app.window import MainWindow  # noqa: E402
from gui.core.engine import stream  # noqa: E402
from gui.core.engine.classifier import Classifier  # noqa: E402
from gui.core.records import csvout  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from tests.conftest import brain_like
from tests.onnx_factory import make_contract_model  # noqa: E402

ARTIFACTS = Path(os.environ.get("MRI_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


@pytest.fixture
def window(qtbot, tmp_path):
    models = [load_model(make_contract_model(tmp_path / "det.onnx", "binary")),
              load_model(make_contract_model(tmp_path / "type.onnx", "tumor-type"))]
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(models, settings)
    qtbot.addWidget(w)
    w.resize(1100, 720)
    w.show()
    return w


@pytest.fixture
def scans(tmp_path) -> Path:
    d = tmp_path / "scans dir ü"
    d.mkdir()
    brain_like(d / "tumour.png", True)
    brain_like(d / "clear.jpg", False)
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    return d


def test_open_file_shows_answer_bars_and_heatmap(window, qtbot, scans):
    window.open_path(str(scans / "tumour.png"))
    qtbot.waitUntil(lambda: window.result is not None, timeout=10000)
    assert window.panel.answer.text() == "Tumour likely"
    assert "Tumour probability" in window.panel.detail.text()
    assert window.panel.bars.rowCount() == 2 + 2 + 4  # a title row per model, a bar per label
    over = window.overlay_image()
    assert over.shape == window.rgb.shape and not np.array_equal(over, window.rgb)
    window.panel.heat_toggle.setChecked(False)
    window.panel.heat_toggle.setChecked(True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(ARTIFACTS / "main_window.png"))
    assert (ARTIFACTS / "main_window.png").stat().st_size > 10_000
    pdf = scans.parent / "report.pdf"
    window.save_report(str(pdf))  # written in a pool thread; the window says when it is done
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("Report saved"), timeout=10000)
    assert pdf.read_bytes()[:4] == b"%PDF"


def test_unreadable_file_shows_reason_not_traceback(window, qtbot, scans):
    window.open_path(str(scans / "corrupt.jpg"))
    qtbot.waitUntil(lambda: window.panel.answer.text() == "Could not read this file", timeout=10000)
    assert "corrupt.jpg" in window.panel.detail.text() and "Traceback" not in window.panel.detail.text()


def drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def test_drop_file_opens_it_and_folder_batches_it(window, qtbot, scans, tmp_path):
    drop(window, [scans / "clear.jpg"])
    qtbot.waitUntil(lambda: window.result is not None, timeout=10000)
    assert window.panel.answer.text() == "No tumour found"
    drop(window, [scans, scans / "tumour.png"])
    assert window.tabs.currentWidget() is window.batch
    qtbot.waitUntil(lambda: not window.batch.running, timeout=20000)
    results = window.batch.table_model.results
    assert len(results) == 4  # 3 in the folder + the file again
    errors = [r for r in results if not r.ok]
    assert len(errors) == 1 and "corrupt.jpg" in errors[0].path and errors[0].error
    assert "<b>1</b> could not be read" in window.batch.counts.text()
    window.batch.filter.setText("corrupt")
    assert window.batch.proxy.rowCount() == 1
    out = tmp_path / "batch.csv"
    window.batch.export_csv(str(out))
    qtbot.waitUntil(out.exists, timeout=10000)
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["status"] for r in rows) == ["error", "ok", "ok", "ok"]


def copies_of_one_scan(folder: Path, n: int) -> Path:
    """A folder of ``n`` identical small scans: a batch long enough to interrupt."""
    folder.mkdir()
    data = brain_like(folder / "a000.png", False).read_bytes()
    for i in range(1, n):
        (folder / f"a{i:03d}.png").write_bytes(data)
    return folder


def test_cancel_a_running_batch(window, qtbot, tmp_path):
    """Deterministic: after its first batch the classifier waits until Cancel was pressed, so the
    batch cannot finish before the cancel arrives however fast the machine is."""
    import itertools
    import threading

    many = copies_of_one_scan(tmp_path / "many", 400)
    cancelled = threading.Event()
    real = window.classifier.classify_batch
    early = {str(f) for f in itertools.islice(stream.collect_files([many]), 16)}

    def gated(inputs, paths, *args, **kwargs):  # batches run concurrently: those of the first 16 files pass
        if early.isdisjoint(paths):
            assert cancelled.wait(20), "the test never pressed Cancel"
        return real(inputs, paths, *args, **kwargs)

    window.classifier.classify_batch = gated
    window.batch.start([many])
    qtbot.waitUntil(lambda: len(window.batch.table_model.results) > 0, timeout=10000)
    window.batch.cancel()
    cancelled.set()
    qtbot.waitUntil(lambda: not window.batch.running, timeout=10000)
    assert len(window.batch.table_model.results) <= 2 * 16  # the batch in flight finishes, no more
    assert window.batch.status.text().startswith("Cancelled")


def test_invalid_model_shows_dialog_and_keeps_models(window, tmp_path, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "critical", lambda *a, **k: shown.append(a[2]))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 not onnx")
    assert window.load_model_file(str(bad)) is False
    assert shown and "bad.onnx" in shown[0]
    assert len(window.models) == 2 and window.classifier is not None
    other = make_contract_model(tmp_path / "other.onnx", "binary", card={})
    assert window.load_model_file(str(other)) is False and "no model card" in shown[-1]


def test_volume_gets_a_slice_slider_starting_in_the_middle(window, qtbot):
    """Deterministic: the study's scoring is held until the user has chosen a slice (on a fast machine
    it could otherwise finish, and jump to its key slice, before the first check), then it runs."""
    import nibabel

    from gui.app.tasks import BACKGROUND

    held = []
    real_pool = window.tasks.pools[BACKGROUND]
    window.tasks.pools[BACKGROUND] = SimpleNamespace(start=held.append)
    path = Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii"
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.result is not None, timeout=10000)
    assert not window.panel.frame_box.isHidden()
    assert window.panel.frame.maximum() == 24 and window.panel.frame.value() == 12
    first = window.rgb.copy()
    window.panel.frame.setValue(3)
    qtbot.waitUntil(lambda: window.panel.frame_label.text() == "3 of 0–24", timeout=10000)
    assert not np.array_equal(window.rgb, first)
    assert len(held) == 1 and window.study_result is None
    window.tasks.pools[BACKGROUND] = real_pool
    real_pool.start(held[0])
    qtbot.waitUntil(lambda: window.study_result is not None, timeout=20000)
    # the jump, were there one, is made by the very slot that delivered the study's result
    assert window.panel.frame.value() == 3  # the user's slice is kept: no jump once they chose one


def test_a_volume_is_scored_slice_by_slice_and_the_window_jumps_to_the_key_slice(window, qtbot, tmp_path):
    """The synthetic models call bright images tumours: the one bright slice is the study's key slice;
    the strip holds every slice's probability, a click on it shows that slice, and the PDF report
    of the study carries its verdict, slice range and strip."""
    import subprocess

    from tests.series_factory import stack, write_nifti

    images, _ = stack(15, size=64)
    images = (images // 4).astype(np.uint8)
    images[11] = np.maximum(images[11], 200)
    path = write_nifti(tmp_path / "vol.nii", images)
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.study_result is not None, timeout=20000)
    r = window.study_result
    assert (r.n_slices, r.max_slice, r.prediction) == (15, 11, "tumor") and r.tumor_slices == "11"
    qtbot.waitUntil(lambda: window.panel.frame.value() == 11 and window.result.tumor_probability > 0.5, timeout=10000)
    assert np.isfinite(window.strip.p).all() and int(np.argmax(window.strip.p)) == 11
    assert "slices <b>11</b>" in window.panel.study.text() and window.panel.answer.text().startswith("This slice")
    qtbot.mouseClick(window.strip, Qt.MouseButton.LeftButton, pos=QPoint(int(window.strip.width() * 2.5 / 15), 10))
    qtbot.waitUntil(lambda: window.panel.frame.value() == 2 and window.strip.current == 2, timeout=10000)
    # another model: the study is scored again with it
    assert window.load_model_file(str(make_contract_model(tmp_path / "other.onnx", "binary", card=None)))
    assert window.study_result is None
    qtbot.waitUntil(lambda: window.study_result is not None, timeout=20000)
    assert window.study_result.n_slices == 15
    pdf = tmp_path / "study.pdf"
    window.save_report(str(pdf))
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("Report saved"), timeout=10000)
    try:
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    assert "Study of 15 slices" in text and "Most suspicious slice: 11" in text


def test_an_older_answer_arriving_late_is_dropped(window, qtbot, scans):
    """Quick file changes: whichever worker finishes last must not overwrite the newest answer."""
    window.open_path(str(scans / "tumour.png"))
    stale_task = window.session.token
    window.open_path(str(scans / "clear.jpg"))
    qtbot.waitUntil(lambda: window.result is not None and window.result.path.endswith("clear.jpg"), timeout=10000)
    shown = window.result
    from gui.core.readers import open_scan

    old_scan = open_scan(scans / "tumour.png")
    old = window.classifier.classify_image(old_scan.model_frame(), str(scans / "tumour.png"))
    window._on_opened(stale_task, old_scan, old_scan.plane(), old_scan.frame(), old)  # the first worker, finishing late
    window._on_failed(stale_task, str(scans / "tumour.png"), "late failure")
    assert window.result is shown and window.panel.answer.text() != "Could not read this file"


def test_export_after_loading_another_model_keeps_the_rows_columns(window, qtbot, scans, tmp_path):
    """Rows carry the classifier that produced them: loading a model with other labels between the
    batch and the export must not write these rows under the new model's (empty) columns."""
    window.batch.start([scans])
    qtbot.waitUntil(lambda: not window.batch.running, timeout=20000)
    produced_by = window.batch.table_model.classifier
    window.classifier = Classifier([load_model(make_contract_model(tmp_path / "mt.onnx", multitask=True))])
    out = tmp_path / "after-load.csv"
    window.batch.export_csv(str(out))
    qtbot.waitUntil(out.exists, timeout=10000)
    with out.open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == csvout.columns(produced_by) != csvout.columns(window.classifier)
    assert all(r["p_tumor"] for r in rows if r["status"] == "ok")


def test_a_new_batch_replaces_a_running_one(window, qtbot, scans, tmp_path):
    """Dropping a second folder while a batch runs cancels the first; none of its rows, late
    progress or end signal reach the table."""
    import threading

    many = copies_of_one_scan(tmp_path / "many", 200)
    release, entered = threading.Event(), threading.Event()
    real = window.classifier.classify_batch

    def held(*args, **kwargs):  # the first batch waits until the second batch has been started
        entered.set()
        release.wait(20)
        return real(*args, **kwargs)

    window.classifier.classify_batch = held
    window.batch.start([many])
    first = window.batch.worker
    assert entered.wait(20)  # the first batch is inside the hold before it is undone (it was not, before)
    window.classifier.classify_batch = real
    window.batch.start([scans])
    assert window.batch.worker is not first
    release.set()
    qtbot.waitUntil(lambda: not window.batch.running, timeout=20000)
    assert window.tasks.wait(20000)  # both batches' threads are done: every signal they sent is queued...
    QApplication.processEvents()  # ...and delivered now, so the check below cannot pass by being early
    assert sorted(Path(r.path).parent for r in window.batch.table_model.results) == [scans] * 3


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler's pdftotext to read the PDF's text boxes")
def test_the_pdf_report_lays_out_text_without_overlap_and_inside_the_page(window, qtbot, scans, tmp_path):
    """Rendered, then read back with pdftotext: every line box is on the page and no two overlap,
    even with a long file name and every caution at once."""
    import re
    import subprocess

    long_name = scans / ("a-very-long-scan-name-" * 6 + ".png")
    long_name.write_bytes((scans / "tumour.png").read_bytes())
    window.open_path(str(long_name))
    qtbot.waitUntil(lambda: window.result is not None, timeout=10000)
    window.result = dataclasses.replace(
        window.result, ood_warning="image looks unlike the brain MRI the model was trained on; the models disagree")
    pdf = tmp_path / "report.pdf"
    window.save_report(str(pdf))
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("Report saved"), timeout=10000)
    xml = subprocess.run(["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    page_w, page_h = map(float, re.search(r'<page width="([\d.]+)" height="([\d.]+)"', xml).groups())
    boxes = [tuple(map(float, m)) for m in re.findall(
        r'<line xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"', xml)]
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert len(boxes) > 8 and "Research use only" in text and "test accuracy" in text
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= page_w and 0 <= y0 < y1 <= page_h
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap_x = min(a[2], b[2]) - max(a[0], b[0])
            overlap_y = min(a[3], b[3]) - max(a[1], b[1])
            assert overlap_x <= 0.5 or overlap_y <= 0.5, (a, b)
    assert "Caution" in text and "Date:" in text and "synthetic-binary" in text


# ---------------------------------------------------------------- a batch you can scan by eye


def test_batch_thumbnails_keyboard_preview_summary_and_uncertain_filter(window, qtbot, scans):
    """Thumbnails arrive lazily from a pool thread; Down moves the selection and the preview follows;
    the summary counts answers and histograms probabilities; one click keeps only uncertain rows."""
    window.batch.start([scans])
    qtbot.waitUntil(lambda: not window.batch.running, timeout=20000)
    model, table = window.batch.table_model, window.batch.table
    ok_rows = [k for k, r in enumerate(model.results) if r.ok]
    assert len(ok_rows) == 2
    qtbot.waitUntil(lambda: all(model.data(model.index(k, 0), Qt.ItemDataRole.DecorationRole) is not None
                                for k in ok_rows), timeout=10000)
    assert model.data(model.index(ok_rows[0], 0), Qt.ItemDataRole.DecorationRole).width() <= 64
    table.setFocus()
    table.selectRow(0)
    first = window.batch.preview_caption.text()
    qtbot.keyClick(table, Qt.Key.Key_Down)
    assert table.currentIndex().row() == 1
    second = model.results[window.batch.proxy.mapToSource(table.currentIndex()).row()]
    assert Path(second.path).name in window.batch.preview_caption.text() and window.batch.preview_caption.text() != first
    if second.ok:
        qtbot.waitUntil(lambda: not window.batch.preview._item.pixmap().isNull(), timeout=10000)
    assert "could not be read" in window.batch.counts.text()
    assert int(window.batch.histogram.counts.sum()) == 2
    # uncertain: make one row uncertain by its probability, then filter with the button
    model.results[ok_rows[0]] = dataclasses.replace(model.results[ok_rows[0]], tumor_probability=0.5,
                                                    ood_warning="", models_disagree=False)
    model.results[ok_rows[1]] = dataclasses.replace(model.results[ok_rows[1]], tumor_probability=0.99,
                                                    ood_warning="", models_disagree=False)
    qtbot.mouseClick(window.batch.uncertain, Qt.MouseButton.LeftButton)
    assert window.batch.proxy.rowCount() == 1
    assert window.batch.proxy.mapToSource(window.batch.proxy.index(0, 0)).row() == ok_rows[0]
    qtbot.mouseClick(window.batch.uncertain, Qt.MouseButton.LeftButton)
    assert window.batch.proxy.rowCount() == 3


def test_theme_switch_is_saved_and_follows_the_menu(window, qtbot, tmp_path):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    from gui.app import theme

    window.theme_actions["dark"].trigger()
    pal = QApplication.instance().palette()
    assert pal.color(QPalette.ColorRole.Window).name() == theme.DARK["window"]
    assert window.settings.value("theme") == "dark" and theme.colour("tumor") == theme.DARK["tumor"]
    again = MainWindow(window.models, window.settings)
    qtbot.addWidget(again)
    assert again.theme_name == "dark" and again.theme_actions["dark"].isChecked()
    window.theme_actions["light"].trigger()
    assert QApplication.instance().palette().color(QPalette.ColorRole.Window).name() == theme.LIGHT["window"]
    assert window.viewer.backgroundBrush().color().name() == "#000000"  # the image area stays black


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a per-thread nice value is Linux's")
def test_batch_and_study_work_runs_below_the_windows_priority(window, qtbot, scans, tmp_path):
    """The batch's and the study's inference threads run at the background nice value, so the window's
    thread gets the CPU first when it has something to paint; the window's own thread is unchanged."""
    import threading

    from gui.core.engine.priority import BACKGROUND_NICE
    from tests.series_factory import stack, write_nifti

    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before, seen, real = nice(), [], window.classifier.classify_batch

    def recording(inputs, paths, *args, **kwargs):
        seen.append((threading.current_thread().name, nice()))
        return real(inputs, paths, *args, **kwargs)

    window.classifier.classify_batch = recording
    images, _ = stack(12, size=64)
    window.open_path(str(write_nifti(tmp_path / "vol.nii", images)))
    qtbot.waitUntil(lambda: window.study_result is not None, timeout=20000)
    window.batch.start([scans])
    qtbot.waitUntil(lambda: not window.batch.running, timeout=20000)
    engine = [n for name, n in seen if name.startswith(stream.INFERENCE_THREADS)]
    assert len(engine) >= 2 and set(engine) == {max(before, BACKGROUND_NICE)}
    assert nice() == before


def test_view_arithmetic_switches_the_bundled_model_and_keeps_the_choice(qtbot, tmp_path, monkeypatch):
    """View > Arithmetic: int8 replaces the float32 model (the name says so everywhere), the choice is kept
    in the settings; on a CPU without VNNI the int8 entry is greyed out with the reason."""
    from gui.core.engine import precision as precisions
    from gui.core.resources import bundled_models

    int8_files = [f.parent / precisions.INT8_FOLDER / f.name for f in bundled_models()]
    if not int8_files or not all(f.is_file() for f in int8_files):
        pytest.skip("no bundled int8 model")
    monkeypatch.setattr(precisions, "cpu_has_vnni", lambda: True)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow([load_model(p) for p in bundled_models()], settings)
    qtbot.addWidget(w)
    assert w.precision == precisions.FP32 and w.precision_actions[precisions.FP32].isChecked()
    assert w.precision_actions[precisions.INT8].isEnabled()
    w.precision_actions[precisions.INT8].trigger()
    assert [m.path for m in w.models] == int8_files and w.classifier.models == w.models
    assert w.precision_actions[precisions.INT8].isChecked() and settings.value("precision") == precisions.INT8
    assert "int8" in w.statusBar().currentMessage()
    w.precision_actions[precisions.FP32].trigger()
    assert [m.path for m in w.models] == bundled_models() and settings.value("precision") == precisions.FP32

    monkeypatch.setattr(precisions, "cpu_has_vnni", lambda: False)
    w2 = MainWindow([load_model(p) for p in bundled_models()], QSettings(str(tmp_path / "s2.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(w2)
    assert not w2.precision_actions[precisions.INT8].isEnabled()
    assert "VNNI" in w2.precision_actions[precisions.INT8].text()
