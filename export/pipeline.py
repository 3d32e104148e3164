"""Export one training run to a verified, self-describing ONNX file of the app's contract."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from export import card as cards, convert, verify
from training import calibrate, split as splits
from training.data import load_images

OOD_TRAIN_IMAGES = 3000


def export_run(run_dir: str, out: str, name: str | None = None, version: str = "1.0.0",
               cache_dir: str | None = "runs/.cache", seed: int = 0, quantize_int8: bool = False) -> dict:
    """Convert, fit OOD statistics, verify against Keras on the test part, write the card."""
    import keras

    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text())
    if config["arch"] == "baseline":
        raise SystemExit("the baseline (PCA + logistic regression) has no convolutional features: not exportable")
    metrics_file = run / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    if "test" not in metrics:
        raise SystemExit(f"run `python -m training evaluate {run}` first: the model card carries its test metrics")
    doc = splits.load(config["splits"])
    cache = Path(cache_dir) if cache_dir else None
    size = config["input_size"]
    t0 = time.time()
    model = keras.saving.load_model(run / "model.keras", compile=False)
    exportable = convert.export_model(model, config["temperature"])
    out_path = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        draft = Path(tmp) / "draft.onnx"
        convert.to_onnx(exportable, draft)
        session = convert.draft_session(draft)

        f_train, y_train = splits.part_items(doc, "train")
        pick = np.sort(np.random.default_rng(seed).permutation(len(f_train))[:OOD_TRAIN_IMAGES])
        x_train = load_images(f_train, size, cache)
        train_emb = verify.run_onnx(session, x_train[pick])["embedding"]
        f_val, _ = splits.part_items(doc, "val")
        val_emb = verify.run_onnx(session, load_images(f_val, size, cache))["embedding"]
        ood = calibrate.fit_ood(train_emb, y_train[pick], val_emb)

        f_test, y_test = splits.part_items(doc, "test")
        x_test = load_images(f_test, size, cache)
        report = verify.verify(session, exportable, model, x_test, y_test)
        if abs(report["accuracy_onnx"] - metrics["test"]["accuracy"]) > 1e-9:
            raise verify.VerificationError(
                f"ONNX test accuracy {report['accuracy_onnx']:.4f} != evaluate's {metrics['test']['accuracy']:.4f}")
        report["opset"] = convert.OPSET
        card = cards.build_card(name or run.name, version, config, metrics, report, ood, str(run))
        convert.publish(draft, card, out_path)
    print(f"{out_path}: {out_path.stat().st_size / 1e6:.1f} MB in {time.time() - t0:.0f} s; verification {report}; "
          f"OOD threshold {ood['threshold']:.2f}")
    if quantize_int8:
        from export.quantize import CALIBRATION_IMAGES, quantize

        int8_path = out_path.with_name(out_path.stem + "-int8.onnx")
        q = quantize(out_path, int8_path, x_train[pick[:CALIBRATION_IMAGES]], x_test, y_test)
        verdict = f"kept as {int8_path}" if q["kept"] else "discarded (accuracy drop > 0.3 points, or not faster)"
        print(f"int8: {verdict}; {json.dumps(q)}")
    return card

