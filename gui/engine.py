"""Classify one image or a stream of files with the loaded models; write results as CSV.

The same engine serves the window, the batch panel and the headless ``classify`` command.
It has no Qt import: progress and cancellation are plain callables (Orange-style), results
stream out one by one so memory stays flat however many files there are, and every file
that cannot be read becomes an error row with the reader's reason while the batch goes on.
"""

from __future__ import annotations

import csv
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from gui.imaging import ImageReadError, fit_square, read_image
from gui.model import Model

CSV_COLUMNS = ["path", "status", "prediction", "tumor_probability", "confidence", "tumor_type",
               "tumor_type_confidence", "ood_warning", "error"]
#: Files a folder scan picks up (a file named on the command line is always tried).
SCAN_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".dcm", ".dicom", ".nii", ".gz", ".ima", ""}
OOD_MESSAGE = "image looks unlike the brain MRI the model was trained on"


@dataclass
class Result:
    """The answer for one file (or an error row with the reason)."""

    path: str
    status: str = "ok"
    prediction: str = ""  # "tumor" | "no_tumor"
    tumor_probability: float | None = None
    confidence: float | None = None  # probability of the stated prediction
    tumor_type: str = ""
    tumor_type_confidence: float | None = None  # P(type | tumour) from the type model
    ood_warning: str = ""
    error: str = ""
    probabilities: dict[str, dict[str, float]] = field(default_factory=dict)  # model name -> label -> p
    heat: np.ndarray | None = None  # [h, w] class activation map behind the answer
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Classifier:
    """The models used together: a tumour detector and, optionally, a tumour-type model.

    The first binary model decides "tumour / no tumour"; with none loaded, the type
    model's ``1 - P(no tumour)`` does. The type model names the most likely tumour type.
    """

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ValueError("no model loaded")
        self.models = list(models)
        binary = [m for m in self.models if m.is_binary_detector]
        typed = [m for m in self.models if not m.is_binary_detector]
        self.detector = binary[0] if binary else typed[0]
        self.typer = typed[0] if typed else None
        self.input_sizes = sorted({m.input_size for m in self.models})
        self._prob_columns = self._probability_columns()  # fixed for the models: not per row

    def columns(self) -> list[str]:
        """CSV columns: the fixed ones, then ``p_<label>`` per label of each model
        (``p_<task>_<label>`` where a label name is already taken by an earlier model)."""
        cols = list(CSV_COLUMNS)
        for _model, _label, col in self._prob_columns:
            cols.append(col)
        return cols

    def _probability_columns(self) -> list[tuple[Model, str, str]]:
        out, taken = [], set()
        for m in self.models:
            for label in m.labels:
                col = f"p_{label}" if f"p_{label}" not in taken else f"p_{m.card['task']}_{label}"
                taken.add(col)
                out.append((m, label, col))
        return out

    def classify_batch(self, images: dict[int, np.ndarray], paths: Sequence[str], with_heat: bool = False) -> list[Result]:
        """Classify images already fitted to each input size (``{size: uint8 [N, S, S, 3]}``)."""
        t0 = time.perf_counter()
        images = {s: np.asarray(x, np.float32) for s, x in images.items()}  # once, not once per model
        preds = {id(m): m.predict(images[m.input_size]) for m in self.models}
        per_image = (time.perf_counter() - t0) / max(len(paths), 1)
        det = preds[id(self.detector)]
        p_tumor = self.detector.tumor_probability(det.probabilities)
        results = []
        for i, path in enumerate(paths):
            r = Result(path=path, seconds=per_image)
            r.tumor_probability = float(p_tumor[i])
            is_tumor = p_tumor[i] >= self.detector.threshold
            r.prediction = "tumor" if is_tumor else "no_tumor"
            r.confidence = float(p_tumor[i] if is_tumor else 1.0 - p_tumor[i])
            if self.typer is not None:
                probs = preds[id(self.typer)].probabilities[i]
                tumour_labels = [k for k, lab in enumerate(self.typer.labels) if lab not in self.typer.no_tumor_labels]
                k = max(tumour_labels, key=lambda j: probs[j])
                r.tumor_type = self.typer.labels[k]
                total = float(sum(probs[j] for j in tumour_labels))
                r.tumor_type_confidence = float(probs[k] / total) if total > 0 else None
            flagged = [m.name for m in self.models if preds[id(m)].ood_flag[i]]
            if flagged:
                r.ood_warning = OOD_MESSAGE
            r.probabilities = {m.name: {lab: float(p) for lab, p in zip(m.labels, preds[id(m)].probabilities[i])}
                               for m in self.models}
            if with_heat:
                r.heat = self.heat_for(det.cam[i], is_tumor)
            results.append(r)
        return results

    def heat_for(self, cam: np.ndarray, is_tumor: bool) -> np.ndarray:
        """The map of the evidence for the detector's answer: tumour classes when it says
        tumour (summed), the no-tumour class otherwise."""
        labels = self.detector.labels
        no = [k for k, lab in enumerate(labels) if lab in self.detector.no_tumor_labels]
        yes = [k for k in range(len(labels)) if k not in no]
        return cam[..., yes if is_tumor else no].sum(axis=-1)

    def classify_image(self, rgb: np.ndarray, path: str = "", with_heat: bool = True) -> Result:
        """One displayed image (``uint8 [H, W, 3]``) -> result with heatmap."""
        t0 = time.perf_counter()
        images = {s: fit_square(rgb, s)[None] for s in self.input_sizes}
        r = self.classify_batch(images, [path], with_heat=with_heat)[0]
        r.seconds = time.perf_counter() - t0
        return r

    def row(self, r: Result) -> dict[str, str]:
        """One CSV row; numbers with 6 decimals, empty cells for an error row."""
        def num(v: float | None) -> str:
            return "" if v is None else f"{v:.6f}"

        row = {"path": r.path, "status": r.status, "prediction": r.prediction,
               "tumor_probability": num(r.tumor_probability), "confidence": num(r.confidence),
               "tumor_type": r.tumor_type, "tumor_type_confidence": num(r.tumor_type_confidence),
               "ood_warning": r.ood_warning, "error": r.error}
        for m, label, col in self._prob_columns:
            row[col] = num(r.probabilities.get(m.name, {}).get(label))
        return row


