"""Generalisation round 2: augmented views, LP-FT on the cached front, the choice of epochs and
operating point on held-out folds, and the fine-tuned model's export graph."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import synthetic_slice
from training import choose, views


def _head_and_mask(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A model-input-like image (uint8 RGB) with a bright square lesion, and the lesion's mask."""
    grey = synthetic_slice(np.random.default_rng(0), size=size).astype(np.float32) / 255 * 0.5
    mask = np.zeros((size, size), np.float32)
    mask[30:46, 50:66] = 1
    grey[mask > 0] = 1.0
    pixels = np.repeat((grey * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return pixels, mask


def test_the_eight_orientations_are_distinct_and_mirror_is_the_last_four():
    a = np.arange(16).reshape(4, 4)
    turned = [views.dihedral(a, k) for k in range(8)]
    assert len({t.tobytes() for t in turned}) == 8
    assert np.array_equal(views.dihedral(a, 4), a[:, ::-1])


@pytest.mark.parametrize("family", ["geometry", "mild", "strong"])
def test_masks_follow_the_view(family):
    """Wherever the view moves the lesion, the mask goes with it (the lesion is the brightest thing
    before an appearance change; with the geometry family alone, it is still the brightest)."""
    pixels, mask = _head_and_mask()
    for seed in range(6):
        out, m, pasted = views.make_view(family, pixels, mask, np.random.default_rng(seed))
        assert out.shape == pixels.shape and out.dtype == np.uint8 and not pasted
        assert m.shape == mask.shape and 0.7 < m.sum() / mask.sum() < 1.4  # scale 0.9-1.1
        if family == "geometry":
            grey = out[..., 0].astype(np.float32)
            assert grey[m > 0.9].mean() > grey[m < 0.1].mean() + 60


def test_strong_views_keep_the_background_dark():
    pixels, mask = _head_and_mask()
    for seed in range(8):
        out, _, _ = views.make_view("strong", pixels, mask, np.random.default_rng(seed))
        assert out[:4, :4].max() <= 10 and out[-4:, -4:].max() <= 10  # corners: no inverted background


def test_a_pasted_tumour_lands_in_the_head_with_its_mask_and_makes_a_positive():
    pixels, mask = _head_and_mask()
    clean = np.repeat(synthetic_slice(np.random.default_rng(1), size=96)[:, :, None], 3, axis=2)
    pasted = 0
    for seed in range(10):
        out, m, did = views.make_view("paste", clean, np.zeros((96, 96), np.float32), np.random.default_rng(seed),
                                      donor=(pixels[..., 0], mask))
        if did:
            pasted += 1
            head = views.head_of(out[..., 0].astype(np.float32) / 255) > 0.5  # the view is turned too
            assert m.sum() > 0.5 * mask.sum() and head[m > 0.5].mean() > 0.95
    assert pasted >= 5


def test_the_operating_point_needs_both_targets_else_takes_the_least_cost_point():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(500), np.zeros(500)].astype(int)
    easy = np.clip(np.where(y == 1, rng.normal(0.7, 0.1, 1000), rng.normal(0.2, 0.1, 1000)), 0, 1)
    point = choose.operating_point({"a": y[::2], "b": y[1::2]}, {"a": easy[::2], "b": easy[1::2]})
    assert point["rule"].startswith("held-out sensitivity")
    assert point["pooled"]["sensitivity"] >= 0.9 and point["pooled"]["specificity"] >= 0.85
    assert set(point["folds"]) == {"a", "b"}
    hard = np.clip(np.where(y == 1, rng.normal(0.55, 0.2, 1000), rng.normal(0.45, 0.2, 1000)), 0, 1)
    point = choose.operating_point({"a": y}, {"a": hard})
    assert point["rule"].startswith("least cost")
    s, p = choose.rates(y, hard, point["threshold"])
    cost = choose.MISS_COST  # a missed tumour weighs more than a false alarm: the point leans to sensitivity
    assert all(cost * s + p >= cost * a + b - 1e-9 for a, b in (choose.rates(y, hard, t) for t in choose.GRID))
    youden = max(choose.GRID, key=lambda t: sum(choose.rates(y, hard, t)))
    assert s > choose.rates(y, hard, youden)[0]


def test_every_held_out_collection_counts_alike_in_the_operating_point():
    """A big collection whose tumours all score high must not pull the threshold up past a small
    collection's tumours: by image count the threshold would be 0.75; by collection it cannot be."""
    big_y, big_p = np.ones(5000, int), np.full(5000, 0.9)
    small_y = np.r_[np.ones(100), np.zeros(100)].astype(int)
    small_p = np.r_[np.full(100, 0.6), np.full(100, 0.2)]
    point = choose.operating_point({"big": big_y, "small": small_y}, {"big": big_p, "small": small_p})
    assert point["threshold"] <= 0.6 and point["folds"]["small"]["sensitivity"] == 1.0
    assert point["folds"]["big"]["specificity"] is None


def test_the_epoch_is_chosen_on_held_out_auc_and_zero_is_a_candidate():
    def m(auc):
        return {"tumor_detection": {"roc_auc": auc}}

    folds = {"a": {0: m(0.9), 1: m(0.8), 2: m(0.95)}, "b": {0: m(0.9), 1: m(0.85), 2: m(0.80)},
             "in-distribution": {0: m(0.5), 1: m(0.99), 2: m(0.99)}, "tumours only": {0: m(None), 1: m(None), 2: m(None)}}
    assert choose.choose_epoch(folds, ["a", "b", "tumours only"])[0] == 0  # 0.9 vs 0.825 vs 0.875: the start wins


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    keras = pytest.importorskip("keras")
    base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False, weights=None)
    path = tmp_path_factory.mktemp("w") / "mnv2.weights.h5"
    base.save_weights(path)
    return path


