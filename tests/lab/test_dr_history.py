"""Deletion by proxy (issue 14, docs/dr-history.md): root on geo-backup holds the restic password and
runs `restic forget --keep-last 1 --prune`. Miyun's next pull copies a valid, emptied repository;
the quarantine gate keeps it out of history (no snapshot, no pruning), the unit, the dead-man and
the metric go red within that one pull, every pre-attack restore point stays readable in miyun's
newest snapshot, and `archive-dr release` (logged on the host and in the audit ledger) lets the
next pulls through again. The same for the file replica: 5 % of geo's PDFs encrypted in place are
held in quarantine after one pull, the pre-attack snapshot stays intact, `archive-dr release files`
lets history go on."""
from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
import time

import pytest

from archive_dr.paths import ROOT
from tests.lab.labkit import ENV, alert_mails, sh, try_sh, wait_for

MIYUN, APPLIANCE = "miyun-store", "geo-backup"
TOOL = "/usr/local/lib/archive-dr/replica_tool.py"
STATUS = "/var/lib/archive-dr/replica-status"
SNAPS = "/srv/dr/repos/restic/snapshots"
REPO = "archive-files"
WRITER = "archive-dr-backup-archive-files-snapshot.service"
GEO_RESTIC = ("set -a; . /etc/archive-dr/files/%s.env; set +a; export RESTIC_PASSWORD_FILE=/etc/archive-dr/restic.pass "
              "RESTIC_CACHE_DIR=/var/cache/restic; " % REPO)
STOP_PULLS = ("systemctl stop archive-dr-replica-pull-{job}.timer; while systemctl show -p ActiveState --value "
              "archive-dr-replica-pull@{job}.service | grep -qE '^(activating|deactivating|reloading)$'; do sleep 0.2; done")


def status():
    return json.loads(sh(MIYUN, "cat %s/restic.json" % STATUS).stdout or "{}")


def snapshots():
    return sorted(sh(MIYUN, "ls -1 %s" % SNAPS).stdout.split())


def geo_snapshot_ids():
    return sorted(s["id"] for s in json.loads(sh(APPLIANCE, GEO_RESTIC + "restic snapshots --json --no-lock").stdout))


def miyun_snapshot_ids(snapshot):
    out = sh(MIYUN, "RESTIC_PASSWORD_FILE=/etc/archive-dr/replica/restic.pass RESTIC_CACHE_DIR=/var/cache/restic "
                    "restic -r %s/%s/%s --no-lock snapshots --json" % (SNAPS, snapshot, REPO)).stdout
    return sorted(s["id"] for s in json.loads(out))


def pull():
    return try_sh(MIYUN, "systemctl start archive-dr-replica-pull@restic.service", timeout=900)


def assert_pulled(pull_once, job_status):
    """A pull that must succeed; its failure names the pull's own message and the unit's journal."""
    r = pull_once()
    st = job_status()
    if r.returncode != 0 or st.get("outcome") != "success":
        job = st.get("job", "?")
        journal = try_sh(MIYUN, "journalctl -u archive-dr-replica-pull@%s -n 30 -o cat --no-pager" % job).stdout
        raise AssertionError("pull of %s: rc=%d outcome=%s: %s\n%s" % (
            job, r.returncode, st.get("outcome"), st.get("last_message"), journal[-3000:]))


def held_after_one_pull(pull_once, job_status):
    """(seconds from the attack to the alert, the job's status, its findings as one text): the first pull
    after an attack must be held in quarantine."""
    attacked = time.time()
    r = pull_once()
    alerted = time.time() - attacked
    st = job_status()
    assert r.returncode != 0 and st["outcome"] == "quarantine", st
    return alerted, st, " ".join(st["quarantine"]["findings"])


