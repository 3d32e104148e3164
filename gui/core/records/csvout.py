"""Results as CSV: the columns and rows, cells made safe for spreadsheets, and the atomic writer that publishes them."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Sequence

from gui.core.engine.classifier import Classifier, ProbabilityColumns
from gui.core.engine.result import Result
from gui.core.names import display_path

CSV_COLUMNS = ["path", "status", "prediction", "tumor_probability", "confidence", "tumor_type",
               "tumor_type_confidence", "ood_warning", "error"]
#: After the fixed nine, before the ``p_`` columns: "yes" when the answers behind the row disagree.
DISAGREE_COLUMN = "models_disagree"
#: After ``models_disagree``: filled for a study (volume, multi-frame DICOM, DICOM series), empty otherwise.
STUDY_COLUMNS = ["n_slices", "max_slice", "tumor_slices", "series_description"]
#: After the study columns: the MR sequence (t1, t1c, t2, flair) and where it comes from ("tags": the file's
#: DICOM tags, which win; "model": the model's sequence head), both empty where neither names one.
SEQUENCE_COLUMN, SEQUENCE_FROM_COLUMN = "sequence", "sequence_from"
#: After the study columns, before the ``p_`` columns: the heatmap PNG written for the row (``--heatmaps``), else empty.
HEATMAP_COLUMN = "heatmap"
#: ``--per-slice``: one row per slice of every study (then the ``p_`` columns).
SLICE_COLUMNS = ["path", "slice", "status", "prediction", "tumor_probability", "confidence", "tumor_type",
                 "tumor_type_confidence", "ood_warning", "error", DISAGREE_COLUMN]



def result_row(r: Result, probability_columns: ProbabilityColumns) -> dict[str, str]:
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
           "max_slice": "" if r.max_slice is None else str(r.max_slice), "tumor_slices": r.tumor_slices,
           "series_description": csv_safe(display_path(r.series_description)), SEQUENCE_COLUMN: r.sequence,
           SEQUENCE_FROM_COLUMN: r.sequence_from,
           HEATMAP_COLUMN: ""}
    for group, label, col in probability_columns:
        row[col] = num(r.probabilities.get(group, {}).get(label))
    return row


def slice_row(study_path: str, r: Result, probability_columns: ProbabilityColumns) -> dict[str, str]:
    """One ``--per-slice`` row: a slice's own answer under its study's path."""
    row = result_row(r, probability_columns)
    row["path"] = csv_safe(display_path(study_path))
    row["slice"] = "" if r.slice is None else str(r.slice)
    return {k: row[k] for k in SLICE_COLUMNS + [col for *_g, col in probability_columns]}


def columns(classifier: Classifier) -> list[str]:
    """The CSV's columns for these models: the fixed ones, then the classifier's ``p_`` columns."""
    return (list(CSV_COLUMNS) + [DISAGREE_COLUMN] + STUDY_COLUMNS + [SEQUENCE_COLUMN, SEQUENCE_FROM_COLUMN, HEATMAP_COLUMN]
            + classifier.probability_columns())


def slice_columns(classifier: Classifier) -> list[str]:
    """``--per-slice`` CSV columns: path and slice number, the answer columns, the ``p_`` columns."""
    return SLICE_COLUMNS + classifier.probability_columns()


def row(classifier: Classifier, r: Result, heatmap: Path | None = None) -> dict[str, str]:
    """One CSV row of a result under these models' columns; ``heatmap``: the PNG written for it."""
    out = result_row(r, classifier.prob_columns)
    if heatmap is not None:
        out[HEATMAP_COLUMN] = csv_safe(display_path(str(heatmap)))
    return out


def study_slice_row(classifier: Classifier, study_path: str, r: Result) -> dict[str, str]:
    """One ``--per-slice`` row under these models' columns."""
    return slice_row(study_path, r, classifier.prob_columns)


#: Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: str) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with ``'`` (OWASP's advice)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


class CsvExistsError(FileExistsError):
    pass


class CsvWriteError(OSError):
    """The rows could not be written or published (a full disk, a vanished folder); the temporary
    file is gone, nothing was published, and the message names the file and the reason."""


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
        """Append a row; a failing disk discards the temporary file and raises :class:`CsvWriteError`."""
        try:
            self._writer.writerow(row)
        except OSError as exc:
            self._fail(exc)
        self.rows += 1

    def publish(self, partial: bool = False) -> Path:
        """Move the rows into place; returns where they went. A full disk (at the last flush, the
        fsync or the rename) discards the temporary file and raises :class:`CsvWriteError`."""
        try:
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
        except CsvExistsError:
            raise
        except OSError as exc:
            self._fail(exc)
        raise CsvExistsError(f"no free name for {self.path}")

    def _fail(self, exc: OSError) -> None:
        self.discard()
        raise CsvWriteError(exc.errno, f"cannot write {display_path(str(self.path))} "
                                       f"({exc.strerror or exc}); no CSV written") from exc

    def discard(self) -> None:
        """Close and remove the temporary file (nothing to do once the rows are published). Closing
        may fail on a full disk (the buffer cannot be flushed): the file is removed all the same."""
        try:
            if not self._fh.closed:
                self._fh.close()
        except OSError:
            pass
        finally:
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
    """Whether a process can still write: not gone, and not a zombie (dead, waiting for its parent)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:  # Linux: a zombie still answers kill(0); its state letter in /proc says it is dead
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:][:1] not in ("Z", "X")
    except (OSError, ValueError):
        return True


def write_csv_atomic(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, str]], force: bool = False) -> Path:
    """Write all ``rows`` through :class:`AtomicCsv`; returns the file they went to: ``path``, or
    ``NAME-1.csv``... when a file of that name appeared meanwhile and ``force`` is off."""
    out = AtomicCsv(path, columns, force)
    try:
        for row in rows:
            out.write(row)
    except BaseException:
        out.discard()
        raise
    return out.publish()
