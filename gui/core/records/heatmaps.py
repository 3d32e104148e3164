"""Heatmap PNG files: unique names claimed atomically in a folder several processes may share, written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from gui.core.engine.heatmap import blend, heat_to_frame
from gui.core.engine.preprocess import Geometry
from gui.core.engine.result import Result

#: Longest file name most file systems accept, in bytes.
_NAME_MAX = 255


def overlay_name(scan_name: str, k: int = 0) -> str:
    """``<scan name>.heatmap[-k].png``, shortened in the middle to fit a file name (255 bytes)."""
    suffix = ".heatmap.png" if k == 0 else f".heatmap-{k}.png"
    raw = scan_name.encode("utf-8", "surrogateescape")
    room = _NAME_MAX - len(suffix.encode())
    if len(raw) > room:
        raw = raw[: room - 1 - 16] + b"~" + raw[-16:]
    return raw.decode("utf-8", "surrogateescape") + suffix


def overlay_label(path: str, key_slice: int | None = None) -> str:
    """The name a heatmap file is made from: the scan's file name, and for a study its key slice."""
    name = Path(path).name
    return name if key_slice is None else f"{name}_slice{key_slice}"


def save_overlay_png(scan_name: str, rgb: np.ndarray, heat: np.ndarray, geometry: Geometry, out_dir: Path) -> Path:
    """Write ``<scan name>.heatmap.png`` (the heatmap over the displayed frame) into ``out_dir``.

    Takes the frame already decoded for classification (no second read of the scan). Never
    replaces a file (``-1``, ``-2``... are appended instead) and never writes beside the scan
    unless ``out_dir`` is the scan's own folder by the user's choice. Safe when several processes
    share ``out_dir`` (shards): the name is claimed with an exclusive create, the PNG is written to
    a temporary file and renamed over that claim in one step, and only files this call created are
    removed when it fails (a name someone else holds is never touched).
    """
    picture = Image.fromarray(blend(rgb, heat_to_frame(heat, geometry, rgb.shape[0], rgb.shape[1])))
    target = _claim(out_dir, scan_name)
    fd, tmp = tempfile.mkstemp(prefix=".heatmap-", suffix=".tmp", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as fh:
            picture.save(fh, format="PNG")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # no half-written PNG left behind (full disk, MemoryError)
        target.unlink(missing_ok=True)  # the empty claim: ours, made by _claim
        raise
    return target


def _claim(out_dir: Path, scan_name: str) -> Path:
    """The first free ``overlay_name(scan_name, k)`` in ``out_dir``, created empty and exclusively
    (``O_EXCL``: of two processes asking for one name, one gets it and the other the next)."""
    k = 0
    while True:
        target = out_dir / overlay_name(scan_name, k)
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return target
        except FileExistsError:
            k += 1


def write_heatmap(r: Result, heat_dir: Path) -> tuple[Result, Path | None]:
    """Write a result's heatmap PNG from its already decoded frame: the result without its frame (no
    longer needed) and where the PNG went. A failure gives an error row with the reason (the
    classification stays in the row) and no path, and the run goes on."""
    try:
        return replace(r, frame=None), save_overlay_png(overlay_label(r.path, r.max_slice), r.frame, r.heat,
                                                        r.geometry, heat_dir)
    except MemoryError:
        return replace(r, frame=None, status="error", error="heatmap not written: out of memory"), None
    except OSError as exc:
        return replace(r, frame=None, status="error", error=f"heatmap not written: {exc.strerror or exc}"), None
