"""Issue 14: every pre-attack restore point at miyun survives 13 months of pulls and retention.

A simulation with the real pure functions of the pull (no btrfs, no rsync): geo's restic
repository makes a restore point a day and keeps its own last 7; miyun pulls it daily, the
quarantine gate (``dr_history.gate``) judges each pull, an accepted pull becomes a snapshot
holding the pulled points, and retention (``replica_tool.snapshot_plan_with_points`` under the
production ``replica_repo_retention``) runs after every pull with the clock of the simulation:
the clock of the retention logic moves, not the host's.

On day 30 the attacker runs ``restic forget --keep-last 1 --prune`` at geo: the gate holds the pull
in quarantine and the operator releases it the same day. On day 200 a flood of 100 fake snapshots
dated "now" arrives. After 395 days, every restore point geo ever had -- the ones the attack
destroyed, and the ones geo expired by its own retention -- is still held by a kept snapshot: that
is the design, miyun keeps what vanished from geo (expiry at miyun is miyun's own decision,
``vanished_keep_days``), and what the calendar alone would keep is shown to lose them.
"""
from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import yaml

import dr_history
import replica_tool as rt  # module_utils/ is on the test path (pyproject.toml)
from archive_dr.paths import ROOT

UTC = dt.timezone.utc
DAYS = 395                      # 13 months
ATTACK_DAY = 30
FLOOD_DAY = 200
GEO_KEEP_LAST = 7               # geo's own retention: restic forget --keep-last 7
SERIES = "archive-files"
START = dt.datetime(2026, 11, 2, tzinfo=UTC)
POINT_HOUR, PULL_HOUR = 2, 4    # geo backs up at 02:00 UTC (10:00 Beijing), miyun pulls at 04:00 UTC


def production_repo_retention():
    data = yaml.safe_load((ROOT / "inventory/production/group_vars/all/replica.yml").read_text())
    return data["replica_repo_retention"]


def restic_point(tag, time):
    """A restic snapshot as dr_history parses it: id and tree are hashes of what it is."""
    sid = hashlib.sha256(("snapshot " + tag).encode()).hexdigest()
    return dr_history.RestorePoint(kind="restic", id=sid, time=time, series=SERIES, label=sid[:8],
                                   fingerprint=hashlib.sha256(("tree " + tag).encode()).hexdigest())


def at(day, hour, minute=0):
    return START + dt.timedelta(days=day, hours=hour, minutes=minute)


class Miyun:
    """The DR site's state between pulls: the accepted points and the snapshots (name -> points held)."""

    def __init__(self, retention, points_aware):
        self.retention = retention
        self.points_aware = points_aware
        self.accepted, self.last_accepted = [], None
        self.snapshots = {}
        self.quarantines = []
        self.deleted = 0

    def snapshot(self, points, now):
        name = rt.stamp(now.timestamp())
        assert name not in self.snapshots
        self.snapshots[name] = list(points)
        self.accepted, self.last_accepted = list(points), now

    def pull(self, pulled, now):
        """cmd_pull's decision: the gate's findings; a snapshot and retention when not quarantined."""
        findings = dr_history.gate(self.accepted, pulled, now, dr_history.GatePolicy(),
                                   last_accepted=self.last_accepted)
        if dr_history.quarantined(findings):
            self.quarantines.append((now, findings))
            return findings                     # no snapshot, retention frozen
        self.snapshot(pulled, now)
        self.prune(now)
        return findings

    def release(self, pulled, now):
        """cmd_release: the quarantined copy becomes a snapshot and the new baseline (no pruning)."""
        self.snapshot(pulled, now)

    def plan(self, now, snapshots=None):
        snapshots = self.snapshots if snapshots is None else snapshots
        if self.points_aware:
            return rt.snapshot_plan_with_points(list(snapshots), snapshots, self.retention, now)
        keep, delete = rt.snapshot_plan(list(snapshots), self.retention, now)
        return keep, delete, {}

    def prune(self, now):
        _, delete, _ = self.plan(now)
        for name in delete:
            del self.snapshots[name]
        self.deleted += len(delete)

    def held(self):
        return {p.id for points in self.snapshots.values() for p in points}


