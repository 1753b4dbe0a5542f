"""The evidence pack's DR history (灾备历史): quarantines and releases, verification runs and alerts of the
period, from what two inspections read on the hosts, each event counted once (archive_dr/evidence.py)."""
from __future__ import annotations

import datetime as dt
import json
from html import unescape

from archive_dr import evidence, report
from archive_dr.fixity import load
from tests.unit.reportdata import DAY, NOW, raw

ins = load("dr_inspect")
HOST = "miyun-store"
MASS = "CRITICAL mass-change: 7 of 8 files changed in one pull (limit 50%)"
CRYPT = "CRITICAL entropy: 3 files look encrypted"
TARGETS = {"rto_seconds": 600, "rpo_seconds": 60, "backup_success_rate_pct": 98, "verification_coverage_pct": 100}


def rel(t, by, since, findings, snapshot):
    return {"time": t, "job": "files", "by": by, "reason": "%s checked the changes with the archivist" % by,
            "snapshot": snapshot, "points": 0, "quarantine": {"since": since, "findings": findings, "changed_files": 7}}


def alert(received, status, name, starts, severity="critical"):
    return {"received": received, "status": status, "alertname": name, "severity": severity,
            "instance": "miyun-store:9100", "job": "node", "summary": name, "starts_at": starts}


R_OLD = rel(NOW - 10 * DAY, "mallory", NOW - 11 * DAY, [MASS], "20270105T000000Z")      # before the period
R1 = rel(NOW + 0.5 * DAY, "alice", NOW + 0.2 * DAY, [MASS], "20270115T120000Z")
R2 = rel(NOW + 1.2 * DAY, "bob", NOW + 0.9 * DAY, [CRYPT], "20270116T044800Z")
V1 = {"time": NOW + 0.3 * DAY, "outcome": "ok", "subset": "1/7", "snapshot_damaged": 0}
V2 = {"time": NOW + 0.6 * DAY, "outcome": "repaired", "subset": "2/7", "snapshot_damaged": 0}
V3 = {"time": NOW + 1.5 * DAY, "outcome": "damaged", "subset": "3/7", "snapshot": "20270115T120000Z",
      "snapshot_damaged": 2}
QUAR = "ArchiveDrReplicaQuarantined"
A_FIRE = alert(NOW + 0.21 * DAY, "firing", QUAR, "2027-01-15T05:02:00Z")
A_REPEAT = alert(NOW + 0.38 * DAY, "firing", QUAR, "2027-01-15T05:02:00Z")    # repeat_interval: same episode
A_RESOLVED = alert(NOW + 0.51 * DAY, "resolved", QUAR, "2027-01-15T05:02:00Z")
B_FIRE = alert(NOW + 1.51 * DAY, "firing", "ArchiveDrVerifyDamaged", "2027-01-16T12:00:00Z")


def inspection(now, history, alerts, dropped=0):
    """An inspection as the playbook builds it: the host collected the history, evaluated, the controller built."""
    r = raw(now, 300 << 20, dr_history={"since": now - 31 * DAY, "jobs": history},
            alerts={"entries": alerts, "dropped": dropped, "malformed": 0, "present": True})
    h = r["hosts"][HOST]
    h["findings"] = ins.evaluate(HOST, h["collected"])
    return report.build_inspection(r, None, now=now)


def files_job(releases=(), quarantine=None, runs=(), damaged=None):
    return {"job": "files", "kind": "files", "config": "/etc/archive-dr/replica.json", "releases": list(releases),
            "releases_dropped": 0, "verify_runs": list(runs), "verify_runs_dropped": 0,
            "verify": runs[-1] if runs else None, "quarantine": quarantine, "damaged_snapshots": damaged or {}}


def pack(tmp_path):
    rep = tmp_path / "reports"
    # first inspection: alice's release, bob's quarantine still held, two verification runs, one alert episode
    first = inspection(NOW + DAY, [files_job([R_OLD, R1], {"since": NOW + 0.9 * DAY, "findings": [CRYPT]}, [V1, V2])],
                       [A_FIRE, A_REPEAT, A_RESOLVED])
    # second inspection, reading since before the first (its history was lost): everything again, and more
    second = inspection(NOW + 2 * DAY, [
        files_job([R1, R2], None, [V1, V2, V3],
                  {"20270115T120000Z": {"found": V3["time"], "message": "2 object(s) differ", "objects": 2}}),
        {"job": "pgbackrest", "releases": [], "verify_runs": [],
         "quarantine": {"since": NOW + 1.8 * DAY, "findings": ["CRITICAL vanished: 2 of 3 backups gone"]}}],
        [A_RESOLVED, B_FIRE], dropped=4)
    for r in (first, second):
        report.write(r, rep, pdf=False)
    day = dt.date.fromtimestamp(NOW)
    return first, second, evidence.build(rep, day, day + dt.timedelta(days=3), TARGETS)


