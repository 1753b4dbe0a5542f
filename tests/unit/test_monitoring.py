"""roles/monitoring: the alert rules (promtool), their coverage of the inspection's criticals,
and the alert log receiver (a real HTTP server on loopback)."""
import importlib.util
import json
import re
import subprocess
import threading
import urllib.request
from http.server import ThreadingHTTPServer

import pytest
import yaml

from archive_dr.paths import ROOT

ROLE = ROOT / "roles" / "monitoring"
PROMTOOL = ROOT / ".cache" / "prometheus" / "usr" / "bin" / "promtool"   # scripts/install-deps.sh

# Every check the inspection raises criticals for, and the alerts that raise it between
# inspections. Checks without an alert are the inspection's alone, with the reason.
ALERTS_FOR_CHECK = {
    "capacity": ["ArchiveDrDiskAlmostFull"],
    "forecast": ["ArchiveDrDiskForecast"],
    "job-timer": ["ArchiveDrBackupTimerStopped", "ArchiveDrMetricsStale"],
    "job-age": ["ArchiveDrBackupStale", "ArchiveDrReplicaStale"],
    "job-quarantine": ["ArchiveDrReplicaQuarantined"],
    "job-verify": ["ArchiveDrVerificationFailed"],
    "replication": ["ArchiveDrStandbyNotStreaming", "ArchiveDrStandbyLag"],
    "tunnel": ["ArchiveDrTunnelDown"],
    "certificate": ["ArchiveDrCertificateExpiry"],
    "time": ["ArchiveDrClockUnsynchronised"],
}
INSPECTION_ONLY = {
    "security": "configuration drift (sshd, default-deny) changes only by a converge; checked monthly",
    "media": "offline Blu-ray read-back runs at the monthly inspection",
    "units": "a failed unit of a job shows as the job's stale or failing alert",
}


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rules():
    doc = yaml.safe_load((ROLE / "files" / "archive-dr.rules.yml").read_text())
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"]}


def test_promtool_is_unpacked_by_the_setup():
    assert PROMTOOL.is_file(), "scripts/install-deps.sh (make deps) unpacks promtool to %s" % PROMTOOL


def test_the_rules_are_valid_and_their_unit_tests_pass():
    files = ROLE / "files"
    check = subprocess.run([str(PROMTOOL), "check", "rules", "archive-dr.rules.yml"], cwd=files,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: %d rules found" % len(rules()) in check.stdout
    test = subprocess.run([str(PROMTOOL), "test", "rules", "archive-dr.rules.test.yml"], cwd=files,
                          capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


def test_every_alert_is_exercised_by_a_rule_test():
    doc = yaml.safe_load((ROLE / "files" / "archive-dr.rules.test.yml").read_text())
    fired = {case["alertname"] for t in doc["tests"] for case in t.get("alert_rule_test", [])
             if case.get("exp_alerts")}
    assert set(rules()) == fired, "alerts never seen firing in a test: %s" % sorted(set(rules()) - fired)


def test_every_critical_of_the_inspection_has_an_alert_or_a_stated_reason():
    src = (ROOT / "module_utils" / "dr_inspect.py").read_text()
    checks = set(re.findall(r'_f\(F, "critical"(?: if \w+ else "warning")?, host, "([a-z-]+)"', src))
    checks |= {"replication"}     # thresholds table: spec.get("check", "replication")
    assert checks, "no critical checks parsed from dr_inspect.py"
    assert checks == set(ALERTS_FOR_CHECK) | set(INSPECTION_ONLY), checks ^ (set(ALERTS_FOR_CHECK) | set(INSPECTION_ONLY))
    known = rules()
    for check, alerts in ALERTS_FOR_CHECK.items():
        for a in alerts:
            assert a in known, "%s: alert %s is not a rule" % (check, a)
            assert known[a]["labels"]["severity"] == "critical", a


@pytest.fixture
def alert_log(tmp_path):
    mod = load_module(ROLE / "files" / "archive_dr_alert_log.py", "archive_dr_alert_log")
    server = ThreadingHTTPServer(("127.0.0.1", 0), mod.make_handler(str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield mod, "http://127.0.0.1:%d/" % server.server_address[1], tmp_path
    server.shutdown()
    server.server_close()


PAYLOAD = {"version": "4", "status": "firing", "receiver": "archive-dr",
           "alerts": [{"status": "firing",
                       "labels": {"alertname": "ArchiveDrReplicaQuarantined", "severity": "critical",
                                  "instance": "miyun-store", "job": "restic"},
                       "annotations": {"summary": "replica job restic holds its pulls in quarantine"}}]}


def post(url, body):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_the_alert_log_appends_each_notification_and_lists_it(alert_log, capsys):
    mod, url, log_dir = alert_log
    assert post(url, json.dumps(PAYLOAD).encode()) == 200
    assert post(url, json.dumps(dict(PAYLOAD, status="resolved")).encode()) == 200
    records = mod.read_log(str(log_dir))
    assert [r["payload"]["status"] for r in records] == ["firing", "resolved"]
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("alert: ")] == \
        ["alert: firing critical ArchiveDrReplicaQuarantined instance=miyun-store job=restic: "
         "replica job restic holds its pulls in quarantine"] * 2     # the journal's lines
    assert mod.main(["list", "--dir", str(log_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "firing critical ArchiveDrReplicaQuarantined instance=miyun-store job=restic" in out[0]
    assert records[1]["received"] >= records[0]["received"]
    assert mod.read_log(str(log_dir), since=records[1]["received"] + 1) == []


def test_the_alert_log_refuses_what_is_not_a_json_object(alert_log):
    mod, url, log_dir = alert_log
    assert post(url, b"not json") == 400
    assert post(url, b"[1, 2]") == 400
    assert mod.read_log(str(log_dir)) == []
