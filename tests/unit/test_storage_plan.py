"""Unit tests for module_utils/storage_plan.py (no root, no disks: device descriptions only)."""

import copy
import itertools

import pytest

from storage_plan import (  # module_utils/ is on the test path (pyproject.toml)
    MIB, ValidationError, compute_plan, parse_size)

GIB = 1024 ** 3
D0 = "/dev/disk/by-id/lab-data0"
D1 = "/dev/disk/by-id/lab-data1"


def blank(kname, size=10 * GIB):
    return {"path": kname, "kname": kname, "size": size, "sector_size": 512, "pttype": None, "fstype": None,
            "uuid": None, "label": None, "signatures": [], "partitions": []}


def state(**devices):
    return {"devices": devices, "mounts": [], "fstab": [], "mount_roots": {}, "existing_dirs": []}


def uuids():
    counter = itertools.count(1)
    return lambda: "00000000-0000-4000-8000-%012d" % next(counter)


def ops(plan):
    return [a["op"] for a in plan.actions]


def converge(cur, plan):
    """Simulate what the module's apply does to the device description (for idempotence tests)."""
    cur = copy.deepcopy(cur)
    bykname = {}
    for path, dev in cur["devices"].items():
        bykname[dev["kname"]] = dev
    for a in plan.actions:
        op = a["op"]
        if op == "mklabel":
            dev = bykname[a["device"]]
            dev.update(pttype="gpt", partitions=[], fstype=None, uuid=None, label=None,
                       signatures=[{"type": "gpt", "offset": "0x200"}])
        elif op == "wipe":
            if a["argv"][-1] in bykname:
                bykname[a["argv"][-1]].update(pttype=None, partitions=[], fstype=None, uuid=None, label=None,
                                              signatures=[])
        elif op == "mkpart":
            argv = a["argv"]
            dev = bykname[a["device"]]
            start = int(argv[-2].rstrip("B"))
            end = int(argv[-1].rstrip("B"))
            dev["partitions"].append({"number": a["number"], "start": start, "size": end - start + 1,
                                      "name": argv[-3], "fstype": None, "uuid": None, "label": None,
                                      "kname": a["part"], "kernel_known": True})
        elif op == "mkfs":
            fs = a["argv"][0].split(".")[1]
            label = a["argv"][a["argv"].index("-L") + 1] if "-L" in a["argv"] else None
            targets = [x for x in a["argv"] if x.startswith("/dev/")]
            for t in targets:
                for dev in bykname.values():
                    if dev["kname"] == t:
                        dev.update(fstype=fs, uuid=a["uuid"], label=label)
                    for p in dev["partitions"]:
                        if p["kname"] == t:
                            p.update(fstype=fs, uuid=a["uuid"], label=label)
        elif op == "fstab_set":
            f = a["line"].split()
            cur["fstab"] = [e for e in cur["fstab"] if e["file"] != a["target"]]
            cur["fstab"].append({"spec": f[0], "file": f[1], "vfstype": f[2], "mntops": f[3], "freq": 0,
                                 "passno": int(f[5])})
        elif op == "fstab_remove":
            cur["fstab"] = [e for e in cur["fstab"] if e["file"] != a["target"]]
        elif op == "mkdir":
            cur["existing_dirs"].append(a["path"])
        elif op == "mount":
            cur["mounts"].append({"target": a["argv"][-1], "source": a["argv"][-2], "fstype": a["argv"][2],
                                  "options": "rw"})
            cur["mount_roots"][a["argv"][-1]] = {"uid": 0, "gid": 0, "mode": 0o755}
        elif op == "umount":
            cur["mounts"] = [m for m in cur["mounts"] if m["target"] != a["target"]]
        elif op == "chown":
            root = cur["mount_roots"][a["path"]]
            if a["uid"] is not None:
                root["uid"] = a["uid"]
            if a["gid"] is not None:
                root["gid"] = a["gid"]
        elif op == "chmod":
            cur["mount_roots"][a["path"]]["mode"] = a["mode"]
        elif op == "label":
            pass
    return cur


