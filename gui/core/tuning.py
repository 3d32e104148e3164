"""How the batch engine uses this machine's cores: measured once per machine and model, then kept.

No Qt. The engine (``gui.core.stream``) decodes in ``decode_threads`` threads while
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

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from gui.core.model import cpu_count
from gui.core.userdirs import data_dir

SETTINGS_FILE = "engine.json"
#: A batch at least this long measures the layout first when none is kept (a few seconds, once).
MEASURE_FROM = 64
#: Images decoded into the layouts' timing runs, and rounds per layout (after one warm-up round).
_TIMING_IMAGES, _ROUNDS = 48, 3


@dataclass(frozen=True)
class EngineSettings:
    """One layout of the batch engine on the cores."""

    batch: int = 16
    decode_threads: int = 1
    inference_workers: int = 1
    inference_threads: int | None = None  # None: the model's own session (every core)

    def describe(self) -> str:
        threads = "every core" if self.inference_threads is None else _count(self.inference_threads, "thread")
        batches = f"one batch of {self.batch}" if self.inference_workers == 1 else \
            f"{self.inference_workers} batches of {self.batch} at once"
        return f"{batches} on {threads}{' each' if self.inference_workers > 1 else ''}, " \
               f"{_count(self.decode_threads, 'decode thread')}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def layouts(cores: int | None = None) -> list[EngineSettings]:
    """The layouts worth timing on ``cores`` cores: one batch of 16 over every core, or two batches of 8
    at once on half the cores each; one decode thread, or one per four cores on larger machines."""
    cores = cores or cpu_count()
    decoders = sorted({1, max(1, cores // 4)})
    out = []
    for d in decoders:
        out.append(EngineSettings(16, d, 1, cores))
        if cores >= 2:
            out.append(EngineSettings(8, d, 2, max(1, cores // 2)))
    return out


def rule(cores: int | None = None) -> EngineSettings:
    """The layout before any measurement: two batches at once when there are two cores or more (the
    faster layout where it was measured), else one."""
    return layouts(cores)[1 if (cores or cpu_count()) >= 2 else 0]


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


def _settings_path() -> Path:
    return data_dir() / SETTINGS_FILE


def _read_all() -> dict:
    try:
        data = json.loads(_settings_path().read_text(encoding="utf-8"))
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
    counts = [settings.batch, settings.decode_threads, settings.inference_workers]
    if settings.inference_threads is not None:
        counts.append(settings.inference_threads)
    return settings if all(type(v) is int and v >= 1 for v in counts) else None  # a hand edit: measured again


def keep(classifier, settings: EngineSettings, rates: dict[str, float]) -> None:
    """Keep a measured layout (with what each layout measured); a read-only home keeps nothing."""
    data = _read_all()
    data[machine_key(classifier)] = {"settings": asdict(settings), "images_per_second": rates,
                                     "measured": time.strftime("%Y-%m-%d %H:%M")}
    try:
        path = _settings_path()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass


def measure(classifier, report: Callable[[str], None] | None = None) -> tuple[EngineSettings, dict[str, float]]:
    """Time every layout on the engine's real path (read, brain crop, inference) over generated
    head-like JPEGs, rounds interleaved so a machine's drift falls on all alike; the fastest by median."""
    from gui.core import stream

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


def tune_main(argv: list[str]) -> int:
    """``mri-classifier tune``: measure the engine layouts again, print them, keep the fastest."""
    from gui.core.classifier import Classifier
    from gui.core.cli import load_models
    from gui.core.model import ModelContractError

    p = argparse.ArgumentParser(prog="mri-classifier tune",
                                description="Time the batch engine's layouts on this machine and keep the fastest "
                                            "(done by itself before the first batch of 64 files or more).")
    p.add_argument("--model", action="append", metavar="FILE", help="ONNX model to tune for instead of the bundled ones")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        classifier = Classifier(load_models(args.model))
    except ModelContractError as exc:
        print(f"error: cannot use model {exc}", file=sys.stderr)
        return 2
    best, rates = measure(classifier, lambda msg: print(msg, file=sys.stderr))
    keep(classifier, best, rates)
    for name, rate in rates.items():
        print(f"{rate:7.1f} images/s  {name}{'  <- kept' if name == best.describe() else ''}")
    print(f"kept in {_settings_path()}")
    return 0
