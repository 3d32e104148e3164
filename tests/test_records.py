"""Records never lost or mixed: watch and listen never overwrite a CSV they did not journal, --resume
never mixes models, each heatmap PNG is named in its row, merge names the file it wrote, a watched
folder that goes away is said as such, and a second Ctrl-C changes nothing."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gui.core.commands import classify as cli
from gui.core.commands import watch
from gui.core.commands.merge import merge_main
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import load_model
from gui.core.records import csvout
from gui.core.records.journal import models_identity
from gui.core.records.livecsv import LiveCsv, NotOursError
from tests.child_process import with_ctrl_c
from tests.onnx_factory import make_contract_model

ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _pngs(folder: Path, n: int, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / f"s{k:05d}.png")
    return folder


@pytest.fixture
def models(tmp_path):
    """Two models with the same labels (the same CSV columns) but other files: v3 and v4, say."""
    import onnx

    a = make_contract_model(tmp_path / "a.onnx")
    other = onnx.load(a)
    other.doc_string = "retrained"  # another file: another SHA-256
    b = tmp_path / "b.onnx"
    onnx.save(other, b)
    return a, b


def test_watch_leaves_a_csv_it_did_not_write_untouched(tmp_path, models, capsys, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = _pngs(tmp_path / "in", 2)
    out = tmp_path / "results.csv"
    out.write_text("path,status\nsomeone's,rows\n")  # a classify CSV: no journal
    assert watch.watch_main([str(folder), "--csv", str(out), "--model", str(models[0])]) == 2
    assert out.read_text() == "path,status\nsomeone's,rows\n"
    assert "nothing was touched" in capsys.readouterr().err


def test_a_live_csv_of_other_models_is_refused_and_kept_unless_forced(tmp_path, models):
    out = tmp_path / "rows.csv"
    first = Classifier([load_model(models[0])])
    live = LiveCsv(out, csvout.columns(first), models_identity(first.models))
    _pngs(tmp_path / "in", 1)
    live.add(tmp_path / "in" / "s00000.png", {c: "1" for c in csvout.columns(first)})
    live.close()
    before = out.read_text()
    same = LiveCsv(out, csvout.columns(first), models_identity(first.models))  # a restart: rebuilt, kept
    assert same.rows == 1
    same.close()
    other = Classifier([load_model(models[1])])
    with pytest.raises(NotOursError, match="a.onnx"):
        LiveCsv(out, csvout.columns(other), models_identity(other.models))
    assert out.read_text() == before
    forced = LiveCsv(out, csvout.columns(other), models_identity(other.models), force=True)
    assert forced.rows == 0
    forced.close()
    assert len(_rows(out)) == 0


def test_resume_with_other_models_is_refused(tmp_path, models, monkeypatch, capsys):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    scans = _pngs(tmp_path / "scans", 30)
    out = tmp_path / "out.csv"
    real = cli.stream.classify_files

    def interrupted(*args, **kwargs):
        for k, r in enumerate(real(*args, **kwargs)):
            if k == 10:
                raise KeyboardInterrupt
            yield r

    monkeypatch.setattr(cli.stream, "classify_files", interrupted)
    assert cli.classify_main([str(scans), "--csv", str(out), "--model", str(models[0])]) == 130
    partial = out.read_text()
    monkeypatch.setattr(cli.stream, "classify_files", real)
    capsys.readouterr()
    assert cli.classify_main([str(scans), "--csv", str(out), "--model", str(models[1]), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "a.onnx" in err and "b.onnx" in err
    assert out.read_text() == partial
    assert cli.classify_main([str(scans), "--csv", str(out), "--model", str(models[0]), "--resume"]) == 0
    assert len(_rows(out)) == 30


def test_each_row_names_its_heatmap_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    scans = _pngs(tmp_path / "scans", 3, size=48)
    (scans / "sub").mkdir()
    shutil.copy(scans / "s00000.png", scans / "sub" / "s00000.png")  # the same name twice: two PNGs
    model = make_contract_model(tmp_path / "m.onnx")
    out, heat = tmp_path / "out.csv", tmp_path / "heat"
    assert cli.classify_main([str(scans), "-r", "--csv", str(out), "--model", str(model), "--heatmaps", str(heat)]) == 0
    rows = _rows(out)
    named = [Path(r["heatmap"]) for r in rows]
    assert len(rows) == 4 and len(set(named)) == 4
    assert sorted(p.name for p in named) == sorted(p.name for p in heat.iterdir())
    assert all(p.is_file() and p.parent == heat for p in named)
    plain = tmp_path / "plain.csv"
    assert cli.classify_main([str(scans), "-r", "--csv", str(plain), "--model", str(model)]) == 0
    assert all(r["heatmap"] == "" for r in _rows(plain))


def test_merge_names_the_file_it_wrote_when_the_name_was_taken_meanwhile(tmp_path, monkeypatch, capsys):
    a, b, out = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "all.csv"
    a.write_text("path,status\nx.png,ok\n")
    b.write_text("path,status\ny.png,ok\n")
    real_write = csvout.AtomicCsv.write

    def someone_else_writes_out(self, row):
        if not out.exists():
            out.write_text("theirs\n")
        real_write(self, row)

    monkeypatch.setattr(csvout.AtomicCsv, "write", someone_else_writes_out)
    assert merge_main([str(a), str(b), "--csv", str(out)]) == 0
    err = capsys.readouterr().err
    written = tmp_path / "all-1.csv"
    assert out.read_text() == "theirs\n" and len(_rows(written)) == 2
    assert f"into {written}" in err and "appeared" in err


def test_a_watched_folder_that_goes_away_is_said_and_waited_for(tmp_path, models, capsys, monkeypatch):
    from gui.core.commands.arrivals import Arrivals

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    folder = _pngs(tmp_path / "share", 1)
    out = tmp_path / "rows.csv"
    classifier = Classifier([load_model(models[0])])
    live = LiveCsv(out, csvout.columns(classifier), models_identity(classifier.models))
    shutil.rmtree(folder)  # the share is unmounted
    looks = []

    def sleep(_seconds):
        looks.append(1)
        if len(looks) == 3:
            _pngs(folder, 1)  # back again
        if len(looks) == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(watch.time, "sleep", sleep)
    assert watch.serve(folder, out, live, classifier, Arrivals(settle=0, quiet=0), 0.01) == 0
    err = capsys.readouterr().err
    assert "cannot read the watched folder" in err and "is back" in err
    assert "cannot write" not in err and err.count("cannot read the watched folder") == 1


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("gap_ms", [0, 5, 30, 100, 300])
def test_a_second_ctrl_c_at_any_moment_exits_130_with_the_rows_written(tmp_path, gap_ms):
    scans = _pngs(tmp_path / "scans", 3000)
    model = make_contract_model(tmp_path / "m.onnx")
    out = tmp_path / "out.csv"
    journal = tmp_path / ".out.csv.journal"
    run = subprocess.Popen([sys.executable, "-m", "gui", "classify", str(scans), "--csv", str(out),
                            "--model", str(model), "--batch-size", "4"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, preexec_fn=with_ctrl_c,
                           env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")})
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or journal.read_text().count("\n") < 40):
        time.sleep(0.01)
    run.send_signal(signal.SIGINT)
    time.sleep(gap_ms / 1000)
    if run.poll() is None:
        run.send_signal(signal.SIGINT)
    err = run.communicate(timeout=120)[1]
    assert run.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
    rows = _rows(out)
    assert len(rows) >= 39 and len({r["path"] for r in rows}) == len(rows)
