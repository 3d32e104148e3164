"""What the window shows and which of its requests still count, without Qt: the file, the slice, the study being scored, and the display (turns, mirror, window).

Every change is a method that says what the window must do: a token per request (an answer whose
token is no longer the newest is dropped, whatever thread it comes from), a new file that resets the
display and starts a new study, a reopened file that is read and scored again, a model change that
forgets every cached answer, a slice that cannot be read (the study goes on) against a file that
cannot be read (nothing of the old file stays). The widgets only act on the answers; the rules are
unit-tested here (``tests/test_session.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gui.core.display import Window
from gui.core.engine.result import Result
from gui.core.readers import Plane, Scan
from gui.core.studyview import StudyView


@dataclass(frozen=True)
class OpenRequest:
    """Read (or re-read) a file or one slice of the shown file, and answer for it.

    ``scan``: the shown file's scan to reuse (another slice of it), else None (read the file);
    ``cached``: the study's own answer for that slice (no inference needed), else None."""

    token: int
    path: str
    frame: int | None
    scan: Scan | None = None
    cached: Result | None = None

    @property
    def new_file(self) -> bool:
        return self.scan is None


@dataclass(frozen=True)
class Shown:
    """An answer to put on screen: the window draws ``plane`` and ``result`` at ``frame``.

    ``new_file``: the slider, the letters, the display (turns, mirror, window) and the heat scale are
    reset, and ``study_task`` (when not None) is the token of the study scoring to start."""

    new_file: bool
    frame: int
    result: Result
    study_task: int | None = None


@dataclass(frozen=True)
class Failed:
    """A request that could not be answered. ``slice_only``: one slice of the shown study (the file,
    the slider and the study stay); else the file itself (nothing of the previous file stays)."""

    path: str
    reason: str
    slice_only: bool
    frame: int | None = None


@dataclass
class Display:
    """The user's display choices for the shown file: reset with every new file (a mirror carried
    over to the next file, a JPEG with no letters, would be a left-right mix-up)."""

    turns: int = 0
    mirrored: bool = False
    window: Window | None = None  # None: the file's own VOI window, else the study's percentile window


@dataclass
class ViewerSession:
    """The shown file and the requests about it. ``open`` makes a request; ``opened`` and ``failed``
    take the answers (dropping stale ones); ``model_changed`` forgets every answer of the old model."""

    token: int = 0
    scan: Scan | None = None
    plane: Plane | None = None
    frame: int = 0
    result: Result | None = None
    study: StudyView = field(default_factory=StudyView)
    display: Display = field(default_factory=Display)
    _pending: OpenRequest | None = None

    @property
    def path(self) -> str | None:
        return None if self.scan is None else str(self.scan.path)

    def open(self, path: str, frame: int | None = None) -> OpenRequest:
        """A file (Open, Recent, drop, a batch row) or, with ``frame``, one slice of the shown file.
        Opening the file already shown reads and scores it again: it may have changed on disk, and
        the user asked for it afresh."""
        self.token += 1
        if frame is not None and self.scan is not None and path == self.path:
            request = OpenRequest(self.token, path, frame, self.scan, self.study.cached(frame))
        else:
            self.study.restart()  # the old study's late answers and its jump no longer count
            request = OpenRequest(self.token, path, frame)
        self._pending = request
        return request

    def opened(self, token: int, scan: Scan, plane: Plane, result: Result) -> Shown | None:
        """The answer to request ``token``; None when a newer request has been made since."""
        request = self._pending
        if token != self.token or request is None:
            return None
        self.plane, self.result = plane, result
        if request.new_file:
            self.scan, self.display = scan, Display()
            self.frame = scan.default_frame if request.frame is None else request.frame
            # its study was restarted when the file was asked for (``open``): its task is this one
            self.study.jump_allowed = scan.format != "DICOM series"  # a file the user chose: kept on screen
            return Shown(True, self.frame, result, self.study.task if scan.is_study else None)
        self.frame = request.frame
        self.study.slice_shown(request.frame)
        return Shown(False, self.frame, result)

    def failed(self, token: int, path: str, reason: str) -> Failed | None:
        """Request ``token`` could not be answered; None when it is stale. A slice of the shown study
        fails alone; a file that fails leaves nothing of the previous file behind."""
        request = self._pending
        if token != self.token or request is None:
            return None
        if not request.new_file:
            self.frame = request.frame
            self.result, self.plane = None, None
            return Failed(path, reason, True, request.frame)
        self.scan = self.plane = self.result = None
        self.display, self.frame = Display(), 0  # the old study was dropped when this file was asked for
        return Failed(path, reason, False)

    def model_changed(self) -> OpenRequest | None:
        """Another model: every answer of the old one is forgotten (cached slices, the study) and the
        shown slice is asked again, with no cached answer; None when nothing is shown."""
        self.study.restart()
        if self.scan is None:
            return None
        self.token += 1
        request = OpenRequest(self.token, str(self.scan.path), self.frame, self.scan, None)
        self._pending = request
        return request

    def restart_study(self) -> int | None:
        """The token of a new scoring of the shown study (after a model change); None when none is shown."""
        if self.scan is None or not self.scan.is_study:
            return None
        return self.study.restart()

    def study_slices(self, task: int, results: list[Result]) -> bool:
        """Slice answers of a study's scoring: kept (True) only for the current study."""
        return self.scan is not None and self.study.add_slices(task, results)

    def study_done(self, task: int, result: Result) -> tuple[bool, int | None]:
        """The study's row: (current?, the slice to move to or None). The window moves to the key slice
        only when the user has chosen none: not for a file of a series opened by name, not after the
        slider, keys, wheel or strip moved."""
        if self.scan is None or not self.study.current(task):
            return False, None
        return True, self.study.finish(task, result)

    def key_slice(self) -> int | None:
        """The study's most suspicious slice, once scored (the panel's "Go to key slice")."""
        r = self.study.result
        return r.max_slice if r is not None and r.ok else None

    # ---------------------------------------------------------------- display

    def turn(self, quarter_turns: int, mirror: bool) -> Display:
        self.display.turns = (self.display.turns + quarter_turns) % 4
        self.display.mirrored ^= mirror
        return self.display

    def upright(self) -> Display:
        self.display.turns, self.display.mirrored = 0, False
        return self.display

    def drag_start(self, file_window: Window | None, auto_window: Window) -> Window:
        """The window a right-drag starts from: the one on screen, whichever it is (the user's, the
        file's own VOI window, else the study's percentile window), so the picture never jumps."""
        return self.display.window or file_window or auto_window
