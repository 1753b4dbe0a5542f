"""Replica services in the running lab (roles/replica, playbooks/replica.yml).

    .venv/bin/pytest tests/lab/test_replica.py -v

Skipped when the lab is down. Bounded: every wait has a timeout; the file takes about
4-5 minutes (one converge + one check run, bad-input runs that stop in the first play,
the invariant probes, one WAN cut of ~25 s). Geo data touched: a dot directory in the
file store (removed) and a `replica_probe` database (dropped).
"""
from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest

from tests.lab import tunnel_probe as tp
from tests.lab.labkit import failure_text, host_psql as psql, play_recap as play, try_sh as sh

STORE, WORKING, SNAPS = "/srv/archive", "/srv/dr/files/current", "/srv/dr/files/snapshots"
PROBE = ".replica-probe"
STATUS = "/var/lib/archive-dr/replica-status"


def job_status(job):
    return json.loads(sh("miyun-store", "cat %s/%s.json" % (STATUS, job)).stdout or "{}")


def snapshots(path=SNAPS):
    return sorted(sh("miyun-store", "ls -1 %s 2>/dev/null" % path).stdout.split())


def stop_pulls(job):
    """Stop a pull timer and wait until no pull of that job runs (a running oneshot is `activating`,
    which `systemctl is-active` does not count as active)."""
    return ("systemctl stop archive-dr-replica-pull-{j}.timer; while systemctl show -p ActiveState --value "
            "archive-dr-replica-pull@{j}.service | grep -qE '^(activating|deactivating|reloading)$'; "
            "do sleep 0.2; done".format(j=job))


def test_converge_idempotent_and_check_clean():
    r, recap = play("playbooks/replica.yml")
    assert r.ok, r.stdout[-3000:]
    if any(v["changed"] for v in recap.values()):
        r, recap = play("playbooks/replica.yml")
        assert r.ok, r.stdout[-3000:]
    assert set(recap) == {"geo-archive", "geo-backup", "miyun-store"}
    assert all(v["changed"] == 0 for v in recap.values()), recap
    r, recap = play("playbooks/replica.yml", "--check", "--diff")
    assert r.ok, r.stdout[-3000:]
    assert all(v["changed"] == 0 for v in recap.values()), recap


@pytest.mark.parametrize("extra,message", [
    ('{"replica_files_retention": {"keep_all_days": 0, "daily": 31}}', "retention of 0"),
    ('{"replica_repo_retention": {"last": 8, "daily": 14}}', "'last' (a number of snapshots) is no longer supported"),
    ('{"replica_files_path": "/var/lib/dr-files"}', "inside the data pool"),
    ('{"replica_data_root": "/srv"}', "inside the data pool"),
    ('{"replica_pg_primary_port": 5433}', "not allowed by the gateway"),
    ('{"replica_appliance_host": "geo-fw"}', "not allowed by the gateway"),
])
def test_bad_input_fails_before_any_change(extra, message):
    r, recap = play("playbooks/replica.yml", "-e", extra, timeout=180)
    assert not r.ok
    assert message in failure_text(r), r.stdout[-2000:]
    assert set(recap) == {"miyun-store"}, "only the validation play ran: %s" % recap
    assert recap["miyun-store"]["changed"] == 0


