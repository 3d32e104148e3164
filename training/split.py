"""Leakage-free, deterministic, stratified train / validation / test splits by duplicate group.

Whole near-duplicate groups are assigned to one part, so no image has a near-copy on the
other side. ``holdout`` makes a cross-source split instead: one dataset is the test part
(only its images with no near-duplicate in the other datasets), the others are split into
train and validation.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from training import dedupe
from training.data import NO_TUMOR_LABELS, TASK_CLASSES, TASK_LABELS, Item, discover_all

PARTS = ("train", "val", "test")


def assign_groups(
    group_labels: dict[int, list[str]], fractions: dict[str, float], seed: int
) -> dict[int, str]:
    """Give each group a part so that every label's images are spread by ``fractions``.

    Groups are stratified by their majority label, visited largest first (ties in a
    seeded random order) and each goes to the part furthest below its target share.
    Groups whose images disagree on the label go to training: their label is noise
    and must not decide a test score.
    """
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    assignment: dict[int, str] = {}
    for g, labels in group_labels.items():
        if len(set(labels)) > 1:
            assignment[g] = "train"
        else:
            by_label[labels[0]].append(g)
    for label in sorted(by_label):
        groups = by_label[label]
        order = rng.permutation(len(groups))
        groups = sorted((groups[k] for k in order), key=lambda g: -len(group_labels[g]))
        total = sum(len(group_labels[g]) for g in groups)
        filled = dict.fromkeys(fractions, 0)
        for g in groups:
            part = max(fractions, key=lambda p: fractions[p] * total - filled[p])
            assignment[g] = part
            filled[part] += len(group_labels[g])
    return assignment


def make_split(
    data_dirs: Sequence[str | Path],
    task: str,
    seed: int = 0,
    fractions: dict[str, float] | None = None,
    holdout: str | None = None,
    threshold: int = dedupe.NEAR_THRESHOLD,
) -> dict:
    """Build the split document (see ``save``) for ``task`` over ``data_dirs``."""
    fractions = fractions or {"train": 0.70, "val": 0.15, "test": 0.15}
    mapping = TASK_LABELS[task]
    all_items, roots = discover_all(data_dirs)
    items = [it for it in all_items if it.folder_class in mapping]
    if holdout is not None and holdout not in roots:
        raise ValueError(f"--holdout {holdout!r} is not one of the datasets: {sorted(roots)}")
    kept, packed, digests, _infos, failures = dedupe.hash_items(items, roots)
    pairs = dedupe.near_pairs(packed, threshold)
    groups = dedupe.group_ids(len(kept), pairs, digests)
    labels = [mapping[it.folder_class] for it in kept]

    if holdout is None:
        fit_idx = list(range(len(kept)))
        test_idx: list[int] = []
    else:
        datasets_of_group: dict[int, set[str]] = defaultdict(set)
        for it, g in zip(kept, groups):
            datasets_of_group[int(g)].add(it.dataset)
        test_idx = [i for i, it in enumerate(kept) if it.dataset == holdout and datasets_of_group[int(groups[i])] == {holdout}]
        fit_idx = [i for i, it in enumerate(kept) if it.dataset != holdout]
        fractions = {"train": fractions["train"] / (fractions["train"] + fractions["val"]), "val": fractions["val"] / (fractions["train"] + fractions["val"])}

    group_labels: dict[int, list[str]] = defaultdict(list)
    for i in fit_idx:
        group_labels[int(groups[i])].append(labels[i])
    parts_of = assign_groups(group_labels, fractions, seed)
    part = {i: parts_of[int(groups[i])] for i in fit_idx}
    part.update({i: "test" for i in test_idx})

    rows = [
        {**asdict(kept[i]), "label": labels[i], "group": int(groups[i]), "part": part[i]}
        for i in sorted(part)
    ]
    counts = {p: dict(sorted(Counter(r["label"] for r in rows if r["part"] == p).items())) for p in PARTS}
    conflicting = sum(1 for ls in group_labels.values() if len(set(ls)) > 1)
    return {
        "task": task,
        "classes": TASK_CLASSES[task],
        "no_tumor_labels": NO_TUMOR_LABELS,
        "datasets": roots,
        "method": {
            "grouping": "union-find over exact duplicates (sha256 of bytes) and near-duplicates",
            "hash": f"difference hash {dedupe.HASH_SIZE}x{dedupe.HASH_SIZE} ({dedupe.HASH_SIZE ** 2} bits) of the app reader's image",
            "near_threshold_bits": threshold,
            "seed": seed,
            "fractions": fractions,
            "stratified_by": "majority label of each group; groups with conflicting labels go to train",
            "holdout": holdout,
        },
        "counts": counts,
        "groups": {"total": int(len(set(int(g) for g in groups))), "near_pairs": int(len(pairs)), "conflicting_label_groups": conflicting},
        "excluded_unreadable": failures,
        "items": rows,
    }


def save(doc: dict, out: str | Path) -> None:
    """JSON with one item per line: small enough to commit, and a changed split diffs readably."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    head = {k: v for k, v in doc.items() if k != "items"}
    lines = [json.dumps(head, indent=1)[:-2] + ',\n "items": [']
    lines.append(",\n".join("  " + json.dumps(item, separators=(",", ":")) for item in doc["items"]))
    lines.append(" ]\n}\n")
    Path(out).write_text("\n".join(lines))


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def part_items(doc: dict, part: str) -> tuple[list[Path], np.ndarray]:
    """Files and integer labels (index into ``doc['classes']``) of one part."""
    classes = doc["classes"]
    rows = [r for r in doc["items"] if r["part"] == part]
    files = [Item(r["dataset"], r["path"], r["folder_class"], r["official_split"]).file(doc["datasets"]) for r in rows]
    return files, np.array([classes.index(r["label"]) for r in rows], dtype=np.int64)
