"""Partial fine-tuning after a linear probe (LP-FT, Kumar et al. 2022) on cached augmented views.

The frozen front (ImageNet MobileNetV2 up to ``block_12_add``) was run once over every view of every
image (``training/front.py``). What is trained here starts from the frozen model's fold:

    front 14x14x96 -> block_13 ... block_16, Conv_1 (ImageNet weights; BatchNorm frozen, inference mode)
        -> the multi-task head of ``training/multitask.py``, initialised from that fold's trained head
        -> heatmap at 14x14: 1x1 conv over [block_13_expand_relu (14x14x576), adapter upsampled to 14x14],
           initialised to the frozen model's 7x7 heatmap upsampled (the block part starts at zero)

so epoch 0 *is* the starting model, and every later epoch is compared with it. Each epoch draws one
view per image from the chosen families; a pasted view is used only when its donor is a training
image of the fold. After every epoch the fold's held-out test part is scored (view 0, as read):
the epoch count is chosen across the leave-one-source-out folds, never on in-distribution figures.

``--freeze`` trains only the head on the same views (the "augmented views, frozen backbone" arm);
``--swa`` also scores the average of each fold's epoch weights, a candidate like any epoch.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import softmax

from training import catalogue, front, views
from training import features as feats
from training import multitask as mt
from training.calibrate import fit_temperature

warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")

BLOCKS = ((13, 2, False), (14, 1, True), (15, 1, True), (16, 1, False))
HEAT_GRID = front.GRID14


def tail_of(full, x):
    """MobileNetV2's layers after ``block_12_add`` applied to ``x`` (the same layer objects, so the
    trained weights are the full network's): the 7x7x1280 map and ``block_13_expand_relu``."""
    expand = None
    for i, stride, add in BLOCKS:
        p = f"block_{i}_"
        y = x
        for name in ("expand", "expand_BN", "expand_relu"):
            y = full.get_layer(p + name)(y)
        if i == 13:
            expand = y
        if stride == 2:
            y = full.get_layer(p + "pad")(y)
        for name in ("depthwise", "depthwise_BN", "depthwise_relu", "project", "project_BN"):
            y = full.get_layer(p + name)(y)
        x = full.get_layer(p + "add")([x, y]) if add else y
    for name in ("Conv_1", "Conv_1_bn", "out_relu"):
        x = full.get_layer(name)(x)
    return x, expand


def _heads(head, fmap, expand):
    """The multi-task head's outputs on ``fmap`` plus the 14x14 heat logits."""
    import keras

    out = dict(head(fmap))
    up = keras.layers.UpSampling2D(2, interpolation="nearest", name="adapter_up")(out["features"])
    both = keras.layers.Concatenate(name="heat_inputs")([expand, up])
    out["heat14_logits"] = keras.layers.Conv2D(1, 1, name="heat14_logits")(both)
    return out


def build(weights: str, head_weights: str | Path | None, freeze: bool = False,
          labels: tuple[list[str], list[str]] | None = None):
    """(the full ImageNet network, the trainable model on front maps, the head, the pixel model);
    ``labels``: the head's (types, sequences), default this code's (``mt.labels_of`` an older run)."""
    import keras

    full = feats.backbone(weights)
    head = mt.build_head(*(labels or (None, None)))
    if head_weights is not None:
        head.load_weights(head_weights)
    for layer in full.layers:
        layer.trainable = not freeze and not isinstance(layer, keras.layers.BatchNormalization)
    head.get_layer("heat_logits").trainable = False  # replaced by the 14x14 map, which starts from it
    x_in = keras.Input((front.GRID14, front.GRID14, front.CH), name="front_features")
    fmap, expand = tail_of(full, x_in)
    out = _heads(head, fmap, expand)
    model = keras.Model(x_in, out, name="finetuned")
    heat7, bias7 = head.get_layer("heat_logits").get_weights()
    k14 = np.zeros((1, 1, expand.shape[-1] + heat7.shape[2], 1), np.float32)
    k14[0, 0, expand.shape[-1]:, 0] = heat7[0, 0, :, 0]
    model.get_layer("heat14_logits").set_weights([k14, bias7])
    pix_fmap, pix_expand = tail_of(full, full.get_layer(front.LAYER).output)
    pixels = keras.Model(full.inputs, heads_on(model, head, pix_fmap, pix_expand), name="pixels_to_outputs")
    return full, model, head, pixels


