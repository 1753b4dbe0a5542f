#!/usr/bin/python
# -*- coding: utf-8 -*-
"""archive-dr storage_layout module: read disks, plan, apply."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: storage_layout
short_description: Declarative, safe-by-default disks, GPT partitions, filesystems and mounts
description:
  - Reads the current state of the declared disks (partition table, partitions,
    filesystem signatures, mounts, C(/etc/fstab)), computes a plan with the pure
    planner C(module_utils/storage_plan.py) and only then applies it with
    C(parted), C(wipefs), C(mkfs.xfs), C(mkfs.ext4), C(mkfs.btrfs) and C(mount).
  - In check mode the plan is returned as C(diff) (before/after layout text) and
    in C(plan); nothing is changed.
  - Safe mode (default) never repartitions, formats or wipes a device that holds a
    partition table, filesystem or any other signature unless the pool or volume
    says C(force: true) (or O(safe_mode=false)).
  - Every validation (unknown filesystem, overlapping/oversized partitions, two
    volumes on one mount point, missing disk, raid1 with one disk, relative mount
    path, required capacity) happens before any change.
  - Filesystems are mounted by UUID in C(/etc/fstab). Partition device nodes are
    registered with the kernel (BLKPG via C(partx)) and created with mknod when no
    udev is running (containers, kernels without a partition-table parser).
  - mdadm and LVM are not supported; redundancy is hardware RAID or btrfs raid1.
version_added: "0.1.0"
author: archive-dr
options:
  pools:
    description: Pools to manage; see the storage role README for the full model.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Pool name (unique).
        type: str
        required: true
      disks:
        description: Stable device paths (V(/dev/disk/by-id/...), by-path); resolved with realpath.
        type: list
        elements: str
        required: true
      partition_table:
        description: V(gpt) (a partition per volume) or V(none) (one filesystem on the whole disk(s)).
        type: str
        choices: [gpt, none]
        default: gpt
      raid_level:
        description: V(raid1) for btrfs raid1 across the disks (at least two disks).
        type: str
        choices: [single, raid1]
        default: single
      fs_type:
        description: Default filesystem type of the pool's volumes.
        type: str
      state:
        description: V(absent) unmounts, removes fstab entries and (with force) wipes the disks.
        type: str
        choices: [present, absent]
        default: present
      force:
        description: Allow destroying what the pool's disks hold (DESTRUCTIVE).
        type: bool
        default: false
      required_capacity:
        description: Minimum usable capacity (bytes or V(500G)); the plan fails before any change when the disks cannot hold it.
        type: raw
      volumes:
        description: Volumes (filesystems) of the pool.
        type: list
        elements: dict
        default: []
        suboptions:
          name:
            description: Volume name; also the GPT partition name.
            type: str
            required: true
          fs_type:
            description: V(xfs), V(ext4) or V(btrfs); kept from the existing filesystem when omitted.
            type: str
          size:
            description: Partition size (V(50G), bytes, or V(40%)/V(100%)); required for a new GPT partition.
            type: raw
          start:
            description: Explicit partition start offset (1 MiB aligned); default is the first free byte.
            type: raw
          fs_label:
            description: Filesystem label; kept when omitted.
            type: str
          mount_point:
            description: Absolute mount point; no mount when omitted.
            type: str
          mount_options:
            description: fstab options; kept from the existing fstab entry when omitted, else V(defaults).
            type: str
          owner:
            description: Owner of the mount root (name or uid); unchanged when omitted.
            type: str
          group:
            description: Group of the mount root (name or gid); unchanged when omitted.
            type: str
          mode:
            description: Mode of the mount root (V('0750')); unchanged when omitted.
            type: raw
          state:
            description: V(absent) unmounts, removes the fstab entry and (with force) wipes/deletes the partition.
            type: str
            choices: [present, absent]
            default: present
          force:
            description: Allow formatting/removing a device that holds data (DESTRUCTIVE).
            type: bool
            default: false
  safe_mode:
    description: Refuse any destructive action unless the pool/volume says O(pools[].force=true).
    type: bool
    default: true
  fstab_extra_options:
    description:
      - Options appended to every fstab entry this module writes, e.g. V(nofail) or
        V(x-systemd.device-timeout=10s). Used by the role's mount mode choice.
    type: list
    elements: str
    default: []
  fstab_path:
    description: The fstab file to read and edit (tests point this at a scratch file).
    type: path
    default: /etc/fstab
  facts_file:
    description: When set, the storage facts are also written to this JSON file (for the inspection report).
    type: path
"""

