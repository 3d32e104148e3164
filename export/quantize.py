"""Static int8 quantization of an exported model, kept only where it is measured to be worth it.

``quant_pre_process`` first (shape inference, fusions), then QDQ static quantization with
per-channel weights, calibrated on training images. The int8 model must keep the test accuracy
within ``MAX_ACCURACY_DROP`` points of float32, or it is discarded; size, speed and accuracy of
both are reported either way.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from export import convert
from export.verify import run_onnx
from gui.core.engine.model import load_model

MAX_ACCURACY_DROP = 0.003  # 0.3 percentage points
CALIBRATION_IMAGES = 200


def quantize(fp32_path: Path, out_path: Path, x_calib: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict:
    """Write ``out_path`` (int8) if it holds its accuracy; returns the measured comparison."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"image": np.asarray(x_calib[i:i + 8], np.float32)} for i in range(0, len(x_calib), 8)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        draft = Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(pre))
        quantize_static(str(pre), str(draft), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        card = load_model(fp32_path).card
        card = dict(card, quantization="static int8 (QDQ, per-channel weights), calibrated on training images")
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