# ---------------------------------------------------------------- files


def collect_files(paths: Iterable[str | Path], recursive: bool = False) -> Iterator[Path]:
    """Files to classify, in a stable order: named files as given, folders scanned (sorted).

    Symbolic links to folders are not followed (a link loop cannot trap the scan); hidden
    files and files with non-image extensions in folders are skipped.
    """
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            yield p
            continue
        if recursive:
            for root, dirs, files in os.walk(p, followlinks=False, onerror=None):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if _scan_candidate(name):
                        yield Path(root) / name
        else:
            try:
                entries = sorted(p.iterdir())
            except OSError:
                yield p  # reported as an error row by the reader
                continue
            for f in entries:
                if _scan_candidate(f.name) and not f.is_dir():
                    yield f


def _scan_candidate(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in SCAN_SUFFIXES


# ---------------------------------------------------------------- streaming batch


def decode_for_model(path: Path, sizes: Sequence[int]) -> dict[int, np.ndarray]:
    """Read a file and fit it to every model input size (JPEG decoded at reduced scale)."""
    rgb = read_image(path, reduce_to=max(sizes))
    return {s: fit_square(rgb, s) for s in sizes}


def classify_files(
    files: Iterable[Path],
    classifier: Classifier,
    batch_size: int = 16,
    decode_threads: int = 1,
    with_heat: bool = False,
    should_cancel: Callable[[], bool] | None = None,
) -> Iterator[Result]:
    """Stream a result per file, in input order.

    Decoding runs in a thread pool one batch ahead of inference (Pillow and ONNX Runtime
    release the GIL) and images go to the models in batches. Measured on 2 cores with the
    bundled pair on 224x224 JPEGs: batches of 16 are fastest (140 images/s; 8: 129, 32: 131)
    and keep the peak memory at ~510 MB (32: 930 MB, ONNX Runtime's arena grows with the
    batch); one decode thread beats decoding inline by ~4%, more only compete with inference.
    Stops early, between batches, when ``should_cancel()`` turns true.
    """
    sizes = classifier.input_sizes
    pending: deque[list[tuple[Path, Future]]] = deque()
    files_iter = iter(files)

    def submit(pool: ThreadPoolExecutor) -> bool:
        chunk = []
        for path in files_iter:
            chunk.append((path, pool.submit(decode_for_model, path, sizes)))
            if len(chunk) == batch_size:
                break
        if chunk:
            pending.append(chunk)
        return bool(chunk)

    with ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode") as pool:
        submit(pool)
        submit(pool)  # keep one batch decoding ahead
        while pending:
            if should_cancel is not None and should_cancel():
                for chunk in pending:
                    for _p, fut in chunk:
                        fut.cancel()
                return
            chunk = pending.popleft()
            submit(pool)
            yield from _run_chunk(chunk, classifier, sizes, with_heat)


def _run_chunk(chunk, classifier: Classifier, sizes, with_heat: bool) -> Iterator[Result]:
    ok_paths, ok_images, out = [], {s: [] for s in sizes}, {}
    for i, (path, fut) in enumerate(chunk):
        try:
            fitted = fut.result()
        except ImageReadError as exc:
            out[i] = Result(path=str(path), status="error", error=exc.reason)
            continue
        except Exception as exc:  # the reader's contract says this cannot happen; never lose the batch
            out[i] = Result(path=str(path), status="error", error=f"unexpected error: {type(exc).__name__}: {exc}")
            continue
        ok_paths.append((i, str(path)))
        for s in sizes:
            ok_images[s].append(fitted[s])
    if ok_paths:
        stacked = {s: np.stack(v) for s, v in ok_images.items()}
        try:
            results = classifier.classify_batch(stacked, [p for _i, p in ok_paths], with_heat=with_heat)
        except Exception as exc:  # an inference failure marks the batch's files, the stream goes on
            results = [Result(path=p, status="error", error=f"inference failed: {exc}") for _i, p in ok_paths]
        for (i, _p), r in zip(ok_paths, results):
            out[i] = r
    for i in range(len(chunk)):
        yield out[i]


# ---------------------------------------------------------------- CSV


class CsvExistsError(FileExistsError):
    pass


def write_csv_atomic(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, str]], force: bool = False) -> int:
    """Write rows to ``path`` through a temporary file and a rename: never a truncated CSV.

    Refuses to replace an existing file unless ``force``. Returns the number of rows.
    """
    path = Path(path)
    if path.exists() and not force:
        raise CsvExistsError(f"{path} exists (use --force to replace it)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    n = 0
    try:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns))
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n

