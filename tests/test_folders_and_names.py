"""Folder scans and file names: broken links are reported, any depth is walked, and a name with
control characters can neither forge a log line nor break a CSV row or a label."""

from __future__ import annotations

import csv
import os
import sys

import pytest
from PIL import Image

from gui.core.commands import classify as cli
from gui.core.engine import stream
from gui.core.names import display_path
from tests.onnx_factory import make_contract_model


def test_broken_symbolic_links_named_like_images_are_rows_with_the_reason(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    Image.new("L", (32, 32), 90).save(scans / "ok.png")
    os.symlink(scans / "gone.png", scans / "dangling.png")
    os.symlink(scans / "loop.dcm", scans / "loop.dcm")
    os.symlink(scans / "gone", scans / "notes-link")  # not named like an image: not a scan
    out = tmp_path / "r.csv"
    code = cli.classify_main([str(scans), "--csv", str(out), "--model", str(make_contract_model(tmp_path / "m.onnx"))])
    rows = {os.path.basename(r["path"]): r for r in csv.DictReader(out.open())}
    assert code == 1 and set(rows) == {"ok.png", "dangling.png", "loop.dcm"}
    assert "broken symbolic link" in rows["dangling.png"]["error"]
    assert "symbolic link loop" in rows["loop.dcm"]["error"]


def test_a_folder_nested_deeper_than_the_recursion_limit_is_walked(tmp_path):
    root = tmp_path / "deep"
    root.mkdir()
    here = os.getcwd()
    try:
        os.chdir(root)
        for _ in range(1100):  # pathlib's mkdir(parents=True) would itself recurse this deep
            os.mkdir("d")
            os.chdir("d")
        Image.new("L", (32, 32), 90).save("bottom.png")
    finally:
        os.chdir(here)
    try:
        items = list(stream.collect_files([root], recursive=True))
        assert len(items) == 1 and items[0].name == "bottom.png" and len(items[0].parts) > 1100
    finally:
        _remove_deep(root)


def _remove_deep(root) -> None:
    """Remove a deep chain of folders from the bottom up, without recursion (shutil.rmtree recurses)."""
    here = os.getcwd()
    try:
        os.chdir(root)
        depth = 0
        while os.path.isdir("d"):
            os.chdir("d")
            depth += 1
        for name in os.listdir("."):
            os.unlink(name)
        for _ in range(depth):
            os.chdir("..")
            os.rmdir("d")
    finally:
        os.chdir(here)


def test_control_characters_in_names_are_escaped_by_one_rule():
    assert display_path("a\nb") == "a\\nb"
    assert display_path("x\r\x1b[31m\u2028y") == "x\\r\\x1b[31m\\u2028y"
    assert display_path("caf\udce9.png") == "caf\\xe9.png"  # a name that is not UTF-8
    assert display_path("ordinary ü name.dcm") == "ordinary ü name.dcm"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the XDG data folder is a Linux convention")
def test_a_newline_in_a_file_name_cannot_forge_a_log_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    scans = tmp_path / "scans"
    scans.mkdir()
    forged = "x.png\n2026-01-01 00:00:00,000 INFO 0 of 0 files: all clear"
    (scans / forged).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "r.csv"
    assert cli.classify_main([str(scans), "--csv", str(out), "--model", str(make_contract_model(tmp_path / "m.onnx"))]) == 1
    log_text = (tmp_path / "data" / "MRI Tumor Classifier" / "mri-classifier" / "logs" / "mri-classifier.log").read_text()
    assert not any(line.startswith("2026-01-01") for line in log_text.splitlines())
    assert "x.png\\n2026-01-01" in log_text
    [row] = list(csv.DictReader(out.open()))
    assert "\n" not in row["path"] and row["path"].endswith("x.png\\n2026-01-01 00:00:00,000 INFO 0 of 0 files: all clear")
