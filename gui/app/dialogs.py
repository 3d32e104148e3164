"""Dialogs: the model card, and the report shown when something unexpected goes wrong."""

from __future__ import annotations

import html

from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
)

from gui.app.formatting import measured_percent
from gui.core.engine.classifier import SEQUENCE_CAUTION
from gui.core.engine.model import Model
from gui.core.engine.precision import describe as describe_precision
from gui.core.readers.sequence import SEQUENCE_NAMES


def _num(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def split_text(m: dict) -> str:
    """The split method in words (the card stores it as data)."""
    if not m:
        return "not recorded"
    if "grouping" in m and "fractions" not in m:  # the multi-source catalogue states it in words
        return f"{m['grouping']}; {m.get('parts', '')}; sources: {m.get('sources', '')}"
    parts = "/".join(f"{round(100 * f)}" for f in m.get("fractions", {}).values())
    text = (f"by near-duplicate group: {m.get('hash', 'perceptual hash')}, Hamming distance <= "
            f"{m.get('near_threshold_bits')} bits, plus exact copies, grouped with union-find; {parts} % "
            f"({'/'.join(m.get('fractions', {}))}), stratified, seed {m.get('seed')}")
    if m.get("holdout"):
        text += f"; test = {m['holdout']} images with no near-duplicate in the training sources"
    return text


def _calibration_words(cal: dict) -> str:
    """How the shown probability was calibrated: the temperature, and where the card has one the Platt
    scaling that puts the threshold chosen on held-out collections at 50 %."""
    words = f"temperature {cal.get('temperature', 1):.3f}"
    if "anchor_threshold" in cal:
        words += (f"; the threshold chosen on collections it was not trained on ({cal['anchor_threshold']:.2f}) "
                  f"shows as 50 % (Platt scaling, slope {cal['slope']:.2f}, fitted on them)")
    return words


def card_html(model: Model) -> str:
    """The parts of a model card a reader wants, as HTML (OOD arrays left out)."""
    c = model.card
    t = c.get("test_metrics") or {}
    tr = c.get("training", {})
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in [
        ("Task", html.escape(c["task"])), ("Labels", html.escape(", ".join(c["labels"]))),
        ("Architecture", f"{html.escape(str(c.get('architecture')))} ({c.get('parameters', 0):,} parameters)"),
        ("Arithmetic", html.escape(describe_precision(c))),
        ("Input", f"{c['input']['size']}×{c['input']['size']} RGB 0-255"),
        ("Training data", html.escape(", ".join(tr.get("datasets", [])))),
        ("Split", html.escape(split_text(tr.get("split_method", {})))),
        ("Test set", f"{html.escape(str(t.get('split', '')))} (n = {t.get('n', 'n/a')})"),
        ("Accuracy", measured_percent(t.get("accuracy"))), ("Sensitivity", measured_percent(t.get("sensitivity"))),
        ("Specificity", measured_percent(t.get("specificity"))), ("ROC AUC", _num(t.get("roc_auc"))),
        ("Calibration", _calibration_words(c["calibration"]) + f"; expected calibration error {_num(t.get('ece'))}"),
        ("Decision threshold", c["decision_threshold"]), ("Created", html.escape(str(c.get("created")))),
    ])
    by_source = "".join(
        f"<li>{html.escape(d)}: n = {x['n']}, accuracy {measured_percent(x['accuracy'])}, sensitivity {measured_percent(x['sensitivity'])}, "
        f"specificity {measured_percent(x['specificity'])}</li>" for d, x in (t.get("by_dataset") or {}).items())
    cross = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m['n']}</td><td>{measured_percent(m['accuracy'])}</td><td>{measured_percent(m['sensitivity'])}</td>"
        f"<td>{measured_percent(m['specificity'])}</td><td>{_num(m.get('roc_auc'))}</td><td>{measured_percent(m.get('pointing_game'))}</td></tr>"
        for name, m in (c.get("cross_source") or {}).items())
    series = c.get("series_rule") or {}
    studies = "".join(
        f"<li>{html.escape(h)} held out: {m['tumour_volumes']} tumour volumes, sensitivity "
        f"{measured_percent(m['sensitivity'])}; specificity {measured_percent(m['specificity'])} on "
        f"{m['tumour_free_volumes']} tumour-free runs of slices; key slice inside the tumour's slices (±1) "
        f"{measured_percent(m['key_slice_in_marked_range_pm1'])}</li>"
        for h, m in (series.get("measured_nested") or {}).items())
    op = c.get("operating_point") or {}
    op_folds = "".join(
        f"<li>{html.escape(f)}: sensitivity {measured_percent(v['sensitivity'])}, specificity "
        f"{measured_percent(v['specificity'])} (n = {v['n']})</li>" for f, v in (op.get("folds") or {}).items())
    sequences = "".join(
        f"<li>{html.escape(SEQUENCE_NAMES.get(q, q))}: sensitivity {measured_percent(m['sensitivity'])}"
        + (f", specificity {measured_percent(m['specificity'])}" if m.get("specificity") is not None else "")
        + f" ({m.get('tumours', 'n/a')} tumours; {html.escape(str(m.get('measured_on', '')))})"
        + (" — <b>answers on this sequence carry a caution</b>" if m["sensitivity"] < SEQUENCE_CAUTION else "")
        + "</li>" for q, m in (c.get("held_out_by_sequence") or {}).items())
    turns = (c.get("orientation") or {}).get("by_transform") or {}
    orientation = "".join(
        f"<li>{html.escape(name)}: P(tumour) moves by {v['mean_abs_dp']:.3f} on average; "
        f"{measured_percent(v['answers_flipped'])} of answers change</li>" for name, v in turns.items())
    others = "".join(
        f"<li>{html.escape(name)}: n = {m['n']}, accuracy {measured_percent(m['accuracy'])}, sensitivity {measured_percent(m['sensitivity'])}, "
        f"specificity {measured_percent(m['specificity'])}</li>" for name, m in (c.get("other_evaluations") or {}).items())
    return (f"<h2>{html.escape(model.name)}</h2><p><b>{html.escape(c['disclaimer'])}</b></p>"
            f"<table cellpadding=3>{rows}</table>"
            + (f"<h3>On collections it was not trained on (leave-one-source-out)</h3>"
               f"<p>What to expect on scans from elsewhere: each row is a model trained without that collection "
               f"and tested on it.</p><table cellpadding=3><tr><th>held out</th><th>n</th><th>accuracy</th>"
               f"<th>sensitivity</th><th>specificity</th><th>ROC AUC</th><th>heatmap on tumour</th></tr>{cross}</table>"
               if cross else "")
            + (f"<h3>Decision threshold</h3><p>Tumour when P(tumour) ≥ {c['decision_threshold']:.2f}: "
               f"{html.escape(op.get('rule', ''))}, chosen on collections the model was not trained on (pooled "
               f"sensitivity {measured_percent(op['pooled']['sensitivity'])}, specificity "
               f"{measured_percent(op['pooled']['specificity'])}, n = {op['pooled']['n']}). At this threshold:</p>"
               f"<ul>{op_folds}</ul>" if op else "")
            + (f"<h3>By MR sequence, on images it was never trained on</h3><p>At the decision threshold "
               f"{c['decision_threshold']:.2f}; a sequence below {100 * SEQUENCE_CAUTION:.0f} % sensitivity is named in a "
               f"caution on every answer for it (the sequence from the file's DICOM tags, else the model's own reading):"
               f"</p><ul>{sequences}</ul>" if sequences else "")
            + (f"<h3>Orientation</h3><p>The same scan mirrored or turned ({html.escape((c.get('orientation') or {}).get('measured_on', ''))}):"
               f"</p><ul>{orientation}</ul>" if orientation else "")
            + (f"<h3>Studies (volumes and series)</h3><p>{html.escape(series.get('rule', ''))}. Measured on "
               f"the lgg volumes of hospitals the model never saw, each with the rule chosen on the other two "
               f"hospitals:</p><ul>{studies}</ul>"
               f"<p><small>{html.escape(series.get('chosen_on', ''))}</small></p>" if series else "")
            + (f"<h3>Test figures by source dataset</h3><ul>{by_source}</ul>" if by_source else "")
            + (f"<h3>Other evaluations</h3><ul>{others}</ul>" if others else "")
            + f"<h3>Intended use</h3><p>{html.escape(c['intended_use'])}</p>"
            + (f"<h3>Limitations</h3><p>{html.escape(c['limitations'])}</p>" if c.get("limitations") else "")
            + f"<p><small>{html.escape(str(model.path))}</small></p>")


class ModelCardDialog(QDialog):
    def __init__(self, models: list[Model], parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model cards")
        self.resize(720, 640)
        tabs = QTabWidget()
        for m in models:
            view = QTextBrowser()
            view.setHtml(card_html(m))
            tabs.addTab(view, m.card["name"])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(buttons)


class ErrorReportDialog(QDialog):
    """An unexpected error: what happened, where the log is, and a copyable report."""

    def __init__(self, report: str, log_path: Path | None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Something went wrong")
        self.resize(640, 420)
        text = QPlainTextEdit(report)
        text.setReadOnly(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        copy = buttons.addButton("Copy report", QDialogButtonBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QApplication.clipboard().setText(report))
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        where = f"The report below was also written to {log_path}." if log_path is not None else \
            "No log file is kept (the app's per-user folder cannot be written): copy the report below."
        layout.addWidget(QLabel("An unexpected error occurred. The app is still usable; your files were not changed.\n" + where))
        layout.addWidget(text)
        layout.addWidget(buttons)
