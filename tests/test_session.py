"""The window's session without Qt: every transition the window used to get wrong, as a rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gui.core.display import Window
from gui.core.engine.result import Result
from gui.core.readers import Plane, Scan
from gui.core.session import ViewerSession


def _scan(path: str, n: int = 1, fmt: str = "NIfTI", default: int | None = None) -> Scan:
    return Scan(Path(path), fmt, n, n // 2 if default is None else default,
                lambda _k: Plane(values=np.zeros((4, 4), np.float32)))


def _answer(path: str, p: float = 0.9, **kw) -> Result:
    return Result(path=path, prediction="tumor" if p >= 0.5 else "no_tumor", tumor_probability=p, **kw)


PLANE = Plane(values=np.zeros((4, 4), np.float32))


def _show(session: ViewerSession, path: str, scan: Scan, p: float = 0.9):
    request = session.open(path)
    return request, session.opened(request.token, scan, PLANE, _answer(path, p))


def test_a_late_answer_is_dropped_whatever_its_thread():
    s = ViewerSession()
    first = s.open("a.png")
    second = s.open("b.png")
    assert s.opened(first.token, _scan("a.png"), PLANE, _answer("a.png")) is None
    assert s.failed(first.token, "a.png", "gone") is None
    shown = s.opened(second.token, _scan("b.png"), PLANE, _answer("b.png"))
    assert shown is not None and s.path == "b.png"


def test_a_new_model_never_shows_the_old_models_answer():
    s = ViewerSession()
    vol = _scan("v.nii", n=10)
    _show(s, "v.nii", vol)
    task = s.study.task
    s.study_slices(task, [_answer("v.nii", 0.2, slice=k) for k in range(10)])
    assert s.open("v.nii", 3).cached is not None  # the old model's own answer for slice 3...
    request = s.model_changed()
    assert request.cached is None and request.scan is vol and request.frame == s.frame  # ...asked again
    assert not s.study.current(task) and s.study.cached(3) is None
    new_task = s.restart_study()
    assert new_task is not None and s.study.current(new_task)


def test_reopening_the_shown_file_reads_it_again_and_scores_it_again():
    s = ViewerSession()
    vol = _scan("v.nii", n=10)
    _show(s, "v.nii", vol)
    s.open("v.nii", 7)
    s.opened(s.token, vol, PLANE, _answer("v.nii"))
    old_task = s.study.task
    again = s.open("v.nii")  # File > Open, Recent or a batch double-click on the same file
    assert again.new_file and again.scan is None and not s.study.current(old_task)
    shown = s.opened(again.token, _scan("v.nii", n=10), PLANE, _answer("v.nii"))
    assert shown.new_file and shown.frame == 5 and shown.study_task == s.study.task  # slider and study reset


def test_one_unreadable_slice_leaves_the_study_and_the_file():
    s = ViewerSession()
    vol = _scan("v.nii", n=10)
    _, shown = _show(s, "v.nii", vol)
    request = s.open("v.nii", 4)
    failure = s.failed(request.token, "v.nii", "cannot decode frame 4")
    assert failure.slice_only and failure.frame == 4
    assert s.scan is vol and s.study.current(shown.study_task)
    nxt = s.open("v.nii", 5)
    assert not nxt.new_file  # the slider still works


def test_a_file_that_cannot_be_read_leaves_nothing_of_the_previous_one():
    s = ViewerSession()
    _show(s, "v.nii", _scan("v.nii", n=10))
    s.turn(1, True)
    s.display.window = Window(100, 50)
    task = s.study.task
    request = s.open("broken.dcm")
    failure = s.failed(request.token, "broken.dcm", "not a valid DICOM file")
    assert not failure.slice_only
    assert s.scan is None and s.result is None and s.plane is None and not s.study.current(task)
    assert (s.display.turns, s.display.mirrored, s.display.window) == (0, False, None)


def test_mirror_turns_and_window_do_not_carry_over_to_the_next_file():
    s = ViewerSession()
    _show(s, "a.dcm", _scan("a.dcm", fmt="DICOM"))
    s.turn(1, True)
    s.display.window = Window(40, 80)
    _show(s, "b.jpg", _scan("b.jpg", fmt="JPEG"))
    assert (s.display.turns, s.display.mirrored, s.display.window) == (0, False, None)
    s.turn(3, False)
    s.turn(1, True)
    assert (s.display.turns, s.display.mirrored) == (0, True)
    assert (s.upright().turns, s.display.mirrored) == (0, False)


def test_a_right_drag_starts_from_the_window_on_screen():
    s = ViewerSession()
    _show(s, "a.dcm", _scan("a.dcm", fmt="DICOM"))
    file_window, auto = Window(300, 600), Window(1000, 2000)
    assert s.drag_start(file_window, auto) == file_window  # the file's own VOI window is what is shown
    assert s.drag_start(None, auto) == auto
    s.display.window = Window(10, 20)
    assert s.drag_start(file_window, auto) == Window(10, 20)


def test_a_file_of_a_series_stays_on_screen_and_a_volume_goes_to_its_key_slice():
    s = ViewerSession()
    series = _scan("IM0007.dcm", n=20, fmt="DICOM series", default=7)
    _, shown = _show(s, "IM0007.dcm", series)
    current, jump = s.study_done(shown.study_task, _answer("IM0007.dcm", max_slice=12, n_slices=20))
    assert current and jump is None and s.key_slice() == 12  # offered ("Go to key slice"), not forced
    vol = _scan("v.nii", n=20)
    _, shown = _show(s, "v.nii", vol)
    assert s.study_done(shown.study_task, _answer("v.nii", max_slice=12, n_slices=20)) == (True, 12)
    _, shown = _show(s, "w.nii", _scan("w.nii", n=20))
    s.open("w.nii", 3)
    s.opened(s.token, s.scan, PLANE, _answer("w.nii"))  # the user moved: no jump
    assert s.study_done(shown.study_task, _answer("w.nii", max_slice=12, n_slices=20)) == (True, None)
