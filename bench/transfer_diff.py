"""Two leave-one-set-out tables (bench/transfer.py JSON) side by side, per set.

For the fixed levels, the best fixed granularity and the shipped default (``default-loso``),
prints a markdown table (old, new, new - old in points) per set plus the average on stderr,
and ONE JSON object: the differences and the decision numbers (mean change of the default,
worst set, how many (set, level) cells of the fixed levels went down).

Usage: python bench/transfer_diff.py OLD.json NEW.json [--out F.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _output import emit

LEVELS = ("level:32", "level:64", "level:128", "level:256", "level:512")
SYSTEMS = (*LEVELS, "best_fixed_granularity", "default-loso")


def _value(row: dict, key: str) -> float:
    v = row[key]
    return float(v["recall"] if isinstance(v, dict) else v)


def main() -> int:
    """Compare the two tables and print the result."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    old = json.loads(Path(args.old).read_text())["sets"]
    new = json.loads(Path(args.new).read_text())["sets"]
    sets = [s for s in old if s in new]
    diff = {s: {k: round(100 * (_value(new[s], k) - _value(old[s], k)), 2) for k in SYSTEMS}
            for s in sets}
    avg = {k: round(sum(diff[s][k] for s in sets) / len(sets), 2) for k in SYSTEMS}
    fixed_cells = [diff[s][k] for s in sets for k in LEVELS]
    summary = {
        "default_mean_points": avg["default-loso"],
        "default_worst_set": min((diff[s]["default-loso"], s) for s in sets),
        "fixed_levels_mean_points": round(sum(fixed_cells) / len(fixed_cells), 2),
        "fixed_cells_down": sum(c < 0 for c in fixed_cells),
        "fixed_cells_up": sum(c > 0 for c in fixed_cells),
        "fixed_cells": len(fixed_cells),
    }
    head = "| set | " + " | ".join(SYSTEMS) + " |"
    lines = [head, "|" + "---|" * (len(SYSTEMS) + 1)]
    for s in sets:
        cells = [f"{_value(old[s], k):.3f} → {_value(new[s], k):.3f} ({diff[s][k]:+.1f})"
                 for k in SYSTEMS]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("| mean Δ (points) | " + " | ".join(f"{avg[k]:+.2f}" for k in SYSTEMS) + " |")
    print("\n".join(lines), file=sys.stderr)
    return emit({"bench": "transfer_diff", "old": args.old, "new": args.new,
                 "summary": summary, "mean_points": avg, "points": diff}, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
