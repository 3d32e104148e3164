"""Batch-classification benchmark: every figure measured in one run, on one folder, printed as a table.

    python -m tests.benchmarks.bench [--folder ../shared/data/br35h] [--n 600] [--rss-files 5000] [--rounds 3]

Issue 31's rows in one run: pure inference fp32 and int8 (the bundled int8 file, and the model in int8
everywhere), end-to-end in fp32 and with ``--precision int8``, the plain script (Pillow, no crop, one
``session.run`` per image), single-image latency, a 150-slice study and peak RSS, with the CPU's name
and instruction sets. Run by hand, not by pytest. With ``../shared/data`` absent it makes synthetic images. The bundled
models in ``assets/models`` are used. Ratios are between figures of this same run; the throughput rows
are the median of ``--rounds`` interleaved rounds (each round's figures are printed under the table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gui.core.engine import stream, tuning  # noqa: E402
from gui.core.engine.classifier import Classifier  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from gui.core.engine.heatmap import blend, heat_to_frame  # noqa: E402
from gui.core.engine.precision import INT8, bundled, cpu_has_vnni  # noqa: E402
from gui.core.engine.preprocess import model_input  # noqa: E402
from gui.core.readers import open_scan  # noqa: E402
from gui.core.resources import bundled_models  # noqa: E402
from gui.core.engine.tuning import EngineSettings  # noqa: E402


def files_of(folder: Path, n: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    rng = np.random.default_rng(0)
    return [files[i] for i in sorted(rng.permutation(len(files))[:n])]


def synthetic_folder(n: int) -> Path:
    d = Path(tempfile.mkdtemp(prefix="bench-"))
    rng = np.random.default_rng(0)
    for i in range(n):
        side = int(rng.integers(200, 640))
        Image.fromarray((rng.random((side, side)) * 255).astype(np.uint8)).save(d / f"s{i:05d}.jpg", quality=90)
    return d


def end_to_end(files: list[Path], out: Path, *options: str) -> float:
    """The shipped command, as a user runs it (subprocess: includes start-up, CSV written)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gui", "classify", *map(str, files), "--csv", str(out), "--force", *options],
                   cwd=ROOT, check=False, capture_output=True)
    return len(files) / (time.perf_counter() - t0)


def naive(files: list[Path], models) -> float:
    """The same work done the simple way: one image at a time, the app's reader and the same
    preprocessing (the brain crop), then one ``session.run`` per image and model, sequential. The
    ratio to it measures the engine (batching, decoding ahead), not skipped work."""
    t0 = time.perf_counter()
    for f in files:
        image = open_scan(f).model_frame()
        for m in models:
            x = model_input(image, m.input_size, m.preprocessing).pixels.astype(np.float32)[None]
            m.session.run(None, {"image": x})
    return len(files) / (time.perf_counter() - t0)


def plain_script(files: list[Path], model_path: Path) -> float:
    """What a user would write without the app (issue 31's yardstick): Pillow decode and resize, no
    brain crop, one ``session.run`` per image on a default float32 session."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    t0 = time.perf_counter()
    for f in files:
        with Image.open(f) as img:
            x = np.asarray(img.convert("RGB").resize((224, 224), Image.BILINEAR), np.float32)[None]
        session.run(None, {"image": x})
    return len(files) / (time.perf_counter() - t0)


def pure_inference(models, n: int = 256, batch: int = 16) -> float:
    """Inference alone, one batch of ``batch`` at a time on the models' own sessions (every core)."""
    return pure_inference_of([m.session for m in models], n, batch)


