"""Every bundled model passes the contract check, carries leakage-free metrics, and classifies."""

from __future__ import annotations

import numpy as np
import pytest

from gui.engine import Classifier
from gui.model import load_model
from gui.resources import bundled_models
from tests.conftest import brain_like


def test_bundled_pair_is_present_detector_first():
    paths = bundled_models()
    assert len(paths) >= 2, f"expected a detector and a type model in assets/models, found {paths}"
    tasks = [load_model(p).card["task"] for p in paths]
    assert tasks[0] == "binary" and "tumor-type" in tasks


@pytest.mark.parametrize("path", bundled_models(), ids=lambda p: p.name)
def test_bundled_model_loads_validates_and_classifies(path, tmp_path):
    model = load_model(path)
    card = model.card
    assert card["training"]["split_method"]["near_threshold_bits"] == 16  # leakage-free, by duplicate group
    assert card["test_metrics"]["n"] > 500 and 0.5 < card["test_metrics"]["accuracy"] <= 1.0
    assert card["verification"]["max_abs_probability_diff"] <= 1e-4
    assert card["verification"]["cam_vs_gradcam_min_correlation"] >= 0.99
    assert path.stat().st_size < 15_000_000
    from gui.imaging import read_image

    rgb = read_image(brain_like(tmp_path / "b.png", tumour=True))
    result = Classifier([model]).classify_image(rgb)
    assert result.prediction in ("tumor", "no_tumor") and 0 <= result.tumor_probability <= 1
    assert result.heat.shape == (7, 7)
    noise = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3)).astype(np.float32)
    assert model.predict(noise).ood_flag[0]  # colour noise does not look like brain MRI


def test_model_card_dialog_text_states_sources_and_limits():
    from gui.app.dialogs import card_html

    text = card_html(load_model(bundled_models()[0]))
    assert "Research use only" in text and "Limitations" in text
    assert "br35h: n = " in text and "brain-tumor-mri: n = " in text  # per-source test figures
