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


def rpo_fig(seconds, measured=True, bound=None, **extra):
    return dict({"seconds": seconds, "measured": measured, "bound": bound}, **extra)


def drill_result(rto, rpo, level=5, files=None):
    """A drill result as drill.run() writes it: declared after the disaster phase, RTO to the end of service.
    ``files``: the file RPO figure (default: measured, rpo / 2)."""
    t = NOW
    phases = [{"name": n, "label": lab, "start": t + a, "end": t + b, "seconds": b - a, "ok": True, "detail": d}
              for n, lab, a, b, d in (
                  ("preflight", "准备检查 preflight", 0, 0.01, "playbooks: promote-miyun.yml, failback-geo.yml"),
                  ("disaster", "灾难: 主机损毁 host lost (stop)", 0.01, 1, "ran: podman stop geo-archive"),
                  ("recover", "恢复 recover at miyun (promote-miyun.yml)", 1, 40, "miyun promoted in 3.9 s"),
                  ("service", "服务恢复 archive answers at miyun", 40, 1 + rto, "newest heartbeat found"),
                  ("failback", "回切 failback to geo (failback-geo.yml)", 1 + rto, rto + 61, "geo-archive: 37 ok"))]
    db = rpo_fig(float(rpo), last_acked=t + 0.5, newest_recovered=t + 0.5 - rpo, resolution_seconds=1.0)
    files = files or rpo_fig(rpo / 2, last_acked=t + 0.5, newest_recovered=t + 0.5 - rpo / 2)
    measured = files["measured"]
    overall = max(rpo, files["seconds"] or 0)
    return {"kind": "drill", "id": "d%d" % rto, "scenario": "host-lost", "scenario_label": "主机损毁 archive host lost",
            "mode": "destructive", "started": t, "declared": t + 1, "finished": t + rto + 61,
            "targets": {"rto_seconds": 600, "rpo_seconds": 60}, "phases": phases,
            "disaster": {"method": "stop", "commands": ["podman stop geo-archive"],
                         "description": "controller runs dr_drill.disaster_commands.host-lost"},
            "replication": {"mode": "async", "synchronous": False},
            "rto_seconds": rto, "rto_met": rto <= 600,
            "rpo": {"database": db, "files": files, "db_seconds": rpo,
                    "files_seconds": files["seconds"] if measured else None,
                    "overall": rpo_fig(overall, measured, None if measured else "lower"),
                    "heartbeats_acked": 16, "heartbeat_errors": 0, "heartbeat_interval": 1.0},
            "rpo_seconds": overall if measured else None, "rpo_met": measured and overall <= 60,
            "verify": [{"stage": "after recovery", "passed": True, "summary": "四性检测 four-property check: PASS 通过"}],
            "level": {"level": level if measured else None, "note": "technical indicators",
                      "basis": "measured RTO, RPO; GB/T 20988-2007 附录A"},
            "passed": measured and rto <= 600 and overall <= 60}
