"""The nested rule: a reported fold's epoch and threshold are chosen on the other folds only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import nested


def _fold(run, name, index, probs_by_epoch, aucs):
    (run / name).mkdir(parents=True)
    for e, (p, auc) in enumerate(zip(probs_by_epoch, aucs)):
        np.savez(run / name / f"predictions-{e}.npz", index=index, probabilities=np.stack([1 - p, p], 1))
        (run / name / f"metrics-{e}.json").write_text(json.dumps({"tumor_detection": {"roc_auc": auc}}))


def test_a_fold_is_reported_at_the_epoch_and_threshold_the_other_folds_chose(tmp_path):
    items = [{"label": "tumor" if i % 2 else "no_tumor", "tumor_type": "", "source": "abc"[i // 40],
              "sequence": ("t1", "t2")[(i // 2) % 2] if i < 40 else ""} for i in range(120)]
    cat = tmp_path / "cat.json"
    cat.write_text(json.dumps({"items": items, "sources": ["a", "b", "c"], "datasets": {}}))
    y = np.array([i % 2 for i in range(120)], float)
    run = tmp_path / "run"
    good, bad = 0.2 + 0.6 * y, np.full(120, 0.5)
    # a: its own best epoch would be 1; b and c both say epoch 0, with scores split at 0.3 / 0.7
    _fold(run, "a", np.arange(0, 40), [np.where(y[:40] == 1, 0.9, 0.8), good[:40]], [0.6, 1.0])
    _fold(run, "b", np.arange(40, 80), [good[40:80], bad[40:80]], [1.0, 0.5])
    _fold(run, "c", np.arange(80, 120), [good[80:120], bad[80:120]], [1.0, 0.5])
    res = nested.nested(str(run), str(cat))
    assert res["a"]["epoch"] == 0 and res["a"]["chosen_on"] == ["b", "c"]
    assert 0.2 < res["a"]["threshold"] <= 0.8
    # a at epoch 0: every image scores >= 0.8; at a threshold chosen elsewhere, every normal is wrong
    assert res["a"]["specificity"] == 0.0 and res["a"]["roc_auc"] == 1.0
    assert set(res["a"]["by_sequence"]) == {"t1", "t2"} and res["a"]["by_sequence"]["t1"]["n"] == 20
    assert res["b"]["by_sequence"]["unknown"]["n"] == 40
    assert "a" in res["b"]["chosen_on"] and "b" not in res["b"]["chosen_on"]


def test_the_anchored_calibration_shows_the_threshold_as_half_and_means_what_it_says():
    """Scores that are right 80 % of the time above a 0.3 threshold and 20 % below: anchored Platt puts
    0.3 at exactly 0.5 and brings the shown probabilities to the observed rates."""
    from training.calibrate import apply_anchored_platt, fit_anchored_platt

    rng = np.random.default_rng(0)
    p = np.where(rng.random(4000) < 0.5, 0.6, 0.1)
    y = (rng.random(4000) < np.where(p > 0.3, 0.8, 0.2)).astype(int)
    slope = fit_anchored_platt(p, y, 0.3)
    assert apply_anchored_platt(np.array([0.3]), 0.3, slope)[0] == 0.5
    shown = apply_anchored_platt(p, 0.3, slope)
    assert abs(shown[p == 0.6].mean() - 0.8) < 0.05 and abs(shown[p == 0.1].mean() - 0.2) < 0.05
    assert ((shown >= 0.5) == (p >= 0.3)).all()  # the same decisions


def test_the_cards_sequence_figures_are_the_mean_over_held_out_folds_that_have_its_tumours():
    """Each sequence's held-out sensitivity in the card is the mean over the folds with its tumours (every
    collection alike), tumour-only folds give no specificity, and a fold without the sequence is left out."""
    from export.card import sequence_entry_from_nested

    def row(sens, spec, tumour):
        return {"n": 100, "tumour": tumour, "roc_auc": None if spec is None else 0.9, "sensitivity": sens,
                "specificity": spec}

    nested = {"a": {"by_sequence": {"t1": row(0.6, 0.9, 50), "flair": row(0.9, 0.95, 40)}},
              "b": {"by_sequence": {"t1": row(0.8, None, 100), "unknown": row(0.99, 0.5, 70)}},
              "c": {"by_sequence": {"t2": row(1.0, 1.0, 0)}}}  # no tumours: no sensitivity to speak of
    e = sequence_entry_from_nested(nested)
    assert set(e) == {"t1", "flair"}
    assert e["t1"]["sensitivity"] == pytest.approx(0.7) and e["t1"]["specificity"] == pytest.approx(0.9)
    assert e["t1"]["tumours"] == 150 and set(e["t1"]["by_fold"]) == {"a", "b"} and "a, b" in e["t1"]["measured_on"]
