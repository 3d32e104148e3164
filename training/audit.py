"""Inventory and exploratory analysis of datasets, before any split or score is trusted.

Counts per class and split, sizes, colour modes and formats (by content), unreadable files,
exact and near-duplicate groups within a dataset, across its official splits and across
datasets, and groups whose images carry conflicting labels. Writes ``audit.json``,
``audit.md`` and PNG figures into the output folder.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from training import dedupe
from training.data import TASK_LABELS, discover_all, load_images

EXTENSION_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF",
                     ".tiff": "TIFF", ".gif": "GIF", ".dcm": "DICOM", ".nii": "NIfTI"}


def audit(data_dirs: Sequence[str], out_dir: str) -> dict:
    """Inventory, formats by content, unreadable files and duplicate groups of ``data_dirs``;
    writes ``audit.json``, ``audit.md`` and figures into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items, roots = discover_all(data_dirs)
    kept, packed, digests, infos, failures = dedupe.hash_items(items, roots)
    groups = dedupe.group_ids(len(kept), dedupe.near_pairs(packed), digests)
    exact = dedupe.group_ids(len(kept), np.zeros((0, 2), np.int64), digests)
    report = {
        "datasets": roots,
        "files": len(items),
        **file_facts(items, kept, infos, roots),
        "unreadable": failures,
        "hash": f"difference hash {dedupe.HASH_SIZE}x{dedupe.HASH_SIZE}, near-duplicate at Hamming <= {dedupe.NEAR_THRESHOLD}",
        "exact_duplicates": describe_groups(exact, kept),
        "near_duplicates": describe_groups(groups, kept),
        **leakage(kept, groups),
    }
    (out / "audit.json").write_text(json.dumps(report, indent=1))
    (out / "audit.md").write_text(markdown(report))
    figures(out, kept, roots)
    print((out / "audit.md").read_text())
    return report


def file_facts(items, kept, infos, roots) -> dict:
    """Files per dataset, split and class; formats by content (and names that say otherwise);
    colour modes and sizes."""
    inventory: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(Counter))
    for it in items:
        inventory[it.dataset][it.official_split or "-"][it.folder_class] += 1
    formats = Counter((it.dataset, info["format"]) for it, info in zip(kept, infos))
    modes = Counter((it.dataset, info.get("mode", "")) for it, info in zip(kept, infos))
    sizes = Counter((it.dataset, info["size"]) for it, info in zip(kept, infos))
    mismatched = [
        {"dataset": it.dataset, "path": it.path, "content": info["format"]}
        for it, info in zip(kept, infos)
        if EXTENSION_FORMATS.get(Path(it.path).suffix.lower(), info["format"]) != info["format"]
    ]
    return {
        "inventory": {d: {s: dict(c) for s, c in v.items()} for d, v in inventory.items()},
        "formats_by_content": {f"{d}:{f}": n for (d, f), n in sorted(formats.items())},
        "extension_does_not_match_content": mismatched,
        "colour_modes": {f"{d}:{m}": n for (d, m), n in sorted(modes.items())},
        "distinct_sizes": {d: len([s for (dd, s) in sizes if dd == d]) for d in roots},
        "most_common_sizes": {f"{d}:{s}": n for (d, s), n in sizes.most_common(12)},
    }


def describe_groups(group_of: np.ndarray, kept) -> dict:
    """Groups of more than one image: where they sit (within a dataset, across official splits,
    across datasets) and which carry conflicting labels."""
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(group_of):
        members[int(g)].append(i)
    multi = [m for m in members.values() if len(m) > 1]
    within = Counter()
    across_splits = Counter()
    across_datasets = 0
    conflicting = []
    for m in multi:
        ds = {kept[i].dataset for i in m}
        if len(ds) > 1:
            across_datasets += 1
        for d in ds:
            in_d = [i for i in m if kept[i].dataset == d]
            if len(in_d) > 1:
                within[d] += 1
            if len({kept[i].official_split for i in in_d}) > 1:
                across_splits[d] += 1
        classes = {kept[i].folder_class for i in m}
        binary = {TASK_LABELS["binary"][c] for c in classes}
        types = classes & set(TASK_LABELS["tumor-type"])
        if len(binary) > 1 or len(types) > 1:
            conflicting.append({
                "files": [f"{kept[i].dataset}/{kept[i].path}" for i in m][:12],
                "classes": sorted(classes),
                "tumour_vs_no_tumour": len(binary) > 1,
            })
    return {
        "groups_with_more_than_one_image": len(multi),
        "images_in_such_groups": int(sum(len(m) for m in multi)),
        "largest_group": max((len(m) for m in members.values()), default=0),
        "groups_within_dataset": dict(within),
        "groups_across_official_splits": dict(across_splits),
        "groups_across_datasets": across_datasets,
        "groups_with_conflicting_labels": len(conflicting),
        "conflicting_examples": conflicting[:20],
    }


