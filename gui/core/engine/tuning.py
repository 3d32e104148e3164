"""How the batch engine uses this machine's cores: measured once per machine and model, then kept.

No Qt. The engine (``gui.core.engine.stream``) decodes in ``decode_threads`` threads while
``inference_workers`` batches of ``batch`` images run at once, each on a session with
``inference_threads`` intra-op threads. Which layout is fastest depends on the CPU: on the
2-core development VM two single-threaded batches at once beat one batch over both cores by ~15%
(ONNX Runtime's two threads wait on each other between the network's many small layers), but that
need not hold on another machine. So the layouts that keep at most 16 images in flight (the
memory bound: ~300 MB peak) are timed on the engine's real path with generated head-like JPEGs,
the fastest is kept in the app's per-user folder, keyed by CPU, cores, ONNX Runtime and model, and
measured again when any of those changes. Until then a rule from the core count is used.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from gui.core.engine.layout import EngineSettings, layouts, rule
from gui.core.engine.model import cpu_count
from gui.core.userdirs import data_dir, exclusive_lock

SETTINGS_FILE = "engine.json"
#: A batch at least this long measures the layout first when none is kept (a few seconds, once).
MEASURE_FROM = 64
#: Images decoded into the layouts' timing runs, and rounds per layout (after one warm-up round).
_TIMING_IMAGES, _ROUNDS = 48, 3


def machine_key(models) -> str:
    """What a measurement holds for: the CPU, its cores, ONNX Runtime and the model files (name, size);
    ``models``: a classifier or its model files (so a command can look before it loads them)."""
    import onnxruntime

    paths = [m.path for m in models.models] if hasattr(models, "models") else [Path(p) for p in models]
    files = "; ".join(f"{p.name} ({p.stat().st_size} bytes)" for p in paths)
    return f"{_cpu_name()} | {cpu_count()} cores | onnxruntime {onnxruntime.__version__} | {files}"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def settings_path() -> Path:
    return data_dir() / SETTINGS_FILE


def _read_all() -> dict:
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def kept(models) -> EngineSettings | None:
    """The layout measured for this machine and these models (a classifier or its model files), if one
    is kept (a damaged or missing file: none)."""
    try:
        entry = _read_all().get(machine_key(models))
    except OSError:  # a model file that cannot be read is reported by its loader
        return None
    try:
        settings = EngineSettings(**entry["settings"])
    except (TypeError, KeyError):
        return None
    counts = [settings.batch, settings.inference_workers]
    if settings.inference_threads is not None:
        counts.append(settings.inference_threads)
    sound = all(type(v) is int and v >= 1 for v in counts) and type(settings.decode_threads) is int \
        and settings.decode_threads >= 0  # 0: each worker decodes its own batch
    return settings if sound else None  # a hand edit: measured again


def keep(classifier, settings: EngineSettings, rates: dict[str, float]) -> None:
    """Keep a measured layout (with what each layout measured); a read-only home keeps nothing.

    Two processes tuning at once (two shards starting together) would each read the file, add their
    entry and write it back, the second erasing the first; so the read-modify-write holds an exclusive
    lock on ``engine.json.lock``, and the new file is written under a name of its own before the rename."""
    entry = {"settings": asdict(settings), "images_per_second": rates, "measured": time.strftime("%Y-%m-%d %H:%M")}
    key = machine_key(classifier)
    try:
        path = settings_path()
        with exclusive_lock(path.with_name(path.name + ".lock")):
            data = _read_all()
            data[key] = entry
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(data, indent=1))
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
    except OSError:
        pass


def measure(classifier, report: Callable[[str], None] | None = None) -> tuple[EngineSettings, dict[str, float]]:
    """Time every layout on the engine's real path (read, brain crop, inference) over generated
    head-like JPEGs, rounds interleaved so a machine's drift falls on all alike; the fastest by median."""
    from gui.core.engine import stream

    candidates = layouts()
    if len(candidates) == 1:  # one core: nothing to choose between
        return candidates[0], {}
    if report is not None:
        report(f"measuring the fastest way to use this computer's {cpu_count()} cores, once (a few seconds)")
    with tempfile.TemporaryDirectory(prefix="mri-classifier-tune-") as tmp:
        files = _timing_images(Path(tmp), _TIMING_IMAGES)
        times: dict[EngineSettings, list[float]] = {c: [] for c in candidates}
        for round_ in range(_ROUNDS + 1):
            for c in candidates:
                t0 = time.perf_counter()
                for _r in stream.classify_files(files, classifier, engine=c):
                    pass
                if round_:  # the first round warms sessions and memory up
                    times[c].append(time.perf_counter() - t0)
    rates = {c.describe(): len(files) / statistics.median(t) for c, t in times.items()}
    best = max(candidates, key=lambda c: rates[c.describe()])
    return best, rates


def _timing_images(folder: Path, n: int) -> list[Path]:
    """``n`` head-like grey JPEGs of 256-640 px (an ellipse of noisy tissue on black), as scans arrive."""
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        side = int(rng.integers(256, 641))
        yy, xx = np.mgrid[0:side, 0:side] / side
        head = ((xx - 0.5) / 0.4) ** 2 + ((yy - 0.5) / 0.45) ** 2 < 1
        grey = np.where(head, rng.normal(110, 30, head.shape), rng.normal(4, 2, head.shape))
        path = folder / f"t{i:03d}.jpg"
        Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).save(path, quality=90)
        files.append(path)
    return files


def engine_settings(classifier, n_items: int = 0, report: Callable[[str], None] | None = None) -> EngineSettings:
    """The layout for a batch of ``n_items``: the kept one; else, for a batch of at least
    :data:`MEASURE_FROM` items, measured now and kept; else the rule from the core count."""
    settings = kept(classifier)
    if settings is not None:
        return settings
    if n_items < MEASURE_FROM:
        return rule()
    settings, rates = measure(classifier, report)
    keep(classifier, settings, rates)
    return settings
