"""Models that look usable but are not, refused at load (``classify`` exits 2 before any work), and
models that are usable in an unusual shape, run as they are."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from gui.core.commands import classify as cli
from gui.core.engine import stream
from gui.core.engine.classifier import OOD_MESSAGE, Classifier
from gui.core.engine.model import ModelContractError, load_model
from gui.core.engine.ood import encode_array
from gui.core.engine.tuning import EngineSettings
from tests.onnx_factory import make_card, make_contract_model


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for k in range(5):
        Image.new("L", (64, 64), 20 + 50 * k).save(folder / f"s{k}.png")
    return folder


def test_an_input_width_other_than_the_cards_is_refused_before_any_work(tmp_path, scans, capsys):
    model = make_contract_model(tmp_path / "wide.onnx", width=96)
    with pytest.raises(ModelContractError, match="96 pixels wide"):
        load_model(model)
    assert cli.classify_main([str(scans), "--csv", str(tmp_path / "r.csv"), "--model", str(model)]) == 2
    assert "96 pixels wide" in capsys.readouterr().err and not (tmp_path / "r.csv").exists()


def test_a_graph_with_a_fixed_batch_of_one_runs_every_file(tmp_path, scans):
    fixed = load_model(make_contract_model(tmp_path / "b1.onnx", batch=1))
    free = load_model(make_contract_model(tmp_path / "bn.onnx"))
    assert fixed.fixed_batch == 1 and free.fixed_batch is None
    files = sorted(scans.iterdir())
    got = list(stream.classify_files(files, Classifier([fixed]), engine=EngineSettings(batch=4)))
    want = list(stream.classify_files(files, Classifier([free]), engine=EngineSettings(batch=4)))
    assert all(r.ok for r in got) and len(got) == 5
    assert [r.tumor_probability for r in got] == pytest.approx([r.tumor_probability for r in want], abs=1e-6)


def test_out_of_distribution_statistics_of_the_wrong_shape_are_refused(tmp_path, scans):
    card = make_card("binary", 64)
    card["ood"]["mean"] = encode_array(np.full(5, 0.3))  # the embedding has 3 features
    with pytest.raises(ModelContractError, match="out-of-distribution statistics"):
        load_model(make_contract_model(tmp_path / "ood.onnx", card=card))
    card = make_card("binary", 64)
    card["ood"]["precision"] = encode_array(np.eye(2))
    with pytest.raises(ModelContractError, match="precision"):
        load_model(make_contract_model(tmp_path / "ood2.onnx", card=card))


def test_a_nan_embedding_answers_with_a_caution(tmp_path, scans):
    clf = Classifier([load_model(make_contract_model(tmp_path / "nan.onnx", nan_embedding=True))])
    rows = list(stream.classify_files(sorted(scans.iterdir()), clf))
    assert all(r.ok and OOD_MESSAGE in r.ood_warning for r in rows)


def test_models_with_one_name_keep_their_own_probability_columns(tmp_path, scans):
    paths = [make_contract_model(tmp_path / f"m{k}.onnx", card=make_card("binary", 64, name="same")) for k in range(3)]
    out = tmp_path / "r.csv"
    assert cli.classify_main([str(scans)] + [a for p in paths for a in ("--model", str(p))] + ["--csv", str(out)]) == 0
    header = next(csv.reader(out.open()))
    assert len(header) == len(set(header))
    p_cols = [c for c in header if c.startswith("p_")]
    assert len(p_cols) == 6
    for row in csv.DictReader(out.open()):
        assert float(row["p_tumor"]) == pytest.approx(float(row["tumor_probability"]), abs=2e-6)
