"""Classify one image or a stream of files with the loaded models; write results as CSV.

The same engine serves the window, the batch panel and the headless ``classify`` command.
It has no Qt import: progress and cancellation are plain callables (Orange-style), results
stream out one by one so memory stays flat however many files there are, and every file
that cannot be read becomes an error row with the reader's reason while the batch goes on.
"""

from __future__ import annotations

import csv
import os
import stat
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from gui.core import study
from gui.core.imaging import (DicomSeries, ImageReadError, ModelInput, Scan, group_dicom_series, is_image_file,
                              model_input, open_item, read_image, sniff_format)
from gui.core.model import Model
from gui.core.overlay import normalise_cam
from gui.core.result import Result

CSV_COLUMNS = ["path", "status", "prediction", "tumor_probability", "confidence", "tumor_type",
               "tumor_type_confidence", "ood_warning", "error"]
#: After the fixed nine, before the ``p_`` columns: "yes" when the answers behind the row disagree.
DISAGREE_COLUMN = "models_disagree"
#: After ``models_disagree``: filled for a study (volume, multi-frame DICOM, DICOM series), empty otherwise.
STUDY_COLUMNS = ["n_slices", "max_slice", "tumor_slices"]
#: ``--per-slice``: one row per slice of every study (then the ``p_`` columns).
SLICE_COLUMNS = ["path", "slice", "status", "prediction", "tumor_probability", "confidence", "tumor_type",
                 "tumor_type_confidence", "ood_warning", "error", DISAGREE_COLUMN]
OOD_MESSAGE = "image looks unlike the brain MRI the model was trained on"
LOW_CONFIDENCE_MESSAGE = "low confidence: the answer is close to the decision threshold"
DISAGREE_MESSAGE = "the models disagree"
NO_HEAD_MESSAGE = "no head found in the image"
#: ``Result.probabilities`` key suffix of a model's type head (the detector's group has the model name).
TYPE_GROUP_SUFFIX = " type"
#: How a model wants its input: (pixel size, preprocessing name of ``gui.core.imaging.model_input``).
InputKey = tuple[int, str]