GPT_POOL = {
    "name": "backup", "disks": [D0],
    "volumes": [
        {"name": "backup", "fs_type": "xfs", "size": "6G", "fs_label": "backup", "mount_point": "/srv/backup",
         "mount_options": "noatime", "uid": 0, "gid": 34, "mode": "0750"},
        {"name": "spool", "fs_type": "ext4", "size": "100%", "mount_point": "/srv/spool"},
    ],
}
RAID_POOL = {
    "name": "dr", "disks": [D0, D1], "partition_table": "none", "raid_level": "raid1",
    "volumes": [{"name": "dr", "fs_type": "btrfs", "fs_label": "dr", "mount_point": "/srv/dr"}],
}


# ------------------------------------------------------------------ happy paths

def test_blank_gpt_pool_plans_full_layout_in_order():
    cur = state(**{D0: blank("/dev/loop5")})
    plan = compute_plan(cur, [GPT_POOL], uuid_factory=uuids())
    assert ops(plan) == ["mklabel", "mkpart", "mkfs", "fstab_set", "mkdir", "mount", "chown", "chmod",
                         "mkpart", "mkfs", "fstab_set", "mkdir", "mount"]
    mk1 = plan.actions[1]["argv"]
    assert mk1 == ["parted", "-s", "-a", "none", "/dev/loop5", "unit", "B", "mkpart", "backup",
                   "1048576B", "%dB" % (MIB + 6 * GIB - 1)]
    # second partition starts right after the first and ends at the last aligned byte before the backup GPT
    mk2 = plan.actions[8]["argv"]
    assert mk2[-2] == "%dB" % (MIB + 6 * GIB)
    assert int(mk2[-1].rstrip("B")) == 10 * GIB - MIB - 1
    assert plan.actions[2]["argv"] == ["mkfs.xfs", "-q", "-m", "uuid=00000000-0000-4000-8000-000000000001",
                                       "-L", "backup", "/dev/loop5p1"]
    assert plan.actions[3]["line"] == ("UUID=00000000-0000-4000-8000-000000000001 /srv/backup xfs noatime 0 0")
    assert plan.actions[5]["argv"] == ["mount", "-t", "xfs", "-o", "noatime", "/dev/loop5p1", "/srv/backup"]
    assert plan.actions[6] == {"op": "chown", "desc": "set owner 0 and group 34 of /srv/backup", "path": "/srv/backup",
                               "uid": 0, "gid": 34}
    assert plan.actions[7]["mode"] == 0o750
    assert plan.actions[10]["line"].endswith("/srv/spool ext4 defaults 0 2")


def test_btrfs_raid1_whole_disks():
    cur = state(**{D0: blank("/dev/loop5"), D1: blank("/dev/loop6")})
    plan = compute_plan(cur, [RAID_POOL], uuid_factory=uuids())
    mkfs = plan.actions[0]
    assert mkfs["argv"] == ["mkfs.btrfs", "-q", "-U", "00000000-0000-4000-8000-000000000001", "-L", "dr",
                            "-d", "raid1", "-m", "raid1", "/dev/loop5", "/dev/loop6"]
    # multi-device btrfs: the fstab entry names the member devices by their stable paths
    line = plan.actions[1]["line"]
    assert line == ("UUID=00000000-0000-4000-8000-000000000001 /srv/dr btrfs "
                    "device=%s,device=%s 0 0" % (D0, D1))
    assert plan.actions[3]["argv"] == ["mount", "-t", "btrfs", "-o", "device=%s,device=%s" % (D0, D1),
                                       "/dev/loop5", "/srv/dr"]


