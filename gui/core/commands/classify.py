"""The headless command, ``mri-classifier classify``: classify files offline into a CSV (no Qt).

Exit codes of ``classify``: 0 every file classified, 1 some files failed, 2 bad arguments
(or no usable model), 130 interrupted (the rows finished so far are written).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

from gui.core.commands.common import (
    Stop, UsageError, add_precision_argument, check_not_an_input, check_targets, note, stop_signals, terminal_progress,
)
from gui.core.engine import stream, tuning
from gui.core.engine.classifier import Classifier
from gui.core.engine.layout import EngineSettings
from gui.core.engine.model import ModelContractError
from gui.core.engine.modelset import load_models, model_files
from gui.core.names import display_path
from gui.core.records import archive, csvout
from gui.core.records.heatmaps import write_heatmap
from gui.core.records.journal import Journal, OtherModelsError, describe, identity, journal_path, models_identity
from gui.core.records.logs import attach_log_file, log

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mri-classifier classify",
        description="Classify brain MRI files offline; one CSV row per file, or per study: a NIfTI volume, a "
                    "multi-frame DICOM or a DICOM series in a folder, every slice scored. Research use only. "
                    "Not for diagnosis.",
    )
    p.add_argument("paths", nargs="+", help="image files and/or folders")
    p.add_argument("--csv", required=True, help="CSV file to write (refuses to replace one without --force)")
    p.add_argument("--recursive", "-r", action="store_true", help="also scan sub-folders")
    p.add_argument("--heatmaps", metavar="DIR", help="also write a heatmap overlay PNG per classified file into DIR "
                                                     "(for a study: of its most suspicious slice)")
    p.add_argument("--per-slice", metavar="FILE", help="also write one row per slice of every study into this CSV")
    p.add_argument("--model", action="append", metavar="FILE", help="ONNX model to use instead of the bundled ones (repeatable)")
    add_precision_argument(p)
    p.add_argument("--force", action="store_true", help="replace an existing CSV")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run into the same --csv: rows of unchanged files (path, size, "
                        "modification time) are taken from its journal, the rest classified")
    p.add_argument("--shard", metavar="K/N", help="classify only shard K of N (an array job): a stable hash of each "
                                                  "path relative to the folder given; a study's files stay together")
    p.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    return p


def classify_main(argv: list[str]) -> int:
    """``classify``: argument and target checks, then the stream of rows into the CSV."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    with stop_signals() as stop:  # a polite kill writes the finished rows too; a second Ctrl-C changes nothing
        try:
            return _classify(args, stop)
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted before any file was classified: no CSV written", file=sys.stderr)
            return 130


