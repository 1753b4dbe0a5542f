"""Disaster paths of the replica services in the running lab: restore at miyun with geo
stopped, promote miyun, fail back to geo. Each ends with the four-property check.

    .venv/bin/pytest tests/lab/test_replica_failover.py -v -s

Skipped when the lab is down. Disruptive for geo (geo-archive and geo-backup are
stopped for ~1 min; failback rebuilds geo-archive's database from miyun), bounded
(~5 min). The containers are always started again (finally).
"""
from __future__ import annotations

import json
import time

from tests.lab import tunnel_probe as tp
from tests.lab.labkit import host_psql as psql, play_recap as play, try_sh as sh

DRILL_DIR = "/srv/dr/restore/drill"


def wait_geo_back():
    # the lab's containers run with --no-hosts: the baseline's /etc/hosts survives a restart
    assert sh("geo-archive", "getent hosts geo-backup").returncode == 0
    assert tp.wait_until(lambda: sh("geo-archive", "pg_isready -q").returncode == 0, 120, step=1) is not None
    assert tp.wait_until(lambda: tp.connects("miyun-store", tp.GEO_ARCHIVE, 5432, wait=1.0), 120, step=1) is not None


def test_restore_at_miyun_to_a_chosen_time_with_geo_stopped():
    psql("geo-archive", "DROP DATABASE IF EXISTS replica_probe")
    psql("geo-archive", "CREATE DATABASE replica_probe")
    psql("geo-archive", "CREATE TABLE probe (v text); INSERT INTO probe VALUES ('before')", db="replica_probe")
    # A database backup to restore from (pgBackRest makes an incr a full when none exists).
    r = sh("geo-backup", "systemctl start archive-dr-backup-archive-db-incr.service", timeout=900)
    assert r.returncode == 0, r.stderr
    # A fresh file snapshot at the appliance, then the chosen time, then a later change.
    # (retried: another restic run of the appliance may hold the repository lock for a moment)
    r = sh("geo-backup", "for i in 1 2 3 4 5 6; do systemctl start archive-dr-backup-archive-files-snapshot.service "
                         "&& exit 0; sleep 5; done; exit 1", timeout=900)
    assert r.returncode == 0, r.stderr
    time.sleep(1.5)
    target = psql("geo-archive", "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1.5)
    psql("geo-archive", "INSERT INTO probe VALUES ('after')", db="replica_probe")
    wal = psql("geo-archive", "SELECT pg_walfile_name(pg_switch_wal())")
    assert tp.wait_until(lambda: psql("geo-archive", "SELECT last_archived_wal >= '%s' FROM pg_stat_archiver" % wal)
                         == "t", 120, step=1) is not None, "WAL not archived to the appliance"
    for job in ("pgbackrest", "restic"):
        r = sh("miyun-store", "systemctl start archive-dr-replica-pull@%s.service" % job, timeout=600)
        assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    tp.podman("stop", "-t", "5", "geo-archive", "geo-backup", timeout=120, check=True)
    try:
        assert not tp.connects("miyun-store", tp.GEO_ARCHIVE, 22, wait=1.0)
        r, _ = play("playbooks/replica.yml", "-e", "replica_mode=restore", "-e", "replica_restore_keep=true",
                    "-e", json.dumps({"replica_restore_target_time": target}), timeout=900)
        assert r.ok, r.stdout[-4000:]
        report = json.loads(sh("miyun-store", "cat /var/lib/archive-dr/replica-status/restore-drill.json").stdout)
        print(json.dumps(report, ensure_ascii=False))
        assert report["passed"] in (True, "True")
        # replica_restore_keep leaves the restored instance running
        got = sh("miyun-store", "runuser -u postgres -- psql -XAt -h %s -p 5499 -d replica_probe "
                                "-c \"SELECT string_agg(v, ',' ORDER BY v) FROM probe\"" % DRILL_DIR).stdout.strip()
        assert got == "before", "PITR to %s must hold 'before' and not 'after' (got %r)" % (target, got)
    finally:
        tp.podman("start", "geo-archive", "geo-backup", timeout=120)
        print("geo hosts down for %.0f s" % (time.monotonic() - t0))
        wait_geo_back()
        sh("miyun-store", "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D {d}/pgdata -m fast stop "
                          ">/dev/null 2>&1; rm -rf {d}".format(d=DRILL_DIR))
        psql("geo-archive", "DROP DATABASE IF EXISTS replica_probe")


def test_promote_miyun_then_fail_back_to_geo():
    t0 = time.monotonic()
    r, _ = play("playbooks/promote-miyun.yml", timeout=600)
    assert r.ok, r.stdout[-4000:]
    t_promote = time.monotonic() - t0
    assert psql("miyun-store", "SELECT pg_is_in_recovery()") == "f"
    assert sh("miyun-store", "systemctl is-enabled archive-dr-replica-pull-files.timer").stdout.strip() == "disabled"
    # Writes at miyun while promoted must come back to geo.
    psql("miyun-store", "DROP DATABASE IF EXISTS replica_probe")
    psql("miyun-store", "CREATE DATABASE replica_probe")
    psql("miyun-store", "CREATE TABLE probe (v text); INSERT INTO probe VALUES ('written-at-miyun')", db="replica_probe")
    t1 = time.monotonic()
    r, _ = play("playbooks/failback-geo.yml", timeout=1200)
    assert r.ok, r.stdout[-5000:]
    t_failback = time.monotonic() - t1
    print(json.dumps({"promote_s": round(t_promote, 1), "failback_s": round(t_failback, 1)}))
    assert psql("geo-archive", "SELECT pg_is_in_recovery()") == "f"
    assert psql("geo-archive", "SELECT v FROM probe", db="replica_probe") == "written-at-miyun"
    assert psql("miyun-store", "SELECT pg_is_in_recovery()") == "t"
    assert psql("geo-archive", "SELECT state FROM pg_stat_replication WHERE application_name = 'miyun_store'") == "streaming"
    for leftover in ("id replica-failback", "test -e /etc/sudoers.d/archive-dr-failback",
                     "test -e /etc/ssh/sshd_config.d/zz-archive-dr-failback.conf"):
        assert sh("geo-archive", leftover).returncode != 0, "temporary failback access left at geo: " + leftover
    psql("geo-archive", "DROP DATABASE IF EXISTS replica_probe")