def test_btrfs_raid1_on_gpt_partitions_uses_same_number_on_both_disks():
    cur = state(**{D0: blank("/dev/sda"), D1: blank("/dev/nvme0n1")})
    pool = dict(RAID_POOL, partition_table="gpt",
                volumes=[dict(RAID_POOL["volumes"][0], size="100%")])
    plan = compute_plan(cur, [pool], uuid_factory=uuids())
    assert ops(plan)[:4] == ["mklabel", "mklabel", "mkpart", "mkpart"]
    mkfs = next(a for a in plan.actions if a["op"] == "mkfs")
    assert mkfs["argv"][-2:] == ["/dev/sda1", "/dev/nvme0n1p1"]


@pytest.mark.parametrize("pools", [[GPT_POOL], [RAID_POOL], [GPT_POOL, dict(RAID_POOL, disks=[D1, "/dev/sdz"])]])
def test_idempotence_empty_plan_on_converged_description(pools):
    cur = state(**{D0: blank("/dev/loop5"), D1: blank("/dev/loop6"), "/dev/sdz": blank("/dev/sdz")})
    cur["devices"] = {d: v for d, v in cur["devices"].items() if any(d in p["disks"] for p in pools)}
    plan = compute_plan(cur, pools, uuid_factory=uuids())
    assert plan.changed
    converged = converge(cur, plan)
    again = compute_plan(converged, pools, uuid_factory=uuids())
    assert again.actions == []
    assert not again.changed
    # with nothing to change the layout text is identical before and after: an empty diff
    assert again.before == again.after
    assert "(new)" not in again.after and again.after.count("fstab: UUID=") == sum(
        len(p["volumes"]) for p in pools)


def test_check_mode_diff_text_shows_current_and_planned_layout():
    cur = state(**{D0: blank("/dev/loop5")})
    plan = compute_plan(cur, [GPT_POOL], uuid_factory=uuids())
    assert plan.before == "disk %s (/dev/loop5, 10.0 GiB): blank\n" % D0
    after = plan.after.splitlines()
    assert after[0] == "disk %s (/dev/loop5, 10.0 GiB): gpt" % D0
    assert "  %s part1 /dev/loop5p1: xfs label=backup uuid=(new)" % D0 in after
    assert "  mounted: /dev/loop5p1 on /srv/backup (xfs)" in after
    assert "  root /srv/backup: uid=0 gid=34 mode=0750" in after
    text = plan.as_text()
    assert text.splitlines()[0] == " 1. create GPT partition table on %s" % D0


def test_omitted_options_keep_current_values():
    cur = state(**{D0: blank("/dev/loop5")})
    plan = compute_plan(cur, [GPT_POOL], uuid_factory=uuids())
    conv = converge(cur, plan)
    conv["mount_roots"]["/srv/backup"] = {"uid": 0, "gid": 34, "mode": 0o750}
    # an operator changed options and label by hand; the inventory omits them
    for e in conv["fstab"]:
        if e["file"] == "/srv/backup":
            e["mntops"] = "noatime,nodev"
    p1 = conv["devices"][D0]["partitions"][0]
    p1["label"] = "handmade"
    lean = {"name": "backup", "disks": [D0], "volumes": [{"name": "backup", "mount_point": "/srv/backup"},
                                                       {"name": "spool", "mount_point": "/srv/spool"}]}
    plan2 = compute_plan(conv, [lean], uuid_factory=uuids())
    assert plan2.actions == []       # no fs_type/label/options/mode -> keep what is there


def test_changed_label_and_options_are_applied_without_reformat():
    cur = state(**{D0: blank("/dev/loop5")})
    conv = converge(cur, compute_plan(cur, [GPT_POOL], uuid_factory=uuids()))
    conv["mount_roots"]["/srv/backup"] = {"uid": 0, "gid": 34, "mode": 0o750}
    pool = copy.deepcopy(GPT_POOL)
    pool["volumes"][0]["fs_label"] = "bk2"
    pool["volumes"][0]["mount_options"] = "noatime,nodev"
    plan = compute_plan(conv, [pool], uuid_factory=uuids())
    assert ops(plan) == ["label", "fstab_set", "remount"]
    assert plan.actions[0]["argv"] == ["xfs_io", "-c", "label -s bk2", "/srv/backup"]
    assert plan.actions[2]["argv"] == ["mount", "-o", "remount,noatime,nodev", "/srv/backup"]


