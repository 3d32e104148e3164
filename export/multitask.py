"""Export the multi-task run (``python -m training multitask``) as one ONNX file of the app's contract.

The graph is the whole path from pixels to every answer: ImageNet MobileNetV2 (frozen) and the
trained head, with temperature-scaled ``probabilities``, the detector's exact ``cam``, the pooled
``embedding``, ``type_probabilities`` and the per-location ``heatmap``. Its input is the frame as
``gui.core.imaging.model_input(..., "brain-crop-v1")`` fits it, which the card declares.

Verification, on test images read from their files by the app's own reader (timm's
``onnx_validate`` idea: the validator reuses the training data pipeline):

* ONNX Runtime vs the Keras model on the same pixels: every output within 1e-4 of its scale;
* ONNX Runtime vs the cached-feature pipeline the figures were measured with: same answers
  (the cache holds float16 features, so probabilities agree to ~1e-2, not 1e-4);
* the CAM is exact: ``softmax((mean_hw(cam) + bias) / T)`` equals ``probabilities``;
* heatmap faithfulness (pointing game, mass inside the mask) of the ONNX heatmap itself.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.special import softmax

from export import card as cards, convert
from export.pipeline import OOD_TRAIN_IMAGES
from export.verify import VerificationError
from training import calibrate, catalogue, features as feats, multitask as mt, split as splits

VERIFY_IMAGES = 160
MAX_PIPELINE_DIFF = 0.02
SHIPPED_FOLD = "in-distribution"


def build_keras(head, weights: str, temperature: float):
    """Backbone + head with the contract's outputs, sharing the trained weights."""
    backbone = feats.backbone(weights)
    return contract_model(backbone.inputs, head(backbone.output, training=False), head, temperature)


def contract_model(inputs, out: dict, head, temperature: float, heat_key: str = "heat_logits",
                   grid: int = feats.GRID):
    """The app's contract outputs from a trunk's head outputs ``out`` (``features``, ``logits``,
    ``type_logits`` and the heatmap logits ``heat_key`` on a ``grid`` x ``grid`` map; a head with a
    sequence head adds ``sequence_probabilities``)."""
    import keras

    adapter = out["features"]  # the head's own adapter output: computed once in the graph
    kernel, _bias = head.get_layer("logits").get_weights()
    cam_layer = keras.layers.Dense(kernel.shape[1], use_bias=False, name="cam")
    cam = cam_layer(adapter)
    cam_layer.set_weights([kernel])
    probabilities = keras.layers.Softmax(name="calibrated")(
        keras.layers.Rescaling(1.0 / temperature, name="temperature")(out["logits"]))
    type_probabilities = keras.layers.Softmax(name="type_softmax")(out["type_logits"])
    heat = keras.layers.Activation("sigmoid", name="heat_sigmoid")(out[heat_key])
    heat = keras.layers.Reshape((grid, grid), name="heat_map")(heat)
    embedding = keras.layers.GlobalAveragePooling2D(name="embedding_pool")(adapter)
    outputs = {"probabilities": probabilities, "cam": cam, "embedding": embedding,
               "type_probabilities": type_probabilities, "heatmap": heat}
    if "sequence_logits" in out:
        outputs["sequence_probabilities"] = keras.layers.Softmax(name="sequence_softmax")(out["sequence_logits"])
    model = keras.Model(inputs, outputs)
    model(np.zeros((1, feats.SIZE, feats.SIZE, 3), np.float32))
    return model


def ood_statistics(doc: dict, embed, rng: np.random.Generator) -> dict:
    """The card's out-of-distribution statistics: ``embed(indices)`` of up to OOD_TRAIN_IMAGES
    in-distribution training images and of the validation part, as the figures' pipeline computes them."""
    parts = catalogue.fold(doc, None)
    pick = np.sort(rng.permutation(parts["train"])[:OOD_TRAIN_IMAGES])
    return calibrate.fit_ood(embed(pick), mt.targets(doc)["y"][pick], embed(parts["val"]))


def draft_and_verify(model, tmp: Path, doc: dict, rng: np.random.Generator, cached, bias: np.ndarray,
                     temperature: float, meta: dict) -> tuple[Path, dict]:
    """Convert ``model`` to ``tmp/draft.onnx`` and run ``verify`` on in-distribution test images;
    ``cached(indices)`` gives the probabilities the figures were measured with."""
    draft = tmp / "draft.onnx"
    convert.to_onnx(model, draft)
    session = convert.draft_session(draft)
    idx = verification_items(doc, catalogue.fold(doc, None)["test"], rng)
    report = verify(session, model, doc, idx, cached(idx), bias, temperature, meta)
    report["opset"] = convert.OPSET
    return draft, report


