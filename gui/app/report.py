"""The PDF report of the current result: a QTextDocument printed to Qt's PDF writer.

Qt's text layout wraps every line to the page width and breaks pages itself, so no line can be
drawn over another or run off the page, whatever the names, types and model versions say.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QMarginsF, Qt, QUrl
from PySide6.QtGui import QColor, QFont, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter, QTextDocument

from gui.app.formatting import ANSWERS, group_title, measured_percent, percent, sequence_words, type_words
from gui.app.strip import strip_image
from gui.app.viewer import to_qimage
from gui.core.engine.classifier import Classifier
from gui.core.engine.contract import DISCLAIMER
from gui.core.engine.heatmap import blend, colormap_lut, heat_to_frame
from gui.core.readers import Scan
from gui.core.engine.result import Result
from gui.core.viewstate import Edges

#: Width of each picture, in the document's units (CSS pixels): two side by side fit the A4 text column.
IMAGE_WIDTH = 240


@dataclass
class StudyReport:
    """What a study's report adds: the study's result, its scan (to draw the key slice), the strip's
    slice probabilities and the overlay settings shown in the window."""

    result: Result
    scan: Scan
    probabilities: np.ndarray
    threshold: float
    opacity: float
    colormap: str


def report_html(file_label: str, facts: dict[str, str], result: Result, classifier: Classifier,
                threshold: float | None = None, lettered: bool = False) -> str:
    """The report's text (pictures referenced as ``scan``, ``overlay``, ``scale`` and, for a study,
    ``strip``), as HTML. Empty facts are left out (a series with no number says nothing about it)."""
    e = html.escape
    facts = {k: v for k, v in facts.items() if str(v).strip()}
    if result.sequence:
        facts["sequence"] = sequence_words(result)
    lines = ["<h2>MRI Tumor Classifier — result report</h2>",
             f"<p>File: <b>{e(file_label)}</b> · {e(' · '.join(f'{k} {v}' for k, v in facts.items()))}<br>"
             f"Date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>"]
    if result.is_study:
        where = f"slices {result.tumor_slices.replace(';', ', ')}" if result.tumor_slices else "no slice"
        lines += [f"<h3>Study of {result.n_slices} slices: {e(ANSWERS.get(result.prediction, result.prediction))} — "
                  f"study probability {e(percent(result.tumor_probability))}</h3>",
                  f"<p>Tumour evidence in {e(where)}. Most suspicious slice: <b>{result.max_slice}</b> "
                  f"(numbered from 0), shown below with its heatmap.</p>",
                  f'<p><img src="strip" width="500"><br><small>P(tumour) of every slice, left to right from slice 0 '
                  f"to slice {result.n_slices - 1}; the dashed line is the study threshold "
                  f"({e(percent(threshold if threshold is not None else result.threshold))}), hatched bars are above "
                  "it, the framed bar is the slice shown.</small></p>"]
    lines += [f'<table cellspacing="8"><tr><td><img src="scan" width="{IMAGE_WIDTH}"></td>'
              f'<td><img src="overlay" width="{IMAGE_WIDTH}"></td></tr></table>',
              '<p><small>Heatmap colours: P 0 <img src="scale" width="200" height="10"> 1'
              + (" · letters at the edges: the patient's Right, Left, Anterior, Posterior, Superior, Inferior "
                 "(radiological display)" if lettered else " · the file states no orientation") + "</small></p>"]
    if not result.is_study:
        lines.append(f"<h3>{e(ANSWERS.get(result.prediction, result.prediction))} — tumour probability "
                     f"{e(percent(result.tumor_probability))}</h3>")
    if result.tumor_type:
        lines.append(f"<p>Most likely type, if tumour: <b>{e(type_words(result.tumor_type))}</b> "
                     f"({e(percent(result.tumor_type_confidence))})</p>")
    if result.ood_warning:
        lines.append(f"<p><b>Caution — {e(result.ood_warning)}. Treat this answer as uncertain.</b></p>")
    for group, probs in result.probabilities.items():
        lines.append(f"<p>{e(group_title(group))}: " + ", ".join(f"{e(label)} {e(percent(p))}" for label, p in probs.items()) + "</p>")
    heat = "heatmap" in classifier.detector.extra_outputs
    lines.append("<p><small>Heatmap (right): " + ("P(tumour) at each place, from the model's tumour-map head; "
                 "brighter = more likely." if heat else "class activation map of the detector's answer; brighter = "
                 "stronger evidence.") + "</small></p>")
    lines.append("<h3>Models</h3><ul>")
    for m in classifier.models:
        cross = m.card.get("cross_source") or {}
        accs = [v["accuracy"] for v in cross.values() if v.get("accuracy") is not None]
        measured = (f"accuracy on collections it was not trained on (leave-one-source-out): "
                    f"{measured_percent(min(accs))} to {measured_percent(max(accs))}" if accs else
                    f"test accuracy {measured_percent((m.card.get('test_metrics') or {}).get('accuracy'))}")
        lines.append(f"<li>{e(m.name)}: {e(measured)}</li>")
    lines.append(f"</ul><p><b>{e(DISCLAIMER)}</b></p>")
    return "\n".join(lines)


def lettered(rgb: np.ndarray, edges: Edges | None) -> QImage:
    """The picture with the orientation letters at its edges, as the viewer draws them (yellow on a
    dark outline), so a printed key image is never read mirrored."""
    image = to_qimage(rgb).copy()
    if edges is None:
        return image
    painter = QPainter(image)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(max(10, image.width() // 18))
    painter.setFont(font)
    m = max(3, image.width() // 80)
    box, a = image.rect().adjusted(m, m, -m, -m), Qt.AlignmentFlag
    for text, align in ((edges.left, a.AlignLeft | a.AlignVCenter), (edges.right, a.AlignRight | a.AlignVCenter),
                        (edges.top, a.AlignTop | a.AlignHCenter), (edges.bottom, a.AlignBottom | a.AlignHCenter)):
        painter.setPen(QColor(0, 0, 0))
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            painter.drawText(box.translated(dx, dy), align, text)
        painter.setPen(QColor(255, 220, 0))
        painter.drawText(box, align, text)
    painter.end()
    return image


def write_pdf_report(path: str | Path, file_label: str, rgb: np.ndarray, overlay: np.ndarray | None, result: Result,
                     classifier: Classifier, facts: dict[str, str] | None = None,
                     study: StudyReport | None = None, edges: Edges | None = None, colormap: str = "inferno") -> None:
    """Image, heatmap overlay, answer, probabilities, cautions, the models with their measured
    accuracy, the file's technical facts, the date and the disclaimer, on A4 pages. A study's
    report shows its verdict, the slice strip and its key slice with that slice's heatmap.

    ``file_label`` is the file's name only: no folder (which may name a patient) and no DICOM
    patient fields ever reach the report; ``facts`` are the reader's technical facts only.
    """
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(150)
    writer.setTitle("MRI Tumor Classifier report")
    doc = QTextDocument()
    threshold = None
    if study is not None:
        result, threshold, colormap = study.result, study.threshold, study.colormap
        rgb = study.scan.frame(result.max_slice)
        heat = heat_to_frame(result.heat, result.geometry, rgb.shape[0], rgb.shape[1])
        overlay = blend(rgb, heat, study.opacity, study.colormap)
        doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl("strip"),
                        strip_image(study.probabilities, study.threshold, result.max_slice))
    doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl("scan"), lettered(rgb, edges))
    doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl("overlay"),
                    lettered(rgb if overlay is None else overlay, edges))
    doc.addResource(QTextDocument.ResourceType.ImageResource, QUrl("scale"),
                    to_qimage(np.ascontiguousarray(np.repeat(colormap_lut(colormap)[None], 10, axis=0))))
    doc.setHtml(report_html(file_label, facts or {}, result, classifier, threshold, edges is not None))
    doc.print_(writer)
