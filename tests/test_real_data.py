"""End to end on the real datasets (skipped when ../shared/data is absent): the app's headless command
on leakage-free test images agrees with the training pipeline's evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path


from gui import cli
from tests.conftest import require_shared_data

ROOT = Path(__file__).resolve().parents[1]


def test_headless_classify_on_test_part_matches_evaluation(tmp_path):
    require_shared_data()
    doc = json.loads((ROOT / "runs" / "splits" / "binary.json").read_text())
    rows = [r for r in doc["items"] if r["part"] == "test"][::7]  # ~200 leakage-free test images
    files = [ROOT / doc["datasets"][r["dataset"]] / r["path"] for r in rows]
    detector = ROOT / "assets" / "models" / "1-tumor-detector.onnx"
    out = tmp_path / "test.csv"
    assert cli.main(["classify", *map(str, files), "--csv", str(out), "--model", str(detector)]) == 0
    with out.open() as fh:
        got = list(csv.DictReader(fh))
    truth = {str(f): r["label"] for f, r in zip(files, rows)}
    accuracy = sum(g["prediction"] == truth[g["path"]] for g in got) / len(got)
    expected = json.loads((ROOT / "runs" / "mobilenetv2-binary" / "metrics.json").read_text())["test"]["accuracy"]
    assert len(got) == len(files)
    assert abs(accuracy - expected) < 0.04  # a sample of the same test part: same model, same pixels
