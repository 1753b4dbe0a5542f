"""Four-property check CLI (四性检测): ``python -m archive_dr.verify ROOT ...``.

Metadata from a CSV/JSON manifest (``--manifest``) or PostgreSQL
(``--db-name`` etc.; password from ``PGPASSWORD``/``~/.pgpass``, never argv).
Prints a short bilingual summary; ``--json`` prints / ``--json-out`` writes
the machine-readable result. Exit 0 = all four properties pass, 1 = a
property failed, 2 = the check could not run (bad arguments, psql error).
The logic is ``module_utils/archive_verify.py`` (shared with the
``archive_verify`` Ansible module).
"""
from __future__ import annotations

import argparse
import json
import sys

from archive_dr.fixity import load

_v = load("archive_verify")
verify = _v.verify
summary_text = _v.summary_text
rows_from_postgres = _v.rows_from_postgres
run_scan = _v.run_scan
load_manifest = load("archive_fixity").load_manifest


def _codes(s):
    return tuple(int(x) for x in str(s).split(",") if x.strip())


def build_parser():
    p = argparse.ArgumentParser(prog="archive-dr verify", description=__doc__.splitlines()[0])
    p.add_argument("root", help="file store root (file_path in metadata is relative to it)")
    src = p.add_argument_group("metadata source (one of)")
    src.add_argument("--manifest", help="CSV (archive_item columns, header line) or JSON manifest")
    src.add_argument("--db-name", help="PostgreSQL database (reads table via psql COPY ... TO STDOUT)")
    src.add_argument("--db-host")
    src.add_argument("--db-port")
    src.add_argument("--db-user")
    src.add_argument("--db-table", default="archive_item")
    src.add_argument("--db-where", help="optional SQL filter, e.g. \"fonds = 'Z001'\"")
    src.add_argument("--psql", default="psql")
    p.add_argument("--scan-command", help="malware scan hook; {root} or {path} placeholders, "
                                          "e.g. 'clamscan -r --infected --no-summary {root}'")
    p.add_argument("--scan-ok-codes", type=_codes, default=(0,), help="exit codes meaning clean (default 0)")
    p.add_argument("--scan-infected-codes", type=_codes, default=(1,),
                   help="exit codes meaning infected (default 1); any other code = scan error")
    p.add_argument("--require-scan", action="store_true", help="fail security if no scan command is given")
    p.add_argument("--usability", choices=("auto", "stdlib", "qpdf", "both"), default="auto",
                   help="auto = stdlib parser + qpdf --check if installed")
    p.add_argument("--exclude", action="append", default=[], help="relative dir to skip (repeatable)")
    p.add_argument("--workers", type=int)
    p.add_argument("--json", action="store_true", help="print the JSON result to stdout")
    p.add_argument("--json-out", help="write the JSON result to this file")
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    try:
        if a.manifest:
            rows = load_manifest(a.manifest)
        elif a.db_name:
            rows = rows_from_postgres(a.db_name, a.db_host, a.db_port, a.db_user, None,
                                      a.db_table, a.db_where, a.psql)
        else:
            print("error: give --manifest or --db-name", file=sys.stderr)
            return 2
        res = verify(a.root, rows, scan_command=a.scan_command, scan_ok_codes=a.scan_ok_codes,
                     scan_infected_codes=a.scan_infected_codes, usability=a.usability,
                     workers=a.workers, exclude=a.exclude, require_scan=a.require_scan)
    except (OSError, RuntimeError, ValueError) as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    if a.json_out:
        with open(a.json_out, "w", encoding="utf-8") as f:
            json.dump(res, f, ensure_ascii=False, indent=2)
    if a.json:
        print(json.dumps(res, ensure_ascii=False, indent=2))
    else:
        print(summary_text(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
