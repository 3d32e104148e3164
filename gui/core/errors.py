"""The one shape of a problem with a user's file: which file, and why, in words for a user."""

from __future__ import annotations

from pathlib import Path


class FileProblem(Exception):
    """A file the app cannot use; ``reason`` is a sentence for a user, ``str()`` names the file too.
    Subclasses say which kind of file (an image, a model) so callers can catch just that."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")