EXAMPLES = r"""
- name: Mirror two disks with btrfs raid1 at /srv/dr
  storage_layout:
    pools:
      - name: dr
        disks: [/dev/disk/by-id/lab-data0, /dev/disk/by-id/lab-data1]
        partition_table: none
        raid_level: raid1
        volumes:
          - name: dr
            fs_type: btrfs
            fs_label: dr
            mount_point: /srv/dr
            mount_options: noatime
            mode: "0750"
"""

RETURN = r"""
plan:
  description: Ordered list of planned actions (descriptions).
  returned: always
  type: list
  elements: str
actions:
  description: The planned actions with their commands.
  returned: always
  type: list
  elements: dict
volumes:
  description: Resolved volumes with uuid, devices, mount point and capacity/used/free when mounted.
  returned: always
  type: list
  elements: dict
ansible_facts:
  description: C(storage_facts) with the volumes and disks (for the inspection report).
  returned: always
  type: dict
"""

import json
import os
import stat
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.storage_plan import (
    ValidationError, compute_plan, part_kname)


# ---------------------------------------------------------------- reading

def _run(module, argv, check_rc=False):
    rc, out, err = module.run_command(argv, check_rc=check_rc)
    return rc, out, err


def _export(text):
    out = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _probe(module, kname, offset=None, size=None):
    argv = ["blkid", "-p", "-o", "export"]
    if offset is not None:
        argv += ["--offset", str(offset), "--size", str(size)]
    rc, out, _err = _run(module, argv + [kname])
    if rc not in (0, 2):
        # rc 2: nothing found. Other codes (ambivalent probe = several signatures) are reported as signatures.
        return {"AMBIVALENT": "yes"}
    return _export(out) if rc == 0 else {}


def _sysfs_name(kname):
    return os.path.basename(kname)


def kernel_name(path):
    """Kernel block device name for a device path (symlink, or a node with another name as in containers)."""
    st = os.stat(path)
    if not stat.S_ISBLK(st.st_mode):
        return None
    majmin = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    link = "/sys/dev/block/" + majmin
    if os.path.exists(link):
        return os.path.basename(os.path.realpath(link))
    # containers mask /sys/dev/block: search /sys/class/block/*/dev
    for name in sorted(os.listdir("/sys/class/block")):
        try:
            with open("/sys/class/block/%s/dev" % name) as f:
                if f.read().strip() == majmin:
                    return name
        except (IOError, OSError):
            continue
    return os.path.basename(os.path.realpath(path))


def kernel_path(path, create=True):
    """/dev/<kernel name> for a device path; the node is created when missing (containers, no udev)."""
    name = kernel_name(path)
    if name is None:
        return None
    kpath = "/dev/" + name
    st = os.stat(path)
    if not os.path.exists(kpath):
        if not create:
            return path
        os.mknod(kpath, 0o660 | stat.S_IFBLK, st.st_rdev)
    return kpath


