"""Issue 14 item 5: without Qt's X11 libraries the app says which packages to install, not Qt's abort."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui.app import linux_libraries as ll

ROOT = Path(__file__).resolve().parents[1]

LDD = """\tlinux-vdso.so.1 (0x00007ffd)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxcb-cursor.so.0 => not found
"""


def test_ldd_output_becomes_one_sentence_with_package_names(monkeypatch, tmp_path):
    monkeypatch.setattr(ll.shutil, "which", lambda _name: "/usr/bin/ldd")
    missing = ll.missing_libraries([tmp_path / "libqxcb.so"],
                                   run=lambda *a, **k: subprocess.CompletedProcess(a, 0, LDD, ""))
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"]
    text = ll.message(missing)
    assert "sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in text
    assert "sudo dnf install xcb-util-cursor xcb-util-keysyms xcb-util-wm" in text
    assert text.count(".") >= 1 and "\n" not in text


def test_no_check_off_x11(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert ll.xcb_problem() is None
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert ll.xcb_problem() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is a Linux/X11 matter")
def test_no_display_is_a_sentence_not_qts_abort():
    """Over SSH or in a container, the first README command prints what to do and exits 1 (Qt aborted, 134)."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "DISPLAY")}
    out = subprocess.run([sys.executable, "-m", "gui", "--exit-when-shown"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1 and "no display is available" in out.stderr
    assert "mri-classifier classify" in out.stderr and "Could not load the Qt platform plugin" not in out.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 libraries are a Linux matter")
def test_the_app_prints_the_sentence_where_the_libraries_are_missing():
    if not ll.missing_libraries(ll.xcb_plugin_files()):
        pytest.skip("this machine has Qt's X11 libraries")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":99"
    out = subprocess.run([sys.executable, "-m", "gui"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "sudo apt install" in out.stderr and "Could not load the Qt platform plugin" not in out.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is a Linux/X11 matter")
def test_a_display_nobody_answers_at_is_a_sentence_not_qts_abort(monkeypatch):
    """DISPLAY set to an X server that is not there (a closed SSH forwarding): Qt aborted (exit 134)
    blaming its plugin; the app now names the display and exits 1 before Qt starts."""
    import socket

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(ll, "missing_libraries", lambda _files: [])
    monkeypatch.setenv("DISPLAY", ":987")
    text = ll.xcb_problem()
    assert text is not None and "DISPLAY=:987" in text and "mri-classifier classify" in text
    with socket.socket() as server:  # an X server that answers: no sentence
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        if port > 6000:
            monkeypatch.setenv("DISPLAY", f"127.0.0.1:{port - 6000}")
            assert ll.xcb_problem() is None
    assert ll.display_reachable("something odd")
