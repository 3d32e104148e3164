"""Files to answers: folder discovery, and the decode-ahead batches that stream a result per file or study.

No Qt: progress and cancellation are plain callables (Orange-style), results stream out one by
one so memory stays flat however many files there are, and every file that cannot be read
becomes an error row with the reader's reason while the batch goes on.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple

import numpy as np

from gui.core.engine import study
from gui.core.engine.classifier import Classifier
from gui.core.readers import (
    IMAGE_SUFFIXES,
    DicomSeries,
    ImageReadError,
    Scan,
    group_dicom_series,
    is_image_file,
    is_study_file,
    open_item,
    open_scan,
)
from gui.core.engine.result import Result
from gui.core.engine.layout import EngineSettings, rule

# ---------------------------------------------------------------- files


def collect_files(paths: Iterable[str | Path], recursive: bool = False) -> Iterator[Path | DicomSeries]:
    """Files to classify, in a stable order: named files as given, folders scanned (sorted), the
    single-frame DICOM files of one series in a scanned folder gathered into one
    :class:`~gui.core.readers.DicomSeries` (one study, one row).

    A folder scan keeps the files that :func:`gui.core.readers.is_image_file` accepts by their first
    bytes, and yields anything it cannot look into (a sub-folder without permission, a FIFO or
    other special file) so that the reader turns it into an error row with the reason. Symbolic
    links to folders are not followed (a link loop cannot trap the scan).
    """
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            yield p
        elif recursive:
            yield from _walk(p)
        else:
            try:
                entries = sorted(p.iterdir())
            except OSError:
                yield p  # reported as an error row by the reader ("a folder that cannot be read")
                continue
            yield from _folder_items([f for f in entries if not f.is_dir() for f in _scan_entry(f)])


def _walk(top: Path) -> Iterator[Path | DicomSeries]:
    """A folder and its sub-folders, depth first in sorted order (a folder's files before its
    sub-folders), with an explicit stack: a folder nested thousands deep cannot exhaust Python's
    recursion limit (``os.walk`` recurses on Python 3.11). A sub-folder that cannot be listed is
    yielded itself, for the reader to report; links to folders are not followed."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            yield folder
            continue
        subfolders, files = [], []
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            (subfolders if is_dir else files).append(e.name)
        yield from _folder_items([f for name in files for f in _scan_entry(folder / name)])
        stack.extend(folder / d for d in reversed(subfolders) if not d.startswith("."))


def _folder_items(files: list[Path]) -> list[Path | DicomSeries]:
    """One folder's files, with the slices of each DICOM series gathered into one study."""
    return group_dicom_series(files) if len(files) > 1 else files


def _scan_entry(path: Path) -> Iterator[Path]:
    """A folder entry to classify: an image file by content, a special file, or a broken symbolic
    link named like an image (dangling or a loop): the last two are reported, never opened."""
    if path.name.startswith("."):
        return
    try:
        regular = path.is_file()
        special = not regular and not path.is_dir() and path.exists()
        broken_link = path.is_symlink() and not path.exists() and path.name.lower().endswith(IMAGE_SUFFIXES)
    except OSError:
        regular, special, broken_link = False, True, False
    if special or broken_link or (regular and is_image_file(path)):
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


class Decoded(NamedTuple):
    """A decoded image ready for the models: its displayed frame (heatmap export only), its inputs
    fitted to every model, and the sequence its file's tags name."""

    frame: np.ndarray | None
    fitted: dict
    sequence: str


def decode_slice(scan: Scan, k: int | None, classifier: Classifier, keep_frame: bool = False) -> Decoded:
    """A frame's model image fitted to every model's input (the window's path: ``Scan.model_view``,
    a large JPEG decoded reduced), with its displayed frame when ``keep_frame`` (heatmap export)."""
    plane = scan.plane(k) if keep_frame else None
    image, scale = scan.model_view(k, classifier.need, in_hand=plane)
    return Decoded(scan.display(plane) if keep_frame else None, classifier.fit(image, scale), scan.sequence)


def decode_file(path: Path, classifier: Classifier, keep_frame: bool = False) -> Decoded:
    """Open a single-image file and fit its default frame (see :func:`decode_slice`)."""
    return decode_slice(open_scan(path), None, classifier, keep_frame)


