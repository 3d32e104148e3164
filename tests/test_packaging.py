"""Build the frozen app with PyInstaller and check it behaves like the source app (slow)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PyInstaller", reason="packaging test needs pyinstaller (test extra)")

from tests.conftest import brain_like  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("tensorflow", "keras", "tf2onnx", "sklearn", "matplotlib", "scipy")


@pytest.fixture(scope="module")
def frozen(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("pyinstaller")
    subprocess.run([sys.executable, "-m", "PyInstaller", "build.spec", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(work / "dist"), "--workpath", str(work / "build")], cwd=ROOT, check=True)
    exe = work / "dist" / "mri-classifier" / ("mri-classifier.exe" if os.name == "nt" else "mri-classifier")
    assert exe.exists()
    return exe


def read_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_frozen_classify_matches_source(frozen, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    for i in range(4):
        brain_like(scans / f"s{i}.png", tumour=i % 2 == 0, size=(160 + 20 * i, 200))
    (scans / "broken.jpg").write_bytes(b"\xff\xd8\xff nope")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    frozen_csv, source_csv = tmp_path / "frozen.csv", tmp_path / "source.csv"
    a = subprocess.run([str(frozen), "classify", str(scans), "--csv", str(frozen_csv)], env=env, capture_output=True, text=True)
    b = subprocess.run([sys.executable, "-m", "gui", "classify", str(scans), "--csv", str(source_csv)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert a.returncode == b.returncode == 1, a.stderr + b.stderr  # the broken file
    fa, sb = read_rows(frozen_csv), read_rows(source_csv)
    assert [r["path"] for r in fa] == [r["path"] for r in sb] and len(fa) == 5
    for x, y in zip(fa, sb):
        assert (x["status"], x["prediction"], x["tumor_type"]) == (y["status"], y["prediction"], y["tumor_type"])
        for col in x:
            if col.startswith("p_") or col.endswith("probability") or col.endswith("confidence"):
                if x[col]:
                    assert abs(float(x[col]) - float(y[col])) <= 1e-6


@pytest.mark.slow
def test_frozen_gui_starts_offscreen_and_quits(frozen):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run([str(frozen), "--exit-when-shown"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "window shown" in proc.stdout


@pytest.mark.slow
def test_bundle_is_lean(frozen):
    bundle = frozen.parent
    def forbidden(part: str) -> bool:  # a package folder, its dist-info, or TensorFlow's own libraries
        return any(part == f or part.startswith(f + "-") or part.startswith("lib" + f) for f in FORBIDDEN
                   if f != "scipy") or part in ("scipy", "scipy.libs")

    found = [p for p in bundle.rglob("*") if any(forbidden(part.lower()) for part in p.relative_to(bundle).parts)]
    assert not found
    assert (bundle / "_internal" / "assets" / "models").is_dir()
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())
    assert size <= 300 * 1024 * 1024, f"bundle is {size / 2**20:.0f} MiB"
