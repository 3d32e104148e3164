"""The window on its ViewerSession, offscreen: nothing stale on screen. Each test is a defect a new
user met (issue 30): the old model's answer after loading another, a reopened file frozen, one bad
slice ending a study, a model's NaN leaving "Opening…", the previous file's controls after a failed
open, a mirror carried to the next file, a window/level drag that jumps, the jump away from the file
the user opened, and a 64-character UID name cutting the panel off."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("pytestqt")
pytest.importorskip("onnx")

from PySide6.QtCore import QSettings  # noqa: E402

from gui.app.window import MainWindow  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from tests.conftest import brain_like  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402
from tests.series_factory import stack, write_dicom_series, write_nifti  # noqa: E402
from tests.test_viewer import window  # noqa: E402,F401  (the same window at 1280x800 with a multi-task model)


def _one_bright_slice(n: int, bright: int, size: int) -> np.ndarray:
    """``n`` dim slices with slice ``bright`` made bright: the synthetic model's one tumour, the key slice."""
    images, _ = stack(n, size=size)
    images = (images // 4).astype(np.uint8)
    images[bright] = np.maximum(images[bright], 200)
    return images


@pytest.fixture
def volume(tmp_path):
    return write_nifti(tmp_path / "vol.nii", _one_bright_slice(12, 9, 64))


def _scored(window, qtbot):
    qtbot.waitUntil(lambda: window.study_result is not None and window.result is not None, timeout=20000)


def test_a_new_model_answers_for_the_shown_slice_at_once(window, qtbot, tmp_path, volume):
    window.open_path(str(volume))
    _scored(window, qtbot)
    assert window.result.ok
    assert window.load_model_file(str(make_contract_model(tmp_path / "nan.onnx", multitask=True, nan=True)))
    # the old code showed the old model's cached answer for the slice; the new model cannot answer
    qtbot.waitUntil(lambda: window.result is not None and not window.result.ok, timeout=10000)
    assert window.panel.answer.text() == "The model could not answer for this image"
    assert not window.statusBar().currentMessage().startswith("Opening")


def test_a_model_that_returns_nan_says_so_instead_of_opening_for_ever(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    w = MainWindow([load_model(make_contract_model(tmp_path / "nan.onnx", nan=True))], settings)
    qtbot.addWidget(w)
    w.show()
    brain_like(tmp_path / "a.png", True)
    w.open_path(str(tmp_path / "a.png"))
    qtbot.waitUntil(lambda: w.panel.answer.text() == "The model could not answer for this image", timeout=10000)
    assert "invalid value" in w.panel.detail.text() and w.rgb is not None
    assert not w.statusBar().currentMessage().startswith("Opening")


def test_reopening_the_shown_file_reads_and_scores_it_again(window, qtbot, volume):
    window.open_path(str(volume))
    _scored(window, qtbot)
    window.panel.frame.setValue(3)
    qtbot.waitUntil(lambda: window.result.slice == 3, timeout=10000)
    window.open_path(str(volume))  # File > Open or Recent on the same file
    qtbot.waitUntil(lambda: window.study_result is None, timeout=5000)
    _scored(window, qtbot)  # the old code never scored it again: the strip stayed frozen
    assert window.panel.frame.value() in (6, 9)  # the default slice, or the key slice once scored
    assert window.strip.isVisible() and window.strip.scored == 12


def test_one_unreadable_slice_leaves_the_study_and_the_slider(window, qtbot, tmp_path):
    images, _ = stack(8, size=48)
    files = write_dicom_series(tmp_path / "series", images)
    data = files[4].read_bytes()
    files[4].write_bytes(data[: len(data) - 2000])  # its pixels cut short
    window.open_path(str(files[2]))
    _scored(window, qtbot)
    assert "1 of 8 slices could not be read" in window.study_result.ood_warning
    window.panel.frame.setValue(4)
    qtbot.waitUntil(lambda: window.panel.answer.text() == "Slice 4 could not be read", timeout=10000)
    assert window.scan is not None and window.strip.isVisible() and not window.panel.frame_box.isHidden()
    window.panel.frame.setValue(5)
    qtbot.waitUntil(lambda: window.result is not None and window.result.slice == 5, timeout=10000)


def test_after_a_failed_open_nothing_of_the_previous_file_stays(window, qtbot, tmp_path, volume):
    window.open_path(str(volume))
    _scored(window, qtbot)
    (tmp_path / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 64)
    window.open_path(str(tmp_path / "broken.dcm"))
    qtbot.waitUntil(lambda: window.panel.answer.text() == "Could not read this file", timeout=10000)
    assert window.panel.frame_box.isHidden() and not window.strip.isVisible()
    assert window.panel.heat_strength.text() == "" and window.panel.key_slice.isHidden()
    assert str(tmp_path / "broken.dcm") not in window._recent() and str(volume) in window._recent()


def test_a_mirror_never_carries_over_to_the_next_file_and_is_always_said(window, qtbot, tmp_path):
    brain_like(tmp_path / "a.png", True)
    brain_like(tmp_path / "b.jpg", False)
    window.open_path(str(tmp_path / "a.png"))
    qtbot.waitUntil(lambda: window.result is not None, timeout=10000)
    window._turn(0, True)
    assert window.viewer.flipped and "display mirrored" in window.viewer.corner_text["top_left"]
    window.open_path(str(tmp_path / "b.jpg"))
    qtbot.waitUntil(lambda: window.result is not None and window.result.path.endswith("b.jpg"), timeout=10000)
    assert not window.viewer.flipped and window.viewer.turns == 0
    assert "mirrored" not in window.viewer.corner_text["top_left"]


def test_a_right_drag_on_a_dicom_with_its_own_window_starts_from_it(window, qtbot, tmp_path):
    images, _ = stack(3, size=48)
    files = write_dicom_series(tmp_path / "s", images, window=(1200.0, 1200.0))
    window.open_path(str(files[1]))
    qtbot.waitUntil(lambda: window.result is not None and window.rgb is not None, timeout=10000)
    before = window.rgb.copy()
    window._on_window_drag(0.0, 0.0, True)
    window._on_window_drag(0.0, 0.0, False)  # a click without a move: the picture must not jump
    assert window.display_window is not None and np.abs(window.rgb.astype(int) - before).max() <= 1


def test_a_file_of_a_series_stays_on_screen_with_the_key_slice_offered(window, qtbot, tmp_path):
    files = write_dicom_series(tmp_path / "s", _one_bright_slice(10, 8, 48), description="AX FLAIR")
    window.open_path(str(files[2]))
    _scored(window, qtbot)
    assert window.panel.frame.value() == 2 and window.study_result.max_slice == 8
    assert not window.panel.key_slice.isHidden() and "8" in window.panel.key_slice.text()
    window.panel.key_slice.click()
    qtbot.waitUntil(lambda: window.result.slice == 8, timeout=10000)
    assert "AX FLAIR" in window.windowTitle() and "AX FLAIR" in window.panel.detail.text()


def test_a_uid_named_file_never_widens_the_panel(window, qtbot, tmp_path):
    images, _ = stack(1, size=48)
    uid = "1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345678.dcm"
    [path] = write_dicom_series(tmp_path / "u", images, names=[uid])
    window.open_path(str(path))
    qtbot.waitUntil(lambda: window.result is not None, timeout=10000)
    assert window.panel.minimumSizeHint().width() <= 440  # the dock's widest
    assert window.panel.detail.toolTip() == uid and "…" in window.panel.detail.text()


def test_from_the_file_is_offered_only_for_a_file_with_its_own_window(window, qtbot, tmp_path, volume):
    window.open_path(str(volume))
    qtbot.waitUntil(lambda: window.result is not None, timeout=10000)
    assert not window.file_window_action.isEnabled()  # a NIfTI has no VOI window: nothing to choose
    images, _ = stack(2, size=48)
    files = write_dicom_series(tmp_path / "w", images, window=(1200.0, 1200.0))
    window.open_path(str(files[0]))
    qtbot.waitUntil(lambda: window.result is not None and window.result.path == str(files[0]), timeout=10000)
    assert window.file_window_action.isEnabled()


def test_reports_studies_and_series_are_named_for_a_reader():
    from pathlib import Path

    from gui.app.formatting import items_in_words, row_name
    from gui.app.window import report_name
    from gui.core.engine.result import Result
    from gui.core.readers.dicom_series import DicomSeries

    assert report_name(Path("/d/X.nii.gz")) == "X-report.pdf" and report_name(Path("X.nii")) == "X-report.pdf"
    assert report_name(Path("1.2.840.113619.2.55")) == "1.2.840.113619.2.55-report.pdf"
    files = tuple(Path(f"/scans/study3/1.2.3.{k}") for k in range(40))
    series = DicomSeries(files, ((8, 8),) * 40, None, None, None)
    study = Result(path=str(files[0]), n_slices=40, series=series, series_description="AX FLAIR")
    assert row_name(study) == "AX FLAIR — study3"
    assert row_name(Result(path="/scans/study4/1.2.9.1", n_slices=30, series=series)) == "series in study4"
    volume = Result(path="/v/brain.nii.gz", n_slices=20)
    assert items_in_words([study, study, volume]) == "3 studies (81 files)"
    assert items_in_words([study, Result(path="a.png"), Result(path="b.png")]) == "1 study (40 files) and 2 files"
    assert items_in_words([Result(path="a.png")]) == "1 file"


def test_the_report_letters_its_pictures_and_states_scale_threshold_and_series(window, qtbot, tmp_path):
    from gui.app.report import lettered, report_html

    files = write_dicom_series(tmp_path / "s", _one_bright_slice(10, 6, 64), description="AX T1 POST GD")
    window.open_path(str(files[0]))
    _scored(window, qtbot)
    html_text = report_html("IM0000.dcm", {"series number": "", "series description": "AX T1 POST GD"},
                            window.study_result, window.classifier, 0.5, True)
    assert "series number" not in html_text and "AX T1 POST GD" in html_text
    assert "T1 with contrast" in html_text and "study threshold (50.0 %)" in html_text
    assert "slice 0 to slice 9" in html_text and 'src="scale"' in html_text and "letters at the edges" in html_text
    plain = np.full((64, 64, 3), 40, np.uint8)
    drawn = lettered(plain, window.scan.edges)
    left = [drawn.pixelColor(x, 32).red() for x in range(0, 12)]
    assert max(left) > 150  # a letter at the left edge, yellow on the grey picture
    pdf = tmp_path / "r.pdf"
    window.save_report(str(pdf))
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("Report saved"), timeout=15000)
    assert pdf.stat().st_size > 10_000


def test_the_batch_preview_never_shows_a_row_the_filter_hid(window, qtbot, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    brain_like(folder / "alpha.png", True)
    brain_like(folder / "beta.png", False)
    window.batch.start([folder])
    qtbot.waitUntil(lambda: not window.batch.running and len(window.batch.table_model.results) == 2, timeout=20000)
    assert window.batch.status.text() == "Done: 2 files."
    window.batch.table.selectRow(0)
    shown = window.batch.preview_caption.text()
    hidden = "alpha" if "alpha" in shown else "beta"
    window.batch.filter.setText("beta" if hidden == "alpha" else "alpha")  # hides the selected row
    qtbot.waitUntil(lambda: hidden not in window.batch.preview_caption.text(), timeout=5000)
    assert window.batch.preview._item.pixmap().isNull()


def test_the_fourth_type_reads_as_other_tumour_in_the_report_and_the_table(window):
    """A v4 model's "other" type (schwannoma, neurocytoma, metastasis, papilloma) is not shown as a
    bare word: the report and the batch table both say what it means; the CSV keeps the label."""
    from gui.app.batch import COLUMNS
    from gui.app.report import report_html
    from gui.core.engine.result import Result
    from gui.core.records.csvout import row

    r = Result(path="x.png", prediction="tumor", tumor_probability=0.9, tumor_type="other",
               tumor_type_confidence=0.7, threshold=0.5)
    assert "other tumour (not glioma, meningioma or pituitary)" in report_html("x.png", {}, r, window.classifier)
    model = window.batch.table_model
    model.extend([r])
    column = [k for _t, k in COLUMNS].index("tumor_type")
    assert model.data(model.index(len(model.results) - 1, column)) == "other tumour"
    assert row(window.classifier, r)["tumor_type"] == "other"
