"""Pure parts of module_utils/replica_tool.py (the DR pull/snapshot/status tool)."""
from __future__ import annotations

import datetime as dt

import pytest
import yaml

import replica_tool as rt  # module_utils/ is on the test path (pyproject.toml)
from archive_dr.paths import ROOT


def names(start, step_s, n):
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp() + start
    return [rt.stamp(t0 + i * step_s) for i in range(n)]


def test_stamp_roundtrip():
    t = 1_790_000_000
    assert rt.parse_stamp(rt.stamp(t)) == t
    assert rt.parse_stamp("current") is None


FILES = {"keep_all_days": 1, "hourly": 48, "daily": 31, "weekly": 8, "monthly": 12, "yearly": 10}
REPOS = {"keep_all_days": 1, "daily": 14, "weekly": 8, "monthly": 12, "yearly": 10}


def at(*a):
    return dt.datetime(*a, tzinfo=dt.timezone.utc).timestamp()


def daily(first, last, hour=4):
    """One snapshot name a day at `hour` UTC (noon in Beijing for 4) from first to last (dates)."""
    return [rt.stamp(at(d.year, d.month, d.day, hour)) for d in
            (first + dt.timedelta(days=i) for i in range((last - first).days + 1))]


@pytest.mark.parametrize("policy", [FILES, REPOS], ids=["files", "repos"])
def test_retention_a_flood_of_pulls_within_a_day_expires_nothing_kept_before(policy):
    now = at(2026, 6, 30, 12)
    history = daily(dt.date(2023, 1, 1), dt.date(2026, 6, 30)) + [rt.stamp(now - 300)]
    keep0, delete0 = rt.snapshot_plan(history, policy, now)
    assert len(keep0) >= 30 and delete0
    flood = [rt.stamp(now - 86399 + 8 * i) for i in range(10_000)]          # 10,000 pulls within the last day
    assert len(set(flood) - set(history)) == 10_000
    keep1, delete1 = rt.snapshot_plan(history + flood, policy, now)
    assert set(keep0) <= set(keep1) and not set(delete1) & set(keep0)
    assert set(flood) <= set(keep1), "every snapshot younger than keep_all_days is kept"
    # two days later the flood is older than the floor: the older history is what it would be without it,
    # and of the flood only the newest of a calendar day it was the newest of is left (29 June, Beijing)
    later = now + 2 * 86400
    keep2, _ = rt.snapshot_plan(keep1 + [rt.stamp(later - 60)], policy, later)
    control, _ = rt.snapshot_plan(history + [rt.stamp(later - 60)], policy, later)
    old = rt.stamp(now - 3 * 86400)
    assert {n for n in control if n < old} == {n for n in keep2 if n < old}
    assert sum(n in flood for n in keep2) == 1


def test_retention_thirteen_months_of_daily_snapshots_keep_12_monthly_and_yearly():
    snaps = daily(dt.date(2024, 12, 1), dt.date(2025, 12, 31))             # 13 calendar months
    now = at(2025, 12, 31, 12)
    keep, delete = rt.snapshot_plan(snaps, {"keep_all_days": 1, "monthly": 12, "yearly": 10}, now)
    month_ends = [dt.date(2025, m + 1, 1) - dt.timedelta(days=1) for m in range(1, 12)] + [dt.date(2025, 12, 31)]
    want = {rt.stamp(at(d.year, d.month, d.day, 4)) for d in month_ends}   # newest of Jan..Dec 2025
    want.add(rt.stamp(at(2024, 12, 31, 4)))                                 # yearly 2024 (beyond 12 months)
    want.add(rt.stamp(at(2025, 12, 30, 4)))                                 # the anchor: newest older than a day
    assert set(keep) == want and len(keep) == 14
    assert set(keep) | set(delete) == set(snaps) and len(delete) == len(snaps) - 14
    # the production policies keep at least that and the last 14/31 days
    for policy in (FILES, REPOS):
        kept, _ = rt.snapshot_plan(snaps, policy, now)
        assert want <= set(kept) and set(snaps[-14:]) <= set(kept)


def test_retention_yearly_permanent_keeps_the_newest_of_every_year():
    snaps = [rt.stamp(at(y, m, 15)) for y in range(1990, 2026) for m in (3, 9)]
    keep, delete = rt.snapshot_plan(snaps, {"keep_all_days": 1, "yearly": "permanent"}, at(2025, 12, 31))
    assert keep == [rt.stamp(at(y, 9, 15)) for y in range(1990, 2026)]
    keep30, _ = rt.snapshot_plan(snaps, {"keep_all_days": 1, "yearly": 30}, at(2025, 12, 31))
    assert keep30 == keep[-30:]                                             # 1996..2025


