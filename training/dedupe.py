"""Exact and near-duplicate groups of images: content hashes, perceptual hashes, union-find.

Near-duplicates (the same slice resized, re-encoded or cropped slightly; adjacent slices of
one patient) must never straddle training and test data, or the test score measures memory,
not generalisation. Images are hashed as the app's reader shows them.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from gui.core.readers import ImageReadError, open_scan
from training.data import Item

HASH_SIZE = 16  # 16x16 difference hash: 256 bits
NEAR_THRESHOLD = 16  # Hamming distance <= 16 of 256 bits is "the same slice" (checked by eye)


def dhash_bits(rgb: np.ndarray, hash_size: int = HASH_SIZE) -> np.ndarray:
    """Difference hash: is each pixel brighter than its right neighbour, on a tiny grey copy."""
    grey = Image.fromarray(rgb).convert("L").resize((hash_size + 1, hash_size), Image.LANCZOS)
    a = np.asarray(grey, dtype=np.int16)
    return (a[:, 1:] > a[:, :-1]).ravel()


def hash_items(
    items: Sequence[Item], roots: dict[str, str]
) -> tuple[list[Item], np.ndarray, list[str], list[dict], list[dict]]:
    """Hash every readable item.

    Returns the items kept, their packed dhashes ``[N, 4] uint64``, sha256 digests, the
    reader's technical info per item (format by content, size, mode) and the failures
    (unreadable files with the reader's reason).
    """
    kept, hashes, digests, infos, failures = [], [], [], [], []
    for it in items:
        path = it.file(roots)
        try:
            scan = open_scan(path)
            rgb = scan.frame()
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except (ImageReadError, OSError) as exc:
            failures.append({**asdict(it), "reason": getattr(exc, "reason", str(exc))})
            continue
        kept.append(it)
        hashes.append(np.packbits(dhash_bits(rgb)).view(np.uint64))
        digests.append(digest)
        infos.append(scan.info)
    packed = np.stack(hashes) if hashes else np.zeros((0, HASH_SIZE * HASH_SIZE // 64), np.uint64)
    return kept, packed, digests, infos, failures


def near_pairs(packed: np.ndarray, threshold: int = NEAR_THRESHOLD, block: int = 512) -> np.ndarray:
    """All pairs (i < j) whose hashes differ in at most ``threshold`` bits, as an [M, 2] array."""
    out = []
    n = len(packed)
    for start in range(0, n, block):
        a = packed[start : start + block]
        dist = np.bitwise_count(a[:, None, :] ^ packed[None, :, :]).sum(axis=2)
        i, j = np.nonzero(dist <= threshold)
        i = i + start
        keep = i < j
        out.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)


def group_ids(n: int, pairs: np.ndarray, digests: Sequence[str]) -> np.ndarray:
    """Group number of each image: connected components (SciPy) of near pairs and identical bytes.

    Numbers are assigned in order of first appearance, so they are stable for a stable
    item order.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    first_of_digest: dict[str, int] = {}
    same_bytes = [(first_of_digest.setdefault(d, i), i) for i, d in enumerate(digests)]
    edges = np.concatenate([np.asarray(pairs, np.int64).reshape(-1, 2), np.array(same_bytes, np.int64).reshape(-1, 2)])
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    numbering: dict[int, int] = {}
    return np.array([numbering.setdefault(int(c), len(numbering)) for c in labels], dtype=np.int64)
