"""module_utils/dr_inspect.py: parsers, evaluation rules and the capacity forecast (pure)."""
from __future__ import annotations

import json

import pytest

from archive_dr.fixity import load
from tests.unit.reportdata import DAY, NOW, healthy

ins = load("dr_inspect")


def checks(findings, severity="critical"):
    return sorted({f["check"] for f in findings if f["severity"] == severity})


def test_healthy_host_has_no_findings():
    assert ins.evaluate("h", healthy(), {"allowed_ports": [22]}) == []


def test_full_filesystem_is_critical_and_nearly_full_is_warning():
    c = healthy()
    c["filesystems"][0].update(used_pct=100.0, free_bytes=0)
    f = ins.evaluate("h", c)
    assert checks(f) == ["capacity"] and "100.0% full" in f[0]["message"]
    c["filesystems"][0].update(used_pct=90.0, free_bytes=1 << 20)
    assert checks(ins.evaluate("h", c), "warning") == ["capacity"]
    assert checks(ins.evaluate("h", c, {"fs_used_pct_crit": 89}), "critical") == ["capacity"]


def test_stopped_timer_and_stale_job_are_critical():
    c = healthy()
    c["jobs"][0]["timer"] = {"active": "inactive", "enabled": "disabled", "loaded": "loaded"}
    f = ins.evaluate("h", c)
    assert [x["check"] for x in f] == ["job-timer"] and "will not run" in f[0]["message"]
    c = healthy()
    c["jobs"][0]["last_success"] = NOW - 90000
    f = ins.evaluate("h", c)
    assert [x["check"] for x in f] == ["job-age"] and f[0]["value"] == 90000
    c["jobs"][0]["last_success"] = None
    assert "never succeeded" in ins.evaluate("h", c)[0]["message"]


def test_failed_last_run_within_threshold_is_a_warning():
    c = healthy()
    c["jobs"][0].update(outcome="failure", last_rc=1, consecutive_failures=1)
    f = ins.evaluate("h", c)
    assert [(x["severity"], x["check"]) for x in f] == [("warning", "job-outcome")]


def test_a_quarantined_pull_is_critical_and_names_the_release():
    c = healthy()
    c["jobs"][0].update(outcome="quarantine", quarantine={
        "since": NOW - 600, "last": NOW, "points": 1,
        "findings": ["CRITICAL mass-vanish: 5 of 6 accepted restore points gone in one pull (limit 60%)"]})
    f = ins.evaluate("h", c)
    assert [(x["severity"], x["check"]) for x in f] == [("critical", "job-quarantine")]
    assert "archive-dr release" in f[0]["message"] and "mass-vanish" in f[0]["message"]


def test_verification_damage_and_age():
    c = healthy()
    job = c["jobs"][0]
    job["verify_period_days"] = 7
    assert checks(ins.evaluate("h", c), "info") == ["job-verify"]          # not verified yet
    job["verify"] = {"time": NOW - 3600, "outcome": "ok", "subset": "3/7"}
    assert ins.evaluate("h", c) == []
    job["verify"] = {"time": NOW - 3600, "outcome": "repaired", "repair": "1 object(s) re-pulled from geo"}
    assert checks(ins.evaluate("h", c), "warning") == ["job-verify"]
    job["verify"] = {"time": NOW - 3 * 86400, "outcome": "ok"}
    assert checks(ins.evaluate("h", c), "warning") == ["job-verify"]
    job["verify"] = {"time": NOW - 3600, "outcome": "damaged"}
    job["damaged_snapshots"] = {"20261203T101500Z": {"message": "archive-files: restic check failed"}}
    f = ins.evaluate("h", c)
    assert checks(f) == ["job-verify"] and "20261203T101500Z" in f[0]["message"]


@pytest.mark.parametrize("days,severity", [(400, None), (45, "warning"), (10, "critical"), (-1, "critical")])
def test_certificate_expiry(days, severity):
    c = healthy(certificates=[{"path": "/etc/swanctl/x509/geo.pem", "label": "tunnel-local",
                               "not_after": NOW + days * 86400, "subject": "CN=geo"}])
    f = [x for x in ins.evaluate("h", c) if x["check"] == "certificate"]
    assert [x["severity"] for x in f] == ([severity] if severity else [])


