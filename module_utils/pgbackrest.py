# -*- coding: utf-8 -*-
"""pgBackRest helpers shared by library/pgbackrest_*.py (stdlib only, unit-tested).

``pgbackrest info --output=json`` status codes (per stanza):
0 ok, 1 missing stanza path, 2 no valid backups, 3 missing stanza data,
4 different across repos, 5 database mismatch, 6 backup/expire running...
"""
from __future__ import annotations

import json

MISSING_CODES = (1, 3)      # stanza-create needed
OK_CODES = (0, 2)           # exists (2 = no backup yet)


def parse_info(text, stanza):
    """Return {"exists": bool, "code": int, "message": str, "backups": int} for one stanza."""
    data = json.loads(text or "[]")
    for entry in data:
        if entry.get("name") == stanza:
            status = entry.get("status") or {}
            code = int(status.get("code", -1))
            return {"exists": code not in MISSING_CODES, "code": code,
                    "message": status.get("message", ""), "backups": len(entry.get("backup") or [])}
    return {"exists": False, "code": 1, "message": "stanza not listed", "backups": 0}


def stanza_plan(info, state="present"):
    """Actions to reach the wanted state: [] or ["stanza-create"]. Raises ValueError for states
    that need an operator (e.g. a cipher or system-id mismatch)."""
    if state != "present":
        raise ValueError("only state=present is supported (stanza-delete is an operator's decision)")
    if info["code"] in MISSING_CODES:
        return ["stanza-create"]
    if info["code"] in OK_CODES or info["code"] == 6:
        return []
    raise ValueError("stanza needs attention (code %d: %s)" % (info["code"], info["message"]))


def backup_label_time(label):
    """'20240101-010203F_20240102-030405I' -> '2024-01-02 03:04:05' (time of the newest part)."""
    last = label.split("_")[-1]
    d, t = last[:8], last[9:15]
    return "%s-%s-%s %s:%s:%s" % (d[:4], d[4:6], d[6:8], t[:2], t[2:4], t[4:6])