def read_device(module, path):
    if not os.path.exists(path):
        return None
    if kernel_name(path) is None:
        module.fail_json(msg="%s is not a block device" % path)
    kname = kernel_path(path, create=not module.check_mode)
    name = kernel_name(path)
    sysdir = "/sys/class/block/%s" % name
    try:
        with open(sysdir + "/size") as f:
            size = int(f.read()) * 512
        with open(sysdir + "/queue/logical_block_size") as f:
            sector = int(f.read())
    except (IOError, OSError):
        rc, out, err = _run(module, ["blockdev", "--getsize64", kname], check_rc=True)
        size = int(out.strip())
        sector = 512
    dev = {"path": path, "kname": kname, "size": size, "sector_size": sector,
           "pttype": None, "fstype": None, "uuid": None, "label": None, "signatures": [], "partitions": []}
    info = _probe(module, kname)
    dev["pttype"] = info.get("PTTYPE") or None
    dev["fstype"] = info.get("TYPE") or None
    dev["uuid"] = info.get("UUID") or None
    dev["label"] = info.get("LABEL") or None
    rc, out, _err = _run(module, ["wipefs", "-n", "-J", kname])
    if rc == 0 and out.strip():
        try:
            dev["signatures"] = [{"type": s.get("type"), "offset": s.get("offset")}
                                 for s in json.loads(out).get("signatures", [])]
        except ValueError:
            pass
    if dev["pttype"] or info.get("AMBIVALENT"):
        rc, out, _err = _run(module, ["parted", "-m", "-s", kname, "unit", "B", "print"])
        if rc == 0:
            for line in out.splitlines()[2:]:
                fields = line.rstrip(";").split(":")
                if len(fields) < 6 or not fields[0].isdigit():
                    continue
                num = int(fields[0])
                start = int(fields[1].rstrip("B"))
                psize = int(fields[3].rstrip("B"))
                pk = part_kname(kname, num)
                pinfo = _probe(module, kname, offset=start, size=psize)
                dev["partitions"].append({
                    "number": num, "start": start, "size": psize, "name": fields[5] or None,
                    "fstype": pinfo.get("TYPE") or None, "uuid": pinfo.get("UUID") or None,
                    "label": pinfo.get("LABEL") or None, "kname": pk,
                    "kernel_known": os.path.exists("%s/%s" % (sysdir, os.path.basename(pk))) and os.path.exists(pk),
                })
    return dev


def read_mounts():
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.split(" - ", 1)
            lf = left.split()
            rf = right.split()
            target = lf[4].replace("\\040", " ")
            source = rf[1]
            if source.startswith("/dev/") and os.path.exists(source):
                name = kernel_name(source)
                source = "/dev/" + name if name else os.path.realpath(source)
            mounts.append({"target": target, "source": source, "fstype": rf[0], "options": lf[5]})
    return mounts


def read_fstab(path="/etc/fstab"):
    entries = []
    if not os.path.exists(path):
        return entries
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            fields = s.split()
            if len(fields) < 4:
                continue
            entries.append({"spec": fields[0], "file": fields[1], "vfstype": fields[2], "mntops": fields[3],
                            "freq": int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else 0,
                            "passno": int(fields[5]) if len(fields) > 5 and fields[5].isdigit() else 0})
    return entries


def read_current(module, pools, fstab_path="/etc/fstab"):
    devices = {}
    for pool in pools:
        for d in pool.get("disks") or []:
            devices[d] = read_device(module, d)
    current = {"devices": devices, "mounts": read_mounts(), "fstab": read_fstab(fstab_path), "mount_roots": {},
               "existing_dirs": []}
    for pool in pools:
        for v in pool.get("volumes") or []:
            mp = v.get("mount_point")
            if mp and os.path.isabs(mp) and os.path.isdir(mp):
                current["existing_dirs"].append(os.path.normpath(mp))
            if mp and os.path.isabs(mp) and os.path.ismount(mp):
                st = os.stat(mp)
                current["mount_roots"][os.path.normpath(mp)] = {"uid": st.st_uid, "gid": st.st_gid,
                                                                "mode": stat.S_IMODE(st.st_mode)}
    return current


# ---------------------------------------------------------------- applying

def ensure_partition_node(module, disk_kname, number, part):
    """Make sure the kernel knows partition `number` of `disk_kname` and that /dev has its node."""
    disk = _sysfs_name(disk_kname)
    pname = os.path.basename(part)
    sysdir = "/sys/class/block/%s/%s" % (disk, pname)
    if os.path.exists(sysdir):
        # a stale kernel entry (e.g. left from an earlier table) must match the on-disk table
        rc, out, _err = _run(module, ["partx", "-g", "-o", "START,SECTORS", "--nr", str(number), disk_kname])
        with open(sysdir + "/start") as f:
            kstart = f.read().strip()
        with open(sysdir + "/size") as f:
            ksize = f.read().strip()
        if rc == 0 and out.split() and out.split()[:2] != [kstart, ksize]:
            _run(module, ["partx", "-d", "--nr", str(number), disk_kname])
    if not os.path.exists(sysdir):
        # no partition-table parser in some kernels: tell the kernel via BLKPG
        _run(module, ["partx", "-a", "--nr", str(number), disk_kname])
    if not os.path.exists(sysdir):
        module.fail_json(msg="partition %d of %s is not known to the kernel after partx -a" % (number, disk_kname))
    with open(sysdir + "/dev") as f:
        major, minor = [int(x) for x in f.read().strip().split(":")]
    for _i in range(20):     # udev (when present) creates the node asynchronously
        if os.path.exists(part):
            break
        time.sleep(0.1)
    if os.path.exists(part):
        st = os.stat(part)
        if stat.S_ISBLK(st.st_mode) and os.major(st.st_rdev) == major and os.minor(st.st_rdev) == minor:
            return
        os.unlink(part)
    os.mknod(part, 0o660 | stat.S_IFBLK, os.makedev(major, minor))


