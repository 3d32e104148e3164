"""The window's work, as plain functions of a task :class:`~gui.app.tasks.Context`: open a file, score a study, classify a batch, export it, write a report.

The compute is the core's (``gui.core.engine``, ``gui.core.records``); these functions only put its
pieces in the order the window needs, report progress and stop between batches when cancelled. They
run in the task runner's lanes (``gui.app.tasks``), which brings their answers and errors back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gui.app.tasks import Context
from gui.core.engine import stream, tuning
from gui.core.engine.classifier import Classifier
from gui.core.engine.pictures import result_frame
from gui.core.engine.result import Result
from gui.core.names import display_path
from gui.core.readers import ImageReadError, Plane, Scan, open_study
from gui.core.records import csvout
from gui.core.records.heatmaps import overlay_label, save_overlay_png


@dataclass(frozen=True)
class Opened:
    """A file or slice read and answered: the scan, the plane as stored, its display and the answer."""

    scan: Scan
    plane: Plane
    rgb: np.ndarray
    result: Result


def open_work(classifier: Classifier, path: Path, frame: int | None, scan: Scan | None, cached: Result | None,
              _ctx: Context) -> Opened:
    """Open a file (or one frame of the shown scan) and answer for its model image; with ``cached`` (a
    slice the study has scored already) only decode the frame, so moving through slices needs no inference."""
    scan = scan or open_study(path)
    plane = scan.plane(frame)
    rgb = scan.display(plane)
    if cached is not None:
        return Opened(scan, plane, rgb, cached)
    image, scale = scan.model_view(frame, classifier.need, in_hand=plane)
    result = classifier.with_sequence(classifier.classify_image(image, str(path), scale=scale), scan.sequence)
    return Opened(scan, plane, rgb, result)


def study_work(classifier: Classifier, scan: Scan, ctx: Context) -> Result | None:
    """Score every slice of a study with the engine's batches; each batch of slice answers is reported
    (the strip fills batch by batch); None when cancelled before the end."""
    for r in stream.classify_files([scan], classifier, tuning.engine_settings(classifier),
                                   should_cancel=ctx.cancelled, on_slices=lambda _p, rs: ctx.report(list(rs))):
        return r
    return None


def batch_work(classifier: Classifier, paths: list[Path], recursive: bool, ctx: Context) -> bool:
    """Classify a folder (or files) with the engine; reports ``("started", n)``, ``("note", text)``,
    ``("results", [Result])`` batch by batch (not one message per file) and ``("progress", (done,
    total, seconds))``. Returns whether it was cancelled."""
    files = list(stream.collect_files(paths, recursive=recursive))
    ctx.report(("started", len(files)))
    # A first long batch on this machine times the engine's layouts once (a few seconds), said on screen.
    engine = tuning.engine_settings(classifier, len(files), lambda msg: ctx.report(("note", msg.capitalize() + "…")))
    t0 = time.perf_counter()
    pending, done, last_emit = [], 0, 0.0
    for r in stream.classify_files(files, classifier, engine, with_heat=True, should_cancel=ctx.cancelled):
        pending.append(r)
        done += 1
        now = time.perf_counter()
        if now - last_emit > 0.1 or done == len(files):
            ctx.report(("results", pending))
            ctx.report(("progress", (done, len(files), now - t0)))
            pending, last_emit = [], now
    if pending:
        ctx.report(("results", pending))
        ctx.report(("progress", (done, len(files), time.perf_counter() - t0)))
    return ctx.cancelled()


@dataclass(frozen=True)
class Exported:
    """What an export did, in words; ``ok`` False when some of it failed (the CSV, or heatmaps)."""

    ok: bool
    message: str


def export_work(classifier: Classifier, results: list[Result], csv_path: Path, heatmap_dir: Path | None,
                _ctx: Context) -> Exported:
    """The heatmaps first, so each row can name its PNG (failures named per file; an unreadable scan is
    counted and named, as the CLI's error rows do); then the CSV, published whole."""
    written, unreadable, failed, pictures = 0, [], [], {}
    if heatmap_dir is not None:
        written, unreadable, failed, pictures = _heatmaps(results, heatmap_dir)
    try:
        # The save dialog has already asked before replacing an existing file.
        csvout.write_csv_atomic(csv_path, csvout.columns(classifier),
                                (csvout.row(classifier, r, pictures.get(id(r))) for r in results), force=True)
    except OSError as exc:
        return Exported(False, f"Could not write the CSV {display_path(str(csv_path))}: {exc.strerror or exc}")
    message = f"Exported {len(results)} rows to {display_path(str(csv_path))}"
    if heatmap_dir is not None:
        message += f"; {written} heatmaps to {display_path(str(heatmap_dir))}"
        if unreadable:
            message += (f"; {len(unreadable)} not drawn, the scan can no longer be read: "
                        + ", ".join(display_path(Path(p).name) for p in unreadable[:3]) + ("…" if len(unreadable) > 3 else ""))
        if failed:
            return Exported(False, message + f". Heatmaps could not be written: {failed[0]}"
                            + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))
    return Exported(True, message)


def _heatmaps(results: list[Result], heatmap_dir: Path) -> tuple[int, list[str], list[str], dict[int, Path]]:
    """Heatmap PNGs of the rows that have a map: (written, unreadable scans, other failures in words,
    the PNG of each result by ``id``)."""
    written, unreadable, failed, pictures = 0, [], [], {}
    try:
        heatmap_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return 0, [], [f"{display_path(str(heatmap_dir))}: {exc.strerror or exc}"], {}
    for r in results:
        if not (r.ok and r.heat is not None):
            continue
        try:  # the batch keeps heat maps, not frames (memory): decode the scan again
            pictures[id(r)] = save_overlay_png(overlay_label(r.path, r.max_slice), result_frame(r), r.heat,
                                               r.geometry, heatmap_dir)
            written += 1
        except ImageReadError:
            unreadable.append(r.path)  # the file changed or vanished since it was classified
        except Exception as exc:  # a full disk, no permission, out of memory: named, the rest go on
            failed.append(f"{display_path(Path(r.path).name)}: {getattr(exc, 'strerror', None) or exc}")
    return written, unreadable, failed, pictures
