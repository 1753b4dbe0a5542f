"""Host tests: the storage_layout module against real loop devices on this machine.

Needs root (losetup, mkfs, mount). Creates image files under /var/tmp/adr-storage-test/,
attaches them with `losetup -f --show`, and cleans up exactly what it made (unmount,
partx -d, losetup -d <its own device>, rm). Touches no other loop device and not
/etc/fstab (the module's fstab_path points at a scratch file).

Run: sudo .venv/bin/pytest -m host tests/host/test_storage_layout.py
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from archive_dr.paths import ROOT as _ROOT  # noqa: E402
ROOT = str(_ROOT)
ANSIBLE = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
BASE = "/var/tmp/adr-storage-test"

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices, mkfs and mount"),
]


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


class Host(object):
    def __init__(self, workdir):
        self.workdir = workdir
        self.loops = []          # (image file, /dev/loopN) made by this test
        self.fstab = os.path.join(workdir, "fstab")
        open(self.fstab, "w").close()

    def disk(self, name, size="1G"):
        img = os.path.join(self.workdir, name + ".img")
        sh("truncate", "-s", size, img)
        dev = sh("losetup", "-f", "--show", img).stdout.strip()
        self.loops.append((img, dev))
        return dev

    def detach(self, dev):
        if os.path.exists("/sys/class/block/%s" % os.path.basename(dev)):
            sh("partx", "-d", dev, check=False)
        sh("losetup", "-d", dev, check=False)

    def reattach(self, dev):
        img = next(i for i, d in self.loops if d == dev)
        self.detach(dev)
        new = sh("losetup", "-f", "--show", img).stdout.strip()
        self.loops = [(i, new if d == dev else d) for i, d in self.loops]
        return new

    def mp(self, name):
        return os.path.join(self.workdir, "mnt", name)

    def mounted(self):
        out = []
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if fields[1].startswith(self.workdir + "/"):
                    out.append(fields)
        return out

    def run(self, pools, check=False, safe_mode=True):
        """Run the module through ansible-playbook; returns the task result dict."""
        pb = os.path.join(self.workdir, "pb-%s.yml" % uuid.uuid4().hex[:8])
        play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
            "name": "storage", "storage_layout": {"pools": pools, "safe_mode": safe_mode,
                                                  "fstab_path": self.fstab,
                                                  "facts_file": os.path.join(self.workdir, "facts.json")},
            "ignore_errors": True}]}]
        with open(pb, "w") as f:
            json.dump(play, f)
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
        argv = [ANSIBLE, "-i", "localhost,", "-c", "local", pb]
        if check:
            argv += ["--check", "--diff"]
        p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        data = json.loads(p.stdout[p.stdout.index("{"):])
        return data["plays"][0]["tasks"][0]["hosts"]["localhost"]

    def cleanup(self):
        for fields in sorted(self.mounted(), key=lambda f: -len(f[1])):
            sh("umount", fields[1], check=False)
        for img, dev in self.loops:
            self.detach(dev)
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def host():
    os.makedirs(BASE, exist_ok=True)
    h = Host(tempfile.mkdtemp(prefix="t-", dir=BASE))
    try:
        yield h
    finally:
        h.cleanup()


def signatures(dev):
    return sh("wipefs", "-n", dev).stdout.strip()


def tree_checksums(path):
    sums = {}
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                sums[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return sums


def layout(h, d0, d1, d2):
    return [
        {"name": "backup", "disks": [d0], "volumes": [
            {"name": "backup", "fs_type": "xfs", "size": "600M", "fs_label": "backup",
             "mount_point": h.mp("backup"), "mount_options": "noatime", "mode": "0750"},
            {"name": "spool", "fs_type": "ext4", "size": "100%", "mount_point": h.mp("spool")}]},
        {"name": "dr", "disks": [d1, d2], "partition_table": "none", "raid_level": "raid1",
         "required_capacity": "900M",
         "volumes": [{"name": "dr", "fs_type": "btrfs", "fs_label": "dr", "mount_point": h.mp("dr")}]},
    ]


def test_blank_disks_check_apply_idempotent_reattach(host):
    d0, d1, d2 = host.disk("d0"), host.disk("d1"), host.disk("d2")
    pools = layout(host, d0, d1, d2)

    # check mode on blank disks: shows the plan, changes nothing
    r = host.run(pools, check=True)
    assert r.get("failed") is not True, r.get("msg")
    assert r["changed"] is True
    assert r["plan"][0] == "create GPT partition table on %s" % d0
    assert any(p.startswith("create btrfs filesystem (label dr) on %s + %s (raid1" % (d1, d2)) for p in r["plan"])
    assert "plan:" in r["diff"]["after"] and "blank" in r["diff"]["before"]
    for d in (d0, d1, d2):
        assert signatures(d) == "", "check mode wrote to %s" % d
    assert host.mounted() == [] and open(host.fstab).read() == ""

    # apply
    r = host.run(pools)
    assert r.get("failed") is not True, r.get("msg")
    assert r["changed"] is True
    mounts = {f[1]: f for f in host.mounted()}
    assert mounts[host.mp("backup")][2] == "xfs" and mounts[host.mp("backup")][0] == d0 + "p1"
    assert mounts[host.mp("spool")][2] == "ext4" and mounts[host.mp("spool")][0] == d0 + "p2"
    assert mounts[host.mp("dr")][2] == "btrfs"
    assert oct(os.stat(host.mp("backup")).st_mode & 0o7777) == "0o750"
    fstab = open(host.fstab).read().splitlines()
    assert len(fstab) == 3 and all(line.startswith("UUID=") for line in fstab)
    uuids = {v["name"]: v["uuid"] for v in r["volumes"]}
    assert sh("blkid", "-p", "-o", "value", "-s", "UUID", d0 + "p1").stdout.strip() == uuids["backup"]
    df = sh("btrfs", "filesystem", "df", host.mp("dr")).stdout
    assert "Data, RAID1" in df and "Metadata, RAID1" in df
    facts = json.load(open(os.path.join(host.workdir, "facts.json")))
    dr = next(v for v in facts["volumes"] if v["name"] == "dr")
    assert dr["mounted"] and dr["capacity_bytes"] > 0 and dr["free_bytes"] > 0

    # second run: nothing to do; check mode on the converged host: nothing either, empty diff
    r2 = host.run(pools)
    assert r2["changed"] is False and r2["plan"] == []
    r3 = host.run(pools, check=True)
    assert r3["changed"] is False and r3["diff"]["before"] == r3["diff"]["after"]

    # data, then "rebuild": unmount, forget partitions, detach and reattach the images
    with open(os.path.join(host.mp("backup"), "a.bin"), "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))
    with open(os.path.join(host.mp("dr"), "b.bin"), "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024))
    before = {n: tree_checksums(host.mp(n)) for n in ("backup", "dr")}
    for f in sorted(host.mounted(), key=lambda f: -len(f[1])):
        sh("umount", f[1])
    open(host.fstab, "w").close()       # a new server has an empty fstab
    d0, d1, d2 = host.reattach(d0), host.reattach(d1), host.reattach(d2)
    pools = layout(host, d0, d1, d2)
    r = host.run(pools)
    assert r.get("failed") is not True, r.get("msg")
    assert not any(p.startswith(("create GPT", "create partition", "create xfs", "create ext4", "create btrfs"))
                   for p in r["plan"]), r["plan"]
    assert {v["name"]: v["uuid"] for v in r["volumes"]} == uuids
    assert {n: tree_checksums(host.mp(n)) for n in ("backup", "dr")} == before
    assert host.run(pools)["changed"] is False


def test_safe_mode_refuses_disk_with_files_and_keeps_them(host):
    d0 = host.disk("old", size="400M")
    sh("mkfs.ext4", "-q", "-L", "olddata", d0)
    data = os.path.join(host.workdir, "old-mnt")
    os.makedirs(data)
    sh("mount", d0, data)
    for i in range(5):
        with open(os.path.join(data, "file%d.bin" % i), "wb") as f:
            f.write(os.urandom(256 * 1024))
    before = tree_checksums(data)
    sh("umount", data)
    sig_before = signatures(d0)

    for pools in (
        [{"name": "p", "disks": [d0], "volumes": [{"name": "v", "fs_type": "xfs", "size": "100%",
                                                   "mount_point": host.mp("v")}]}],
        [{"name": "p", "disks": [d0], "partition_table": "none",
          "volumes": [{"name": "v", "fs_type": "xfs", "mount_point": host.mp("v")}]}],
    ):
        r = host.run(pools)
        assert r["failed"] is True
        assert d0 in r["msg"] and "ext4 filesystem label=olddata" in r["msg"] and "safe mode" in r["msg"], r["msg"]
        assert r["changed"] is False
    assert signatures(d0) == sig_before
    sh("mount", "-o", "ro", d0, data)
    try:
        assert tree_checksums(data) == before and len(before) == 5
    finally:
        sh("umount", data)
    assert open(host.fstab).read() == ""


@pytest.mark.parametrize("case,expect", [
    ("unknown_fs", "unknown filesystem type 'zfs'"),
    ("missing_disk", "does not exist on this host"),
    ("raid1_one_disk", "raid1 needs at least two disks"),
    ("relative", "is a relative path"),
    ("same_mount_point", "two volumes on one mount point"),
    ("exceeds", "exceeds disk"),
    ("capacity", "required capacity 2.0 TiB"),
])
def test_bad_input_fails_and_changes_nothing(host, case, expect):
    d0, d1 = host.disk("b0", size="512M"), host.disk("b1", size="512M")
    vol = {"name": "v", "fs_type": "ext4", "size": "100M", "mount_point": host.mp("v")}
    pools = [{"name": "p", "disks": [d0], "volumes": [vol]},
             {"name": "q", "disks": [d1], "volumes": [dict(vol, name="w", mount_point=host.mp("w"))]}]
    if case == "unknown_fs":
        pools[1]["volumes"][0]["fs_type"] = "zfs"
    elif case == "missing_disk":
        pools[1]["disks"] = ["/dev/disk/by-id/adr-test-does-not-exist"]
    elif case == "raid1_one_disk":
        pools[1]["raid_level"] = "raid1"
    elif case == "relative":
        pools[1]["volumes"][0]["mount_point"] = "srv/w"
    elif case == "same_mount_point":
        pools[1]["volumes"][0]["mount_point"] = host.mp("v")
    elif case == "exceeds":
        pools[1]["volumes"][0]["size"] = "600M"
    elif case == "capacity":
        pools[1]["required_capacity"] = "2T"
    r = host.run(pools)
    assert r["failed"] is True and expect in r["msg"], r["msg"]
    assert signatures(d0) == "" and signatures(d1) == ""      # pool p (valid) was not touched either
    assert host.mounted() == [] and open(host.fstab).read() == ""
