"""Augmented views of every catalogue image through the frozen front of MobileNetV2, cached once.

The front (ImageNet weights, up to ``block_12_add``: 14x14x96) is what stays frozen; what follows
(``block_13`` ... ``Conv_1`` and the heads) is fine-tuned on these cached maps
(``training/finetune.py``), 4x cheaper per step than running the whole network. Each image is read
by the app's reader and fitted by the app's ``model_input``, once, then made into every view of
``training.views.FAMILIES``; expert masks follow the view into model-input space and are kept as
14x14 and 7x7 grids (share of each cell inside the mask).

Pasted tumours come from images of the same part (train / val / test): for lgg, of the same
hospital and sequence; for other images, of the same sequence (T2: FLAIR) from any collection, or
of any sequence where the image's is unknown; and each pasted view records its donor: a fold uses a pasted view
for training only when the donor is a training image of that fold, so no held-out tumour leaks.

Resumable by batch; progress in ``progress.json`` and the log.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from gui.core.engine.preprocess import Geometry
from training import catalogue, views
from training import features as feats

LAYER = "block_12_add"
GRID14, CH = 14, 96
BATCH = 32


def front(weights: str):
    """Pixels (RGB 0-255) -> ``block_12_add`` of ImageNet MobileNetV2."""
    import keras

    full = feats.backbone(weights)
    return keras.Model(full.inputs, full.get_layer(LAYER).output, name="front")


def mask_in_input(mask_file: Path, g: Geometry, size: int = feats.SIZE) -> np.ndarray:
    """The expert mask mapped through the crop to model-input space (0-1 float, ``size`` square)."""
    return np.asarray(Image.fromarray(feats.mask_square(mask_file, g)).resize((size, size), Image.BILINEAR), np.float32)


def read(doc: dict, i: int) -> tuple[np.ndarray, np.ndarray | None, Geometry, tuple[int, int]]:
    """Item ``i``'s model input, its mask in input space (None: no mask), crop geometry, frame size."""
    rec = doc["items"][i]
    frame, fitted = feats.item_input(doc, rec)
    mask = mask_in_input(Path(doc["datasets"][rec["dataset"]]) / rec["mask"], fitted.geometry) if rec["mask"] else None
    return fitted.pixels, mask, fitted.geometry, frame.shape[:2]


def donors_of(doc: dict) -> dict[tuple[str, str, str], np.ndarray]:
    """Tumour images with an expert mask, by (source, sequence, part)."""
    out: dict[tuple[str, str, str], list[int]] = {}
    for i, r in enumerate(doc["items"]):
        if r["label"] == "tumor" and r["mask"]:
            out.setdefault((r["source"], r.get("sequence", ""), r["part"]), []).append(i)
    return {k: np.array(v) for k, v in out.items()}


#: The donors' sequence for a recipient of each sequence: no set has T2 masks, and a tumour's
#: contrast on T2 is FLAIR's (bright) more than T1's.
DONOR_SEQUENCE = {"t1": "t1", "t1c": "t1c", "t2": "flair", "flair": "flair"}


def donor_for(doc: dict, i: int, donors: dict, rng: np.random.Generator) -> int:
    """A donor for tumour-free item ``i`` (same part; -1 if none): for an lgg slice, one of the same
    hospital and sequence; for an image of known sequence, one of that sequence (T2: FLAIR) from any
    collection; otherwise one of any sequence and collection, so donors of every sequence are pasted."""
    r = doc["items"][i]
    seq = r.get("sequence", "")
    if r["source"].startswith("lgg"):
        keys = [(r["source"], seq, r["part"])]
    else:
        want = DONOR_SEQUENCE.get(seq)
        keys = [k for k in donors if k[2] == r["part"] and (want is None or k[1] == want)]
    pools = [donors[k] for k in keys if k in donors and len(donors[k])]
    if not pools:
        return -1
    pool = np.concatenate(pools)
    return int(pool[rng.integers(len(pool))])


def paths(out: Path) -> dict[str, Path]:
    return {"features": out / "front.f16", "meta": out / "meta.npz", "progress": out / "progress.json"}