def _classify(args, stop: Stop) -> int:
    out = Path(args.csv)
    heat_dir = Path(args.heatmaps) if args.heatmaps else None
    per_slice = Path(args.per_slice) if args.per_slice else None
    try:
        shard = archive.parse_shard(args.shard) if args.shard else None
    except ValueError:
        raise UsageError(f"--shard {args.shard}: give K/N with 1 <= K <= N, such as 2/4") from None
    resuming = args.resume and journal_path(out).exists()
    check_targets(out, heat_dir, args.force or resuming)
    if per_slice is not None:
        check_targets(per_slice, None, args.force, "--per-slice")
        if per_slice.resolve() == out.resolve():
            raise UsageError("--per-slice must name another file than --csv")
    missing = [p for p in args.paths if not Path(p).exists() and not Path(p).is_symlink()]
    if missing and len(missing) == len(args.paths):
        raise UsageError(f"nothing to classify: {', '.join(map(display_path, missing))} not found")
    try:
        # A layout kept for this machine says how many threads a batch session gets: one session, not two.
        paths = [str(f) for f in model_files(args.model, args.precision, note)]
        kept = tuning.kept(paths)
        classifier = Classifier(load_models(paths, kept.inference_threads if kept else None))
    except ModelContractError as exc:
        raise UsageError(f"cannot use model {exc}") from exc
    files = list(stream.collect_files(args.paths, recursive=args.recursive))
    if shard is not None:
        roots = [Path(p) for p in args.paths if Path(p).is_dir()]
        files = [f for f in files if archive.shard_of(f, roots, shard[1]) == shard[0]]
    if not files and shard is not None:
        raise UsageError(f"shard {args.shard} holds no files of {', '.join(args.paths)}")
    if not files:
        hint = "; sub-folders were not searched: add --recursive" if not args.recursive and \
            stream.has_subfolders(args.paths) else ""
        raise UsageError(f"no image files found in {', '.join(args.paths)}{hint}")
    check_not_an_input(out, args.paths, files)
    if per_slice is not None:
        check_not_an_input(per_slice, args.paths, files)
    if heat_dir is not None:
        try:
            heat_dir.mkdir(parents=True, exist_ok=True)
            probe = heat_dir / f".write-test-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise UsageError(f"cannot write heatmaps into {heat_dir} ({exc.strerror or exc})") from exc
    journal = Journal(out, csvout.columns(classifier), models_identity(classifier.models))
    try:
        done = journal.load() if args.resume else {}
    except OtherModelsError:
        raise UsageError(f"--resume: the unfinished run of {out} was made with {journal.describe_models()}, not "
                         f"with these models ({describe(journal.header['models'])}); its rows cannot be "
                         "mixed with theirs. Run without --resume (and --force to replace the CSV) to start again") from None
    engine = kept or tuning.engine_settings(classifier, len(files), lambda msg: print(msg, file=sys.stderr))
    if args.batch_size:
        engine = dataclasses.replace(engine, batch=args.batch_size)
    progress = terminal_progress(len(files))  # before the CSV exists: its import takes a moment
    attach_log_file()
    log.info("classify %d file(s) from %s with %s into %s", len(files), ", ".join(map(display_path, args.paths)),
             "; ".join(m.name for m in classifier.models), display_path(str(out)))
    csv_out = _open_csv(out, csvout.columns(classifier), args.force or resuming)
    try:
        slices_out = _open_csv(per_slice, csvout.slice_columns(classifier), args.force or resuming) \
            if per_slice is not None else None
    except BaseException:
        csv_out.discard()
        raise
    try:
        return _stream(classifier, engine, files, journal, done, csv_out, slices_out, progress, heat_dir, stop)
    except BaseException:  # interrupted before the stream began, or worse: leave no temporary file
        csv_out.discard()
        if slices_out is not None:
            slices_out.discard()
        raise


def _open_csv(path: Path, columns: list[str], force: bool) -> csvout.AtomicCsv:
    try:
        return csvout.AtomicCsv(path, columns, force=force)
    except csvout.CsvExistsError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror or exc})") from exc