def test_tunnel_down_and_missing_are_critical():
    c = healthy(tunnel={"up": False, "daemon": "up", "ike_state": "CONNECTING", "child_sas": 0, "peer": "miyun"})
    assert checks(ins.evaluate("h", c)) == ["tunnel"]
    assert checks(ins.evaluate("h", healthy(), {"tunnel_expected": True})) == ["tunnel"]


def test_security_baseline():
    c = healthy()
    c["security"]["sshd"]["passwordauthentication"] = "yes"
    c["security"]["nft_input_chains"] = [["inet", "filter", "input", "accept"]]
    c["security"]["listening"].append(["tcp", "0.0.0.0", 8080])
    f = ins.evaluate("h", c, {"allowed_ports": [22]})
    assert sorted(x["message"] for x in f if x["severity"] == "critical") == [
        "no input chain with policy drop (default-deny missing)", "sshd allows password logins"]
    assert [x["item"] for x in f if x["severity"] == "warning"] == ["tcp/8080"]


def test_time_units_replication_metrics_media():
    c = healthy(time_sync={"leap_status": "Not synchronised", "offset_seconds": 3.0},
                failed_units=["archive-dr-backup-deadman.service", "foo.service"],
                postgres=[{"version": "15", "cluster": "main", "status": "online", "in_recovery": False,
                           "replicas": []}],
                metrics=[{"name": "archive_dr_replica_db_lag_seconds", "labels": {}, "value": 1200.0}],
                media=[{"label": "AKJ-1", "due": True, "last_result": "OK", "next_check_due": "2026-01-01"},
                       {"label": "AKJ-2", "due": True, "last_result": "FAIL", "last_check": "2026-01-01"}])
    f = ins.evaluate("h", c, {"replication_expected": True,
                              "metric_thresholds": {"archive_dr_replica_db_lag_seconds": {"warn": 60, "crit": 900}}})
    crit = {(x["check"], str(x["item"])) for x in f if x["severity"] == "critical"}
    assert ("time", "chrony") in crit and ("time", "offset") in crit
    assert ("units", "archive-dr-backup-deadman.service") in crit
    assert ("replication", "pg15/main") in crit
    assert ("replication", "archive_dr_replica_db_lag_seconds") in crit
    assert ("media", "AKJ-2") in crit
    warn = {(x["check"], str(x["item"])) for x in f if x["severity"] == "warning"}
    assert warn == {("units", "foo.service"), ("media", "AKJ-1")}


def test_parsers():
    t = ins.parse_chrony_tracking("Reference ID    : C6120101 (198.18.1.1)\nStratum         : 9\n"
                                  "System time     : 0.000010400 seconds slow of NTP time\nLeap status     : Normal\n")
    assert t == {"leap_status": "Normal", "stratum": 9, "offset_seconds": -0.0000104,
                 "reference": "C6120101 (198.18.1.1)"}
    ss = ins.parse_ss("tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\ntcp LISTEN 0 128 [::]:22 [::]:*\n"
                      "udp UNCONN 0 0 127.0.0.1:323 0.0.0.0:*\n")
    assert ss == [("tcp", "0.0.0.0", 22), ("tcp", "::", 22), ("udp", "127.0.0.1", 323)]
    nft = json.dumps({"nftables": [{"chain": {"family": "inet", "table": "baseline", "name": "input",
                                              "hook": "input", "policy": "drop"}},
                                   {"chain": {"family": "inet", "table": "x", "name": "fwd", "hook": "forward"}}]})
    assert ins.parse_nft_input_policies(nft) == [("inet", "baseline", "input", "drop")]
    g = ins.parse_prom_gauges('# HELP x\nfoo_seconds{job="a b",x="1"} 12.5\nbar 3\n')
    assert g == {("foo_seconds", (("job", "a b"), ("x", "1"))): 12.5, ("bar", ()): 3.0}
    assert ins.parse_sshd_t("PasswordAuthentication no\nport 22\n") == {"passwordauthentication": "no", "port": "22"}


