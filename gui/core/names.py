"""File names as text that is safe to show, log or write to a CSV: one rule for the window, the logs and the CSV."""

from __future__ import annotations

import re

#: C0 and C1 control characters, DEL, and the Unicode line and paragraph separators: a file name
#: holding one could break a CSV cell, start a forged log line or garble a label.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def display_path(text: str) -> str:
    """``text`` with bytes that are not UTF-8 (kept by Python as surrogate escapes) shown as ``\\xff``
    and control characters as ``\\n``, ``\\x1b``, ``\\u2028``... so a name never becomes two lines."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
