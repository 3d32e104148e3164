"""The batch summary: counts by answer in words and a small histogram of tumour probabilities.

Drawn with QPainter (no matplotlib in the app). Bars at or above the decision threshold are
hatched as well as coloured, so the picture does not rest on colour alone.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.app import theme

BINS = 10


def probability_counts(probabilities: list[float]) -> np.ndarray:
    """How many answers fall in each tenth of P(tumour) (1.0 in the last bin)."""
    return np.histogram(np.clip(probabilities, 0.0, 1.0), bins=BINS, range=(0.0, 1.0))[0]


class ProbabilityHistogram(QWidget):
    """Ten bars, one per tenth of P(tumour), with the threshold marked; tooltips give the counts."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.counts = np.zeros(BINS, int)
        self.threshold = 0.5
        self.setFixedSize(220, 56)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def set_probabilities(self, probabilities: list[float], threshold: float) -> None:
        self.counts = probability_counts(probabilities)
        self.threshold = threshold
        self.setToolTip("Tumour probability of the answers, in tenths: " + ", ".join(
            f"{10 * k}-{10 * (k + 1)} %: {c}" for k, c in enumerate(self.counts)))
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        pal = self.palette()
        rect = QRectF(self.rect()).adjusted(1, 1, -1, -12)
        painter.fillRect(self.rect(), pal.color(pal.ColorRole.Base))
        top = max(int(self.counts.max()), 1)
        width = rect.width() / BINS
        for k, count in enumerate(self.counts):
            h = rect.height() * count / top
            bar = QRectF(rect.left() + k * width + 1, rect.bottom() - h, width - 2, h)
            tumour = (k + 0.5) / BINS >= self.threshold
            painter.fillRect(bar, QColor(theme.answer_colour("tumor" if tumour else "no_tumor")))
            if tumour:
                painter.fillRect(bar, Qt.BrushStyle.BDiagPattern)
        painter.setPen(QPen(pal.color(pal.ColorRole.Text), 1))
        painter.drawLine(rect.left(), rect.bottom(), rect.right(), rect.bottom())
        x = rect.left() + self.threshold * rect.width()
        painter.drawLine(x, rect.top(), x, rect.bottom() + 3)
        painter.drawText(QRectF(0, rect.bottom() + 1, self.width(), 11), Qt.AlignmentFlag.AlignLeft, "0 %")
        painter.drawText(QRectF(0, rect.bottom() + 1, self.width(), 11), Qt.AlignmentFlag.AlignRight, "100 %")
        painter.end()