def test_reattach_existing_filesystems_are_adopted_not_formatted():
    """A rebuilt server sees the old disks: same layout -> mount them, keep data."""
    cur = state(**{D0: blank("/dev/loop5"), D1: blank("/dev/loop6")})
    conv = converge(cur, compute_plan(cur, [RAID_POOL], uuid_factory=uuids()))
    fresh = state(**conv["devices"])          # new container: no mounts, empty fstab
    plan = compute_plan(fresh, [RAID_POOL], uuid_factory=uuids())
    assert ops(plan) == ["fstab_set", "mkdir", "mount"]
    assert "00000000-0000-4000-8000-000000000001" in plan.actions[0]["line"]


def test_partition_known_on_disk_but_not_to_kernel_is_registered():
    cur = state(**{D0: blank("/dev/loop5")})
    conv = converge(cur, compute_plan(cur, [GPT_POOL], uuid_factory=uuids()))
    for p in conv["devices"][D0]["partitions"]:
        p["kernel_known"] = False
    fresh = state(**conv["devices"])
    plan = compute_plan(fresh, [GPT_POOL], uuid_factory=uuids())
    assert ops(plan)[0] == "partnode"
    assert plan.actions[0]["part"] == "/dev/loop5p1"
    assert "mkfs" not in ops(plan) and "mkpart" not in ops(plan)


def test_capacity_guard_passes_when_disks_hold_it():
    cur = state(**{D0: blank("/dev/loop5"), D1: blank("/dev/loop6")})
    plan = compute_plan(cur, [dict(RAID_POOL, required_capacity="10G")], uuid_factory=uuids())
    assert plan.changed and ops(plan)[0] == "mkfs"          # no ValidationError: the pool is planned


# ------------------------------------------------------------------ validation errors

def err(cur, pools, **kw):
    with pytest.raises(ValidationError) as e:
        compute_plan(cur, pools, **kw)
    return str(e.value)


def test_unknown_fs_type():
    cur = state(**{D0: blank("/dev/loop5")})
    pool = copy.deepcopy(GPT_POOL)
    pool["volumes"][0]["fs_type"] = "zfs"
    msg = err(cur, [pool])
    assert msg == "pool 'backup' volume 'backup': unknown filesystem type 'zfs' (supported: xfs, ext4, btrfs)"


def test_partitions_exceed_disk():
    cur = state(**{D0: blank("/dev/loop5", size=4 * GIB)})
    msg = err(cur, [GPT_POOL])
    assert "pool 'backup' volume 'backup': partition" in msg and "exceeds disk %s (4.0 GiB" % D0 in msg


def test_partitions_overlap():
    cur = state(**{D0: blank("/dev/loop5")})
    pool = {"name": "p", "disks": [D0], "volumes": [
        {"name": "a", "fs_type": "ext4", "size": "2G", "start": "1M"},
        {"name": "b", "fs_type": "ext4", "size": "2G", "start": "1G"}]}
    msg = err(cur, [pool])
    assert msg.startswith("pool 'p': partitions overlap on %s: pool 'p' volume 'a' (1048576..2148532223) "
                          "and pool 'p' volume 'b' (1073741824.." % D0)


def test_new_partition_overlapping_existing_foreign_partition():
    dev = blank("/dev/loop5")
    dev.update(pttype="gpt", signatures=[{"type": "gpt", "offset": "0x200"}], partitions=[
        {"number": 1, "start": MIB, "size": GIB, "name": "other", "fstype": None, "uuid": None, "label": None,
         "kname": "/dev/loop5p1", "kernel_known": True}])
    pool = {"name": "p", "disks": [D0], "volumes": [{"name": "a", "fs_type": "ext4", "size": "1G", "start": "512M"}]}
    msg = err(state(**{D0: dev}), [pool])
    assert "partitions overlap" in msg and "existing partition 1" in msg