class Classifier:
    """The models used together: a tumour detector and, optionally, a tumour-type answer.

    The first binary model decides "tumour / no tumour"; with none loaded, the type model's
    ``1 - P(no tumour)`` does. The tumour type comes from the detector's own type head (a
    multi-task model) or else from a type model.
    """

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ValueError("no model loaded")
        self.models = list(models)
        binary = [m for m in self.models if m.is_binary_detector]
        typed = [m for m in self.models if not m.is_binary_detector]
        self.detector = binary[0] if binary else typed[0]
        self.typer = None if self.detector.has_type_head else (typed[0] if typed else None)
        self.input_keys: list[InputKey] = sorted({(m.input_size, m.preprocessing) for m in self.models})
        self.study_rule: study.StudyRule = self.detector.study_rule
        self._prob_columns = self._probability_columns()  # fixed for the models: not per row

    @property
    def detector_key(self) -> InputKey:
        return (self.detector.input_size, self.detector.preprocessing)

    def columns(self) -> list[str]:
        """CSV columns: the fixed ones, then ``p_<label>`` per label of each model and of a type head
        (``p_<task>_<label>`` where a label name is already taken by an earlier model)."""
        return list(CSV_COLUMNS) + [DISAGREE_COLUMN] + STUDY_COLUMNS + self.probability_columns()

    def slice_columns(self) -> list[str]:
        """``--per-slice`` CSV columns: path and slice number, the answer columns, the ``p_`` columns."""
        return SLICE_COLUMNS + self.probability_columns()

    def probability_columns(self) -> list[str]:
        return [col for _group, _label, col in self._prob_columns]

    def _probability_columns(self) -> list[tuple[str, str, str]]:
        out, taken = [], set()
        for m in self.models:
            groups = [(m.name, m.labels, m.card["task"])]
            if m.has_type_head:
                groups.append((m.name + TYPE_GROUP_SUFFIX, m.type_labels, "type"))
            for group, labels, task in groups:
                for label in labels:
                    col = f"p_{label}" if f"p_{label}" not in taken else f"p_{task}_{label}"
                    taken.add(col)
                    out.append((group, label, col))
        return out

    def fit(self, rgb: np.ndarray) -> dict[InputKey, ModelInput]:
        """A displayed frame fitted to every model's input: the one path from pixels to models."""
        return {key: model_input(rgb, *key) for key in self.input_keys}

    def classify_batch(self, inputs: Sequence[dict[InputKey, ModelInput]], paths: Sequence[str],
                       with_heat: bool = False) -> list[Result]:
        """Classify fitted images (one ``fit`` result per path)."""
        t0 = time.perf_counter()
        preds = {id(m): m.predict(np.stack([x[(m.input_size, m.preprocessing)].pixels for x in inputs])
                                  .astype(np.float32)) for m in self.models}
        per_image = (time.perf_counter() - t0) / max(len(paths), 1)
        det = preds[id(self.detector)]
        p_tumor = self.detector.tumor_probability(det.probabilities)
        results = []
        for i, path in enumerate(paths):
            r = Result(path=path, seconds=per_image)
            bad = [m.name for m in self.models if not _finite_row(preds[id(m)], i)]
            if bad:
                results.append(Result(path=path, status="error",
                                      error=f"the model returned an invalid value (NaN or infinity): {', '.join(bad)}"))
                continue
            r.tumor_probability = float(p_tumor[i])
            is_tumor = p_tumor[i] >= self.detector.threshold
            r.prediction = "tumor" if is_tumor else "no_tumor"
            r.confidence = float(p_tumor[i] if is_tumor else 1.0 - p_tumor[i])
            if is_tumor:
                r.tumor_type, r.tumor_type_confidence = self._tumor_type(preds, i)
            r.models_disagree = self._disagree(preds, i, bool(is_tumor))
            r.ood_warning = "; ".join(self._cautions(preds, i, float(p_tumor[i]), r.models_disagree,
                                                     inputs[i][self.detector_key].head_found))
            r.probabilities = {m.name: {lab: float(p) for lab, p in zip(m.labels, preds[id(m)].probabilities[i])}
                               for m in self.models}
            for m in self.models:
                if m.has_type_head:
                    r.probabilities[m.name + TYPE_GROUP_SUFFIX] = dict(zip(m.type_labels, map(float, preds[id(m)].type_probabilities[i])))
            r.geometry = inputs[i][self.detector_key].geometry
            if with_heat:
                r.heat = det.heatmap[i] if det.heatmap is not None else self.heat_for(det.cam[i], is_tumor)
            results.append(r)
        return results

    def _disagree(self, preds: dict, i: int, is_tumor: bool) -> bool:
        """Whether the answers behind this row contradict each other: the detector against the type
        model's own P(no tumour), or, for one multi-task model, against its tumour map (a location
        with P(tumour) >= 0.5 somewhere). Measured on collections the model never saw, answers
        whose heads disagree were right 37-76% of the time, against 84-99% when they agree."""
        if self.typer is not None:
            p_no = float(sum(preds[id(self.typer)].probabilities[i][self.typer.labels.index(lab)]
                             for lab in self.typer.no_tumor_labels))
            return is_tumor == (p_no >= 0.5)
        heat = preds[id(self.detector)].heatmap
        if heat is not None:
            return is_tumor != bool(heat[i].max() >= 0.5)
        return False

    def _cautions(self, preds: dict, i: int, p_tumor: float, disagree: bool, head_found: bool) -> list[str]:
        """Why this answer should not be trusted, in words: an image unlike the training images (any
        model's out-of-distribution score), P(tumour) inside the detector card's low-confidence band
        (chosen on collections the model never saw, see ``training/caution.py``), or answers that
        disagree, or an input where the brain crop found no head (blank, uniform)."""
        reasons = [] if head_found else [NO_HEAD_MESSAGE]
        if any(preds[id(m)].ood_flag[i] for m in self.models):
            reasons.append(OOD_MESSAGE)
        if abs(p_tumor - self.detector.threshold) < self.detector.caution_band:
            reasons.append(LOW_CONFIDENCE_MESSAGE)
        if disagree:
            reasons.append(DISAGREE_MESSAGE)
        return reasons

    def _tumor_type(self, preds: dict, i: int) -> tuple[str, float | None]:
        """The most likely type and P(type | tumour), from the detector's type head or the type model."""
        if self.detector.has_type_head:
            probs = preds[id(self.detector)].type_probabilities[i]
            k = int(np.argmax(probs))
            return self.detector.type_labels[k], float(probs[k] / max(float(probs.sum()), 1e-12))
        if self.typer is None:
            return "", None
        probs = preds[id(self.typer)].probabilities[i]
        tumour_labels = [k for k, lab in enumerate(self.typer.labels) if lab not in self.typer.no_tumor_labels]
        k = max(tumour_labels, key=lambda j: probs[j])
        total = float(sum(probs[j] for j in tumour_labels))
        return self.typer.labels[k], (float(probs[k] / total) if total > 0 else None)

    def heat_for(self, cam: np.ndarray, is_tumor: bool) -> np.ndarray:
        """The map of the evidence for the detector's answer (tumour classes summed when it says
        tumour, the no-tumour class otherwise), scaled to 0..1."""
        labels = self.detector.labels
        no = [k for k, lab in enumerate(labels) if lab in self.detector.no_tumor_labels]
        yes = [k for k in range(len(labels)) if k not in no]
        return normalise_cam(cam[..., yes if is_tumor else no].sum(axis=-1))

    def classify_image(self, rgb: np.ndarray, path: str = "", with_heat: bool = True) -> Result:
        """One displayed image (``uint8 [H, W, 3]``) -> result with heatmap."""
        t0 = time.perf_counter()
        r = self.classify_batch([self.fit(rgb)], [path], with_heat=with_heat)[0]
        r.seconds = time.perf_counter() - t0
        return r

    def row(self, r: Result) -> dict[str, str]:
        """One CSV row; numbers with 6 decimals, empty cells for an error row; text cells made safe
        for spreadsheets (:func:`csv_safe`)."""
        def num(v: float | None) -> str:
            return "" if v is None else f"{v:.6f}"

        row = {"path": csv_safe(display_path(r.path)), "status": r.status, "prediction": r.prediction,
               "tumor_probability": num(r.tumor_probability), "confidence": num(r.confidence),
               "tumor_type": r.tumor_type, "tumor_type_confidence": num(r.tumor_type_confidence),
               "ood_warning": r.ood_warning, "error": csv_safe(display_path(r.error)),
               DISAGREE_COLUMN: "" if r.models_disagree is None else ("yes" if r.models_disagree else "no"),
               "n_slices": "" if r.n_slices is None else str(r.n_slices),
               "max_slice": "" if r.max_slice is None else str(r.max_slice), "tumor_slices": r.tumor_slices}
        for group, label, col in self._prob_columns:
            row[col] = num(r.probabilities.get(group, {}).get(label))
        return row


    def slice_row(self, study_path: str, r: Result) -> dict[str, str]:
        """One ``--per-slice`` row: a slice's own answer under its study's path."""
        row = self.row(r)
        row["path"] = csv_safe(display_path(study_path))
        row["slice"] = "" if r.slice is None else str(r.slice)
        return {k: row[k] for k in self.slice_columns()}


