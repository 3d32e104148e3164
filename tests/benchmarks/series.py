"""Series-mode benchmark: a 150-slice volume scored whole, against the same slices as image files.

    python -m tests.benchmarks.series [--slices 150] [--repeat 3]

Run by hand, not by pytest. Slices are lgg FLAIR slices (256x256, patients concatenated) when
``../shared/data/lgg`` is there, else synthetic head-like slices. The bundled model is used, with a
warm session (as in the window, where the model is loaded once); every figure comes from this run.
"""

from __future__ import annotations

import argparse
import csv
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gui.core.engine import stream  # noqa: E402
from gui.core.engine.classifier import Classifier  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from gui.core.resources import bundled_models  # noqa: E402
from tests.series_factory import write_dicom_series, write_nifti  # noqa: E402

LGG = ROOT.parent / "shared" / "data" / "lgg"


def slices(n: int) -> np.ndarray:
    if (LGG / "labels.csv").is_file():
        with (LGG / "labels.csv").open() as fh:
            rows = sorted(csv.DictReader(fh), key=lambda r: (r["patient"], int(r["slice"])))[:n]
        return np.stack([np.asarray(Image.open(LGG / r["image"]).convert("L")) for r in rows])
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    head = ((xx - 128) / 100) ** 2 + ((yy - 128) / 115) ** 2 < 1
    return np.stack([np.where(head, 60 + rng.integers(0, 40, (256, 256)), 0).astype(np.uint8) for _ in range(n)])


def run_once(paths: list[Path], classifier: Classifier) -> float:
    """Wall time of scanning ``paths`` and classifying what they hold."""
    t0 = time.perf_counter()
    rows = list(stream.classify_files(stream.collect_files(paths), classifier))
    elapsed = time.perf_counter() - t0
    assert all(r.ok for r in rows), [r.error for r in rows if not r.ok][:3]
    return elapsed


def interleaved(inputs: dict[str, list[Path]], classifier: Classifier, repeat: int) -> dict[str, float]:
    """Median time of each input, the inputs taking turns round by round (after a warm-up round), so
    the slow drifts of a shared VM fall on all of them alike."""
    for paths in inputs.values():
        run_once(paths, classifier)
    times: dict[str, list[float]] = {name: [] for name in inputs}
    for _ in range(repeat):
        for name, paths in inputs.items():
            times[name].append(run_once(paths, classifier))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--slices", type=int, default=150)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    n = args.slices
    images = slices(n)
    work = Path(tempfile.mkdtemp(prefix="bench-series-"))
    try:
        write_nifti(work / "vol.nii", images)
        write_nifti(work / "vol.nii.gz", images)
        series_dir = work / "series"
        write_dicom_series(series_dir, images)
        png_dir = work / "png"
        png_dir.mkdir()
        for k, img in enumerate(images):
            Image.fromarray(img).save(png_dir / f"s{k:04d}.png")
        classifier = Classifier([load_model(m) for m in bundled_models()])
        t = interleaved({"PNG files, one row each": [png_dir], ".nii volume, one row": [work / "vol.nii"],
                         ".nii.gz volume, one row": [work / "vol.nii.gz"],
                         "the series' DICOM files named one by one, one row each": sorted(series_dir.iterdir()),
                         "DICOM series folder (grouping included), one row": [series_dir]}, classifier, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{platform.processor() or platform.machine()}, {n} slices of {images.shape[2]}x{images.shape[1]} "
          f"({'lgg FLAIR' if (LGG / 'labels.csv').is_file() else 'synthetic'}), median of {args.repeat}")
    print("| input | seconds | slices/s | vs the same slices as PNG files |")
    print("|---|---|---|---|")
    base = t["PNG files, one row each"]
    for name, seconds in t.items():
        print(f"| {name} | {seconds:.2f} | {n / seconds:.1f} | {base / seconds:.2f} |")

if __name__ == "__main__":
    main()
