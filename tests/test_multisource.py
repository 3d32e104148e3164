"""Issue 10: manifests with masks, source attribution, patient groups, leave-one-source-out folds,
the brain-crop model input and the multi-task head; all on synthetic data made here."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gui.core.engine.heatmap import heat_to_frame
from gui.core.engine.preprocess import Geometry, brain_crop, model_input
from tests.conftest import synthetic_slice
from training import catalogue


def write_manifest(root: Path, rows: list[dict], fields: list[str]) -> None:
    with (root / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def make_lgg(root: Path, seed: int = 3) -> Path:
    """Two hospitals x two patients x six slices; slices 2-3 of each patient hold a masked tumour."""
    rng = np.random.default_rng(seed)
    rows = []
    for inst in ("AA", "BB"):
        for p in range(2):
            case = f"TCGA_{inst}_{p:04d}"
            (root / "images" / case).mkdir(parents=True)
            (root / "masks" / case).mkdir(parents=True)
            for s in range(1, 7):
                tumour = s in (2, 3)
                img = synthetic_slice(rng, 64, tumour=False)
                mask = np.zeros((64, 64), np.uint8)
                if tumour:
                    mask[20:30, 24:34] = 255
                    img[20:30, 24:34] = 250
                Image.fromarray(img).save(root / "images" / case / f"{case}_{s}.jpg", quality=95)
                Image.fromarray(mask).save(root / "masks" / case / f"{case}_{s}_mask.png")
                rows.append({"image": f"images/{case}/{case}_{s}.jpg", "mask": f"masks/{case}/{case}_{s}_mask.png",
                             "patient": case[:12], "institution": inst, "slice": s, "n_slices": 6,
                             "label": "tumor" if tumour else "no_tumor", "tumor_type": "glioma" if tumour else "",
                             "mask_pixels": int((mask > 0).sum())})
    write_manifest(root, rows, list(rows[0]))
    return root


def make_figshare(root: Path, copy_from: Path) -> Path:
    """Five new meningiomas and one near-copy of a brain-tumor-mri glioma."""
    rng = np.random.default_rng(9)
    (root / "meningioma").mkdir(parents=True)
    (root / "glioma").mkdir()
    (root / "masks").mkdir()
    rows = []
    for i in range(1, 7):
        kind = "glioma" if i == 6 else "meningioma"
        if i == 6:
            Image.open(copy_from).resize((64, 64)).save(root / kind / f"{i}.jpg")
        else:
            Image.fromarray(synthetic_slice(rng, 64, tumour=True)).save(root / kind / f"{i}.jpg")
        mask = np.zeros((64, 64), np.uint8)
        mask[10:20, 10:20] = 255
        Image.fromarray(mask).save(root / "masks" / f"{i}_mask.png")
        rows.append({"image": f"{kind}/{i}.jpg", "mask": f"masks/{i}_mask.png", "index": i, "label": "tumor",
                     "tumor_type": kind, "mask_pixels": 100})
    write_manifest(root, rows, list(rows[0]))
    return root


@pytest.fixture
def four_sets(tiny_datasets, tmp_path) -> list[Path]:
    lgg = make_lgg(tmp_path / "lgg")
    fig = make_figshare(tmp_path / "figshare", tiny_datasets["btm"] / "Training/glioma/glioma_003.jpg")
    return [tiny_datasets["btm"], tiny_datasets["br35h"], lgg, fig]


def test_manifest_rows_that_cannot_be_used_are_errors_naming_the_file(tmp_path):
    lgg = make_lgg(tmp_path / "lgg")
    assert len(catalogue.manifest_records(lgg)) == 24
    mask = lgg / "masks/TCGA_AA_0000/TCGA_AA_0000_2_mask.png"
    Image.new("L", (32, 32)).save(mask)
    with pytest.raises(catalogue.ManifestError, match=r"TCGA_AA_0000_2_mask.png is 32x32 but image .* is 64x64"):
        catalogue.manifest_records(lgg)
    mask.unlink()
    with pytest.raises(catalogue.ManifestError, match="mask file .*TCGA_AA_0000_2_mask.png is missing"):
        catalogue.manifest_records(lgg)
    (lgg / "images/TCGA_AA_0000/TCGA_AA_0000_1.jpg").unlink()
    with pytest.raises(catalogue.ManifestError, match="line 2: image file .*TCGA_AA_0000_1.jpg is missing"):
        catalogue.manifest_records(lgg)


def test_catalogue_sources_groups_and_leave_one_source_out(four_sets):
    doc = catalogue.build(four_sets)
    items = doc["items"]
    by_path = {(r["dataset"], r["path"]): r for r in items}
    # A brain-tumor-mri image takes the source of its figshare near-copy; Br35H's copy likewise.
    assert by_path[("brain-tumor-mri", "Training/glioma/glioma_003.jpg")]["source"] == "figshare"
    assert by_path[("brain-tumor-mri", "Training/notumor/notumor_002.jpg")]["source"] == "br35h"
    assert by_path[("brain-tumor-mri", "Training/glioma/glioma_001.jpg")]["source"] == "sartaj"
    # lgg: one group per patient, whatever the slices look like; hospitals become sources.
    lgg = [r for r in items if r["dataset"] == "lgg"]
    assert {r["source"] for r in lgg} == {"lgg-AA", "lgg-BB"}
    groups = {}
    for r in lgg:
        groups.setdefault(r["patient"], set()).add(r["group"])
    assert all(len(g) == 1 for g in groups.values()) and len({next(iter(g)) for g in groups.values()}) == 4
    # Every fold: no group on both sides, and the test part is the held-out source alone.
    doc["sources"] = sorted({r["source"] for r in items})
    for source in doc["sources"]:
        parts = catalogue.fold(doc, source)
        test_groups = {items[i]["group"] for i in parts["test"]}
        fit_groups = {items[i]["group"] for i in np.concatenate([parts["train"], parts["val"]])}
        assert not test_groups & fit_groups
        assert {items[i]["source"] for i in parts["test"]} <= {source}
        assert source not in {items[i]["source"] for i in np.concatenate([parts["train"], parts["val"]])}
    held_out = {(items[i]["dataset"], items[i]["path"]) for i in catalogue.fold(doc, "figshare")["test"]}
    # The collection is held out whole: brain-tumor-mri's copy of a figshare image goes with it.
    assert {("figshare", "glioma/6.jpg"), ("brain-tumor-mri", "Training/glioma/glioma_003.jpg")} <= held_out


def test_brain_crop_frames_the_head_and_standardises_levels():
    frame = np.zeros((300, 400, 3), np.uint8)
    yy, xx = np.mgrid[0:300, 0:400]
    head = ((yy - 150) / 60.0) ** 2 + ((xx - 250) / 50.0) ** 2 < 1
    frame[head] = 90  # a dim head off-centre in a wide frame
    frame[5:10, 5:20] = 255  # a burnt-in marker in a corner (<1% of the foreground) must not widen the crop
    fitted = brain_crop(frame, 64)
    g = fitted.geometry
    assert 100 <= g.side <= 150 and g.top <= 90 and g.top + g.side >= 210 and g.left <= 200 and g.left + g.side >= 300
    assert fitted.pixels.max() == 255  # the dim head is stretched to the full range
    assert fitted.pixels.shape == (64, 64, 3)
    blank = model_input(np.zeros((50, 80, 3), np.uint8), 32, "brain-crop-v1")
    assert blank.geometry == Geometry(-15, 0, 80) and blank.pixels.max() == 0


def test_pad_resize_matches_the_centred_square_and_heat_maps_back():
    frame = np.full((20, 40, 3), 200, np.uint8)
    fitted = model_input(frame, 40, "pad-resize")
    assert fitted.geometry == Geometry(-10, 0, 40)
    assert fitted.pixels[:10].max() == 0 and fitted.pixels[10:30].min() == 200
    grid = np.zeros((4, 4), np.float32)
    grid[1, 3] = 1.0  # second row, last column of the square
    heat = heat_to_frame(grid, fitted.geometry, 20, 40)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert x > 30 and y < 10


def test_multitask_head_learns_detection_type_and_where():
    pytest.importorskip("tensorflow")
    from training import multitask as mt

    rng = np.random.default_rng(0)
    n = 240
    y = np.arange(n) % 2
    kind = np.where(y == 1, rng.integers(0, 3, n), -1)
    feats = rng.normal(0, 0.3, (n, 7, 7, 1280)).astype(np.float16)
    masks = np.zeros((n, 7, 7), np.float32)
    for i in range(n):
        if y[i]:
            r, c = rng.integers(0, 7, 2)
            feats[i, r, c, :32] += 3.0  # tumour signal at one place
            feats[i, :, :, 100 + kind[i]] += 1.5  # type signal everywhere
            masks[i, r, c] = 1.0
    masks[n // 2:] = np.nan  # half the images have no mask: the multiple-instance loss must do
    tg = {"y": y, "type": kind, "source": np.zeros(n, np.int64)}
    idx = np.arange(n)
    head, rows = mt.fit([feats], [masks], tg, idx[:180], idx[180:], epochs=6, batch=32, patience=6)
    assert rows[-1]["det"] < rows[0]["det"]
    pred = mt.predict(head, feats[180:])
    assert pred["probabilities"].shape == (60, 2) and pred["heatmap"].shape == (60, 7, 7)
    assert (pred["probabilities"].argmax(1) == y[180:]).mean() > 0.9
    tumour = y[180:] == 1
    assert (pred["type_probabilities"][tumour].argmax(1) == kind[180:][tumour]).mean() > 0.8
    peaks = pred["heatmap"].reshape(60, -1).argmax(1)
    truth = np.array([np.argmax(feats[180 + i, :, :, :32].astype(np.float32).mean(-1)) for i in range(60)])
    assert (peaks[tumour] == truth[tumour]).mean() > 0.8


def test_orientation_measure_reports_every_turn_of_a_fold(four_sets, tmp_path):
    """The synthetic model answers from the image's mean brightness, which no mirror or turn changes:
    the measure, through the app's reader and brain crop, must find (almost) no dependence on
    orientation, for every transform, on every test image of the fold."""
    import json

    from tests.onnx_factory import make_card, make_contract_model
    from training.orientation import TRANSFORMS, measure

    doc = catalogue.build(four_sets)
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(doc))
    card = make_card("binary", 64)
    card["input"]["preprocessing"] = "brain-crop-v1"
    res = measure(str(make_contract_model(tmp_path / "m.onnx", card=card)), str(path), "in-distribution", batch=8)
    assert res["n"] == len(catalogue.fold(doc, None)["test"]) > 0
    assert set(TRANSFORMS) <= set(res)
    for name in TRANSFORMS:
        assert res[name]["mean_abs_dp"] < 0.02 and res[name]["answers_flipped"] <= 0.1, (name, res[name])


def make_lgg_t1(root: Path, lgg: Path) -> Path:
    """The lgg slices again as 'lgg-t1' (T1 and T1C, inverted: another look), same patients and masks."""
    rows = []
    with (lgg / "labels.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            for seq in ("t1", "t1c"):
                image = row["image"].replace(".jpg", f"_{seq}.jpg")
                (root / image).parent.mkdir(parents=True, exist_ok=True)
                (root / row["mask"]).parent.mkdir(parents=True, exist_ok=True)
                grey = np.asarray(Image.open(lgg / row["image"]))
                Image.fromarray((255 - grey) if seq == "t1" else grey).save(root / image, quality=90)
                Image.open(lgg / row["mask"]).save(root / row["mask"])
                rows.append({**row, "image": image, "sequence": seq})
    write_manifest(root, rows, list(rows[0]))
    return root


def test_one_patients_sequences_are_one_group_and_a_sequence_can_be_held_out(four_sets, tmp_path):
    lgg = four_sets[2]
    doc = catalogue.build([*four_sets, make_lgg_t1(tmp_path / "lgg-t1", lgg)])
    items = doc["items"]
    seq = {(r["dataset"], r.get("sequence")) for r in items}
    assert {("lgg", "flair"), ("lgg-t1", "t1"), ("lgg-t1", "t1c"), ("figshare", "t1c"), ("br35h", "")} <= seq
    groups: dict[str, set[int]] = {}
    for r in items:
        if r["patient"]:
            groups.setdefault(r["patient"], set()).add(r["group"])
            assert r["source"] == f"lgg-{r['institution']}"  # lgg-t1 slices belong to their hospital
    assert len(groups) == 4 and all(len(g) == 1 for g in groups.values())  # FLAIR, T1, T1C: one group
    for r in items:  # four patients are too few for the 70/15/15 split to test one: test this one
        r["part"] = "test" if r["patient"] == "TCGA_AA_0000" else ("train" if r["patient"] else r["part"])
    parts = catalogue.fold(doc, "lgg-t1-out")
    assert len(parts["test"]) == 6 and all(items[i]["sequence"] == "t1" and items[i]["part"] == "test"
                                      for i in parts["test"])
    fit = np.concatenate([parts["train"], parts["val"]])
    assert not any(items[i]["source"].startswith("lgg-") and items[i]["sequence"] == "t1" for i in fit)
    assert any(items[i]["sequence"] == "t1c" for i in fit)  # the other sequences still train
    assert not {items[i]["group"] for i in parts["test"]} & {items[i]["group"] for i in fit if items[i]["patient"]}


def test_a_manifest_sequence_that_is_not_known_is_an_error(tmp_path):
    lgg = make_lgg(tmp_path / "lgg")
    rows = list(csv.DictReader((lgg / "labels.csv").open(newline="")))
    rows[3]["sequence"] = "dwi"
    for r in rows[:3] + rows[4:]:
        r["sequence"] = "flair"
    write_manifest(lgg, rows, list(rows[0]))
    with pytest.raises(catalogue.ManifestError, match=r"line 5: sequence 'dwi' is not one of"):
        catalogue.manifest_records(lgg)
