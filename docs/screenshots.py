"""Render the README's screenshots offscreen from real runs of the bundled model on CC0 images.

    QT_QPA_PLATFORM=offscreen python docs/screenshots.py [--data ../shared/data/brain-tumor-mri]

Only images of the Brain Tumor MRI Dataset (CC0) are used: the other collections' licences do not
allow committing their pictures. The study is a demonstration stack of unrelated CC0 slices written
as one NIfTI volume, not a real patient's volume.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from gui.app.window import MainWindow  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from gui.core.resources import bundled_models  # noqa: E402
from training.series import write_volume  # noqa: E402


def pump(app, until, seconds: float = 60) -> None:
    t0 = time.time()
    while time.time() - t0 < seconds and not until():
        app.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.01)


def window(app, theme: str) -> MainWindow:
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "s.ini"), QSettings.Format.IniFormat)
    settings.setValue("theme", theme)
    w = MainWindow([load_model(p) for p in bundled_models()], settings)
    w.resize(1280, 800)
    w.show()
    return w


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "brain-tumor-mri"))
    args = p.parse_args()
    testing = Path(args.data) / "Testing"
    app = QApplication([])
    image = sorted((testing / "glioma").glob("*.jpg"))[10]
    for theme, name in (("light", "screenshot.png"), ("dark", "screenshot-dark.png")):
        w = window(app, theme)
        w.open_path(str(image))
        pump(app, lambda: w.result is not None)
        w.grab().save(str(ROOT / "docs" / name))
        w.close()
    w = window(app, "light")
    batch = sorted((testing / "glioma").glob("*.jpg"))[:20] + sorted((testing / "notumor").glob("*.jpg"))[:20]
    w.open_paths(batch)
    pump(app, lambda: not w.batch.running and len(w.batch.table_model.results) == len(batch), 120)
    w.batch.table.selectRow(3)
    pump(app, lambda: False, 3)
    w.grab().save(str(ROOT / "docs" / "batch.png"))
    w.close()
    slices = sorted((testing / "notumor").glob("*.jpg"))[:10] + sorted((testing / "glioma").glob("*.jpg"))[20:34]
    stack = np.stack([np.asarray(Image.open(f).convert("L").resize((256, 256))) for f in slices])
    volume = write_volume(Path(tempfile.mkdtemp()) / "demonstration-stack.nii", stack)
    w = window(app, "light")
    w.open_path(str(volume))
    pump(app, lambda: w.study_result is not None and w.result is not None and w.result.slice == w.study_result.max_slice)
    w._on_window_drag(0, 0, True)  # a window/level drag, as a user would check a bright lesion
    w._on_window_drag(-30, 20, False)
    pump(app, lambda: False, 1)
    w.grab().save(str(ROOT / "docs" / "study.png"))
    w.close()
    print("docs/screenshot.png, screenshot-dark.png, batch.png, study.png written")


if __name__ == "__main__":
    main()
