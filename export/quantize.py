"""Static int8 quantization of an exported model, kept only where it is measured to be worth it.

``quant_pre_process`` first (shape inference, fusions), then QDQ static quantization with
per-channel weights, calibrated on training images (:func:`quantize_qdq`), optionally with spans of
the graph kept in float and the biases corrected for the shift int8 puts into each convolution's mean
output (:func:`correct_biases`). The int8 model must keep the test accuracy within
``MAX_ACCURACY_DROP`` points of float32, or it is discarded; size, speed and accuracy of both are
reported either way.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from export import convert
from export.verify import run_onnx
from gui.core.engine.model import load_model
from gui.core.engine.precision import INT8

MAX_ACCURACY_DROP = 0.003  # 0.3 percentage points
CALIBRATION_IMAGES = 64  # percentile calibration holds every activation of every image


def float_nodes(names: Sequence[str], front_until: str | None = None, tail_from: str | None = None) -> list[str]:
    """The nodes to keep in float: those before the first whose name holds ``front_until`` (the
    ImageNet front, whose activations int8 hurts most) and from the first holding ``tail_from`` on
    (the heads: cheap, and their outputs are the answers)."""
    keep: list[str] = []
    if front_until:
        keep += names[:next(i for i, n in enumerate(names) if front_until in n)]
    if tail_from:
        keep += names[next(i for i, n in enumerate(names) if tail_from in n):]
    return keep


def quantize_qdq(src: Path, out: Path, calib: np.ndarray, *, front_until: str | None = None,
                 tail_from: str | None = None, reduce_range: bool = False, bias_images: np.ndarray | None = None) -> None:
    """Static QDQ int8 of ``src`` to ``out``: per-channel int8 weights, uint8 activations, percentile
    calibration on ``calib`` (it holds every activation of every image: keep it to ~64), the spans of
    :func:`float_nodes` in float, then :func:`correct_biases` on ``bias_images`` when given."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quant_pre_process, quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": np.asarray(calib[i:i + 16], np.float32)} for i in range(0, len(calib), 16)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre))
        names = [n.name for n in onnx.load(str(pre)).graph.node]
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.Percentile,
                        nodes_to_exclude=float_nodes(names, front_until, tail_from))
        if bias_images is not None:
            onnx.save(correct_biases(onnx.load(str(pre)), onnx.load(str(out)), bias_images), str(out))


def correct_biases(reference, quantized, images: np.ndarray, batch: int = 25):
    """``quantized`` with each quantized convolution's int32 bias shifted so that its mean output per
    channel over ``images`` equals the float ``reference``'s, layer after layer in graph order (each
    correction is measured after those upstream of it). Rounding weights and activations to int8
    shifts those means (most in depthwise convolutions, whose few weights per channel round coarsely),
    and the shift adds up through the network; the empirical bias correction of Nagel et al., "Data-free
    quantization through weight equalization and bias correction" (ICCV 2019), removes it. Both graphs
    come from the same ``quant_pre_process`` output, so a convolution's output has one name in both;
    where the float graph applies Relu6 after it, the comparison is before the activation."""
    import onnx
    from onnx import helper, numpy_helper

    initializers = {i.name: i for i in quantized.graph.initializer}
    made_by = {o: n for n in quantized.graph.node for o in n.output}
    reference_made_by = {o: n for n in reference.graph.node for o in n.output}
    convs = [n for n in quantized.graph.node if n.op_type == "Conv" and len(n.input) > 2
             and getattr(made_by.get(n.input[2]), "op_type", "") == "DequantizeLinear" and n.output[0] in reference_made_by]

    def before_activation(name: str) -> str:
        node = reference_made_by[name]
        return node.input[0] if node.op_type in ("Clip", "Relu") else name

    def channel_means(model, outputs: list[str]) -> list[np.ndarray]:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        probe.graph.output.extend(helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outputs)
        session = convert.draft_session(probe.SerializeToString())
        sums = [0.0] * len(outputs)
        for i in range(0, len(images), batch):
            got = session.run(outputs, {"image": np.asarray(images[i:i + batch], np.float32)})
            sums = [s + a.astype(np.float64).mean(axis=(2, 3)).sum(axis=0) for s, a in zip(sums, got, strict=True)]
        return [s / len(images) for s in sums]

    targets = channel_means(reference, [before_activation(c.output[0]) for c in convs])
    for conv, target in zip(convs, targets, strict=True):
        (mean,) = channel_means(quantized, [conv.output[0]])
        bias_dq = made_by[conv.input[2]]
        bias = initializers[bias_dq.input[0]]
        scale = numpy_helper.to_array(initializers[bias_dq.input[1]])
        shifted = numpy_helper.to_array(bias) - np.round((mean - target) / scale)
        bias.CopyFrom(numpy_helper.from_array(shifted.astype(np.int32), bias.name))
    return quantized


def quantize(fp32_path: Path, out_path: Path, x_calib: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict:
    """Write ``out_path`` (int8) if it holds its accuracy; returns the measured comparison."""
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / "int8.onnx"
        quantize_qdq(fp32_path, draft, x_calib)
        card = load_model(fp32_path).card
        card = dict(card, precision={"arithmetic": INT8,
                                     "recipe": "static QDQ, per-channel int8 weights, calibrated on training images"})
        convert.write_card(draft, card)
        report = {"fp32": measure(fp32_path, x_test, y_test), "int8": measure(draft, x_test, y_test)}
        drop = report["fp32"]["accuracy"] - report["int8"]["accuracy"]
        faster = report["int8"]["images_per_second"] > report["fp32"]["images_per_second"]
        report["accuracy_drop_points"] = 100 * drop
        report["kept"] = bool(drop <= MAX_ACCURACY_DROP and faster)
        if report["kept"]:
            out_path.write_bytes(draft.read_bytes())
    return report


def measure(path: Path, x: np.ndarray, y: np.ndarray) -> dict:
    model = load_model(path)
    run_onnx(model.session, x[:16])  # warm-up
    t0 = time.perf_counter()
    probs = run_onnx(model.session, x)["probabilities"]
    seconds = time.perf_counter() - t0
    return {"bytes": path.stat().st_size, "accuracy": float((probs.argmax(1) == y).mean()),
            "images_per_second": len(x) / seconds}