Item = Path | DicomSeries | Scan

#: Names of the engine's threads (``decode_0``, ``infer_1``...): how a thread dump or a test tells them apart.
DECODE_THREADS, INFERENCE_THREADS = "decode", "infer"


@dataclass
class _Study:
    """A study being scored: its slices' answers arrive batch by batch, in slice order."""

    path: str
    scan: Scan
    series: DicomSeries | None = None
    slices: list[Result] = field(default_factory=list)


@dataclass
class _Unit:
    """One image to decode and classify: a whole file (``study`` None) or slice ``k`` of a study."""

    path: str
    future: Future | _Deferred
    study: _Study | None = None
    k: int = 0


class _Deferred:
    """A decode that runs where its answer is first asked for: in the inference worker that runs its batch."""

    def __init__(self, fn: Callable, args: tuple) -> None:
        self._call: tuple[Callable, tuple] | None = (fn, args)
        self._value = self._error = None

    def result(self):
        if self._call is not None:
            fn, args = self._call
            self._call = None
            try:
                self._value = fn(*args)
            except BaseException as exc:  # raised again to each caller, as a Future would
                self._error = exc
        if self._error is not None:
            raise self._error
        return self._value


class InWorker:
    """The decode "pool" of a layout with no decode thread (``decode_threads`` 0): each image is decoded
    by the inference worker that runs its batch, just before the batch, so no third thread competes
    with the workers for the cores. A unit belongs to one batch, run by one worker: no lock is needed."""

    def submit(self, fn: Callable, *args) -> _Deferred:
        return _Deferred(fn, args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Nothing runs here between batches: nothing to wait for or cancel."""


def _failed(exc: BaseException) -> Future:
    fut: Future = Future()
    fut.set_exception(exc)
    return fut


def _units(items: Iterable[Item], classifier: Classifier, pool: ThreadPoolExecutor | InWorker, keep_frames: bool) -> Iterator[_Unit]:
    """Every image to classify, in order: single files decode in the pool; a study is opened here
    (its header and, for a .nii.gz, its first volume) and its slices decode in the pool one by one."""
    for item in items:
        path = item.path if isinstance(item, (DicomSeries, Scan)) else item
        if isinstance(item, Path) and not is_study_file(item):
            yield _Unit(str(path), pool.submit(decode_file, item, classifier, keep_frames))
            continue
        try:
            scan = item if isinstance(item, Scan) else open_item(item)
        except Exception as exc:  # reported as this item's error row
            yield _Unit(str(path), _failed(exc))
            continue
        st = _Study(str(path), scan, item if isinstance(item, DicomSeries) else None)
        for k in range(scan.n_frames):
            yield _Unit(str(path), pool.submit(decode_slice, scan, k, classifier, False), st, k)


def classify_files(
    files: Iterable[Item],
    classifier: Classifier,
    engine: EngineSettings | None = None,
    with_heat: bool = False,
    keep_frames: bool = False,
    should_cancel: Callable[[], bool] | None = None,
    on_slices: Callable[[str, list[Result]], None] | None = None,
) -> Iterator[Result]:
    """Stream a result per file or study, in input order.

    ``engine`` lays the work on the cores (:mod:`gui.core.engine.layout`; default: the rule from the core
    count): images decode in ``decode_threads`` threads, batches ahead of inference (0: each batch is
    decoded by its inference worker, :class:`InWorker`), while ``inference_workers`` batches run at
    once (Pillow, numpy and ONNX Runtime release the GIL).
    Every layout gives the same answers; only the speed differs.

    A study's slices go through the same batches as single images (a batch may hold slices of
    two studies and single files), so a slice costs what the same image would cost as its own
    file; the study's row comes after its last slice (:func:`gui.core.engine.study.summarise`), and
    ``on_slices(path, results)`` sees each batch's slice answers as they come (the window's strip).
    Slices keep no frames, so a 1,000-slice study takes the memory of its answers only.
    Stops early, between batches, when ``should_cancel()`` turns true (a study cut short gives
    no row), once the batches already running have ended: no engine thread outlives the stream.
    ``keep_frames`` attaches each decoded frame to its result (a study: its key slice's) for heatmap
    export without decoding the file again.
    """
    engine = engine or rule()
    classifier.prepare_sessions(engine.inference_threads)
    pending: deque[tuple[list[_Unit], Future]] = deque()
    decode = (ThreadPoolExecutor(max_workers=engine.decode_threads, thread_name_prefix=DECODE_THREADS)
              if engine.decode_threads else InWorker())
    infer = ThreadPoolExecutor(max_workers=engine.inference_workers, thread_name_prefix=INFERENCE_THREADS)
    units = _units(files, classifier, decode, keep_frames)

    def submit() -> None:
        chunk = [u for _i, u in zip(range(engine.batch), units)]
        if chunk:
            pending.append((chunk, infer.submit(_run_chunk, chunk, classifier, with_heat, engine.inference_threads)))

    interrupted = True
    try:
        for _k in range(engine.inference_workers + 1):  # every worker busy, and one batch decoding ahead
            submit()
        while pending:
            if should_cancel is not None and should_cancel():
                break
            chunk, answered = pending.popleft()
            answers = answered.result()
            submit()
            fresh: dict[int, tuple[_Study, list[Result]]] = {}
            answers = [replace(r, slice=unit.k, frame=None) if unit.study is not None else r
                       for unit, r in zip(chunk, answers)]
            for unit, r in zip(chunk, answers):
                if unit.study is not None:
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
        interrupted = False
    finally:
        # Work not started is dropped. The end and a cancel wait for the batches in flight (at most one
        # per worker), so no engine thread outlives the call: a window closed after a cancel finds its
        # workers done. An exception (Ctrl-C, or the consumer dropping the stream) does not wait
        # behind a decode or a batch in flight.
        decode.shutdown(wait=False, cancel_futures=True)
        infer.shutdown(wait=not interrupted, cancel_futures=True)
        if not interrupted:
            decode.shutdown()  # its running decodes ended with the batches that waited on them


def _finish_study(st: _Study, classifier: Classifier, keep_frame: bool) -> Result:
    r = study.summarise(st.path, st.slices, classifier.study_rule, st.scan.notes,
                        st.scan.info.get("series description", ""), st.scan.sequence)
    if st.series is not None:
        r = replace(r, series=st.series, levels=st.scan.known_levels)
    if keep_frame and r.ok and r.max_slice is not None:
        try:
            r = replace(r, frame=st.scan.frame(r.max_slice))
        except ImageReadError:
            pass  # no frame: the heatmap file is skipped, the row stays
    return r


def _run_chunk(chunk: list[_Unit], classifier: Classifier, with_heat: bool, threads: int | None) -> list[Result]:
    """The chunk's answers, in order: error rows for what could not be read, the rest in one batch on
    sessions of ``threads`` intra-op threads. Runs in an inference worker."""
    ok, out = [], {}
    for i, unit in enumerate(chunk):
        try:
            frame, fitted, sequence = unit.future.result()
        except ImageReadError as exc:
            out[i] = Result(path=unit.path, status="error", error=exc.reason)
            continue
        except MemoryError:
            out[i] = Result(path=unit.path, status="error", error="the image is too large to fit in memory")
            continue
        except Exception as exc:  # the reader's contract says this cannot happen; never lose the batch
            out[i] = Result(path=unit.path, status="error", error=f"unexpected error: {type(exc).__name__}: {exc}")
            continue
        ok.append((i, unit.path, frame, fitted, sequence))
    if ok:
        try:
            results = classifier.classify_batch([f for _i, _p, _fr, f, _s in ok], [p for _i, p, *_y in ok],
                                                with_heat=with_heat or any(chunk[i].study is not None for i, *_z in ok),
                                                threads=threads)
        except Exception as exc:  # an inference failure marks the batch's files, the stream goes on
            results = [Result(path=p, status="error", error=f"inference failed: {exc}") for _i, p, *_y in ok]
        for (i, _p, frame, _f, sequence), r in zip(ok, results):
            out[i] = replace(classifier.with_sequence(r, sequence), frame=frame)
    return [out[i] for i in range(len(chunk))]