def test_two_volumes_on_one_mount_point():
    cur = state(**{D0: blank("/dev/loop5"), D1: blank("/dev/loop6")})
    other = {"name": "x", "disks": [D1], "partition_table": "none",
             "volumes": [{"name": "x", "fs_type": "ext4", "mount_point": "/srv/backup/"}]}
    msg = err(cur, [GPT_POOL, other])
    assert msg == ("two volumes on one mount point /srv/backup: pool 'backup' volume 'backup' "
                   "and pool 'x' volume 'x'")


def test_missing_disk():
    msg = err(state(), [GPT_POOL])
    assert msg == "pool 'backup': disk %s does not exist on this host" % D0


def test_raid1_with_one_disk():
    msg = err(state(**{D0: blank("/dev/loop5")}), [dict(RAID_POOL, disks=[D0])])
    assert msg == "pool 'dr': raid_level raid1 needs at least two disks, 1 declared (%s)" % D0


def test_relative_mount_path():
    pool = copy.deepcopy(GPT_POOL)
    pool["volumes"][1]["mount_point"] = "srv/spool"
    msg = err(state(**{D0: blank("/dev/loop5")}), [pool])
    assert msg == "pool 'backup' volume 'spool': mount_point 'srv/spool' is a relative path; it must be absolute"


def test_capacity_guard_fails_with_clear_message():
    cur = state(**{D0: blank("/dev/loop5"), D1: blank("/dev/loop6")})
    msg = err(cur, [dict(RAID_POOL, required_capacity="500G")])
    assert msg == ("pool 'dr': required capacity 500.0 GiB (536870912000 bytes) but disks %s=10.0 GiB, "
                   "%s=10.0 GiB give only 10.0 GiB usable with raid_level raid1" % (D0, D1))


def test_xfs_cannot_span_two_disks():
    cur = state(**{D0: blank("/dev/loop5"), D1: blank("/dev/loop6")})
    pool = dict(RAID_POOL, raid_level="single", volumes=[dict(RAID_POOL["volumes"][0], fs_type="xfs")])
    assert "xfs cannot span 2 disks" in err(cur, [pool])


def test_disk_in_two_pools_and_bad_sizes():
    cur = state(**{D0: blank("/dev/loop5")})
    assert err(cur, [GPT_POOL, dict(RAID_POOL, disks=[D0, D1])]).startswith(
        "disk %s is declared in pool 'backup' and in pool 'dr'" % D0)
    pool = copy.deepcopy(GPT_POOL)
    pool["volumes"][0]["size"] = "lots"
    assert "is not a size" in err(cur, [pool])
    pool["volumes"][0]["size"] = "100M"
    assert err(cur, [pool]) == "pool 'backup' volume 'backup': xfs needs at least 300.0 MiB, the volume has 100.0 MiB"


def test_validation_happens_before_any_action_for_all_pools():
    """An error in the second pool means no plan at all (nothing for the first pool either)."""
    cur = state(**{D0: blank("/dev/loop5")})
    with pytest.raises(ValidationError):
        compute_plan(cur, [GPT_POOL, dict(RAID_POOL, disks=[D1, "/dev/disk/by-id/nope"])])


# ------------------------------------------------------------------ safe mode

def holding_ext4(kname="/dev/loop5"):
    dev = blank(kname)
    dev.update(fstype="ext4", uuid="1111-2222", label="olddata",
               signatures=[{"type": "ext4", "offset": "0x438"}])
    return dev


def test_safe_mode_refuses_gpt_on_disk_with_filesystem():
    msg = err(state(**{D0: holding_ext4()}), [GPT_POOL])
    assert msg == ("pool 'backup': disk %s (/dev/loop5) holds a ext4 filesystem label=olddata UUID=1111-2222; "
                   "refusing to create a GPT on it in safe mode. Set force: true on the pool "
                   "(or storage_safe_mode: false) to destroy its contents." % D0)


