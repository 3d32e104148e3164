"""The layering holds: Qt-free core, no training stack in the app (import-linter contracts)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (test extra)")
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_headless_command_loads_no_qt_and_no_training_stack():
    code = ("import sys, gui.core.commands.classify, gui.core.engine.classifier, gui.core.engine.stream, gui.core.records.csvout, gui.core.readers, gui.core.engine.model, gui.core.engine.heatmap; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'tensorflow', 'keras', 'sklearn', 'matplotlib', 'onnx', 'tf2onnx')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
