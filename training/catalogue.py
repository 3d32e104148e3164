"""One table of every image of the data folders: label, tumour type, sequence, mask, patient, source collection.

The class-folder sets (``brain-tumor-mri``, ``br35h``) get their labels from folder names; ``lgg``
and ``figshare`` from their ``labels.csv`` manifests, with expert masks. Each image is given the
*collection* it comes from, since a leakage-free and honest test holds whole collections out:

* ``lgg-CS`` / ``lgg-DU`` / ``lgg-HT``: the TCGA-LGG hospitals (FLAIR from ``lgg``, pre- and
  post-contrast T1 of the same slices from ``lgg-t1``; tumour and tumour-free slices of the same
  patients: the one place where label, sequence and collection are not entangled);
* ``radiopaedia``: teaching images of six tumour types in T1, T1C and T2, and normals;
* ``figshare``: the figshare T1+C set, and the brain-tumor-mri images that near-duplicate it;
* ``br35h``: Br35H, and the brain-tumor-mri images that near-duplicate it (its no-tumour class);
* ``sartaj``: the rest of brain-tumor-mri (the Kaggle merge's third source, SARTAJ).

Groups (what must never straddle a split): near-duplicates (dHash, as in ``training.dedupe``)
joined with all slices of one lgg patient, in every sequence (``lgg`` and ``lgg-t1`` name the same
TCGA patients), and with blocks of consecutive figshare ``index``.

The ``sequence`` of each image (t1, t1c, t2, flair) comes from the manifest's column where it has one,
from what the whole set is where it is one sequence (lgg: FLAIR, figshare: T1 contrast-enhanced), and is
"" where unknown (the class-folder sets mix sequences and do not say which).
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from training import dedupe
from training.data import TASK_LABELS, Item, discover

TUMOR_TYPES = ("glioma", "meningioma", "pituitary", "other")
SEQUENCES = ("t1", "t1c", "t2", "flair")
#: The sequence of every image of a set that is all one sequence (its manifest has no column for it).
SET_SEQUENCE = {"lgg": "flair", "figshare": "t1c"}
#: figshare images with ``index // FIGSHARE_BLOCK`` equal form one group (consecutive numbers are
#: mostly one patient's slices; ~12 slices per patient on average).
FIGSHARE_BLOCK = 20
SOURCES = ("br35h", "sartaj", "figshare", "lgg-CS", "lgg-DU", "lgg-HT", "radiopaedia")
#: Sets whose images take the source ``lgg-<institution>`` (one hospital's patients, any sequence).
LGG_SETS = ("lgg", "lgg-t1")


class ManifestError(ValueError):
    """A manifest row that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Record:
    """One image and what is known about it. Paths are relative to the dataset folder."""

    dataset: str
    path: str
    label: str  # "tumor" | "no_tumor"
    tumor_type: str = ""  # one of TUMOR_TYPES, "" when unknown or no tumour
    mask: str = ""  # expert mask (0/255 PNG of the image's size), "" when none
    patient: str = ""
    institution: str = ""
    slice: int = -1  # position in the patient's volume (lgg), -1 when unknown
    index: int = -1  # figshare file number, -1 otherwise
    sequence: str = ""  # one of SEQUENCES, "" when unknown

    def file(self, roots: dict[str, str]) -> Path:
        return Path(roots[self.dataset]) / self.path

    def mask_file(self, roots: dict[str, str]) -> Path | None:
        return Path(roots[self.dataset]) / self.mask if self.mask else None


def folder_records(root: Path) -> list[Record]:
    """Records of a class-folder dataset (brain-tumor-mri, br35h): labels from folder names."""
    binary, typed = TASK_LABELS["binary"], TASK_LABELS["tumor-type"]
    out = []
    for it in discover(root):
        if it.folder_class not in binary:
            continue
        kind = typed.get(it.folder_class, "")
        out.append(Record(it.dataset, it.path, binary[it.folder_class], kind if kind in TUMOR_TYPES else ""))
    return out


