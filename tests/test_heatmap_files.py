"""Heatmap PNGs in a folder that other processes (shards) write to as well: never one of their
files deleted or replaced, never a half-written PNG left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gui.core.records import heatmaps
from gui.core.engine.preprocess import Geometry


def _picture():
    rgb = np.zeros((32, 32, 3), np.uint8)
    return rgb, np.full((7, 7), 0.5, np.float32), Geometry(0, 0, 32)


def test_a_name_taken_after_the_check_is_skipped_not_deleted(tmp_path, monkeypatch):
    """Another shard writes scan.heatmap.png between this writer's look and its create (simulated: every
    look says 'free'): its file stays whole and this one takes the next name."""
    theirs = tmp_path / "scan.jpg.heatmap.png"
    theirs.write_bytes(b"another process's PNG")
    monkeypatch.setattr(Path, "exists", lambda self: False)
    out = heatmaps.save_overlay_png("scan.jpg", *_picture(), tmp_path)
    assert theirs.read_bytes() == b"another process's PNG"
    assert out.name == "scan.jpg.heatmap-1.png" and Image.open(out).size == (32, 32)


def test_a_failed_write_leaves_no_file_of_its_own_and_touches_no_other(tmp_path, monkeypatch):
    (tmp_path / "scan.jpg.heatmap.png").write_bytes(b"theirs")

    def full_disk(self, fp, *a, **k):
        fp.write(b"half a png")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError):
        heatmaps.save_overlay_png("scan.jpg", *_picture(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.jpg.heatmap.png"]
    assert (tmp_path / "scan.jpg.heatmap.png").read_bytes() == b"theirs"


def test_same_named_scans_get_numbered_whole_files(tmp_path):
    names = [heatmaps.save_overlay_png("scan.jpg", *_picture(), tmp_path).name for _ in range(3)]
    assert names == ["scan.jpg.heatmap.png", "scan.jpg.heatmap-1.png", "scan.jpg.heatmap-2.png"]
    assert all(Image.open(tmp_path / n).size == (32, 32) for n in names)
    assert not list(tmp_path.glob(".heatmap-*"))  # no temporary file left
