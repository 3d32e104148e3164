"""The CSV as written to disk: a full disk never leaves a half CSV or a temporary file behind, and a
dead run's temporary file is cleared, zombies included."""

from __future__ import annotations

import csv
import errno
import subprocess
import sys
import time

import pytest
from PIL import Image

from gui.core.commands import classify as cli
from gui.core.records import csvout
from tests.onnx_factory import make_contract_model


class FullDisk:
    """A file object on a disk with no space left: every write, flush and close fails (close after
    really closing the file underneath, as the C library does)."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self):
        self._fh.close()
        raise OSError(errno.ENOSPC, "No space left on device")

    def fileno(self):
        return self._fh.fileno()

    @property
    def closed(self):
        return self._fh.closed


def fill_disk(out: csvout.AtomicCsv) -> None:
    """From now on, ``out`` writes to a full disk."""
    out._fh = FullDisk(out._fh)
    out._writer = csv.DictWriter(out._fh, fieldnames=out._writer.fieldnames)


def _scans(folder):
    folder.mkdir()
    for k in range(3):
        Image.new("L", (40, 40), 60 + 40 * k).save(folder / f"s{k}.png")
    return folder


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(csvout.TMP_SUFFIX) or p.suffix == ".csv")


def test_no_space_at_all_leaves_no_temporary_file(tmp_path):
    out = csvout.AtomicCsv(tmp_path / "r.csv", ["a"])
    fill_disk(out)
    with pytest.raises(csvout.CsvWriteError, match="No space left"):
        out.write({"a": "1"})
    out.discard()  # again: harmless
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["rows", "publish"])
def test_a_full_disk_ends_the_run_with_a_sentence_and_no_files(tmp_path, monkeypatch, capsys, where):
    scans = _scans(tmp_path / "scans")
    model = make_contract_model(tmp_path / "m.onnx")
    if where == "rows":
        real = csvout.AtomicCsv.__init__

        def full(self, *args, **kwargs):
            real(self, *args, **kwargs)
            fill_disk(self)

        monkeypatch.setattr(csvout.AtomicCsv, "__init__", full)
    else:
        def no_space(_fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(csvout.os, "fsync", no_space)
    code = cli.classify_main([str(scans), "--csv", str(tmp_path / "r.csv"), "--model", str(model)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "no CSV written" in err
    assert "Traceback" not in err
    assert _leftovers(tmp_path) == []


def test_a_zombie_runs_temporary_file_is_cleared(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # exits at once, never reaped: a zombie
    try:
        for _ in range(200):
            state = open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1][1]
            if state == "Z":
                break
            time.sleep(0.02)
        assert state == "Z"
        stale = tmp_path / f".r.csv.{child.pid}{csvout.TMP_SUFFIX}"
        stale.write_text("half")
        csvout.remove_stale_temporaries(tmp_path / "r.csv")
        assert not stale.exists()
    finally:
        child.wait()
