"""Keras model -> ONNX file of the app's contract (see ``gui.core.engine.model``).

The exported graph adds to the trained network: temperature scaling of the logits, the class
activation maps of every class (the classifier's kernel applied at each position of the last
feature map, exact for a global-average-pooling + dense head) and the pooled embedding.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gui.core.engine.contract import CARD_KEY, INPUT, OPTIONAL_OUTPUTS, OUTPUTS

OPSET = 17


def export_model(model, temperature: float):
    """A Keras model with the contract's three outputs, sharing the trained layers' weights."""
    import keras

    features = model.get_layer("features").output
    embedding = model.get_layer("pool").output
    logits_layer = model.get_layer("logits")
    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature")(logits_layer.output)
    probabilities = keras.layers.Softmax(name="calibrated")(scaled)
    kernel, _bias = logits_layer.get_weights()
    cam_layer = keras.layers.Dense(kernel.shape[1], use_bias=False, name="cam")
    cam = cam_layer(features)
    cam_layer.set_weights([kernel])
    out = keras.Model(model.inputs, {"probabilities": probabilities, "cam": cam, "embedding": embedding})
    size = model.input_shape[1]
    out(np.zeros((1, size, size, 3), np.float32))  # Keras exports only models that were called
    return out


def to_onnx(keras_export_model, path: str | Path) -> Path:
    """Convert with Keras 3's own exporter (tf2onnx underneath), opset 17, named batch and map dims."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras_export_model.export(str(path), format="onnx", opset_version=OPSET, verbose=False)
    proto = onnx.load(str(path))
    names = [i.name for i in proto.graph.input]
    outputs = {o.name for o in proto.graph.output}
    if names != [INPUT] or not set(OUTPUTS) <= outputs or not outputs <= set(OUTPUTS) | set(OPTIONAL_OUTPUTS):
        raise RuntimeError(f"exported graph has inputs {names} and outputs {sorted(outputs)}")
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[0].dim_param = "N"
        if value.name in ("cam", "heatmap"):
            dims[1].dim_param, dims[2].dim_param = "h", "w"
    onnx.save(proto, str(path))
    return path


def draft_session(model: bytes | str | Path):
    """An ONNX Runtime session on the app's options for a draft with no card yet (the app's loader would
    refuse it, and the card needs what is measured on the draft): ``model`` a file's path or a
    serialized model."""
    import onnxruntime as ort

    from gui.core.engine.model import session_options

    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, session_options(), providers=["CPUExecutionProvider"])


def write_card(path: str | Path, card: dict) -> None:
    """Store the model card as JSON in ``metadata_props`` (replacing an older one)."""
    import onnx

    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key != CARD_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card, separators=(",", ":"))
    proto.producer_name = "mri-classifier export"
    proto.doc_string = f"{card['name']} {card['version']}: {card['disclaimer']}"
    onnx.save(proto, str(path))


def replace_card(path: str | Path, card: dict) -> Path:
    """The same graph with a new card: written to a copy, checked by :func:`publish` as the app will,
    and only then put in place of ``path``."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / "draft.onnx"
        shutil.copyfile(path, draft)
        return publish(draft, card, path)


def publish(draft: str | Path, card: dict, out: str | Path) -> Path:
    """Write the card into the draft, check the result as the app will, then move it to ``out``:
    a file that fails the contract check is never written."""
    import shutil

    from gui.core.engine.model import load_model

    write_card(draft, card)
    load_model(draft)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(draft, out)
    return out
