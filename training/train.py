"""Train one model on a split file, resumably, logging every epoch.

Layout of a run folder ``runs/NAME``::

    config.json          what was trained, on what, how long, calibration temperature
    model.keras          the final Keras model (best validation loss)   (baseline: model.joblib)
    log_phase1.csv ...   one row per epoch (loss, accuracy, val_loss, val_accuracy)
    state/               checkpoints for resuming; safe to delete once training is done

Re-running the same command after an interruption resumes from the last finished epoch.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import split as splits
from training.calibrate import fit_temperature
from training.data import IMAGE_SIZE, load_images
from training.models import (
    FEATURES,
    build_baseline,
    build_cnn,
    build_mobilenetv2,
    set_trainable_top,
)

#: (epochs, learning rate, first unfrozen block or None) per phase and arch.
SCHEDULES = {
    "cnn": [dict(epochs=18, lr=2e-3, unfreeze=None)],
    "mobilenetv2": [dict(epochs=5, lr=1e-3, unfreeze=None), dict(epochs=8, lr=3e-5, unfreeze=13)],
}
BASELINE_SIZE = 64


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Inverse-frequency ("balanced") weights, so each class counts the same in the loss."""
    from sklearn.utils.class_weight import compute_class_weight

    present = np.unique(y)
    weights = compute_class_weight("balanced", classes=present, y=y)
    return {int(c): float(w) for c, w in zip(present, weights)}


def augmenter(seed: int):
    """Geometry and intensity augmentation, on float RGB 0-255 batches.

    Intensity, contrast, gamma and blur vary most between scanners and hospitals; they
    are what makes a model hold up on a source it was not trained on.
    """
    import keras
    import tensorflow as tf

    geometry = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.04, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomTranslation(0.06, 0.06, fill_mode="constant", seed=seed + 2),
            keras.layers.RandomZoom((-0.12, 0.12), fill_mode="constant", seed=seed + 3),
            keras.layers.RandomBrightness(0.15, value_range=(0, 255), seed=seed + 4),
            keras.layers.RandomContrast(0.3, seed=seed + 5),
        ]
    )
    kernel_1d = tf.constant([0.0545, 0.2442, 0.4026, 0.2442, 0.0545])  # Gaussian, sigma 1
    kernel = tf.tile((kernel_1d[:, None] * kernel_1d[None, :])[:, :, None, None], [1, 1, 3, 1])

    def augment(x, y):
        x = geometry(x, training=True)
        n = tf.shape(x)[0]
        gamma = tf.exp(tf.random.uniform([n, 1, 1, 1], -0.3, 0.3))
        x = 255.0 * tf.pow(tf.clip_by_value(x, 0.0, 255.0) / 255.0, gamma)
        blurred = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "SAME")
        use_blur = tf.cast(tf.random.uniform([n, 1, 1, 1]) < 0.3, x.dtype)
        return use_blur * blurred + (1.0 - use_blur) * x, y

    return augment


def datasets(x_train, y_train, x_val, y_val, batch: int, seed: int):
    import tensorflow as tf

    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(y_train), seed=seed, reshuffle_each_iteration=True)
        .batch(batch)
        .map(lambda x, y: (tf.cast(x, tf.float32), y))
        .map(augmenter(seed), num_parallel_calls=1)
        .prefetch(2)
    )
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(64).map(lambda x, y: (tf.cast(x, tf.float32), y))
    return train, val


def best_val_loss(log: Path) -> float | None:
    if not log.exists():
        return None
    with log.open() as fh:
        losses = [float(r["val_loss"]) for r in csv.DictReader(fh) if r.get("val_loss")]
    return min(losses) if losses else None


@dataclass(frozen=True)
class TrainSettings:
    """What to train and how: one object instead of a dozen positional arguments."""

    arch: str
    weights: str | None = None  # local ImageNet MobileNetV2 weights (mobilenetv2 only)
    size: int = IMAGE_SIZE
    batch: int = 32
    seed: int = 0
    epochs_scale: float = 1.0  # multiplies every phase's epochs (smoke runs)


def train(arch: str, splits_path: str, out: str, weights: str | None = None, size: int = IMAGE_SIZE,
          batch: int = 32, seed: int = 0, epochs_scale: float = 1.0, cache_dir: str | None = "runs/.cache") -> dict:
    """Train ``arch`` on the split file; returns the run's config (also written to config.json)."""
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    doc = splits.load(splits_path)
    classes = doc["classes"]
    f_train, y_train = splits.part_items(doc, "train")
    f_val, y_val = splits.part_items(doc, "val")
    cache = Path(cache_dir) if cache_dir else None
    print(f"[{run.name}] loading {len(f_train)} train / {len(f_val)} val images", flush=True)
    x_train = load_images(f_train, size, cache)
    x_val = load_images(f_val, size, cache)
    config = {
        "arch": arch,
        "task": doc["task"],
        "classes": classes,
        "no_tumor_labels": doc["no_tumor_labels"],
        "input_size": size,
        "splits": str(splits_path),
        "splits_sha256": hashlib.sha256(Path(splits_path).read_bytes()).hexdigest(),
        "split_method": doc["method"],
        "split_counts": doc["counts"],
        "datasets": sorted(doc["datasets"]),
        "seed": seed,
    }
    state_file = run / "state" / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {"phases_done": 0, "seconds": 0.0}

    if arch == "baseline":
        import joblib

        t0 = time.time()
        features = baseline_features(x_train)
        model = build_baseline(n_components=min(100, len(features) - 1), seed=seed)
        model.fit(features, y_train)
        config.update(parameters=baseline_parameters(model), train_seconds=round(time.time() - t0, 1),
                      temperature=1.0, model_file="model.joblib", baseline_size=BASELINE_SIZE)
        joblib.dump(model, run / "model.joblib")
    else:
        settings = TrainSettings(arch, weights, size, batch, seed, epochs_scale)
        config.update(train_keras(settings, run, state, (x_train, y_train, x_val, y_val), len(classes)))
    (run / "config.json").write_text(json.dumps(config, indent=1))
    print(f"[{run.name}] done in {config['train_seconds']:.0f} s", flush=True)
    return config


