"""Starting the app's commands as child processes the way a user's shell would."""

from __future__ import annotations

import signal


def with_ctrl_c() -> None:
    """``preexec_fn`` of a command a test stops with SIGINT: a runner started in the background (``cmd &``)
    ignores SIGINT, children inherit that, and the command would never see the test's Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
