"""Pure parts of module_utils/replica_tool.py (the DR pull/snapshot/status tool)."""
from __future__ import annotations

import datetime as dt
import json
import os
import dataclasses

import pytest
import yaml

import dr_history
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


# ---------------------------------------------------------------- retention that keeps vanished restore points
def backup_set(label, fingerprint="immutable"):
    """A pgBackRest backup set of stanza main as dr_history parses it (time from its label)."""
    time = dt.datetime.strptime(label[:15], "%Y%m%d-%H%M%S").replace(tzinfo=dt.timezone.utc)
    return dr_history.RestorePoint(kind="pgbackrest", id="main:" + label, time=time, fingerprint=fingerprint,
                                   series="main", label=label)


def nightly_sets(first, last):
    """One full backup set a day at 02:00 UTC (10:00 Beijing, the same calendar day), first to last (dates)."""
    return [backup_set((first + dt.timedelta(days=i)).strftime("%Y%m%d") + "-020000F")
            for i in range((last - first).days + 1)]


def pulled_daily(sets, keep_last):
    """{snapshot name: points}: a pull at 04:00 UTC after each set, geo keeping its last `keep_last` sets."""
    return {rt.stamp(at(p.time.year, p.time.month, p.time.day, 4)): sets[max(0, i + 1 - keep_last):i + 1]
            for i, p in enumerate(sets)}


def snap(month, day, hour=4):
    return rt.stamp(at(2026, month, day, hour))


def test_a_snapshot_alone_holding_a_vanished_restore_point_is_kept():
    sets = nightly_sets(dt.date(2026, 11, 1), dt.date(2026, 12, 10))
    held = pulled_daily(sets, keep_last=3)
    for d in range(3, 11):                  # 3 December, 04:30: `pgbackrest expire --repo1-retention-full=1` at geo
        held[snap(12, d, 5 if d == 3 else 4)] = [backup_set("202612%02d-020000F" % d)]   # released at 05:00
    now = at(2027, 6, 1, 12)
    policy = {"keep_all_days": 1, "daily": 14, "weekly": 8, "monthly": 12, "yearly": "permanent"}
    calendar_keep, _ = rt.snapshot_plan(list(held), policy, now)
    assert calendar_keep == [snap(11, 30), snap(12, 10)]                    # monthly, yearly and newest
    keep, delete, reasons = rt.snapshot_plan_with_points(list(held), held, policy, now)
    pre_attack = snap(12, 3)                # the last pull before the attack: 1, 2 and 3 December
    assert pre_attack in keep and reasons[pre_attack] == [
        "holds vanished restore point pgbackrest:202612%02d-020000F (2026-12-%02d 02:00:00Z)" % (d, d)
        for d in (1, 2, 3)]
    # geo kept 3 sets: every third snapshot holds the ones before it (28-30 November: the monthly one)
    assert keep == sorted([snap(11, d) for d in range(3, 28, 3)] + calendar_keep + [pre_attack]
                          + [snap(12, d) for d in range(4, 10)])
    assert set(keep) | set(delete) == set(held) and not set(keep) & set(delete)
    assert snap(12, 3, 5) in delete, "the released snapshot holds nothing the pre-attack one does not"
    assert {p.id for n in keep for p in held[n]} == {p.id for p in sets}, "every set geo ever had is kept"
    assert {p.id for n in calendar_keep for p in held[n]} < {p.id for p in sets}


def test_vanished_keep_days_lets_miyun_expire_old_vanished_points():
    sets = nightly_sets(dt.date(2026, 11, 1), dt.date(2026, 11, 20))
    held = pulled_daily(sets, keep_last=1)
    now = dt.datetime(2027, 3, 1, 12, tzinfo=dt.timezone.utc)
    policy = {"keep_all_days": 1, "monthly": 12}
    forever, _, _ = rt.snapshot_plan_with_points(list(held), held, policy, now)
    assert forever == sorted(held), "a point gone from geo is kept forever by default"
    within, _, reasons = rt.snapshot_plan_with_points(list(held), held, dict(policy, vanished_keep_days=110), now)
    young = {n for n, points in held.items() if now - points[0].time <= dt.timedelta(days=110)}
    assert within == sorted(young) and len(young) == 9                  # 12..20 November are within 110 days
    assert reasons[min(young)] == ["holds vanished restore point pgbackrest:20261112-020000F (2026-11-12 02:00:00Z)"]
    limited, delete, _ = rt.snapshot_plan_with_points(list(held), held, dict(policy, vanished_keep_days=1), now)
    assert limited == [max(held)] and len(delete) == len(held) - 1      # only November's newest, by the calendar


