"""Pure parts of module_utils/replica_tool.py (the DR pull/snapshot/status tool)."""
from __future__ import annotations

import datetime as dt

import pytest

import replica_tool as rt  # module_utils/ is on the test path (pyproject.toml)


def names(start, step_s, n):
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp() + start
    return [rt.stamp(t0 + i * step_s) for i in range(n)]


def test_stamp_roundtrip():
    t = 1_790_000_000
    assert rt.parse_stamp(rt.stamp(t)) == t
    assert rt.parse_stamp("current") is None


def test_retention_last_keeps_newest_n():
    snaps = names(0, 60, 10)
    keep, delete = rt.retention_plan(snaps, {"last": 3})
    assert keep == snaps[-3:]
    assert delete == snaps[:-3]


def test_retention_daily_keeps_newest_of_each_day():
    snaps = names(0, 6 * 3600, 12)  # 3 days, 4 a day
    keep, _ = rt.retention_plan(snaps, {"daily": 2})
    assert keep == [snaps[7], snaps[11]]


def test_retention_never_touches_foreign_names_and_keeps_newest():
    snaps = names(0, 3600, 5) + ["current", "notes"]
    keep, delete = rt.retention_plan(snaps, {"monthly": 1})
    assert keep == [snaps[4]]
    assert "current" not in delete and "notes" not in delete


@pytest.mark.parametrize("policy", [{}, {"last": 0}, {"daily": -1}, {"forever": 1}])
def test_retention_rejects_zero_and_unknown(policy):
    with pytest.raises(ValueError):
        rt.retention_plan(names(0, 60, 3), policy)


def test_should_snapshot_only_after_a_complete_pull():
    assert not rt.should_snapshot(False, True, True, 0, 1000, 0, False), "a failed/partial pull is never a snapshot"
    assert rt.should_snapshot(True, False, False, None, 1000, 60, False), "first complete pull"
    assert not rt.should_snapshot(True, False, False, 900, 1000, 60, True), "nothing changed"
    assert not rt.should_snapshot(True, True, True, 990, 1000, 60, True), "too soon"
    assert rt.should_snapshot(True, False, True, 900, 1000, 60, True), "pending changes from an earlier pull"


def test_count_changes_from_itemized_output():
    out = "\n".join([
        ">f+++++++++ Z001/2020/a.pdf",
        ".d..t...... Z001/2020/",
        "*deleting   Z001/2019/old.pdf",
        "cd+++++++++ Z002/",
        ">f.st...... Z001/2020/b.pdf",
        "",
        "Number of files: 3",
    ])
    assert rt.count_changes(out) == 4


def test_parse_stats():
    text = "Total transferred file size: 1,234 bytes\nTotal bytes sent: 56\nTotal bytes received: 7,890\n"
    assert rt.parse_stats(text) == {"bytes_received": 7890, "bytes_sent": 56, "transferred_file_bytes": 1234}


def test_standby_lag():
    row = {"in_recovery": "t", "status": "streaming", "latest_end_lsn": "0/3000100", "replay_lsn": "0/3000000",
           "replay_ts": "990"}
    lag = rt.standby_lag(row, 1000)
    assert lag["lag_bytes"] == 256 and lag["lag_seconds"] == 10 and lag["streaming"] == 1
    caught_up = dict(row, replay_lsn="0/3000100")
    assert rt.standby_lag(caught_up, 5000)["lag_seconds"] == 0.0
    assert rt.standby_lag({"in_recovery": "f"}, 0)["role"] == "primary"


def test_metrics_text():
    status = {"jobs": {"files": {"last_success": 100.0, "outcome": "success", "snapshots": 3, "stale": False}},
              "standby": {"role": "standby", "streaming": 1, "lag_bytes": 0, "lag_seconds": 0.0, "stale": False}}
    text = rt.metrics_text(status, 130.0)
    assert 'archive_dr_replica_age_seconds{job="files"} 30.000' in text
    assert 'archive_dr_replica_snapshots{job="files"} 3' in text
    assert "archive_dr_replica_standby_lag_seconds 0.000" in text
    assert "archive_dr_replica_standby_streaming 1" in text
