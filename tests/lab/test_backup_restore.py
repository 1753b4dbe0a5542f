"""Lab tests: backup appliance and archive system end to end (marker `lab`).

Seed -> full backup + snapshot -> record T -> later transactions, modify/delete/corrupt
rows and files -> restore DB (PITR to T) and files (snapshot at/before T) to new paths ->
four-property check passes on the restored copy, restored files equal the pristine seed
(independent sha256sum), restored table equals the pre-damage table, rows committed after
T are absent. Then the live store is repaired by a forced restore, and bad input is refused.

Run: .venv/bin/pytest -m lab tests/lab/test_backup_restore.py -v   (about 3-5 minutes)
"""
import json
import os
import time

import pytest

from archive_dr import runner
from tests.lab.labkit import INVENTORY, failure_text, play, psql, sh

RESTORED_DB = {"dbname": "archive", "port": 5433, "user": "postgres", "host": "/var/run/postgresql"}

ITEMS = int(os.environ.get("ARCHIVE_DR_TEST_ITEMS", "100"))


def run_job(job):
    sh("geo-backup", "systemctl start archive-dr-backup-%s.service" % job, timeout=900)
    return json.loads(sh("geo-backup", "cat /var/lib/archive-dr/backup-status/%s.json" % job).stdout)


def tree_sums(host, path):
    return sh(host, "cd %s && find . -type f -print0 | sort -z | xargs -0 sha256sum" % path).stdout


TABLE_SUM = "SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY archive_no)) FROM archive_item t"


@pytest.fixture(scope="module")
def converged():
    play("archive.yml")
    play("backup.yml")
    play("lab-seed.yml", "lab_seed_items=%d" % ITEMS, "lab_seed_reload=true")
    _stop_restored()
    sh("geo-archive", "rm -rf /srv/restore-test /var/lib/postgresql/restore")
    return True


def _stop_restored():
    sh("geo-archive", "runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /var/lib/postgresql/restore/pitr "
       "stop -m fast", check=False)


def test_backup_pitr_restore_and_four_property_check(converged):
    sh("geo-archive", "rsync -a --delete /var/lib/archive-dr/seed/files/ /srv/archive/ && chgrp -R archive-read /srv/archive")
    original_table = psql(TABLE_SUM)
    assert original_table.startswith("%d:" % ITEMS)
    full = run_job("archive-db-full")
    snap = run_job("archive-files-snapshot")
    assert full["outcome"] == "success" and snap["outcome"] == "success"

    psql("DROP TABLE IF EXISTS pitr_probe; CREATE TABLE pitr_probe (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
    for i in range(1, 4):
        psql("INSERT INTO pitr_probe (id) VALUES (%d)" % i)
    time.sleep(1.5)
    target = psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1.5)
    for i in range(4, 7):
        psql("INSERT INTO pitr_probe (id) VALUES (%d)" % i)
    # Damage: modify, delete, corrupt rows and files.
    psql("UPDATE archive_item SET title = title || ' (tampered)' WHERE archive_no IN "
         "(SELECT archive_no FROM archive_item ORDER BY archive_no LIMIT 3)")
    psql("DELETE FROM archive_item WHERE archive_no IN (SELECT archive_no FROM archive_item ORDER BY archive_no DESC LIMIT 2)")
    files = sh("geo-archive", "cd /srv/archive && find . -name '*.pdf' | sort | head -6").stdout.split()
    sh("geo-archive", "cd /srv/archive && rm -f %s %s && printf 'XXXX' | dd of=%s bs=1 seek=2000 conv=notrunc status=none"
       " && echo junk >> %s && echo foreign > ./foreign.txt" % (files[0], files[1], files[2], files[3]))
    seg = psql("SELECT pg_walfile_name(pg_switch_wal())")
    for _ in range(120):
        if psql("SELECT last_archived_wal FROM pg_stat_archiver") >= seg:
            break
        time.sleep(1)
    else:
        raise AssertionError("WAL %s not archived" % seg)
    time.sleep(1.5)
    run_job("archive-files-snapshot")        # a later snapshot with the damage; restore must not use it

    t0 = time.monotonic()
    play("restore.yml", "restore_system=archive-db", "restore_path=/var/lib/postgresql/restore/pitr",
         "restore_time='%s'" % target)
    t_db = time.monotonic() - t0
    t0 = time.monotonic()
    play("restore.yml", "restore_system=archive-files", "restore_path=/srv/restore-test/archive",
         "restore_time='%s'" % target[:19])
    t_files = time.monotonic() - t0
    try:
        # PITR lands exactly on the transactions committed before T.
        assert psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM pitr_probe", port=5433) == "1,2,3"
        assert psql(TABLE_SUM, port=5433) == original_table
        # Restored files equal the pristine seed (independent checksums).
        assert tree_sums("geo-archive", "/srv/restore-test/archive") == tree_sums("geo-archive", "/var/lib/archive-dr/seed/files")
        # Four-property check on the restored copy against the restored database.
        p = runner.run_module("archive_verify", {"root": "/srv/restore-test/archive", "db": RESTORED_DB}, "geo-archive",
                              INVENTORY, become=True, timeout=600)
        assert p.ok and p.task_result("archive_verify", "geo-archive")["passed"] is True, p.stdout[-4000:]
        # ... and the same check of the damaged live store against the restored metadata fails.
        p = runner.run_module("archive_verify", {"root": "/srv/archive", "db": RESTORED_DB}, "geo-archive",
                              INVENTORY, become=True, timeout=600)
        assert not p.ok and "four-property check failed" in failure_text(p) and "authenticity" in json.dumps(p.failures()), \
            p.stdout[-3000:]
        print("restore timings: database PITR %.1f s, files %.1f s" % (t_db, t_files))
    finally:
        _stop_restored()

    # Restoring over the live store is refused without force ...
    p = play("restore.yml", "restore_system=archive-files", "restore_path=/srv/archive", "restore_time='%s'" % target[:19],
             check=False)
    assert not p.ok and "LIVE data" in failure_text(p), p.stdout[-3000:]
    # ... and repairs it with force (exactly the snapshot: foreign file gone, damaged files back).
    play("restore.yml", "restore_system=archive-files", "restore_path=/srv/archive", "restore_time='%s'" % target[:19],
         "restore_force=true")
    assert tree_sums("geo-archive", "/srv/archive") == tree_sums("geo-archive", "/var/lib/archive-dr/seed/files")
    play("lab-seed.yml", "lab_seed_items=%d" % ITEMS, "lab_seed_reload=true")
    psql("DROP TABLE IF EXISTS pitr_probe")
    sh("geo-archive", "rm -rf /srv/restore-test /var/lib/postgresql/restore")
