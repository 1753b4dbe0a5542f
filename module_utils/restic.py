# -*- coding: utf-8 -*-
"""restic helpers shared by library/restic_*.py and the appliance scripts (stdlib only, unit-tested)."""
from __future__ import annotations

import os


def local_repo_state(path):
    """'absent' (no dir or empty dir), 'repo' (has a restic config), or 'foreign' (other data)."""
    if not os.path.exists(path):
        return "absent"
    if not os.path.isdir(path):
        return "foreign"
    entries = os.listdir(path)
    if not entries:
        return "absent"
    if os.path.isfile(os.path.join(path, "config")) and os.path.isdir(os.path.join(path, "data")):
        return "repo"
    return "foreign"


def repo_plan(state):
    """Actions for a local repository path: ['init'], [] or ValueError (never init over other data)."""
    if state == "absent":
        return ["init"]
    if state == "repo":
        return []
    raise ValueError("path holds data that is not a restic repository; refusing to initialise over it")


def forget_args(retention):
    """GFS retention dict -> restic forget flags; every count must be >= 1 (0 would drop a tier)."""
    args = []
    for key in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        if key not in retention:
            continue
        n = int(retention[key])
        if n < 1:
            raise ValueError("retention %s must be >= 1 (got %d)" % (key, n))
        args.append("--keep-%s=%d" % (key, n))
    if not args:
        raise ValueError("retention needs at least one of last, hourly, daily, weekly, monthly, yearly")
    return args


def next_subset(current, total):
    """Rotation for `restic check --read-data-subset=k/N`: 1..N then back to 1."""
    total = int(total)
    if total < 1:
        raise ValueError("subsets must be >= 1")
    try:
        k = int(current)
    except (TypeError, ValueError):
        k = 0
    return 1 if k < 1 or k >= total else k + 1