def _finite_row(pred, i: int) -> bool:
    arrays = [pred.probabilities[i]] + [a[i] for a in (pred.type_probabilities, pred.heatmap) if a is not None]
    return all(bool(np.isfinite(a).all()) for a in arrays)


def display_path(text: str) -> str:
    """A file name as text that can be written anywhere: bytes that are not UTF-8 (kept by Python
    as surrogate escapes) are shown as ``\\xff`` instead of breaking the CSV or the log."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: str) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with ``'`` (OWASP's advice)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


# ---------------------------------------------------------------- files


def collect_files(paths: Iterable[str | Path], recursive: bool = False) -> Iterator[Path | DicomSeries]:
    """Files to classify, in a stable order: named files as given, folders scanned (sorted), the
    single-frame DICOM files of one series in a scanned folder gathered into one
    :class:`~gui.core.imaging.DicomSeries` (one study, one row).

    A folder scan keeps the files that :func:`gui.core.imaging.is_image_file` accepts by their first
    bytes, and yields anything it cannot look into (a sub-folder without permission, a FIFO or
    other special file) so that the reader turns it into an error row with the reason. Symbolic
    links to folders are not followed (a link loop cannot trap the scan).
    """
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            yield p
            continue
        if recursive:
            unreadable: list[Path] = []
            for root, dirs, files in os.walk(p, followlinks=False, onerror=lambda e: unreadable.append(Path(e.filename))):
                yield from _sorted_drain(unreadable)
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                yield from _folder_items([f for name in sorted(files) for f in _scan_entry(Path(root) / name)])
            yield from _sorted_drain(unreadable)
        else:
            try:
                entries = sorted(p.iterdir())
            except OSError:
                yield p  # reported as an error row by the reader ("a folder that cannot be read")
                continue
            yield from _folder_items([f for f in entries if not f.is_dir() for f in _scan_entry(f)])


def _folder_items(files: list[Path]) -> list[Path | DicomSeries]:
    """One folder's files, with the slices of each DICOM series gathered into one study."""
    return group_dicom_series(files) if len(files) > 1 else files


