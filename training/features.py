"""Frozen ImageNet MobileNetV2 feature maps of every catalogue image, cached once, resumably.

A linear probe on frozen ImageNet features held up better on other hospitals' scans than a
fine-tuned network (issue 10), and frozen features make every leave-one-source-out fold a
minutes-long head fit instead of an hour of fine-tuning on a 2-core CPU. Each image is read by
the app's reader and fitted by the app's ``model_input`` (``brain-crop-v1``), so the cached
features are exactly what the exported model computes in the app.

View 0 is the image as read; view 1 is an appearance-augmented, randomly mirrored copy
(bias field, gamma, noise, blur or lower resolution, JPEG re-encoding): scanner differences the
model must not key on. The ``mirror`` view is every image mirrored left-right, nothing else: the
test-time augmentation the app could run, measured as a caution score (training/caution.py). Expert masks are mapped through the same crop to the 7x7 feature grid
(share of each cell inside the mask).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from gui.core.engine.preprocess import Geometry, ModelInput, model_input_scaled, model_need
from gui.core.readers import open_scan

PREPROCESSING = "brain-crop-v1"
SIZE = 224
GRID = 7
CHANNELS = 1280
BATCH = 64


def backbone(weights: str | Path):
    """``image`` (RGB 0-255) -> MobileNetV2's last 7x7x1280 feature map, ImageNet weights from a local file."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inputs)
    base = keras.applications.MobileNetV2(input_tensor=x, include_top=False, weights=None, alpha=1.0)
    base.load_weights(str(weights))
    return keras.Model(inputs, base.output, name="backbone")


def item_input(doc: dict, rec: dict) -> tuple[np.ndarray, ModelInput]:
    """A catalogue item's displayed frame and its model input, exactly as the app makes them: the
    one path used by feature extraction, export verification and the figures."""
    scan = open_scan(Path(doc["datasets"][rec["dataset"]]) / rec["path"])
    plane = scan.plane()
    image, scale = scan.model_view(need=model_need(2 * SIZE), in_hand=plane)
    return scan.display(plane), model_input_scaled(image, scale, SIZE, PREPROCESSING)


def augment(pixels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """An appearance-augmented copy of a model input (uint8 [S, S, 3]) and whether it was mirrored."""
    grey = pixels[..., 0].astype(np.float32) / 255.0
    s = grey.shape[0]
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
    a = rng.normal(0, 0.35, 5)
    field = np.exp(a[0] * xx + a[1] * yy + a[2] * xx * yy + a[3] * xx * xx + a[4] * yy * yy)
    grey = np.clip(grey * field, 0, 1) ** np.exp(rng.uniform(-0.35, 0.35))
    grey = grey + rng.normal(0, rng.uniform(0, 0.03), grey.shape)
    img = Image.fromarray(np.clip(grey * 255 + 0.5, 0, 255).astype(np.uint8))
    choice = rng.integers(3)
    if choice == 0:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5)))
    elif choice == 1:
        low = int(rng.integers(80, 160))
        img = img.resize((low, low), Image.BILINEAR).resize((s, s), Image.BILINEAR)
    if rng.random() < 0.5:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(30, 90)))
        img = Image.open(buf)
        img.load()
    out = np.asarray(img.convert("L"))
    flip = bool(rng.random() < 0.5)
    if flip:
        out = out[:, ::-1]
    return np.repeat(out[:, :, None], 3, axis=2), flip


def mask_square(mask_file: Path, geometry: Geometry) -> np.ndarray:
    """The expert mask (0/1 float) on the square region of the frame the model saw, clipped by the
    same rule as the crop (``Geometry.overlap``); zero where the square reaches past the frame."""
    with Image.open(mask_file) as m:
        mask = (np.asarray(m.convert("L")) > 127).astype(np.float32)
    square = np.zeros((geometry.side, geometry.side), np.float32)
    where = geometry.overlap(*mask.shape)
    if where is not None:
        rows, cols, s_rows, s_cols = where
        square[s_rows, s_cols] = mask[rows, cols]
    return square


