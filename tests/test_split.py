"""The split must never let a near-duplicate group straddle train, validation and test."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from training import split
from training.dedupe import group_ids, near_pairs


def parts_by_file(doc: dict) -> dict[str, str]:
    return {f"{r['dataset']}/{r['path']}": r["part"] for r in doc["items"]}


def test_planted_duplicates_share_a_part(tiny_datasets):
    doc = split.make_split([tiny_datasets["btm"], tiny_datasets["br35h"]], "binary", seed=3)
    parts = parts_by_file(doc)
    assert parts["brain-tumor-mri/Testing/glioma/exact_copy.jpg"] == parts["brain-tumor-mri/Training/glioma/glioma_000.jpg"]
    assert parts["brain-tumor-mri/Testing/meningioma/near_copy.jpg"] == parts["brain-tumor-mri/Training/meningioma/meningioma_001.jpg"]
    assert parts["br35h/no/from_btm.jpg"] == parts["brain-tumor-mri/Training/notumor/notumor_002.jpg"]
    by_group = defaultdict(set)
    for r in doc["items"]:
        by_group[r["group"]].add(r["part"])
    assert all(len(p) == 1 for p in by_group.values())
    assert doc["groups"]["near_pairs"] >= 3


def test_split_is_deterministic_stratified_and_documented(tiny_datasets):
    dirs = [tiny_datasets["btm"], tiny_datasets["br35h"]]
    a = split.make_split(dirs, "binary", seed=7)
    b = split.make_split(dirs, "binary", seed=7)
    assert json.dumps(a) == json.dumps(b)
    for part in ("train", "val", "test"):
        assert set(a["counts"][part]) == {"no_tumor", "tumor"}
    total = sum(sum(c.values()) for c in a["counts"].values())
    assert total == len(a["items"]) == 12 * 4 * 2 + 2 + 28 + 1  # + exact and near copies, + one cross-set copy
    assert 0.6 < sum(a["counts"]["train"].values()) / total < 0.8
    assert a["method"]["seed"] == 7 and a["method"]["near_threshold_bits"] == 16


def test_tumor_type_uses_only_four_class_dataset(tiny_datasets):
    doc = split.make_split([tiny_datasets["btm"], tiny_datasets["br35h"]], "tumor-type")
    assert {r["dataset"] for r in doc["items"]} == {"brain-tumor-mri"}
    assert doc["classes"] == ["glioma", "meningioma", "no_tumor", "pituitary"]


def test_holdout_tests_only_images_without_copy_elsewhere(tiny_datasets):
    doc = split.make_split([tiny_datasets["btm"], tiny_datasets["br35h"]], "binary", holdout="br35h")
    test = {r["path"] for r in doc["items"] if r["part"] == "test"}
    fit = {r["dataset"] for r in doc["items"] if r["part"] != "test"}
    assert fit == {"brain-tumor-mri"}
    assert "no/from_btm.jpg" not in test
    assert len(test) == 28


def test_conflicting_label_group_goes_to_train():
    labels = {0: ["tumor", "no_tumor"], 1: ["tumor"], 2: ["no_tumor"], 3: ["tumor"], 4: ["no_tumor"]}
    assignment = split.assign_groups(labels, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
    assert assignment[0] == "train"


def test_near_pairs_and_union_find_chain():
    bits = np.zeros((4, 256), dtype=bool)
    bits[1, :10] = True  # 10 bits from 0
    bits[2, :20] = True  # 10 bits from 1, 20 from 0: joined through 1
    bits[3, 100:200] = True  # far from all
    packed = np.packbits(bits, axis=1).view(np.uint64)
    pairs = near_pairs(packed, threshold=16, block=2)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (1, 2)]
    groups = group_ids(4, pairs, ["a", "b", "c", "a"])  # 3 has the same bytes as 0
    assert len(set(groups.tolist())) == 1
    apart = group_ids(4, np.array([[0, 2]]), ["a", "b", "c", "d"])
    assert apart.tolist() == [0, 1, 0, 2]  # numbered in order of first appearance
