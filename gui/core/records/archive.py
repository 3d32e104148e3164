"""Large archives: deterministic shards for array jobs (``--shard K/N``) and the checked reading of the shards' CSVs that ``merge`` joins."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from gui.core.readers import DicomSeries


def shard_of(item: Path | DicomSeries, roots: list[Path], shards: int) -> int:
    """The shard (0-based) of a file or study: a stable hash of its path relative to the folder it was
    found in (a study by its first file, so its files never split), the same on every machine."""
    first = item.files[0] if isinstance(item, DicomSeries) else item
    relative = first.name
    for root in roots:
        try:
            relative = first.relative_to(root).as_posix()
            break
        except ValueError:
            continue
    digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (1, 4): the 0-based shard and the count; ValueError when it is not K/N with 1 <= K <= N."""
    k, _, n = text.partition("/")
    k_i, n_i = int(k), int(n)
    if not 1 <= k_i <= n_i:
        raise ValueError(text)
    return k_i - 1, n_i


def read_csvs(paths: list[Path]) -> tuple[list[str], list[dict[str, str]]]:
    """Rows of CSVs made by ``classify`` with the same columns; ValueError naming a file whose columns
    differ or a path found twice (a shard run twice, or two overlapping runs)."""
    columns: list[str] | None = None
    rows: list[dict[str, str]] = []
    seen: dict[str, Path] = {}
    for p in paths:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if columns is None:
                columns = list(reader.fieldnames or [])
            elif list(reader.fieldnames or []) != columns:
                raise ValueError(f"{p} has other columns than {paths[0]} (made with other models?)")
            for row in reader:
                if row["path"] in seen:
                    raise ValueError(f"{row['path']} is in both {seen[row['path']]} and {p}")
                seen[row["path"]] = p
                rows.append(row)
    return columns or [], rows