def test_standby_streams_over_tls_through_the_slot_and_exposes_lag():
    row = psql("geo-archive", "SELECT r.state, s.ssl, s.version, sl.active FROM pg_stat_replication r "
                              "JOIN pg_stat_ssl s USING (pid) JOIN pg_replication_slots sl ON sl.active_pid = r.pid "
                              "WHERE r.application_name = 'miyun_store'")
    assert row.startswith("streaming|t|TLSv1.") and row.endswith("|t"), row
    assert psql("miyun-store", "SELECT pg_is_in_recovery()") == "t"
    # TLS is required: a plain connection from miyun is rejected by the primary's pg_hba.
    r = sh("miyun-store", "PGPASSFILE=/var/lib/postgresql/.pgpass runuser -u postgres -- psql -XAt "
                          "'host=%s user=replicator replication=1 sslmode=disable' -c IDENTIFY_SYSTEM" % tp.GEO_ARCHIVE)
    assert r.returncode != 0 and "no encryption" in r.stderr, r.stderr
    psql("geo-archive", "DROP DATABASE IF EXISTS replica_probe")
    psql("geo-archive", "CREATE DATABASE replica_probe")
    try:
        marker = uuid.uuid4().hex
        psql("geo-archive", "CREATE TABLE probe (v text); INSERT INTO probe VALUES ('%s')" % marker, db="replica_probe")
        t = tp.wait_until(lambda: sh("miyun-store", "runuser -u postgres -- psql -XAt -d replica_probe -c "
                                                    "'SELECT v FROM probe' 2>/dev/null").stdout.strip() == marker, 15)
        assert t is not None, "row did not reach the standby in 15 s"
        print("row visible at miyun after %.2f s" % t)
    finally:
        psql("geo-archive", "DROP DATABASE IF EXISTS replica_probe")
    sh("miyun-store", "systemctl start archive-dr-replica-metrics.service")
    prom = sh("miyun-store", "cat /var/lib/prometheus/node-exporter/archive_dr_replica.prom").stdout
    assert re.search(r"^archive_dr_replica_standby_streaming 1$", prom, re.M), prom
    assert re.search(r"^archive_dr_replica_standby_lag_bytes \d+$", prom, re.M)
    assert re.search(r"^archive_dr_replica_standby_lag_seconds [\d.]+$", prom, re.M)
    status = json.loads(sh("miyun-store", "cat %s/replica-status.json" % STATUS).stdout)
    assert status["standby"]["role"] == "standby" and not status["standby"]["stale"]
    # The pulls have run on their timers since the converge and the standby streams: nothing is stale.
    deadman = sh("miyun-store", "python3 /usr/local/lib/archive-dr/replica_tool.py deadman")
    assert deadman.returncode == 0 and "dead-man: replica current" in deadman.stdout, deadman.stdout + deadman.stderr


def test_new_file_reaches_miyun_and_lands_in_a_read_only_snapshot():
    name = "probe-%s.bin" % uuid.uuid4().hex[:8]
    sh("geo-archive", "install -d -m 0750 -g archive-read {s}/{p} && head -c 100000 /dev/urandom > {s}/{p}/{n} && "
                      "chgrp archive-read {s}/{p}/{n}".format(s=STORE, p=PROBE, n=name))
    try:
        want = sh("geo-archive", "sha256sum %s/%s/%s | cut -d' ' -f1" % (STORE, PROBE, name)).stdout.strip()
        t = tp.wait_until(lambda: sh("miyun-store", "test -f %s/%s/%s" % (WORKING, PROBE, name)).returncode == 0, 60)
        assert t is not None, "file not at miyun within 60 s"
        print("file present at miyun after %.1f s" % t)
        # Within the snapshot interval (60 s) plus one pull, a read-only snapshot holds it.
        found = []

        def in_snapshot():
            for s in reversed(snapshots()[-3:]):
                if sh("miyun-store", "test -f %s/%s/%s/%s" % (SNAPS, s, PROBE, name)).returncode == 0:
                    found.append(s)
                    return True
            return False
        assert tp.wait_until(in_snapshot, 90, step=2) is not None, "no snapshot with the new file within 90 s"
        snap = "%s/%s" % (SNAPS, found[0])
        assert sh("miyun-store", "btrfs property get -ts %s ro" % snap).stdout.strip() == "ro=true"
        r = sh("miyun-store", "echo x > %s/%s/%s" % (snap, PROBE, name))
        assert r.returncode != 0 and "Read-only file system" in r.stderr
        got = sh("miyun-store", "sha256sum %s/%s/%s | cut -d' ' -f1" % (snap, PROBE, name)).stdout.strip()
        assert got == want
        # A deletion and an overwrite at geo reach the working copy but never the snapshot.
        sh("geo-archive", "head -c 100 /dev/zero > %s/%s/%s" % (STORE, PROBE, name))
        assert tp.wait_until(lambda: sh("miyun-store", "stat -c %%s %s/%s/%s" % (WORKING, PROBE, name))
                             .stdout.strip() == "100", 60) is not None
        assert sh("miyun-store", "sha256sum %s/%s/%s | cut -d' ' -f1" % (snap, PROBE, name)).stdout.strip() == want
    finally:
        sh("geo-archive", "rm -rf %s/%s" % (STORE, PROBE))


