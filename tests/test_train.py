"""One tiny training of each arch gives a model of the right shapes; an interrupted run resumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # real (tiny) Keras training and ONNX conversion

keras = pytest.importorskip("keras", reason="training tests need the 'train' extra")

from training import train as train_mod  # noqa: E402
from training.evaluate import evaluate  # noqa: E402

SIZE = 32


@pytest.fixture
def tiny_imagenet_weights(tmp_path) -> Path:
    """A MobileNetV2 weights file of the right layout (random values): no download, no ../shared needed."""
    base = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False, weights=None)
    path = tmp_path / "mnv2.weights.h5"
    base.save_weights(path)
    return path


def test_cnn_trains_and_evaluates(binary_split, tmp_path, small_schedules):
    run = tmp_path / "cnn"
    config = train_mod.train("cnn", str(binary_split), str(run), size=SIZE, batch=8, cache_dir=None)
    model = keras.saving.load_model(run / "model.keras", compile=False)
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_shape == (None, 2)
    assert model.get_layer("features").output.shape[-1] == 256
    assert config["temperature"] > 0 and config["parameters"] == model.count_params()
    result = evaluate(str(run), cache_dir=None)
    assert result["n"] == sum(json.loads(binary_split.read_text())["counts"]["test"].values())
    assert (run / "metrics.json").exists() and (run / "eval_test.png").exists() and (run / "training_curves.png").exists()
    from training.report import write_report

    (tmp_path / "not-a-run").mkdir()
    table = write_report([str(run), str(tmp_path / "not-a-run")], str(tmp_path / "RESULTS.md"))
    row = [line for line in table.splitlines() if line.startswith("| cnn | cnn |")]
    assert len(row) == 1 and f"| {result['n']} | {100 * result['accuracy']:.2f} |" in row[0]
    by_source = [line for line in table.splitlines() if line.startswith("| cnn | test |")]
    assert sorted(line.split(" | ")[2] for line in by_source) == ["br35h", "brain-tumor-mri"]
    assert sum(int(line.split(" | ")[3]) for line in by_source) == result["n"]


def test_mobilenetv2_two_phases(binary_split, tmp_path, small_schedules, tiny_imagenet_weights):
    run = tmp_path / "mnv2"
    config = train_mod.train("mobilenetv2", str(binary_split), str(run), weights=str(tiny_imagenet_weights),
                             size=SIZE, batch=8, cache_dir=None)
    assert config["epochs_per_phase"] == [1, 1]
    model = keras.saving.load_model(run / "model.keras", compile=False)
    assert model.output_shape == (None, 2)
    x = np.full((1, SIZE, SIZE, 3), 128, np.float32)
    assert np.allclose(model.predict(x, verbose=0).sum(), 1.0, atol=1e-5)


def test_baseline_trains(binary_split, tmp_path):
    run = tmp_path / "baseline"
    config = train_mod.train("baseline", str(binary_split), str(run), size=SIZE, cache_dir=None)
    assert (run / "model.joblib").exists() and config["parameters"] > 0
    result = evaluate(str(run), cache_dir=None)
    cm = np.array(result["confusion_matrix"])
    assert cm.sum() == result["n"] > 0 and result["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())


def test_interrupted_training_resumes_from_last_epoch(binary_split, tmp_path, monkeypatch):
    monkeypatch.setitem(train_mod.SCHEDULES, "cnn", [dict(epochs=3, lr=1e-3, unfreeze=None)])
    real_logger = keras.callbacks.CSVLogger

    class CrashAfterFirstEpoch(real_logger):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            raise KeyboardInterrupt("power cut")

    run = tmp_path / "cnn"
    monkeypatch.setattr(keras.callbacks, "CSVLogger", CrashAfterFirstEpoch)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train("cnn", str(binary_split), str(run), size=SIZE, batch=8, cache_dir=None)
    monkeypatch.setattr(keras.callbacks, "CSVLogger", real_logger)
    config = train_mod.train("cnn", str(binary_split), str(run), size=SIZE, batch=8, cache_dir=None)
    with (run / "log_phase1.csv").open() as fh:
        epochs = [int(r["epoch"]) for r in csv.DictReader(fh)]
    assert epochs == [0, 1, 2]  # epoch 0 was not trained again
    assert config["epochs_per_phase"] == [3]