def test_forget_at_geo_is_held_in_quarantine_and_history_survives():
    sh(MIYUN, STOP_PULLS.format(job="restic"))
    try:
        # at least four restore points (mass-vanish needs three gone), all accepted by a clean pull
        for _ in range(6):
            if len(geo_snapshot_ids()) >= 4:
                break
            sh(APPLIANCE, "for i in 1 2 3 4 5 6; do systemctl start %s && exit 0; sleep 5; done; exit 1" % WRITER)
        before_ids = geo_snapshot_ids()
        assert_pulled(pull, status)
        before_snaps = snapshots()
        assert miyun_snapshot_ids(before_snaps[-1]) == before_ids

        # the attack: root on the appliance empties the repository's history; it stays a valid repository
        mails_before = len(alert_mails("FIRING critical ArchiveDrReplicaQuarantined miyun-store restic"))
        attack_time = time.time()
        sh(APPLIANCE, GEO_RESTIC + "restic forget --keep-last 1 --group-by '' --prune && restic check")
        assert len(geo_snapshot_ids()) == 1

        alerted, st, findings = held_after_one_pull(pull, status)
        assert "CRITICAL mass-vanish" in findings, findings
        assert snapshots() == before_snaps, "the quarantined pull became history"
        assert miyun_snapshot_ids(before_snaps[-1]) == before_ids, "a pre-attack restore point is gone at miyun"
        assert 'archive_dr_replica_quarantined{job="restic"} 1' in sh(
            MIYUN, "cat /var/lib/prometheus/node-exporter/archive_dr_replica.prom").stdout
        deadman = try_sh(MIYUN, "%s deadman" % TOOL)
        assert deadman.returncode == 1 and "QUARANTINE restic" in deadman.stdout, deadman.stdout
        # held until released, even by a pull that sees nothing new
        assert pull().returncode != 0 and status()["outcome"] == "quarantine"
        assert snapshots() == before_snaps
        print("\nquarantine: %d restore points before, 1 after the attack; alert after one pull, %.1f s; "
              "miyun kept all %d" % (len(before_ids), alerted, len(before_ids)))
        mail = wait_for("the quarantine alert mail", lambda: alert_mails(
            "FIRING critical ArchiveDrReplicaQuarantined miyun-store restic")[mails_before:], 180)
        print("quarantine: attack to alert mail %.1f s (%s)" % (time.time() - attack_time, mail[-1]))

        released = subprocess.run([sys.executable, "-m", "archive_dr", "release", "restic", "--by", "lab-test",
                                   "--reason", "forget at geo was the lab attack test; pre-attack history verified"],
                                  cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
        assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-2000:]
        st = status()
        assert "quarantine" not in st and st["outcome"] == "success", st
        after_snaps = snapshots()
        assert after_snaps[-1] not in before_snaps and set(before_snaps) <= set(after_snaps)
        log = [json.loads(line) for line in sh(MIYUN, "cat %s/restic.releases.jsonl" % STATUS).stdout.splitlines()]
        assert log[-1]["by"] == "lab-test" and log[-1]["snapshot"] == after_snaps[-1]
        ledger = sh(MIYUN, "tail -n 5 /srv/dr/audit/ledger.jsonl").stdout.splitlines()
        assert any(any(p.endswith("release.yml") for p in json.loads(line)["record"].get("playbooks", []))
                   for line in ledger), "the release is not in miyun's audit ledger"
        assert_pulled(pull, status)

        # 13 months on (the retention logic's clock, not the host's): the last pre-attack snapshot alone
        # holds the pre-attack restore points, so miyun keeps it whatever the calendar says
        plan = sh(MIYUN, "%s prune restic --now +395d --dry-run" % TOOL).stdout
        verdict = {line.split()[1]: line.split()[0] for line in plan.splitlines()[1:] if line.split()}
        assert verdict.get(before_snaps[-1]) == "keep", plan
        held = [line for line in plan.splitlines() if before_snaps[-1] in line][0]
        assert "vanished" in held, held
        assert miyun_snapshot_ids(before_snaps[-1]) == before_ids
        print("13 months on: %d snapshots kept, %d deleted; the last pre-attack one kept (%s)" % (
            list(verdict.values()).count("keep"), list(verdict.values()).count("delete"), held.split("  ", 1)[-1][:160]))
    finally:
        sh(MIYUN, "systemctl start archive-dr-replica-pull-restic.timer")


def test_a_flood_of_backdated_fake_snapshots_is_held_in_quarantine():
    """restic's forget docs (PR #3656): fakes dated just after real snapshots win the weekly and monthly
    buckets of a later `forget`. Root on geo-backup writes 15 of them, dated into the past weeks."""
    sh(MIYUN, STOP_PULLS.format(job="restic"))
    try:
        assert_pulled(pull, status)
        before_snaps = snapshots()
        sh(APPLIANCE, GEO_RESTIC + "mkdir -p /var/tmp/fake && echo fake > /var/tmp/fake/x && for d in $(seq 1 15); do "
                      "restic backup --quiet --host geo-archive --time \"$(date -d \"-$d days\" '+%Y-%m-%d %H:%M:%S')\" "
                      "/var/tmp/fake || exit 1; done; rm -rf /var/tmp/fake")
        r = pull()
        st = status()
        assert r.returncode != 0 and st["outcome"] == "quarantine", st
        findings = " ".join(st["quarantine"]["findings"])
        assert "CRITICAL backdated" in findings and "CRITICAL burst" in findings, findings
        assert snapshots() == before_snaps
        released = subprocess.run([sys.executable, "-m", "archive_dr", "release", "restic", "--by", "lab-test",
                                   "--reason", "fake snapshots were the lab attack test"],
                                  cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
        assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-2000:]
        assert status()["outcome"] == "success"
    finally:
        sh(MIYUN, "systemctl start archive-dr-replica-pull-restic.timer")


