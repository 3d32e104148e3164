"""The viewer a radiologist expects, offscreen: wheel and keys step slices, Ctrl+wheel zooms, the
slider answers live from the study's cache, right-drag sets window/level without changing an
answer, orientation letters follow the display, type bars only under a tumour answer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("onnx")

from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel  # noqa: E402

from gui.app.window import MainWindow  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from gui.core.viewstate import Edges  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402
from tests.series_factory import stack, write_nifti  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow([load_model(make_contract_model(tmp_path / "m.onnx", multitask=True))], settings)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    return w


@pytest.fixture
def study(window, qtbot, tmp_path):
    images, _ = stack(20, size=64)
    images = (images // 4).astype(np.uint8)
    images[14] = np.maximum(images[14], 200)
    window.open_path(str(write_nifti(tmp_path / "vol.nii", images)))
    qtbot.waitUntil(lambda: window.study_result is not None and window.panel.frame.value() == 14, timeout=20000)
    qtbot.waitUntil(lambda: window.result is not None and window.result.slice == 14, timeout=10000)
    return window


def _wheel(viewer, up: bool, ctrl: bool = False) -> None:
    pos = QPointF(viewer.viewport().width() / 2, viewer.viewport().height() / 2)
    event = QWheelEvent(pos, viewer.viewport().mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 if up else -120),
                        Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.ControlModifier if ctrl else Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewer.viewport(), event)


def _at(window, qtbot, k: int) -> None:
    qtbot.waitUntil(lambda: window.panel.frame.value() == k and window.result is not None and window.result.slice == k,
                    timeout=10000)


def test_focus_is_on_the_image_after_opening(study):
    assert study.focusWidget() is study.viewer


def test_keys_and_the_wheel_step_slices_and_ctrl_wheel_zooms(study, qtbot):
    v = study.viewer
    qtbot.keyClick(v, Qt.Key.Key_Down)
    _at(study, qtbot, 13)
    qtbot.keyClick(v, Qt.Key.Key_Up)
    _at(study, qtbot, 14)
    qtbot.keyClick(v, Qt.Key.Key_PageUp)
    _at(study, qtbot, 19)  # clamped at the last slice
    qtbot.keyClick(v, Qt.Key.Key_Home)
    _at(study, qtbot, 0)
    qtbot.keyClick(v, Qt.Key.Key_PageUp)
    _at(study, qtbot, 10)
    qtbot.keyClick(v, Qt.Key.Key_End)
    _at(study, qtbot, 19)
    _wheel(v, up=False)
    _at(study, qtbot, 18)
    scale = v.transform().m11()
    _wheel(v, up=True, ctrl=True)
    assert v.transform().m11() > scale and study.panel.frame.value() == 18


def test_moving_through_scored_slices_needs_no_inference(study, qtbot, monkeypatch):
    calls = []
    real = study.classifier.classify_image
    monkeypatch.setattr(study.classifier, "classify_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert study.panel.frame.hasTracking()  # the slider answers while it is dragged
    for k in (3, 4, 5, 14):
        study.panel.frame.setValue(k)
        _at(study, qtbot, k)
    assert calls == [] and study.result is study.session.study.slices[14]


def test_window_level_by_right_drag_changes_the_picture_not_the_answer(study, qtbot):
    v = study.viewer
    answer, before = study.result, study.rgb.copy()
    centre = QPoint(v.viewport().width() // 2, v.viewport().height() // 2)
    qtbot.mousePress(v.viewport(), Qt.MouseButton.RightButton, pos=centre)
    qtbot.mouseMove(v.viewport(), centre + QPoint(60, -40))
    qtbot.mouseRelease(v.viewport(), Qt.MouseButton.RightButton, pos=centre + QPoint(60, -40))
    assert study.display_window is not None and not np.array_equal(study.rgb, before)
    assert study.result is answer and "W " in v.corner_text["bottom_right"]
    study.set_display_window(None)
    assert study.display_window is None and np.array_equal(study.rgb, before)
    study.set_display_window("auto")
    assert study.display_window == study.scan.levels(study.plane).display
    qtbot.keyClick(v, Qt.Key.Key_Down)  # another slice keeps the chosen window
    _at(study, qtbot, 13)
    assert study.display_window is not None and study.result.tumor_probability == study.session.study.slices[13].tumor_probability


def test_orientation_letters_follow_mirror_and_turns(study):
    assert study.viewer.edges == Edges("R", "L", "A", "P")
    assert "slice 14 of 0–19" in study.viewer.corner_text["bottom_left"]
    assert "mm" in study.viewer.corner_text["bottom_left"]
    assert Edges("R", "L", "A", "P").turned(0, True) == Edges("L", "R", "A", "P")
    assert Edges("R", "L", "A", "P").turned(1) == Edges("P", "A", "R", "L")
    answer = study.result
    study._turn(1, True)
    assert (study.viewer.turns, study.viewer.flipped) == (1, True) and study.result is answer


def test_type_bars_only_under_a_tumour_answer(study, qtbot):
    def headers():
        return [study.panel.bars.itemAt(i).widget().text() for i in range(study.panel.bars.count())
                if isinstance(study.panel.bars.itemAt(i).widget(), QLabel)]

    assert study.result.prediction == "tumor" and any("type" in h.lower() for h in headers())
    study.panel.frame.setValue(0)
    _at(study, qtbot, 0)
    assert study.result.prediction == "no_tumor" and not any("type" in h.lower() for h in headers())


def test_open_folder_brings_the_batch_tab_forward(window, tmp_path, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    window.open_folder_dialog()
    assert window.tabs.currentWidget() is window.batch


def test_every_menu_has_unique_mnemonics(window):
    for menu_action in window.menuBar().actions():
        letters = []
        for action in menu_action.menu().actions():
            text = action.text()
            if "&" in text:
                letters.append(text[text.index("&") + 1].lower())
        assert len(letters) == len(set(letters)), (menu_action.text(), letters)


def test_a_new_file_opened_while_a_study_scores_keeps_its_answer(window, qtbot, tmp_path):
    """Deterministic: the new file's answer is held until the old study has had every chance to finish
    and jump to its key slice (3 s); neither its end nor its jump may replace the new file."""
    import threading

    from PIL import Image

    images, _ = stack(40, size=64)
    images[len(images) * 3 // 4] = 230  # the key slice the old study would jump to
    Image.fromarray(images[5]).save(tmp_path / "one.png")
    study_done, real, study_batches = threading.Event(), window.classifier.classify_batch, []
    on_done = window._on_study_done

    def done(*args):
        on_done(*args)
        study_done.set()

    window._on_study_done = done

    def held(inputs, paths, *args, **kwargs):
        if len(paths) > 1 and paths[0].endswith("long.nii"):  # a batch of the old study's slices
            study_batches.append(1)
        if paths[0].endswith("one.png"):  # the new file: answer only after the old study could end
            study_done.wait(3)
        return real(inputs, paths, *args, **kwargs)

    window.classifier.classify_batch = held
    window.open_path(str(write_nifti(tmp_path / "long.nii", images)))
    qtbot.waitUntil(lambda: window.scan is not None and bool(study_batches), timeout=10000)
    window.open_path(str(tmp_path / "one.png"))
    qtbot.waitUntil(lambda: window.scan is not None and window.scan.path.name == "one.png", timeout=15000)
    assert window.tasks.wait(20000)  # the old study's thread has ended: its answers are queued...
    QApplication.processEvents()  # ...and delivered, so a stale one would show now
    assert window.scan.path.name == "one.png" and window.result.path.endswith("one.png")
    assert window.study_result is None and not window.strip.isVisible()


def test_the_heatmap_outline_marks_where_p_reaches_one_half(study):
    from gui.core.engine.heatmap import contour

    heat = np.zeros((20, 20), np.float32)
    heat[5:15, 5:15] = 0.8
    edge = contour(heat, 0.5)
    assert edge[5, 5:15].all() and edge[5:15, 5].all() and not edge[10, 10] and not edge[2, 2]
    plain = study.overlay_image()
    study.panel.contour_toggle.setChecked(True)
    outlined = study.overlay_image()
    assert (study._heat >= 0.5).any() and not np.array_equal(plain, outlined)
    assert "Strongest place" in study.panel.heat_strength.text()