def test_the_fine_tuned_graph_starts_as_the_frozen_model_and_exports_the_contract(tiny_weights):
    """Epoch 0 is the starting model: the pixel model equals tail(front(pixels)) and the 14x14 map
    equals the frozen 7x7 map upsampled; the exported graph's CAM is exact and its map is 14x14."""
    import keras
    from scipy.special import softmax

    from export.multitask import contract_model
    from training import finetune as ft, front

    full, model, head, pixels = ft.build(str(tiny_weights), None)
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    fr = keras.Model(full.inputs, full.get_layer(front.LAYER).output)
    a, b = pixels(x), model(fr(x))
    for k in b:
        assert np.allclose(np.asarray(a[k]), np.asarray(b[k]), atol=1e-4), k
    h7, h14 = np.asarray(b["heat_logits"])[..., 0], np.asarray(b["heat14_logits"])[..., 0]
    assert np.allclose(h14, h7.repeat(2, 1).repeat(2, 2), atol=1e-5)
    fmap, expand = ft.tail_of(full, full.get_layer(front.LAYER).output)
    exported = contract_model(full.inputs, ft.heads_on(model, head, fmap, expand), head, 1.5, "heat14_logits", 14)
    out = {k: np.asarray(v) for k, v in exported(x).items()}
    assert out["heatmap"].shape == (2, 14, 14) and out["cam"].shape == (2, 7, 7, 2)
    assert out["sequence_probabilities"].shape == (2, 4)  # the sequence head reaches the contract's outputs
    assert np.allclose(out["sequence_probabilities"].sum(axis=1), 1.0, atol=1e-5)
    bias = head.get_layer("logits").get_weights()[1]
    assert np.allclose(softmax((out["cam"].mean(axis=(1, 2)) + bias) / 1.5, axis=1), out["probabilities"], atol=1e-5)