def manifest_records(root: Path, check_sizes: bool = True) -> list[Record]:
    """Records of a manifest dataset (lgg, figshare), every row checked.

    A row whose image or mask is missing, whose mask differs in size from its image, or whose
    label is unknown raises :class:`ManifestError` naming the file: a silent skip would change
    what a model is trained and scored on without anyone noticing.
    """
    manifest = root / "labels.csv"
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: manifest not found")
    out = []
    with manifest.open(newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            where = f"{manifest}, line {line}"
            label = row.get("label", "")
            if label not in ("tumor", "no_tumor"):
                raise ManifestError(f"{where}: label {label!r} is not 'tumor' or 'no_tumor'")
            image, mask = root / row["image"], root / row["mask"] if row.get("mask") else None
            if not image.is_file():
                raise ManifestError(f"{where}: image file {image} is missing")
            if mask is not None and not mask.is_file():
                raise ManifestError(f"{where}: mask file {mask} is missing")
            if check_sizes and mask is not None:
                with Image.open(image) as a, Image.open(mask) as b:
                    if a.size != b.size:
                        raise ManifestError(f"{where}: mask {mask.name} is {b.size[0]}x{b.size[1]} but image "
                                            f"{image.name} is {a.size[0]}x{a.size[1]}")
            kind = row.get("tumor_type", "") if label == "tumor" else ""
            sequence = (row.get("sequence") or SET_SEQUENCE.get(root.name, "")).lower()
            if sequence and sequence not in SEQUENCES:
                raise ManifestError(f"{where}: sequence {sequence!r} is not one of {', '.join(SEQUENCES)}")
            out.append(Record(root.name, row["image"], label, kind if kind in TUMOR_TYPES else "",
                              row.get("mask", "") or "", row.get("patient", ""), row.get("institution", ""),
                              int(row["slice"]) if row.get("slice") else -1,
                              int(row["index"]) if row.get("index") else -1, sequence))
    return out


def records_of(data_dirs: list[str | Path]) -> tuple[list[Record], dict[str, str]]:
    roots, records = {}, []
    for d in data_dirs:
        d = Path(d)
        roots[d.name] = str(d)
        records += manifest_records(d) if (d / "labels.csv").is_file() else folder_records(d)
    return records, roots


def _extra_pairs(records: list[Record]) -> np.ndarray:
    """Pairs joining one lgg patient's slices (of every sequence set) and each block of consecutive
    figshare numbers."""
    keys = defaultdict(list)
    for i, r in enumerate(records):
        if r.patient:
            keys[("patient", r.patient)].append(i)
        elif r.index >= 0:
            keys[("block", r.dataset, r.index // FIGSHARE_BLOCK)].append(i)
    pairs = [(m[0], j) for m in keys.values() for j in m[1:]]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _without_cross_patient(pairs: np.ndarray, records: list[Record]) -> np.ndarray:
    """Drop near-duplicate pairs between two different patients.

    The near-black first and last slices of lgg volumes hash alike (some are byte-identical)
    across patients and would chain half of lgg's patients, all three hospitals, into one group;
    those patients are distinct people by the manifest, so only their own slices are grouped.
    """
    patient = [r.patient or None for r in records]
    keep = [not (patient[i] and patient[j] and patient[i] != patient[j]) for i, j in pairs]
    return pairs[np.array(keep, dtype=bool)] if len(pairs) else pairs


def attribute_sources(records: list[Record], groups: np.ndarray) -> list[str]:
    """The collection of each image (see the module docstring); brain-tumor-mri images by what
    their near-duplicate group also holds."""
    own = []
    for r in records:
        if r.dataset in LGG_SETS:
            own.append(f"lgg-{r.institution}")
        elif r.dataset in ("figshare", "br35h", "radiopaedia"):
            own.append(r.dataset)
        else:
            own.append("")
    in_group: dict[int, set[str]] = defaultdict(set)
    for g, s in zip(groups, own):
        if s:
            in_group[int(g)].add(s)
    out = []
    for g, s in zip(groups, own):
        if s:
            out.append(s)
        elif "figshare" in in_group[int(g)]:
            out.append("figshare")
        elif "br35h" in in_group[int(g)]:
            out.append("br35h")
        else:
            out.append("sartaj")
    return out


def build(data_dirs: list[str | Path], seed: int = 0, threshold: int = dedupe.NEAR_THRESHOLD) -> dict:
    """The catalogue document: every readable image with label, type, mask, source, group and part.

    ``part`` is a 70/15/15 split by group, stratified by (source, label); leave-one-source-out
    folds are derived from it (:func:`fold`).
    """
    from training.split import assign_groups

    records, roots = records_of(data_dirs)
    items = [Item(r.dataset, r.path, "", "") for r in records]
    kept_items, packed, digests, _infos, failures = dedupe.hash_items(items, roots)
    kept_paths = {(it.dataset, it.path) for it in kept_items}
    records = [r for r in records if (r.dataset, r.path) in kept_paths]
    pairs = np.concatenate([_without_cross_patient(dedupe.near_pairs(packed, threshold), records),
                            _extra_pairs(records)])
    # Likewise byte-identical blank slices of two patients: scoped to the patient.
    digests = [f"{r.patient}:{d}" if r.patient else d for r, d in zip(records, digests)]
    groups = dedupe.group_ids(len(records), pairs, digests)
    sources = attribute_sources(records, groups)
    strata: dict[int, list[str]] = defaultdict(list)
    for g, s, r in zip(groups, sources, records):
        strata[int(g)].append(f"{s}/{r.label}")
    # Groups mixing strata are stratified by their majority; assign_groups sends groups whose
    # members disagree to train, so give it one stratum per group.
    majority = {g: [Counter(v).most_common(1)[0][0]] * len(v) for g, v in strata.items()}
    parts = assign_groups(majority, {"train": 0.70, "val": 0.15, "test": 0.15}, seed)
    rows = [{**asdict(r), "source": s, "group": int(g), "part": parts[int(g)]}
            for r, s, g in zip(records, sources, groups)]
    return {
        "kind": "multi-source catalogue",
        "datasets": roots,
        "sources": [s for s in SOURCES if s in set(sources)],
        "sequences": list(SEQUENCES),
        "method": {
            "grouping": "union-find over exact duplicates (sha256), near-duplicates (difference hash "
                        f"{dedupe.HASH_SIZE}x{dedupe.HASH_SIZE}, Hamming <= {threshold}), all slices of one lgg patient "
                        "(FLAIR, T1 and T1C alike), "
                        f"and blocks of {FIGSHARE_BLOCK} consecutive figshare index numbers",
            "parts": "70/15/15 by group, stratified by the group's majority (source, label)",
            "sequences": "the manifest's sequence column; lgg FLAIR, figshare T1C; unknown for the class-folder sets",
            "sources": "lgg and lgg-t1 by hospital; brain-tumor-mri images take the source of a figshare or Br35H "
                       "near-duplicate in their group, else 'sartaj'",
            "seed": seed,
        },
        "counts": {s: dict(Counter(f"{r['part']}/{r['label']}" for r in rows if r["source"] == s)) for s in SOURCES},
        "excluded_unreadable": failures,
        "items": rows,
    }


#: Leave-one-sequence-out folds: the lgg hospitals' slices of one sequence are never trained on.
SEQUENCE_FOLDS = {"lgg-t1-out": "t1", "lgg-t1c-out": "t1c"}


def sequence_fold(doc: dict, sequence: str) -> dict[str, np.ndarray]:
    """Train / val / test of a leave-one-sequence-out fold: test = the in-distribution test part's lgg
    slices of ``sequence`` (patients never trained on, in any sequence); train / val = the
    in-distribution parts without any lgg slice of ``sequence``, so the model has seen that sequence
    only in other collections and the lgg tumours only in the other sequences."""
    items = doc["items"]
    lgg_seq = np.array([r["source"].startswith("lgg-") and r.get("sequence", "") == sequence for r in items])
    part = np.array([r["part"] for r in items])
    return {"train": np.nonzero((part == "train") & ~lgg_seq)[0], "val": np.nonzero((part == "val") & ~lgg_seq)[0],
            "test": np.nonzero((part == "test") & lgg_seq)[0]}


def fold(doc: dict, holdout: str | None) -> dict[str, np.ndarray]:
    """Row indices of train / val / test for the in-distribution split (``holdout=None``) or a
    leave-one-source-out fold: test = the held-out source's images in groups with no other
    source; train/val = the other sources' images in groups with none of the held-out source;
    a name of ``SEQUENCE_FOLDS``: a leave-one-sequence-out fold (``sequence_fold``).
    """
    items = doc["items"]
    part = np.array([r["part"] for r in items])
    if holdout is None:
        return {p: np.nonzero(part == p)[0] for p in ("train", "val", "test")}
    if holdout in SEQUENCE_FOLDS:
        return sequence_fold(doc, SEQUENCE_FOLDS[holdout])
    if holdout not in doc["sources"]:
        raise ValueError(f"unknown source {holdout!r}; known: {doc['sources']}")
    touched: dict[int, set[str]] = defaultdict(set)
    for r in items:
        touched[r["group"]].add(r["source"])
    test, train, val = [], [], []
    for i, r in enumerate(items):
        srcs = touched[r["group"]]
        if r["source"] == holdout and srcs == {holdout}:
            test.append(i)
        elif holdout not in srcs:
            (val if r["part"] == "val" else train).append(i)
    return {"train": np.array(train, np.int64), "val": np.array(val, np.int64), "test": np.array(test, np.int64)}
