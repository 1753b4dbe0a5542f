# -*- coding: utf-8 -*-
"""Storage planner for archive-dr: pure Python, no Ansible import.

``compute_plan(current, pools, safe_mode=True)`` compares the current state of
the declared disks with the declared pools/volumes and returns a ``Plan``: an
ordered list of actions (each with an argv or a module-handled operation), the
before/after layout text used as the check-mode diff, and the resolved layout.
Every validation happens here, before the module changes anything; a problem is
raised as ``ValidationError`` with a message that names the pool, volume and
device.

Model
-----
A *pool* is a set of disks (stable paths) with a redundancy level:

* ``partition_table: gpt`` (default) - every disk gets a GPT; every volume is a
  GPT partition (the same partition number on every disk of the pool).
* ``partition_table: none`` - the pool has exactly one volume and its
  filesystem is made on the whole disk(s).
* ``raid_level: single`` (default) or ``raid1``. A pool with more than one disk
  is btrfs only (``-d raid1 -m raid1`` for raid1, ``-d single -m raid1`` for
  single). mdadm and LVM do not exist on the target kernel.

``current`` (as read by library/storage_layout.py)::

    {"devices": {"<path as declared>": None | {
         "path", "kname", "size", "sector_size", "pttype", "fstype", "uuid",
         "label", "signatures": [{"type", "offset"}],
         "partitions": [{"number", "start", "size", "name", "fstype", "uuid",
                         "label", "kname", "kernel_known"}]}},
     "mounts": [{"target", "source", "fstype", "options"}],
     "fstab": [{"spec", "file", "vfstype", "mntops", "freq", "passno"}],
     "mount_roots": {"<mount point>": {"uid", "gid", "mode"}},   # mounted ones
     "existing_dirs": ["<mount point>", ...]}                    # directories that exist

Sizes are bytes; ``mode`` is an int.
"""

from __future__ import annotations

import os
import re
import uuid as _uuid

FS_TYPES = ("xfs", "ext4", "btrfs")
RAID_LEVELS = ("single", "raid1")
PARTITION_TABLES = ("gpt", "none")
STATES = ("present", "absent")

MIB = 1024 * 1024
GPT_FIRST = MIB              # first partition starts at 1 MiB
GPT_TAIL_SECTORS = 34        # backup GPT header + entries
# minimum filesystem sizes accepted by the mkfs tools of Debian 12
FS_MIN_BYTES = {"xfs": 300 * MIB, "btrfs": 114 * MIB, "ext4": 2 * MIB}
FS_LABEL_MAX = {"xfs": 12, "ext4": 16, "btrfs": 255}
FS_PASSNO = {"xfs": 0, "btrfs": 0, "ext4": 2}
DEFAULT_MOUNT_OPTIONS = "defaults"

_UNITS = {
    "": 1, "B": 1,
    "K": 1024, "KIB": 1024, "KB": 1000,
    "M": 1024 ** 2, "MIB": 1024 ** 2, "MB": 1000 ** 2,
    "G": 1024 ** 3, "GIB": 1024 ** 3, "GB": 1000 ** 3,
    "T": 1024 ** 4, "TIB": 1024 ** 4, "TB": 1000 ** 4,
    "P": 1024 ** 5, "PIB": 1024 ** 5, "PB": 1000 ** 5,
}
_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


class ValidationError(Exception):
    """Bad input or a refused destructive change; nothing has been changed."""