def test_retention_keep_all_days_keeps_every_young_snapshot():
    now = at(2026, 3, 10, 12)
    snaps = [rt.stamp(now - 60 * i) for i in range(1, 5 * 24 * 60)]        # one a minute for five days
    keep, delete = rt.snapshot_plan(snaps, {"keep_all_days": 3, "daily": 1}, now)
    young = {n for n in snaps if rt.parse_stamp(n) > now - 3 * 86400}
    assert young <= set(keep) and len(young) == 3 * 24 * 60 - 1
    assert set(keep) - young == {rt.stamp(now - 3 * 86400)}                 # the anchor
    assert delete and all(rt.parse_stamp(n) < now - 3 * 86400 for n in delete)


def test_retention_newest_is_always_kept():
    snaps = [rt.stamp(at(2019, 5, 1)), rt.stamp(at(2020, 5, 1))]
    keep, delete = rt.snapshot_plan(snaps, {"keep_all_days": 1, "daily": 1}, at(2026, 1, 1))
    assert keep == snaps[-1:] and delete == snaps[:1]
    assert rt.snapshot_plan(snaps[:1], {"keep_all_days": 1, "daily": 1}, at(2026, 1, 1)) == (snaps[:1], [])
    assert rt.snapshot_plan([], REPOS, at(2026, 1, 1)) == ([], [])


def test_retention_never_touches_names_that_are_not_stamps(tmp_path, monkeypatch):
    now = at(2026, 1, 10, 12)
    snaps = daily(dt.date(2025, 12, 1), dt.date(2026, 1, 10))
    foreign = ["current", "notes", snaps[0] + ".tmp", "2025-12-01T04:00:00Z"]
    keep, delete = rt.snapshot_plan(snaps + foreign, {"keep_all_days": 1, "daily": 7}, now)
    assert not set(foreign) & (set(keep) | set(delete))
    assert keep == snaps[-7:] and set(keep) | set(delete) == set(snaps)     # the last 7 calendar days
    # prune: deletes exactly the expired snapshots, with btrfs
    for n in snaps + foreign:
        (tmp_path / n).mkdir()
    deleted = []

    def btrfs(argv, env=None, timeout=None):
        assert argv[:3] == ["btrfs", "subvolume", "delete"]
        deleted.append(argv[3])
        (tmp_path / argv[3]).rmdir()
        return rt.subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(rt, "run", btrfs)
    kept, gone = rt.prune(str(tmp_path), {"keep_all_days": 1, "daily": 7}, now)
    assert (kept, gone) == (keep, delete) and deleted == [str(tmp_path / n) for n in delete]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + foreign)


@pytest.mark.parametrize("policy,message", [
    ({"last": 60, "hourly": 48, "daily": 31}, "'last' (a number of snapshots) is no longer supported"),
    ({}, "keep_all_days must be a whole number of days >= 1"),
    ({"daily": 14}, "keep_all_days must be a whole number of days >= 1"),
    ({"keep_all_days": 0, "daily": 31}, "a retention of 0"),
    ({"keep_all_days": 1}, "a retention of 0"),
    ({"keep_all_days": 1, "daily": 0, "yearly": 0}, "a retention of 0"),
    ({"keep_all_days": 1, "daily": -1}, "daily must be a whole number >= 0, got -1"),
    ({"keep_all_days": 1, "daily": "14d"}, "daily must be a whole number >= 0, got '14d'"),
    ({"keep_all_days": 1.5, "daily": 14}, "keep_all_days must be a whole number"),
    ({"keep_all_days": 1, "daily": "permanent"}, "daily must be a whole number >= 0, got 'permanent'"),
    ({"keep_all_days": 1, "yearly": "forever"}, "yearly must be a whole number >= 0 or 'permanent'"),
    ({"keep_all_days": 1, "forever": 1}, "unknown key(s) forever; give keep_all_days, hourly, daily"),
    ([("daily", 1)], "expected a mapping"),
])
def test_retention_rejects_a_bad_policy_before_deleting_anything(policy, message, tmp_path, monkeypatch):
    with pytest.raises(ValueError) as e:
        rt.snapshot_plan(names(0, 60, 3), policy)
    assert message in str(e.value)
    (tmp_path / names(0, 60, 1)[0]).mkdir()
    monkeypatch.setattr(rt, "run", lambda *a, **k: pytest.fail("deleted with a bad policy"))
    with pytest.raises(ValueError):
        rt.prune(str(tmp_path), policy)


def test_retention_policy_schema():
    pol = rt.retention_policy({"keep_all_days": "2", "daily": "31", "yearly": "permanent"})
    assert pol.min_age_keep == dt.timedelta(days=2) and pol.daily == 31 and pol.yearly is None
    assert (pol.hourly, pol.weekly, pol.monthly) == (0, 0, 0)              # a missing count is 0
    assert rt.retention_policy(FILES).yearly == 10


@pytest.mark.parametrize("path", ["roles/replica/defaults/main.yml", "inventory/production/group_vars/all/replica.yml"])
def test_retention_shipped_policies_are_valid(path):
    data = yaml.safe_load((ROOT / path).read_text())
    policies = {k: v for k, v in data.items() if k in ("replica_files_retention", "replica_repo_retention")}
    assert policies or "production" in path
    for var, policy in policies.items():
        assert "last" not in policy, var
        rt.retention_policy(policy)


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