def test_forecast_linear_growth():
    day = 86400.0
    pts = [(NOW + i * day, 100e6 + i * 10e6) for i in range(10)]          # 10 MB/day
    fc = ins.forecast(pts, 1e9)
    assert fc["bytes_per_day"] == pytest.approx(10e6)
    assert fc["days_until_full"] == pytest.approx((1e9 - 190e6) / 10e6)
    assert fc["span_days"] == 9.0
    f = ins.forecast_findings("h", "/srv/dr", fc, {"fs_days_full_warn": 180, "fs_days_full_crit": 60})
    assert [x["severity"] for x in f] == ["warning"]


def test_forecast_flat_short_or_single():
    assert ins.forecast([(NOW, 5)], 100)["days_until_full"] is None
    flat = ins.forecast([(NOW, 5), (NOW + 86400, 5)], 100)
    assert flat["bytes_per_day"] == 0 and flat["days_until_full"] is None
    short = ins.forecast([(NOW, 5), (NOW + 60, 50)], 100)
    assert short["days_until_full"] is not None
    assert ins.forecast_findings("h", "/", short, {"forecast_min_span_days": 7}) == []


# ------------------------------------------------------------------ DR history (release, verification and alert logs)
def jsonl(path, *lines):
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))


def release(t, by, since, snapshot):
    """A release record as replica_tool.py cmd_release appends it."""
    return {"time": t, "job": "files", "by": by, "reason": "drill %s: planned ransomware test" % by,
            "snapshot": snapshot, "points": 0,
            "quarantine": {"since": since, "last": since + 60, "changed_files": 7,
                           "baseline_snapshot": "20270101T000000Z", "findings": ["CRITICAL mass-change: 7 of 8 files changed in one pull (limit 50%)"],
                           "last_findings": ["CRITICAL mass-change: 7 of 8 files changed in one pull (limit 50%)"]}}


def replica_config(tmp_path):
    status = tmp_path / "replica-status"
    status.mkdir()
    cfg = tmp_path / "replica.json"
    cfg.write_text(json.dumps({"status_dir": str(status), "jobs": {
        "files": {"kind": "files", "verify_period_days": 7}, "restic": {"kind": "restic", "verify_period_days": 7}}}))
    return cfg, status


def test_dr_history_reads_releases_and_verification_since_the_previous_inspection(tmp_path):
    cfg, status = replica_config(tmp_path)
    since = NOW - 10 * DAY
    jsonl(status / "files.releases.jsonl",
          release(since - DAY, "old", since - 2 * DAY, "20270101T000000Z"),      # before the previous inspection
          '{"time": 1800000000, "by": "truncated',                                # a torn line
          "[1, 2]", {"by": "no time"},
          release(NOW - 5 * DAY, "alice", NOW - 6 * DAY, "20270110T101500Z"),
          release(NOW - DAY, "bob", NOW - 2 * DAY, "20270114T080000Z"))
    damaged = {"time": NOW - 3600, "outcome": "damaged", "subset": "3/7", "snapshot": "20270114T080000Z",
               "working_ok": True, "snapshot_damaged": ["a.pdf", "b.pdf"], "snapshot_result": "2 object(s) differ"}
    jsonl(status / "files.verify.jsonl",
          {"time": since - 60, "outcome": "ok", "subset": "1/7"},
          {"time": NOW - 2 * DAY, "outcome": "repaired", "subset": "2/7", "working_ok": True,
           "working_damaged": ["c.pdf"], "repair": "1 object(s) re-pulled from geo"},
          "not json", damaged)
    (status / "files.json").write_text(json.dumps({
        "verify": damaged, "quarantine": {"since": NOW - 600, "findings": ["CRITICAL entropy: 3 files look encrypted"],
                                          "changed_files": 3},
        "damaged_snapshots": {"20270114T080000Z": {"found": NOW - 3600, "objects": ["a.pdf", "b.pdf"],
                                                   "message": "2 object(s) differ"}}}))
    # the same config matched twice (a path and a glob in job_configs) is read once; restic has no history
    h = ins.collect_dr_history([str(cfg), str(tmp_path / "*.json"), str(tmp_path / "absent-*.json")], since)
    assert h["since"] == since and h["configs"] == [str(cfg)]
    assert [j["job"] for j in h["jobs"]] == ["files"]
    j = h["jobs"][0]
    assert [(r["by"], r["time"], r["snapshot"]) for r in j["releases"]] == [
        ("alice", NOW - 5 * DAY, "20270110T101500Z"), ("bob", NOW - DAY, "20270114T080000Z")]
    assert j["releases"][1]["quarantine"] == {
        "since": NOW - 2 * DAY, "last": NOW - 2 * DAY + 60, "changed_files": 7, "baseline_snapshot": "20270101T000000Z",
        "findings": ["CRITICAL mass-change: 7 of 8 files changed in one pull (limit 50%)"]}
    assert j["releases"][1]["reason"] == "drill bob: planned ransomware test" and j["releases"][1]["job"] == "files"
    # the status's verify record is the log's last line: counted once
    assert [(v["time"], v["outcome"]) for v in j["verify_runs"]] == [(NOW - 2 * DAY, "repaired"),
                                                                      (NOW - 3600, "damaged")]
    assert j["verify_runs"][0]["working_damaged"] == 1 and j["verify_runs"][1]["snapshot_damaged"] == 2
    assert j["verify"]["outcome"] == "damaged"
    assert j["malformed_lines"] == 4 and j["releases_dropped"] == 0 and j["verify_runs_dropped"] == 0
    assert j["quarantine"]["since"] == NOW - 600 and j["quarantine"]["changed_files"] == 3
    assert j["damaged_snapshots"] == {"20270114T080000Z": {"found": NOW - 3600, "message": "2 object(s) differ",
                                                           "objects": 2}}