def leakage(kept, groups: np.ndarray) -> dict:
    """What leaks across the official split and across datasets: official test images with a
    near-copy in the official training set; images with a near-copy in another dataset."""
    train_groups = {int(g) for it, g in zip(kept, groups) if it.official_split == "Training"}
    testing = sum(1 for it, g in zip(kept, groups) if it.official_split == "Testing" and int(g) in train_groups)
    other_ds = defaultdict(set)
    for it, g in zip(kept, groups):
        other_ds[int(g)].add(it.dataset)
    elsewhere = Counter(it.dataset for it, g in zip(kept, groups) if len(other_ds[int(g)]) > 1)
    return {"testing_images_with_near_copy_in_training": testing,
            "images_with_near_copy_in_another_dataset": dict(elsewhere)}


def markdown(r: dict) -> str:
    lines = ["# Dataset audit", "", f"{r['files']} files in {', '.join(r['datasets'])}.", "",
             "| dataset | split | class | files |", "|---|---|---|---|"]
    for d, splits in r["inventory"].items():
        for s, classes in splits.items():
            for c, n in sorted(classes.items()):
                lines.append(f"| {d} | {s} | {c} | {n} |")
    lines += ["", "Formats by content: " + ", ".join(f"{k} {v}" for k, v in r["formats_by_content"].items()),
              f"Files whose extension does not match their content: {len(r['extension_does_not_match_content'])}",
              "Colour modes: " + ", ".join(f"{k} {v}" for k, v in r["colour_modes"].items()),
              "Distinct sizes: " + ", ".join(f"{k} {v}" for k, v in r["distinct_sizes"].items()),
              f"Unreadable files: {len(r['unreadable'])}", "", f"Hash: {r['hash']}.", "",
              "| duplicates | groups >1 image | images in them | largest | within dataset | across official splits | across datasets | conflicting labels |",
              "|---|---|---|---|---|---|---|---|"]
    for kind in ("exact_duplicates", "near_duplicates"):
        x = r[kind]
        lines.append(f"| {kind.split('_')[0]} | {x['groups_with_more_than_one_image']} | {x['images_in_such_groups']} | "
                     f"{x['largest_group']} | {x['groups_within_dataset']} | {x['groups_across_official_splits']} | "
                     f"{x['groups_across_datasets']} | {x['groups_with_conflicting_labels']} |")
    lines += ["", f"Testing images with a near-duplicate in Training: {r['testing_images_with_near_copy_in_training']}",
              f"Images with a near-duplicate in another dataset: {r['images_with_near_copy_in_another_dataset']}", "",
              "Figures: `class_balance.png`, `samples.png`, `pca.png`.", ""]
    return "\n".join(lines)


def figures(out: Path, kept, roots) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = Counter((it.dataset, it.folder_class) for it in kept)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    labels = [f"{d}\n{c}" for d, c in sorted(counts)]
    ax.bar(labels, [counts[k] for k in sorted(counts)], color="#4c72b0")
    ax.set_ylabel("images")
    ax.set_title("class balance")
    fig.tight_layout()
    fig.savefig(out / "class_balance.png", dpi=90)
    plt.close(fig)

    rng = np.random.default_rng(0)
    keys = sorted(counts)
    fig, axes = plt.subplots(len(keys), 6, figsize=(9, 1.6 * len(keys)))
    for row, key in zip(np.atleast_2d(axes), keys):
        members = [it for it in kept if (it.dataset, it.folder_class) == key]
        picks = rng.choice(len(members), size=min(6, len(members)), replace=False)
        imgs = load_images([members[i].file(roots) for i in picks], 96)
        for ax, img in zip(row, imgs):
            ax.imshow(img)
        for ax in row:
            ax.axis("off")
        row[0].set_title(f"{key[0]}/{key[1]}", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=90)
    plt.close(fig)

    from sklearn.decomposition import PCA

    idx = rng.choice(len(kept), size=min(2000, len(kept)), replace=False)
    x = load_images([kept[i].file(roots) for i in idx], 32).mean(axis=3).reshape(len(idx), -1) / 255.0
    xy = PCA(2, random_state=0).fit_transform(x)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for key in keys:
        m = np.array([(kept[i].dataset, kept[i].folder_class) == key for i in idx])
        ax.scatter(xy[m, 0], xy[m, 1], s=4, label=f"{key[0]}/{key[1]}", alpha=0.6)
    ax.legend(fontsize=7, markerscale=3)
    ax.set_title("PCA of 32x32 greyscale images (2,000 sampled)")
    fig.tight_layout()
    fig.savefig(out / "pca.png", dpi=90)
    plt.close(fig)