def forget_partitions(module, disk_kname):
    disk = _sysfs_name(disk_kname)
    if any(n.startswith(disk) and n != disk for n in os.listdir("/sys/class/block/%s" % disk)):
        _run(module, ["partx", "-d", disk_kname])


def edit_fstab(add_line=None, remove_target=None, path="/etc/fstab"):
    lines = []
    if os.path.exists(path):
        with open(path) as f:
            lines = f.read().splitlines()
    out = []
    for line in lines:
        fields = line.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 2:
            target = os.path.normpath(fields[1])
            if remove_target and target == remove_target:
                continue
        out.append(line)
    if add_line:
        out.append(add_line)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".fstab.")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(out) + "\n")
    if os.path.exists(path):
        st = os.stat(path)
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
    else:
        os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def apply_plan(module, plan, fstab_path="/etc/fstab"):
    fstab_changed = False
    for action in plan.actions:
        op = action["op"]
        if action.get("part") and op in ("wipe", "rmpart", "partnode"):
            ensure_partition_node(module, action["device"], action["number"], action["part"])
        if op == "partnode":
            continue
        if op in ("fstab_set", "fstab_remove"):
            edit_fstab(add_line=action.get("line"), remove_target=action["target"], path=fstab_path)
            fstab_changed = True
            continue
        if op == "mkdir":
            if not os.path.isdir(action["path"]):
                os.makedirs(action["path"], 0o755)
            continue
        if op == "chown":
            os.chown(action["path"], -1 if action.get("uid") is None else action["uid"],
                     -1 if action.get("gid") is None else action["gid"])
            continue
        if op == "chmod":
            os.chmod(action["path"], action["mode"])
            continue
        rc, out, err = _run(module, action["argv"])
        if rc != 0:
            module.fail_json(msg="%s failed (rc=%d): %s" % (action["desc"], rc, (err or out).strip()),
                             failed_action=action, cmd=action["argv"],
                             completed=[a["desc"] for a in plan.actions[:plan.actions.index(action)]])
        if op == "wipe" and action.get("forget_partitions"):
            forget_partitions(module, action["forget_partitions"])
        if op == "mkpart":
            ensure_partition_node(module, action["device"], action["number"], action["part"])
        if op == "rmpart":
            _run(module, ["partx", "-d", "--nr", str(action["number"]), action["device"]])
            if os.path.exists(action["part"]):
                os.unlink(action["part"])
    if fstab_changed and fstab_path == "/etc/fstab" and os.path.isdir("/run/systemd/system"):
        _run(module, ["systemctl", "daemon-reload"])


# ---------------------------------------------------------------- facts

def collect_facts(plan):
    vols = []
    for v in plan.volumes:
        fact = dict(v)
        fact.pop("new_fs", None)
        mp = v.get("mount_point")
        fact["mounted"] = bool(mp and os.path.ismount(mp))
        if fact["mounted"]:
            s = os.statvfs(mp)
            fact["capacity_bytes"] = s.f_blocks * s.f_frsize
            fact["free_bytes"] = s.f_bavail * s.f_frsize
            fact["used_bytes"] = (s.f_blocks - s.f_bfree) * s.f_frsize
        vols.append(fact)
    return vols


def resolve_ids(module, pools):
    import grp
    import pwd
    out = []
    for pool in pools:
        p = dict(pool)
        vols = []
        for v in pool.get("volumes") or []:
            v = dict(v)
            for key, idkey, db in (("owner", "uid", pwd.getpwnam), ("group", "gid", grp.getgrnam)):
                val = v.get(key)
                if val in (None, ""):
                    continue
                if str(val).isdigit():
                    v[idkey] = int(val)
                else:
                    try:
                        entry = db(str(val))
                    except KeyError:
                        module.fail_json(msg="pool '%s' volume '%s': %s %r does not exist on this host"
                                         % (pool.get("name"), v.get("name"), key, val))
                    v[idkey] = entry[2]
            vols.append(v)
        p["volumes"] = vols
        out.append(p)
    return out