def heads_on(model, head, fmap, expand):
    """The same head layers applied to the pixel model's tail: the pixel model shares every weight."""
    out = dict(head(fmap))
    up = model.get_layer("adapter_up")(out["features"])
    out["heat14_logits"] = model.get_layer("heat14_logits")(model.get_layer("heat_inputs")([expand, up]))
    return out


def level_fifths(doc: dict) -> np.ndarray:
    """Per item: the fifth of its lgg volume from the skull base up (0-4), -1 outside lgg."""
    top: dict[str, int] = {}
    for r in doc["items"]:
        if r["patient"]:
            top[r["patient"]] = max(top.get(r["patient"], 0), int(r["slice"]))
    return np.array([min(4, int(5 * (int(r["slice"]) - 1) / top[r["patient"]])) if r["patient"] else -1
                     for r in doc["items"]])


def predict(model, x: np.ndarray, temperature: float = 1.0, batch: int = 128) -> dict[str, np.ndarray]:
    """Logits, calibrated probabilities, type probabilities, 14x14 heatmap, CAM and embedding."""
    outs: dict[str, list] = {k: [] for k in ("logits", "probabilities", "type_probabilities", "heatmap", "cam",
                                             "embedding")}
    kernel = model.get_layer("multitask_head").get_layer("logits").get_weights()[0]
    for s in range(0, len(x), batch):
        o = model(np.asarray(x[s:s + batch], np.float32), training=False)
        a, logits = np.asarray(o["features"]), np.asarray(o["logits"])
        outs["logits"].append(logits)
        outs["probabilities"].append(softmax(logits / temperature, axis=1))
        outs["type_probabilities"].append(softmax(np.asarray(o["type_logits"]), axis=1))
        if "sequence_logits" in o:  # heads of before the sequence head have none
            outs.setdefault("sequence_probabilities", []).append(softmax(np.asarray(o["sequence_logits"]), axis=1))
        outs["heatmap"].append(1.0 / (1.0 + np.exp(-np.asarray(o["heat14_logits"])[..., 0])))
        outs["cam"].append(a @ kernel)
        outs["embedding"].append(a.mean(axis=(1, 2)))
    return {k: np.concatenate(v) for k, v in outs.items()}


def by_level(tg_y: np.ndarray, p: np.ndarray, levels: np.ndarray, threshold: float = 0.5) -> dict:
    """Sensitivity and specificity by fifth of the lgg volume (skull base = fifth 1)."""
    out = {}
    for f in range(5):
        m = levels == f
        if not m.any():
            continue
        pos, neg = m & (tg_y == 1), m & (tg_y == 0)
        out[f"fifth {f + 1}"] = {"tumour": int(pos.sum()), "tumour_free": int(neg.sum()),
                                 "sensitivity": float((p[pos] >= threshold).mean()) if pos.any() else None,
                                 "specificity": float((p[neg] < threshold).mean()) if neg.any() else None}
    return out


def score(model, doc, tg, f0, parts, meta, levels, epoch: int, folder: Path, heatmaps: bool) -> dict:
    """The fold's figures at this epoch (test part as read, temperature fitted on val); writes the
    predictions the operating point and the series rule are chosen from."""
    val = predict(model, f0[parts["val"]])
    temperature = fit_temperature(val["logits"], tg["y"][parts["val"]])
    pred = predict(model, f0[parts["test"]], temperature)
    val["probabilities"] = softmax(val["logits"] / temperature, axis=1)
    m = mt.fold_metrics(doc, tg, parts["test"], pred, meta, with_heatmaps=heatmaps)
    lv = levels[parts["test"]]
    if (lv >= 0).any():
        m["lgg_by_level"] = by_level(tg["y"][parts["test"]][lv >= 0], pred["probabilities"][lv >= 0, 1], lv[lv >= 0])
    m.update(epoch=epoch, temperature=temperature)
    extra = {"sequence_probabilities": pred["sequence_probabilities"].astype(np.float16)} \
        if "sequence_probabilities" in pred else {}
    np.savez_compressed(folder / f"predictions-{epoch}.npz", index=parts["test"], val_index=parts["val"],
                        probabilities=pred["probabilities"], logits=pred["logits"],
                        type_probabilities=pred["type_probabilities"], **extra,
                        heatmap=pred["heatmap"].astype(np.float16),
                        embedding=pred["embedding"].astype(np.float16), val_probabilities=val["probabilities"],
                        val_logits=val["logits"], val_embedding=val["embedding"].astype(np.float16))
    return m


