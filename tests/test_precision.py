"""The bundled models in float32 or int8 (issue 31): which file runs where, what says so, and that int8 keeps
float32's answers on real scans."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from gui.core.commands import classify as cli
from gui.core.engine import precision as precisions
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import load_model
from gui.core.engine.modelset import model_files
from gui.core.readers import open_scan
from gui.core.resources import bundled_models
from tests.conftest import brain_like
from tests.onnx_factory import make_contract_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
INT8_FILES = [f.parent / precisions.INT8_FOLDER / f.name for f in bundled_models()]
needs_int8 = pytest.mark.skipif(not INT8_FILES or not all(f.is_file() for f in INT8_FILES),
                                reason="no bundled int8 model")


@pytest.fixture
def vnni(monkeypatch):
    """Pretend this CPU has VNNI, or has none (CI machines change between runs)."""
    def set_to(value: bool) -> None:
        monkeypatch.setattr(precisions, "cpu_has_vnni", lambda: value)
    return set_to


@needs_int8
def test_int8_runs_only_on_a_cpu_with_vnni(vnni):
    vnni(True)
    picked = precisions.bundled(precisions.INT8)
    assert (picked.files, picked.precision, picked.note) == (INT8_FILES, precisions.INT8, "")
    vnni(False)
    picked = precisions.bundled(precisions.INT8)
    assert picked.files == bundled_models() and picked.precision == precisions.FP32
    assert "VNNI" in picked.note and picked.note.endswith("float32 runs")
    assert precisions.bundled(precisions.FP32).files == bundled_models()


def test_a_copy_without_int8_files_runs_float32(tmp_path, monkeypatch, vnni):
    vnni(True)
    (tmp_path / "models").mkdir()
    make_contract_model(tmp_path / "models" / "det.onnx", "binary")
    monkeypatch.setenv("MRI_CLASSIFIER_ASSETS", str(tmp_path))
    heard: list[str] = []
    assert model_files(None, precisions.INT8, heard.append) == [tmp_path / "models" / "det.onnx"]
    assert heard == ["no int8 model is bundled with this copy: float32 runs"]
    with pytest.raises(ValueError, match="unknown precision"):
        precisions.bundled("fp16")


def test_precision_does_not_change_model_files_given_by_name(tmp_path):
    model = make_contract_model(tmp_path / "det.onnx", "binary")
    heard: list[str] = []
    assert model_files([str(model)], precisions.INT8, heard.append) == [model]
    assert heard == ["--precision applies to the bundled models; the --model files run as they are"]


@needs_int8
def test_the_int8_file_says_what_it_is_and_how_close_it_stays():
    fp32, int8 = load_model(bundled_models()[0]), load_model(INT8_FILES[0])
    assert fp32.precision == precisions.FP32 and int8.precision == precisions.INT8
    assert int8.name == f"{fp32.name} int8"
    assert (int8.labels, int8.threshold, int8.input_size) == (fp32.labels, fp32.threshold, fp32.input_size)
    kept = int8.card["precision"]
    assert kept["same_answer"] >= 0.995 and kept["max_auc_move"] <= 0.003
    assert precisions.describe(fp32.card) == "float32"
    words = precisions.describe(int8.card)
    assert words.startswith("int8 (") and f"{100 * kept['same_answer']:.2f} %" in words
    assert int8.path.stat().st_size < fp32.path.stat().st_size


@needs_int8
def test_cli_precision_int8_runs_the_int8_file_or_says_why_not(tmp_path, vnni, capsys, monkeypatch):
    brain_like(tmp_path / "scan.png", True)
    loaded: list[Path] = []
    real_load = cli.load_models
    monkeypatch.setattr(cli, "load_models", lambda paths, *a, **k: loaded.extend(map(Path, paths)) or real_load(paths, *a, **k))
    vnni(True)
    assert cli.classify_main([str(tmp_path / "scan.png"), "--csv", str(tmp_path / "a.csv"), "--precision", "int8"]) == 0
    assert loaded == INT8_FILES
    assert capsys.readouterr().err.rstrip().endswith(f"model: {load_model(INT8_FILES[0]).name}. CSV: {tmp_path / 'a.csv'}")
    vnni(False)
    loaded.clear()
    assert cli.classify_main([str(tmp_path / "scan.png"), "--csv", str(tmp_path / "b.csv"), "--precision", "int8"]) == 0
    assert loaded == bundled_models()
    assert "note: int8 runs only on a CPU with VNNI" in capsys.readouterr().err
    with open(tmp_path / "b.csv", newline="") as fh:
        assert [r["status"] for r in csv.DictReader(fh)] == ["ok"]


@needs_int8
@pytest.mark.skipif(not (SHARED / "brain-tumor-mri").is_dir(), reason="needs ../shared/data")
def test_int8_keeps_float32_answers_on_real_scans():
    """100 test images of the Kaggle set (both labels) through the app's classifier in both precisions."""
    files = sorted((SHARED / "brain-tumor-mri").rglob("*.jpg"))
    files = [files[i] for i in np.random.default_rng(3).permutation(len(files))[:100]]
    answers = {}
    for name, paths in (("fp32", bundled_models()), ("int8", INT8_FILES)):
        classifier = Classifier([load_model(p) for p in paths])
        fitted = [classifier.fit(*open_scan(f).model_view(None, classifier.need)) for f in files]
        answers[name] = classifier.classify_batch(fitted, [str(f) for f in files])
    p = {k: np.array([r.tumor_probability for r in v]) for k, v in answers.items()}
    same = np.mean([a.prediction == b.prediction for a, b in zip(answers["fp32"], answers["int8"])])
    assert same >= 0.97, same
    assert np.abs(p["fp32"] - p["int8"]).mean() < 0.02
    assert 0.2 < np.mean(p["fp32"] >= load_model(bundled_models()[0]).threshold) < 0.95  # both labels seen


def test_int8_speaks_only_for_an_int8_card(tmp_path):
    card_like = {"precision": {"arithmetic": "int8", "recipe": "r", "same_answer": 0.99651, "measured_on": "N images"}}
    assert precisions.describe(card_like) == ("int8 (r); the same answer as float32 on 99.65 % of N images; the "
                                              "figures below were measured in float32")
    assert precisions.describe({"precision": {"arithmetic": "fp16"}}) == "float32"
    card_like["precision"]["held_out"] = {"radiopaedia": {"same_answer": 0.99456, "n": 2391},
                                          "sartaj": {"same_answer": 0.9991, "n": 3344}}
    assert precisions.describe(card_like) == (
        "int8 (r); the same answer as float32 on 99.65 % of N images; on collections never trained on (the held-out "
        "folds' own models, same recipe), 99.46-99.91 % (radiopaedia 99.46 %, sartaj 99.91 %); the figures below were "
        "measured in float32")

