"""Long background work at a lower CPU priority than the window's own thread.

On a 2-core machine a batch keeps four or more threads busy (decoding, inference, a study's scoring),
and the window's thread must still get the CPU at once when it has something to paint or a key to
answer. The thread that runs a batch or a study lowers its own priority; the engine's threads it
starts inherit it (Linux gives a new thread its creator's nice value). The batch is not slowed when
nothing else wants the CPU: a nice value only orders who runs first. A pool thread keeps the lower
priority for its later jobs: the window runs its short jobs (opening a file, exports, reports) on
pools of its own, so only long jobs share the lowered threads.

Linux only: it has a nice value per thread. Elsewhere this does nothing (Python's standard library has
no per-thread priority there, and Qt's thread priorities do nothing under Linux's default scheduler).
The command line never calls it: there, the batch is all there is to run.
"""

from __future__ import annotations

import os
import sys
import threading

#: The nice value of background work: below the window, above nothing the user started.
BACKGROUND_NICE = 10


def lower_this_thread() -> None:
    """Give the calling thread (and the threads it starts from now on) the background nice value,
    unless it already runs at that or lower. Never raises: a refused change leaves the priority as it was."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except OSError:
        pass