def pure_inference_of(sessions, n: int = 256, batch: int = 16) -> float:
    x = np.random.default_rng(0).integers(0, 256, (batch, 224, 224, 3)).astype(np.float32)
    for s in sessions:
        s.run(None, {"image": x})
    t0 = time.perf_counter()
    for _ in range(n // batch):
        for s in sessions:
            s.run(None, {"image": x})
    return n / (time.perf_counter() - t0)


def pure_inference_int8_everywhere(files: list[Path], models) -> float | None:
    """Pure inference of the bundled model quantized everywhere (calibrated on 32 of the bench's files),
    on a session like the model's own: the speed the whole network in int8 would buy, whatever its
    answers (``tests/benchmarks/int8.py`` measures those); None without the train extra."""
    try:
        from export.quantize import quantize_qdq
        from tests.benchmarks.int8 import session
    except ImportError:  # onnx / onnxruntime.quantization: the train extra
        return None
    m = models[0]
    calib = np.stack([model_input(open_scan(f).model_frame(), m.input_size, m.preprocessing).pixels
                      for f in files[:32]]).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "everywhere.onnx"
        quantize_qdq(m.path, out, calib, reduce_range=not cpu_has_vnni())
        return pure_inference_of([session(out, 0)])


def series_seconds(classifier, n: int = 150) -> float:
    """Seconds to score an ``n``-slice NIfTI volume as one study (``tests/benchmarks/series.py``'s
    slices and path), median of three after a warm-up."""
    from tests.benchmarks.series import run_once, slices
    from tests.series_factory import write_nifti

    with tempfile.TemporaryDirectory() as tmp:
        volume = write_nifti(Path(tmp) / "vol.nii", slices(n))
        run_once([volume], classifier)
        return statistics.median(run_once([volume], classifier) for _ in range(3))


def cpu_description() -> str:
    """The CPU's model name and the instruction sets int8 speed depends on (the VM changes between
    sessions: every figure says which CPU gave it)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    have = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{name} ({', '.join(have) or 'no AVX2'})"


def pure_inference_layout(models, engine: EngineSettings, n: int = 256) -> float:
    """Inference alone in the engine's layout: ``inference_workers`` batches at once, each on a
    session of ``inference_threads`` threads (the compute limit of that layout)."""
    x = np.random.default_rng(0).integers(0, 256, (engine.batch, 224, 224, 3)).astype(np.float32)

    def run(k: int) -> None:
        for _ in range(k):
            for m in models:
                m.predict(x, engine.inference_threads)

    run(1)
    per_worker = max(1, n // engine.batch // engine.inference_workers)
    threads = [threading.Thread(target=run, args=(per_worker,)) for _ in range(engine.inference_workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per_worker * engine.inference_workers * engine.batch / (time.perf_counter() - t0)


def in_process(files: list[Path], classifier, engine: EngineSettings) -> float:
    """The engine alone (no process start, no CSV): ``stream.classify_files`` in the kept layout."""
    t0 = time.perf_counter()
    n = sum(1 for _r in stream.classify_files(files, classifier, engine))
    return n / (time.perf_counter() - t0)


def keras_predict(files: list[Path]) -> float | None:
    """The original study's way: Keras model.predict on the trained Keras models (both tasks)."""
    runs = [ROOT / "runs" / "mobilenetv2-binary" / "model.keras", ROOT / "runs" / "mobilenetv2-tumor-type" / "model.keras"]
    if not all(r.exists() for r in runs):
        return None
    try:
        import keras
    except ImportError:
        return None
    models = [keras.saving.load_model(r, compile=False) for r in runs]
    t0 = time.perf_counter()
    x = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224)), np.float32) for f in files])
    for m in models:
        m.predict(x, batch_size=32, verbose=0)
    return len(files) / (time.perf_counter() - t0)


def latency(files: list[Path], classifier) -> tuple[float, float]:
    """File -> probabilities of both models + heatmap overlay, as the window does it."""
    times = []
    for f in files[:5]:
        classifier.classify_image(open_scan(f).model_frame())
    for f in files:
        t0 = time.perf_counter()
        scan = open_scan(f)  # the window's path: the shown frame, and the model view (reduced when large)
        plane = scan.plane()
        rgb = scan.display(plane)
        image, scale = scan.model_view(None, classifier.need, in_hand=plane)
        r = classifier.classify_image(image, scale=scale)
        blend(rgb, heat_to_frame(r.heat, r.geometry, *rgb.shape[:2]))
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, float(np.percentile(times, 95)) * 1000


