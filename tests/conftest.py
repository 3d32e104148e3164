"""Shared fixtures: small synthetic MRI-like images and class-folder datasets with planted duplicates."""

from __future__ import annotations

import os
import shutil
import gc
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gui.core.engine import stream
from training import split

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The app logs to the per-user data folder; tests log to a throw-away one, never the real home.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="mri-classifier-test-data-")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def synthetic_slice(rng: np.random.Generator, size: int = 64, tumour: bool = False) -> np.ndarray:
    """A bright ellipse ("head") on black, with random texture and, for tumours, a bright blob."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    cx, cy = 0.5 + rng.uniform(-0.05, 0.05, 2)
    head = ((xx - cx) / rng.uniform(0.3, 0.42)) ** 2 + ((yy - cy) / rng.uniform(0.35, 0.45)) ** 2 < 1
    img = head * (90 + 60 * rng.random((size, size)))
    if tumour:
        bx, by = rng.uniform(0.35, 0.65, 2)
        img = np.where((xx - bx) ** 2 + (yy - by) ** 2 < rng.uniform(0.005, 0.012), 250, img)
    return img.astype(np.uint8)


def brain_like(path: Path, tumour: bool, size=(180, 220)) -> Path:
    """A head-shaped grey ellipse, with a bright blob when ``tumour``, saved as ``path``."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    head = ((xx - w / 2) / (w * 0.4)) ** 2 + ((yy - h / 2) / (h * 0.45)) ** 2 < 1
    img = np.where(head, 60, 0).astype(np.uint8)
    if tumour:
        img[(xx - w * 0.62) ** 2 + (yy - h * 0.4) ** 2 < 400] = 255
        img[head] = np.maximum(img[head], 170)
    Image.fromarray(img).save(path)
    return path


def make_dataset(root: Path, classes: dict[str, int], seed: int = 0, size: int = 64,
                 splits: tuple[str, ...] = ("",)) -> Path:
    """Class folders of synthetic JPEGs; classes not named 'no'/'notumor' get a tumour blob."""
    rng = np.random.default_rng(seed)
    for part in splits:
        for cls, n in classes.items():
            folder = root / part / cls if part else root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = synthetic_slice(rng, size, tumour=cls not in ("no", "notumor"))
                Image.fromarray(img).save(folder / f"{cls}_{i:03d}.jpg", quality=95)
    return root


@pytest.fixture
def tiny_datasets(tmp_path: Path) -> dict[str, Path]:
    """Two datasets shaped like the real ones, with duplicates planted across splits and sets.

    Planted: an exact copy Training -> Testing, a re-encoded brighter near-copy
    Training -> Testing, and a resized copy from one dataset in the other.
    """
    btm = make_dataset(tmp_path / "brain-tumor-mri", {"glioma": 12, "meningioma": 12, "notumor": 12, "pituitary": 12},
                       seed=1, splits=("Training", "Testing"))
    br = make_dataset(tmp_path / "br35h", {"yes": 14, "no": 14}, seed=2, size=80)
    shutil.copy(btm / "Training/glioma/glioma_000.jpg", btm / "Testing/glioma/exact_copy.jpg")
    src = np.asarray(Image.open(btm / "Training/meningioma/meningioma_001.jpg"), dtype=np.int16)
    Image.fromarray(np.clip(src + 6, 0, 255).astype(np.uint8)).save(btm / "Testing/meningioma/near_copy.jpg", quality=80)
    Image.open(btm / "Training/notumor/notumor_002.jpg").resize((80, 80)).save(br / "no" / "from_btm.jpg")
    return {"btm": btm, "br35h": br}


def require_shared_data() -> Path:
    if not (SHARED_DATA / "brain-tumor-mri").is_dir():
        pytest.skip("../shared/data is absent (fresh clone): real-data test skipped")
    return SHARED_DATA


@pytest.fixture
def binary_split(tiny_datasets, tmp_path) -> Path:
    doc = split.make_split([tiny_datasets["btm"], tiny_datasets["br35h"]], "binary", seed=0)
    path = tmp_path / "splits.json"
    split.save(doc, path)
    return path


@pytest.fixture
def small_schedules(monkeypatch):
    """One-epoch phases, for tests that only need a trained model of the right shape."""
    from training import train as train_mod

    monkeypatch.setitem(train_mod.SCHEDULES, "cnn", [dict(epochs=1, lr=1e-3, unfreeze=None)])
    monkeypatch.setitem(train_mod.SCHEDULES, "mobilenetv2",
                        [dict(epochs=1, lr=1e-3, unfreeze=None), dict(epochs=1, lr=1e-5, unfreeze=16)])


@pytest.fixture(autouse=True)
def no_engine_timing_runs(monkeypatch):
    """A first long batch times the engine's layouts once per machine (``gui.core.engine.tuning``); tests run
    long batches with stand-in models and gated classifiers, so in-process they use the core-count rule
    (tests/test_tuning.py times the layouts on purpose)."""
    from gui.core.engine import tuning

    monkeypatch.setattr(tuning, "MEASURE_FROM", 10**9)


def engine_threads() -> list[threading.Thread]:
    """The batch engine's decode and inference threads still alive (``gui.core.engine.stream``)."""
    return [t for t in threading.enumerate() if t.name.startswith((stream.DECODE_THREADS, stream.INFERENCE_THREADS))]


@pytest.fixture(autouse=True)
def no_work_outlives_its_test():
    """Every test's background work ends with it: the batch engine's threads and Qt's pool threads.

    Work left running lands in the next test (a study still scoring, ONNX Runtime sessions still
    being run, a window's pool deleted under a worker), where a race is hard to trace; here the test
    that leaked it fails by name after waiting 20 s for it to end."""
    yield
    engine = engine_threads()
    for t in engine:
        t.join(20)
    left = [t.name for t in engine if t.is_alive()]
    qt_core = sys.modules.get("PySide6.QtCore")
    if qt_core is not None and qt_core.QCoreApplication.instance() is not None:
        if not qt_core.QThreadPool.globalInstance().waitForDone(20000):
            left.append(f"{qt_core.QThreadPool.globalInstance().activeThreadCount()} Qt pool job(s)")
        tasks = sys.modules.get("gui.app.tasks")
        for runner in list(tasks.TaskRunner.instances) if tasks is not None else []:
            if not runner.wait(20000):  # the window's lanes: a study, a batch, a render
                left.append("a window's task runner job")
        # The test's Qt objects left in reference cycles are collected here, on the GUI thread: left to
        # Python's collector they may be freed in a pool thread of the next test, which crashes Qt.
        gc.collect()
    assert not left, f"background work still running after the test: {', '.join(left)}"
