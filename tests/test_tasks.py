"""The window's one task runner: a newer request makes the older one stale, a cancel drops late answers,
every exception comes back as a message, progress reaches only the current request, and work not started
is taken back."""

from __future__ import annotations

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from gui.app.tasks import BACKGROUND, INTERACTIVE, RENDER, TaskRunner  # noqa: E402
from gui.core.readers import ImageReadError  # noqa: E402


@pytest.fixture
def runner(qtbot):
    from PySide6.QtCore import QCoreApplication, QObject

    owner = QObject()  # the runner is deleted with it, here, on the GUI thread
    r = TaskRunner(owner)
    yield r
    r.wait(10000)
    QCoreApplication.processEvents()  # the last answers are delivered: no job is left referenced
    import shiboken6

    shiboken6.delete(owner)  # now, on this thread: never left to the collector in a pool thread


def test_only_the_newest_request_of_a_key_is_answered(runner, qtbot):
    gate = threading.Event()
    answers = []
    runner.submit("open", INTERACTIVE, lambda _c: gate.wait(10) and "old", done=answers.append)
    runner.submit("open", INTERACTIVE, lambda _c: "new", done=answers.append)
    qtbot.waitUntil(lambda: answers == ["new"], timeout=5000)
    gate.set()
    assert runner.wait(5000)
    qtbot.wait(50)
    assert answers == ["new"] and not runner.running("open")


def test_every_exception_becomes_a_message(runner, qtbot):
    errors, unhandled = [], []
    runner.failed.connect(lambda key, message: unhandled.append((key, message)))

    def bad_file(_c):
        raise ImageReadError("x.dcm", "not a valid DICOM file")

    def bug(_c):
        raise KeyError("boom")

    runner.submit("a", INTERACTIVE, bad_file, done=lambda _v: None, error=errors.append)
    runner.submit("b", RENDER, bug, done=lambda _v: None)
    qtbot.waitUntil(lambda: len(errors) == 1 and len(unhandled) == 1, timeout=5000)
    assert errors == ["not a valid DICOM file"]
    assert unhandled[0][0] == "b" and unhandled[0][1].startswith("unexpected error: KeyError")


def test_a_cancelled_request_stops_and_says_nothing(runner, qtbot):
    started, answers, steps = threading.Event(), [], []

    def long_work(ctx):
        started.set()
        while not ctx.cancelled():
            steps.append(1)
            threading.Event().wait(0.01)
        return "finished"

    task = runner.submit("study", BACKGROUND, long_work, done=answers.append)
    assert started.wait(5)
    runner.cancel("study")
    assert task.cancelled and runner.wait(5000)
    qtbot.wait(50)
    assert answers == [] and not runner.running("study")


def test_progress_reaches_only_the_current_request(runner, qtbot):
    seen, gate = [], threading.Event()

    def reporting(tag):
        def work(ctx):
            ctx.report(tag)
            gate.wait(10)
            ctx.report(tag + " late")
            return tag
        return work

    runner.submit("batch", BACKGROUND, reporting("first"), done=lambda _v: None, progress=seen.append)
    qtbot.waitUntil(lambda: seen == ["first"], timeout=5000)
    done = []
    runner.submit("batch", BACKGROUND, reporting("second"), done=done.append, progress=seen.append)
    gate.set()
    qtbot.waitUntil(lambda: done == ["second"], timeout=5000)
    assert "first late" not in seen and seen[-1] == "second late"


def test_work_not_started_is_taken_back(runner, qtbot):
    gate = threading.Event()
    ran = []
    runner.submit("render-busy", RENDER, lambda _c: gate.wait(10), done=lambda _v: None)  # the one render thread
    runner.submit("picture:1", RENDER, lambda _c: ran.append(1), done=lambda _v: None)
    runner.cancel_all("picture:")
    gate.set()
    assert runner.wait(5000)
    assert ran == []
