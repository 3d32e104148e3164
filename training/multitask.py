"""One model, three heads, on cached frozen MobileNetV2 features; judged leave-one-source-out.

The head (what is trained; the backbone stays ImageNet's):

    features 7x7x1280 -> 1x1 conv 256 + ReLU ("adapter", per location)
        -> global average -> dense 2      tumour / no tumour  (CAM exact: adapter x kernel)
        -> global average -> dense 3      tumour type (glioma, meningioma, pituitary)
        -> 1x1 conv 1 -> sigmoid          P(tumour) per location: the heatmap

Losses: cross-entropy for the detector and (on tumours of known type) the type head, weighted by
(source, label) cell (``1/count**power``; 0.5 by default: a small hospital is not drowned, nor
copied a hundredfold); per-location binary cross-entropy of the heatmap against the expert
mask (share of each 7x7 cell inside the mask, saturating at 30%) where a mask exists, against zero
on every tumour-free image, and multiple-instance (the hottest location is tumour) on tumour
images without a mask. The masks are what tie the answer to the tumour rather than the collection.

Each epoch draws each image's view at random: as read, or appearance-augmented and mirrored.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.special import softmax

from training import catalogue
from training import features as feats
from training.calibrate import fit_temperature
from training.metrics import classification_metrics

# Keras warns on every call that a single-input model got a tensor rather than a list: noise.
warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")

TYPE_LABELS = list(catalogue.TUMOR_TYPES)
SEQUENCE_LABELS = list(catalogue.SEQUENCES)
#: The heads of runs made before the sequence head and the "other" type (v2's runs/multitask, v3's
#: runs/finetune), whose configs name no sequence labels: their stored weights load into these.
LEGACY_TYPE_LABELS = ["glioma", "meningioma", "pituitary"]
DETECTOR_LABELS = ["no_tumor", "tumor"]
ADAPTER = 256
MASK_SATURATION = 0.3


def labels_of(run_dir: str | Path) -> tuple[list[str], list[str]]:
    """(type labels, sequence labels) of a run's heads, from its ``config.json`` (a run of before the
    sequence head: three types, no sequence head)."""
    config = json.loads((Path(run_dir) / "config.json").read_text())
    return config.get("type_labels", LEGACY_TYPE_LABELS), config.get("sequence_labels", [])


def build_head(types: list[str] | None = None, sequences: list[str] | None = None, adapter: int = ADAPTER,
               seed: int = 0):
    """The trainable head on a ``[N, 7, 7, 1280]`` feature map; layer names are what export looks up.
    ``types`` / ``sequences`` default to this code's labels; ``sequences=[]``: no sequence head
    (``labels_of`` an older run)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((feats.GRID, feats.GRID, feats.CHANNELS), name="backbone_features")
    x = keras.layers.Dropout(0.3, name="feature_dropout")(inputs)
    a = keras.layers.Conv2D(adapter, 1, activation="relu", name="features")(x)
    pool = keras.layers.GlobalAveragePooling2D(name="pool")(a)
    dropped = keras.layers.Dropout(0.3, name="dropout")(pool)
    logits = keras.layers.Dense(2, name="logits")(dropped)
    types = TYPE_LABELS if types is None else types
    sequences = SEQUENCE_LABELS if sequences is None else sequences
    out = {"logits": logits, "type_logits": keras.layers.Dense(len(types), name="type_logits")(dropped)}
    if sequences:
        out["sequence_logits"] = keras.layers.Dense(len(sequences), name="sequence_logits")(dropped)
    out["heat_logits"] = keras.layers.Conv2D(1, 1, name="heat_logits")(keras.layers.Dropout(0.2, name="heat_dropout")(a))
    out["features"] = a
    return keras.Model(inputs, out, name="multitask_head")


def targets(doc: dict) -> dict[str, np.ndarray]:
    """Per catalogue item: detector label, type index (-1 unknown), sequence index (-1 unknown), source
    index, and the balance cell (source x sequence: a collection's sequences count apart)."""
    items = doc["items"]
    y = np.array([DETECTOR_LABELS.index(r["label"]) for r in items], np.int64)
    t = np.array([TYPE_LABELS.index(r["tumor_type"]) if r["tumor_type"] else -1 for r in items], np.int64)
    q = np.array([SEQUENCE_LABELS.index(r["sequence"]) if r.get("sequence") else -1 for r in items], np.int64)
    src = np.array([doc["sources"].index(r["source"]) for r in items], np.int64)
    return {"y": y, "type": t, "sequence": q, "source": src, "cell": src * (len(SEQUENCE_LABELS) + 1) + q + 1}