def extract(catalogue_path: str, weights: str, out_dir: str, seed: int = 0) -> None:
    """Cache every view of every item (see the module docstring); resumes where it stopped."""
    from training import split as splits

    doc = splits.load(catalogue_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = paths(out)
    n, nv = len(doc["items"]), len(views.FAMILIES)
    feats_mm = np.lib.format.open_memmap(p["features"], mode="r+" if p["features"].exists() else "w+",
                                         dtype=np.float16, shape=(nv, n, GRID14, GRID14, CH))
    labels = np.array([r["label"] == "tumor" for r in doc["items"]], np.int8)
    types = np.array([catalogue.TUMOR_TYPES.index(r["tumor_type"]) if r["tumor_type"] else -1 for r in doc["items"]])
    meta = dict(np.load(p["meta"])) if p["meta"].exists() else {
        "mask14": np.full((nv, n, GRID14, GRID14), np.nan, np.float16),
        "mask7": np.full((nv, n, feats.GRID, feats.GRID), np.nan, np.float16),
        "label": np.repeat(labels[None], nv, 0), "type": np.repeat(types[None], nv, 0),
        "donor": np.full((nv, n), -1, np.int32), "geometry": np.zeros((n, 3), np.int32),
        "frame": np.zeros((n, 2), np.int32)}
    done = json.loads(p["progress"].read_text())["done"] if p["progress"].exists() else 0
    donors = donors_of(doc)
    model = front(weights)

    def prepare(start: int) -> tuple[np.ndarray, list]:
        stop = min(start + BATCH, n)
        batch = np.empty((nv, stop - start, feats.SIZE, feats.SIZE, 3), np.uint8)
        rows = []
        for k, i in enumerate(range(start, stop)):
            pixels, mask, g, frame = read(doc, i)
            rng = np.random.default_rng([seed, i])
            d = donor_for(doc, i, donors, rng) if labels[i] == 0 else -1
            donor = None
            if d >= 0:
                dp, dm, _, _ = read(doc, d)
                donor = (dp[..., 0], dm)
            base = mask if mask is not None else np.zeros(pixels.shape[:2], np.float32)
            for v, family in enumerate(views.FAMILIES):
                px, m, pasted = views.make_view(family, pixels, base, rng, donor if family == "paste" else None)
                batch[v, k] = px
                rows.append((v, i, m if (mask is not None or pasted or labels[i] == 0) else None, pasted, d))
            meta["geometry"][i] = (g.top, g.left, g.side)
            meta["frame"][i] = frame
        return batch, rows

    t0 = time.time()
    with ThreadPoolExecutor(1) as pool:
        nxt = pool.submit(prepare, done) if done < n else None
        for start in range(done, n, BATCH):
            batch, rows = nxt.result()
            stop = min(start + BATCH, n)
            nxt = pool.submit(prepare, stop) if stop < n else None
            f = model.predict_on_batch(batch.reshape(-1, feats.SIZE, feats.SIZE, 3).astype(np.float32))
            feats_mm[:, start:stop] = f.reshape(nv, stop - start, GRID14, GRID14, CH).astype(np.float16)
            for v, i, m, pasted, d in rows:
                if m is not None:
                    meta["mask14"][v, i] = views.grid_of(m, GRID14)
                    meta["mask7"][v, i] = views.grid_of(m, feats.GRID)
                if pasted:
                    meta["label"][v, i], meta["type"][v, i], meta["donor"][v, i] = 1, types[d], d
            if (stop // BATCH) % 10 == 0 or stop == n:
                feats_mm.flush()
                np.savez(p["meta"], **meta)
                p["progress"].write_text(json.dumps({"done": stop, "n": n, "families": list(views.FAMILIES)}))
                rate = (stop - done) / (time.time() - t0)
                print(f"front: {stop}/{n} images ({nv} views), {rate:.1f} images/s, "
                      f"{(n - stop) / max(rate, 1e-9) / 60:.0f} min left", flush=True)


def load(out_dir: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The cached front maps ``[view, item, 14, 14, 96]`` (memory map) and their metadata."""
    p = paths(Path(out_dir))
    progress = json.loads(p["progress"].read_text())
    if progress["done"] != progress["n"]:
        raise SystemExit(f"front features incomplete ({progress['done']}/{progress['n']}): re-run `python -m training front`")
    return np.load(p["features"], mmap_mode="r"), dict(np.load(p["meta"]))
