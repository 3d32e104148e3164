"""Cold start of an app build to a visible window (offscreen), median of 5 runs.

    python -m tests.benchmarks.startup [EXECUTABLE...]   (default: dist/mri-classifier/mri-classifier)

Each run is a fresh process started with ``--exit-when-shown``; the time is from spawn to the
line "window shown" (printed once the window is on screen). Also prints the bundle's size on disk.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def time_to_window(cmd: list[str]) -> float:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for line in proc.stdout:
        if "window shown" in line:
            elapsed = time.perf_counter() - t0
            proc.wait(timeout=30)
            return elapsed
    raise RuntimeError(f"{cmd} never showed its window")


def bundle_size(exe: Path) -> float:
    folder = exe.parent
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 2**20


def main() -> None:
    targets = sys.argv[1:] or [str(ROOT / "dist" / "mri-classifier" / "mri-classifier")]
    for exe in targets:
        cmd = [exe, "--exit-when-shown"]
        time_to_window(cmd)  # warm the file cache once: "cold" means a new process, not an empty disk cache
        times = [time_to_window(cmd) for _ in range(5)]
        print(f"{exe}: cold start to visible window, median of 5: {statistics.median(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)}); bundle {bundle_size(Path(exe)):.0f} MiB")
    src = [sys.executable, "-m", "gui", "--exit-when-shown"]
    times = [time_to_window(src) for _ in range(5)]
    print(f"from source (python -m gui): median of 5: {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
