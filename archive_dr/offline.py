"""Offline Blu-ray volume sets CLI: ``python -m archive_dr.offline <verb> ...``.

verbs: build (plan + ISO + par2 + read-back + register; ``--plan-only`` = dry run),
verify IMAGE MANIFEST, repair IMAGE, due (media due for re-check), recheck.
Logic: ``module_utils/archive_offline.py`` (shared with the
``archive_offline`` Ansible module). Needs xorriso and par2 on PATH.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

from archive_dr.fixity import load

_o = load("archive_offline")
BDR_DL = _o.BDR_DL
OfflineError = _o.OfflineError
plan_volumes = _o.plan_volumes
build_set = _o.build_set
verify_image = _o.verify_image
repair_image = _o.repair_image
load_register = _o.load_register
due_for_recheck = _o.due_for_recheck
recheck = _o.recheck


def _date(s):
    return dt.date.fromisoformat(s)


def build_parser():
    p = argparse.ArgumentParser(prog="archive-dr offline", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)
    b = sub.add_parser("build", help="plan and build a volume set from a snapshot directory")
    b.add_argument("snapshot")
    b.add_argument("out_dir")
    b.add_argument("--media-size", type=int, default=BDR_DL, help="bytes per disc (default BD-R DL %d)" % BDR_DL)
    b.add_argument("--redundancy", type=float, default=5.0, help="par2 redundancy in %% of the image (default 5)")
    b.add_argument("--metadata", help="archive_item CSV/JSON: hashes must match, archive numbers go into manifests")
    b.add_argument("--prefix", default="AKJ", help="label prefix (default AKJ)")
    b.add_argument("--interval-days", type=int, default=365, help="re-check interval (default 365)")
    b.add_argument("--max-source-blocks", type=int, default=2000,
                   help="par2 source blocks per image (speed vs granularity, default 2000)")
    b.add_argument("--plan-only", action="store_true")
    b.add_argument("--today", type=_date, help=argparse.SUPPRESS)
    v = sub.add_parser("verify", help="read-back verification of one image")
    v.add_argument("register")
    v.add_argument("label")
    r = sub.add_parser("repair", help="repair an image in place from its par2 tail, then verify")
    r.add_argument("register")
    r.add_argument("label")
    d = sub.add_parser("due", help="list media due for re-check (exit 1 if any)")
    d.add_argument("register")
    d.add_argument("--today", type=_date)
    c = sub.add_parser("recheck", help="re-verify media due (or --label) and update the register")
    c.add_argument("register")
    c.add_argument("--label", action="append")
    c.add_argument("--today", type=_date)
    return p


def _medium(reg_path, label):
    for m in load_register(reg_path)["media"]:
        if m["label"] == label:
            return m
    raise OfflineError("label %s not in %s" % (label, reg_path))


def main(argv=None):
    a = build_parser().parse_args(argv)
    try:
        if a.verb == "build":
            res = build_set(a.snapshot, a.out_dir, a.media_size, a.redundancy, a.prefix, a.metadata,
                            a.interval_days, a.today, a.max_source_blocks, check_mode=a.plan_only)
            print(json.dumps(res, ensure_ascii=False, indent=2))
            return 0
        if a.verb in ("verify", "repair"):
            reg_path = a.register if a.register.endswith(".json") else os.path.join(a.register, _o.REGISTER)
            m = _medium(reg_path, a.label)
            if a.verb == "repair":
                print(json.dumps(repair_image(m["image"], m["ecc"]), indent=2))
            res = verify_image(m["image"], m["manifest"], m.get("ecc"))
            print(json.dumps(res, ensure_ascii=False, indent=2))
            return 0 if res["ok"] else 1
        reg_path = a.register if a.register.endswith(".json") else os.path.join(a.register, _o.REGISTER)
        if a.verb == "due":
            due = due_for_recheck(load_register(reg_path), a.today)
            for m in due:
                print("%s\tdue %s\tlast %s %s" % (m["label"], m["next_check_due"], m["last_check"], m["last_result"]))
            return 1 if due else 0
        res = recheck(reg_path, a.today, a.label)
        print(json.dumps(res, ensure_ascii=False, indent=2))
        return 0 if res["ok"] else 1
    except OfflineError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
