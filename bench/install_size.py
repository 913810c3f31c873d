"""Installed size per distribution of a virtual environment (files listed in each RECORD).

Usage: python3 -m venv V && V/bin/pip install . && \\
       python bench/install_size.py V/lib/python3.*/site-packages [--out F]
"""

from __future__ import annotations

import argparse
import os
from importlib import metadata

from _output import emit


def main() -> int:
    """Sum the files of every distribution installed in the given site-packages."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("site_packages")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    sizes: dict[str, float] = {}
    for dist in metadata.distributions(path=[args.site_packages]):
        total = sum(os.path.getsize(p) for f in dist.files or []
                    if os.path.isfile(p := os.path.join(args.site_packages, str(f))))
        sizes[f"{dist.metadata['Name']} {dist.version}"] = round(total / 1e6, 1)
    ranked = dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
    return emit({"bench": "install_size", "site_packages": args.site_packages,
                 "total_mb": round(sum(sizes.values()), 1), "mb": ranked}, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