# A backup job at the appliance that writes to the repository the pull copies.
REPO_WRITER = {"pgbackrest": "archive-dr-backup-archive-db-incr.service",
               "restic": "archive-dr-backup-archive-files-snapshot.service"}


@pytest.mark.parametrize("job", ["pgbackrest", "restic"])
def test_repository_pull_with_changes_is_a_new_verified_read_only_snapshot(job):
    """The appliance writes to its repository; the next pull copies the change, verifies the copy and
    takes a new read-only snapshot (a pull without changes takes none, so the test makes one)."""
    timer = "archive-dr-replica-pull-%s.timer" % job
    # The timer's own pull must not take the change between the backup and the pull below.
    assert sh("miyun-store", stop_pulls(job), timeout=600).returncode == 0
    try:
        before = snapshots("/srv/dr/repos/%s/snapshots" % job)
        # (retried: another run of the appliance may hold the repository lock for a moment)
        r = sh("geo-backup", "for i in 1 2 3 4 5 6; do systemctl start %s && exit 0; sleep 5; done; exit 1"
               % REPO_WRITER[job], timeout=900)
        assert r.returncode == 0, r.stderr
        r = sh("miyun-store", "systemctl start archive-dr-replica-pull@%s.service" % job, timeout=600)
        assert r.returncode == 0, r.stderr
        st = job_status(job)
        assert st["outcome"] == "success", st
        assert ("pgbackrest info ok" in st["last_message"]) if job == "pgbackrest" else ("check ok" in st["last_message"])
        assert st["last_changes"] > 0, st
        after = snapshots("/srv/dr/repos/%s/snapshots" % job)
        # Retention may prune an old one, so the count need not grow: the newest is new and is this pull's.
        assert after and after[-1] not in before, (before, after)
        assert st["last_snapshot_name"] == after[-1], st
        assert sh("miyun-store", "btrfs property get -ts /srv/dr/repos/%s/snapshots/%s ro" % (job, after[-1])
                  ).stdout.strip() == "ro=true"
    finally:
        sh("miyun-store", "systemctl start %s" % timer)


PRIVATE_KEYS = r"""
for f in $(find / -xdev \( -path /proc -o -path /sys -o -path /usr -o -path /var/lib/apt -o -path /var/cache \) -prune \
             -o -type f -size -20k -print 2>/dev/null); do
  head -c 64 "$f" 2>/dev/null | grep -q -- '-----BEGIN .*PRIVATE KEY-----' || continue
  ssh-keygen -y -P '' -f "$f" >/dev/null 2>&1 && echo "$f"
done
"""


