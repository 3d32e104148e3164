"""The probability strip of a study: one bar per slice, under the viewer; click or drag to jump.

Bars are as tall as the slice's P(tumour) and coloured like the answer (tumour / no tumour, with
a hatch on tumour bars so the answer does not rest on colour alone); slices not scored yet are
grey. The study threshold is a dashed line and the current slice a frame around its bar.
The painting is a plain function on a QPainter, so the PDF report draws the same strip.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.app import theme
from gui.app.formatting import percent

UNSCORED = QColor("#9e9e9e")


def paint_strip(painter: QPainter, rect: QRectF, p: np.ndarray, threshold: float, current: int | None,
                background: QColor, foreground: QColor, palette: dict[str, str] | None = None) -> None:
    """Bars of ``p`` (NaN: not scored yet) in ``rect``; ``current`` outlined; the threshold dashed.
    Answer colours from ``palette`` (default: the theme in use)."""
    painter.fillRect(rect, background)
    n = len(p)
    if n == 0:
        return
    width = rect.width() / n
    for k, value in enumerate(p):
        x = rect.left() + k * width
        if np.isnan(value):
            painter.fillRect(QRectF(x, rect.bottom() - 3, max(width - 1, 1), 3), UNSCORED)
            continue
        tumour = value >= threshold
        colour = QColor(theme.answer_colour("tumor" if tumour else "no_tumor", palette))
        h = max(2.0, float(value) * rect.height())
        bar = QRectF(x, rect.bottom() - h, max(width - (1 if width > 3 else 0), 1), h)
        painter.fillRect(bar, colour)
        if tumour:
            painter.fillRect(bar, Qt.BrushStyle.BDiagPattern)
    painter.setPen(QPen(foreground, 1, Qt.PenStyle.DashLine))
    y = rect.bottom() - threshold * rect.height()
    painter.drawLine(rect.left(), y, rect.right(), y)
    if current is not None and 0 <= current < n:
        painter.setPen(QPen(foreground, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(rect.left() + current * width, rect.top() + 1, max(width, 3), rect.height() - 2))


def strip_image(p: np.ndarray, threshold: float, current: int | None, width: int = 900, height: int = 90) -> QImage:
    """The strip as a picture on white in the light theme's colours, for the PDF report; safe outside
    the GUI thread."""
    image = QImage(width, height, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    paint_strip(painter, QRectF(0, 0, width, height), p, threshold, current, QColor("white"), QColor("black"),
                theme.LIGHT)
    painter.end()
    return image


class SliceStrip(QWidget):
    """The strip widget; emits ``slice_chosen(k)`` on click and drag."""

    slice_chosen = Signal(int)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.p = np.empty(0)
        self.threshold = 0.5
        self.current: int | None = None
        self.setMinimumHeight(44)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("P(tumour) of every slice: click or drag to jump to a slice")

    def start(self, n: int, threshold: float, current: int | None) -> None:
        """A new study: ``n`` slices, none scored yet."""
        self.p = np.full(n, np.nan)
        self.threshold, self.current = threshold, current
        self.update()

    @property
    def scored(self) -> int:
        """How many slices have a probability so far."""
        return int(np.isfinite(self.p).sum())

    def set_scores(self, slices: list[int], probabilities: list[float]) -> None:
        self.p[slices] = probabilities
        self.update()

    def set_current(self, k: int) -> None:
        self.current = k
        self.update()

    def slice_at(self, x: float) -> int | None:
        if len(self.p) == 0 or self.width() <= 0:
            return None
        return int(np.clip(x / self.width() * len(self.p), 0, len(self.p) - 1))

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        pal = self.palette()
        paint_strip(painter, QRectF(self.rect()), self.p, self.threshold, self.current,
                    pal.color(pal.ColorRole.Base), pal.color(pal.ColorRole.Text))
        painter.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        k = self.slice_at(event.position().x())
        if k is not None:
            self.slice_chosen.emit(k)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        k = self.slice_at(event.position().x())
        if k is None:
            return
        value = self.p[k]
        self.setToolTip(f"slice {k}: " + ("not scored yet" if np.isnan(value) else f"P(tumour) {percent(float(value))}"))
        if event.buttons() & Qt.MouseButton.LeftButton and k != self.current:
            self.slice_chosen.emit(k)