def test_dr_history_is_bounded_and_missing_logs_are_empty(tmp_path, monkeypatch):
    cfg, status = replica_config(tmp_path)
    jsonl(status / "files.releases.jsonl", *[release(NOW + i, "op%d" % i, NOW - DAY, "s%d" % i) for i in range(5)])
    monkeypatch.setattr(ins, "MAX_RELEASES", 2)
    j = ins.collect_dr_history([str(cfg)], NOW - 2 * DAY)["jobs"][0]
    assert [r["by"] for r in j["releases"]] == ["op3", "op4"] and j["releases_dropped"] == 3
    (status / "files.releases.jsonl").unlink()
    assert ins.collect_dr_history([str(cfg)], NOW - 2 * DAY) == {"since": NOW - 2 * DAY, "configs": [str(cfg)],
                                                                   "jobs": []}
    assert ins.collect_dr_history([str(tmp_path / "nothing.json")], NOW)["jobs"] == []


def notification(received, *alerts, status="firing"):
    return {"received": received, "payload": {"version": "4", "status": status, "receiver": "alert-log", "alerts": [
        {"status": st, "labels": {"alertname": name, "severity": sev, "instance": inst, "job": job},
         "annotations": {"summary": "%s on %s" % (name, inst)}, "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z"}
        for st, name, sev, inst, job, starts in alerts]}}


