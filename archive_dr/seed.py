"""Lab data generator CLI: ``python -m archive_dr.seed OUT_DIR --items N``.

The logic lives in ``module_utils/archive_seed.py`` (shared with the
``archive_seed`` Ansible module); see that file for the output layout and
``module_utils/archive_schema.sql`` for the ``archive_item`` table.
"""
from __future__ import annotations

import argparse
import json
import sys

from archive_dr.fixity import load

_seed = load("archive_seed")
generate = _seed.generate
plan_items = _seed.plan_items
build_pdf = _seed.build_pdf
parse_size = _seed.parse_size
DEFAULT_ITEMS = _seed.DEFAULT_ITEMS


def build_parser():
    p = argparse.ArgumentParser(prog="archive-dr lab seed",
                                description="Generate deterministic scanned-voucher PDFs and archive_item metadata.")
    p.add_argument("out_dir", nargs="?", default="lab-data/archive",
                   help="output directory (files/ + archive_item.csv + archive_item.copy.sql)")
    p.add_argument("--items", "-n", type=int, default=None,
                   help="number of archive items (default %d, or derived from --total-size)" % DEFAULT_ITEMS)
    p.add_argument("--total-size", default=None,
                   help="approximate total size, e.g. 300M, 2G (sizes are scaled to it)")
    p.add_argument("--seed", default="1", help="random seed (same seed -> identical output)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: CPUs, max 8)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    s = generate(a.out_dir, items=a.items, seed=a.seed, total_size=parse_size(a.total_size),
                 workers=a.workers)
    if a.json:
        print(json.dumps(s, ensure_ascii=False, indent=2))
    else:
        print("生成 generated %d items / %d pages, %.1f MB in %.1f s (%.1f MB/s) -> %s"
              % (s["items"], s["pages"], s["total_bytes"] / 2**20, s["seconds"], s["mb_per_s"] or 0,
                 s["out_dir"]))
        print("metadata: %s ; psql load: %s" % (s["manifest_csv"], s["copy_sql"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