def test_a_fold_is_fine_tuned_from_its_start_scored_every_epoch_and_resumes(tiny_weights, tmp_path, monkeypatch):
    """Front maps whose mean says tumour or not: the fold learns it, epoch 0 is scored before any
    step, a pasted view whose donor is outside the training part is never used, and a second call
    with more epochs continues from the last one instead of starting again."""
    from training import catalogue, finetune as ft, multitask as mt

    n, rng = 240, np.random.default_rng(1)
    items = [{"source": "s1" if i < 200 else "s2", "label": "tumor" if i % 2 else "no_tumor",
              "tumor_type": "glioma" if i % 2 else "", "mask": "", "patient": "", "slice": -1, "group": i,
              "part": ("train", "train", "val")[i % 3] if i < 200 else "test", "dataset": "d", "path": f"{i}.png"}
             for i in range(n)]
    doc = {"items": items, "sources": ["s1", "s2"], "datasets": {"d": str(tmp_path)}}
    y = np.array([i % 2 for i in range(n)])
    data = rng.normal(0, 1, (len(views.FAMILIES), n, 14, 14, 96)).astype(np.float16)
    data += (y[None, :, None, None, None] * 3.0).astype(np.float16)
    nv = len(views.FAMILIES)
    meta = {"label": np.repeat(y[None].astype(np.int8), nv, 0), "type": np.where(y == 1, 0, -1)[None].repeat(nv, 0),
            "donor": np.full((nv, n), -1), "mask14": np.full((nv, n, 14, 14), np.nan, np.float16),
            "geometry": np.tile([0, 0, 224], (n, 1))}
    meta["donor"][views.FAMILIES.index("paste"), :] = 210  # a held-out test image: never a training donor
    seen = []
    real_choice = ft._view_choice
    monkeypatch.setattr(ft, "_view_choice", lambda *a: seen.append(real_choice(*a)) or seen[-1])
    tg = mt.targets(doc)
    ft.fit_fold("s2", doc, tg, data, meta, ft.level_fifths(doc), tmp_path, str(tiny_weights), list(range(nv)),
                epochs=1, freeze=False, lr=1e-3, frozen_run=None, batch=16)
    folder = tmp_path / "s2"
    assert {p.name for p in folder.glob("metrics-*.json")} == {"metrics-0.json", "metrics-1.json"}
    assert seen and not any((v == views.FAMILIES.index("paste")).any() for v in seen)
    first = json.loads((folder / "metrics-0.json").read_text())
    stamp = (folder / "metrics-0.json").stat().st_mtime_ns
    ft.fit_fold("s2", doc, tg, data, meta, ft.level_fifths(doc), tmp_path, str(tiny_weights), list(range(nv)),
                epochs=2, freeze=False, lr=1e-3, frozen_run=None, batch=16)
    assert (folder / "metrics-2.json").exists() and (folder / "metrics-0.json").stat().st_mtime_ns == stamp
    last = json.loads((folder / "metrics-2.json").read_text())
    assert last["n"] == len(catalogue.fold(doc, "s2")["test"]) == first["n"] == 40
    assert last["tumor_detection"]["roc_auc"] > 0.9


def test_the_weight_average_is_a_candidate_and_loses_ties_to_fewer_epochs():
    def m(auc):
        return {"tumor_detection": {"roc_auc": auc}}

    folds = {"a": {0: m(0.8), 1: m(0.9), "swa": m(0.95)}, "b": {0: m(0.8), 1: m(0.9), "swa": m(0.9)}}
    assert choose.choose_epoch(folds, ["a", "b"])[0] == "swa"
    folds["a"]["swa"] = m(0.9)
    assert choose.choose_epoch(folds, ["a", "b"])[0] == 1


