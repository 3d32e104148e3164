"""Before Qt starts on a Linux desktop: are the system libraries of its X11 (xcb) plugin there?

Without them Qt aborts with "Could not load the Qt platform plugin "xcb"" and a list of plugins
that says nothing about what to install. ``ldd`` on the plugin names the missing libraries; this
module turns them into one sentence with the Debian/Ubuntu and Fedora package names.
"""

from __future__ import annotations

import os
import re
import socket
import shutil
import subprocess
import sys
from pathlib import Path

#: Library file -> (Debian/Ubuntu package, Fedora package).
PACKAGES = {
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
}


def xcb_plugin_files() -> list[Path]:
    """The xcb platform plugin and Qt's xcb integration library, from source or a frozen build."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        roots.append(Path(frozen) / "PySide6")
    found = []
    for root in roots:
        found += [f for f in (root / "Qt" / "plugins" / "platforms" / "libqxcb.so",
                              root / "Qt" / "lib" / "libQt6XcbQpa.so.6") if f.exists()]
    return found


def missing_libraries(files: list[Path], run=subprocess.run) -> list[str]:
    """Libraries ``ldd`` reports as "not found" for ``files`` (empty where ``ldd`` is absent)."""
    if not shutil.which("ldd"):
        return []
    missing: list[str] = []
    for f in files:
        try:
            out = run(["ldd", str(f)], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            name = line.split("=>")[0].strip()
            if "not found" in line and name not in missing:
                missing.append(name)
    return missing


def message(missing: list[str]) -> str:
    """One sentence for the user: what is missing and which packages bring it."""
    debian = sorted({PACKAGES.get(m, (m, m))[0] for m in missing})
    fedora = sorted({PACKAGES.get(m, (m, m))[1] for m in missing})
    return (f"MRI Tumor Classifier cannot open its window: the system libraries {', '.join(missing)} that Qt "
            f"needs for X11 are missing. Install them with `sudo apt install {' '.join(debian)}` "
            f"(Debian/Ubuntu) or `sudo dnf install {' '.join(fedora)}` (Fedora), then start it again. "
            f"(`mri-classifier classify ...` works without them.)")


#: Said instead of Qt's abort (exit 134) when there is no desktop to show the window on.
NO_DISPLAY = ("MRI Tumor Classifier cannot open its window: no display is available (neither DISPLAY nor "
              "WAYLAND_DISPLAY is set, as over SSH or in a container). Start it from a desktop session, or "
              "classify without a window: `mri-classifier classify FOLDER --csv results.csv`. (To try the "
              "window without a screen: QT_QPA_PLATFORM=offscreen mri-classifier --exit-when-shown.)")


def xcb_problem() -> str | None:
    """The sentence to print instead of Qt's abort, or None when Qt's X11 plugin can load (or X11
    is not what Qt will use: another platform is set, or Wayland). No display at all is said too."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM", "xcb") not in ("", "xcb"):
        return None
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return NO_DISPLAY
    if not os.environ.get("DISPLAY"):
        return None  # Wayland only: Qt will use its Wayland plugin
    if os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return None  # Qt will use its Wayland plugin
    missing = missing_libraries(xcb_plugin_files())
    if missing:
        return message(missing)
    display = os.environ["DISPLAY"]
    if not display_reachable(display):
        return UNREACHABLE.format(display=display)
    return None


#: Said instead of Qt's abort when DISPLAY names an X server nobody answers at (a closed SSH session's
#: forwarding, a stopped Xvfb): Qt's own message blames its plugin and suggests reinstalling.
UNREACHABLE = ("MRI Tumor Classifier cannot open its window: no X server answers at DISPLAY={display} (closed SSH "
               "X forwarding, or a virtual screen that is not running). Start it from a desktop session, or "
               "classify without a window: `mri-classifier classify FOLDER --csv results.csv`.")


def display_reachable(display: str, timeout: float = 2.0) -> bool:
    """Whether an X server accepts a connection at ``display`` (``:N``, ``unix:N``, ``host:N``, with an
    optional ``.screen``): the local socket (Linux's abstract one, then the file), or TCP 6000+N. An
    address this does not understand counts as reachable: Qt then decides."""
    match = re.fullmatch(r"(?P<host>[^:]*):(?P<number>\d+)(?:\.\d+)?", display)
    if match is None:
        return True
    host, number = match["host"], int(match["number"])
    if host in ("", "unix"):
        for address in ("\0/tmp/.X11-unix/X%d" % number, "/tmp/.X11-unix/X%d" % number):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                try:
                    s.connect(address)
                    return True
                except OSError:
                    continue
        return False
    try:
        with socket.create_connection((host, 6000 + number), timeout=timeout):
            return True
    except OSError:
        return False