def test_alert_log_gives_one_entry_per_alert_since_the_previous_inspection(tmp_path, monkeypatch):
    since = NOW - 10 * DAY
    q = ("firing", "ArchiveDrReplicaQuarantined", "critical", "miyun-store:9100", "node", "2027-01-10T10:00:00Z")
    v = ("firing", "ArchiveDrVerifyDamaged", "critical", "miyun-store:9100", "node", "2027-01-11T10:00:00Z")
    jsonl(tmp_path / "alerts.jsonl",
          notification(since - 1, q),                                   # before the previous inspection
          "{broken",
          {"received": "yesterday", "payload": {}},
          notification(NOW - 3 * DAY, q, v),
          notification(NOW - 2 * DAY, ("resolved",) + q[1:], status="resolved"),
          {"received": NOW - DAY, "payload": "not an object"})
    a = ins.collect_alerts(str(tmp_path), since)
    assert a["present"] and a["log"] == str(tmp_path / "alerts.jsonl") and a["since"] == since
    assert a["malformed"] == 2 and a["dropped"] == 0
    assert a["entries"] == [
        {"received": NOW - 3 * DAY, "status": "firing", "alertname": "ArchiveDrReplicaQuarantined",
         "severity": "critical", "instance": "miyun-store:9100", "job": "node",
         "summary": "ArchiveDrReplicaQuarantined on miyun-store:9100", "starts_at": "2027-01-10T10:00:00Z"},
        {"received": NOW - 3 * DAY, "status": "firing", "alertname": "ArchiveDrVerifyDamaged",
         "severity": "critical", "instance": "miyun-store:9100", "job": "node",
         "summary": "ArchiveDrVerifyDamaged on miyun-store:9100", "starts_at": "2027-01-11T10:00:00Z"},
        {"received": NOW - 2 * DAY, "status": "resolved", "alertname": "ArchiveDrReplicaQuarantined",
         "severity": "critical", "instance": "miyun-store:9100", "job": "node",
         "summary": "ArchiveDrReplicaQuarantined on miyun-store:9100", "starts_at": "2027-01-10T10:00:00Z"}]
    monkeypatch.setattr(ins, "MAX_ALERTS", 2)            # the newest kept, the rest counted
    a = ins.collect_alerts(str(tmp_path), since)
    assert [(e["received"], e["alertname"]) for e in a["entries"]] == [
        (NOW - 3 * DAY, "ArchiveDrVerifyDamaged"), (NOW - 2 * DAY, "ArchiveDrReplicaQuarantined")]
    assert a["dropped"] == 1
    none = ins.collect_alerts(str(tmp_path / "no-alertmanager-here"), since)
    assert (none["entries"], none["present"], none["dropped"], none["malformed"]) == ([], False, 0, 0)
    assert ins.collect_alerts(None, since)["entries"] == []


def test_releases_are_an_info_finding_and_change_no_severity():
    rel = [{"time": NOW - 5 * DAY + i * 60, "by": "op%d" % i, "reason": "checked with geo", "snapshot": "s%d" % i}
           for i in range(6)]
    c = healthy(dr_history={"since": NOW - 30 * DAY, "jobs": [
        {"job": "files", "releases": rel, "releases_dropped": 1, "verify_runs": [], "quarantine": None},
        {"job": "restic", "releases": [], "verify_runs": [{"time": NOW - 60, "outcome": "ok"}]}]})
    f = ins.evaluate("miyun-store", c)
    assert [(x["severity"], x["check"], x["item"], x["value"]) for x in f] == [("info", "job-release", "files", 7)]
    msg = f[0]["message"]
    assert msg.startswith("job files: 7 quarantined pull(s) released since %s (the newest 5): "
                          % ins._when(NOW - 30 * DAY))
    assert "by op5 (checked with geo), snapshot s5" in msg and "op0" not in msg


def test_replica_jobs_are_inspected_under_their_own_unit_names(tmp_path, monkeypatch):
    """replica.json (roles/replica) names its units; its pulls are health-checked, their runs not counted."""
    status = tmp_path / "status"
    status.mkdir()
    (status / "restic.json").write_text(json.dumps({"outcome": "quarantine", "last_success": NOW - 60,
                                                    "quarantine": {"since": NOW - 30, "findings": ["CRITICAL burst"]}}))
    cfg = tmp_path / "replica.json"
    cfg.write_text(json.dumps({"status_dir": str(status), "jobs": {"restic": {"kind": "restic", "max_age": 3600}},
                               "units": {"timer": "archive-dr-replica-pull-%s.timer",
                                         "service": "archive-dr-replica-pull@%s.service", "count_runs": False}}))
    asked, journal = [], []
    monkeypatch.setattr(ins, "_run", lambda argv, timeout=60: (0, "", ""))
    monkeypatch.setattr(ins, "_timer_state", lambda unit: asked.append(unit) or {"active": "active", "enabled": "enabled"})
    monkeypatch.setattr(ins, "job_runs", lambda *a: journal.append(a) or (1, 0))
    jobs = ins.collect_jobs([str(cfg)], history_since=NOW - DAY)["jobs"]
    assert asked == ["archive-dr-replica-pull-restic.timer"] and journal == []
    assert jobs[0]["timer_unit"] == "archive-dr-replica-pull-restic.timer"
    assert jobs[0]["runs_ok"] is None and jobs[0]["quarantine"]["findings"] == ["CRITICAL burst"]
