"""The shown study's rules (gui/core/studyview.py), without a window: late messages are dropped, the
key-slice jump never overrides a slice the user chose, scored slices are answered from the cache."""

from __future__ import annotations

from gui.core.engine.result import Result
from gui.core.studyview import StudyView


def _slice(k: int, p: float) -> Result:
    return Result(path="v.nii", prediction="tumor" if p >= 0.5 else "no_tumor", tumor_probability=p, slice=k)


def _study(key: int) -> Result:
    return Result(path="v.nii", prediction="tumor", tumor_probability=0.9, n_slices=10, max_slice=key)


def test_an_old_tasks_messages_are_dropped():
    view = StudyView()
    old = view.restart()
    new = view.restart()
    assert not view.add_slices(old, [_slice(0, 0.2)]) and view.cached(0) is None
    assert view.finish(old, _study(3)) is None and view.result is None
    assert view.add_slices(new, [_slice(0, 0.2), _slice(1, 0.7)]) and view.cached(1).tumor_probability == 0.7


def test_the_jump_goes_to_the_key_slice_unless_the_user_chose_one():
    view = StudyView()
    task = view.restart()
    assert view.finish(task, _study(7)) == 7
    view.slice_shown(7)  # the jump itself is not the user's choice
    assert not view.user_moved
    task = view.restart()
    view.slice_shown(2)
    assert view.user_moved and view.finish(task, _study(7)) is None


def test_a_failed_or_unreadable_slice_is_not_cached_and_a_failed_study_does_not_jump():
    view = StudyView()
    task = view.restart()
    view.add_slices(task, [Result(path="v", status="error", error="damaged", slice=4)])
    assert view.cached(4) is None and view.cached(None) is None
    assert view.finish(task, Result(path="v", status="error", error="no slice could be read")) is None


def test_restart_forgets_everything():
    view = StudyView()
    task = view.restart()
    view.add_slices(task, [_slice(0, 0.9)])
    view.slice_shown(0)
    view.finish(task, _study(0))
    view.restart()
    assert (view.slices, view.result, view.user_moved) == ({}, None, False)