def test_a_fresh_heads_probe_epoch_leaves_the_network_and_the_sequence_head_learns(tiny_weights, tmp_path):
    """With a fresh head (v4: four types and a sequence head), the probe epochs move the head only
    (the sequence head included); the fine-tuning epoch after them moves the network too; the test
    part is scored per sequence."""
    from training import finetune as ft, multitask as mt

    n, rng = 240, np.random.default_rng(2)
    seqs = ["t1", "t2", "flair", "t1c"]
    items = [{"source": "s1" if i < 200 else "s2", "label": "tumor" if i % 2 else "no_tumor",
              "tumor_type": ("other" if i % 4 == 1 else "glioma") if i % 2 else "", "mask": "", "patient": "",
              "slice": -1, "group": i, "part": ("train", "train", "val")[i % 3] if i < 200 else "test",
              "dataset": "d", "path": f"{i}.png", "sequence": seqs[(i // 2) % 4]} for i in range(n)]
    doc = {"items": items, "sources": ["s1", "s2"], "datasets": {"d": str(tmp_path)}}
    y = np.array([i % 2 for i in range(n)])
    q = np.array([(i // 2) % 4 for i in range(n)])
    nv = len(views.FAMILIES)
    data = rng.normal(0, 1, (nv, n, 14, 14, 96)).astype(np.float16)
    data += (y[None, :, None, None, None] * 3.0).astype(np.float16)
    data += (np.eye(4)[q].repeat(24, 1)[None, :, None, None, :] * 5.0).astype(np.float16)  # the sequence shows
    meta = {"label": np.repeat(y[None].astype(np.int8), nv, 0), "type": np.where(y == 1, 0, -1)[None].repeat(nv, 0),
            "donor": np.full((nv, n), -1), "mask14": np.full((nv, n, 14, 14), np.nan, np.float16),
            "geometry": np.tile([0, 0, 224], (n, 1))}
    tg = mt.targets(doc)
    assert mt.TYPE_LABELS[-1] == "other" and (tg["type"] == mt.TYPE_LABELS.index("other")).any()
    kept = {}
    for epochs in (2, 3, 5):
        ft.fit_fold("s2", doc, tg, data, meta, ft.level_fifths(doc), tmp_path, str(tiny_weights), [0],
                    epochs=epochs, freeze=False, lr=1e-3, frozen_run=None, batch=8, probe_epochs=2)
        _full, model, _head, _ = ft.build(str(tiny_weights), None)
        model.load_weights(tmp_path / "s2" / f"epoch-{epochs}.weights.h5")
        kept[epochs] = {w.name: np.asarray(w).copy() for w in model.get_layer("block_13_expand").weights}
        kept[epochs]["logits"] = model.get_layer("multitask_head").get_layer("logits").get_weights()[0]
        kept[epochs]["sequence"] = model.get_layer("multitask_head").get_layer("sequence_logits").get_weights()[0]
    _full, model, _head, _ = ft.build(str(tiny_weights), None)
    model.load_weights(tmp_path / "s2" / "epoch-0.weights.h5")
    start = np.asarray(model.get_layer("block_13_expand").weights[0])
    start_logits = model.get_layer("multitask_head").get_layer("logits").get_weights()[0]
    start_sequence = model.get_layer("multitask_head").get_layer("sequence_logits").get_weights()[0]
    name = model.get_layer("block_13_expand").weights[0].name
    assert np.array_equal(kept[2][name], start) and not np.allclose(kept[2]["logits"], start_logits)
    assert not np.allclose(kept[2]["sequence"], start_sequence)  # the sequence head is trained too
    assert not np.allclose(kept[3][name], start)
    last = json.loads((tmp_path / "s2" / "metrics-5.json").read_text())
    assert json.loads((tmp_path / "s2" / "metrics-2.json").read_text())["probe"] is True and last["probe"] is False
    assert set(last["by_sequence"]) == set(seqs) and last["sequence"]["n"] == 40
    assert all(v["n"] == 10 for v in last["by_sequence"].values())


def test_the_sequence_loss_counts_only_known_sequences():
    tf = pytest.importorskip("tensorflow")
    from training import multitask as mt

    logits = tf.constant([[8.0, 0, 0, 0], [0, 0, 0, 8.0], [0, 0, 0, 0]])
    w = tf.ones(3)
    right = float(mt.sequence_loss({"sequence_logits": logits}, tf.constant([0, 3, -1]), w))
    wrong = float(mt.sequence_loss({"sequence_logits": logits}, tf.constant([1, 3, -1]), w))
    assert right < 0.02 < wrong
    assert float(mt.sequence_loss({"sequence_logits": logits}, tf.constant([-1, -1, -1]), w)) == 0.0


def test_a_run_of_before_the_sequence_head_still_loads_its_stored_head(tmp_path):
    """v2's heads (runs/multitask: three types, no sequence head) load into the head its config
    describes, so round 2 and the v3 export still run with this code."""
    pytest.importorskip("keras")
    from training import multitask as mt

    old = mt.build_head(mt.LEGACY_TYPE_LABELS, [])
    old.save_weights(tmp_path / "head.weights.h5")
    (tmp_path / "config.json").write_text(json.dumps({"type_labels": mt.LEGACY_TYPE_LABELS}))
    assert mt.labels_of(tmp_path) == (mt.LEGACY_TYPE_LABELS, [])
    head = mt.build_head(*mt.labels_of(tmp_path))
    head.load_weights(tmp_path / "head.weights.h5")
    assert "sequence_logits" not in head.output and head.get_layer("type_logits").units == 3
    with pytest.raises(ValueError):
        mt.build_head().load_weights(tmp_path / "head.weights.h5")  # today's head: four types, a sequence head


def test_the_negative_peak_term_cools_only_a_tumour_free_images_hottest_cell():
    """The map loss's mean over 196 cells lets one hot spot stand on a normal scan; the cold-peak term
    costs exactly that spot's cross-entropy against 0 and leaves tumour images alone."""
    tf = pytest.importorskip("tensorflow")
    from training import multitask as mt

    hl = np.zeros((2, 14, 14, 1), np.float32)
    hl[0, 3, 3, 0] = hl[1, 5, 5, 0] = 6.0  # a hot spot on a normal (0) and on a tumour image without mask (1)
    out = {"logits": tf.zeros((2, 2)), "type_logits": tf.zeros((2, 4)), "heat14_logits": tf.constant(hl)}
    y = np.array([0, 1])
    target, cell_w, mil_w = mt.heat_targets(np.full((2, 14, 14), np.nan, np.float32), y)
    args = (out, tf.constant(y), tf.constant([-1, 0]), tf.ones(2), target, cell_w, mil_w, "heat14_logits")
    off, on = float(mt.losses(*args)[2]), float(mt.losses(*args, negative_peak=1.0)[2])
    assert on - off == pytest.approx(np.log1p(np.exp(6.0)), rel=1e-4)
    hl[0] = -6.0  # a cold normal map: the term is nearly free
    cold = {**out, "heat14_logits": tf.constant(hl)}
    args = (cold, *args[1:])
    assert float(mt.losses(*args, negative_peak=1.0)[2]) - float(mt.losses(*args)[2]) < 0.01


def test_choose_calibrates_so_the_threshold_shows_as_half_and_answers_do_not_move(tmp_path):
    """The chosen threshold becomes 0.5 of the written probabilities (Platt anchored there, slope
    fitted on the held-out folds): every fold's answers and per-fold rates stay those at the
    threshold, while over-confident probabilities come out with a lower calibration error."""
    from training import multitask as mt
    from training.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    n = 600
    items = [{"source": ("s1", "s2")[i % 2], "label": "tumor" if i % 3 else "no_tumor",
              "tumor_type": "glioma" if i % 3 else "", "mask": "", "patient": "", "slice": -1, "group": i,
              "part": "test", "dataset": "d", "path": f"{i}.png"} for i in range(n)]
    doc = {"items": items, "sources": ["s1", "s2"], "datasets": {"d": str(tmp_path)}}
    (tmp_path / "cat.json").write_text(json.dumps(doc))
    tg = mt.targets(doc)
    run = tmp_path / "run"
    raw = {}
    for s, k in (("s1", 0), ("s2", 1)):
        idx = np.arange(k, n, 2)
        y = tg["y"][idx]
        z = rng.normal(0, 1.5, len(idx)) + np.where(y == 1, 1.2, -0.6) + 0.8  # separable, over-confident, shifted
        p = 1 / (1 + np.exp(-3 * z))
        raw[s] = (y, p)
        (run / s).mkdir(parents=True)
        probs = np.stack([1 - p, p], 1).astype(np.float32)
        np.savez_compressed(run / s / "predictions-0.npz", index=idx, val_index=idx[:5], probabilities=probs,
                            logits=np.log(probs), type_probabilities=np.full((len(idx), 4), 0.25, np.float32),
                            heatmap=np.zeros((len(idx), 14, 14), np.float16), val_probabilities=probs[:5])
        (run / s / "metrics-0.json").write_text(json.dumps({"tumor_detection": {"roc_auc": 0.8}, "epoch": 0,
                                                             "temperature": 1.0}))
    c = choose.write(str(run), str(tmp_path / "cat.json"))
    t, cal = c["operating_point"]["threshold_before_calibration"], c["calibration"]
    assert c["operating_point"]["threshold"] == 0.5 == choose.decision_threshold(run) and cal["anchor"] == t
    assert 0 < cal["slope"] < 1  # over-confident probabilities are softened
    for s, (y, p) in raw.items():
        shown = np.load(run / s / "predictions.npz")["probabilities"][:, 1]
        assert np.array_equal(shown >= 0.5, p >= t)
        m = json.loads((run / s / "metrics.json").read_text())
        assert m["decision_threshold"] == 0.5
        assert m["tumor_detection"]["sensitivity"] == pytest.approx(c["operating_point"]["folds"][s]["sensitivity"])
        assert expected_calibration_error(y, np.stack([1 - shown, shown], 1)) < \
            expected_calibration_error(y, np.stack([1 - p, p], 1))


def test_the_exported_graph_carries_the_held_out_calibration_and_its_cam_stays_exact(tiny_weights, tmp_path):
    """The anchored Platt chosen on the held-out folds is folded into the graph: its probabilities are
    exactly the calibrated ones (the anchor shows as 0.5) and softmax((mean(cam) + bias) / T') still
    reproduces them with the graph's own bias and temperature."""
    from scipy.special import softmax

    from export.finetuned import build_keras
    from training import finetune as ft
    from training.calibrate import apply_anchored_platt

    _full, model, _head, _pixels = ft.build(str(tiny_weights), None)
    model.save_weights(tmp_path / "fold.weights.h5")
    x = np.random.default_rng(1).uniform(0, 255, (3, 224, 224, 3)).astype(np.float32)
    labels = (["glioma", "meningioma", "pituitary", "other"], ["t1", "t1c", "t2", "flair"])
    plain, *_ = build_keras(str(tiny_weights), tmp_path / "fold.weights.h5", 1.3, labels)
    cal = {"slope": 0.8, "anchor": 0.64}
    shown, _m, head, temperature = build_keras(str(tiny_weights), tmp_path / "fold.weights.h5", 1.3, labels, cal)
    p = np.asarray(plain(x)["probabilities"])[:, 1]
    out = {k: np.asarray(v) for k, v in shown(x).items()}
    assert temperature == pytest.approx(1.3 / 0.8)
    assert np.allclose(out["probabilities"][:, 1], apply_anchored_platt(p, 0.64, 0.8), atol=1e-5)
    bias = head.get_layer("logits").get_weights()[1]
    assert np.allclose(softmax((out["cam"].mean(axis=(1, 2)) + bias) / temperature, axis=1), out["probabilities"],
                       atol=1e-5)


def test_the_consistency_term_pairs_each_view_with_a_turned_one_and_costs_only_a_moved_answer():
    """A geometry view's partner is the image as read, any other view's the geometry view; the term is
    zero when both views give the same P(tumour), grows with the difference, and skips pairs whose labels
    differ (a pasted tumour)."""
    tf = pytest.importorskip("tensorflow")
    from training import finetune as ft

    geometry = views.FAMILIES.index("geometry")
    v = np.array([0, geometry, views.FAMILIES.index("paste")])
    assert ft.partner_views(v, geometry).tolist() == [geometry, 0, geometry]
    a = tf.constant([[0.0, 2.0], [1.0, 0.0]])
    assert float(ft.consistency_loss(a, a, tf.ones(2))) == 0.0
    b = tf.constant([[0.0, -2.0], [1.0, 0.0]])  # the first image's answer flips when turned
    moved = float(ft.consistency_loss(a, b, tf.ones(2)))
    p = 1 / (1 + np.exp(-2.0))
    assert moved == pytest.approx((2 * p - 1) ** 2 / 2, rel=1e-5)
    assert float(ft.consistency_loss(a, b, tf.constant([0.0, 1.0]))) == 0.0  # that pair's labels differ


def test_a_held_out_folds_model_is_exported_at_its_nested_choice_for_measuring(tiny_weights, tmp_path):
    """``export.fold``: a fold's file decides at the threshold the nested rule chose without it (shown as
    50 % through the folded-in Platt), and its card says it is that fold's, for measuring only."""
    import json

    from export.finetuned import build_keras
    from export.fold import export_fold
    from gui.core.engine.model import load_model
    from training import finetune as ft
    from training.calibrate import apply_anchored_platt

    run = tmp_path / "run"
    (run / "radiopaedia").mkdir(parents=True)
    _full, model, _head, _pixels = ft.build(str(tiny_weights), None)
    model.save_weights(run / "radiopaedia" / "epoch-1.weights.h5")
    (run / "radiopaedia" / "metrics-1.json").write_text(json.dumps({"temperature": 1.0}))
    (run / "config.json").write_text(json.dumps({"type_labels": ["glioma", "meningioma", "pituitary", "other"],
                                                 "sequence_labels": ["t1", "t1c", "t2", "flair"]}))
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"radiopaedia": {"epoch": 1, "threshold": 0.4, "calibration": {"slope": 0.7},
                                                  "chosen_on": ["br35h"]}}))
    out = tmp_path / "fold.onnx"
    export_fold(str(run), "radiopaedia", str(out), str(tiny_weights), str(nested), "assets/models/tumor-multitask.onnx")
    m = load_model(out)
    assert m.card["held_out_fold"]["fold"] == "radiopaedia" and "radiopaedia" in m.name
    assert m.threshold == 0.5
    x = np.random.default_rng(2).uniform(0, 255, (2, 224, 224, 3)).astype(np.float32)
    labels = (["glioma", "meningioma", "pituitary", "other"], ["t1", "t1c", "t2", "flair"])
    plain, *_ = build_keras(str(tiny_weights), run / "radiopaedia" / "epoch-1.weights.h5", 1.0, labels)
    p = np.asarray(plain(x)["probabilities"])[:, 1]
    q = m.session.run(["probabilities"], {"image": x})[0][:, 1]
    assert np.allclose(q, apply_anchored_platt(p, 0.4, 0.7), atol=1e-4)
