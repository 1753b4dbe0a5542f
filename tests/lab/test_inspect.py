"""Monthly inspection against the running lab: healthy -> exit 0; each induced fault -> its finding, exit != 0.

The healthy inspection runs on the lab as it is: no backup job is run for it first (the
converged lab keeps itself healthy with its own timers; a job that has not run yet and is
not due is pending, not stale).

Faults are reversible and restored in ``finally``: a stopped backup timer; a
full disk (a 16 MiB loop-backed ext4 made on this machine, handed to
miyun-store, filled, then removed) plus a threshold trick on /srv/dr; a
near-expiry certificate (a 10-day certificate placed on geo-fw and watched
through ``dr_inspect_certificates``) plus a threshold trick on the tunnel's
own certificate. Reports go to a temporary directory.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from archive_dr.inventory import Inventory
from tests.lab.labkit import INVENTORY

THRESHOLDS = Inventory(INVENTORY, vault=False).group_vars("all", ["dr_inspect_thresholds"])["dr_inspect_thresholds"]
JOBS = ["archive-db-full", "archive-db-diff", "archive-db-incr", "archive-db-verify",
        "archive-files-snapshot", "archive-files-check"]


def inspect(ansible, reports, *extra, hosts=None):
    args = ["-e", "dr_reports_dir=%s" % reports]
    if hosts:
        args += ["-e", "dr_inspect_hosts=%s" % hosts]
    for e in extra:
        args += ["-e", json.dumps(e)]
    proc, _ = ansible.playbook("inspect.yml", *args, timeout=600)
    newest = max(Path(reports).glob("inspection-*.json"), key=lambda p: p.stat().st_mtime)
    return proc, json.loads(newest.read_text())


def crit(result, check):
    return [f for f in result["findings"] if f["severity"] == "critical" and f["check"] == check]


def sh(ansible, host, cmd, timeout=300):
    p = ansible.module(host, "ansible.builtin.shell", cmd, timeout=timeout)
    assert p.ok, p.stdout[-2000:]
    return p.task_result("ansible.builtin.shell", host)["stdout"]


REPLICA_PROM = "/var/lib/prometheus/node-exporter/archive_dr_replica.prom"


def test_healthy_lab_exits_zero(ansible, tmp_path):
    # Nothing is run for it. The replica's metrics timer (every 30 s) rewrites its status: wait for its
    # next write, so the status read is not one from before the WAN cut of the previous test file.
    sh(ansible, "miyun-store", "t0=$(date +%%s); for i in $(seq 90); do "
       "[ $(stat -c %%Y %s 2>/dev/null || echo 0) -gt $t0 ] && exit 0; sleep 1; done; exit 1" % REPLICA_PROM,
       timeout=180)
    proc, res = inspect(ansible, tmp_path)
    assert proc.ok, [f["message"] for f in res["findings"] if f["severity"] == "critical"]
    assert res["passed"] and res["counts"]["critical"] == 0
    assert {j["job"] for j in res["jobs"]} >= set(JOBS)
    assert len(res["tunnels"]) == 2 and all(t["up"] for t in res["tunnels"])
    assert len([c for c in res["certificates"] if c["label"] == "tunnel-local"]) == 2
    assert {c["mount_point"] for c in res["capacity"]} >= {"/srv/backup", "/srv/restore", "/srv/dr"}
    assert len(res["time_sync"]) == 5
    assert (tmp_path / ("inspection-%s.html" % res["id"])).exists()
    copied = sh(ansible, "miyun-store", "ls /srv/dr/reports")
    assert "inspection-%s.html" % res["id"] in copied


def test_stopped_backup_timer(ansible, tmp_path):
    timer = "archive-dr-backup-archive-db-incr.timer"
    try:
        sh(ansible, "geo-backup", "systemctl stop %s" % timer)
        proc, res = inspect(ansible, tmp_path, hosts="geo-backup")
        assert not proc.ok
        found = crit(res, "job-timer")
        assert [f["item"] for f in found] == ["archive-db-incr"] and "will not run" in found[0]["message"]
    finally:
        sh(ansible, "geo-backup", "systemctl start %s" % timer)
    proc, res = inspect(ansible, tmp_path, hosts="geo-backup")
    assert crit(res, "job-timer") == []


def test_full_disk(ansible, tmp_path):
    img = tmp_path / "full.img"
    subprocess.run(["truncate", "-s", "16M", str(img)], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(img)], check=True, capture_output=True,
                          text=True).stdout.strip()
    minor = os.minor(os.stat(loop).st_rdev)
    mnt = "/srv/inspect-full-test"
    try:
        subprocess.run(["mkfs.ext4", "-q", loop], check=True)
        sh(ansible, "miyun-store", "set -e; mknod /dev/inspect-full-test b 7 %d; mkdir -p %s; "
           "mount /dev/inspect-full-test %s; dd if=/dev/zero of=%s/fill bs=1M status=none || true; sync; df -P %s"
           % (minor, mnt, mnt, mnt, mnt))
        proc, res = inspect(ansible, tmp_path, hosts="miyun-store")
        assert not proc.ok
        full = [f for f in crit(res, "capacity") if f["item"] == mnt]
        assert len(full) == 1 and "full" in full[0]["message"]
        fs = next(c for c in res["capacity"] if c["mount_point"] == mnt)
        assert fs["used_pct"] >= THRESHOLDS["fs_used_pct_crit"]
    finally:
        sh(ansible, "miyun-store", "umount %s 2>/dev/null; rm -f /dev/inspect-full-test; rmdir %s 2>/dev/null; true"
           % (mnt, mnt))
        subprocess.run(["losetup", "-d", loop], check=False)
    # threshold trick on the real data pool: critical above what /srv/dr holds now
    dr_used = next(c for c in res["capacity"] if c["mount_point"] == "/srv/dr")["used_pct"]
    trick = dict(THRESHOLDS, fs_used_pct_warn=max(dr_used - 2, 0), fs_used_pct_crit=max(dr_used - 1, 0))
    proc, res = inspect(ansible, tmp_path, {"dr_inspect_thresholds": trick}, hosts="miyun-store")
    assert not proc.ok and [f["item"] for f in crit(res, "capacity")] == ["/srv/dr"]
    assert mnt not in {c["mount_point"] for c in res["capacity"]}           # removed again


def test_near_expiry_certificate(ansible, tmp_path):
    key, cert = tmp_path / "k.pem", tmp_path / "near-expiry.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "10", "-subj", "/CN=inspect-near-expiry"],
                   check=True, capture_output=True)
    remote = "/var/lib/archive-dr/inspect-test/near-expiry.pem"
    try:
        sh(ansible, "geo-fw", "mkdir -p %s" % os.path.dirname(remote))
        p = ansible.module("geo-fw", "ansible.builtin.copy", "src=%s dest=%s mode=0644" % (cert, remote), timeout=120)
        assert p.ok, p.stdout[-1000:]
        proc, res = inspect(ansible, tmp_path, {"dr_inspect_certificates": [remote]}, hosts="geo-fw")
        assert not proc.ok
        near = [f for f in crit(res, "certificate") if f["item"] == remote]
        assert len(near) == 1 and 9 <= near[0]["value"] <= 10.01
    finally:
        sh(ansible, "geo-fw", "rm -rf /var/lib/archive-dr/inspect-test")
    # threshold trick on the tunnel's own certificate: warn/crit further ahead than it expires
    local = next(c for c in res["certificates"] if c["label"] == "tunnel-local")
    trick = dict(THRESHOLDS, cert_days_crit=local["days_left"] + 1, cert_days_warn=local["days_left"] + 2)
    proc, res = inspect(ansible, tmp_path, {"dr_inspect_thresholds": trick}, hosts="geo-fw")
    assert not proc.ok
    assert local["path"] in {f["item"] for f in crit(res, "certificate")}
