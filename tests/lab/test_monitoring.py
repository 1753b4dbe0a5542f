"""A person is told (issue 14 item 4, roles/monitoring): Prometheus at miyun scrapes every host's
archive-dr gauges (the geo hosts over the tunnel's metrics flows), and a fault becomes a mail in
the local alert mailbox and a line in the alert log. The quarantine mail is checked in
test_dr_history.py, where the attack happens."""
from __future__ import annotations

import json
import shlex
import time

from tests.lab.labkit import alert_mails, sh, try_sh, wait_for

MIYUN = "miyun-store"
APPLIANCE = "geo-backup"
TARGETS = {"miyun-store", "miyun-fw", "geo-archive", "geo-backup"}
ALERT_LOG = "/var/lib/archive-dr/alerts/alerts.jsonl"
TIMER = "archive-dr-backup-archive-db-full.timer"


def query(expr):
    out = sh(MIYUN, "curl -sf --get http://127.0.0.1:9090/api/v1/query --data-urlencode %s"
             % shlex.quote("query=" + expr)).stdout
    return json.loads(out)["data"]["result"]


def logged(alertname, instance, status):
    out = try_sh(MIYUN, "cat %s" % ALERT_LOG).stdout
    hits = []
    for line in out.splitlines():
        rec = json.loads(line)
        for a in rec["payload"].get("alerts", []):
            if (a["labels"].get("alertname"), a["labels"].get("instance"), a["status"]) == (alertname, instance, status):
                hits.append(rec["received"])
    return hits


def test_every_target_is_scraped_and_the_geo_gauges_arrive_over_the_tunnel():
    def all_up():
        out = sh(MIYUN, "curl -sf http://127.0.0.1:9090/api/v1/targets").stdout
        active = json.loads(out)["data"]["activeTargets"]
        health = {t["labels"]["instance"]: t["health"] for t in active}
        return health if set(health) == TARGETS and set(health.values()) == {"up"} else None

    health = wait_for("every target up", all_up, 120)
    print("targets: %s" % health)
    backups = wait_for("the appliance's job gauges", lambda: query('archive_dr_backup_last_success_timestamp_seconds'
                                                                  '{instance="geo-backup"}'), 60)
    assert {r["metric"]["job"] for r in backups} >= {"archive-db-full", "archive-files-snapshot"}
    assert wait_for("the replica gauges", lambda: query('archive_dr_replica_age_seconds{instance="miyun-store"}'), 60)
    tunnel = wait_for("the tunnel gauge", lambda: query('archive_dr_tunnel_up{instance="miyun-fw"}'), 60)
    assert tunnel[0]["value"][1] == "1"
    rules = json.loads(sh(MIYUN, "curl -sf http://127.0.0.1:9090/api/v1/rules").stdout)["data"]["groups"]
    assert sum(len(g["rules"]) for g in rules) >= 15


def test_a_stopped_backup_timer_is_mailed_and_logged_then_resolved():
    before = len(alert_mails("ArchiveDrBackupTimerStopped geo-backup archive-db-full"))
    stopped = time.time()
    sh(APPLIANCE, "systemctl stop %s" % TIMER)
    try:
        mails = wait_for("the alert mail", lambda: alert_mails("FIRING critical ArchiveDrBackupTimerStopped "
                                                             "geo-backup archive-db-full")[before:], 240)
        mailed = time.time()
        print("fault to mail: %.1f s (%s)" % (mailed - stopped, mails[0]))
        fired = wait_for("the alert log line", lambda: [t for t in logged("ArchiveDrBackupTimerStopped", "geo-backup",
                                                                           "firing") if t >= stopped], 30)
        print("fault to alert log: %.1f s" % (fired[0] - stopped))
    finally:
        sh(APPLIANCE, "systemctl start %s" % TIMER)
    restarted = time.time()
    resolved = wait_for("the resolved notification", lambda: [t for t in logged(
        "ArchiveDrBackupTimerStopped", "geo-backup", "resolved") if t >= restarted], 240)
    print("timer restarted to resolved: %.1f s" % (resolved[0] - restarted))
    assert wait_for("the resolved mail", lambda: alert_mails("RESOLVED critical ArchiveDrBackupTimerStopped"), 60)
