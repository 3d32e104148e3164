"""Calibration statistics fitted on held-out data: softmax temperature and OOD statistics.

Plain numpy/scipy, so the arithmetic is testable without TensorFlow.
"""

from __future__ import annotations

import numpy as np

from gui.core.engine.ood import OodScorer, encode_array

OOD_COMPONENTS = 64
OOD_PERCENTILE = 99.0


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the validation negative log-likelihood of softmax(logits / T)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, np.float64)

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(res.x))


def fit_anchored_platt(p: np.ndarray, y: np.ndarray, threshold: float) -> float:
    """Platt scaling anchored at the decision threshold: the slope ``a`` of ``q = sigmoid(a * (logit(p) -
    logit(threshold)))`` minimising the negative log-likelihood of ``y``. The threshold maps to exactly
    0.5, so the decision taken at ``threshold`` is the one a reader takes at 50 % of the shown
    probability, and the slope makes that probability mean what it says (fitted on held-out folds)."""
    from scipy.optimize import minimize_scalar

    z = _logit(p) - _logit(np.float64(threshold))
    y = np.asarray(y, np.float64)

    def nll(log_a: float) -> float:
        s = np.exp(log_a) * z
        return float(np.mean(np.logaddexp(0.0, s) - y * s))

    res = minimize_scalar(nll, bounds=(-4.0, 3.0), method="bounded")
    return float(np.exp(res.x))


def apply_anchored_platt(p: np.ndarray, threshold: float, slope: float) -> np.ndarray:
    """P(tumour) as shown: ``sigmoid(slope * (logit(p) - logit(threshold)))`` (0.5 at the threshold)."""
    return 1.0 / (1.0 + np.exp(-slope * (_logit(p) - _logit(np.float64(threshold)))))


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def fit_ood(train_emb: np.ndarray, train_y: np.ndarray, val_emb: np.ndarray,
            k: int = OOD_COMPONENTS, percentile: float = OOD_PERCENTILE) -> dict:
    """OOD statistics (see ``gui.core.engine.ood.OodScorer``) from training embeddings; the threshold is
    the ``percentile`` of validation scores.

    A 64-component subspace plus one residual variance keeps the model card small (a full
    1280x1280 covariance would be 6.5 MB) while still catching what lies outside it.
    """
    x = np.asarray(train_emb, np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, len(s) - 1)
    n = max(len(x) - 1, 1)
    scale = s[:k] / np.sqrt(n)
    components = vt[:k] / np.maximum(scale, 1e-12)[:, None]
    residual_variance = float((s[k:] ** 2).sum() / n / max(x.shape[1] - k, 1))
    z = (x - mean) @ components.T
    classes = np.unique(train_y)
    class_means = np.stack([z[train_y == c].mean(axis=0) for c in classes])
    resid = z - class_means[np.searchsorted(classes, train_y)]
    cov = resid.T @ resid / max(len(z) - len(classes), 1)
    shrink = 0.1  # towards the identity: a few thousand samples do not pin 64x64 covariances
    cov = (1 - shrink) * cov + shrink * np.eye(k) * np.trace(cov) / k
    precision = np.linalg.inv(cov)
    scorer = OodScorer(mean.astype(np.float32), components.astype(np.float32), scale.astype(np.float32),
                       class_means.astype(np.float32), precision.astype(np.float32), residual_variance, 0.0)
    val_scores = scorer.score(val_emb)
    return {
        "method": f"Mahalanobis distance to the nearest class mean in the top {k} principal components of the "
                  "training embeddings (shared covariance, 10% shrinkage), plus the residual outside them "
                  "over its training standard deviation",
        "threshold": float(np.percentile(val_scores, percentile)),
        "threshold_percentile_of_validation": percentile,
        "mean": encode_array(mean),
        "components": encode_array(components),
        "scale": encode_array(scale),
        "class_means": encode_array(class_means),
        "precision": encode_array(precision),
        "residual_variance": residual_variance,
    }