def _stream(classifier: Classifier, engine: EngineSettings, files: list, journal: Journal, done: dict,
            csv_out: csvout.AtomicCsv, slices_out: csvout.AtomicCsv | None, progress, heat_dir: Path | None,
            stop: Stop) -> int:
    """Rows stream straight into the temporary CSV (memory stays flat however many files) and into
    the run's journal; Ctrl-C or SIGTERM asks the stream to stop between batches (``stop``, never an
    exception inside the engine) and the rows finished so far are still published; after a kill,
    ``--resume`` takes the journal's rows of unchanged files back, in order."""
    counts = {"rows": 0, "failed": 0, "tumours": 0, "cautioned": 0, "disagree": 0, "studies": 0}
    interrupted = False
    t0 = time.perf_counter()
    keys = [identity(f) for f in files]
    done = {k: done[k] for k in keys if k is not None and k in done}
    try:
        journal.start(done.values())
    except OSError as exc:  # no room even for the journal: nothing was written yet
        return _write_failed(exc, csv_out, slices_out)
    results = stream.classify_files([f for f, k in zip(files, keys) if k not in done], classifier, engine,
                                    with_heat=heat_dir is not None,
                                    keep_frames=heat_dir is not None, should_cancel=stop.requested.is_set)
    try:
        with stop.soft():
            interrupted = _rows(keys, done, results, classifier, journal, csv_out, slices_out, progress, heat_dir,
                                counts, stop)
    except KeyboardInterrupt:  # a signal just before the rows began
        interrupted = True
    except OSError as exc:  # the CSV itself cannot be written (disk full): nothing sensible is left to do
        journal.close(finished=False)
        return _write_failed(exc, csv_out, slices_out)
    finally:
        results.close()  # the engine's threads end with the batch they hold
    journal.close(finished=False)
    progress.close()
    try:
        target = csv_out.publish(partial=interrupted)
        if slices_out is not None:
            slices_target = slices_out.publish(partial=interrupted)
            print(f"per-slice rows: {slices_target}", file=sys.stderr)
    except OSError as exc:  # a full disk at the last flush or the rename: no half-written CSV is left
        return _write_failed(exc, csv_out, slices_out)
    if not interrupted:
        journal.close(finished=True)  # the CSV is whole: nothing left to resume
    seconds = time.perf_counter() - t0
    n, failed, tumours = counts["rows"], counts["failed"], counts["tumours"]
    studies = f" ({counts['studies']} of them studies, every slice scored)" if counts["studies"] else ""
    print(f"{n} of {len(files)} files{studies} in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} files/s): "
          f"{tumours} tumour likely, {n - tumours - failed} no tumour found ({counts['cautioned']} of these answers "
          f"with a caution, {counts['disagree']} where the models disagree), {failed} could not be read; "
          f"model: {'; '.join(m.name for m in classifier.models)}. CSV: {target}", file=sys.stderr)
    log.info("%d of %d files: %d tumour likely, %d could not be read, %d cautioned%s; CSV %s", n, len(files), tumours,
             failed, counts["cautioned"], " (interrupted)" if interrupted else "", display_path(str(target)))
    if target != csv_out.path:
        why = "the run was interrupted, so the existing file was kept" if interrupted and csv_out.force else \
            f"{csv_out.path} appeared while this run was working, so it was kept"
        print(f"note: {why}; these results are in {target}", file=sys.stderr)
    if interrupted:
        print(f"interrupted: the {n} rows finished so far are in {target}; the same command with --resume "
              "continues from them", file=sys.stderr)
        return 130
    return 1 if failed else 0


def _rows(keys: list, done: dict, results, classifier: Classifier, journal: Journal, csv_out: csvout.AtomicCsv,
          slices_out: csvout.AtomicCsv | None, progress, heat_dir: Path | None, counts: dict, stop: Stop) -> bool:
    """Each file's row, in order (a resumed one from the journal), into the CSV and the journal; True
    when a stop was asked for before the last one (the rows so far are whole)."""
    for key in keys:
        if stop.requested.is_set():
            return True
        if key in done:
            row, slice_rows = done[key]["row"], done[key]["slices"]
        else:
            r = next(results, None)
            if r is None:  # the stream stopped between batches: a stop was asked for
                return True
            heatmap = None
            if heat_dir is not None and r.ok and r.frame is not None:
                r, heatmap = write_heatmap(r, heat_dir)
            if not r.ok:
                log.warning("%s: %s", display_path(r.path), display_path(r.error))
            row = csvout.row(classifier, r, heatmap)
            slice_rows = [csvout.study_slice_row(classifier, r.path, s) for s in r.slices or []]
            journal.add(key, row, slice_rows)
        ok = row["status"] == "ok"
        counts["rows"] += 1
        counts["failed"] += not ok
        counts["tumours"] += ok and row["prediction"] == "tumor"
        counts["cautioned"] += ok and bool(row["ood_warning"])
        counts["disagree"] += ok and row[csvout.DISAGREE_COLUMN] == "yes"
        counts["studies"] += bool(row["n_slices"])
        progress.update(1)
        progress.set_postfix(failed=counts["failed"], refresh=False)
        csv_out.write(row)
        if slices_out is not None:
            for s in slice_rows:
                slices_out.write(s)
    return False


def _write_failed(exc: OSError, csv_out: csvout.AtomicCsv, slices_out: csvout.AtomicCsv | None) -> int:
    """The CSV cannot be written or published: remove the temporary files, say why, exit 2."""
    csv_out.discard()
    if slices_out is not None:
        slices_out.discard()
    reason = exc.strerror if isinstance(exc, csvout.CsvWriteError) else \
        f"cannot write {display_path(str(csv_out.path))} ({exc.strerror or exc}); no CSV written"
    log.error("%s", reason)
    print(f"error: {reason}", file=sys.stderr)
    return 2