def build(settings: TrainSettings, n_classes: int):
    """The Keras model of ``settings.arch`` (seeded)."""
    import keras

    keras.utils.set_random_seed(settings.seed)
    if settings.arch == "cnn":
        return build_cnn(n_classes, settings.size)
    if settings.arch == "mobilenetv2":
        if settings.weights is None:
            raise SystemExit("mobilenetv2 needs --weights PATH (ImageNet MobileNetV2 no-top weights file)")
        return build_mobilenetv2(n_classes, settings.weights, settings.size)
    raise SystemExit(f"unknown arch {settings.arch!r}")


def train_keras(settings: TrainSettings, run: Path, state: dict, data: tuple, n_classes: int) -> dict:
    """Train every phase of ``SCHEDULES[settings.arch]`` not yet done (``state``, saved in
    ``run/state/state.json`` after each), keep the best epoch, save the model; returns what the
    run's config records. ``data`` is ``(x_train, y_train, x_val, y_val)``."""
    import keras

    x_train, y_train, x_val, y_val = data
    arch, seed, batch, epochs_scale = settings.arch, settings.seed, settings.batch, settings.epochs_scale
    state_file = run / "state" / "state.json"
    model = build(settings, n_classes)
    train_ds, val_ds = datasets(x_train, y_train, x_val, y_val, batch, seed)
    weights_by_class = class_weights(y_train)
    verbose = 1 if sys.stdout.isatty() else 2
    phases = SCHEDULES[arch]
    epochs_run = []
    for k, phase in enumerate(phases, start=1):
        best = run / "state" / f"phase{k}_best.weights.h5"
        log = run / f"log_phase{k}.csv"
        if k <= state["phases_done"]:
            model.load_weights(best)
            continue
        if arch == "mobilenetv2":
            set_trainable_top(model, phase["unfreeze"])
        model.compile(optimizer=keras.optimizers.Adam(phase["lr"]), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        t0 = time.time()
        epochs = max(1, round(phase["epochs"] * epochs_scale))
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            class_weight=weights_by_class,
            verbose=verbose,
            callbacks=[
                # Order matters: an epoch is backed up and its checkpoint considered before it
                # is logged, so every logged epoch survives an interruption.
                keras.callbacks.BackupAndRestore(str(run / "state" / f"backup{k}")),
                keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True,
                                                save_weights_only=True, initial_value_threshold=best_val_loss(log)),
                keras.callbacks.CSVLogger(str(log), append=True),
                keras.callbacks.EarlyStopping(monitor="val_loss", patience=3),
            ],
        )
        if not best.exists():  # no epoch beat the threshold (a resumed run): keep what we have
            model.save_weights(best)
        model.load_weights(best)
        state["seconds"] += time.time() - t0
        state["phases_done"] = k
        state_file.write_text(json.dumps(state))
    for k in range(1, len(phases) + 1):
        with (run / f"log_phase{k}.csv").open() as fh:
            epochs_run.append(sum(1 for _ in csv.DictReader(fh)))
    for layer in model.layers:  # the saved model is for inference: nothing is being trained
        layer.trainable = True
    # Saved without the optimizer state (half the file): the model is committed for export.
    model.save(run / "model.keras")
    keras.saving.load_model(run / "model.keras", compile=False).save(run / "model.keras")
    logits = keras.Model(model.inputs, model.get_layer("logits").output).predict(x_val, batch_size=64, verbose=0)
    return {
        "parameters": int(model.count_params()),
        "train_seconds": round(state["seconds"], 1),
        "epochs_per_phase": epochs_run,
        "schedule": phases,
        "temperature": fit_temperature(logits, y_val),
        "model_file": "model.keras",
        "feature_layer": FEATURES,
    }


def baseline_features(x: np.ndarray) -> np.ndarray:
    """64x64 greyscale pixels in 0-1, flattened: the baseline's input."""
    from PIL import Image

    out = np.empty((len(x), BASELINE_SIZE * BASELINE_SIZE), dtype=np.float32)
    for i, img in enumerate(x):
        grey = Image.fromarray(np.asarray(img)).convert("L").resize((BASELINE_SIZE, BASELINE_SIZE), Image.BILINEAR)
        out[i] = np.asarray(grey, dtype=np.float32).ravel() / 255.0
    return out


def baseline_parameters(model) -> int:
    pca = model.named_steps["pca"]
    lr = model.named_steps["logisticregression"]
    return int(pca.components_.size + pca.mean_.size + lr.coef_.size + lr.intercept_.size)
