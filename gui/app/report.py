"""One-page PDF report of the current result, written with Qt's own PDF writer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMarginsF, QRectF, Qt
from PySide6.QtGui import QFont, QPageLayout, QPageSize, QPainter, QPdfWriter

from gui.app.formatting import ANSWERS, percent
from gui.app.viewer import to_qimage
from gui.core.engine import Classifier, Result
from gui.core.model import DISCLAIMER



def write_pdf_report(path: str | Path, file_label: str, rgb: np.ndarray, overlay: np.ndarray, result: Result,
                 classifier: Classifier) -> None:
    """Image, heatmap overlay, answer, probabilities, models, date and the disclaimer on A4.

    ``file_label`` is the file's name only: no folder (which may name a patient) and no
    DICOM patient fields ever reach the report.
    """
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(150)
    writer.setTitle("MRI Tumor Classifier report")
    painter = QPainter(writer)
    try:
        width = writer.width()
        y = 0.0

        def text(s: str, size: int = 11, bold: bool = False, height: float = 1.6) -> None:
            nonlocal y
            font = QFont("Helvetica", size)
            font.setBold(bold)
            painter.setFont(font)
            h = size * height * writer.resolution() / 72
            painter.drawText(QRectF(0, y, width, h), Qt.TextFlag.TextWordWrap, s)
            y += h

        text("MRI Tumor Classifier — result report", 16, True)
        text(f"File: {file_label}    Date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}", 10)
        y += 10
        side = (width - 20) / 2
        for k, img in enumerate((rgb, overlay)):
            qimg = to_qimage(img)
            scale = min(side / qimg.width(), side / qimg.height())
            painter.drawImage(QRectF(k * (side + 20), y, qimg.width() * scale, qimg.height() * scale), qimg)
        y += side + 20
        text(f"{ANSWERS.get(result.prediction, result.prediction)} — tumour probability "
             f"{percent(result.tumor_probability)}", 14, True)
        if result.tumor_type:
            text(f"Most likely type if tumour: {result.tumor_type} ({percent(result.tumor_type_confidence)})", 11)
        if result.ood_warning:
            text(f"Warning: {result.ood_warning}.", 11, True)
        for model_name, probs in result.probabilities.items():
            text(f"{model_name}: " + ", ".join(f"{label} {percent(p)}" for label, p in probs.items()), 10)
        text("Heatmap (right): P(tumour) at each place, from the model's tumour-map head; brighter = more likely."
             if classifier.detector.extra_outputs and "heatmap" in classifier.detector.extra_outputs else
             "Heatmap (right): class activation map of the detector's answer; brighter = stronger evidence.", 9)
        y += 10
        text(DISCLAIMER + " Models: " + "; ".join(m.name for m in classifier.models), 11, True)
    finally:
        painter.end()