def main():
    volume_spec = dict(
        name=dict(type="str", required=True),
        fs_type=dict(type="str"),
        size=dict(type="raw"),
        start=dict(type="raw"),
        fs_label=dict(type="str"),
        mount_point=dict(type="str"),
        mount_options=dict(type="str"),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        force=dict(type="bool", default=False),
    )
    pool_spec = dict(
        name=dict(type="str", required=True),
        disks=dict(type="list", elements="str", required=True),
        partition_table=dict(type="str", choices=["gpt", "none"], default="gpt"),
        raid_level=dict(type="str", choices=["single", "raid1"], default="single"),
        fs_type=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        force=dict(type="bool", default=False),
        required_capacity=dict(type="raw"),
        volumes=dict(type="list", elements="dict", default=[], options=volume_spec),
    )
    module = AnsibleModule(
        argument_spec=dict(
            pools=dict(type="list", elements="dict", required=True, options=pool_spec),
            safe_mode=dict(type="bool", default=True),
            fstab_extra_options=dict(type="list", elements="str", default=[]),
            facts_file=dict(type="path"),
            fstab_path=dict(type="path", default="/etc/fstab"),
        ),
        supports_check_mode=True,
    )
    pools = resolve_ids(module, module.params["pools"])
    extra = [o for o in module.params["fstab_extra_options"] if o]
    if extra:
        for pool in pools:
            for v in pool["volumes"]:
                if v.get("mount_point") and v.get("mount_options") is not None:
                    have = [o for o in v["mount_options"].split(",") if o]
                    v["mount_options"] = ",".join(have + [o for o in extra if o not in have])
                elif v.get("mount_point"):
                    v["__extra"] = extra
    fstab_path = module.params["fstab_path"]
    current = read_current(module, pools, fstab_path)
    if extra:
        # options omitted: keep existing fstab options but make sure the extra ones are there
        for pool in pools:
            for v in pool["volumes"]:
                if v.pop("__extra", None):
                    mp = os.path.normpath(v["mount_point"]) if os.path.isabs(v["mount_point"]) else None
                    cur = next((e for e in current["fstab"] if os.path.normpath(e["file"]) == mp), None)
                    have = [o for o in (cur["mntops"] if cur else "defaults").split(",") if o]
                    v["mount_options"] = ",".join(have + [o for o in extra if o not in have])
    try:
        plan = compute_plan(current, pools, safe_mode=module.params["safe_mode"])
    except ValidationError as e:
        module.fail_json(msg=str(e), changed=False, validation_error=True)

    result = dict(
        changed=plan.changed,
        plan=[a["desc"] for a in plan.actions],
        actions=plan.actions,
        diff=dict(before=plan.before, after=plan.after + (("plan:\n" + plan.as_text() + "\n") if plan.changed else ""),
                  before_header="storage (current)", after_header="storage (planned)"),
    )
    if not module.check_mode and plan.changed:
        apply_plan(module, plan, fstab_path)
    vols = collect_facts(plan)
    disks = {d: ({k: dev[k] for k in ("kname", "size", "pttype", "fstype", "uuid", "label")} if dev else None)
             for d, dev in current["devices"].items()}
    facts = {"volumes": vols, "disks": disks, "checked_at": int(time.time())}
    result["volumes"] = vols
    result["ansible_facts"] = {"storage_facts": facts}
    ff = module.params.get("facts_file")
    if ff and not module.check_mode:
        os.makedirs(os.path.dirname(ff), exist_ok=True)
        stable = {"volumes": vols, "disks": disks}
        old = None
        if os.path.exists(ff):
            try:
                with open(ff) as f:
                    old = json.load(f)
                    old.pop("checked_at", None)
            except ValueError:
                old = None
        # the facts file is a report, not configuration: rewriting it does not count as a change
        if old != stable:
            with open(ff + ".tmp", "w") as f:
                json.dump(dict(stable, checked_at=facts["checked_at"]), f, indent=2, sort_keys=True)
            os.rename(ff + ".tmp", ff)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
