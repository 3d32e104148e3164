"""The headless ``merge`` command: the CSVs of ``classify --shard K/N`` runs into one, checked."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gui.core.records import archive, csvout


def merge_main(argv: list[str]) -> int:
    """``mri-classifier merge A.csv B.csv ... --csv OUT [--force]``: exit 0 merged, 2 when the inputs
    do not fit together (other columns, a path in two of them) or OUT cannot be written."""
    p = argparse.ArgumentParser(prog="mri-classifier merge",
                                description="Merge the CSVs of sharded classify runs (same models) into one CSV.")
    p.add_argument("inputs", nargs="+", help="CSV files written by `mri-classifier classify`")
    p.add_argument("--csv", required=True, help="the merged CSV to write (refuses to replace one without --force)")
    p.add_argument("--force", action="store_true", help="replace an existing CSV")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    inputs, out = [Path(i) for i in args.inputs], Path(args.csv)
    try:
        if out.resolve() in {i.resolve() for i in inputs}:
            raise ValueError(f"--csv {out} is one of the inputs")
        columns, rows = archive.read_csvs(inputs)
        written = csvout.write_csv_atomic(out, columns, rows, force=args.force)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(rows)} rows from {len(inputs)} files into {written}", file=sys.stderr)
    if written != out:
        print(f"note: {out} appeared while merging, so it was kept; the merged rows are in {written}", file=sys.stderr)
    return 0