def test_the_newest_snapshot_is_kept_and_what_it_holds_pins_nothing():
    sets = nightly_sets(dt.date(2026, 11, 1), dt.date(2026, 11, 10))
    everything = {snap(11, d): sets[:d] for d in range(1, 11)}          # geo never expires a set
    now, policy = at(2027, 6, 1), {"keep_all_days": 1, "daily": 1}
    keep, delete, reasons = rt.snapshot_plan_with_points(list(everything), everything, policy, now)
    assert keep == [snap(11, 10)] and len(delete) == 9 and "newest" in reasons[keep[0]]
    assert rt.snapshot_plan_with_points([], {}, REPOS, now) == ([], [], {})
    # the newest set rewritten at geo (same label, other content): its original vanished and is pinned
    rewritten = dict(everything)
    rewritten[snap(11, 11)] = sets[:9] + [backup_set(sets[9].label, fingerprint="forged")]
    keep, _, reasons = rt.snapshot_plan_with_points(list(rewritten), rewritten, policy, now)
    assert keep == [snap(11, 10), snap(11, 11)]
    assert reasons[snap(11, 10)] == ["holds vanished restore point pgbackrest:20261110-020000F (2026-11-10 02:00:00Z)"]


def test_unknown_points_follow_the_calendar_and_an_unknown_newest_pins_every_point():
    held = pulled_daily(nightly_sets(dt.date(2026, 11, 1), dt.date(2026, 11, 10)), keep_last=1)
    names = sorted(held)
    now, policy = at(2027, 6, 1), {"keep_all_days": 1, "daily": 1}
    # snapshots taken before points were recorded (no record): the calendar decides for them alone
    keep, delete, _ = rt.snapshot_plan_with_points(names, {n: held[n] for n in names[5:]}, policy, now)
    assert keep == names[5:] and delete == names[:5]
    # the newest one's points not known: which points vanished cannot be told, every holder is kept
    keep, delete, reasons = rt.snapshot_plan_with_points(names, {n: held[n] for n in names[:-1]}, policy, now)
    assert keep == names and delete == []
    assert reasons[names[0]] == ["holds restore point pgbackrest:20261101-020000F (2026-11-01 02:00:00Z); the newest "
                                 "snapshot's points are not recorded"]
    # quarantine: frozen, nothing expires
    keep, delete, reasons = rt.snapshot_plan_with_points(names, {}, policy, now, frozen=True)
    assert keep == names and delete == [] and reasons[names[0]] == ["frozen: quarantine active, nothing expires"]


@pytest.mark.parametrize("value,error", [(0, "vanished_keep_days must be a whole number of days >= 1"),
                                         ("30d", "got '30d'"), (True, "got True"), (-5, "got -5")])
def test_vanished_keep_days_is_validated_and_not_a_calendar_period(value, error):
    pol = rt.retention_policy(dict(REPOS, vanished_keep_days="3650"))
    assert pol == rt.retention_policy(REPOS), "it is not passed to dr_history.RetentionPolicy"
    assert rt.vanished_keep_days(dict(REPOS, vanished_keep_days="3650")) == 3650
    assert rt.vanished_keep_days(REPOS) is None and rt.vanished_keep_days(pol) is None
    with pytest.raises(ValueError, match=error):
        rt.retention_policy(dict(REPOS, vanished_keep_days=value))
    with pytest.raises(ValueError, match=error):
        rt.snapshot_plan_with_points([], {}, dict(REPOS, vanished_keep_days=value), at(2027, 1, 1))


def test_parse_clock():
    host = at(2026, 12, 1, 4)
    assert rt.parse_clock("+395d", host) == dt.datetime(2027, 12, 31, 4, tzinfo=dt.timezone.utc)
    assert rt.parse_clock("2027-12-31T12:00:00+08:00", host) == dt.datetime(2027, 12, 31, 4, tzinfo=dt.timezone.utc)
    assert rt.parse_clock("2027-12-31T04:00:00Z", host).tzinfo == dt.timezone.utc
    for bad in ("2027-12-31T12:00:00", "2027-12-31", "395d", "+1w", "tomorrow"):
        with pytest.raises(ValueError, match="with a zone"):
            rt.parse_clock(bad, host)