def _sorted_drain(found: list[Path]) -> Iterator[Path]:
    yield from sorted(found)
    found.clear()


def _scan_entry(path: Path) -> Iterator[Path]:
    """A folder entry to classify: an image file by content, or a special file (reported, never opened)."""
    if path.name.startswith("."):
        return
    try:
        regular = path.is_file()
        special = not regular and not path.is_dir() and path.exists()
    except OSError:
        regular, special = False, True
    if special or (regular and is_image_file(path)):
        yield path


def has_subfolders(paths: Iterable[str | Path]) -> bool:
    """Whether any named folder has sub-folders (a hint to use ``--recursive`` when none had images)."""
    for p in map(Path, paths):
        try:
            if p.is_dir() and any(c.is_dir() and not c.name.startswith(".") for c in p.iterdir()):
                return True
        except OSError:
            continue
    return False


# ---------------------------------------------------------------- streaming batch


def decode_for_model(path: Path, classifier: Classifier, keep_frame: bool = False) -> tuple[np.ndarray | None, dict]:
    """Read a file and fit it to every model's input (the same path as the window's)."""
    rgb = read_image(path)
    return (rgb if keep_frame else None), classifier.fit(rgb)


def decode_slice(scan: Scan, k: int, classifier: Classifier, keep_frame: bool = False) -> tuple[np.ndarray | None, dict]:
    """One slice of an open study fitted to every model's input (the same path as a single image)."""
    rgb = scan.frame(k)
    return (rgb if keep_frame else None), classifier.fit(rgb)


Item = Path | DicomSeries | Scan


@dataclass
class _Study:
    """A study being scored: its slices' answers arrive batch by batch, in slice order."""

    path: str
    scan: Scan
    slices: list[Result] = field(default_factory=list)


@dataclass
class _Unit:
    """One image to decode and classify: a whole file (``study`` None) or slice ``k`` of a study."""

    path: str
    future: Future
    study: _Study | None = None
    k: int = 0


