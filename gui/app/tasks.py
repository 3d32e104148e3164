"""One way the window runs work off its thread: three lanes, a token per request, and one path back that drops stale answers and turns every exception into a message.

Lanes keep short work from waiting behind long work: ``interactive`` (a file or slice the user asked
for, a CSV export), ``background`` (a study's scoring, a batch: at a lower CPU priority than the
window's thread) and ``render`` (thumbnails, previews, the PDF report). Each request has a key
("open", "study", "batch", "picture:<path>"...) and a token; a newer request with the same key makes
the older one stale, and ``cancel(key)`` makes the current one so. An answer arrives on the GUI thread
through ``_finish`` only while its token is the key's current one; an exception in the work becomes the
request's error message (``ImageReadError``: its reason; anything else named, and logged), never a
traceback and never a window left waiting. The work itself is the core's: a plain function of a
:class:`Context` (progress and cancellation), as in Orange3's ``run(data, state)``.
"""

from __future__ import annotations

import itertools
import threading
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from gui.core.engine.priority import lower_this_thread
from gui.core.readers import ImageReadError
from gui.core.records.logs import log

INTERACTIVE, BACKGROUND, RENDER = "interactive", "background", "render"
#: Threads per lane: two interactive (a slice while a report is written), two background (a study and
#: a batch side by side), one render (one core stays with inference).
LANE_THREADS = {INTERACTIVE: 2, BACKGROUND: 2, RENDER: 1}


@dataclass
class Task:
    """A request in flight: its key and token, and the event its work polls between steps."""

    key: str
    token: int
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


class Context:
    """What a task's work gets: ``report(payload)`` sends progress to the GUI thread (dropped there
    when the request is stale), ``cancelled()`` says when to stop between two steps."""

    def __init__(self, runner: TaskRunner, task: Task) -> None:
        # Weak: a job never keeps its runner alive, so no cycle of Qt objects is left for Python's
        # collector to break in a pool thread (a QObject deleted off its thread crashes the process).
        self._runner, self._task = weakref.ref(runner), task

    def report(self, payload: Any) -> None:
        runner = self._runner()
        if runner is not None:
            runner._progress.emit(self._task.key, self._task.token, payload)

    def cancelled(self) -> bool:
        return self._task.cancelled

    def _answer(self, value: Any, error: str) -> None:
        """The work's value or error, sent back to the GUI thread (nothing when the runner is gone)."""
        runner = self._runner()
        if runner is not None:
            runner._done.emit(self._task.key, self._task.token, value, error)


@dataclass
class _Handlers:
    done: Callable[[Any], None]
    error: Callable[[str], None] | None
    progress: Callable[[Any], None] | None


class _Job(QRunnable):
    def __init__(self, runner: TaskRunner, task: Task, lane: str, work: Callable[[Context], Any]) -> None:
        super().__init__()
        self.context = Context(runner, task)
        self.task, self.lane, self.work = task, lane, work

    def run(self) -> None:
        if self.lane == BACKGROUND:
            lower_this_thread()  # the window's thread comes first (gui.core.engine.priority)
        value, error = None, ""
        try:
            value = self.work(self.context)
        except ImageReadError as exc:
            error = exc.reason
        except MemoryError:
            error = "not enough memory for this work"
        except Exception as exc:  # any other failure is a message on screen, and a traceback in the log
            error = f"unexpected error: {type(exc).__name__}: {exc}"
            log.error("%s failed\n%s", self.task.key, traceback.format_exc())
        self.context._answer(value, error)


class TaskRunner(QObject):
    """Lanes of pool threads, and the one place answers come back (``failed`` carries the errors of
    requests that named no error handler)."""

    _done = Signal(str, int, object, str)  # key, token, value, error ("" when none)
    _progress = Signal(str, int, object)  # key, token, payload
    failed = Signal(str, str)  # key, message: an error no handler took

    #: Every runner alive, so a test can wait until none has work left.
    instances: "weakref.WeakSet[TaskRunner]" = weakref.WeakSet()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pools: dict[str, QThreadPool] = {}
        for lane, threads in LANE_THREADS.items():
            # Children of the runner: deleted with it, by Qt, on its own thread (its destructor waits
            # for the pool's work), never by Python's collector wherever that happens to run.
            pool = QThreadPool(self)
            pool.setMaxThreadCount(threads)
            self.pools[lane] = pool
        self._current: dict[str, Task] = {}
        self._handlers: dict[tuple[str, int], _Handlers] = {}
        #: Every job until its answer is back (or it is taken back unstarted): a running job must outlive
        #: its cancel, and one not started yet is taken back from its pool.
        self._jobs: dict[tuple[str, int], tuple[QThreadPool, _Job]] = {}
        self._tokens = itertools.count(1)
        self._done.connect(self._finish)
        self._progress.connect(self._forward)
        TaskRunner.instances.add(self)

    def submit(self, key: str, lane: str, work: Callable[[Context], Any], done: Callable[[Any], None],
               error: Callable[[str], None] | None = None, progress: Callable[[Any], None] | None = None,
               token: int | None = None) -> Task:
        """Run ``work`` in ``lane``; the request with this key before it is cancelled and its answers
        dropped. ``token``: the caller's own request number (a session's), else one of the runner's."""
        self.cancel(key)
        task = Task(key, next(self._tokens) if token is None else token)
        self._current[key] = task
        self._handlers[(key, task.token)] = _Handlers(done, error, progress)
        job = _Job(self, task, lane, work)
        job.setAutoDelete(False)  # owned here (``_jobs``), so ``tryTake`` and a late answer find it alive
        self._jobs[(key, task.token)] = (self.pools[lane], job)
        self.pools[lane].start(job)
        return task

    def cancel(self, key: str) -> None:
        """Stop the current request of ``key`` between two steps; its late answers are dropped."""
        task = self._current.pop(key, None)
        if task is not None:
            task.cancel()
            self._handlers.pop((key, task.token), None)
            pool, job = self._jobs.get((key, task.token), (None, None))
            if pool is not None and pool.tryTake(job):  # not started yet: it never runs
                del self._jobs[(key, task.token)]

    def cancel_all(self, prefix: str = "") -> None:
        for key in [k for k in self._current if k.startswith(prefix)]:
            self.cancel(key)

    def running(self, key: str) -> bool:
        return key in self._current

    def current(self, key: str) -> Task | None:
        return self._current.get(key)

    def wait(self, msecs: int = 30000) -> bool:
        """Wait for every lane's work to end (closing the window; a test's end); a runner already
        deleted with its window has waited for its work then."""
        try:
            return all(pool.waitForDone(msecs) for pool in self.pools.values())
        except RuntimeError:  # the C++ pools are gone: deleted with their runner, after waiting
            return True

    def _live(self, key: str, token: int) -> _Handlers | None:
        task = self._current.get(key)
        return self._handlers.get((key, token)) if task is not None and task.token == token else None

    def _forward(self, key: str, token: int, payload: Any) -> None:
        handlers = self._live(key, token)
        if handlers is not None and handlers.progress is not None:
            handlers.progress(payload)

    def _finish(self, key: str, token: int, value: Any, error: str) -> None:
        self._jobs.pop((key, token), None)  # its thread is done with it
        handlers = self._live(key, token)
        if handlers is None:
            return  # a newer request with this key, or a cancel: stale
        del self._current[key]
        del self._handlers[(key, token)]
        if not error:
            handlers.done(value)
        elif handlers.error is not None:
            handlers.error(error)
        else:
            self.failed.emit(key, error)
