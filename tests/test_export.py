"""The ONNX contract: an exported tiny model has the right interface, card, parity and CAM."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # real (tiny) Keras training and ONNX conversion

keras = pytest.importorskip("keras", reason="export tests need the 'train' extra")
onnx = pytest.importorskip("onnx")

from export.pipeline import export_run  # noqa: E402
from gui.core.engine.model import ModelContractError, load_model  # noqa: E402
from training import train as train_mod  # noqa: E402
from training.evaluate import evaluate  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory, request):
    """Train a 1-epoch CNN on the tiny datasets, evaluate it, export it (shared by this module's tests)."""
    from tests.conftest import make_dataset
    from training import split

    root = tmp_path_factory.mktemp("export")
    btm = make_dataset(root / "brain-tumor-mri", {"glioma": 10, "meningioma": 10, "notumor": 10, "pituitary": 10},
                       seed=4, splits=("Training",))
    br = make_dataset(root / "br35h", {"yes": 12, "no": 12}, seed=5)
    splits_path = root / "splits.json"
    split.save(split.make_split([btm, br], "binary"), splits_path)
    saved = train_mod.SCHEDULES["cnn"]
    train_mod.SCHEDULES["cnn"] = [dict(epochs=1, lr=1e-3, unfreeze=None)]
    try:
        run = root / "run"
        train_mod.train("cnn", str(splits_path), str(run), size=SIZE, batch=8, cache_dir=None)
    finally:
        train_mod.SCHEDULES["cnn"] = saved
    evaluate(str(run), cache_dir=None)
    out = root / "model.onnx"
    card = export_run(str(run), str(out), name="tiny", version="0.0.1", cache_dir=None)
    return {"run": run, "onnx": out, "card": card, "splits": splits_path}


def test_interface_names_shapes_dtypes(exported):
    model = load_model(exported["onnx"])
    (inp,) = model.session.get_inputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("image", "tensor(float)", [SIZE, SIZE, 3])
    outs = {o.name: o for o in model.session.get_outputs()}
    assert set(outs) == {"probabilities", "cam", "embedding"}
    x = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3)).astype(np.float32)
    p, cam, emb = model.session.run(["probabilities", "cam", "embedding"], {"image": x})
    assert p.shape == (3, 2) and p.dtype == np.float32 and np.allclose(p.sum(1), 1, atol=1e-5)
    assert cam.shape == (3, 2, 2, 2) and emb.shape == (3, 256)  # 64 px input -> 2x2 last map
    proto = onnx.load(str(exported["onnx"]))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17


def test_model_card_round_trip(exported):
    card = load_model(exported["onnx"]).card
    config = json.loads((exported["run"] / "config.json").read_text())
    metrics = json.loads((exported["run"] / "metrics.json").read_text())
    assert card == json.loads(json.dumps(exported["card"]))
    assert card["labels"] == ["no_tumor", "tumor"] and card["no_tumor_labels"] == ["no_tumor"]
    assert card["calibration"]["temperature"] == config["temperature"]
    assert card["test_metrics"]["accuracy"] == metrics["test"]["accuracy"]
    assert card["training"]["split_method"]["near_threshold_bits"] == 16
    assert "not a medical device" in card["disclaimer"]
    assert card["verification"]["max_abs_probability_diff"] <= 1e-4
    assert card["verification"]["cam_vs_gradcam_min_correlation"] >= 0.99


def test_probabilities_match_keras_with_temperature(exported):
    config = json.loads((exported["run"] / "config.json").read_text())
    keras_model = keras.saving.load_model(exported["run"] / "model.keras", compile=False)
    x = np.random.default_rng(1).integers(0, 256, (4, SIZE, SIZE, 3)).astype(np.float32)
    logits = keras.Model(keras_model.inputs, keras_model.get_layer("logits").output).predict(x, verbose=0)
    z = logits / config["temperature"]
    expected = np.exp(z - z.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    got = load_model(exported["onnx"]).session.run(["probabilities"], {"image": x})[0]
    assert np.abs(got - expected).max() <= 1e-4


def test_cam_is_the_weighted_sum_of_features(exported):
    keras_model = keras.saving.load_model(exported["run"] / "model.keras", compile=False)
    x = np.random.default_rng(2).integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.float32)
    feats = keras.Model(keras_model.inputs, keras_model.get_layer("features").output).predict(x, verbose=0)
    kernel, bias = keras_model.get_layer("logits").get_weights()
    cam = load_model(exported["onnx"]).session.run(["cam"], {"image": x})[0]
    assert np.allclose(cam, np.einsum("nhwf,fc->nhwc", feats, kernel), atol=1e-4)
    logits = keras.Model(keras_model.inputs, keras_model.get_layer("logits").output).predict(x, verbose=0)
    assert np.allclose(cam.mean(axis=(1, 2)) + bias, logits, atol=1e-4)  # exact for GAP + dense


def test_foreign_and_broken_files_are_refused(exported, tmp_path):
    from onnx import TensorProto, helper

    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported["onnx"].read_bytes()[:5000])
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model")
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["probabilities"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 8])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    no_card = tmp_path / "no_card.onnx"
    proto = onnx.load(str(exported["onnx"]))
    del proto.metadata_props[:]
    onnx.save(proto, str(no_card))
    expected = {truncated: "not a valid ONNX model", text: "not a valid ONNX model",
                foreign: "input 'image' must be float32 [N, H, W, 3]", no_card: "no model card",
                tmp_path / "missing.onnx": "not found"}
    for path, reason in expected.items():
        with pytest.raises(ModelContractError) as info:
            load_model(path)
        assert reason in str(info.value) and path.name in str(info.value)
