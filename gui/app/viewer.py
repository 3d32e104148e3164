"""The image view: slices by wheel and keys, zoom by Ctrl+wheel, pan by left-drag, window/level by
right-drag, and the viewer's text on the image (orientation letters, slice, position, window)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from gui.core.viewstate import Edges

#: Keys that move through slices, and by how much (Home and End jump to the ends).
SLICE_KEYS = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_PageUp: 10, Qt.Key.Key_PageDown: -10}


def to_qimage(rgb: np.ndarray) -> QImage:
    """A deep copy of ``uint8 [H, W, 3]`` as a QImage (Qt must not point into numpy memory)."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ImageViewer(QGraphicsView):
    """Emits what the user asks for; the window decides what it means (no slice or window state here
    beyond what is drawn)."""

    slice_step = Signal(int)  # move by this many slices
    slice_end = Signal(bool)  # True: the last slice, False: the first
    window_drag = Signal(float, float, bool)  # dx, dy in pixels since the press; True on the press itself

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.setAcceptDrops(False)  # drops are handled by the window, anywhere on it
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._fit = True
        self._press: QPointF | None = None
        self.has_slices = False
        self.turns, self.flipped = 0, False  # display only: quarter turns clockwise, mirrored left-right
        self.edges: Edges | None = None
        self.corner_text = {"bottom_left": "", "bottom_right": "", "top_left": ""}

    # ---------------------------------------------------------------- picture

    def show_rgb(self, rgb: np.ndarray, keep_view: bool = False) -> None:
        self.show_pixmap(QPixmap.fromImage(to_qimage(rgb)), keep_view)

    def show_pixmap(self, pixmap: QPixmap, keep_view: bool = False) -> None:
        self._item.setPixmap(pixmap)
        self._apply_turns()
        if not keep_view:
            self.fit()
        self.viewport().update()

    def clear(self) -> None:
        self.clear_picture()
        self.edges = None
        self.corner_text = {k: "" for k in self.corner_text}

    def clear_picture(self) -> None:
        """No picture (a slice that could not be read), the study's letters and slice text kept."""
        self._item.setPixmap(QPixmap())
        self.viewport().update()

    def fit(self) -> None:
        self._fit = True
        self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self._fit = False
        self.scale(factor, factor)

    def set_orientation(self, turns: int, flipped: bool) -> None:
        """Display-only turns and mirror: the letters follow, the answer does not change."""
        self.turns, self.flipped = turns % 4, flipped
        self._apply_turns()
        self.fit()
        self.viewport().update()

    def _apply_turns(self) -> None:
        rect = self._item.boundingRect()
        c = rect.center()
        t = QTransform().translate(c.x(), c.y())
        t = t.rotate(90 * self.turns)
        if self.flipped:
            t = t.scale(-1, 1)
        self._item.setTransform(t.translate(-c.x(), -c.y()))
        self.scene().setSceneRect(self._item.sceneBoundingRect())

    # ---------------------------------------------------------------- text on the image

    def drawForeground(self, painter: QPainter, rect) -> None:  # noqa: N802 (Qt naming)
        if self._item.pixmap().isNull():
            return
        painter.save()
        painter.resetTransform()  # viewport coordinates: the text keeps its size at any zoom
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        vp = self.viewport().rect()
        m = 6
        flags = Qt.AlignmentFlag
        if self.edges is not None:
            e = self.edges.turned(self.turns, self.flipped)
            for text, align in ((e.left, flags.AlignLeft | flags.AlignVCenter), (e.right, flags.AlignRight | flags.AlignVCenter),
                                (e.top, flags.AlignTop | flags.AlignHCenter), (e.bottom, flags.AlignBottom | flags.AlignHCenter)):
                self._text(painter, vp.adjusted(m, m, -m, -m), align, text)
        for key, align in (("bottom_left", flags.AlignLeft | flags.AlignBottom),
                           ("bottom_right", flags.AlignRight | flags.AlignBottom), ("top_left", flags.AlignLeft | flags.AlignTop)):
            if self.corner_text[key]:
                self._text(painter, vp.adjusted(m, m, -m, -m), align, self.corner_text[key])
        painter.restore()

    @staticmethod
    def _text(painter: QPainter, rect, align, text: str) -> None:
        """Yellow text with a dark outline: readable on any part of a grey image (the DICOM viewers' habit)."""
        painter.setPen(QColor(0, 0, 0))
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            painter.drawText(rect.translated(dx, dy), align, text)
        painter.setPen(QColor(255, 230, 90))
        painter.drawText(rect, align, text)

    # ---------------------------------------------------------------- input

    def wheelEvent(self, event) -> None:  # noqa: N802
        up = event.angleDelta().y() > 0
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier or not self.has_slices:
            self.zoom(1.25 if up else 0.8)
        else:
            self.slice_step.emit(1 if up else -1)
        event.accept()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        if self.has_slices and key in SLICE_KEYS:
            self.slice_step.emit(SLICE_KEYS[key])
        elif self.has_slices and key in (Qt.Key.Key_Home, Qt.Key.Key_End):
            self.slice_end.emit(key == Qt.Key.Key_End)
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.RightButton:
            self._press = event.position()
            self.window_drag.emit(0.0, 0.0, True)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._press is not None and event.buttons() & Qt.MouseButton.RightButton:
            d = event.position() - self._press
            self.window_drag.emit(d.x(), d.y(), False)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.RightButton:
            self._press = None
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (right-drag is window/level, not a menu)
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit:
            self.fit()
