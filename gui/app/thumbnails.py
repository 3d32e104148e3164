"""Pictures of batch rows (scan + heatmap), rendered lazily in a pool thread and cached.

The table asks for a row's thumbnail only when the row is painted, so a batch of thousands of
files renders only what is on screen; a bounded cache keeps the recent ones. Rendering is the
core's ``gui.core.engine.heatmap.result_picture``; this class only moves it off the GUI thread.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap

from gui.app.viewer import to_qimage
from gui.core.engine.heatmap import result_picture
from gui.core.readers import ImageReadError
from gui.core.engine.result import Result


class _Signals(QObject):
    ready = Signal(int, str, object)  # generation, path, QImage (None: the file can no longer be read)


class _Render(QRunnable):
    def __init__(self, result: Result, size: int, signals: _Signals, generation: int) -> None:
        super().__init__()
        self.result, self.size, self.signals, self.generation = result, size, signals, generation

    def run(self) -> None:
        try:
            picture: np.ndarray | None = result_picture(self.result, self.size)
        except (ImageReadError, MemoryError, OSError):
            picture = None
        # QImage (not QPixmap) may be built outside the GUI thread.
        self.signals.ready.emit(self.generation, self.result.path, None if picture is None else to_qimage(picture))


class PictureCache(QObject):
    """``get(result)`` returns the cached QPixmap or None and starts rendering it; ``ready(path)``
    is emitted when a picture arrives. At most ``capacity`` pictures are kept (least recent out)."""

    ready = Signal(str)

    def __init__(self, size: int, capacity: int, parent=None) -> None:
        super().__init__(parent)
        self.size, self.capacity = size, capacity
        self._pictures: OrderedDict[str, QPixmap | None] = OrderedDict()
        self._pending: set[str] = set()
        #: Bumped by ``clear``: a render started before (another batch, another model) is dropped when it
        #: arrives, even if the same file was asked for again since.
        self.generation = 0
        self._signals = _Signals()
        self._signals.ready.connect(self._on_ready)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)  # one core stays with the batch's inference

    def get(self, result: Result) -> QPixmap | None:
        if not result.ok:
            return None
        if result.path in self._pictures:
            self._pictures.move_to_end(result.path)
            return self._pictures[result.path]
        if result.path not in self._pending:
            self._pending.add(result.path)
            self.pool.start(_Render(result, self.size, self._signals, self.generation))
        return None

    def clear(self) -> None:
        self.pool.clear()  # renders not started yet are dropped
        self.generation += 1  # a render in flight is dropped when it arrives
        self._pictures.clear()
        self._pending.clear()

    def _on_ready(self, generation: int, path: str, image: QImage | None) -> None:
        if generation != self.generation or path not in self._pending:
            return  # cleared meanwhile (a new batch, another model)
        self._pending.discard(path)
        self._pictures[path] = None if image is None else QPixmap.fromImage(image)
        while len(self._pictures) > self.capacity:
            self._pictures.popitem(last=False)
        self.ready.emit(path)