def _view_choice(meta: dict, families: list[int], idx: np.ndarray, in_train: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """One view per item: drawn from ``families``; a pasted view whose donor is not a training image
    of this fold falls back to the image as read."""
    v = np.asarray(families)[rng.integers(0, len(families), len(idx))]
    donor = meta["donor"][v, idx]
    bad = (donor >= 0) & ~in_train[np.maximum(donor, 0)]
    return np.where(bad, 0, v)


def fit_fold(name: str, doc: dict, tg: dict, data: np.ndarray, meta: dict, levels: np.ndarray, out: Path,
             weights: str, families: list[int], epochs: int, freeze: bool, lr: float, seed: int = 0,
             frozen_run: str | None = "runs/multitask", batch: int = 64, balance_power: float = 0.5,
             probe_epochs: int = 0, init: tuple[Path, str] | None = None, negative_peak: float = 0.0,
             consistency: float = 0.0) -> None:
    """Fine-tune one fold from its frozen model (``frozen_run``'s head of this fold; None: a fresh
    head), scoring epoch 0 (the start) and every epoch after. With ``probe_epochs`` the first epochs
    train the head alone at 10x the rate (the linear probe of LP-FT, for a fresh head), the rest
    everything. ``init`` (run folder, epoch) continues from another run's weights of this fold instead,
    its epoch taken over as epoch 0 (figures and predictions copied, not recomputed); ``negative_peak``
    weighs the map's cold-peak term on tumour-free images (``multitask.losses``); ``consistency`` weighs
    ``consistency_loss`` between each drawn view and its partner view (:func:`partner_views`), at the
    cost of a second forward pass per step."""
    import keras
    import tensorflow as tf

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    parts = catalogue.fold(doc, None if name == "in-distribution" else name)
    full, model, head, _ = build(weights, Path(frozen_run) / name / "head.weights.h5" if frozen_run else None, freeze,
                                 mt.labels_of(frozen_run) if frozen_run else None)
    done = sorted(int(p.stem.split("-")[1]) for p in folder.glob("metrics-*.json"))
    start = done[-1] if done and (folder / f"epoch-{done[-1]}.weights.h5").exists() else None
    if start is not None:
        model.load_weights(folder / f"epoch-{start}.weights.h5")
    f0 = data[0]
    if start is None and init is not None:
        src = Path(init[0]) / name
        model.load_weights(src / f"epoch-{init[1]}.weights.h5")
        m = json.loads((src / f"metrics-{init[1]}.json").read_text())
        m.update(epoch=0, continued_from=f"{src}/epoch-{init[1]}")
        (folder / "metrics-0.json").write_text(json.dumps(m, indent=1))
        shutil.copyfile(src / f"predictions-{init[1]}.npz", folder / "predictions-0.npz")
        model.save_weights(folder / "epoch-0.weights.h5")
        start = 0
    if start is None:
        m = score(model, doc, tg, f0, parts, meta, levels, 0, folder, heatmaps=True)
        (folder / "metrics-0.json").write_text(json.dumps(m, indent=1))
        model.save_weights(folder / "epoch-0.weights.h5")
        _say(name, m)
        start = 0
    train_idx = parts["train"]
    in_train = np.zeros(len(doc["items"]), bool)
    in_train[train_idx] = True
    w_train = mt.balance_weights(tg["y"], tg["cell"], train_idx, balance_power)
    strong = views.FAMILIES.index("strong")  # another sequence's look: its sequence label no longer holds
    geometry = views.FAMILIES.index("geometry")  # the consistency term's partner view
    heat14 = model.get_layer("heat14_logits").trainable_variables
    head_vars = [v for v in head.trainable_variables] + heat14
    body_vars = [v for v in model.trainable_variables if all(v is not h for h in head_vars)]
    opt_body, opt_head, opt_heat = (keras.optimizers.Adam(lr), keras.optimizers.Adam(lr),
                                    keras.optimizers.Adam(10 * lr))
    heat_ids = {id(v) for v in heat14}

    opt_probe = keras.optimizers.Adam(10 * lr)

    def make_step(probe: bool):
        @tf.function(reduce_retracing=True)
        def step(x, y, t, q, w, target, cell_w, mil_w, x2, same):
            with tf.GradientTape() as tape:
                out = model(x, training=True)
                det, typ, heat = mt.losses(out, y, t, w, target, cell_w, mil_w, "heat14_logits", negative_peak)
                seq = mt.sequence_loss(out, q, w) if "sequence_logits" in out else tf.constant(0.0)
                total = det + 0.5 * typ + heat + SEQUENCE_WEIGHT * seq
                if consistency:  # a Python constant: the second pass is traced only when asked for
                    cons = consistency_loss(out["logits"], model(x2, training=True)["logits"], w * same)
                    total = total + consistency * cons
            if probe:
                grads = tape.gradient(total, head_vars)
                opt_probe.apply_gradients(zip(grads, head_vars))
                return det, typ, heat, seq
            variables = body_vars + head_vars
            grads = tape.gradient(total, variables)
            nb = len(body_vars)
            if nb:
                opt_body.apply_gradients(zip(grads[:nb], body_vars))
            rest = list(zip(grads[nb:], head_vars))
            opt_head.apply_gradients([(g, v) for g, v in rest if id(v) not in heat_ids])
            opt_heat.apply_gradients([(g, v) for g, v in rest if id(v) in heat_ids])
            return det, typ, heat, seq
        return step

    steps = {True: make_step(True), False: make_step(False)}

    rng = np.random.default_rng([seed, start])
    for epoch in range(start + 1, epochs + 1):
        t0 = time.time()
        order = rng.permutation(len(train_idx))
        sums = np.zeros(4)
        step = steps[epoch <= probe_epochs]
        for s in range(0, len(order), batch):
            pos = np.sort(order[s:s + batch])
            idx = train_idx[pos]
            v = _view_choice(meta, families, idx, in_train, rng)
            y = meta["label"][v, idx].astype(np.int64)
            t = np.where(y == 1, meta["type"][v, idx], -1).astype(np.int64)
            q = np.where(v == strong, -1, tg["sequence"][idx]).astype(np.int64)
            target, cell_w, mil_w = mt.heat_targets(meta["mask14"][v, idx].astype(np.float32), y)
            if consistency:
                partner = partner_views(v, geometry)
                same = (meta["label"][partner, idx] == meta["label"][v, idx]).astype(np.float32)
                x2 = data[partner, idx].astype(np.float32)
            else:  # never read by the traced step
                x2, same = np.zeros((1,), np.float32), np.zeros((1,), np.float32)
            parts_loss = step(data[v, idx].astype(np.float32), y, t, q, w_train[pos], target, cell_w, mil_w, x2, same)
            sums += np.array([float(p) for p in parts_loss]) * len(idx)
        m = score(model, doc, tg, f0, parts, meta, levels, epoch, folder, heatmaps=True)
        m["train_loss"] = dict(zip(("det", "type", "heat", "sequence"), (sums / len(order)).round(4).tolist()))
        m["probe"] = epoch <= probe_epochs
        m["seconds"] = round(time.time() - t0, 1)
        model.save_weights(folder / f"epoch-{epoch}.weights.h5")
        (folder / f"metrics-{epoch}.json").write_text(json.dumps(m, indent=1))
        _say(name, m)


def partner_views(v: np.ndarray, geometry: int) -> np.ndarray:
    """Each drawn view's partner for the consistency term: the geometry view (the image flipped, turned,
    rotated or scaled) for any other family, the image as read (family 0) for a geometry view."""
    return np.where(v == geometry, 0, geometry)


def consistency_loss(logits_a, logits_b, w):
    """Weighted mean squared difference of P(tumour) between two views of the same images (``w`` 0 where
    the views' labels differ, a paste made a tumour): the answer should not move when the scan is turned."""
    import tensorflow as tf

    pa, pb = tf.nn.softmax(logits_a)[:, 1], tf.nn.softmax(logits_b)[:, 1]
    return tf.reduce_sum(w * tf.square(pa - pb)) / tf.maximum(tf.reduce_sum(w), 1.0)


def average(name: str, doc: dict, tg: dict, data: np.ndarray, meta: dict, levels: np.ndarray, out: Path,
            weights: str, epochs: int, first: int = 1) -> None:
    """The mean of a fold's fine-tuned weights over epochs ``first``..``epochs`` (stochastic weight
    averaging along one run: flatter optima hold up better on other data, and with BatchNorm frozen no
    statistics need re-estimating; epochs that swing from one to the next are averaged out), scored like
    an epoch as ``swa``."""
    folder = out / name
    if (folder / "metrics-swa.json").exists():
        return
    parts = catalogue.fold(doc, None if name == "in-distribution" else name)
    _full, model, _head, _ = build(weights, None, labels=mt.labels_of(out))
    stack = []
    for e in range(first, epochs + 1):
        model.load_weights(folder / f"epoch-{e}.weights.h5")
        stack.append(model.get_weights())
    model.set_weights([np.mean(ws, axis=0).astype(ws[0].dtype) for ws in zip(*stack)])
    m = score(model, doc, tg, data[0], parts, meta, levels, SWA, folder, heatmaps=True)
    m["averaged_epochs"] = list(range(first, epochs + 1))
    model.save_weights(folder / f"epoch-{SWA}.weights.h5")
    (folder / f"metrics-{SWA}.json").write_text(json.dumps(m, indent=1))
    _say(name, m)


SWA = "swa"
#: Weight of the sequence head's loss beside the detector's (1), the type's (0.5) and the map's (1).
SEQUENCE_WEIGHT = 0.3


def _say(name: str, m: dict) -> None:
    d = m["tumor_detection"]
    pg = m.get("heatmap", {}).get("heatmap", {}).get("pointing_game")
    print(f"[{name}] epoch {m['epoch']}: n={m['n']} acc={d['accuracy']:.4f} sens={d['sensitivity']} "
          f"spec={d['specificity']} auc={d['roc_auc']} ece={m['ece']:.4f} type={m.get('type', {}).get('accuracy')} "
          f"pointing={pg} ({m.get('seconds', 0)} s)", flush=True)


def run(catalogue_path: str, front_dir: str, out: str, weights: str, families: list[str], epochs: int = 3,
        freeze: bool = False, lr: float = 1e-4, folds: list[str] | None = None, swa: bool = False,
        frozen_run: str | None = "runs/multitask", probe_epochs: int = 0, swa_from: int = 1,
        init: tuple[str, str] | None = None, negative_peak: float = 0.0, consistency: float = 0.0) -> None:
    """Every fold (default: each source held out, each lgg sequence held out, then in-distribution),
    resumable by epoch; with ``swa`` also the average of each fold's epochs (``average``). Without
    ``frozen_run`` each fold starts from a fresh head trained alone for ``probe_epochs`` first."""
    from training import split as splits

    doc = splits.load(catalogue_path)
    tg = mt.targets(doc)
    mm, meta = front.load(front_dir)
    data = np.asarray(mm)  # into memory: random batches from a memory map are slow
    levels = level_fifths(doc)
    fam = [views.FAMILIES.index(f) for f in families]
    Path(out).mkdir(parents=True, exist_ok=True)
    start = (f"{init[0]}/<fold>/epoch-{init[1]}.weights.h5 (continued)" if init else
             f"the frozen multi-task model of each fold ({frozen_run}/<fold>/head.weights.h5, ImageNet MobileNetV2)"
             if frozen_run else f"ImageNet MobileNetV2 and a fresh head, trained alone for {probe_epochs} epoch(s) "
                                "at 10x the rate (linear probe), then with the network (LP-FT)")
    (Path(out) / "config.json").write_text(json.dumps({
        "start": start,
        "trained": "head only" if freeze else "block_13 ... Conv_1 (BatchNorm frozen) + head + 14x14 heatmap",
        "families": families, "epochs": epochs, "probe_epochs": probe_epochs, "lr": lr, "heat_lr": 10 * lr,
        "batch": 64, "sequence_loss_weight": SEQUENCE_WEIGHT, "negative_peak_weight": negative_peak,
        "consistency_weight": consistency,
        **({"init": list(init)} if init else {}),
        "type_labels": mt.labels_of(frozen_run)[0] if frozen_run else mt.TYPE_LABELS,
        "sequence_labels": mt.labels_of(frozen_run)[1] if frozen_run else mt.SEQUENCE_LABELS,
        "method": {"weighting": "1/count**0.5 of each (source, sequence, label) cell", "epochs_max": epochs,
                   "early_stopping": "none: every epoch scored on the held-out folds, the count chosen by a "
                                     "nested rule on the other folds (training/choose.py)"},
        "front": front.LAYER, "front_dir": front_dir, "catalogue": catalogue_path}, indent=1))
    sequence_folds = [f for f in catalogue.SEQUENCE_FOLDS if len(catalogue.fold(doc, f)["test"])]
    for name in folds or [*doc["sources"], *sequence_folds, "in-distribution"]:
        print(f"[{name}] start", flush=True)
        fit_fold(name, doc, tg, data, meta, levels, Path(out), weights, fam, epochs, freeze, lr,
                 frozen_run=frozen_run, probe_epochs=probe_epochs,
                 init=(Path(init[0]), init[1]) if init else None, negative_peak=negative_peak,
                 consistency=consistency)
        if swa:
            average(name, doc, tg, data, meta, levels, Path(out), weights, epochs, swa_from)
