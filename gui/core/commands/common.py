"""What every headless command shares: usage errors, target checks before any work, progress on a terminal, Ctrl-C and SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from gui.core.engine.precision import DEFAULT, PRECISIONS
from gui.core.readers import DicomSeries


class _NoProgress:
    """What a pipe or a log gets instead of a progress bar (tqdm is not even imported)."""

    def update(self, _n: int) -> None:
        pass

    def set_postfix(self, **_kw) -> None:
        pass

    def close(self) -> None:
        pass


def terminal_progress(total: int):
    """tqdm's progress bar on stderr, only when stderr is a terminal (a pipe or a log gets none)."""
    if not sys.stderr.isatty():
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True)


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    """``--precision``: the bundled models in float32 (the default) or int8 (faster, on a CPU with VNNI)."""
    p.add_argument("--precision", choices=PRECISIONS, default=DEFAULT,
                   help="arithmetic of the bundled models: fp32 (default) or int8 (1.2-1.3x faster end to end where "
                        "measured; the same answer as float32 on 99.55%% of the test images; runs on CPUs with VNNI, "
                        "float32 elsewhere)")


def note(message: str) -> None:
    """A note on standard error (standard output stays empty)."""
    print(f"note: {message}", file=sys.stderr)


class UsageError(Exception):
    """Bad arguments or an unusable target: exit 2 with this sentence, before any file is read."""


def check_targets(out: Path, heat_dir: Path | None, force: bool, option: str = "--csv") -> None:
    """Refuse a CSV or heatmap target that cannot work, before any work is done."""
    if out.is_dir():
        raise UsageError(f"{option} {out} is a folder; give a file name such as {out / 'results.csv'}")
    if out.exists() and not force:
        raise UsageError(f"{out} exists; use --force to replace it")
    if not out.parent.is_dir():
        raise UsageError(f"folder {out.parent} does not exist")
    if heat_dir is not None and heat_dir.exists() and not heat_dir.is_dir():
        raise UsageError(f"--heatmaps {heat_dir} is a file, not a folder")


def check_not_an_input(out: Path, paths: list[str], items: list) -> None:
    """The CSV must never overwrite (or be) one of the scans being classified."""
    files = [f for item in items for f in (item.files if isinstance(item, DicomSeries) else (item,))]
    try:
        target = out.resolve()
    except (OSError, RuntimeError):
        return
    for f in [Path(p) for p in paths] + files:
        try:
            same = f.resolve() == target
        except (OSError, RuntimeError):  # a symbolic link loop (RuntimeError before Python 3.13)
            continue
        if same:
            raise UsageError(f"--csv {out} is one of the files to classify; choose another name")


class Stop:
    """What Ctrl-C and SIGTERM asked for. Outside :meth:`soft` the first raises KeyboardInterrupt where
    the work is (start-up: nothing written yet); inside it (rows streaming) it only sets ``requested``,
    which the stream checks between batches, so no exception ever lands inside the engine's locks and
    threads (raised there, a Ctrl-C could leave a lock held and the process hanging at exit)."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self._soft = False

    @contextmanager
    def soft(self) -> Iterator[None]:
        self._soft = True
        try:
            yield
        finally:
            self._soft = False

    def _signal(self, _signum, _frame) -> None:
        if self.requested.is_set():
            return  # a second Ctrl-C while the finished rows are written changes nothing
        self.requested.set()
        if not self._soft:
            raise KeyboardInterrupt


@contextmanager
def stop_signals() -> Iterator[Stop]:
    """Ctrl-C and SIGTERM (a polite kill) stop a command once (:class:`Stop`): the rows finished so far
    are written, and any later signal is ignored while they are (a second Ctrl-C a few milliseconds
    after the first used to land inside that clean-up: a traceback and an abort, exit 134). SIGINT is left
    alone where it was ignored (a command started with ``&``); once a stop has begun, later SIGINTs stay
    ignored until the process has exited."""
    stop = Stop()
    previous_term = signal.signal(signal.SIGTERM, stop._signal)
    previous_int = signal.getsignal(signal.SIGINT)
    catch_int = previous_int is signal.default_int_handler
    if catch_int:
        signal.signal(signal.SIGINT, stop._signal)
    try:
        yield stop
    finally:
        stopping = stop.requested.is_set()
        signal.signal(signal.SIGTERM, signal.SIG_IGN if stopping else previous_term)
        if catch_int:
            signal.signal(signal.SIGINT, signal.SIG_IGN if stopping else previous_int)


def quiet_decoder_warnings() -> None:
    """Decoder libraries warn about damaged files on stderr; the reader reports them itself."""
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(PIL|pydicom|nibabel)(\.|$)")
