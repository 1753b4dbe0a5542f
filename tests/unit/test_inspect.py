"""module_utils/dr_inspect.py: parsers, evaluation rules and the capacity forecast (pure)."""
from __future__ import annotations

import json

import pytest

from archive_dr.fixity import load
from tests.unit.reportdata import NOW, healthy

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
