"""Classification metrics a clinician asks about, from labels and class probabilities.

scikit-learn computes ROC, AUC, the confusion matrix and per-class precision/recall; the tumour
detection counts and the expected calibration error are a few lines of numpy. Every figure is
checked against hand-computed values in tests. "Tumour" is any class not
listed as a no-tumour label; the tumour score of an image is ``1 - P(no-tumour classes)``
and the decision threshold on it is the one the app uses.
"""

from __future__ import annotations

import numpy as np

DECISION_THRESHOLD = 0.5
#: Confidence bins of the expected calibration error and of the reliability plot (one number for both).
CALIBRATION_BINS = 15


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def roc_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1) (scikit-learn)."""
    from sklearn.metrics import roc_curve as sk_roc_curve

    fpr, tpr, _ = sk_roc_curve(truth, score, drop_intermediate=False)
    return fpr, tpr


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (probability a random positive outranks a random negative); None
    when only one class is present."""
    from sklearn.metrics import roc_auc_score

    if truth.min() == truth.max():
        return None
    return float(roc_auc_score(truth, score))


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def confusion(y: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Rows: true class, columns: predicted class (scikit-learn, every class listed)."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(y, pred, labels=list(range(n)))


def tumor_scores(probs: np.ndarray, classes: list[str], no_tumor_labels: list[str]) -> np.ndarray:
    no = [classes.index(c) for c in no_tumor_labels if c in classes]
    return 1.0 - probs[:, no].sum(axis=1)


def classification_metrics(y: np.ndarray, probs: np.ndarray, classes: list[str], no_tumor_labels: list[str],
                           threshold: float = DECISION_THRESHOLD) -> dict:
    """Every figure we publish for one model on one set of images."""
    y = np.asarray(y)
    pred = probs.argmax(axis=1)
    cm = confusion(y, pred, len(classes))
    truth = np.array([classes[k] not in no_tumor_labels for k in y])
    score = tumor_scores(probs, classes, no_tumor_labels)
    called = score >= threshold
    tp = int(np.sum(truth & called))
    tn = int(np.sum(~truth & ~called))
    fp = int(np.sum(~truth & called))
    fn = int(np.sum(truth & ~called))
    precision = _ratio(tp, tp + fp)
    sensitivity = _ratio(tp, tp + fn)
    f1 = None if not precision or not sensitivity else 2 * precision * sensitivity / (precision + sensitivity)
    from sklearn.metrics import precision_recall_fscore_support

    prec, rec, _f, support = precision_recall_fscore_support(y, pred, labels=list(range(len(classes))),
                                                             zero_division=np.nan)
    per_class = {c: {"precision": None if np.isnan(prec[k]) else float(prec[k]),
                     "recall": None if np.isnan(rec[k]) else float(rec[k]), "support": int(support[k])}
                 for k, c in enumerate(classes)}
    return {
        "n": int(len(y)),
        "accuracy": float((pred == y).mean()),
        "tumor_detection": {
            "threshold": threshold,
            "accuracy": float((called == truth).mean()),
            "sensitivity": sensitivity,
            "specificity": _ratio(tn, tn + fp),
            "precision": precision,
            "f1": f1,
            "roc_auc": roc_auc(truth.astype(int), score),
            "tp": tp, "tn": tn, "fp": fp, "fn": fn,
        },
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "ece": expected_calibration_error(y, probs),
        "nll": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)))),
    }