@pytest.mark.parametrize("geo", ["geo-archive", "geo-backup"])
def test_invariant_no_credential_at_geo_can_destroy_miyun(geo):
    """As root at geo, with every private key stored there, try to delete miyun's data and snapshots."""
    keys = sh(geo, PRIVATE_KEYS, timeout=300).stdout.split()
    assert keys, "positive control: the geo host holds SSH keys (appliance/replication keys)"
    pull_pub = sh("miyun-store", "ssh-keygen -y -f /etc/archive-dr/replica/pull_ed25519 | cut -d' ' -f2").stdout.strip()
    geo_pubs = sh(geo, "for k in %s; do ssh-keygen -y -P '' -f $k | cut -d' ' -f2; done" % " ".join(keys)).stdout.split()
    assert pull_pub and pull_pub not in geo_pubs, "miyun's pull key must not exist at geo"
    before = sh("miyun-store", "ls %s | wc -l; ls /srv/dr/repos/*/snapshots | wc -l; find %s -type f | wc -l"
                % (SNAPS, WORKING)).stdout.split()
    users = ["root", "dradmin", "postgres", "pgbackrest", "replica-pull", "backup-pull"]
    destroy = "rm -rf /srv/dr/files /srv/dr/repos; btrfs subvolume delete /srv/dr/files/snapshots/*"
    attempts = " ".join("%s@%s" % (u, k) for u in users for k in keys)
    script = (
        "for a in %s; do u=${a%%%%@*}; k=${a#*@}; "
        "( timeout 8 ssh -i $k -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o ConnectTimeout=4 $u@%s %s >/dev/null 2>&1 && echo \"OPEN $a\" "
        "|| echo \"closed $a\" ) & done; wait" % (attempts, tp.MIYUN_STORE, json.dumps(destroy)))
    out = sh(geo, script, timeout=120).stdout.splitlines()
    assert len(out) == len(users) * len(keys)
    assert not [line for line in out if line.startswith("OPEN")], out
    # No other way in either: no TCP service of miyun answers from geo (gateway: reverse direction undeclared).
    for port in (22, 873, 5432):
        assert not tp.connects(geo, tp.MIYUN_STORE, port, wait=2.0), port
    # The accounts geo serves miyun through are read-only (rrsync -ro / guard): a write is refused.
    dst = "%s:./" % tp.GEO_ARCHIVE if geo == "geo-archive" else "%s:pgbackrest/" % tp.GEO_BACKUP
    r = sh("miyun-store", "echo x > /tmp/w.txt; rsync -e 'ssh -i /etc/archive-dr/replica/pull_ed25519 -o BatchMode=yes "
                          "-o UserKnownHostsFile=/etc/archive-dr/replica/known_hosts' /tmp/w.txt replica-pull@%s" % dst)
    assert r.returncode != 0, "the pull account must refuse writes"
    after = sh("miyun-store", "ls %s | wc -l; ls /srv/dr/repos/*/snapshots | wc -l; find %s -type f | wc -l"
               % (SNAPS, WORKING)).stdout.split()
    assert int(after[0]) >= int(before[0]) >= 1 and int(after[1]) >= int(before[1]) >= 1, (before, after)


def test_wan_cut_during_pull_and_streaming_catches_up_without_partial_snapshot():
    """Stop miyun-fw while a large file is being pulled and rows are written at geo."""
    name = "wancut-%s.bin" % uuid.uuid4().hex[:8]
    assert sh("miyun-store", stop_pulls("files"), timeout=600).returncode == 0
    psql("geo-archive", "DROP DATABASE IF EXISTS replica_probe")
    psql("geo-archive", "CREATE DATABASE replica_probe")
    psql("geo-archive", "CREATE TABLE probe (v text)", db="replica_probe")
    snaps_before = snapshots()
    try:
        # ~40 MB at 100 Mbit/s takes ~4 s: the cut lands in the middle of the pull.
        sh("geo-archive", "install -d -m 0750 -g archive-read {s}/{p} && head -c 40000000 /dev/urandom > {s}/{p}/{n} && "
                          "chgrp -R archive-read {s}/{p}".format(s=STORE, p=PROBE, n=name))
        want = sh("geo-archive", "sha256sum %s/%s/%s | cut -d' ' -f1" % (STORE, PROBE, name)).stdout.strip()
        pull = subprocess.Popen(["podman", "exec", "miyun-store", "systemctl", "start",
                                 "archive-dr-replica-pull@files.service"], env=tp.ENV)
        time.sleep(1.5)
        t_cut = time.monotonic()
        tp.podman("stop", "-t", "2", "miyun-fw", timeout=60, check=True)
        try:
            psql("geo-archive", "INSERT INTO probe VALUES ('during-cut')", db="replica_probe")
            pull.wait(timeout=120)
            st = job_status("files")
            assert st["outcome"] == "failure", "the cut pull must fail: %s" % st
            assert snapshots() == snaps_before, "a cut pull is never a snapshot"
            time.sleep(max(0.0, 20 - (time.monotonic() - t_cut)))
        finally:
            tp.podman("start", "miyun-fw", timeout=120, check=True)
            t_back = time.monotonic()
            sh("miyun-store", "systemctl start archive-dr-replica-pull-files.timer")
        file_t = tp.wait_until(lambda: sh("miyun-store", "sha256sum %s/%s/%s 2>/dev/null | cut -d' ' -f1"
                                          % (WORKING, PROBE, name)).stdout.strip() == want, 180, step=1)
        db_t = tp.wait_until(lambda: sh("miyun-store", "runuser -u postgres -- psql -XAt -d replica_probe -c "
                                        "\"SELECT count(*) FROM probe WHERE v = 'during-cut'\" 2>/dev/null"
                                        ).stdout.strip() == "1", 180, step=1)
        print(json.dumps({"file_catch_up_after_link_back_s": file_t and round(time.monotonic() - t_back, 1),
                          "db_catch_up_s": db_t}))
        assert file_t is not None, "file replica did not catch up by itself"
        assert db_t is not None, "standby did not catch up by itself"
        # Every snapshot taken after the cut holds the whole file, never a part of it.
        assert tp.wait_until(lambda: len([s for s in snapshots() if s not in snaps_before]) > 0, 90, step=2) is not None
        new = [s for s in snapshots() if s not in snaps_before]
        for s in new:
            got = sh("miyun-store", "sha256sum %s/%s/%s/%s 2>/dev/null | cut -d' ' -f1" % (SNAPS, s, PROBE, name)).stdout.strip()
            assert got == want, "snapshot %s holds a partial or no copy of the file (%s)" % (s, got)
    finally:
        sh("geo-archive", "rm -rf %s/%s" % (STORE, PROBE))
        psql("geo-archive", "DROP DATABASE IF EXISTS replica_probe")
        if not tp.connects("miyun-store", tp.GEO_ARCHIVE, 5432, wait=1.0):
            tp.podman("start", "miyun-fw", timeout=120)


