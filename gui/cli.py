"""Command line: ``mri-classifier [FILE...]`` opens the window; ``mri-classifier classify`` runs headless.

Exit codes of ``classify``: 0 every file classified, 1 some files failed, 2 bad arguments
(or no usable model), 130 interrupted (the rows finished so far are written).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from gui import engine
from gui.model import ModelContractError, load_model
from gui.overlay import save_overlay_png
from gui.resources import bundled_models


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mri-classifier classify",
        description="Classify brain MRI files offline; one CSV row per file. Research use only. Not for diagnosis.",
    )
    p.add_argument("paths", nargs="+", help="image files and/or folders")
    p.add_argument("--csv", required=True, help="CSV file to write (refuses to replace one without --force)")
    p.add_argument("--recursive", "-r", action="store_true", help="also scan sub-folders")
    p.add_argument("--heatmaps", metavar="DIR", help="also write a heatmap overlay PNG per classified file into DIR")
    p.add_argument("--model", action="append", metavar="FILE", help="ONNX model to use instead of the bundled ones (repeatable)")
    p.add_argument("--force", action="store_true", help="replace an existing CSV")
    p.add_argument("--batch-size", type=int, default=16, help=argparse.SUPPRESS)
    return p


def load_models(paths: list[str] | None) -> list:
    files = [Path(p) for p in paths] if paths else bundled_models()
    if not files:
        raise ModelContractError("assets/models", "no bundled model found and no --model given")
    return [load_model(f) for f in files]


class TerminalProgress:
    """A one-line progress bar on a terminal (stderr); silent when stderr is not a terminal."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def update(self, done: int, failed: int) -> None:
        now = time.perf_counter()
        if not self.tty or (now - self.last < 0.1 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else 0
        width = 30
        filled = int(width * done / max(self.total, 1))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                         f"{rate:5.1f} files/s, {left:4.0f} s left, {failed} failed ")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


def classify_main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    out = Path(args.csv)
    if out.exists() and not args.force:
        print(f"error: {out} exists; use --force to replace it", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"error: folder {out.parent} does not exist", file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing and len(missing) == len(args.paths):
        print(f"error: nothing to classify: {', '.join(missing)} not found", file=sys.stderr)
        return 2
    try:
        classifier = engine.Classifier(load_models(args.model))
    except ModelContractError as exc:
        print(f"error: cannot use model {exc}", file=sys.stderr)
        return 2
    heat_dir = Path(args.heatmaps) if args.heatmaps else None
    if heat_dir is not None:
        heat_dir.mkdir(parents=True, exist_ok=True)
    files = list(engine.collect_files(args.paths, recursive=args.recursive))
    progress = TerminalProgress(len(files))
    counts = {"rows": 0, "failed": 0, "tumours": 0}
    interrupted = False

    def rows():
        """Rows stream straight into the (temporary) CSV: memory stays flat however many files.
        Ctrl-C ends the stream, so the rows finished so far are still written and renamed."""
        nonlocal interrupted
        try:
            for r in engine.classify_files(files, classifier, batch_size=args.batch_size, with_heat=heat_dir is not None):
                counts["rows"] += 1
                counts["failed"] += not r.ok
                counts["tumours"] += r.prediction == "tumor"
                if heat_dir is not None and r.ok:
                    save_overlay_png(Path(r.path), r.heat, heat_dir)
                progress.update(counts["rows"], counts["failed"])
                yield classifier.row(r)
        except KeyboardInterrupt:
            interrupted = True

    t0 = time.perf_counter()
    engine.write_csv_atomic(out, classifier.columns(), rows(), force=args.force)
    progress.close()
    seconds = time.perf_counter() - t0
    n, failed, tumours = counts["rows"], counts["failed"], counts["tumours"]
    print(f"{n} of {len(files)} files in {seconds:.1f} s ({n / max(seconds, 1e-9):.1f} files/s): "
          f"{tumours} tumour likely, {n - tumours - failed} no tumour found, {failed} could not be read. "
          f"CSV: {out}", file=sys.stderr)
    if interrupted:
        print(f"interrupted: the {n} rows finished so far are in {out}", file=sys.stderr)
        return 130
    return 1 if failed else 0


def quiet_decoder_warnings() -> None:
    """Decoder libraries warn about damaged files on stderr; the reader reports them itself."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(PIL|pydicom|nibabel)(\.|$)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_decoder_warnings()
    if argv and argv[0] == "classify":
        return classify_main(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print("usage: mri-classifier [FILE...]            open the window (with these files)\n"
              "       mri-classifier classify PATH... --csv OUT.csv [--recursive] [--heatmaps DIR] [--model FILE]... [--force]\n"
              "Research use only. Not for diagnosis.")
        return 0
    from gui.app.main import run_app

    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