def rss_for(n_files: int, folder_files: list[Path]) -> float:
    """Peak RSS (MB) of a headless batch over ``n_files`` files (folder files repeated), in a fresh process."""
    listing = (folder_files * (n_files // len(folder_files) + 1))[:n_files]
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its parent's peak.
    code = ("import sys; from gui.launcher import main; "
            f"files = open({str(tmp_list(listing))!r}).read().split(chr(10)); "
            "main(['classify', *files, '--csv', sys.argv[1], '--force']); "
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    out = Path(tempfile.mkdtemp()) / "rss.csv"
    proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, capture_output=True, text=True)
    return int(proc.stdout.strip().splitlines()[-1]) / 1024


def study_volume(n: int) -> Path:
    """A synthetic ``n``-slice 256x256 NIfTI volume (head-like slices), for the GUI-stall measure."""
    from tests.series_factory import write_nifti

    yy, xx = np.mgrid[0:256, 0:256]
    head = ((xx - 128) / 100.0) ** 2 + ((yy - 128) / 115.0) ** 2 < 1
    rng = np.random.default_rng(1)
    images = np.stack([np.where(head, 60 + rng.integers(0, 40, (256, 256)), 0).astype(np.uint8) for _ in range(n)])
    return write_nifti(Path(tempfile.mkdtemp()) / "study.nii", images)


def tmp_list(files: list[Path]) -> Path:
    p = Path(tempfile.mkdtemp()) / "files.txt"
    p.write_text("\n".join(map(str, files)))
    return p


def gui_stalls(files: list[Path], volume: Path | None = None, same_priority: bool = False) -> tuple[float, float] | None:
    """Longest and 99th-percentile gap (ms) between 10 ms timer ticks of the GUI event loop while a
    batch runs, with the Batch tab shown (rows, thumbnails and summary updating); with ``volume``, that
    study is opened and scored at the same time (the two long jobs share the global pool, short ones
    have their own). ``same_priority``: the batch and the study run at the window's CPU priority
    instead of below it (``gui.core.engine.priority``), to measure what that buys."""
    code = f"""
import os, sys, time
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
import onnxruntime
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
import gui.core.engine.priority
from gui.app.window import MainWindow
from gui.core.engine.model import load_model
from gui.core.resources import bundled_models
if {same_priority!r}:
    gui.core.engine.priority.BACKGROUND_NICE = 0
app = QApplication([])
w = MainWindow([load_model(p) for p in bundled_models()], QSettings("{tempfile.mkdtemp()}/s.ini", QSettings.Format.IniFormat))
w.show()
ticks = []
t = QTimer(); t.timeout.connect(lambda: ticks.append(time.perf_counter())); t.start(10)
if len(sys.argv) > 2:
    w.open_path(sys.argv[2])  # a study scoring while the batch runs
w.tabs.setCurrentWidget(w.batch)  # the table on screen: its thumbnails are drawn during the batch
w.batch.start([__import__("pathlib").Path(p) for p in open(sys.argv[1]).read().split(chr(10))])
def check():
    if not w.batch.running:
        gaps = sorted((b - a for a, b in zip(ticks, ticks[1:])), reverse=True)
        print(gaps[0] * 1000, gaps[len(gaps) // 100] * 1000); app.quit()
QTimer.singleShot(500, lambda: None)
c = QTimer(); c.timeout.connect(check); c.start(200)
app.exec()
"""
    extra = [str(volume)] if volume is not None else []
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_list(files))] + extra, cwd=ROOT, capture_output=True,
                          text=True)
    try:
        longest, p99 = map(float, proc.stdout.strip().splitlines()[-1].split())
        return longest, p99
    except (ValueError, IndexError):
        return None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--folder", default=str(ROOT.parent / "shared" / "data" / "br35h"))
    p.add_argument("--n", type=int, default=600)
    p.add_argument("--rss-files", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the throughput rows (the median is kept)")
    args = p.parse_args()
    folder = Path(args.folder)
    if not folder.is_dir():
        folder = synthetic_folder(args.n)
    files = files_of(folder, args.n)
    models = [load_model(m) for m in bundled_models()]
    classifier = Classifier(models)
    # Measured now if this machine has no kept layout, as a first long batch would: no timing below includes it.
    engine = tuning.engine_settings(classifier, tuning.MEASURE_FROM)
    int8 = bundled(INT8)
    if int8.precision == INT8:  # and the int8 file's layout, before `classify --precision int8` is timed
        tuning.engine_settings(Classifier([load_model(f) for f in int8.files]), tuning.MEASURE_FROM)
    int8_models = [load_model(f) for f in int8.files] if int8.precision == INT8 else None
    out = Path(tempfile.mkdtemp()) / "bench.csv"
    res: dict[str, float | None] = {}
    # The throughput rows in interleaved rounds, each figure the median: this VM's speed drifts by 15 %
    # and more between minutes, which one pass per row would put into the ratios.
    rounds = {
        "pure inference, one batch of 16 over every core (img/s)": lambda: pure_inference(models),
        "pure inference, the engine's layout (img/s)": lambda: pure_inference_layout(models, engine),
        "pure inference int8 bundled file (static QDQ of the same model), batch of 16 over every core (img/s)":
            (lambda: pure_inference(int8_models)) if int8_models else None,
        "plain script: Pillow decode + resize, one session.run per image, fp32, no crop (img/s)":
            lambda: plain_script(files, models[0].path),
        "end-to-end `mri-classifier classify` (img/s)": lambda: end_to_end(files, out),
        "end-to-end `mri-classifier classify --precision int8` (img/s)":
            (lambda: end_to_end(files, out, "--precision", "int8")) if int8_models else None,
        "engine in process, no start-up or CSV (img/s)": lambda: in_process(files, classifier, engine),
    }
    samples: dict[str, list[float]] = {name: [] for name in rounds}
    for _round in range(args.rounds):
        for name, measure in rounds.items():
            if measure is not None:
                samples[name].append(measure())
    for name, values in samples.items():
        res[name] = statistics.median(values) if values else None
    res["pure inference int8 everywhere (static QDQ of the same model), batch of 16 over every core (img/s)"] = \
        pure_inference_int8_everywhere(files, models)
    res["naive loop, same reader and crop, one image at a time (img/s)"] = naive(files, models)
    med, p95 = latency(files[:200], classifier)
    res["single-image latency median (ms)"] = med
    res["single-image latency p95 (ms)"] = p95
    if int8_models:  # what View > Arithmetic > Int8 buys the window
        med8, p958 = latency(files[:200], Classifier(int8_models))
        res["single-image latency median, int8 (ms)"] = med8
        res["single-image latency p95, int8 (ms)"] = p958
    res["150-slice NIfTI study, scored whole (s)"] = series_seconds(classifier)
    res[f"peak RSS, {args.rss_files} files (MB)"] = rss_for(args.rss_files, files)
    res["peak RSS, 500 files (MB)"] = rss_for(500, files)
    res["GUI event loop, longest stall during batch (ms)"] = (gui_stalls(files[:300]) or (None,))[0]
    volume = study_volume(150)
    for same, label in ((False, ""), (True, ", background work at the window's priority")):
        stalls = gui_stalls(files[:300], volume, same_priority=same) or (None, None)
        res[f"GUI event loop, longest stall, batch + 150-slice study{label} (ms)"] = stalls[0]
        res[f"GUI event loop, 99th-percentile stall, batch + 150-slice study{label} (ms)"] = stalls[1]
    res["Keras model.predict, both models (img/s)"] = keras_predict(files)  # last: TensorFlow stays loaded
    e2e = res["end-to-end `mri-classifier classify` (img/s)"]
    pure = res["pure inference, one batch of 16 over every core (img/s)"]
    limit = max(pure, res["pure inference, the engine's layout (img/s)"])
    res["ratio end-to-end / pure inference (batch of 16)"] = e2e / pure
    res["ratio end-to-end / the faster pure inference"] = e2e / limit
    res["ratio engine in process / the faster pure inference"] = res["engine in process, no start-up or CSV (img/s)"] / limit
    res["ratio end-to-end / naive"] = e2e / res["naive loop, same reader and crop, one image at a time (img/s)"]
    res["ratio end-to-end / plain script"] = e2e / res[
        "plain script: Pillow decode + resize, one session.run per image, fp32, no crop (img/s)"]
    for name in ("bundled file", "everywhere"):
        int8 = res[f"pure inference int8 {name} (static QDQ of the same model), batch of 16 over every core (img/s)"]
        if int8:
            res[f"ratio pure inference int8 {name} / fp32 (batch of 16)"] = int8 / pure
    int8_pure = res["pure inference int8 bundled file (static QDQ of the same model), batch of 16 over every core (img/s)"]
    e2e_int8 = res["end-to-end `mri-classifier classify --precision int8` (img/s)"]
    if int8_pure:  # the int8 file ran (a CPU with VNNI): its end-to-end against the plain fp32 script and its own pure inference
        res["ratio end-to-end int8 / plain script (fp32)"] = e2e_int8 / res[
            "plain script: Pillow decode + resize, one session.run per image, fp32, no crop (img/s)"]
        res["ratio end-to-end int8 / pure inference int8 (batch of 16)"] = e2e_int8 / int8_pure
    if res["Keras model.predict, both models (img/s)"]:
        res["ratio end-to-end / Keras"] = e2e / res["Keras model.predict, both models (img/s)"]
    print(f"Machine: {cpu_description()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"Folder: {folder} ({len(files)} files sampled); models: {', '.join(m.name for m in models)}")
    print(f"Engine layout (kept for this machine): {engine.describe()}\n")
    print("| measure | value |\n|---|---|")
    for k, v in res.items():
        print(f"| {k} | {'n/a' if v is None else f'{v:.2f}'} |")
    print(f"\nThroughput rows: the median of {args.rounds} interleaved rounds; each round's figures:")
    for name, values in samples.items():
        print(f"- {name}: {' / '.join(f'{v:.1f}' for v in values) or 'n/a'}")
    print("\n" + json.dumps(res))


if __name__ == "__main__":
    main()