def is_study_file(path: Path) -> bool:
    """Whether a file is judged as a study, from its first bytes (and a DICOM's header): a NIfTI
    volume (any, even of one slice) or a multi-frame DICOM. Unreadable files are not: the reader
    reports them as single files."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # never open a FIFO or device here: it could block
            return False
        with path.open("rb") as fh:
            kind = sniff_format(fh.read(544))
        if kind in ("NIfTI", "GZIP"):
            return True
        if kind == "DICOM":
            import pydicom

            header = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["NumberOfFrames"])
            return int(header.get("NumberOfFrames", 1) or 1) > 1
    except Exception:  # any read or header failure: the file goes the single-image way and is reported there
        return False
    return False


def _failed(exc: BaseException) -> Future:
    fut: Future = Future()
    fut.set_exception(exc)
    return fut


def _units(items: Iterable[Item], classifier: Classifier, pool: ThreadPoolExecutor, keep_frames: bool) -> Iterator[_Unit]:
    """Every image to classify, in order: single files decode in the pool; a study is opened here
    (its header and, for a .nii.gz, its first volume) and its slices decode in the pool one by one."""
    for item in items:
        path = item.path if isinstance(item, (DicomSeries, Scan)) else item
        if isinstance(item, Path) and not is_study_file(item):
            yield _Unit(str(path), pool.submit(decode_for_model, item, classifier, keep_frames))
            continue
        try:
            scan = item if isinstance(item, Scan) else open_item(item)
        except Exception as exc:  # reported as this item's error row
            yield _Unit(str(path), _failed(exc))
            continue
        st = _Study(str(path), scan)
        for k in range(scan.n_frames):
            yield _Unit(str(path), pool.submit(decode_slice, scan, k, classifier, False), st, k)


def classify_files(
    files: Iterable[Item],
    classifier: Classifier,
    batch_size: int = 16,
    decode_threads: int = 1,
    with_heat: bool = False,
    keep_frames: bool = False,
    should_cancel: Callable[[], bool] | None = None,
    on_slices: Callable[[str, list[Result]], None] | None = None,
) -> Iterator[Result]:
    """Stream a result per file or study, in input order.

    Decoding runs in a thread pool one batch ahead of inference (Pillow and ONNX Runtime
    release the GIL) and images go to the models in batches. Measured on 2 cores with the
    bundled pair on 224x224 JPEGs: batches of 16 are fastest (140 images/s; 8: 129, 32: 131)
    and keep the peak memory at ~510 MB (32: 930 MB, ONNX Runtime's arena grows with the
    batch); one decode thread beats decoding inline by ~4%, more only compete with inference.

    A study's slices go through the same batches as single images (a batch may hold slices of
    two studies and single files), so a slice costs what the same image would cost as its own
    file; the study's row comes after its last slice (:func:`gui.core.study.summarise`), and
    ``on_slices(path, results)`` sees each batch's slice answers as they come (the window's strip).
    Slices keep no frames, so a 1,000-slice study takes the memory of its answers only.
    Stops early, between batches, when ``should_cancel()`` turns true (a study cut short gives
    no row). ``keep_frames`` attaches each decoded frame to its result (a study: its key slice's)
    for heatmap export without decoding the file again.
    """
    pending: deque[list[_Unit]] = deque()
    pool = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode")
    units = _units(files, classifier, pool, keep_frames)

    def submit() -> None:
        chunk = [u for _i, u in zip(range(batch_size), units)]
        if chunk:
            pending.append(chunk)

    try:
        submit()
        submit()  # keep one batch decoding ahead
        while pending:
            if should_cancel is not None and should_cancel():
                return
            chunk = pending.popleft()
            submit()
            answers = _run_chunk(chunk, classifier, with_heat)
            fresh: dict[int, tuple[_Study, list[Result]]] = {}
            for unit, r in zip(chunk, answers):
                if unit.study is not None:
                    r.slice, r.frame = unit.k, None
                    unit.study.slices.append(r)
                    fresh.setdefault(id(unit.study), (unit.study, []))[1].append(r)
            if on_slices is not None:
                for st, scored in fresh.values():
                    on_slices(st.path, scored)
            for unit, r in zip(chunk, answers):
                if unit.study is None:
                    yield r
                elif unit.k == unit.study.scan.n_frames - 1:
                    yield _finish_study(unit.study, classifier, keep_frames)
    finally:
        # Cancel and do not wait: an interrupted run must not sit behind a decode in flight.
        pool.shutdown(wait=False, cancel_futures=True)


def _finish_study(st: _Study, classifier: Classifier, keep_frame: bool) -> Result:
    r = study.summarise(st.path, st.slices, classifier.study_rule, st.scan.notes)
    if keep_frame and r.ok and r.max_slice is not None:
        try:
            r.frame = st.scan.frame(r.max_slice)
        except ImageReadError:
            pass  # no frame: the heatmap file is skipped, the row stays
    return r


def _run_chunk(chunk: list[_Unit], classifier: Classifier, with_heat: bool) -> list[Result]:
    """The chunk's answers, in order: error rows for what could not be read, the rest in one batch."""
    ok, out = [], {}
    for i, unit in enumerate(chunk):
        try:
            frame, fitted = unit.future.result()
        except ImageReadError as exc:
            out[i] = Result(path=unit.path, status="error", error=exc.reason)
            continue
        except MemoryError:
            out[i] = Result(path=unit.path, status="error", error="the image is too large to fit in memory")
            continue
        except Exception as exc:  # the reader's contract says this cannot happen; never lose the batch
            out[i] = Result(path=unit.path, status="error", error=f"unexpected error: {type(exc).__name__}: {exc}")
            continue
        ok.append((i, unit.path, frame, fitted))
    if ok:
        try:
            results = classifier.classify_batch([f for *_x, f in ok], [p for _i, p, *_y in ok],
                                                with_heat=with_heat or any(chunk[i].study is not None for i, *_z in ok))
        except Exception as exc:  # an inference failure marks the batch's files, the stream goes on
            results = [Result(path=p, status="error", error=f"inference failed: {exc}") for _i, p, *_y in ok]
        for (i, _p, frame, _f), r in zip(ok, results):
            r.frame = frame
            out[i] = r
    return [out[i] for i in range(len(chunk))]


# ---------------------------------------------------------------- CSV


class CsvExistsError(FileExistsError):
    pass


TMP_SUFFIX = ".mri-classifier.tmp"


class AtomicCsv:
    """A CSV written through a hidden temporary file beside the target, published at the end.

    * Opened before any work, so a folder that cannot be written fails at once.
    * Publishing never replaces a file that appeared meanwhile unless ``force`` (``os.link`` fails
      when the name exists, with no window between check and write); the rows then go to a new
      name (``NAME-1.csv``...), which :attr:`written_to` reports.
    * ``partial=True`` (an interrupted run) never replaces an existing file, even with ``force``.
    * Temporary files of ours whose process is gone (killed by SIGKILL) are removed on the next run.
    """

    def __init__(self, path: str | Path, columns: Sequence[str], force: bool = False) -> None:
        self.path = Path(path)
        self.force = force
        if self.path.exists() and not force:
            raise CsvExistsError(f"{self.path} exists (use --force to replace it)")
        remove_stale_temporaries(self.path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}{TMP_SUFFIX}")
        self.rows = 0
        self.written_to: Path | None = None
        self._fh = self.tmp.open("x", newline="", encoding="utf-8")
        try:
            self._writer = csv.DictWriter(self._fh, fieldnames=list(columns))
            self._writer.writeheader()
            self._fh.flush()
        except BaseException:
            self.discard()
            raise

    def write(self, row: dict[str, str]) -> None:
        self._writer.writerow(row)
        self.rows += 1

    def publish(self, partial: bool = False) -> Path:
        """Move the rows into place; returns where they went."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        if self.force and not partial:
            os.replace(self.tmp, self.path)
            self.written_to = self.path
            return self.path
        for k in range(0, 1000):
            target = self.path if k == 0 else self.path.with_name(f"{self.path.stem}-{k}{self.path.suffix}")
            if _publish_new(self.tmp, target):
                self.written_to = target
                return target
        raise CsvExistsError(f"no free name for {self.path}")

    def discard(self) -> None:
        """Close and remove the temporary file (nothing to do once the rows are published)."""
        if not self._fh.closed:
            self._fh.close()
        if self.written_to is None:
            self.tmp.unlink(missing_ok=True)


def _publish_new(tmp: Path, target: Path) -> bool:
    """Give ``tmp`` the name ``target`` only if nothing has it; False when taken."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: exclusive create, then copy
        try:
            with target.open("xb") as dst, tmp.open("rb") as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        except FileExistsError:
            return False
    tmp.unlink()
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Delete ``.NAME.<pid>.mri-classifier.tmp`` files beside ``path`` whose process is not running."""
    try:
        candidates = list(path.parent.glob(f".{path.name}.*{TMP_SUFFIX}"))
    except OSError:
        return
    for tmp in candidates:
        pid = tmp.name[len(path.name) + 2:-len(TMP_SUFFIX)]
        if pid.isdigit() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def write_csv_atomic(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, str]], force: bool = False) -> int:
    """Write all ``rows`` through :class:`AtomicCsv`; returns the number of rows."""
    out = AtomicCsv(path, columns, force)
    try:
        for row in rows:
            out.write(row)
    except BaseException:
        out.discard()
        raise
    out.publish()
    return out.rows