def test_safe_mode_refuses_format_of_other_filesystem_whole_disk():
    pool = {"name": "p", "disks": [D0], "partition_table": "none",
            "volumes": [{"name": "v", "fs_type": "xfs", "mount_point": "/srv/v"}]}
    msg = err(state(**{D0: holding_ext4()}), [pool])
    assert msg == ("pool 'p' volume 'v': refusing to format in safe mode: %s (/dev/loop5) holds a ext4 "
                   "filesystem label=olddata UUID=1111-2222. Set force: true on the volume "
                   "(or storage_safe_mode: false) to destroy it." % D0)


def test_safe_mode_refuses_unknown_signature():
    dev = blank("/dev/loop5")
    dev["signatures"] = [{"type": "LVM2_member", "offset": "0x218"}]
    pool = {"name": "p", "disks": [D0], "partition_table": "none",
            "volumes": [{"name": "v", "fs_type": "xfs"}]}
    assert "LVM2_member at 0x218" in err(state(**{D0: dev}), [pool])


def test_matching_existing_filesystem_is_adopted_in_safe_mode():
    pool = {"name": "p", "disks": [D0], "partition_table": "none",
            "volumes": [{"name": "v", "mount_point": "/srv/v"}]}     # fs_type omitted: keep ext4
    plan = compute_plan(state(**{D0: holding_ext4()}), [pool])
    assert ops(plan) == ["fstab_set", "mkdir", "mount"]
    assert plan.actions[0]["line"] == "UUID=1111-2222 /srv/v ext4 defaults 0 2"


def test_force_allows_wipe_and_format():
    pool = {"name": "p", "disks": [D0], "force": True,
            "volumes": [{"name": "v", "fs_type": "xfs", "size": "100%"}]}
    plan = compute_plan(state(**{D0: holding_ext4()}), [pool], uuid_factory=uuids())
    assert ops(plan)[:3] == ["wipe", "mklabel", "mkpart"]
    assert plan.actions[0]["argv"] == ["wipefs", "-a", "/dev/loop5"]
    assert "[force]" in plan.actions[0]["desc"]
    # safe_mode off globally has the same effect
    assert ops(compute_plan(state(**{D0: holding_ext4()}), [dict(pool, force=False)], safe_mode=False))[0] == "wipe"


def test_volume_absent_refused_in_safe_mode_then_forced():
    cur = state(**{D0: blank("/dev/loop5")})
    conv = converge(cur, compute_plan(cur, [GPT_POOL], uuid_factory=uuids()))
    pool = copy.deepcopy(GPT_POOL)
    pool["volumes"][1]["state"] = "absent"
    msg = err(conv, [pool])
    assert msg.startswith("pool 'backup' volume 'spool': state absent would destroy %s (/dev/loop5p2) "
                          "holding a ext4 filesystem UUID=00000000-0000-4000-8000-000000000002" % D0)
    pool["volumes"][1]["force"] = True
    plan = compute_plan(conv, [pool], uuid_factory=uuids())
    assert ops(plan) == ["umount", "fstab_remove", "wipe", "rmpart"]
    assert plan.actions[3]["argv"] == ["parted", "-s", "/dev/loop5", "rm", "2"]


def test_pool_absent_unmounts_and_needs_force_to_wipe():
    cur = state(**{D0: blank("/dev/loop5"), D1: blank("/dev/loop6")})
    conv = converge(cur, compute_plan(cur, [RAID_POOL], uuid_factory=uuids()))
    gone = dict(RAID_POOL, state="absent")
    assert "state absent would wipe" in err(conv, [gone])
    plan = compute_plan(conv, [dict(gone, force=True)])
    assert ops(plan) == ["umount", "fstab_remove", "wipe", "wipe"]


def test_parse_size():
    assert parse_size("500G") == 500 * GIB
    assert parse_size("1.5T") == int(1.5 * 1024 ** 4)
    assert parse_size("2GB") == 2 * 10 ** 9
    assert parse_size(4096) == 4096
    assert parse_size("40%") == ("%", 40.0)
    with pytest.raises(ValidationError):
        parse_size("120%")