def export_multitask(run_dir: str, out: str, weights: str, name: str = "Tumour model (MobileNetV2, multi-task)",
                     version: str = "2.0.0", seed: int = 0) -> dict:
    run = Path(run_dir)
    fold_dir = run / SHIPPED_FOLD
    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((fold_dir / "metrics.json").read_text())
    folds = {p.parent.name: json.loads(p.read_text()) for p in sorted(run.glob("*/metrics.json"))}
    doc = splits.load(config["catalogue"])
    labels = mt.labels_of(run)
    head = mt.build_head(*labels)
    head.load_weights(fold_dir / "head.weights.h5")
    t0 = time.time()
    model = build_keras(head, weights, metrics["temperature"])
    f0, meta = feats.load(config["features"], 0)
    rng = np.random.default_rng(seed)
    ood = ood_statistics(doc, lambda idx: mt.predict(head, np.asarray(f0[idx]))["embedding"], rng)
    out_path = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        draft, report = draft_and_verify(
            model, Path(tmp), doc, rng, lambda idx: mt.predict(head, np.asarray(f0[idx]), metrics["temperature"])
            ["probabilities"], head.get_layer("logits").get_weights()[1], metrics["temperature"], meta)
        caution_file = run / "caution.json"
        caution = json.loads(caution_file.read_text()) if caution_file.exists() else None
        series_file = run / "series.json"
        series = json.loads(series_file.read_text()) if series_file.exists() else None
        card = cards.build_multitask_card(name, version, {**config, "type_labels": labels[0]}, folds, report, ood,
                                          str(run), caution, series, sequence_labels=labels[1])
        convert.publish(draft, card, out_path)
    print(f"{out_path}: {out_path.stat().st_size / 1e6:.1f} MB in {time.time() - t0:.0f} s; verification "
          f"{json.dumps(report)}; OOD threshold {ood['threshold']:.2f}")
    return card


def verification_items(doc: dict, test_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to ``VERIFY_IMAGES`` test images, the same share of every source."""
    return np.sort(np.concatenate([rng.permutation(test_idx[np.array([doc["items"][i]["source"] == s for i in test_idx])])
                                   [: VERIFY_IMAGES // len(doc["sources"])] for s in doc["sources"]]))


def verify(session, model, doc: dict, idx: np.ndarray, cached: np.ndarray, bias: np.ndarray, temperature: float,
           meta: dict) -> dict:
    """The checks in the module docstring on items ``idx``; ``cached`` holds the probabilities the
    figures were measured with (from cached features), ``bias`` the detector's bias."""
    x = np.stack([feats.item_input(doc, doc["items"][i])[1].pixels for i in idx]).astype(np.float32)
    names = [o.name for o in session.get_outputs()]
    onnx_out = dict(zip(names, session.run(names, {"image": x})))
    keras_out = {k: np.asarray(v) for k, v in model(x, training=False).items()}
    # Within 1e-4 of each output's own scale (CAM values run into the tens; probabilities are <= 1).
    diffs = {k: float(np.abs(onnx_out[k] - keras_out[k]).max() / max(1.0, float(np.abs(keras_out[k]).max())))
             for k in onnx_out}
    if max(diffs.values()) > 1e-4:
        raise VerificationError(f"ONNX Runtime and Keras disagree: max relative differences {diffs}")
    pipeline_diff = float(np.abs(cached - onnx_out["probabilities"]).max())
    same_answers = float(np.mean((cached[:, 1] >= 0.5) == (onnx_out["probabilities"][:, 1] >= 0.5)))
    if pipeline_diff > MAX_PIPELINE_DIFF:
        raise VerificationError(f"the app's reader + ONNX differ from the measured pipeline by {pipeline_diff:.4f}")
    from_cam = softmax((onnx_out["cam"].mean(axis=(1, 2)) + bias) / temperature, axis=1)
    cam_error = float(np.abs(from_cam - onnx_out["probabilities"]).max())
    if cam_error > 1e-4:
        raise VerificationError(f"CAM is not exact: softmax(mean(cam) + bias) differs by {cam_error}")
    faith = mt.heatmap_faithfulness(doc, idx, {"heatmap": onnx_out["heatmap"], "cam": onnx_out["cam"]}, meta)
    return {"images": int(len(idx)), "max_rel_diff_onnx_vs_keras": diffs,
            "max_abs_diff_vs_cached_feature_pipeline": pipeline_diff, "same_answer_share_vs_pipeline": same_answers,
            "cam_exactness_error": cam_error,
            "heatmap_on_verification_images": {k: {kk: v[kk] for kk in ("n", "pointing_game", "mass_inside_mask")}
                                               for k, v in faith.items()}}
