"""Temperature scaling and OOD statistics, on synthetic numbers with known answers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("scipy")

from gui.core.engine.ood import OodScorer, decode_array, encode_array  # noqa: E402
from training.calibrate import fit_ood, fit_temperature  # noqa: E402


def test_temperature_undoes_overconfidence():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (4000, 3))
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(true_logits, y) == pytest.approx(1.0, rel=0.1)


def test_ood_flags_far_embeddings_and_passes_near_ones():
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 5, (2, 100))
    y = rng.integers(0, 2, 3000)
    train = centres[y] + rng.normal(0, 1, (3000, 100))
    val = centres[rng.integers(0, 2, 500)] + rng.normal(0, 1, (500, 100))
    ood = fit_ood(train, y, val, k=16)
    scorer = OodScorer.from_card(ood)
    inside = scorer.score(centres[rng.integers(0, 2, 1000)] + rng.normal(0, 1, (1000, 100)))
    assert 0.97 <= np.mean(inside <= ood["threshold"]) <= 1.0  # the 99th percentile of validation
    far = scorer.score(rng.normal(0, 1, (200, 100)) * 6 + 40)
    assert np.all(far > ood["threshold"])
    # Off the training subspace but at a class mean's projection: only the residual term sees it.
    off = centres[:1] + 40 * np.linalg.svd(train - train.mean(0), full_matrices=False)[2][-1]
    assert scorer.score(off)[0] > ood["threshold"]


def test_array_encoding_round_trip():
    a = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    assert np.array_equal(decode_array(encode_array(a)), a)
