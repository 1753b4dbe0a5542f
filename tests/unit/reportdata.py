"""Inputs for the inspection, drill and report tests (test_inspect, test_report, test_report_render).

A helper module, not a test module: the tests import from here, never from each other.
"""
from __future__ import annotations

DAY = 86400.0
NOW = 1_800_000_000.0


def healthy(**over):
    c = {
        "time": NOW,
        "filesystems": [{"mount_point": "/srv/dr", "device": "/dev/loop2", "fs_type": "btrfs",
                         "capacity_bytes": 2 << 30, "used_bytes": 200 << 20, "free_bytes": (2 << 30) - (200 << 20),
                         "used_pct": 9.8, "inodes_free": 1000, "storage": None}],
        "storage_volumes_unmounted": [],
        "jobs": [{"job": "archive-db-full", "kind": "full", "system": "archive-db", "max_age": 86400,
                  "last_success": NOW - 3600, "outcome": "success", "last_rc": 0, "consecutive_failures": 0,
                  "timer_unit": "archive-dr-backup-archive-db-full.timer",
                  "timer": {"active": "active", "enabled": "enabled", "loaded": "loaded"}}],
        "postgres": None, "metrics": [], "tunnel": None, "certificates": [],
        "time_sync": {"leap_status": "Normal", "stratum": 9, "offset_seconds": -0.00001},
        "failed_units": [],
        "security": {"sshd": {"passwordauthentication": "no", "kbdinteractiveauthentication": "no",
                              "permitrootlogin": "without-password", "pubkeyauthentication": "yes"},
                     "nft_input_chains": [["inet", "baseline", "input", "drop"]],
                     "listening": [["tcp", "0.0.0.0", 22], ["udp", "127.0.0.1", 323]]},
        "media": [],
    }
    c.update(over)
    return c


def raw(now, used, **over):
    c = healthy(time=now, **over)
    c["filesystems"][0]["used_bytes"] = used
    return {"id": "t%d" % now, "started": now, "thresholds": {"forecast_min_span_days": 1},
            "hosts": {"miyun-store": {"collected": c, "findings": []},
                      "geo-fw": {"unreachable": True, "msg": "ssh: connect timed out"}}}


def drill_result(rto, rpo, level="5"):
    t = NOW
    phases = [{"name": n, "start": t + a, "end": t + b, "seconds": b - a, "ok": True}
              for n, a, b in (("declare", 0, 1), ("promote", 1, 40), ("verify", 40, rto), ("failback", rto, rto + 60))]
    return {"kind": "drill", "id": "d%d" % rto, "scenario": "host-lost", "mode": "destructive", "started": t,
            "finished": t + rto + 60, "targets": {"rto_seconds": 600, "rpo_seconds": 60}, "phases": phases,
            "rto_seconds": rto, "rto_met": rto <= 600, "rpo": {"db_seconds": rpo, "files_seconds": rpo / 2},
            "rpo_seconds": rpo, "rpo_met": rpo <= 60, "verify": [{"stage": "after recovery", "passed": True,
                                                                  "summary": "PASS"}],
            "level": {"level": level, "note": "", "basis": "x"}, "passed": True}
