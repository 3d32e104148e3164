"""Pictures of batch rows (scan + heatmap), rendered lazily in the task runner's render lane and cached.

The table asks for a row's thumbnail only when the row is painted, so a batch of thousands of
files renders only what is on screen; a bounded cache keeps the recent ones. Rendering is the
core's ``gui.core.engine.pictures.result_picture``; this class only asks the runner for it.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from functools import partial

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage, QPixmap

from gui.app.tasks import RENDER, Context, TaskRunner
from gui.app.viewer import to_qimage
from gui.core.engine.pictures import result_picture
from gui.core.engine.result import Result

_names = itertools.count(1)


def _render(result: Result, size: int, _ctx: Context) -> QImage:
    """A row's picture; QImage (not QPixmap) may be built outside the GUI thread."""
    return to_qimage(result_picture(result, size))


class PictureCache(QObject):
    """``get(result)`` returns the cached QPixmap or None and asks for it to be rendered; ``ready(path)``
    is emitted when a picture arrives. At most ``capacity`` pictures are kept (least recent out); a
    scan that can no longer be read is kept as None (no picture), never asked for again."""

    ready = Signal(str)

    def __init__(self, size: int, capacity: int, tasks: TaskRunner, parent=None) -> None:
        super().__init__(parent)
        self.size, self.capacity, self.tasks = size, capacity, tasks
        self._pictures: OrderedDict[str, QPixmap | None] = OrderedDict()
        self._pending: set[str] = set()
        self._prefix = f"picture:{next(_names)}:"

    def get(self, result: Result) -> QPixmap | None:
        if not result.ok:
            return None
        if result.path in self._pictures:
            self._pictures.move_to_end(result.path)
            return self._pictures[result.path]
        if result.path not in self._pending:
            self._pending.add(result.path)
            path = result.path
            self.tasks.submit(self._prefix + path, RENDER, partial(_render, result, self.size),
                              done=lambda image, p=path: self._keep(p, image),
                              error=lambda _reason, p=path: self._keep(p, None))
        return None

    def clear(self) -> None:
        """Forget every picture; renders asked for before (another batch, another model) are dropped."""
        self.tasks.cancel_all(self._prefix)
        self._pictures.clear()
        self._pending.clear()

    def _keep(self, path: str, image: QImage | None) -> None:
        self._pending.discard(path)
        self._pictures[path] = None if image is None else QPixmap.fromImage(image)
        while len(self._pictures) > self.capacity:
            self._pictures.popitem(last=False)
        self.ready.emit(path)
