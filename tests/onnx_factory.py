"""Build small ONNX files of the app's contract by hand (no TensorFlow needed).

The "network": features = 8x8 average pools of the image scaled to 0-1; embedding = their
mean; logits = embedding @ W + b; CAM = features @ W. With W below, an image whose mean
brightness is above about 0.19 (of 1) scores as "tumour": behaviour a test can predict.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from gui.core.engine.contract import CARD_KEY, DISCLAIMER
from gui.core.engine.ood import encode_array

TASK_LABELS = {"binary": ["no_tumor", "tumor"], "tumor-type": ["glioma", "meningioma", "no_tumor", "pituitary"]}


def make_card(task: str, size: int, name: str = "", ood_threshold: float = 1e6) -> dict:
    labels = TASK_LABELS[task]
    return {
        "name": name or f"synthetic-{task}", "version": "0.0.1", "task": task, "labels": labels, "no_tumor_labels": ["no_tumor"],
        "input": {"name": "image", "size": size}, "architecture": "synthetic", "parameters": 3 * len(labels),
        "decision_threshold": 0.5, "calibration": {"temperature": 1.0},
        "ood": {"threshold": ood_threshold, "mean": encode_array(np.full(3, 0.3)),
                "components": encode_array(np.eye(3) * 10), "scale": encode_array(np.full(3, 0.1)),
                "class_means": encode_array(np.zeros((len(labels), 3))), "precision": encode_array(np.eye(3)),
                "residual_variance": 1.0},
        "intended_use": "tests", "disclaimer": DISCLAIMER,
    }


def make_contract_model(path: Path, task: str = "binary", size: int = 64, card: dict | None = None,
                        channels: int = 3, multitask: bool = False, nan: bool = False, batch: int | str = "N",
                        width: int | None = None, nan_embedding: bool = False, sequence: bool = False) -> Path:
    """``channels`` other than 3 makes a model that breaks the contract's input spec; ``batch`` fixes
    the graph's batch dimension (1: a static export); ``width`` gives the input another width than
    ``size``; ``nan_embedding`` makes the embedding NaN (answers stay finite).

    ``multitask`` adds the optional outputs: ``type_probabilities`` (glioma, meningioma,
    pituitary; steered by colour channel like the type model) and ``heatmap`` (P(tumour) per 8x8
    block: the block's brightness). ``nan`` makes every probability NaN. ``sequence`` adds a sequence head
    (``sequence_probabilities`` over t1, t1c, t2, flair: a grey image reads as FLAIR).
    """
    labels = TASK_LABELS[task]
    c = len(labels)
    w = np.zeros((channels, c), np.float32)
    b = np.zeros(c, np.float32)
    no = labels.index("no_tumor")
    w[:, :] = 8.0 / 3
    w[:, no] = -8.0 / 3
    b[:] = -1.6
    b[no] = 1.6
    for k in range(c):  # tumour types differ by colour channel, so a test can steer the type
        if k != no:
            w[k % channels, k] += 1.0
    nodes = [
        helper.make_node("Div", ["image", "c255"], ["scaled"]),
        helper.make_node("Transpose", ["scaled"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Transpose", ["pooled"], ["features"], perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["features"], ["embedding"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["embedding", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        helper.make_node("MatMul", ["features", "W"], ["cam"]),
    ]
    inits = [numpy_helper.from_array(np.array(255.0, np.float32), "c255"),
             numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")]
    graph = helper.make_graph(
        nodes, "synthetic", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, size, width or size, channels])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [batch, c]),
         helper.make_tensor_value_info("cam", TensorProto.FLOAT, [batch, size // 8, (width or size) // 8, c]),
         helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [batch, channels])], inits)
    if multitask:
        wt = np.eye(3, dtype=np.float32)[:channels] * 6.0
        nodes += [helper.make_node("MatMul", ["embedding", "Wt"], ["type_logits"]),
                  helper.make_node("Softmax", ["type_logits"], ["type_probabilities"], axis=-1),
                  helper.make_node("ReduceMean", ["features"], ["grey"], axes=[3], keepdims=0),
                  helper.make_node("Mul", ["grey", "c8"], ["heat_logits0"]),
                  helper.make_node("Sub", ["heat_logits0", "c2"], ["heat_logits"]),
                  helper.make_node("Sigmoid", ["heat_logits"], ["heatmap"])]
        inits += [numpy_helper.from_array(wt, "Wt"), numpy_helper.from_array(np.array(8.0, np.float32), "c8"),
                  numpy_helper.from_array(np.array(2.0, np.float32), "c2")]
        graph.node.extend(nodes[len(graph.node):])
        graph.initializer.extend(inits[len(graph.initializer):])
        graph.output.extend([helper.make_tensor_value_info("type_probabilities", TensorProto.FLOAT, ["N", 3]),
                             helper.make_tensor_value_info("heatmap", TensorProto.FLOAT, ["N", size // 8, size // 8])])
    if sequence:
        ws = np.zeros((channels, 4), np.float32)
        ws[:, 3] = 4.0  # brightness pushes towards the last label, FLAIR
        graph.node.extend([helper.make_node("MatMul", ["embedding", "Ws"], ["seq_logits"]),
                           helper.make_node("Softmax", ["seq_logits"], ["sequence_probabilities"], axis=-1)])
        graph.initializer.append(numpy_helper.from_array(ws, "Ws"))
        graph.output.append(helper.make_tensor_value_info("sequence_probabilities", TensorProto.FLOAT, ["N", 4]))
    if nan:
        probs = [n for n in graph.node if n.output[0] == "probabilities"][0]
        probs.output[0] = "probabilities_ok"
        graph.node.append(helper.make_node("Mul", ["probabilities_ok", "cnan"], ["probabilities"]))
        graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32), "cnan"))
    if nan_embedding:
        emb = [n for n in graph.node if n.output[0] == "embedding"][0]
        emb.output[0] = "embedding_ok"
        graph.node.append(helper.make_node("Mul", ["embedding_ok", "cnan_e"], ["embedding"]))
        graph.initializer.append(numpy_helper.from_array(np.array(np.nan, np.float32), "cnan_e"))
        for n in graph.node:  # the answers still come from the finite features
            n.input[:] = ["embedding_ok" if i == "embedding" and n.output[0] != "embedding" else i for i in n.input]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if card is None:
        card = make_card(task, size)
        if multitask:
            card["type_labels"] = ["glioma", "meningioma", "pituitary"]
        if sequence:
            card["sequence_labels"] = ["t1", "t1c", "t2", "flair"]
    if card:
        entry = model.metadata_props.add()
        entry.key, entry.value = CARD_KEY, json.dumps(card)
    onnx.save(model, str(path))
    return path