PGBR_STATUS = STATUS + "/pgbackrest.json"
GEO_PGBACKREST = "runuser -u pgbackrest -- pgbackrest --stanza=archive-db "


def geo_backup_sets():
    info = json.loads(sh(APPLIANCE, GEO_PGBACKREST + "--output=json info").stdout)
    return sorted(b["label"] for b in info[0]["backup"])


def test_expire_at_geo_is_held_in_quarantine_and_history_survives():
    """`pgbackrest expire --repo1-retention-full=1` as root on geo-backup (the cipher pass is there):
    every backup set but the newest full's chain is gone, the repository stays valid. Miyun's next pull
    is held; the pre-attack sets stay in miyun's newest snapshot; an operator's release lets pulls on."""
    sh(MIYUN, STOP_PULLS.format(job="pgbackrest"))
    pull_pgbr = lambda: try_sh(MIYUN, "systemctl start archive-dr-replica-pull@pgbackrest.service", timeout=900)  # noqa: E731
    pgbr_status = lambda: json.loads(sh(MIYUN, "cat %s" % PGBR_STATUS).stdout)  # noqa: E731
    try:
        # two full chains, so that expiring all but the newest full removes at least three sets
        for kind in ("full", "incr", "incr", "full"):
            sh(APPLIANCE, "systemctl start archive-dr-backup-archive-db-%s.service" % kind, timeout=900)
        before_sets = geo_backup_sets()
        assert_pulled(pull_pgbr, pgbr_status)
        before_snap = sorted(sh(MIYUN, "ls -1 /srv/dr/repos/pgbackrest/snapshots").stdout.split())[-1]

        mails_before = len(alert_mails("FIRING critical ArchiveDrReplicaQuarantined miyun-store pgbackrest"))
        attack_time = time.time()
        sh(APPLIANCE, GEO_PGBACKREST + "--repo1-retention-full=1 expire && " + GEO_PGBACKREST + "info")
        after_sets = geo_backup_sets()
        assert len(before_sets) - len(after_sets) >= 3, (before_sets, after_sets)

        alerted, st, findings = held_after_one_pull(pull_pgbr, pgbr_status)
        assert "CRITICAL mass-vanish" in findings, findings
        kept = json.loads(sh(MIYUN, "PGBACKREST_REPO1_CIPHER_PASS=$(cat /etc/archive-dr/replica/pgbackrest.pass) "
                                    "pgbackrest --config=/etc/pgbackrest/replica.conf --stanza=archive-db "
                                    "--repo1-path=/srv/dr/repos/pgbackrest/snapshots/%s --output=json info"
                                    % before_snap).stdout)
        assert sorted(b["label"] for b in kept[0]["backup"]) == before_sets, "a pre-attack backup set is gone at miyun"
        mail = wait_for("the quarantine alert mail", lambda: alert_mails(
            "FIRING critical ArchiveDrReplicaQuarantined miyun-store pgbackrest")[mails_before:], 180)
        print("\nexpire at geo: %d backup sets before, %d after; held after one pull (%.1f s); alert mail after "
              "%.1f s; miyun's snapshot %s keeps all %d" % (len(before_sets), len(after_sets), alerted,
                                                          time.time() - attack_time, before_snap, len(before_sets)))
        assert mail
        released = subprocess.run([sys.executable, "-m", "archive_dr", "release", "pgbackrest", "--by", "lab-test",
                                   "--reason", "expire at geo was the lab attack test; pre-attack sets verified"],
                                  cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)
        assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-2000:]
        assert_pulled(pull_pgbr, pgbr_status)
    finally:
        sh(MIYUN, "systemctl start archive-dr-replica-pull-pgbackrest.timer")


FLIP = ("python3 -c 'import os,sys; p=sys.argv[1]; st=os.stat(p); f=open(p,\"r+b\"); f.seek(st.st_size//2); "
        "b=f.read(1); f.seek(st.st_size//2); f.write(bytes([b[0]^1])); f.close(); "
        "os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))' %s")


def verify(job):
    start = time.time()
    r = try_sh(MIYUN, "%s verify %s --full" % (TOOL, job), timeout=1800)
    return r, json.loads(sh(MIYUN, "cat %s/%s.json" % (STATUS, job)).stdout)["verify"], time.time() - start