def balance_weights(y: np.ndarray, source: np.ndarray, idx: np.ndarray, power: float = 0.5) -> np.ndarray:
    """Weights of ``idx``'s items, ``1/count**power`` of their (source, label) cell, mean 1
    (power 0: none; 0.5: square root; 1: every cell counts alike)."""
    cells = Counter(zip(source[idx].tolist(), y[idx].tolist()))
    w = np.array([cells[(s, c)] ** -power for s, c in zip(source[idx], y[idx])], np.float64)
    return (w / w.mean()).astype(np.float32)


def heat_targets(m: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-location targets from mask grids ``m`` (NaN: no mask) and labels ``y``, and the weights
    of the two heatmap losses: every cell where it is known, the hottest cell where only "tumour" is."""
    has_mask = ~np.isnan(m[:, 0, 0])
    target = np.where(has_mask[:, None, None], np.clip(np.nan_to_num(m) / MASK_SATURATION, 0, 1), 0.0)
    cell_w = (has_mask | (y == 0)).astype(np.float32)  # masked, or tumour-free: every cell known
    mil_w = ((~has_mask) & (y == 1)).astype(np.float32)  # a tumour somewhere, no mask
    return target.astype(np.float32), cell_w, mil_w


def sequence_loss(out, q, w):
    """Cross-entropy of the sequence head on the images whose sequence is known (``q >= 0``)."""
    import keras
    import tensorflow as tf

    known = tf.cast(q >= 0, tf.float32) * w
    ce = keras.losses.sparse_categorical_crossentropy(tf.maximum(q, 0), out["sequence_logits"], from_logits=True)
    return tf.reduce_sum(known * ce) / tf.maximum(tf.reduce_sum(known), 1.0)


def losses(out, y, t, w, target, cell_w, mil_w, heat_key: str = "heat_logits", negative_peak: float = 0.0):
    """Detector, type and heatmap losses of a batch (weighted by ``w``), the map's logits at ``heat_key``.
    ``negative_peak`` weighs a term that pushes the hottest cell of a tumour-free image to 0: the mean
    over 196 cells lets one hot spot stand (the maps of normals peaked at >= 0.5 on 34-96 % of them)."""
    import keras
    import tensorflow as tf

    ce = keras.losses.sparse_categorical_crossentropy(y, out["logits"], from_logits=True)
    det = tf.reduce_sum(w * ce) / tf.reduce_sum(w)
    known = tf.cast(t >= 0, tf.float32) * w
    tce = keras.losses.sparse_categorical_crossentropy(tf.maximum(t, 0), out["type_logits"], from_logits=True)
    typ = tf.reduce_sum(known * tce) / tf.maximum(tf.reduce_sum(known), 1.0)
    hl = out[heat_key][..., 0]
    bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=hl)
    cell = tf.reduce_sum(cell_w * w * tf.reduce_mean(bce, axis=[1, 2])) / tf.maximum(tf.reduce_sum(cell_w * w), 1.0)
    peak = tf.reduce_max(hl, axis=[1, 2])
    mil = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(peak), logits=peak)
    mil = tf.reduce_sum(mil_w * w * mil) / tf.maximum(tf.reduce_sum(mil_w * w), 1.0)
    if not negative_peak:
        return det, typ, cell + 0.5 * mil
    normal = tf.cast(y == 0, tf.float32) * w
    cold = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(peak), logits=peak)
    cold = tf.reduce_sum(normal * cold) / tf.maximum(tf.reduce_sum(normal), 1.0)
    return det, typ, cell + 0.5 * mil + negative_peak * cold


def fit(views: list[np.ndarray], masks: list[np.ndarray], tg: dict, train_idx: np.ndarray, val_idx: np.ndarray,
        epochs: int = 20, batch: int = 128, lr: float = 1e-3, patience: int = 4, seed: int = 0,
        log: Path | None = None, balance_power: float = 0.5):
    """Train a head on the given items; returns the head at its best validation loss and the log rows."""
    import keras
    import tensorflow as tf

    head = build_head(seed=seed)
    opt = keras.optimizers.Adam(lr)
    w_train = balance_weights(tg["y"], tg["source"], train_idx, balance_power)
    w_val = balance_weights(tg["y"], tg["source"], val_idx, balance_power)
    rng = np.random.default_rng(seed)

    @tf.function(reduce_retracing=True)
    def step(x, y, t, w, target, cell_w, mil_w):
        with tf.GradientTape() as tape:
            det, typ, heat = losses(head(x, training=True), y, t, w, target, cell_w, mil_w)
            total = det + 0.5 * typ + heat
        grads = tape.gradient(total, head.trainable_variables)
        opt.apply_gradients(zip(grads, head.trainable_variables))
        return det, typ, heat

    def batch_of(idx, view_of):
        x = np.where(view_of[:, None, None, None] == 0, views[0][idx], views[-1][idx]).astype(np.float32)
        m = np.where(view_of[:, None, None] == 0, masks[0][idx], masks[-1][idx])
        return x, m

    def val_loss() -> tuple[float, float, float]:
        sums = np.zeros(3)
        for s in range(0, len(val_idx), 256):
            idx = val_idx[s:s + 256]
            x, m = batch_of(idx, np.zeros(len(idx), np.int64))
            target, cell_w, mil_w = heat_targets(m, tg["y"][idx])
            parts = losses(head(x, training=False), tg["y"][idx], tg["type"][idx], w_val[s:s + 256],
                           target, cell_w, mil_w)
            sums += np.array([float(p) for p in parts]) * len(idx)
        return tuple(sums / len(val_idx))

    best, best_weights, rows, waited = np.inf, None, [], 0
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        order = rng.permutation(len(train_idx))
        train_sums = np.zeros(3)
        for s in range(0, len(order), batch):
            pos = np.sort(order[s:s + batch])  # sorted: memory-mapped reads stay sequential-ish
            idx = train_idx[pos]
            x, m = batch_of(idx, rng.integers(0, len(views), len(idx)))
            target, cell_w, mil_w = heat_targets(m, tg["y"][idx])
            parts = step(x, tg["y"][idx], tg["type"][idx], w_train[pos], target, cell_w, mil_w)
            train_sums += np.array([float(p) for p in parts]) * len(idx)
        v = val_loss()
        tr = train_sums / len(order)
        score = v[0] + 0.5 * v[1] + v[2]
        rows.append({"epoch": epoch, "det": tr[0], "type": tr[1], "heat": tr[2], "val_det": v[0], "val_type": v[1],
                     "val_heat": v[2], "val_total": score, "seconds": round(time.time() - t0, 1)})
        print(f"  epoch {epoch}: train det {tr[0]:.4f} type {tr[1]:.4f} heat {tr[2]:.4f} | val det {v[0]:.4f} "
              f"type {v[1]:.4f} heat {v[2]:.4f} ({time.time() - t0:.0f} s)", flush=True)
        if score < best - 1e-4:
            best, best_weights, waited = score, head.get_weights(), 0
        else:
            waited += 1
            if waited >= patience:
                break
    head.set_weights(best_weights)
    if log is not None:
        log.write_text(json.dumps(rows, indent=1))
    return head, rows


def predict(head, x: np.ndarray, temperature: float = 1.0, batch: int = 256) -> dict[str, np.ndarray]:
    """Every output of the head for feature maps ``x`` (as the exported graph computes them)."""
    outs: dict[str, list] = {k: [] for k in ("logits", "probabilities", "type_probabilities", "heatmap", "cam",
                                             "embedding")}
    kernel = head.get_layer("logits").get_weights()[0]
    for s in range(0, len(x), batch):
        o = head(np.asarray(x[s:s + batch], np.float32), training=False)
        a = np.asarray(o["features"])
        logits = np.asarray(o["logits"])
        outs["logits"].append(logits)
        outs["probabilities"].append(softmax(logits / temperature, axis=1))
        outs["type_probabilities"].append(softmax(np.asarray(o["type_logits"]), axis=1))
        outs["heatmap"].append(1.0 / (1.0 + np.exp(-np.asarray(o["heat_logits"])[..., 0])))
        outs["cam"].append(a @ kernel)
        outs["embedding"].append(a.mean(axis=(1, 2)))
    return {k: np.concatenate(v) for k, v in outs.items()}


# ---------------------------------------------------------------- evaluation


def fold_metrics(doc: dict, tg: dict, idx: np.ndarray, pred: dict, meta: dict, with_heatmaps: bool = True,
                 threshold: float = 0.5) -> dict:
    """Detection, type and heatmap figures of one test set, pooled and per source, answers at ``threshold``."""
    y, probs = tg["y"][idx], pred["probabilities"]
    out = classification_metrics(y, probs, DETECTOR_LABELS, ["no_tumor"], threshold)
    by_source = {}
    for s in sorted(set(tg["source"][idx].tolist())):
        m = tg["source"][idx] == s
        by_source[doc["sources"][s]] = _brief(classification_metrics(y[m], probs[m], DETECTOR_LABELS, ["no_tumor"],
                                                                     threshold))
    out["by_source"] = by_source
    seq = tg["sequence"][idx] if "sequence" in tg else np.full(len(idx), -1)
    by_sequence = {}
    for q in sorted(set(seq.tolist())):
        m = seq == q
        by_sequence[SEQUENCE_LABELS[q] if q >= 0 else "unknown"] = _brief(
            classification_metrics(y[m], probs[m], DETECTOR_LABELS, ["no_tumor"], threshold))
    out["by_sequence"] = by_sequence
    if "sequence_probabilities" in pred and (seq >= 0).any():
        sp = pred["sequence_probabilities"][seq >= 0].argmax(1)
        out["sequence"] = {"n": int((seq >= 0).sum()), "accuracy": float((sp == seq[seq >= 0]).mean()),
                           "recall": {lab: _recall(seq[seq >= 0], sp, k) for k, lab in enumerate(SEQUENCE_LABELS)}}
    typed = tg["type"][idx] >= 0
    if typed.any():
        tp = pred["type_probabilities"][typed]
        out["type"] = {"n": int(typed.sum()), "accuracy": float((tp.argmax(1) == tg["type"][idx][typed]).mean()),
                       "per_type": {lab: {"n": int((tg["type"][idx][typed] == k).sum()),
                                          "recall": _recall(tg["type"][idx][typed], tp.argmax(1), k)}
                                    for k, lab in enumerate(TYPE_LABELS)}}
    heat_peak = pred["heatmap"].reshape(len(idx), -1).max(axis=1)
    from training.metrics import roc_auc

    out["heatmap_peak_auc"] = roc_auc(y, heat_peak) if len(set(y.tolist())) > 1 else None
    if with_heatmaps:
        out["heatmap"] = heatmap_faithfulness(doc, idx, pred, meta)
    return out


def _recall(truth: np.ndarray, pred: np.ndarray, k: int) -> float | None:
    m = truth == k
    return float((pred[m] == k).mean()) if m.any() else None


def _brief(m: dict) -> dict:
    d = m["tumor_detection"]
    return {"n": m["n"], "accuracy": d["accuracy"], "sensitivity": d["sensitivity"], "specificity": d["specificity"],
            "roc_auc": d["roc_auc"], "ece": m["ece"]}


POINTING_TOLERANCE_PX = 15


def heatmap_faithfulness(doc: dict, idx: np.ndarray, pred: dict, meta: dict) -> dict:
    """Pointing game (heatmap maximum within 15 px of the expert mask, in the frame's pixels) and the
    share of the heat inside the mask, on the test images that have a mask, per source; for the
    heatmap head and for the detector's CAM."""
    from PIL import Image
    from scipy.ndimage import distance_transform_edt

    from gui.core.engine.heatmap import heat_to_frame, normalise_cam
    from gui.core.engine.preprocess import Geometry

    res: dict[str, dict[str, list]] = {}
    roots = doc["datasets"]
    for k, i in enumerate(idx):
        r = doc["items"][i]
        if not r["mask"] or r["label"] != "tumor":
            continue
        with Image.open(Path(roots[r["dataset"]]) / r["mask"]) as m:
            mask = np.asarray(m.convert("L")) > 127
        if not mask.any():
            continue
        g = Geometry(*(int(v) for v in meta["geometry"][i]))
        dist = distance_transform_edt(~mask)
        for name, grid in (("heatmap", pred["heatmap"][k]), ("cam", normalise_cam(pred["cam"][k][..., 1]))):
            heat = heat_to_frame(grid, g, *mask.shape)
            peak = np.unravel_index(int(np.argmax(heat)), heat.shape)
            entry = res.setdefault(name, {}).setdefault(r["source"], [])
            total = float(heat.sum())
            entry.append((dist[peak] <= POINTING_TOLERANCE_PX, float(heat[mask].sum()) / total if total > 0 else 0.0))
    out = {}
    for name, per_source in res.items():
        allv = [v for vs in per_source.values() for v in vs]
        out[name] = {"n": len(allv), "pointing_game": float(np.mean([v[0] for v in allv])),
                     "mass_inside_mask": float(np.mean([v[1] for v in allv])),
                     "by_source": {s: {"n": len(vs), "pointing_game": float(np.mean([v[0] for v in vs])),
                                       "mass_inside_mask": float(np.mean([v[1] for v in vs]))}
                                   for s, vs in sorted(per_source.items())}}
    return out


# ---------------------------------------------------------------- runs


def data_config(doc: dict, catalogue_path: str) -> dict:
    """What a model card says about the data and the model input: labels, input rule, the catalogue's
    datasets, sources, split method and part sizes (shared by every run on ``catalogue_path``)."""
    return {"labels": DETECTOR_LABELS, "type_labels": TYPE_LABELS, "sequence_labels": SEQUENCE_LABELS,
            "input_size": feats.SIZE, "preprocessing": feats.PREPROCESSING, "catalogue": catalogue_path,
            "datasets": sorted(doc["datasets"]), "sources": doc["sources"], "split_method": doc["method"],
            "counts": {p: int(len(v)) for p, v in catalogue.fold(doc, None).items()}}


def write_config(doc: dict, catalogue_path: str, features_dir: str, out: Path, epochs: int, seed: int,
                 balance_power: float) -> None:
    """What every fold of the run shares, for export and the model card."""
    out.mkdir(parents=True, exist_ok=True)
    head = build_head()
    config = {
        "arch": "mobilenetv2-multitask (ImageNet MobileNetV2, frozen; trained 1x1-conv adapter + three heads)",
        **data_config(doc, catalogue_path), "features": features_dir,
        "parameters": int(head.count_params()) + 2_257_984,  # + MobileNetV2 backbone (no top)
        "method": {"adapter_channels": ADAPTER, "mask_saturation": MASK_SATURATION, "epochs_max": epochs,
                   "early_stopping": "patience 4 on the validation loss (sum of the three heads)",
                   "views": "as read, and appearance-augmented + mirrored (training.features.augment)",
                   "weighting": f"1/count**{balance_power} of each (source, label) cell", "seed": seed},
    }
    (out / "config.json").write_text(json.dumps(config, indent=1))


def run(catalogue_path: str, features_dir: str, out: str, folds: list[str] | None = None, epochs: int = 20,
        seed: int = 0, balance_power: float = 0.5) -> None:
    """Train and score the in-distribution model and each leave-one-source-out fold (skipping
    folds already finished: re-run after an interruption). Writes ``out/<fold>/metrics.json``,
    ``predictions.npz`` (test outputs, for the caution analysis) and the head's weights."""
    from training import split as splits

    doc = splits.load(catalogue_path)
    tg = targets(doc)
    views, masks, meta0 = [], [], None
    for v in range(2):
        f, meta = feats.load(features_dir, v)
        views.append(np.asarray(f))  # into memory: random batches from a memory map are slow
        masks.append(meta["mask"])
        meta0 = meta0 or meta
    print(f"features: {len(views)} view(s) of {len(doc['items'])} images", flush=True)
    write_config(doc, catalogue_path, features_dir, Path(out), epochs, seed, balance_power)
    names = folds or ["in-distribution"] + list(doc["sources"])
    for name in names:
        folder = Path(out) / name
        if (folder / "metrics.json").exists():
            print(f"[{name}] done already", flush=True)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        parts = catalogue.fold(doc, None if name == "in-distribution" else name)
        print(f"[{name}] train {len(parts['train'])} / val {len(parts['val'])} / test {len(parts['test'])}", flush=True)
        t0 = time.time()
        head, rows = fit(views, masks, tg, parts["train"], parts["val"], epochs=epochs, seed=seed,
                         log=folder / "log.json", balance_power=balance_power)
        val_pred = predict(head, views[0][parts["val"]])
        temperature = fit_temperature(val_pred["logits"], tg["y"][parts["val"]])
        val_pred["probabilities"] = softmax(val_pred["logits"] / temperature, axis=1)
        pred = predict(head, views[0][parts["test"]], temperature)
        metrics = fold_metrics(doc, tg, parts["test"], pred, meta0)
        metrics.update(fold=name, train_seconds=round(time.time() - t0, 1), temperature=temperature,
                       epochs=len(rows), counts={p: int(len(v)) for p, v in parts.items()})
        head.save_weights(folder / "head.weights.h5")
        np.savez_compressed(folder / "predictions.npz", index=parts["test"],
                            **{k: v for k, v in pred.items() if k != "cam"},
                            val_index=parts["val"], **{f"val_{k}": val_pred[k] for k in
                                                       ("probabilities", "type_probabilities", "heatmap", "embedding")})
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
        d = metrics["tumor_detection"]
        print(f"[{name}] n={metrics['n']} acc={d['accuracy']:.4f} sens={d['sensitivity']} spec={d['specificity']} "
              f"auc={d['roc_auc']} ece={metrics['ece']:.4f} heat={json.dumps({k: round(v['pointing_game'], 3) for k, v in metrics.get('heatmap', {}).items()})} "
              f"({time.time() - t0:.0f} s)", flush=True)