@pytest.fixture
def repo_site(tmp_path, monkeypatch):
    """A pgBackRest job whose snapshots are plain directories and btrfs deletes them; config on disk."""
    spec = {"kind": "pgbackrest", "working": str(tmp_path / "current"), "snapshots": str(tmp_path / "snapshots"),
            "phases": [], "retention": dict(REPOS, yearly="permanent"), "max_age": 0}
    cfg = {"status_dir": str(tmp_path / "status"), "ssh": {}, "jobs": {"pgbackrest": spec,
           "files": dict(spec, kind="files", snapshots=str(tmp_path / "files"))}}
    (tmp_path / "replica.json").write_text(json.dumps(cfg))
    deleted = []

    def btrfs(argv, env=None, timeout=None):
        assert argv[:3] == ["btrfs", "subvolume", "delete"], argv
        os.rmdir(argv[3])
        deleted.append(os.path.basename(argv[3]))
        return rt.subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(rt, "run", btrfs)
    monkeypatch.setattr(rt, "timers", lambda: {})
    held = pulled_daily(nightly_sets(dt.date(2026, 11, 1), dt.date(2026, 12, 20)), keep_last=1)
    for name, points in held.items():
        os.makedirs(os.path.join(spec["snapshots"], name))
        assert rt.record_snapshot_points(cfg, "pgbackrest", name, points)
    return {"cfg": cfg, "config": str(tmp_path / "replica.json"), "deleted": deleted, "held": held,
            "host": at(2026, 12, 21, 4)}


