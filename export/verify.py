"""Check an exported model against the Keras model it came from, on real images.

Export fails loudly (``VerificationError``) when ONNX Runtime and Keras disagree on the
probabilities by more than 1e-4, on the accuracy, or when the in-graph CAM does not match a
Grad-CAM computed with TensorFlow gradients (correlation < 0.99).
"""

from __future__ import annotations

import numpy as np

from gui.core.engine.contract import INPUT, OUTPUTS

MAX_PROB_DIFF = 1e-4
MIN_CAM_CORRELATION = 0.99


class VerificationError(RuntimeError):
    pass


def run_onnx(session, x: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """All contract outputs of an ONNX Runtime session for ``uint8`` images, in batches."""
    outs: dict[str, list] = {name: [] for name in OUTPUTS}
    for i in range(0, len(x), batch):
        for name, value in zip(OUTPUTS, session.run(list(OUTPUTS), {INPUT: np.asarray(x[i:i + batch], np.float32)})):
            outs[name].append(value)
    return {k: np.concatenate(v) for k, v in outs.items()}


def grad_cam(keras_model, x: np.ndarray) -> np.ndarray:
    """Grad-CAM of every class with TensorFlow gradients: ReLU(sum_f mean_hw(dlogit/dA) * A)."""
    import keras
    import tensorflow as tf

    sub = keras.Model(keras_model.inputs, [keras_model.get_layer("features").output, keras_model.get_layer("logits").output])
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    maps = []
    n_classes = keras_model.output_shape[-1]
    for c in range(n_classes):
        with tf.GradientTape() as tape:
            feats, logits = sub(x, training=False)
            target = logits[:, c]
        grads = tape.gradient(target, feats)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        maps.append(tf.nn.relu(tf.reduce_sum(weights * feats, axis=-1)).numpy())
    return np.stack(maps, axis=-1)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def verify(session, keras_export, keras_model, x: np.ndarray, y: np.ndarray, cam_images: int = 32) -> dict:
    """Compare on ``x`` (uint8 test images, labels ``y``); returns the measured figures."""
    onnx_out = run_onnx(session, x)
    keras_probs = np.concatenate([keras_export.predict_on_batch(np.asarray(x[i:i + 32], np.float32))["probabilities"]
                                  for i in range(0, len(x), 32)])
    diff = float(np.abs(onnx_out["probabilities"] - keras_probs).max())
    acc_onnx = float((onnx_out["probabilities"].argmax(1) == y).mean())
    acc_keras = float((keras_probs.argmax(1) == y).mean())
    k = min(cam_images, len(x))
    gc = grad_cam(keras_model, x[:k])
    ours = np.maximum(onnx_out["cam"][:k], 0.0)
    per_map = [correlation(ours[i, ..., c], gc[i, ..., c]) for i in range(k) for c in range(gc.shape[-1])
               if gc[i, ..., c].std() > 0 or ours[i, ..., c].std() > 0]
    corr = min(per_map) if per_map else correlation(ours, gc)  # 1x1 maps (tiny inputs): compare across images
    report = {
        "images": int(len(x)),
        "max_abs_probability_diff": diff,
        "accuracy_onnx": acc_onnx,
        "accuracy_keras": acc_keras,
        "cam_vs_gradcam_min_correlation": corr,
        "cam_images": k,
    }
    problems = []
    if diff > MAX_PROB_DIFF:
        problems.append(f"probabilities differ by {diff:.2e} > {MAX_PROB_DIFF:.0e}")
    if acc_onnx != acc_keras:
        problems.append(f"accuracy {acc_onnx:.4f} (ONNX) != {acc_keras:.4f} (Keras)")
    if corr < MIN_CAM_CORRELATION:
        problems.append(f"CAM vs Grad-CAM correlation {corr:.4f} < {MIN_CAM_CORRELATION}")
    if problems:
        raise VerificationError("; ".join(problems))
    return report