def test_inspection_carries_the_history_and_names_the_releases(tmp_path):
    first, second, _ = pack(tmp_path)
    assert [(h["host"], h["job"], len(h["releases"])) for h in first["dr_history"]] == [(HOST, "files", 2)]
    assert [(a["host"], a["status"]) for a in first["alerts"]] == [(HOST, "firing"), (HOST, "firing"),
                                                                   (HOST, "resolved")]
    assert second["alerts_dropped"] == 4
    info = [f for f in first["findings"] if f["check"] == "job-release"]
    assert [(f["severity"], f["host"], f["item"], f["value"]) for f in info] == [("info", HOST, "files", 2)]
    assert "by alice (alice checked the changes with the archivist), snapshot 20270115T120000Z" in info[0]["message"]
    # the history adds that info finding and changes nothing else
    plain = raw(NOW + DAY, 300 << 20)["hosts"][HOST]["collected"]
    assert sorted(f["message"] for f in first["findings"] if f["host"] == HOST and f not in info) == sorted(
        f["message"] for f in ins.evaluate(HOST, plain))


def test_evidence_history_counts_each_event_once(tmp_path):
    _, _, res = pack(tmp_path)
    h = res["dr_history"]
    assert [(x["job"], x["by"], x["released_at"], x["held_since"], x["findings"], x["snapshot"], x["held_at"])
            for x in h["releases"]] == [
        ("files", "alice", R1["time"], NOW + 0.2 * DAY, [MASS], "20270115T120000Z", None),
        ("files", "bob", R2["time"], NOW + 0.9 * DAY, [CRYPT], "20270116T044800Z", None),   # held, then released
        ("pgbackrest", None, None, NOW + 1.8 * DAY, ["CRITICAL vanished: 2 of 3 backups gone"], None,
         "t%d" % (NOW + 2 * DAY))]
    assert h["verification"] == [
        {"host": HOST, "job": "files", "runs": 3, "ok": 1, "repaired": 1, "damaged": 1, "other": 0, "worst": "damaged",
         "first": V1["time"], "last": V3["time"], "last_outcome": "damaged", "damaged_snapshots": ["20270115T120000Z"]}]
    assert h["alerts"] == [
        {"alertname": "ArchiveDrReplicaQuarantined", "severity": "critical", "instance": "miyun-store:9100",
         "job": "node", "fired": 1, "resolved": 1, "notifications": 3, "first": A_FIRE["received"],
         "last": A_RESOLVED["received"]},
        {"alertname": "ArchiveDrVerifyDamaged", "severity": "critical", "instance": "miyun-store:9100", "job": "node",
         "fired": 1, "resolved": 0, "notifications": 1, "first": B_FIRE["received"], "last": B_FIRE["received"]}]
    assert h["notifications"] == 4 and h["dropped"] == {"releases": 0, "verify_runs": 0, "alerts": 4}


def test_evidence_pack_shows_the_history(tmp_path):
    _, _, res = pack(tmp_path)
    paths = evidence.write(res, tmp_path / "ev", pdf=False)
    md = paths["md"].read_text(encoding="utf-8")
    assert "## 灾备历史 DR history" in md and "本期间隔离 3 次（已放行 2 次）" in md
    assert ("| files | %s | %s | %s | %s | alice | alice checked the changes with the archivist | 20270115T120000Z |"
            % (HOST, report.iso(NOW + 0.2 * DAY), MASS, report.iso(R1["time"]))) in md
    assert "| pgbackrest | %s | %s | CRITICAL vanished: 2 of 3 backups gone | 未放行 still held (t%d) |" % (
        HOST, report.iso(NOW + 1.8 * DAY), NOW + 2 * DAY) in md
    assert "| %s | files | 3 | 1 | 1 | 1 | 损坏 damaged | %s | 20270115T120000Z |" % (
        HOST, report.iso(V3["time"])) in md
    assert "| ArchiveDrReplicaQuarantined | critical | miyun-store:9100 | node | 1 | 1 | 3 | %s | %s |" % (
        report.iso(A_FIRE["received"]), report.iso(A_RESOLVED["received"])) in md
    assert "0 releases, 0 verification runs, 4 alert entries" in md
    assert md.count("| alice |") == 1 and "mallory" not in md                  # once; the old one is not of the period
    html = unescape(paths["html"].read_text(encoding="utf-8"))
    body = html.split("<h2>灾备历史 DR history</h2>")[1]
    order = [body.index(x) for x in ('id="releases"', 'id="verification"', 'id="alerts"', "<footer>")]
    assert order == sorted(order)
    assert "<td>bob</td>" in body and "未放行 still held (t%d)" % (NOW + 2 * DAY) in body and "None" not in body
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["dr_history"]["verification"][0]["worst"] == "damaged"


def test_a_period_without_history_says_so(tmp_path):
    _, _, res = pack(tmp_path)
    day = dt.date.fromtimestamp(NOW) + dt.timedelta(days=30)
    empty = evidence.build(tmp_path / "reports", day, day + dt.timedelta(days=3), TARGETS)
    assert empty["dr_history"] == {"releases": [], "verification": [], "alerts": [], "notifications": 0,
                                   "dropped": {"releases": 0, "verify_runs": 0, "alerts": 0}}
    md = report.render_markdown(empty)
    assert "本期无隔离 no quarantine in this period." in md
    assert "本期无告警 no alert sent in this period." in md
    old = dict(res)
    old.pop("dr_history")                                    # a pack written before the section existed
    assert "灾备历史" not in report.render_markdown(old) and "灾备历史" not in report.render_html(old)
