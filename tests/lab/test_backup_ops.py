"""Lab tests: idempotence, check mode, timers that fire, the dead-man check, bad input (marker `lab`).

Run: .venv/bin/pytest -m lab tests/lab/test_backup_ops.py -v   (about 3-4 minutes)
"""
import json
import time

import pytest

from archive_dr.inventory import Inventory
from tests.lab.labkit import INVENTORY, changed_total, failure_text, play, sh

JOBS_JSON = "/etc/archive-dr/backup-jobs.json"


def systems(**changes):
    """The lab's protected systems with per-system overrides, as an extra-vars JSON string."""
    appliance = Inventory(INVENTORY, vault=False).hosts("backup_appliances")[0]
    base = Inventory(INVENTORY, vault=False).host_vars(appliance, ["backup_appliance_protected_systems"])[
        "backup_appliance_protected_systems"]
    out = []
    for s in base:
        s = dict(s)
        s.update(changes.get(s["name"], {}))
        out.append(s)
    out.extend(changes.get("_extra", []))
    return json.dumps({"backup_appliance_protected_systems": out})


def jobs_digest():
    return sh("geo-backup", "sha256sum %s; ls -l --time-style=+%%s /etc/systemd/system/archive-dr-backup-*" % JOBS_JSON).stdout


def test_rerun_zero_changed_and_check_diff_clean():
    # the lab was converged by site.yml; nothing before this test changes these two capabilities
    for name in ("archive.yml", "backup.yml"):
        p = play(name)
        assert p.stats and all(s.changed == 0 for s in p.stats.values()), (p.stats, p.stdout[-3000:])
        p = play(name, check=False, check_mode=True, diff=True, timeout=900)
        assert p.ok and p.stats and all(s.changed == 0 for s in p.stats.values()), (p.stats, p.stdout[-3000:])


@pytest.mark.parametrize("bad, message", [
    ({"_extra": [{"name": "x", "type": "mysql", "host": "geo-archive", "paths": ["/x"], "schedule": {}, "retention": {}}]},
     "value of type must be one of: postgresql, files"),
    ({"archive-db": {"retention": {"full": 0}}}, "A retention of 0 would keep nothing"),
    ({"archive-files": {"retention": {"daily": 0}}}, "A retention of 0 would keep nothing"),
    ({"archive-db": {"schedule": {"full": "every sunday at one"}}}, "Schedule does not parse: archive-db-full"),
])
def test_bad_input_fails_before_any_change(bad, message):
    before = jobs_digest()
    p = play("backup.yml", systems(**bad), check=False)
    assert not p.ok and message in failure_text(p), p.stdout[-3000:]
    assert changed_total(p) == 0, p.stats
    assert jobs_digest() == before


def test_missing_vault_passphrase_is_a_clear_error():
    before = jobs_digest()
    p = play("backup.yml", "vault_restic_password=", check=False)
    assert not p.ok and "Missing vault passphrase" in failure_text(p), p.stdout[-3000:]
    assert changed_total(p) == 0, p.stats
    p = play("archive.yml", "vault_pg_replication_password=", check=False)
    assert not p.ok and "Missing vault passphrase" in failure_text(p), p.stdout[-3000:]
    assert jobs_digest() == before


def status(job):
    out = sh("geo-backup", "cat /var/lib/archive-dr/backup-status/%s.json" % job, check=False).stdout
    return json.loads(out) if out.strip() else {}


def test_timers_fire_and_deadman_goes_red_then_green():
    fast = {"archive-files": {"schedule": {"snapshot": "*-*-* *:*:00/20", "check": "*-*-* *:*:10/30"},
                              "max_age": {"snapshot": 45, "check": 86400}}}
    try:
        play("backup.yml", systems(**fast))
        before = status("archive-files-snapshot").get("last_run_end", 0)
        deadline = time.time() + 90
        while time.time() < deadline and status("archive-files-snapshot").get("last_run_end", 0) <= before:
            time.sleep(5)
        st = status("archive-files-snapshot")
        assert st.get("last_run_end", 0) > before and st["outcome"] == "success", st
        sh("geo-backup", "systemctl start archive-dr-backup-archive-files-check.service")
        assert status("archive-files-check")["outcome"] == "success"
        # Stop the job: after max_age the dead-man check fails (red) ...
        sh("geo-backup", "systemctl stop archive-dr-backup-archive-files-snapshot.timer")
        time.sleep(max(0, 46 - (time.time() - status("archive-files-snapshot")["last_success"])))
        sh("geo-backup", "systemctl start archive-dr-backup-archive-db-full.service archive-dr-backup-archive-db-verify.service",
           timeout=900)
        red = sh("geo-backup", "systemctl start archive-dr-backup-deadman.service", check=False)
        assert red.returncode == 1, red.stdout + red.stderr          # systemctl: the job failed ...
        main_status = sh("geo-backup", "systemctl show -p ExecMainStatus --value archive-dr-backup-deadman.service")
        assert main_status.stdout.strip() == "1"                      # ... because the dead-man check exited 1 (stale)
        assert "STALE    archive-files-snapshot" in sh("geo-backup", "journalctl -u archive-dr-backup-deadman.service -n 30 "
                                                    "--no-pager -o cat").stdout
        prom = sh("geo-backup", "cat /var/lib/prometheus/node-exporter/archive_dr_backup_archive_files_snapshot.prom").stdout
        assert 'archive_dr_backup_stale{job="archive-files-snapshot"} 1' in prom
        # ... and green again once the job has run.
        sh("geo-backup", "systemctl start archive-dr-backup-archive-files-snapshot.service")
        for job in ("archive-db-diff", "archive-db-incr"):
            sh("geo-backup", "systemctl start archive-dr-backup-%s.service" % job, timeout=900)
        green = sh("geo-backup", "systemctl start archive-dr-backup-deadman.service", check=False)
        assert green.returncode == 0, sh("geo-backup", "journalctl -u archive-dr-backup-deadman.service -n 20 --no-pager -o cat").stdout
    finally:
        play("backup.yml")