def simulate(points_aware):
    """13 months of daily pulls; returns the site, every point geo ever had, the pre-attack points,
    the gate's findings on the attack and flood pulls, and the flood check's two plans."""
    site = Miyun(production_repo_retention(), points_aware)
    geo, ever, out = [], [], {}
    for day in range(DAYS + 1):
        made = restic_point("day %d" % day, at(day, POINT_HOUR))
        geo = (geo + [made])[-GEO_KEEP_LAST:]               # backup, then restic forget --keep-last 7
        ever.append(made)
        now = at(day, PULL_HOUR)
        if day == ATTACK_DAY:
            out["pre_attack"] = {p.id for p in ever}        # everything geo had before the attack
            out["geo_before_attack"] = {p.id for p in geo}
            geo = geo[-1:]                                  # the attacker: restic forget --keep-last 1 --prune
            out["attack_findings"] = site.pull(list(geo), now)
            site.release(list(geo), at(day, PULL_HOUR + 1))     # the operator looked, and released
            continue
        if day == FLOOD_DAY:
            fakes = [restic_point("fake %d" % i, now - dt.timedelta(seconds=i + 1)) for i in range(100)]
            before = dict(site.snapshots)
            out["flood_findings"] = site.pull(geo + fakes, now)
            # had the flood been accepted: the pre-flood snapshots the plan keeps must be the same
            with_flood = dict(before, **{rt.stamp(now.timestamp()): geo + fakes})
            out["flood_keep"] = set(site.plan(now, with_flood)[0]) & set(before)
            out["control_keep"] = set(site.plan(now, before)[0])
            out["snapshots_before_flood"] = set(before)
            site.release(list(geo), at(day, PULL_HOUR + 1))     # fakes forgotten at geo, the clean copy released
            continue
        findings = site.pull(list(geo), now)
        assert not dr_history.quarantined(findings), "day %d: %s" % (day, findings)
    out["ever"] = {p.id for p in ever}
    return site, out


def critical_codes(findings):
    return {f.code for f in findings if f.severity == dr_history.CRITICAL}


def test_every_restore_point_survives_13_months_of_pulls_and_retention():
    site, out = simulate(points_aware=True)
    pre_attack, ever, held = out["pre_attack"], out["ever"], site.held()
    print("\n13 months: %d daily pulls, %d restore points made at geo, %d before the attack (%d at geo "
          "the moment before it, 1 left by it)" % (DAYS + 1, len(ever), len(pre_attack), len(out["geo_before_attack"])))
    print("snapshots kept at day %d: %d (%d deleted by retention); restore points held: %d of %d; "
          "pre-attack points held: %d of %d" % (DAYS, len(site.snapshots), site.deleted, len(held & ever), len(ever),
                                                len(held & pre_attack), len(pre_attack)))
    assert len(pre_attack) == ATTACK_DAY + 1 and len(out["geo_before_attack"]) == GEO_KEEP_LAST
    # the attack was held by the gate, and released by the operator on the same day
    assert {"vanished", "mass-vanish"} <= critical_codes(out["attack_findings"])
    assert [q[0].date() for q in site.quarantines] == [at(ATTACK_DAY, 0).date(), at(FLOOD_DAY, 0).date()]
    # every point that existed at geo before the attack is held by a kept snapshot ...
    assert pre_attack <= held, sorted(pre_attack - held)[:5]
    # ... and so is every point geo expired by its own retention since: miyun keeps what vanished
    assert ever <= held, sorted(ever - held)[:5]
    # retention did expire snapshots, and the count stays bounded (weekly snapshots hold geo's 7 days)
    assert site.deleted > DAYS // 2
    assert len(site.snapshots) < 120


def test_calendar_retention_alone_loses_the_pre_attack_restore_points():
    """The gap this closes: without the points, the post-attack snapshots win every bucket."""
    site, out = simulate(points_aware=False)
    lost = out["pre_attack"] - site.held()
    print("\ncalendar retention alone: %d snapshots kept, %d of %d pre-attack restore points lost"
          % (len(site.snapshots), len(lost), len(out["pre_attack"])))
    assert out["geo_before_attack"] & lost, "the last pre-attack snapshot would have been kept anyway"


def test_a_flood_of_fake_snapshots_at_day_200_is_held_and_expires_nothing_kept():
    site, out = simulate(points_aware=True)
    print("\nflood at day %d: findings %s; %d snapshots before it, %d of them kept by the plan with the flood "
          "accepted, %d without" % (FLOOD_DAY, sorted(critical_codes(out["flood_findings"])),
                                    len(out["snapshots_before_flood"]), len(out["flood_keep"]),
                                    len(out["control_keep"])))
    assert "burst" in critical_codes(out["flood_findings"])
    # even had the operator accepted it, the flood would not push out a snapshot that was kept
    assert out["flood_keep"] == out["control_keep"] and len(out["control_keep"]) > 20


@pytest.mark.parametrize("days", [1, 30])
def test_vanished_keep_days_lets_miyun_expire_what_vanished(days):
    """With a limit, vanished points older than it follow the calendar: fewer snapshots, points lost."""
    site, out = simulate(points_aware=True)
    limited = dict(production_repo_retention(), vanished_keep_days=days)
    now = at(DAYS, PULL_HOUR)
    keep, _, _ = rt.snapshot_plan_with_points(list(site.snapshots), site.snapshots, limited, now)
    held = {p.id for n in keep for p in site.snapshots[n]}
    recent = {p.id for points in site.snapshots.values() for p in points if now - p.time <= dt.timedelta(days=days)}
    print("\nvanished_keep_days %d: %d of %d snapshots kept, %d of %d pre-attack points held, all %d younger "
          "than the limit" % (days, len(keep), len(site.snapshots), len(held & out["pre_attack"]),
                              len(out["pre_attack"]), len(recent)))
    assert len(keep) < len(site.snapshots) and not out["pre_attack"] <= held
    assert recent and recent <= held, "a vanished point younger than vanished_keep_days was expired"
