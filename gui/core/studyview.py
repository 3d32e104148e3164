"""The shown study's state, without Qt: which scoring task is current, the slice answers it has sent,
and whether to jump to the key slice when it ends (not once the user has chosen a slice).

The window keeps one :class:`StudyView` and asks it about every message a worker sends; the rules
live here, where they are unit-tested, and the widgets only act on the answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from gui.core.engine.result import Result


@dataclass
class StudyView:
    """Task numbers make late messages harmless: a worker's answers count only while its number is
    the current one, and every new file, new model or cancel makes a new number."""

    task: int = 0
    slices: dict[int, Result] = field(default_factory=dict)  # slice number -> its own answer, as scored
    result: Result | None = None  # the study's row, once every slice is scored
    user_moved: bool = False  # the user chose a slice: the key-slice jump must not override it
    jump_allowed: bool = True  # False: the user opened this very slice (a file of a series) and keeps it
    _jump: int | None = None  # the slice the window itself is moving to

    def restart(self) -> int:
        """A new study (or none): forget the old one's answers; returns the new task number."""
        self.task += 1
        self.slices, self.result, self.user_moved, self._jump = {}, None, False, None
        self.jump_allowed = True
        return self.task

    def current(self, task: int) -> bool:
        return task == self.task

    def add_slices(self, task: int, results: list[Result]) -> bool:
        """Keep a batch of slice answers of the current task; False (ignored) for an old task's."""
        if not self.current(task):
            return False
        self.slices.update({r.slice: r for r in results if r.ok and r.slice is not None})
        return True

    def finish(self, task: int, result: Result) -> int | None:
        """The study's row arrived: keep it and return the slice to jump to (its key slice), or None
        when the task is old, the study failed, or the user has chosen a slice meanwhile."""
        if not self.current(task):
            return None
        self.result = result
        if result.ok and result.max_slice is not None and not self.user_moved and self.jump_allowed:
            self._jump = result.max_slice
            return result.max_slice
        return None

    def slice_shown(self, index: int) -> None:
        """A slice was asked for: by the user (slider, keys, wheel, strip), unless it is the jump itself."""
        if index != self._jump:
            self.user_moved = True

    def cached(self, index: int | None) -> Result | None:
        """The current study's answer for a slice, when it has been scored (no inference needed)."""
        return None if index is None else self.slices.get(index)