def sha256(path):
    return sh(MIYUN, "sha256sum %s" % path).stdout.split()[0]


# one object of each working copy: a restic pack, a pgBackRest backup file, an archive file
WORKING_COPY_OBJECT = {
    "restic": "find /srv/dr/repos/restic/current/%s/data -type f -size +1k | sort | head -1" % REPO,
    "pgbackrest": "find /srv/dr/repos/pgbackrest/current/backup -path '*pg_data*' -type f -size +8k | sort | tail -1",
    "files": "find /srv/dr/files/current -name '*.pdf' -type f | sort | head -1",
}


@pytest.mark.parametrize("job", sorted(WORKING_COPY_OBJECT))
def test_a_flipped_byte_in_a_working_copy_is_detected_and_repaired_from_geo(job):
    sh(MIYUN, "systemctl start archive-dr-replica-pull@%s.service" % job, timeout=900)   # a complete copy first
    target = sh(MIYUN, WORKING_COPY_OBJECT[job]).stdout.strip()
    assert target, "no object to damage in the %s working copy" % job
    good = sha256(target)
    sh(MIYUN, FLIP % target)
    assert sha256(target) != good
    r, v, took = verify(job)
    assert r.returncode == 0 and v["outcome"] == "repaired", (r.stdout, v)
    assert sha256(target) == good
    print("\n%s: one flipped byte in %s detected and repaired in one verification run, %.1f s" % (job, target, took))


def test_a_flipped_byte_in_a_snapshot_is_reported_with_its_name():
    snapshots_dir = "/srv/dr/files/snapshots"
    writable = None
    try:
        sh(MIYUN, STOP_PULLS.format(job="files"))      # no pull may take a newer snapshot meanwhile
        newest = sorted(sh(MIYUN, "ls -1 %s" % snapshots_dir).stdout.split())[-1]
        path = "%s/%s" % (snapshots_dir, newest)
        item = sh(MIYUN, "find %s -name '*.pdf' -type f | sort | head -1" % path).stdout.strip()
        writable = "btrfs property set -ts %s ro false && %s && btrfs property set -ts %s ro true" % (
            path, FLIP % item, path)
        sh(MIYUN, writable)
        r, v, took = verify("files")
        assert r.returncode == 1 and v["outcome"] == "damaged" and v["snapshot"] == newest, (r.stdout, v)
        assert v["snapshot_damaged"] == [item[len(path) + 1:]]
        assert 'archive_dr_replica_damaged_snapshots{job="files"} 1' in sh(
            MIYUN, "cat /var/lib/prometheus/node-exporter/archive_dr_replica.prom").stdout
        print("\nsnapshot %s: damaged file %s reported in %.1f s" % (newest, v["snapshot_damaged"][0], took))
    finally:
        if writable:
            sh(MIYUN, writable)          # the same flip again restores the byte
            r, v, _ = verify("files")
        sh(MIYUN, "systemctl start archive-dr-replica-pull-files.timer")
    assert r.returncode == 0 and v["outcome"] == "ok", (r.stdout, v)


# ---------------------------------------------------------------- the file-tree gate (ransomware at geo)
GEO = "geo-archive"
STORE = "/srv/archive"
FILE_SNAPS = "/srv/dr/files/snapshots"
STASH = "/var/tmp/archive-dr-file-gate-test"      # on geo-archive: the victims' originals, to put back


def file_status():
    return json.loads(sh(MIYUN, "cat %s/files.json" % STATUS).stdout or "{}")


def file_snapshots():
    return sorted(sh(MIYUN, "ls -1 %s" % FILE_SNAPS).stdout.split())


def pull_files():
    return try_sh(MIYUN, "systemctl start archive-dr-replica-pull@files.service", timeout=900)


def fixity():
    """{file_path: sha256} of the archive's items at miyun's standby (what verification compares with)."""
    out = sh(MIYUN, "cd /tmp && runuser -u postgres -- psql -XAt -F '|' -d archive -c "
                    "'SELECT file_path, sha256 FROM archive_item'").stdout
    return {p.lstrip("/"): h for p, h in (line.split("|", 1) for line in out.splitlines() if "|" in line)}


def sha256s(root, rels):
    out = sh(MIYUN, "cd %s && sha256sum -- %s" % (root, " ".join(shlex.quote(r) for r in rels))).stdout
    return {line[66:]: line[:64] for line in out.splitlines()}


def release_files(reason):
    return subprocess.run([sys.executable, "-m", "archive_dr", "release", "files", "--by", "lab-test", "--reason", reason],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900)