def mask_grid(mask_file: Path, geometry: Geometry, grid: int = GRID) -> np.ndarray:
    """Share of each cell of the model's ``grid`` x ``grid`` map that lies inside the expert mask."""
    return np.asarray(Image.fromarray(mask_square(mask_file, geometry)).resize((grid, grid), Image.BOX), np.float32)


MIRROR_VIEW = "mirror"


def cache_paths(out_dir: Path, view: int | str) -> dict[str, Path]:
    return {"features": out_dir / f"features-v{view}.f16", "meta": out_dir / f"meta-v{view}.npz",
            "progress": out_dir / f"progress-v{view}.json"}


def extract(doc: dict, weights: str, out_dir: str | Path, view: int | str = 0, seed: int = 0) -> None:
    """Write view ``view``'s feature maps of every catalogue item to ``out_dir`` (resumable by batch).

    Alongside: per item the crop geometry, the frame size, whether it was mirrored and the mask
    grid (NaN where the image has no mask).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = cache_paths(out_dir, view)
    items, roots = doc["items"], doc["datasets"]
    n = len(items)
    feats = np.lib.format.open_memmap(paths["features"], mode="r+" if paths["features"].exists() else "w+",
                                      dtype=np.float16, shape=(n, GRID, GRID, CHANNELS))
    meta = dict(np.load(paths["meta"])) if paths["meta"].exists() else {
        "geometry": np.zeros((n, 3), np.int32), "frame": np.zeros((n, 2), np.int32),
        "flipped": np.zeros(n, bool), "mask": np.full((n, GRID, GRID), np.nan, np.float32)}
    done = json.loads(paths["progress"].read_text())["done"] if paths["progress"].exists() else 0
    model = backbone(weights)
    t0 = time.time()
    for start in range(done, n, BATCH):
        stop = min(start + BATCH, n)
        batch = np.empty((stop - start, SIZE, SIZE, 3), np.uint8)
        for k, i in enumerate(range(start, stop)):
            rec = items[i]
            frame, fitted = item_input(doc, rec)
            pixels, flip = fitted.pixels, False
            if view == MIRROR_VIEW:
                pixels, flip = np.ascontiguousarray(pixels[:, ::-1]), True
            elif view > 0:
                pixels, flip = augment(pixels, np.random.default_rng([seed, view, i]))
            batch[k] = pixels
            g = fitted.geometry
            meta["geometry"][i] = (g.top, g.left, g.side)
            meta["frame"][i] = frame.shape[:2]
            meta["flipped"][i] = flip
            if rec["mask"]:
                grid = mask_grid(Path(roots[rec["dataset"]]) / rec["mask"], g)
                meta["mask"][i] = grid[:, ::-1] if flip else grid
        feats[start:stop] = model.predict_on_batch(batch.astype(np.float32)).astype(np.float16)
        if (stop // BATCH) % 10 == 0 or stop == n:
            feats.flush()
            np.savez(paths["meta"], **meta)
            paths["progress"].write_text(json.dumps({"done": stop, "n": n}))
            rate = (stop - done) / (time.time() - t0)
            print(f"view {view}: {stop}/{n} images, {rate:.0f}/s, {(n - stop) / max(rate, 1e-9) / 60:.1f} min left",
                  flush=True)


def load(out_dir: str | Path, view: int | str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The cached feature maps (read-only memory map) and per-item metadata of one view."""
    paths = cache_paths(Path(out_dir), view)
    progress = json.loads(paths["progress"].read_text())
    if progress["done"] != progress["n"]:
        raise SystemExit(f"features of view {view} are incomplete ({progress['done']}/{progress['n']}): "
                         "re-run `python -m training features` to finish them")
    return np.load(paths["features"], mmap_mode="r"), dict(np.load(paths["meta"]))