def test_a_planted_test_signature_fails_security_and_is_named():
    """The EICAR test file and an openssl-encrypted file (the lab ransomware's format) planted among
    copies of archive files at miyun-store: the four-property
    check (playbooks/replica.yml -e replica_mode=four_property, the role's default scan command:
    clamscan with the project's signatures) fails the security property with a scan finding that
    names each file, and no archive file is flagged. The files are also foreign (no metadata row): the assertions are on the scan's own
    finding, not on that. The file replica itself is never written."""
    scratch = "/var/tmp/archive-dr-scan-%s" % uuid.uuid4().hex[:8]
    eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"  # in two parts: no AV flags this file
    files = sh("miyun-store", "cd %s && find . -type f -name '*.pdf' | sort | head -n 3" % WORKING).stdout.split()
    assert files, "no PDF in the file replica"
    try:
        r = sh("miyun-store", "install -d -m 0700 {s} {s}/files {s}/work && cd {w} && cp -p --parents {f} {s}/files/ "
                              "&& printf '%s' '{e}' > {s}/files/eicar.pdf && printf 'Salted__' > {s}/files/encrypted.pdf "
                              "&& head -c 4096 /dev/urandom >> {s}/files/encrypted.pdf".format(
                                  s=scratch, w=WORKING, f=" ".join(files), e=eicar))
        assert r.returncode == 0, r.stderr
        r, _ = play("playbooks/replica.yml", "-e", "replica_mode=four_property", "-e",
                    json.dumps({"replica_four_property_root": scratch + "/files",
                                "replica_four_property_workdir": scratch + "/work"}), timeout=600)
        assert not r.ok, "the four-property check passed with the EICAR test file in the tree"
        check = r.task_result("Four-property check (authenticity, integrity, usability, security)", "miyun-store")
        security = check["result"]["properties"]["security"]
        assert security["ok"] is False
        assert security["scan"]["mode"] == "tree" and security["scan"]["status"] == "infected", security["scan"]
        found = [f for f in security["failures"] if f["kind"] == "scan_infected"]
        assert sorted((f["path"], f["signature"].split("-")[0]) for f in found) == [
            ("eicar.pdf", "Eicar.Test.ArchiveDR_EICAR"), ("encrypted.pdf", "Multios.Ransomware.ArchiveDR_OpenSSL_Salted")], found
        # ... and the play's failure message (the check's summary) names it too.
        assert "kind=scan_infected, path=eicar.pdf" in failure_text(r), failure_text(r)[-2000:]
    finally:
        sh("miyun-store", "rm -rf %s" % scratch)
