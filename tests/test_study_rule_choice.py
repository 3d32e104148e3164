"""How the study rule and the caution band are chosen from held-out predictions (training analyses)."""

from __future__ import annotations

import numpy as np

from gui.core.engine.study import StudyRule
from training import caution, series


def record(p: list[float], tumour: list[bool]) -> dict:
    return {"patient": "x", "p": np.array(p), "tumour": np.array(tumour)}


def test_free_run_keeps_away_from_the_tumour():
    tumour = np.zeros(30, bool)
    tumour[12:16] = True
    assert series.free_run(tumour) == slice(18, 30)  # two slices of margin after the tumour, 12 slices
    short = np.zeros(12, bool)
    short[3:6] = True
    assert series.free_run(short) is None  # 4 slices left after the margin: fewer than 8


def test_evaluate_counts_volumes_key_slices_and_ranges():
    tumour = [False] * 10 + [True] * 3 + [False] * 12
    p = [0.1] * 10 + [0.6, 0.95, 0.7] + [0.2] * 12
    e = series.evaluate([record(p, tumour)], StudyRule(1, 0.65))
    assert e["sensitivity"] == 1.0 and e["specificity"] == 1.0 and e["key_slice_in_marked_range_pm1"] == 1.0
    assert e["range_jaccard"] == 2 / 3  # slices 11-12 said, 10-12 marked
    missed = series.evaluate([record(p, tumour)], StudyRule(1, 0.99))
    assert missed["sensitivity"] == 0.0


def test_choose_puts_sensitivity_first():
    """One volume's tumour only reaches 0.55: the chosen rule must still find it, at the cost of the
    tumour-free run that reaches 0.5."""
    a = record([0.1] * 20 + [0.9, 0.9] + [0.1] * 3, [False] * 20 + [True] * 2 + [False] * 3)
    b = record([0.5] * 12 + [0.1] * 8 + [0.55] + [0.1] * 4, [False] * 20 + [True] + [False] * 4)
    rule = series.choose([a, b])
    assert series.evaluate([a, b], rule)["sensitivity"] == 1.0


def test_when_no_rule_reaches_the_floor_the_most_sensitive_is_chosen():
    """No rule finds 95% of the tumour volumes (one is never found). One slice finds 4 of 5 but calls
    three tumour-free runs with a lone bright slice; two slices find 3 of 5 and call none. Balanced
    accuracy would take two slices (0.8 against 0.6); sensitivity first takes one."""
    lone = record([0.1] * 20 + [0.9] + [0.1] * 4, [False] * 20 + [True] + [False] * 4)
    noisy = record([0.9] + [0.1] * 19 + [0.9] * 3 + [0.1] * 2, [False] * 20 + [True] * 3 + [False] * 2)
    missed = record([0.1] * 20 + [0.3] + [0.1] * 4, [False] * 20 + [True] + [False] * 4)
    records = [lone, noisy, noisy, noisy, missed]
    assert series.evaluate(records, series.StudyRule(2, 0.5))["balanced_accuracy"] == 0.8
    rule = series.choose(records)
    assert rule.run == 1 and series.evaluate(records, rule)["sensitivity"] == 0.8


def test_caution_band_is_the_narrowest_reaching_the_target():
    p = np.array([0.05, 0.95, 0.55, 0.45, 0.9, 0.1])
    fold = {"p": p, "error": np.array([0, 0, 1, 1, 0, 0]), "disagree": np.zeros(6, bool)}
    assert caution._band([fold], 0.95) == 0.06  # |p - 0.5| < 0.06 flags the two wrong answers
    assert caution._band([fold], 0.5) == 0.0