def test_encrypted_files_at_geo_are_held_in_quarantine():
    """Ransomware at geo encrypts 5 % of the archive's PDFs in place (openssl enc, as the drill does). The
    next file pull raises a critical finding and takes no snapshot; every pre-attack file in miyun's newest
    snapshot still matches its fixity record; once geo is repaired, an operator's release lets the pulls
    make history again."""
    sh(MIYUN, STOP_PULLS.format(job="files"))
    restored = True
    try:
        st = file_status()
        assert "quarantine" not in st, "the file replica is held already: %s" % st.get("quarantine")
        assert_pulled(pull_files, file_status)
        before = file_snapshots()
        pdfs = [p[2:] for p in sorted(sh(GEO, "cd %s && find . -type f -name '*.pdf'" % STORE).stdout.split())]
        k = max(3, math.ceil(0.05 * len(pdfs)))
        victims = pdfs[::max(1, len(pdfs) // k)][:k]
        records = fixity()
        assert set(victims) <= set(records), "victims without a fixity record: %s" % (set(victims) - set(records))
        assert sha256s("%s/%s" % (FILE_SNAPS, before[-1]), victims) == {v: records[v] for v in victims}, \
            "the newest snapshot does not hold geo's files yet"

        # the attack: each file encrypted in place with a key that is thrown away; the originals kept aside
        restored = False
        sh(GEO, "set -euo pipefail; rm -rf {s}; mkdir -p {s}; cd {r}; for f in {v}; do "
                "cp -a --parents \"$f\" {s}/; openssl enc -aes-256-cbc -pbkdf2 -pass pass:\"$(openssl rand -hex 32)\" "
                "-in \"$f\" -out \"$f.enc\"; cat \"$f.enc\" > \"$f\"; rm \"$f.enc\"; done".format(
                    s=STASH, r=STORE, v=" ".join(shlex.quote(v) for v in victims)))
        alerted, st, findings = held_after_one_pull(pull_files, file_status)
        assert "CRITICAL mass-change" in findings or "CRITICAL suspicious-content" in findings, findings
        assert file_snapshots() == before, "the encrypted tree became history"
        held = sha256s("%s/%s" % (FILE_SNAPS, before[-1]), victims)
        assert held == {v: records[v] for v in victims}, "a pre-attack file in miyun's snapshot is not intact"
        assert sha256s("/srv/dr/files/current", victims) != held, "the working copy did not follow geo"
        assert 'archive_dr_replica_quarantined{job="files"} 1' in sh(
            MIYUN, "cat /var/lib/prometheus/node-exporter/archive_dr_replica.prom").stdout
        deadman = try_sh(MIYUN, "%s deadman" % TOOL)
        assert deadman.returncode == 1 and "QUARANTINE files" in deadman.stdout, deadman.stdout
        print("\nfile gate: %d of %d PDFs encrypted at geo; critical alert after one pull, %.1f s: %s"
              % (len(victims), len(pdfs), alerted, findings[:300]))

        # geo repaired (the originals back, their own mtimes): the copy looks clean and is still held
        sh(GEO, "cp -a %s/. %s/ && rm -rf %s" % (STASH, STORE, STASH))
        restored = True
        assert pull_files().returncode != 0 and file_status()["outcome"] == "quarantine"
        st = file_status()
        assert not [f for f in st["quarantine"]["last_findings"] if f.startswith("CRITICAL")], st["quarantine"]
        assert file_snapshots() == before

        released = release_files("encryption at geo was the lab attack test; geo's files put back and checked")
        assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-2000:]
        st = file_status()
        assert "quarantine" not in st and st["outcome"] == "success", st
        after = file_snapshots()
        assert after[-1] not in before and set(before) <= set(after)
        assert sha256s("%s/%s" % (FILE_SNAPS, after[-1]), victims) == {v: records[v] for v in victims}
        log = [json.loads(line) for line in sh(MIYUN, "cat %s/files.releases.jsonl" % STATUS).stdout.splitlines()]
        assert log[-1]["by"] == "lab-test" and log[-1]["snapshot"] == after[-1]
        assert_pulled(pull_files, file_status)
    finally:
        if not restored:
            sh(GEO, "test -d %s && cp -a %s/. %s/ && rm -rf %s" % (STASH, STASH, STORE, STASH), check=False)
            pull_files()
        if file_status().get("quarantine"):          # never leave the lab's file history frozen
            try_sh(MIYUN, "%s release files --by lab-test --reason 'cleanup after a failed file-gate test'" % TOOL)
        sh(MIYUN, "systemctl start archive-dr-replica-pull-files.timer")
