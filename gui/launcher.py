"""``mri-classifier``: the entry point. ``classify``, ``merge``, ``watch``, ``listen`` and ``tune`` run the
Qt-free headless commands (``gui.core``); anything else opens the window (``gui.app``), which is only
imported then."""

from __future__ import annotations

import argparse
import sys

from gui.core.commands.classify import build_parser, classify_main
from gui.core.commands.common import quiet_decoder_warnings


def app_parser() -> argparse.ArgumentParser:
    """``mri-classifier [FILE...]``: the window. Its help names the headless command from that
    command's own parser, so the two never drift apart."""
    p = argparse.ArgumentParser(
        prog="mri-classifier",
        description="Open the window (with these files or folders), or classify headless with `classify`. "
                    "Research use only. Not for diagnosis.",
        epilog="headless:\n  " + build_parser().format_usage().removeprefix("usage: ")
               + "  (`mri-classifier classify --help` lists its options)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", help="files to open; several files or a folder go to the Batch tab")
    p.add_argument("--exit-when-shown", action="store_true",
                   help="quit as soon as the window is on screen, printing 'window shown' (smoke tests)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_decoder_warnings()
    if argv and argv[0] == "classify":
        return classify_main(argv[1:])
    if argv and argv[0] == "merge":
        from gui.core.commands.merge import merge_main

        return merge_main(argv[1:])
    if argv and argv[0] == "watch":
        from gui.core.commands.watch import watch_main

        return watch_main(argv[1:])
    if argv and argv[0] == "tune":
        from gui.core.commands.tune import tune_main

        return tune_main(argv[1:])
    if argv and argv[0] == "listen":
        from gui.core.commands.listen import listen_main

        return listen_main(argv[1:])
    try:
        app_parser().parse_known_args(argv)  # -h/--help prints the generated usage; Qt's own options pass
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    from gui.app.main import run_app

    return run_app(argv)
