"""A job that has never run is pending until its first due time plus its threshold (module_utils/backup_status.py),
as the dead-man, the replica status and the inspection all see it."""
from __future__ import annotations

import json

from archive_dr.fixity import load

bs = load("backup_status")
ins = load("dr_inspect")

HOUR = 3600.0
T0 = 1_800_000_000.0


def test_never_run_job_is_pending_until_first_due_plus_threshold():
    assert bs.job_health(None, HOUR, now=T0, first_due=T0 + 600) == "pending"
    assert bs.job_health(None, HOUR, now=T0 + 600 + HOUR, first_due=T0 + 600) == "pending"
    assert bs.job_health(None, HOUR, now=T0 + 601 + HOUR, first_due=T0 + 600) == "stale"


def test_never_run_job_without_a_timer_is_stale_at_once():
    assert bs.job_health(None, HOUR, now=T0, first_due=None) == "stale"


def test_a_success_is_judged_by_its_age_whatever_the_timer():
    assert bs.job_health(T0 - 10, HOUR, now=T0, first_due=T0 + 600) == "ok"
    assert bs.job_health(T0 - HOUR - 1, HOUR, now=T0, first_due=T0 + 600) == "stale"


def test_list_timers_json_gives_first_trigger_else_next_elapse():
    text = json.dumps([
        {"next": 1796286600000000, "left": 1, "last": 0, "passed": 0,
         "unit": "archive-dr-backup-archive-db-full.timer", "activates": "x.service"},
        {"next": 1796290000000000, "left": 1, "last": 1796280000000000, "passed": 1,
         "unit": "archive-dr-backup-archive-db-incr.timer", "activates": "y.service"},
    ])
    times = bs.parse_timers(text)
    assert bs.first_due(times, "archive-dr-backup-archive-db-full.timer") == 1796286600.0
    assert bs.first_due(times, "archive-dr-backup-archive-db-incr.timer") == 1796280000.0
    assert bs.first_due(times, "archive-dr-backup-missing.timer") is None
    assert bs.parse_timers("not json") == {}


def test_deadman_exits_zero_on_a_fresh_install_and_one_once_overdue(tmp_path):
    cfg = {"status_dir": str(tmp_path), "jobs": {"archive-db-diff": {"max_age": HOUR}}}
    due = {"archive-dr-backup-archive-db-diff.timer": (0.0, T0 + 600)}
    assert bs.deadman(cfg, now=T0, timer_times=due) == [("archive-db-diff", "pending", None, HOUR)]
    assert bs.deadman(cfg, now=T0 + 2 * HOUR, timer_times=due)[0][1] == "stale"


def _job(**over):
    j = {"job": "archive-db-diff", "max_age": HOUR, "last_success": None, "outcome": None,
         "timer_unit": "archive-dr-backup-archive-db-diff.timer",
         "timer": {"active": "active", "enabled": "enabled", "loaded": "loaded"}, "first_due": T0 + 600}
    j.update(over)
    return j


def _job_findings(job, now):
    return [f for f in ins.evaluate("geo-backup", {"time": now, "jobs": [job]}) if f["check"].startswith("job")]


def test_inspection_reports_a_pending_job_as_info_then_critical_when_overdue():
    pending = _job_findings(_job(), T0)
    assert [(f["severity"], f["check"]) for f in pending] == [("info", "job-age")]
    assert "has not run yet" in pending[0]["message"]
    overdue = _job_findings(_job(), T0 + 600 + HOUR + 1)
    assert [(f["severity"], f["message"]) for f in overdue] == [
        ("critical", "job archive-db-diff has never succeeded")]