def parse_size(value, what="size"):
    """'500G' -> bytes (K/M/G/T/P and KiB.. are powers of 1024; KB/MB/GB.. of 1000).

    Returns an int, or ('%', float) for a percentage of the disk."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError("%s: %r is not a size" % (what, value))
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValidationError("%s: %r is negative" % (what, value))
        return int(value)
    text = str(value).strip()
    if text.endswith("%"):
        try:
            pct = float(text[:-1])
        except ValueError:
            raise ValidationError("%s: %r is not a percentage" % (what, value))
        if not 0 < pct <= 100:
            raise ValidationError("%s: %r must be between 0%% and 100%%" % (what, value))
        return ("%", pct)
    m = _SIZE_RE.match(text)
    if not m or m.group(2).upper() not in _UNITS:
        raise ValidationError(
            "%s: %r is not a size (use bytes or a number with K/M/G/T/P, e.g. '500G', or 'N%%')"
            % (what, value))
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def human(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return str(n)


def part_kname(disk_kname, number):
    """/dev/loop5 -> /dev/loop5p1, /dev/sda -> /dev/sda1, /dev/nvme0n1 -> /dev/nvme0n1p1."""
    return "%s%s%d" % (disk_kname, "p" if disk_kname[-1:].isdigit() else "", number)


def describe_content(dev):
    """What a device holds, in words, for error messages."""
    what = []
    if dev.get("pttype"):
        parts = dev.get("partitions") or []
        what.append("a %s partition table with %d partition(s)" % (dev["pttype"], len(parts)))
        for p in parts:
            if p.get("fstype"):
                what.append("partition %d: %s filesystem%s%s" % (
                    p["number"], p["fstype"],
                    " label=%s" % p["label"] if p.get("label") else "",
                    " UUID=%s" % p["uuid"] if p.get("uuid") else ""))
    if dev.get("fstype"):
        what.append("a %s filesystem%s%s" % (
            dev["fstype"],
            " label=%s" % dev["label"] if dev.get("label") else "",
            " UUID=%s" % dev["uuid"] if dev.get("uuid") else ""))
    if not what and dev.get("signatures"):
        what.append("signature(s) %s" % ", ".join(
            "%s at %s" % (s.get("type"), s.get("offset")) for s in dev["signatures"]))
    return "; ".join(what)


def _disk_summary(dev):
    if dev.get("pttype"):
        return dev["pttype"]
    if dev.get("fstype"):
        return "whole-disk filesystem"
    return describe_content(dev) or "blank"


def is_blank(dev):
    return not (dev.get("pttype") or dev.get("fstype") or dev.get("signatures")
                or dev.get("partitions"))


def _norm_opts(opts):
    if opts is None:
        return None
    if isinstance(opts, (list, tuple)):
        opts = ",".join(str(o) for o in opts)
    return ",".join(o.strip() for o in str(opts).split(",") if o.strip()) or DEFAULT_MOUNT_OPTIONS


def _mode_int(mode, what):
    if mode is None:
        return None
    if isinstance(mode, int):
        return mode
    text = str(mode).strip()
    if not re.match(r"^0?[0-7]{3,4}$", text):
        raise ValidationError("%s: mode %r is not an octal mode like '0750'" % (what, mode))
    return int(text, 8)


class Plan(object):
    def __init__(self):
        self.actions = []
        self.volumes = []       # resolved volumes (dicts)
        self.before_lines = []
        self.after_lines = []

    def add(self, op, desc, argv=None, **kw):
        action = {"op": op, "desc": desc}
        if argv is not None:
            action["argv"] = [str(a) for a in argv]
        action.update(kw)
        self.actions.append(action)
        return action

    @property
    def before(self):
        return "\n".join(self.before_lines) + ("\n" if self.before_lines else "")

    @property
    def after(self):
        return "\n".join(self.after_lines) + ("\n" if self.after_lines else "")

    @property
    def changed(self):
        return bool(self.actions)

    def as_text(self):
        return "\n".join("%2d. %s" % (i + 1, a["desc"]) for i, a in enumerate(self.actions))


# --------------------------------------------------------------------------
# normalisation / static validation (no knowledge of the current state)
# --------------------------------------------------------------------------

def _normalise(pools):
    if not isinstance(pools, list):
        raise ValidationError("pools must be a list")
    out = []
    names = set()
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict) or not pool.get("name"):
            raise ValidationError("pool #%d has no name" % (i + 1))
        pname = pool["name"]
        if pname in names:
            raise ValidationError("pool '%s' is declared twice" % pname)
        names.add(pname)
        p = dict(pool)
        p.setdefault("state", "present")
        p["partition_table"] = p.get("partition_table") or "gpt"
        p["raid_level"] = p.get("raid_level") or "single"
        p["force"] = bool(p.get("force", False))
        if p["state"] not in STATES:
            raise ValidationError("pool '%s': state %r is not one of %s" % (pname, p["state"], ", ".join(STATES)))
        if p["partition_table"] not in PARTITION_TABLES:
            raise ValidationError("pool '%s': partition_table %r is not one of %s"
                                  % (pname, p["partition_table"], ", ".join(PARTITION_TABLES)))
        if p["raid_level"] not in RAID_LEVELS:
            raise ValidationError("pool '%s': raid_level %r is not supported (one of %s; "
                                  "mdadm and LVM are not available)" % (pname, p["raid_level"], ", ".join(RAID_LEVELS)))
        disks = p.get("disks") or []
        if isinstance(disks, str):
            disks = [disks]
        if not disks:
            raise ValidationError("pool '%s': no disks declared" % pname)
        for d in disks:
            if not str(d).startswith("/dev/"):
                raise ValidationError("pool '%s': disk %r must be a device path under /dev "
                                      "(use a stable path such as /dev/disk/by-id/...)" % (pname, d))
        if len(set(disks)) != len(disks):
            raise ValidationError("pool '%s': a disk is listed twice in %s" % (pname, disks))
        p["disks"] = list(disks)
        if p["raid_level"] == "raid1" and len(disks) < 2:
            raise ValidationError("pool '%s': raid_level raid1 needs at least two disks, %d declared (%s)"
                                  % (pname, len(disks), ", ".join(disks)))
        p["required_capacity_bytes"] = None
        if p.get("required_capacity") not in (None, "", 0):
            req = parse_size(p["required_capacity"], "pool '%s' required_capacity" % pname)
            if isinstance(req, tuple):
                raise ValidationError("pool '%s': required_capacity must be an absolute size, not %r"
                                      % (pname, p["required_capacity"]))
            p["required_capacity_bytes"] = req
        vols = p.get("volumes") or []
        if not vols and p["state"] == "present":
            raise ValidationError("pool '%s': no volumes declared" % pname)
        if p["partition_table"] == "none" and len(vols) > 1:
            raise ValidationError("pool '%s': partition_table none holds exactly one volume (a filesystem "
                                  "on the whole disk), %d declared" % (pname, len(vols)))
        nvols = []
        vnames = set()
        for j, vol in enumerate(vols):
            if not isinstance(vol, dict) or not vol.get("name"):
                raise ValidationError("pool '%s': volume #%d has no name" % (pname, j + 1))
            v = dict(vol)
            vname = v["name"]
            if vname in vnames:
                raise ValidationError("pool '%s': volume '%s' is declared twice" % (pname, vname))
            vnames.add(vname)
            where = "pool '%s' volume '%s'" % (pname, vname)
            v["where"] = where
            v["state"] = v.get("state") or ("absent" if p["state"] == "absent" else "present")
            if v["state"] not in STATES:
                raise ValidationError("%s: state %r is not one of %s" % (where, v["state"], ", ".join(STATES)))
            if p["state"] == "absent":
                v["state"] = "absent"
            v["force"] = bool(v.get("force", False)) or p["force"]
            fs = v.get("fs_type") or p.get("fs_type")
            if fs is not None and fs not in FS_TYPES:
                raise ValidationError("%s: unknown filesystem type %r (supported: %s)"
                                      % (where, fs, ", ".join(FS_TYPES)))
            v["fs_type"] = fs
            if len(disks) > 1 and fs not in (None, "btrfs"):
                raise ValidationError("%s: %s cannot span %d disks (%s); use fs_type btrfs "
                                      "(raid_level single or raid1) or hardware RAID - mdadm/LVM are not available"
                                      % (where, fs, len(disks), ", ".join(disks)))
            mp = v.get("mount_point")
            if mp not in (None, ""):
                mp = str(mp)
                if not os.path.isabs(mp):
                    raise ValidationError("%s: mount_point %r is a relative path; it must be absolute"
                                          % (where, mp))
                mp = os.path.normpath(mp)
                if mp == "/":
                    raise ValidationError("%s: mount_point / is not allowed" % where)
            else:
                mp = None
            v["mount_point"] = mp
            v["mount_options"] = _norm_opts(v.get("mount_options"))
            v["mode"] = _mode_int(v.get("mode"), where)
            if v.get("fs_label") is not None:
                v["fs_label"] = str(v["fs_label"])
            if v.get("fs_label") and fs and len(v["fs_label"]) > FS_LABEL_MAX[fs]:
                raise ValidationError("%s: fs_label %r is longer than %d characters (the %s limit)"
                                      % (where, v["fs_label"], FS_LABEL_MAX[fs], fs))
            v["size_spec"] = parse_size(v.get("size"), where + " size")
            v["start_spec"] = parse_size(v.get("start"), where + " start")
            if isinstance(v["start_spec"], tuple):
                raise ValidationError("%s: start must be an absolute offset, not %r" % (where, v.get("start")))
            if p["partition_table"] == "none" and (v["size_spec"] not in (None, ("%", 100.0)) or v["start_spec"]):
                raise ValidationError("%s: size/start make no sense with partition_table none "
                                      "(the filesystem takes the whole disk)" % where)
            nvols.append(v)
        p["volumes"] = nvols
        out.append(p)
    # cross-pool checks
    seen_disks = {}
    seen_mp = {}
    for p in out:
        for d in p["disks"]:
            if d in seen_disks:
                raise ValidationError("disk %s is declared in pool '%s' and in pool '%s'"
                                      % (d, seen_disks[d], p["name"]))
            seen_disks[d] = p["name"]
        for v in p["volumes"]:
            if v["mount_point"] and v["state"] == "present":
                if v["mount_point"] in seen_mp:
                    raise ValidationError("two volumes on one mount point %s: %s and %s"
                                          % (v["mount_point"], seen_mp[v["mount_point"]], v["where"]))
                seen_mp[v["mount_point"]] = v["where"]
    return out


# --------------------------------------------------------------------------
# planning against the current state
# --------------------------------------------------------------------------

def _gpt_last_byte(dev):
    """Last usable byte for a partition end, aligned down to a MiB boundary (inclusive end)."""
    sector = dev.get("sector_size") or 512
    last_usable = dev["size"] - GPT_TAIL_SECTORS * sector      # exclusive
    return (last_usable // MIB) * MIB - 1


def _pool_usable(pool, devs):
    sizes = [devs[d]["size"] for d in pool["disks"]]
    if pool["raid_level"] == "raid1":
        # btrfs raid1 keeps two copies of each chunk on different devices
        return min(sum(sizes) // 2, sum(sizes) - max(sizes))
    return sum(sizes)


def _mounts_of(current, knames):
    return [m for m in current.get("mounts") or [] if m.get("source") in knames]


def _fstab_for(current, mount_point=None, uuid=None):
    hits = []
    for e in current.get("fstab") or []:
        if mount_point and os.path.normpath(e.get("file", "")) == mount_point:
            hits.append(e)
        elif uuid and e.get("spec") in ("UUID=%s" % uuid, "/dev/disk/by-uuid/%s" % uuid):
            hits.append(e)
    return hits


def _layout_partitions(pool, devs):
    """Assign partition numbers/start/size for every volume of a GPT pool.

    Returns {volume name: {"number", "start", "size", "exists"}} using the
    first disk as the reference (all disks of a pool get the same layout)."""
    ref = devs[pool["disks"][0]]
    existing = {p["number"]: p for p in (ref.get("partitions") or [])} if ref.get("pttype") == "gpt" else {}
    last = _gpt_last_byte(ref)
    result = {}
    # adopt existing partitions by name (partlabel) first
    taken = set()
    for v in pool["volumes"]:
        for num, part in sorted(existing.items()):
            if part.get("name") == v["name"] and num not in taken:
                result[v["name"]] = {"number": num, "start": part["start"], "size": part["size"], "exists": True}
                taken.add(num)
                break
    cursor = GPT_FIRST
    for part in existing.values():
        cursor = max(cursor, part["start"] + part["size"])
    cursor = ((cursor + MIB - 1) // MIB) * MIB
    next_num = max(list(existing) + [0]) + 1
    for v in pool["volumes"]:
        if v["name"] in result or v["state"] != "present":
            continue
        start = v["start_spec"] if v["start_spec"] is not None else cursor
        if start % MIB:
            raise ValidationError("%s: start %d is not aligned to 1 MiB" % (v["where"], start))
        if start < GPT_FIRST:
            raise ValidationError("%s: start %d is inside the GPT header area (first usable offset is 1 MiB)"
                                  % (v["where"], start))
        spec = v["size_spec"]
        if spec is None:
            raise ValidationError("%s: size is required for a new partition (e.g. '50G' or '100%%')" % v["where"])
        if isinstance(spec, tuple):
            size = int((last + 1 - GPT_FIRST) * spec[1] / 100.0)
            size = (size // MIB) * MIB
            if spec[1] >= 100.0 or start + size - 1 > last:
                size = last + 1 - start
        else:
            size = ((spec + MIB - 1) // MIB) * MIB
        if size <= 0:
            raise ValidationError("%s: no space left on %s for this partition (starts at %s, disk ends at %s)"
                                  % (v["where"], pool["disks"][0], human(start), human(last + 1)))
        if start + size - 1 > last:
            raise ValidationError("%s: partition %s..%s (%s) exceeds disk %s (%s, last usable byte %d)"
                                  % (v["where"], start, start + size - 1, human(size), pool["disks"][0],
                                     human(ref["size"]), last))
        result[v["name"]] = {"number": next_num, "start": start, "size": size, "exists": False}
        next_num += 1
        cursor = max(cursor, start + size)
    # overlap check over existing + new partitions
    spans = [(p["start"], p["start"] + p["size"] - 1, "existing partition %d" % n) for n, p in existing.items()
             if n not in taken]
    for v in pool["volumes"]:
        if v["name"] in result:
            r = result[v["name"]]
            spans.append((r["start"], r["start"] + r["size"] - 1, v["where"]))
    spans.sort()
    for a, b in zip(spans, spans[1:]):
        if b[0] <= a[1]:
            raise ValidationError("pool '%s': partitions overlap on %s: %s (%d..%d) and %s (%d..%d)"
                                  % (pool["name"], pool["disks"][0], a[2], a[0], a[1], b[2], b[0], b[1]))
    return result


def compute_plan(current, pools, safe_mode=True, uuid_factory=None):
    """Plan the changes that turn ``current`` into the declared ``pools``."""
    uuid_factory = uuid_factory or (lambda: str(_uuid.uuid4()))
    pools = _normalise(pools)
    devs = current.get("devices") or {}
    plan = Plan()
    removals = []   # actions for absent volumes/pools (done first)
    creates = []    # (op, desc, argv, kw)

    def destructive_ok(obj):
        return (not safe_mode) or obj.get("force")

    for pool in pools:
        pname = pool["name"]
        missing = [d for d in pool["disks"] if not devs.get(d)]
        if missing and pool["state"] == "present":
            raise ValidationError("pool '%s': disk %s does not exist on this host" % (pname, ", ".join(missing)))
        present_disks = [d for d in pool["disks"] if devs.get(d)]
        for d in present_disks:
            plan.before_lines.append("disk %s (%s, %s): %s" % (
                d, devs[d].get("kname", d), human(devs[d]["size"]), _disk_summary(devs[d])))
        if pool["state"] == "present" and pool["required_capacity_bytes"]:
            usable = _pool_usable(pool, devs)
            if usable < pool["required_capacity_bytes"]:
                raise ValidationError(
                    "pool '%s': required capacity %s (%d bytes) but disks %s give only %s usable with raid_level %s"
                    % (pname, human(pool["required_capacity_bytes"]), pool["required_capacity_bytes"],
                       ", ".join("%s=%s" % (d, human(devs[d]["size"])) for d in pool["disks"]),
                       human(usable), pool["raid_level"]))

        if pool["state"] == "absent":
            _plan_pool_absent(plan, removals, pool, devs, current, destructive_ok(pool) or all(
                v["force"] for v in pool["volumes"]) and bool(pool["volumes"]), safe_mode)
            continue

        # ---------------------------------------------------------- GPT pools
        gpt = pool["partition_table"] == "gpt"
        layout = {}
        if gpt:
            for d in pool["disks"]:
                dev = devs[d]
                if dev.get("pttype") == "gpt":
                    continue
                if not is_blank(dev) and not destructive_ok(pool):
                    raise ValidationError(
                        "pool '%s': disk %s (%s) holds %s; refusing to create a GPT on it in safe mode. "
                        "Set force: true on the pool (or storage_safe_mode: false) to destroy its contents."
                        % (pname, d, dev.get("kname", d), describe_content(dev)))
            ref_sizes = set(devs[d]["size"] for d in pool["disks"])
            layout = _layout_partitions(pool, devs)
            if len(pool["disks"]) > 1:
                # every disk must carry the same partition numbers for the volumes
                for d in pool["disks"][1:]:
                    other = {p["number"]: p for p in devs[d].get("partitions") or []} \
                        if devs[d].get("pttype") == "gpt" else {}
                    for vname, r in layout.items():
                        if r["exists"] and r["number"] not in other:
                            raise ValidationError("pool '%s': partition %d (%s) exists on %s but not on %s"
                                                  % (pname, r["number"], vname, pool["disks"][0], d))
                        last = _gpt_last_byte(devs[d])
                        if not r["exists"] and r["start"] + r["size"] - 1 > last:
                            raise ValidationError("pool '%s': partition for '%s' exceeds disk %s (%s)"
                                                  % (pname, vname, d, human(devs[d]["size"])))
            del ref_sizes
            for d in pool["disks"]:
                dev = devs[d]
                if dev.get("pttype") != "gpt":
                    if not is_blank(dev):
                        for m in _mounts_of(current, [dev["kname"]] + [part_kname(dev["kname"], p["number"])
                                                                        for p in dev.get("partitions") or []]):
                            creates.append(("umount", "unmount %s from %s before wiping [force]"
                                            % (m["source"], m["target"]), ["umount", m["target"]],
                                            {"target": m["target"]}))
                        creates.append(("wipe", "wipe all signatures on %s (holds %s) [force]"
                                        % (d, describe_content(dev)), ["wipefs", "-a", dev["kname"]],
                                        {"forget_partitions": dev["kname"]}))
                    creates.append(("mklabel", "create GPT partition table on %s" % d,
                                    ["parted", "-s", dev["kname"], "mklabel", "gpt"], {"device": dev["kname"]}))
                plan.after_lines.append("disk %s (%s, %s): gpt" % (d, dev.get("kname", d), human(dev["size"])))

        else:
            for d in pool["disks"]:
                plan.after_lines.append("disk %s (%s, %s): whole-disk filesystem" % (
                    d, devs[d].get("kname", d), human(devs[d]["size"])))

        # ----------------------------------------------------------- volumes
        for v in pool["volumes"]:
            where = v["where"]
            members = []   # [(declared disk, member kname, existing description or None)]
            for d in pool["disks"]:
                dev = devs[d]
                if gpt:
                    r = layout.get(v["name"])
                    if r is None:      # absent and not existing
                        continue
                    kname = part_kname(dev["kname"], r["number"])
                    part = None
                    if dev.get("pttype") == "gpt":
                        part = next((p for p in dev.get("partitions") or [] if p["number"] == r["number"]), None)
                    members.append((d, kname, part, r))
                else:
                    members.append((d, dev["kname"], dev if (dev.get("fstype") or not is_blank(dev)) else None, None))

            if v["state"] == "absent":
                _plan_volume_absent(plan, removals, v, pool, members, current, safe_mode, devs)
                continue

            existing = [m for m in members if m[2] is not None]
            fs_cur = None
            if existing:
                fstypes = set(m[2].get("fstype") for m in existing)
                uuids = set(m[2].get("uuid") for m in existing)
                cur = existing[0][2]
                consistent = (len(existing) == len(members) and len(fstypes) == 1 and len(uuids) == 1
                              and cur.get("fstype"))
                if consistent:
                    fs_cur = {"fstype": cur.get("fstype"), "uuid": cur.get("uuid"), "label": cur.get("label") or ""}
            want_fs = v["fs_type"] or (fs_cur and fs_cur["fstype"])
            if not want_fs:
                raise ValidationError("%s: fs_type is required for a new volume (one of %s)"
                                      % (where, ", ".join(FS_TYPES)))
            if want_fs not in FS_TYPES:
                raise ValidationError("%s: existing filesystem %s is not managed by this role (supported: %s)"
                                      % (where, want_fs, ", ".join(FS_TYPES)))
            if len(members) > 1 and want_fs != "btrfs":
                raise ValidationError("%s: %s cannot span %d disks" % (where, want_fs, len(members)))
            size = members[0][3]["size"] if gpt else devs[pool["disks"][0]]["size"]
            if size < FS_MIN_BYTES[want_fs]:
                raise ValidationError("%s: %s needs at least %s, the volume has %s"
                                      % (where, want_fs, human(FS_MIN_BYTES[want_fs]), human(size)))
            if v.get("fs_label") and len(v["fs_label"]) > FS_LABEL_MAX[want_fs]:
                raise ValidationError("%s: fs_label %r is longer than %d characters (the %s limit)"
                                      % (where, v["fs_label"], FS_LABEL_MAX[want_fs], want_fs))
            # explicit size on an existing partition must match (no resizing)
            if gpt and members[0][3]["exists"] and v["size_spec"] is not None and not isinstance(v["size_spec"], tuple):
                have = members[0][3]["size"]
                if abs(have - v["size_spec"]) > max(MIB, have // 100):
                    raise ValidationError("%s: partition %d on %s is %s but size %s is declared; "
                                          "resizing is not supported" % (where, members[0][3]["number"],
                                                                         pool["disks"][0], human(have), v.get("size")))

            new_fs = fs_cur is None or fs_cur["fstype"] != want_fs
            if gpt and not members[0][3]["exists"]:
                r = members[0][3]
                for d, kname, _part, _r in members:
                    dev = devs[d]
                    creates.append(("mkpart", "create partition %d '%s' on %s: bytes %d..%d (%s)"
                                    % (r["number"], v["name"], d, r["start"], r["start"] + r["size"] - 1, human(r["size"])),
                                    ["parted", "-s", "-a", "none", dev["kname"], "unit", "B", "mkpart", v["name"],
                                     "%dB" % r["start"], "%dB" % (r["start"] + r["size"] - 1)],
                                    {"device": dev["kname"], "number": r["number"], "part": kname}))
            if gpt:
                for d, kname, part, r in members:
                    if part is not None and not part.get("kernel_known", True) or (part is None and r["exists"]):
                        creates.append(("partnode", "register partition %d of %s with the kernel (%s)"
                                        % (r["number"], d, kname),
                                        None, {"device": devs[d]["kname"], "number": r["number"], "part": kname}))
            if new_fs:
                if existing and not destructive_ok(v):
                    holders = "; ".join("%s (%s) holds %s" % (
                        ("%s partition %d" % (d, r["number"])) if gpt else d, kname,
                        describe_content(part) if not gpt else (
                            "a %s filesystem%s" % (part.get("fstype"), " UUID=%s" % part["uuid"] if part.get("uuid") else "")
                            if part.get("fstype") else "unknown data/signatures"))
                        for d, kname, part, r in existing)
                    raise ValidationError(
                        "%s: refusing to format in safe mode: %s. Set force: true on the volume "
                        "(or storage_safe_mode: false) to destroy it." % (where, holders))
                for m in _mounts_of(current, [x[1] for x in members]):
                    creates.append(("umount", "unmount %s from %s before formatting [force]" % (m["source"], m["target"]),
                                    ["umount", m["target"]], {"target": m["target"]}))
                new_uuid = uuid_factory()
                label = v.get("fs_label")
                if label is None:
                    label = (fs_cur or {}).get("label") or ""
                argv = _mkfs_argv(want_fs, [m[1] for m in members], label, new_uuid, pool["raid_level"],
                                  force=bool(existing))
                creates.append(("mkfs", "create %s filesystem%s on %s%s" % (
                    want_fs, " (label %s)" % label if label else "",
                    " + ".join(m[1] for m in members),
                    " (%s across %d devices)" % (pool["raid_level"], len(members)) if len(members) > 1 else ""),
                    argv, {"uuid": new_uuid}))
                fs_uuid = new_uuid
                cur_label = label
            else:
                fs_uuid = fs_cur["uuid"]
                cur_label = fs_cur["label"]
                label = v.get("fs_label")
                if label is not None and label != cur_label:
                    mounted = [m for m in _mounts_of(current, [x[1] for x in members])]
                    creates.append(("label", "set %s label of %s from %r to %r" % (want_fs, members[0][1], cur_label, label),
                                    _label_argv(want_fs, members[0][1], label, mounted[0]["target"] if mounted else None),
                                    {}))
                    cur_label = label
            # old (= current) description lines
            for d, kname, part, r in members:
                if part is not None and (part.get("fstype") or not gpt):
                    plan.before_lines.append("  %s %s%s: %s label=%s uuid=%s" % (
                        d, "part%d " % r["number"] if gpt else "", kname, part.get("fstype") or "(signatures)",
                        part.get("label") or "", part.get("uuid") or ""))
                elif gpt and part is not None:
                    plan.before_lines.append("  %s part%d %s: no filesystem" % (d, r["number"], kname))
            for d, kname, part, r in members:
                plan.after_lines.append("  %s %s%s: %s label=%s uuid=%s" % (
                    d, "part%d " % r["number"] if gpt else "", kname, want_fs, cur_label or "",
                    fs_uuid if not new_fs else "(new)"))
            resolved = {
                "pool": pname, "name": v["name"], "fs_type": want_fs, "uuid": fs_uuid, "label": cur_label,
                "devices": [m[1] for m in members], "disks": list(pool["disks"]),
                "raid_level": pool["raid_level"], "size": size, "new_fs": new_fs,
                "mount_point": v["mount_point"],
            }
            plan.volumes.append(resolved)
            if v["mount_point"]:
                _plan_mount(plan, creates, v, resolved, members, current, new_fs)

    for op, desc, argv, kw in removals:
        plan.add(op, desc, argv, **kw)
    for op, desc, argv, kw in creates:
        plan.add(op, desc, argv, **kw)
    return plan


def _mkfs_argv(fs, devices, label, fs_uuid, raid_level, force=False):
    if fs == "xfs":
        argv = ["mkfs.xfs", "-q", "-m", "uuid=%s" % fs_uuid]
        if label:
            argv += ["-L", label]
        if force:
            argv.append("-f")
        return argv + devices
    if fs == "ext4":
        argv = ["mkfs.ext4", "-q", "-U", fs_uuid]
        if label:
            argv += ["-L", label]
        if force:
            argv.append("-F")
        return argv + devices
    argv = ["mkfs.btrfs", "-q", "-U", fs_uuid]
    if label:
        argv += ["-L", label]
    if len(devices) > 1:
        argv += ["-d", raid_level, "-m", "raid1"]
    if force:
        argv.append("-f")
    return argv + devices


def _label_argv(fs, device, label, mounted_at):
    if fs == "xfs":
        if mounted_at:
            return ["xfs_io", "-c", "label -s %s" % label, mounted_at]
        return ["xfs_admin", "-L", label or "--", device]
    if fs == "ext4":
        return ["e2label", device, label]
    return ["btrfs", "filesystem", "label", mounted_at or device, label]


def fstab_line(spec, target, fstype, options, passno):
    return "%s %s %s %s 0 %d" % (spec, target, fstype, options, passno)


def _plan_mount(plan, creates, v, vol, members, current, new_fs):
    mp = v["mount_point"]
    fs = vol["fs_type"]
    knames = [m[1] for m in members]
    fst = _fstab_for(current, mount_point=mp)
    if not new_fs:
        fst += [e for e in _fstab_for(current, uuid=vol["uuid"]) if e not in fst]
    cur_entry = next((e for e in fst if os.path.normpath(e["file"]) == mp), None)
    opts = v["mount_options"]
    if opts is None:
        opts = cur_entry["mntops"] if cur_entry else DEFAULT_MOUNT_OPTIONS
    if fs == "btrfs" and len(members) > 1:
        have = opts.split(",")
        for d in (m[0] if not m[3] else m[1] for m in members):
            if "device=%s" % d not in have:
                have.append("device=%s" % d)
        opts = ",".join(o for o in have if o != DEFAULT_MOUNT_OPTIONS) or DEFAULT_MOUNT_OPTIONS
    vol["mount_options"] = opts
    line = fstab_line("UUID=%s" % vol["uuid"], mp, fs, opts, FS_PASSNO[fs])
    for e in fst:
        plan.before_lines.append("  fstab: %s" % fstab_line(e["spec"], e["file"], e["vfstype"], e["mntops"],
                                                            int(e.get("passno") or 0)))
    plan.after_lines.append("  fstab: %s" % line)

    mounted = [] if new_fs else _mounts_of(current, knames)
    here = [m for m in mounted if os.path.normpath(m["target"]) == mp]
    elsewhere = [m for m in mounted if os.path.normpath(m["target"]) != mp]
    for m in mounted:
        plan.before_lines.append("  mounted: %s on %s (%s)" % (m["source"], m["target"], m.get("fstype")))
    plan.after_lines.append("  mounted: %s on %s (%s)" % (knames[0], mp, fs))
    other_on_mp = [m for m in current.get("mounts") or [] if os.path.normpath(m["target"]) == mp
                   and m.get("source") not in knames]
    if other_on_mp:
        raise ValidationError("%s: mount point %s is in use by %s; refusing to mount over it"
                              % (v["where"], mp, other_on_mp[0]["source"]))
    for m in elsewhere:
        creates.append(("umount", "unmount %s from old mount point %s" % (m["source"], m["target"]),
                        ["umount", m["target"]], {"target": m["target"]}))
    # fstab entries that point elsewhere for this fs, or to another fs at this mount point
    for e in fst:
        if e is cur_entry and e["spec"] == "UUID=%s" % vol["uuid"]:
            continue
        if e is cur_entry:
            continue
        creates.append(("fstab_remove", "remove stale fstab entry %s %s" % (e["spec"], e["file"]),
                        None, {"target": os.path.normpath(e["file"])}))
    want_entry = {"spec": "UUID=%s" % vol["uuid"], "file": mp, "vfstype": fs, "mntops": opts,
                  "passno": FS_PASSNO[fs]}
    if not cur_entry or (cur_entry["spec"], os.path.normpath(cur_entry["file"]), cur_entry["vfstype"],
                         cur_entry["mntops"], int(cur_entry.get("passno") or 0)) != (
            want_entry["spec"], mp, fs, opts, FS_PASSNO[fs]):
        creates.append(("fstab_set", "fstab: %s" % line, None, {"target": mp, "line": line}))
    mkdir_mode = None
    if not here:
        if mp not in (current.get("existing_dirs") or []):
            creates.append(("mkdir", "create mount point %s" % mp, None, {"path": mp}))
        mount_opts = [o for o in opts.split(",") if o not in ("noauto", "nofail") and not o.startswith("x-")]
        creates.append(("mount", "mount %s (%s) on %s" % (knames[0], fs, mp),
                        ["mount", "-t", fs, "-o", ",".join(mount_opts) or DEFAULT_MOUNT_OPTIONS, knames[0], mp],
                        {"target": mp}))
    elif cur_entry and cur_entry["mntops"] != opts:
        remount = [o for o in opts.split(",") if o not in ("defaults", "noauto", "nofail") and not o.startswith("x-")
                   and not o.startswith("device=")]
        if remount:
            creates.append(("remount", "remount %s with %s" % (mp, ",".join(remount)),
                            ["mount", "-o", "remount," + ",".join(remount), mp], {"target": mp}))
    root = (current.get("mount_roots") or {}).get(mp) if here else None
    owner, group = v.get("owner"), v.get("group")
    uid = v.get("uid") if v.get("uid") is not None else None
    gid = v.get("gid") if v.get("gid") is not None else None
    desc_owner = []
    if uid is not None and (root is None or root["uid"] != uid):
        desc_owner.append("owner %s" % (owner if owner is not None else uid))
    if gid is not None and (root is None or root["gid"] != gid):
        desc_owner.append("group %s" % (group if group is not None else gid))
    if desc_owner:
        creates.append(("chown", "set %s of %s" % (" and ".join(desc_owner), mp), None,
                        {"path": mp, "uid": uid, "gid": gid}))
    if v["mode"] is not None and (root is None or (root["mode"] & 0o7777) != v["mode"]):
        creates.append(("chmod", "set mode of %s to %04o" % (mp, v["mode"]), None, {"path": mp, "mode": v["mode"]}))
    del mkdir_mode
    if root:
        plan.before_lines.append("  root %s: uid=%d gid=%d mode=%04o" % (mp, root["uid"], root["gid"],
                                                                         root["mode"] & 0o7777))
    after_root = {
        "uid": uid if uid is not None else (root["uid"] if root else 0),
        "gid": gid if gid is not None else (root["gid"] if root else 0),
        "mode": v["mode"] if v["mode"] is not None else (root["mode"] & 0o7777 if root else 0o755),
    }
    if root or uid is not None or gid is not None or v["mode"] is not None:
        plan.after_lines.append("  root %s: uid=%d gid=%d mode=%04o" % (mp, after_root["uid"], after_root["gid"],
                                                                        after_root["mode"]))


def _plan_volume_absent(plan, removals, v, pool, members, current, safe_mode, devs):
    where = v["where"]
    gpt = pool["partition_table"] == "gpt"
    existing = [m for m in members if m[2] is not None]
    knames = [m[1] for m in members]
    for m in _mounts_of(current, knames):
        removals.append(("umount", "unmount %s from %s" % (m["source"], m["target"]), ["umount", m["target"]],
                         {"target": m["target"]}))
    uuids = set(m[2].get("uuid") for m in existing if m[2].get("uuid"))
    entries = []
    if v["mount_point"]:
        entries += _fstab_for(current, mount_point=v["mount_point"])
    for u in uuids:
        entries += [e for e in _fstab_for(current, uuid=u) if e not in entries]
    for e in entries:
        removals.append(("fstab_remove", "remove fstab entry %s %s" % (e["spec"], e["file"]), None,
                         {"target": os.path.normpath(e["file"])}))
    if not existing:
        return
    if safe_mode and not v["force"]:
        raise ValidationError("%s: state absent would destroy %s; refusing in safe mode. Set force: true "
                              "on the volume (or storage_safe_mode: false) to remove it."
                              % (where, "; ".join("%s (%s) holding %s" % (d, k, (
                                  "a %s filesystem UUID=%s" % (p.get("fstype"), p.get("uuid")) if p.get("fstype")
                                  else describe_content(p) or "data")) for d, k, p, _r in existing)))
    for d, kname, part, r in existing:
        plan.before_lines.append("  %s %s: %s uuid=%s" % (d, kname, part.get("fstype"), part.get("uuid")))
        removals.append(("wipe", "wipe filesystem signatures on %s [force]" % kname, ["wipefs", "-a", kname],
                         {"device": devs[d]["kname"], "number": r["number"], "part": kname} if gpt else {}))
        if gpt:
            dev_k = devs[d]["kname"]
            removals.append(("rmpart", "delete partition %d on %s [force]" % (r["number"], d),
                             ["parted", "-s", dev_k, "rm", str(r["number"])],
                             {"device": dev_k, "number": r["number"], "part": kname}))
        plan.after_lines.append("  %s %s: (removed)" % (d, kname))


def _plan_pool_absent(plan, removals, pool, devs, current, force_ok, safe_mode):
    knames = []
    for d in pool["disks"]:
        dev = devs.get(d)
        if not dev:
            continue
        knames.append(dev["kname"])
        knames += [p["kname"] for p in dev.get("partitions") or [] if p.get("kname")]
        knames += [part_kname(dev["kname"], p["number"]) for p in dev.get("partitions") or []]
    for m in _mounts_of(current, set(knames)):
        removals.append(("umount", "unmount %s from %s" % (m["source"], m["target"]), ["umount", m["target"]],
                         {"target": m["target"]}))
    uuids = set()
    for d in pool["disks"]:
        dev = devs.get(d)
        if not dev:
            continue
        if dev.get("uuid"):
            uuids.add(dev["uuid"])
        uuids.update(p["uuid"] for p in dev.get("partitions") or [] if p.get("uuid"))
    entries = []
    for v in pool["volumes"]:
        if v["mount_point"]:
            entries += _fstab_for(current, mount_point=v["mount_point"])
    for u in uuids:
        entries += [e for e in _fstab_for(current, uuid=u) if e not in entries]
    for e in entries:
        removals.append(("fstab_remove", "remove fstab entry %s %s" % (e["spec"], e["file"]), None,
                         {"target": os.path.normpath(e["file"])}))
    holding = [d for d in pool["disks"] if devs.get(d) and not is_blank(devs[d])]
    if not holding:
        return
    if safe_mode and not force_ok:
        raise ValidationError("pool '%s': state absent would wipe %s; refusing in safe mode. Set force: true on "
                              "the pool (or storage_safe_mode: false)."
                              % (pool["name"], "; ".join("%s (%s) holding %s" % (
                                  d, devs[d]["kname"], describe_content(devs[d])) for d in holding)))
    for d in holding:
        dev = devs[d]
        for p in dev.get("partitions") or []:
            if p.get("fstype"):
                removals.append(("wipe", "wipe filesystem signatures on %s [force]" % part_kname(dev["kname"], p["number"]),
                                 ["wipefs", "-a", part_kname(dev["kname"], p["number"])],
                                 {"device": dev["kname"], "number": p["number"],
                                  "part": part_kname(dev["kname"], p["number"])}))
        removals.append(("wipe", "wipe all signatures on %s (%s) [force]" % (d, describe_content(dev)),
                         ["wipefs", "-a", dev["kname"]], {"forget_partitions": dev["kname"]}))
        plan.after_lines.append("disk %s (%s): blank" % (d, dev["kname"]))
