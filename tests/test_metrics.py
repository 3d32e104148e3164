"""Every published figure equals a value computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import classification_metrics, expected_calibration_error, roc_auc


def test_binary_metrics_by_hand():
    classes = ["no_tumor", "tumor"]
    y = np.array([1, 1, 1, 0, 0])
    p_tumour = np.array([0.9, 0.6, 0.4, 0.3, 0.7])
    probs = np.stack([1 - p_tumour, p_tumour], axis=1)
    m = classification_metrics(y, probs, classes, ["no_tumor"])
    d = m["tumor_detection"]
    # tp: 0.9, 0.6; fn: 0.4; tn: 0.3; fp: 0.7
    assert (d["tp"], d["fn"], d["tn"], d["fp"]) == (2, 1, 1, 1)
    assert d["sensitivity"] == pytest.approx(2 / 3)
    assert d["specificity"] == pytest.approx(1 / 2)
    assert d["precision"] == pytest.approx(2 / 3)
    assert d["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(3 / 5)
    # positives {.9, .6, .4} vs negatives {.3, .7}: .9>.3, .9>.7, .6>.3, .4>.3 win: 4 of 6 pairs
    assert d["roc_auc"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]


def test_four_class_tumour_score_and_per_class():
    classes = ["glioma", "meningioma", "no_tumor", "pituitary"]
    y = np.array([0, 1, 2, 3])
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.5, 0.2, 0.2, 0.1], [0.1, 0.1, 0.8, 0.0], [0.1, 0.1, 0.6, 0.2]])
    m = classification_metrics(y, probs, classes, ["no_tumor"])
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["per_class"]["glioma"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert m["per_class"]["meningioma"]["precision"] is None
    d = m["tumor_detection"]
    assert (d["tp"], d["fn"], d["tn"], d["fp"]) == (2, 1, 1, 0)


def test_ece_by_hand():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    # bin 0.9: 2 images, both correct, |1-0.9| = 0.1; bin 0.6: 1 image wrong |0-0.6|; bin 0.8: right |1-0.8|
    assert expected_calibration_error(y, probs) == pytest.approx((2 * 0.1 + 0.6 + 0.2) / 4)


def test_auc_undefined_for_one_class():
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.9])) is None
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])) == pytest.approx(1.0)
