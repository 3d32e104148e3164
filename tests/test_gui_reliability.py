"""GUI safety: broken bundled model, exception hook, closing mid-batch, offline, inputs untouched."""

from __future__ import annotations

import shutil
import sys
import itertools
import threading

import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("onnx")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from gui.app import main as app_main  # noqa: E402
from gui.app.window import MainWindow  # noqa: E402
from gui.core.engine import stream  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from gui.core.records import logs  # noqa: E402
from tests.hostile_factory import block_network, digest_tree, hostile_corpus  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Bundled models and app data in temporary folders; dialogs recorded, not shown."""
    assets = tmp_path / "assets"
    (assets / "models").mkdir(parents=True)
    make_contract_model(assets / "models" / "1-detector.onnx")
    monkeypatch.setenv("MRI_CLASSIFIER_ASSETS", str(assets))
    monkeypatch.setattr(logs, "log_dir", lambda: tmp_path / "logs")
    (tmp_path / "logs").mkdir()
    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    monkeypatch.setattr(QMessageBox, "critical", lambda *a, **k: shown.append(a[2]))
    return {"assets": assets, "shown": shown, "logs": tmp_path / "logs"}


def test_app_starts_with_the_good_models_when_a_bundled_one_is_broken(qtbot, isolated):
    (isolated["assets"] / "models" / "2-broken.onnx").write_bytes(b"garbage")
    app, window = app_main.create_window([])
    qtbot.addWidget(window)
    assert [m.card["name"] for m in window.models] == ["synthetic-binary"]
    notice = window.startup_notice.text()
    assert "2-broken.onnx" in notice and "not a valid ONNX model" in notice
    window.close()


def test_exception_hook_shows_report_and_logs(qtbot, isolated, monkeypatch):
    from gui.app import dialogs

    reports = []
    monkeypatch.setattr(dialogs.ErrorReportDialog, "exec", lambda self: reports.append(self.windowTitle()))
    app, window = app_main.create_window([])
    qtbot.addWidget(window)
    try:
        raise RuntimeError("boom in a slot")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert reports == ["Something went wrong"]
    log_text = (isolated["logs"] / "mri-classifier.log").read_text()
    assert "boom in a slot" in log_text
    assert window.isVisible()  # still usable
    window.close()


def test_the_window_starts_when_its_data_folder_cannot_be_written(qtbot, isolated, tmp_path, monkeypatch):
    """A per-user folder that cannot be created (here: under a file, which stops root too) used to end
    the start-up with a traceback; the window opens, and an error report says no log is kept."""
    from gui.app import dialogs
    from gui.core import userdirs

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setattr(logs, "log_dir", lambda: userdirs.data_dir("logs"))
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker / "data"))
    monkeypatch.setenv("LOCALAPPDATA", str(blocker / "data"))
    monkeypatch.setattr(userdirs.Path, "home", lambda: blocker)
    labels = []
    monkeypatch.setattr(dialogs.ErrorReportDialog, "exec",
                        lambda self: labels.extend(w.text() for w in self.findChildren(dialogs.QLabel)))
    app, window = app_main.create_window([])
    qtbot.addWidget(window)
    assert window.isVisible()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    assert any("No log file is kept" in text for text in labels)
    window.close()


def test_close_during_batch_cancels_and_gui_batch_is_offline_and_read_only(qtbot, tmp_path, monkeypatch):
    attempts = block_network(monkeypatch)
    corpus = tmp_path / "corpus"
    hostile_corpus(corpus)
    for i in range(300):
        shutil.copy(corpus / "palette.png", corpus / f"copy{i:03d}.png")
    before = digest_tree(corpus)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow([load_model(make_contract_model(tmp_path / "d.onnx"))], settings)
    qtbot.addWidget(window)
    window.show()
    # Deterministic: after its first batch the classifier waits until the batch was told to cancel,
    # so the run cannot finish before close() however fast the machine is.
    # Batches run concurrently, so the gate is which files a batch holds, not the call order: batches
    # of the first 16 items pass, later ones wait.
    told_to_cancel = threading.Event()
    real_classify = window.classifier.classify_batch
    early = {str(getattr(x, "path", x)) for x in itertools.islice(stream.collect_files([corpus]), 16)}

    def gated(inputs, paths, *args, **kwargs):
        if early.isdisjoint(paths):
            assert told_to_cancel.wait(20), "close() never cancelled the batch"
        return real_classify(inputs, paths, *args, **kwargs)

    window.classifier.classify_batch = gated
    window.batch.start([corpus])
    real_cancel = window.batch.worker.cancel

    def cancel():
        real_cancel()
        told_to_cancel.set()

    window.batch.worker.cancel = cancel
    qtbot.waitUntil(lambda: len(window.batch.table_model.results) > 0, timeout=10000)
    window.close()  # cancels the batch and waits for it
    assert told_to_cancel.is_set() and window.batch.worker.cancelled
    qtbot.waitUntil(lambda: not window.batch.running, timeout=10000)  # the batch in flight reports, no more
    complete = len(list(stream.collect_files([corpus])))
    assert complete > 300 and len(window.batch.table_model.results) <= 2 * 16 < complete  # stopped early
    assert digest_tree(corpus) == before
    # A complete GUI batch, offline, leaves the scans byte-identical too.
    window2 = MainWindow([load_model(make_contract_model(tmp_path / "d2.onnx"))], settings)
    qtbot.addWidget(window2)
    window2.batch.start([corpus])
    qtbot.waitUntil(lambda: not window2.batch.running, timeout=30000)
    assert sum(1 for r in window2.batch.table_model.results if not r.ok) >= 5
    assert digest_tree(corpus) == before
    assert attempts == []


@pytest.mark.parametrize("vnni", [True, False])
def test_the_window_starts_in_the_arithmetic_chosen_last_time_where_it_can(qtbot, isolated, tmp_path, monkeypatch, vnni):
    """int8 saved in the settings: the bundled int8 file on a CPU with VNNI; on one without (the VM or the
    workstation changed), float32 runs and the int8 entry of View > Arithmetic is greyed out."""
    from PySide6 import QtCore

    from gui.core.engine import precision as precisions
    from tests.onnx_factory import make_card

    int8 = isolated["assets"] / "models" / precisions.INT8_FOLDER
    int8.mkdir()
    card = make_card("binary", 64) | {"precision": {"arithmetic": precisions.INT8, "recipe": "test"}}
    make_contract_model(int8 / "1-detector.onnx", card=card)
    settings = QSettings(str(tmp_path / "user.ini"), QSettings.Format.IniFormat)
    settings.setValue("precision", precisions.INT8)
    settings.sync()
    monkeypatch.setattr(QtCore, "QSettings", lambda *a: QSettings(str(tmp_path / "user.ini"), QSettings.Format.IniFormat))
    monkeypatch.setattr(precisions, "cpu_has_vnni", lambda: vnni)
    app, window = app_main.create_window([])
    qtbot.addWidget(window)
    expected = precisions.INT8 if vnni else precisions.FP32
    assert [m.precision for m in window.models] == [expected] and window.precision == expected
    assert window.precision_actions[expected].isChecked()
    assert window.precision_actions[precisions.INT8].isEnabled() == vnni
    window.close()
