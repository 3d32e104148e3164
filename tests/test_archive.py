"""Archives: a killed run continues with --resume (each file exactly once, rows as an uninterrupted
run's), shards of a folder with studies add up to the unsharded CSV, and merge checks what it joins."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gui.core.commands import classify as cli
from gui.core.commands.merge import merge_main
from tests.onnx_factory import make_contract_model
from tests.series_factory import stack, write_dicom_series, write_nifti

ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _tiny_pngs(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(folder / f"s{k:05d}.png")
    return folder


def _classify(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gui", "classify", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_each_file_exactly_once(tmp_path):
    scans = _tiny_pngs(tmp_path / "scans", 2000)
    model = str(make_contract_model(tmp_path / "m.onnx"))
    whole = tmp_path / "whole.csv"
    assert _classify([str(scans), "--csv", str(whole), "--model", model]).wait(300) == 0
    out = tmp_path / "out.csv"
    journal = tmp_path / ".out.csv.journal"
    run = _classify([str(scans), "--csv", str(out), "--model", model, "--batch-size", "4"])
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or journal.read_text().count("\n") < 300):
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(30)
    kept = journal.read_text().count("\n") - 1
    assert 0 < kept < 2000 and not out.exists()
    resumed = _classify([str(scans), "--csv", str(out), "--model", model, "--resume"])
    assert resumed.wait(300) == 0, resumed.stderr.read()
    assert _rows(out) == _rows(whole)  # every file once, in order, the same answers
    assert not journal.exists() and not list(tmp_path.glob(".out.csv.*tmp"))


def test_ctrl_c_then_resume_replaces_the_partial_csv_and_reclassifies_changed_files(tmp_path, monkeypatch):
    scans = _tiny_pngs(tmp_path / "scans", 40)
    model = str(make_contract_model(tmp_path / "m.onnx"))
    out = tmp_path / "out.csv"
    real = cli.stream.classify_files

    def interrupted(*args, **kwargs):
        for k, r in enumerate(real(*args, **kwargs)):
            if k == 25:
                raise KeyboardInterrupt
            yield r

    monkeypatch.setattr(cli.stream, "classify_files", interrupted)
    assert cli.classify_main([str(scans), "--csv", str(out), "--model", model]) == 130
    assert len(_rows(out)) == 25
    monkeypatch.setattr(cli.stream, "classify_files", real)
    Image.new("L", (16, 16), 250).save(scans / "s00003.png")  # changed since: classified again
    seen = []

    def counting(files, *args, **kwargs):
        files = list(files)
        seen.extend(files)
        return real(files, *args, **kwargs)

    monkeypatch.setattr(cli.stream, "classify_files", counting)
    assert cli.classify_main([str(scans), "--csv", str(out), "--model", model, "--resume"]) == 0
    rows = _rows(out)
    assert len(rows) == 40 and len({r["path"] for r in rows}) == 40
    assert sorted(p.name for p in seen) == ["s00003.png"] + [f"s{k:05d}.png" for k in range(25, 40)]


def test_shards_add_up_to_the_unsharded_csv_and_never_split_a_study(tmp_path, capsys):
    scans = tmp_path / "scans"
    _tiny_pngs(scans / "pngs", 30)
    images, _ = stack(8, size=32)
    write_dicom_series(scans / "series", images)
    write_nifti(scans / "vol.nii", images)
    model = str(make_contract_model(tmp_path / "m.onnx"))
    whole = tmp_path / "whole.csv"
    assert cli.classify_main([str(scans), "-r", "--csv", str(whole), "--model", model]) == 0
    parts = []
    for k in range(1, 5):
        part = tmp_path / f"part{k}.csv"
        code = cli.classify_main([str(scans), "-r", "--csv", str(part), "--model", model, "--shard", f"{k}/4"])
        assert code in (0, 2)
        if code == 0:
            parts.append(part)
    assert len(parts) >= 2
    sharded = [r for p in parts for r in _rows(p)]
    assert sorted(r["path"] for r in sharded) == sorted(r["path"] for r in _rows(whole))
    assert sum(1 for r in sharded if r["n_slices"] == "8") == 2  # the series and the volume, each whole once
    merged = tmp_path / "merged.csv"
    assert merge_main([*map(str, parts), "--csv", str(merged)]) == 0
    assert sorted(map(str, map(sorted, map(dict.items, _rows(merged))))) == \
        sorted(map(str, map(sorted, map(dict.items, _rows(whole)))))
    assert merge_main([str(parts[0]), str(parts[0]), "--csv", str(tmp_path / "twice.csv")]) == 2
    assert "is in both" in capsys.readouterr().err
    assert cli.classify_main([str(scans), "--csv", str(tmp_path / "x.csv"), "--shard", "5/4"]) == 2
