"""End to end on the real datasets (skipped when ../shared/data is absent): the app's headless command
on leakage-free test images agrees with the training pipeline's measurement of the bundled model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gui.core.commands import classify as cli
from gui.core.resources import bundled_models
from tests.conftest import require_shared_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.data
@pytest.mark.slow
def test_headless_classify_on_test_part_matches_evaluation(tmp_path):
    require_shared_data()
    from training import catalogue, split

    doc = split.load(ROOT / "runs" / "splits" / "multisource.json")
    test = catalogue.fold(doc, None)["test"][::10]  # ~230 leakage-free test images of all six sources
    rows = [doc["items"][i] for i in test]
    files = [ROOT / doc["datasets"][r["dataset"]] / r["path"] for r in rows]
    out = tmp_path / "test.csv"
    assert cli.classify_main([*map(str, files), "--csv", str(out), "--model", str(bundled_models()[0])]) == 0
    with out.open() as fh:
        got = list(csv.DictReader(fh))
    truth = {str(f): r["label"] for f, r in zip(files, rows)}
    accuracy = sum(g["prediction"] == truth[g["path"]] for g in got) / len(got)
    expected = json.loads((ROOT / "runs" / "multitask" / "in-distribution" / "metrics.json").read_text())
    assert len(got) == len(files)
    assert abs(accuracy - expected["tumor_detection"]["accuracy"]) < 0.04  # same model, same pixels