def test_snapshot_points_are_recorded_for_repository_jobs_only(repo_site):
    cfg, held = repo_site["cfg"], repo_site["held"]
    name = min(held)
    path = os.path.join(cfg["status_dir"], "pgbackrest.points", name + ".json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert dr_history.load_points(open(path).read()) == held[name]
    assert rt.record_snapshot_points(cfg, "files", name, held[name]) is None, "a files job has no points"
    assert rt.record_snapshot_points(cfg, "pgbackrest", name, None) is None
    assert rt.job_retention(cfg, "files") == cfg["jobs"]["files"]["retention"]
    assert rt.job_retention(cfg, "pgbackrest").points_dir == os.path.dirname(path)


def test_pulls_and_releases_record_the_points_their_snapshots_hold(repo_site, monkeypatch, tmp_path):
    cfg = repo_site["cfg"]
    cfg["jobs"]["restic"] = dict(cfg["jobs"]["pgbackrest"], kind="restic", snapshots=str(tmp_path / "restic"))
    clock = [at(2026, 12, 21, 4)]
    sets = nightly_sets(dt.date(2026, 12, 15), dt.date(2026, 12, 21))
    pulled = [dataclasses.replace(p, kind="restic", id="r" + p.label) for p in sets]
    monkeypatch.setattr(rt.time, "time", lambda: clock[0])
    monkeypatch.setattr(rt, "ensure_subvolume", lambda path: os.makedirs(path, exist_ok=True))
    monkeypatch.setattr(rt, "verify_copy", lambda cfg, job, path: (True, "restic check ok", list(pulled)))
    monkeypatch.setattr(rt, "take_snapshot", lambda spec, now: os.mkdir(os.path.join(spec["snapshots"], rt.stamp(now)))
                        or rt.stamp(now))
    records = os.path.join(cfg["status_dir"], "restic.points")
    assert rt.cmd_pull(cfg, "restic") == 0
    assert os.listdir(records) == [rt.stamp(clock[0]) + ".json"]
    del pulled[:-1]                                     # restic forget --keep-last 1 at geo
    clock[0] += 86400
    rt.save_job_status(cfg, "restic", dict(rt.load_job_status(cfg, "restic"), pending_changes=True))
    assert rt.cmd_pull(cfg, "restic") == 3 and len(os.listdir(records)) == 1, "a quarantined pull records nothing"
    assert rt.cmd_release(cfg, "restic", "zhang.wei", "geo restored") == 0
    names = rt.list_snapshots(cfg["jobs"]["restic"]["snapshots"])
    assert sorted(os.listdir(records)) == [n + ".json" for n in names] and len(names) == 2
    held, _ = rt.load_snapshot_points(records, names)
    assert [len(held[n]) for n in names] == [7, 1]
    keep, delete, reasons = rt.prune_plan(cfg["jobs"]["restic"]["snapshots"], rt.job_retention(cfg, "restic"),
                                          clock[0] + 400 * 86400)
    assert keep == names and "holds vanished restore point restic:20261215-020000F" in reasons[names[0]][0]


def test_prune_plan_at_a_clock_13_months_ahead(repo_site, monkeypatch, capsys):
    monkeypatch.setattr(rt.time, "time", lambda: repo_site["host"])
    snaps = repo_site["cfg"]["jobs"]["pgbackrest"]["snapshots"]
    argv = ["--config", repo_site["config"], "prune", "pgbackrest", "--now", "+395d"]
    assert rt.main(argv + ["--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("replica pgbackrest: retention at 2028-01-20T04:00:00Z (+395.0 day(s) from the host's clock): "
                      "50 kept, 0 to delete (dry run, nothing deleted)")
    assert "keep   20261101T040000Z  holds vanished restore point pgbackrest:20261101-020000F (2026-11-01 02:00:00Z)" \
        in out
    assert repo_site["deleted"] == [] and len(rt.list_snapshots(snaps)) == 50
    # a limit on vanished points: at that clock only the sets of 17-19 December are younger than 400 days
    repo_site["cfg"]["jobs"]["pgbackrest"]["retention"]["vanished_keep_days"] = 400
    with open(repo_site["config"], "w") as f:
        json.dump(repo_site["cfg"], f)
    assert rt.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("4 kept, 46 deleted")
    assert [line.split()[1] for line in out[1:] if line.startswith("keep")] == [
        "20261217T040000Z", "20261218T040000Z", "20261219T040000Z", "20261220T040000Z"]
    assert len(repo_site["deleted"]) == 46 and rt.list_snapshots(snaps) == sorted(
        line.split()[1] for line in out[1:] if line.startswith("keep"))
    records = sorted(os.listdir(os.path.join(repo_site["cfg"]["status_dir"], "pgbackrest.points")))
    assert records == [n + ".json" for n in rt.list_snapshots(snaps)], "a deleted snapshot's record is removed"
    assert rt.load_job_status(repo_site["cfg"], "pgbackrest")["snapshots"] == 4


def test_prune_is_frozen_by_a_quarantine(repo_site, monkeypatch, capsys):
    monkeypatch.setattr(rt.time, "time", lambda: repo_site["host"])
    repo_site["cfg"]["jobs"]["pgbackrest"]["retention"]["vanished_keep_days"] = 1
    st = {"quarantine": {"since": repo_site["host"] - 3600, "findings": ["CRITICAL vanished: ..."]}}
    rt.save_job_status(repo_site["cfg"], "pgbackrest", st)
    assert rt.cmd_prune(repo_site["cfg"], "pgbackrest", rt.parse_clock("+395d", repo_site["host"])) == 3
    out = capsys.readouterr().out.splitlines()
    assert "50 kept, 0 deleted -- QUARANTINE since 20261221T030000Z: retention frozen until released" in out[0]
    assert repo_site["deleted"] == [] and all("frozen" in line for line in out[1:])
    assert rt.load_job_status(repo_site["cfg"], "pgbackrest") == st


def test_prune_keeps_a_snapshot_whose_points_record_is_unreadable(repo_site):
    cfg = repo_site["cfg"]
    policy = rt.job_retention(cfg, "pgbackrest")
    broken = min(repo_site["held"])
    with open(os.path.join(policy.points_dir, broken + ".json"), "w") as f:
        f.write("{not json")
    limited = rt.RetentionWithPoints(dict(policy.retention, vanished_keep_days=1), policy.points_dir)
    keep, delete, reasons = rt.prune_plan(cfg["jobs"]["pgbackrest"]["snapshots"], limited, at(2027, 6, 1))
    assert broken in keep and broken not in delete and "is unreadable" in reasons[broken][0]
    assert len(delete) > 40


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
