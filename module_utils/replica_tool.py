#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Replica services at the DR site (stdlib only): pulls, snapshots, status, metrics, dead-man.

Installed on the DR storage host as ``/usr/local/lib/archive-dr/replica_tool.py``
and run by the replica role's systemd units::

    replica_tool.py pull JOB      pull one job (files | pgbackrest | restic) read-only
                                  over SSH into its working copy, verify it, and only
                                  when the whole pull succeeded take a read-only btrfs
                                  snapshot; apply the job's own retention
    replica_tool.py release JOB --by NAME --reason TEXT
                                  an operator accepts a quarantined pull: its copy
                                  becomes a snapshot and the new baseline (logged)
    replica_tool.py verify JOB [--full | --subset N/T]
                                  read the bytes: today's rotating share of the working
                                  copy and of the newest snapshot (restic check
                                  --read-data-subset, pgbackrest verify, SHA-256 of the
                                  file replica against the standby's fixity records);
                                  damage in the working copy is re-pulled from geo,
                                  damage in a snapshot is reported with its name
    replica_tool.py metrics       standby lag (bytes, seconds), file replica age, last
                                  pull per job, snapshot counts -> JSON + Prometheus
    replica_tool.py deadman       exit 1 when any job or the standby is stale
    replica_tool.py show          print the status JSON

Configuration: ``/etc/archive-dr/replica.json`` (written by the role). A pull that
fails or is cut (WAN down, rsync error, verification error) leaves the working copy
as it is and takes no snapshot; the next run continues from there (rsync only moves
what is missing) and snapshots once it completes.

Every pull passes a quarantine gate (docs/dr-history.md) before it becomes history. Repository
pulls (dr_history.gate): restore points that vanished, were rewritten, are dated in the future or
arrive in a flood. The file replica (dr_history.file_change_findings): the files changed since the
newest snapshot, compared with their copies in it: a mass rewrite or deletion, or changed files
that fail their format check (ransomware). A critical finding keeps the copy in quarantine (no
snapshot, no pruning, the unit fails, the metric and dead-man go red) until an operator releases
it; the working copy keeps following geo, history stops at the last good snapshot.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time

import dr_history  # installed next to this file
from backup_status import first_due, job_health, timers  # installed next to this file

DEFAULT_CONFIG = "/etc/archive-dr/replica.json"
STAMP_FMT = "%Y%m%dT%H%M%SZ"
SNAP_RE = re.compile(r"^(\d{8}T\d{6}Z)$")
# A job's retention (replica_files_retention / replica_repo_retention): calendar time, never counts of pulls.
# vanished_keep_days is not a calendar bucket: it limits how long a restore point gone from geo pins the
# snapshot that holds it (absent = forever), so it is not passed to dr_history.RetentionPolicy.
RETENTION_KEYS = ("keep_all_days",) + dr_history.PERIODS + ("vanished_keep_days",)
PERMANENT = "permanent"   # yearly: the newest snapshot of every calendar year, kept forever
# Jobs whose copies hold restore points (dr_history.RestorePoint): what each snapshot holds is recorded.
REPOSITORY_KINDS = ("pgbackrest", "restic")


# ---------------------------------------------------------------- pure helpers
def stamp(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime(STAMP_FMT)


def parse_stamp(name):
    m = SNAP_RE.match(name)
    if not m:
        return None
    return dt.datetime.strptime(m.group(1), STAMP_FMT).replace(tzinfo=dt.timezone.utc).timestamp()


def _whole(value):
    """The int of a whole number (an int or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def retention_policy(policy):
    """``dr_history.RetentionPolicy`` of a job's retention (pure); ValueError saying what is wrong.

    policy: ``{keep_all_days: D, hourly: H, daily: d, weekly: w, monthly: m, yearly: y}``.
    Every snapshot younger than D days (>= 1) is kept; the counts are calendar hours / days /
    ISO weeks / months / years back from now (Beijing time), each >= 0 (missing = 0), at least
    one > 0; ``yearly`` may be ``"permanent"``: the newest snapshot of every year, forever.

    ``vanished_keep_days: N`` (optional, whole number >= 1) applies to repository jobs only
    (:func:`snapshot_plan_with_points`): a restore point that vanished from geo keeps the newest
    snapshot holding it only while the point is younger than N days. Absent, such a point is kept
    forever: expiry at miyun is miyun's own decision, never geo's (accounting archives have
    statutory periods of 10 and 30 years, or permanent). It is checked here, not passed on.
    """
    keys = ", ".join(RETENTION_KEYS)
    if not isinstance(policy, dict):
        raise ValueError("retention: expected a mapping of %s, got %r" % (keys, policy))
    if "last" in policy:
        raise ValueError("retention: 'last' (a number of snapshots) is no longer supported: counted in pulls, "
                         "a flood of fresh pulls pushes old history out. Retention is by calendar time: "
                         "give %s (yearly may be %r)" % (keys, PERMANENT))
    unknown = sorted(str(k) for k in set(policy) - set(RETENTION_KEYS))
    if unknown:
        raise ValueError("retention: unknown key(s) %s; give %s" % (", ".join(unknown), keys))
    days = _whole(policy.get("keep_all_days"))
    if days is None or days < 1:
        raise ValueError("retention: keep_all_days must be a whole number of days >= 1 (every snapshot younger "
                         "is kept; a retention of 0 would let new pulls expire what was kept), got %r"
                         % (policy.get("keep_all_days"),))
    vanished_keep_days(policy)
    counts = {}
    for period in dr_history.PERIODS:
        value = policy.get(period, 0)
        if period == "yearly" and value == PERMANENT:
            counts[period] = None
            continue
        n = _whole(value)
        if n is None or n < 0:
            raise ValueError("retention: %s must be a whole number >= 0%s, got %r"
                             % (period, " or %r" % PERMANENT if period == "yearly" else "", value))
        counts[period] = n
    if not any(n is None or n > 0 for n in counts.values()):
        raise ValueError("retention: every period count is 0 (a retention of 0 keeps only the last %d day(s)); "
                         "give at least one of %s >= 1" % (days, ", ".join(dr_history.PERIODS)))
    return dr_history.RetentionPolicy(min_age_keep=dt.timedelta(days=days), **counts)


def vanished_keep_days(policy):
    """Days a restore point gone from geo still pins its snapshot (a job's retention mapping):
    None when the policy does not say (kept forever), else a whole number >= 1; ValueError otherwise.
    A ``dr_history.RetentionPolicy`` knows no such limit: None."""
    if not isinstance(policy, dict) or policy.get("vanished_keep_days") is None:
        return None
    days = _whole(policy["vanished_keep_days"])
    if days is None or days < 1:
        raise ValueError("retention: vanished_keep_days must be a whole number of days >= 1 (leave it out to keep "
                         "restore points that vanished from geo forever), got %r" % (policy["vanished_keep_days"],))
    return days


def _plan_clock(now):
    """The retention clock as an aware datetime: ``now`` (Unix time or aware datetime), default the host's."""
    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    if isinstance(now, (int, float)) and not isinstance(now, bool):
        return dt.datetime.fromtimestamp(now, dt.timezone.utc)
    return now


def calendar_plan(names, policy, now=None, frozen=False):
    """(keep, delete, reasons) of snapshot names under a job's retention by calendar time (pure):
    :func:`snapshot_plan` with ``reasons`` (name -> why it is kept or expired), which the ``prune``
    sub-command prints. ``frozen``: a quarantine is active, everything is kept."""
    pol = policy if isinstance(policy, dr_history.RetentionPolicy) else retention_policy(policy)
    points = [dr_history.RestorePoint("snapshot", n, dt.datetime.fromtimestamp(parse_stamp(n), dt.timezone.utc), "")
              for n in sorted(set(names)) if parse_stamp(n) is not None]
    keep, expire, reasons = dr_history.retention_plan(points, pol, _plan_clock(now), frozen)
    return sorted(p.id for p in keep), sorted(p.id for p in expire), {n: list(r) for n, r in reasons.items()}


def snapshot_plan(names, policy, now=None):
    """(keep, delete): sorted snapshot names under a job's retention by calendar time (pure).

    ``policy``: a job's retention mapping (:func:`retention_policy`) or a RetentionPolicy;
    ``now``: Unix time or an aware datetime (default: now). The time of a snapshot is its
    name's stamp; names that are not stamps are in neither list (never touched). The newest
    snapshot is always kept, and so is every one younger than keep_all_days: no number of
    fresh pulls pushes a snapshot out that was kept (``dr_history.retention_plan``).
    """
    keep, delete, _ = calendar_plan(names, policy, now)
    return keep, delete


def restore_point_name(point):
    """How a restore point is named to an operator: ``kind:label`` (pgbackrest:20261203-101010F)."""
    return "%s:%s" % (point.kind, point.name)


def snapshot_plan_with_points(names, held, policy, now=None, frozen=False):
    """(keep, delete, reasons) of snapshot names that keeps every restore point geo no longer has (pure).

    Calendar retention alone counts snapshot times: after an attack at geo is released, the
    post-attack snapshots win every day/week/month/year bucket and the last pre-attack snapshot,
    the only one still holding the pre-attack restore points, expires with its month. Geo's own
    expiry is no better a guide: what vanished from geo is exactly what miyun exists to keep.

    ``held``: snapshot name -> the ``dr_history.RestorePoint`` s it holds (a name missing = not
    known, e.g. a snapshot taken before points were recorded). A restore point *vanished* when the
    newest snapshot does not hold it (identity: id and fingerprint, so the original of a rewritten
    point counts as vanished); when the newest snapshot's points are not known, every point is
    treated as vanished. Kept: what :func:`calendar_plan` keeps and, for every vanished point that
    no kept snapshot holds yet, oldest point first, the newest snapshot that holds it -- unless the
    policy gives ``vanished_keep_days`` and the point itself is older than that. The reasons of
    such a snapshot name the vanished points it holds that no snapshot kept by the calendar holds.

    Every restore point held by some snapshot before the plan is held by a kept one after it, so
    applying the plan pull after pull never loses one. Only points no kept snapshot holds pin one,
    and the newest holder of the oldest such point holds the most of the points after it (a
    source keeping its last N points puts each in N consecutive snapshots): geo's daily expiry
    does not pin every daily snapshot, the calendar's weekly ones already hold a week of points.
    Snapshots whose points are not known follow the calendar alone.
    """
    now = _plan_clock(now)
    keep, delete, reasons = calendar_plan(names, policy, now, frozen)
    if frozen or not keep:
        return keep, delete, reasons
    limit = vanished_keep_days(policy)
    newest = keep[-1]                                   # the newest snapshot is always kept
    current = None if newest not in held else {(p.id, p.fingerprint) for p in held[newest]}
    vanished, newest_holder = {}, {}
    for name in sorted(set(keep) | set(delete)):        # ascending: the last holder seen is the newest
        for p in held.get(name, ()):
            key = (p.id, p.fingerprint)
            if (current is None or key not in current) and (limit is None or now - p.time <= dt.timedelta(days=limit)):
                vanished[key], newest_holder[key] = p, name
    by_calendar = {(p.id, p.fingerprint) for n in keep for p in held.get(n, ())}
    covered, pins = set(by_calendar), []
    for key in sorted(vanished, key=lambda k: (vanished[k].time, k)):
        if key not in covered:
            pins.append(newest_holder[key])
            covered |= {(p.id, p.fingerprint) for p in held[newest_holder[key]]}
    for name in pins:                                   # expired by the calendar: its reasons are these
        reasons[name] = [
            ("holds vanished restore point %s (%s)" if current is not None else
             "holds restore point %s (%s); the newest snapshot's points are not recorded")
            % (restore_point_name(p), p.time.strftime("%Y-%m-%d %H:%M:%SZ"))
            for p in sorted(held[name], key=lambda p: (p.time, p.id))
            if (p.id, p.fingerprint) in vanished and (p.id, p.fingerprint) not in by_calendar]
    return sorted(set(keep) | set(pins)), [n for n in delete if n not in pins], reasons


def should_snapshot(ok, changed, pending, last_snapshot, now, min_interval, have_any):
    """Take a snapshot now? Only after a complete pull (ok), when something changed since
    the last snapshot (or none exists), and not sooner than min_interval after the last."""
    if not ok:
        return False
    if not have_any:
        return True
    if not (changed or pending):
        return False
    return (now - (last_snapshot or 0)) >= min_interval


def count_changes(itemized):
    """Number of changed entries in rsync --out-format='%i %n' output (pure)."""
    n = 0
    for line in itemized.splitlines():
        code = line.split(" ", 1)[0]
        if not code:
            continue
        if code.startswith("*deleting"):
            n += 1
        elif len(code) >= 2 and code[0] in "<>ch." and code[1] in "fdLDS":
            # '.d..t......' (a directory's attributes) and '.f.........' (unchanged) are no content change
            if code[0] == "." and (code[1] == "d" or set(code[2:]) <= {"."}):
                continue
            n += 1
    return n


_RSYNC_ESCAPE = re.compile(rb"\\#([0-7]{3})")


def _rsync_name(name):
    """A file name as rsync's %n prints it, unescaped: bytes it does not print in the locale (in a
    systemd unit: any non-ASCII byte, so every Chinese name) come as \\#ooo (octal)."""
    raw = _RSYNC_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), name.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape")


def itemized_files(itemized):
    """Paths of the regular files whose content a pull changed, from rsync --out-format='%i %n' (pure).

    Counted: received files (``>f``) that are new (``+++``) or whose checksum, size or modification
    time differed (``c``, ``s``, ``t`` in columns 3-5: the quick check moved the content), and deletions
    (``*deleting``) of anything but a directory. Not counted: attribute-only changes (``.f...p.....``),
    directories, symlinks, devices. The item code is 11 columns wide (rsync >= 3.0), the name follows
    after one space.
    """
    out = []
    for line in itemized.splitlines():
        code = line.split(" ", 1)[0]
        if code == "*deleting":
            pass
        elif len(code) == 11 and code.startswith(">f") and set(code[2:5]) & set("+cst"):
            pass
        else:
            continue
        name = _rsync_name(line[12:])
        if name and not name.endswith("/"):
            out.append(name)
    return out


def parse_stats(text):
    """Bytes from rsync --stats output: received, sent, total file size (pure)."""
    def grab(label):
        m = re.search(r"^%s:\s+([\d,.]+)" % re.escape(label), text, re.M)
        return int(float(m.group(1).replace(",", ""))) if m else 0
    return {"bytes_received": grab("Total bytes received"), "bytes_sent": grab("Total bytes sent"),
            "transferred_file_bytes": grab("Total transferred file size")}


def lsn_to_int(lsn):
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def standby_lag(row, now):
    """Lag from the standby's own view (pure): row = dict with keys
    in_recovery, status, latest_end_lsn (the primary's WAL end reported by the sender),
    replay_lsn, replay_ts (epoch of the last replayed transaction) ."""
    if row.get("in_recovery") != "t":
        return {"role": "primary", "streaming": 0, "lag_bytes": 0, "lag_seconds": 0.0}
    streaming = 1 if row.get("status") == "streaming" else 0
    lag_bytes = None
    if row.get("latest_end_lsn") and row.get("replay_lsn"):
        lag_bytes = max(0, lsn_to_int(row["latest_end_lsn"]) - lsn_to_int(row["replay_lsn"]))
    if lag_bytes == 0 and streaming:
        lag_s = 0.0
    elif row.get("replay_ts"):
        lag_s = max(0.0, now - float(row["replay_ts"]))
    else:
        lag_s = None
    return {"role": "standby", "streaming": streaming, "lag_bytes": lag_bytes, "lag_seconds": lag_s}


def _label(v):
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(status, now):
    """Prometheus text exposition of the whole replica status (pure)."""
    out = []

    def g(name, help_, samples):
        out.append("# HELP archive_dr_replica_%s %s" % (name, help_))
        out.append("# TYPE archive_dr_replica_%s gauge" % name)
        for labels, value in samples:
            lab = ",".join('%s="%s"' % (k, _label(v)) for k, v in sorted(labels.items()))
            out.append("archive_dr_replica_%s%s %s" % (name, "{%s}" % lab if lab else "", value))

    jobs = status.get("jobs", {})
    g("last_success_timestamp_seconds", "Unix time of the job's newest complete pull (0 = never).",
      [({"job": j}, "%.3f" % float(s.get("last_success") or 0)) for j, s in sorted(jobs.items())])
    g("age_seconds", "Seconds since the job's newest complete pull (-1 = never).",
      [({"job": j}, "%.3f" % ((now - float(s["last_success"])) if s.get("last_success") else -1))
       for j, s in sorted(jobs.items())])
    g("last_outcome_success", "1 when the job's last run succeeded.",
      [({"job": j}, 1 if s.get("outcome") == "success" else 0) for j, s in sorted(jobs.items())])
    g("consecutive_failures", "Failed runs since the last success.",
      [({"job": j}, int(s.get("consecutive_failures") or 0)) for j, s in sorted(jobs.items())])
    g("snapshots", "Read-only snapshots kept for the job.",
      [({"job": j}, int(s.get("snapshots") or 0)) for j, s in sorted(jobs.items())])
    g("last_snapshot_timestamp_seconds", "Unix time of the job's newest snapshot (0 = none).",
      [({"job": j}, "%.3f" % float(s.get("last_snapshot") or 0)) for j, s in sorted(jobs.items())])
    g("last_pull_bytes_received", "Bytes the job's last complete pull received.",
      [({"job": j}, int(s.get("bytes_received") or 0)) for j, s in sorted(jobs.items())])
    g("quarantined", "1 while the job's pulls are held in quarantine (no snapshot, no pruning) until released.",
      [({"job": j}, 1 if s.get("quarantine") else 0) for j, s in sorted(jobs.items())])
    g("verify_ok", "1 when the job's last verification read its share without damage left (repaired counts as ok).",
      [({"job": j}, 1 if (s.get("verify") or {}).get("outcome") in ("ok", "repaired") else 0)
       for j, s in sorted(jobs.items()) if s.get("verify")])
    g("verify_timestamp_seconds", "Unix time of the job's last verification.",
      [({"job": j}, "%.3f" % float(s["verify"]["time"])) for j, s in sorted(jobs.items()) if s.get("verify")])
    g("damaged_snapshots", "Snapshots of the job found damaged by verification (history is never rewritten).",
      [({"job": j}, len(s.get("damaged_snapshots") or {})) for j, s in sorted(jobs.items())])
    g("stale", "1 when the job's newest success is older than its dead-man threshold.",
      [({"job": j}, 1 if s.get("stale") else 0) for j, s in sorted(jobs.items())])
    sb = status.get("standby")
    if sb:
        g("standby_streaming", "1 when the standby's WAL receiver is streaming.", [({}, int(sb.get("streaming") or 0))])
        g("standby_in_recovery", "1 when the node is a standby (0 = promoted / primary).",
          [({}, 1 if sb.get("role") == "standby" else 0)])
        if sb.get("lag_bytes") is not None:
            g("standby_lag_bytes", "WAL bytes received from the primary but not replayed, or not yet received.",
              [({}, int(sb["lag_bytes"]))])
        if sb.get("lag_seconds") is not None:
            g("standby_lag_seconds", "Seconds the standby's replay is behind (0 when caught up).",
              [({}, "%.3f" % float(sb["lag_seconds"]))])
        g("standby_stale", "1 when the standby lags more than its dead-man threshold or does not stream.",
          [({}, 1 if sb.get("stale") else 0)])
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- host side
def _atomic_write(path, text, mode=0o644):
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    for key in ("status_dir", "jobs", "ssh"):
        if key not in cfg:
            raise ValueError("%s: missing %r" % (path, key))
    return cfg


def load_job_status(cfg, job):
    try:
        with open(os.path.join(cfg["status_dir"], job + ".json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save_job_status(cfg, job, st):
    _atomic_write(os.path.join(cfg["status_dir"], job + ".json"), json.dumps(st, indent=2, sort_keys=True) + "\n")


def run(argv, env=None, timeout=None):
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)


def is_subvolume(path):
    try:
        return os.stat(path).st_ino == 256 and run(["btrfs", "subvolume", "show", path]).returncode == 0
    except OSError:
        return False


def ensure_subvolume(path):
    if os.path.isdir(path) and is_subvolume(path):
        return
    if os.path.exists(path):
        raise RuntimeError("%s exists and is not a btrfs subvolume" % path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    r = run(["btrfs", "subvolume", "create", path])
    if r.returncode:
        raise RuntimeError("btrfs subvolume create %s: %s" % (path, r.stderr.strip()))


def list_snapshots(snap_dir):
    try:
        return sorted(n for n in os.listdir(snap_dir) if parse_stamp(n) is not None)
    except FileNotFoundError:
        return []


def ssh_command(cfg):
    s = cfg["ssh"]
    return ("ssh -i %s -o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile=%s "
            "-o StrictHostKeyChecking=yes -o ConnectTimeout=%d -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
            % (s["key"], s["known_hosts"], int(s.get("connect_timeout", 10))))


RSYNC_VANISHED = 24          # "some files vanished before they could be transferred"
RSYNC_VANISHED_RETRIES = 3   # a copy taken while the source moved is read again, then judged as a whole


def rsync_phase(cfg, job, phase, dest):
    """One rsync of remote path phase['src'] into dest/phase['dst']; returns (rc, changes, stats, stderr,
    files): files are the paths (relative to dest) whose content it changed (:func:`itemized_files`),
    also when it failed part-way."""
    spec = cfg["jobs"][job]
    target = os.path.join(dest, phase.get("dst", "")).rstrip("/") + "/"
    os.makedirs(target, exist_ok=True)
    argv = ["rsync", "-a", "--delete", "--delete-delay", "--delay-updates", "--numeric-ids", "--stats",
            "--out-format=%i %n", "--timeout=%d" % int(cfg.get("rsync_timeout", 60)), "-e", ssh_command(cfg)]
    if spec.get("max_delete"):
        argv.append("--max-delete=%d" % int(spec["max_delete"]))
    argv += phase.get("args", [])
    argv += ["%s@%s:%s" % (spec.get("user", cfg["ssh"]["user"]), spec["host"], phase["src"]), target]
    r = run(argv, timeout=int(spec.get("timeout", 3600)))
    files = [os.path.normpath(os.path.join(phase.get("dst", ""), n)) for n in itemized_files(r.stdout)]
    return r.returncode, count_changes(r.stdout), parse_stats(r.stdout), r.stderr.strip()[-2000:], files


def restic_repositories(spec, path):
    """(name, path, environment) of each restic repository in a pulled copy."""
    env = dict(os.environ, RESTIC_PASSWORD_FILE=spec["password_file"], RESTIC_CACHE_DIR="/var/cache/restic")
    return [(repo, os.path.join(path, repo), env) for repo in sorted(os.listdir(path))
            if os.path.isfile(os.path.join(path, repo, "config"))]


def verify_copy(cfg, job, path):
    """(ok, message, restore points) of a pulled copy; points is None for a file tree."""
    spec = cfg["jobs"][job]
    kind = spec["kind"]
    if kind == "pgbackrest":
        env = dict(os.environ, PGBACKREST_REPO1_CIPHER_PASS=open(spec["cipher_pass_file"]).read().strip())
        r = run(["pgbackrest", "--config=" + spec["pgbackrest_config"], "--repo1-path=" + path,
                 "--log-level-console=warn", "--output=json", "info"], env=env, timeout=600)
        if r.returncode:
            return False, "pgbackrest info: rc=%d %s" % (r.returncode, r.stderr.strip()[-500:]), None
        info = json.loads(r.stdout or "[]")
        bad = [s["name"] for s in info if s.get("status", {}).get("code") not in (0, 2)]
        if bad:
            return False, "pgbackrest info: stanza(s) not readable: %s" % ", ".join(bad), None
        return True, "pgbackrest info ok (%s)" % ", ".join(
            "%s: %d backup(s)" % (s["name"], len(s.get("backup", []))) for s in info), \
            dr_history.parse_pgbackrest_info(info)
    if kind == "restic":
        msgs, points = [], []
        for repo, rp, env in restic_repositories(spec, path):
            r = run(["restic", "-r", rp, "--no-lock", "snapshots", "--json"], env=env, timeout=600)
            if r.returncode:
                return False, "restic snapshots %s: %s" % (repo, r.stderr.strip()[-500:]), None
            c = run(["restic", "-r", rp, "check", "--no-lock"], env=env, timeout=1800)
            if c.returncode:
                return False, "restic check %s: %s" % (repo, (c.stdout + c.stderr).strip()[-500:]), None
            repo_points = dr_history.parse_restic_snapshots(r.stdout or "[]", repo=repo)
            points += repo_points
            msgs.append("%s: %d snapshot(s), check ok" % (repo, len(repo_points)))
        return True, "; ".join(msgs) or "no restic repositories yet", points
    return True, "files", None


def gate_policy(spec):
    """The job's quarantine gate limits (replica.json ``gate``: durations in seconds)."""
    given = dict(spec.get("gate") or {})
    for key in ("clock_skew", "source_min_age"):
        if key in given:
            given[key] = dt.timedelta(seconds=float(given[key]))
    for key in ("mass_vanish_min", "burst_base", "source_retention_full"):
        if key in given:
            given[key] = int(given[key])
    return dr_history.GatePolicy(**given)


def accepted_points_path(cfg, job):
    return os.path.join(cfg["status_dir"], job + ".points.json")


def load_accepted_points(cfg, job):
    """The restore points of the newest accepted pull ([] before the first)."""
    try:
        with open(accepted_points_path(cfg, job)) as f:
            return dr_history.load_points(f.read())
    except FileNotFoundError:
        return []


def gate_pull(cfg, job, st, points, now):
    """(quarantine, findings as text, what was judged) for a verified pull: a repository's restore
    points against those of the newest accepted pull (``dr_history.gate``), the file tree's changes
    since the newest snapshot (:func:`file_gate`). A pull stays quarantined while an earlier
    quarantine is not released, whatever it looks like now."""
    spec = cfg["jobs"][job]
    if points is not None:
        findings = dr_history.gate(load_accepted_points(cfg, job), points,
                                   dt.datetime.fromtimestamp(now, dr_history.UTC), gate_policy(spec),
                                   last_accepted=(dt.datetime.fromtimestamp(float(st["last_accepted"]), dr_history.UTC)
                                                  if st.get("last_accepted") else None))
        judged = {"points": len(points)}
    elif spec["kind"] == "files":
        findings, judged = file_gate(cfg, job, st)
    else:
        findings, judged = [], {}
    return dr_history.quarantined(findings) or bool(st.get("quarantine")), [str(f) for f in findings], judged


# ---------------------------------------------------------------- file-tree gate (the files job)
HEAD_BYTES = 8192    # format check and entropy sample: the first 8 KiB of a file ...
TAIL_BYTES = 1024    # ... and its last 1 KiB (a PDF's %%EOF: dr_history.PDF_EOF_WINDOW)


def file_policy(spec):
    """The files job's gate limits (replica.json ``gate``: dr_history.FilePolicy fields)."""
    return dr_history.FilePolicy(**dict(spec.get("gate") or {}))


def window_path(cfg, job):
    return os.path.join(cfg["status_dir"], job + ".window.json")


def load_window(cfg, job):
    """Paths changed in the working copy since the newest snapshot (every pull's, failed ones too)."""
    try:
        with open(window_path(cfg, job), encoding="utf-8", errors="surrogateescape") as f:
            return set(json.load(f).get("paths") or [])
    except (OSError, ValueError):
        return set()


def save_window(cfg, job, paths, snapshot=None):
    _atomic_write(window_path(cfg, job), json.dumps({"snapshot": snapshot, "paths": sorted(paths)}, indent=0,
                                                    ensure_ascii=True) + "\n", mode=0o600)


def add_to_window(cfg, job, paths):
    """Record paths a pull or a repair changed: the next gate compares them with the newest snapshot."""
    if paths:
        save_window(cfg, job, load_window(cfg, job) | set(paths))


def clear_window(cfg, job):
    """A snapshot of the working copy was taken: nothing differs from the newest snapshot any more."""
    save_window(cfg, job, [])


def _regular_file(path):
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def read_ends(path, size, head_bytes=HEAD_BYTES):
    """(head, tail): the first head_bytes and the last TAIL_BYTES of a file of this size."""
    with open(path, "rb") as f:
        head = f.read(head_bytes)
        if size <= len(head):
            return head, head[-TAIL_BYTES:]
        f.seek(max(len(head), size - TAIL_BYTES))
        return head, (head + f.read(TAIL_BYTES))[-TAIL_BYTES:]


def file_change(root, base, rel, policy):
    """The ``dr_history.FileChange`` of one path between the newest snapshot (``base``; None = no
    snapshot) and the working copy (``root``), or None when it is the same file in both (size,
    modification time, first and last bytes) or a regular file in neither. Reads the head and tail
    of the new content; the snapshot's head only to compare, or for its entropy when the new content
    passes its format check (a failed check is judged without entropy)."""
    new_st = _regular_file(os.path.join(root, rel))
    old_st = _regular_file(os.path.join(base, rel)) if base else None
    if new_st is None and old_st is None:
        return None
    n = max(HEAD_BYTES, policy.min_entropy_sample)
    head, tail, old_head = b"", None, None
    try:
        if new_st is not None:
            head, tail = read_ends(os.path.join(root, rel), new_st.st_size, n)
        if new_st is not None and old_st is not None and (new_st.st_size, new_st.st_mtime_ns) == (
                old_st.st_size, old_st.st_mtime_ns):
            old_head, old_tail = read_ends(os.path.join(base, rel), old_st.st_size, n)
            if (old_head, old_tail) == (head, tail):
                return None
        old_entropy = None
        if (new_st is not None and old_st is not None and len(head) >= policy.min_entropy_sample
                and dr_history.format_ok(rel, head, tail) is not False):
            if old_head is None:
                old_head, _ = read_ends(os.path.join(base, rel), old_st.st_size, n)
            if len(old_head) >= policy.min_entropy_sample:
                old_entropy = dr_history.shannon_entropy(old_head)
    except OSError as e:
        raise RuntimeError("file gate: cannot read %s: %s" % (rel, e)) from None
    return dr_history.FileChange(rel, old_st.st_size if old_st is not None else None,
                                 new_st.st_size if new_st is not None else None, head=head, tail=tail,
                                 old_entropy=old_entropy, sample=head if new_st is not None else None)


def count_files(root):
    """Regular files under root (one scandir walk; symlinks not followed)."""
    n, todo = 0, [root]
    while todo:
        try:
            with os.scandir(todo.pop()) as it:
                for e in it:
                    if e.is_dir(follow_symlinks=False):
                        todo.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        n += 1
        except FileNotFoundError:
            continue
    return n


def snapshot_file_count(spec, st, name):
    """Files in snapshot ``name``: counted once per snapshot, kept in the job status."""
    known = st.get("snapshot_files") or {}
    if known.get("snapshot") != name:
        known = {"snapshot": name, "count": count_files(os.path.join(spec["snapshots"], name))}
        st["snapshot_files"] = known
    return int(known["count"])


def file_gate(cfg, job, st):
    """(findings, what was judged) of the file tree before it becomes a snapshot: every file changed
    since the newest snapshot (the window: this pull's changes and those of earlier pulls not yet in a
    snapshot) compared with its copy in that snapshot (``dr_history.file_change_findings``; the share
    of the tree counts the snapshot's files). Only those files are read. Files that are back to the
    snapshot's content leave the window. Without a snapshot there is nothing to compare with: the
    first snapshot is the baseline."""
    spec = cfg["jobs"][job]
    snaps = list_snapshots(spec["snapshots"])
    window = load_window(cfg, job)
    if not snaps:
        return [dr_history.Finding(dr_history.WARNING, "baseline", "first snapshot of the file tree, nothing to "
                                   "compare it with: accepted without a gate (%d file(s) changed)" % len(window))], {}
    base = os.path.join(spec["snapshots"], snaps[-1])
    policy = file_policy(spec)
    changes = [c for c in (file_change(spec["working"], base, rel, policy) for rel in sorted(window)) if c]
    save_window(cfg, job, [c.path for c in changes], snaps[-1])
    total = snapshot_file_count(spec, st, snaps[-1])
    findings = dr_history.file_change_findings(changes, policy, total_files=total)
    kinds = [c.change for c in changes]
    return findings, {"changed_files": len(changes), "added": kinds.count("added"), "modified": kinds.count("modified"),
                      "deleted": kinds.count("deleted"), "snapshot_files": total, "baseline_snapshot": snaps[-1]}


def accept_points(cfg, job, st, points, now):
    _atomic_write(accepted_points_path(cfg, job), dr_history.dump_points(points), mode=0o600)
    st["last_accepted"] = now


def snapshot_points_dir(cfg, job):
    """Where the restore points each snapshot of a repository job holds are recorded, one file a snapshot."""
    return os.path.join(cfg["status_dir"], job + ".points")


def record_snapshot_points(cfg, job, name, points):
    """Record the restore points snapshot ``name`` holds (``<status_dir>/<job>.points/<name>.json``) so
    retention can keep the snapshots that alone hold points gone from geo (:func:`snapshot_plan_with_points`)
    without reading every snapshot with restic or pgBackRest. The path, or None for a files job or
    unknown points (nothing to record)."""
    if cfg["jobs"][job]["kind"] not in REPOSITORY_KINDS or points is None:
        return None
    path = os.path.join(snapshot_points_dir(cfg, job), name + ".json")
    _atomic_write(path, dr_history.dump_points(points), mode=0o600)
    return path


def load_snapshot_points(points_dir, names):
    """({name: restore points} of the snapshots whose record exists, names whose record is unreadable)."""
    held, unreadable = {}, set()
    for name in names:
        try:
            with open(os.path.join(points_dir, name + ".json"), encoding="utf-8") as f:
                held[name] = dr_history.load_points(f.read())
        except FileNotFoundError:
            continue
        except (OSError, ValueError, TypeError, KeyError):
            unreadable.add(name)
    return held, unreadable


@dataclasses.dataclass(frozen=True)
class RetentionWithPoints:
    """A repository job's retention for :func:`prune`: its retention mapping and where the restore
    points of its snapshots are recorded. It travels as prune's ``policy`` so that ``prune(snap_dir,
    policy)`` keeps one shape for every kind of job (a files job passes its mapping as it is)."""

    retention: dict
    points_dir: str


def job_retention(cfg, job):
    """What :func:`prune` gets as the policy of ``job``: a repository job's retention with its
    recorded restore points (:class:`RetentionWithPoints`), a files job's retention mapping."""
    spec = cfg["jobs"][job]
    if spec["kind"] in REPOSITORY_KINDS:
        return RetentionWithPoints(spec["retention"], snapshot_points_dir(cfg, job))
    return spec["retention"]


def take_snapshot(spec, now):
    """Name of the read-only snapshot taken of the working copy; RuntimeError if btrfs refuses."""
    snaps = list_snapshots(spec["snapshots"])
    name = stamp(now)
    if name in snaps:
        name = stamp(now + 1)
    r = run(["btrfs", "subvolume", "snapshot", "-r", spec["working"], os.path.join(spec["snapshots"], name)])
    if r.returncode:
        raise RuntimeError("snapshot: %s" % r.stderr.strip())
    return name


def prune_plan(snap_dir, policy, now=None, frozen=False):
    """(keep, delete, reasons) for the snapshots in snap_dir; deletes nothing. ``policy``: a
    retention mapping (:func:`calendar_plan`) or a :class:`RetentionWithPoints` (the recorded restore
    points are read: :func:`snapshot_plan_with_points`). A snapshot whose record cannot be read is
    kept: what it alone holds is not known, and nothing is lost by waiting for the record's repair."""
    names = list_snapshots(snap_dir)
    if not isinstance(policy, RetentionWithPoints):
        return calendar_plan(names, policy, now, frozen)
    held, unreadable = load_snapshot_points(policy.points_dir, names)
    keep, delete, reasons = snapshot_plan_with_points(names, held, policy.retention, now, frozen)
    for name in unreadable & set(delete):
        reasons[name] = ["its restore points record %s is unreadable: kept until it is repaired"
                         % os.path.join(policy.points_dir, name + ".json")]
    return sorted(set(keep) | (unreadable & set(delete))), [n for n in delete if n not in unreadable], reasons


def delete_snapshots(snap_dir, names, policy=None):
    """Delete snapshots with btrfs (and, for a :class:`RetentionWithPoints`, their restore points
    records once the snapshot is gone); a snapshot btrfs refuses is reported and left as it is."""
    for n in names:
        p = os.path.join(snap_dir, n)
        r = run(["btrfs", "subvolume", "delete", p])
        if r.returncode:
            print("replica: cannot delete snapshot %s: %s" % (p, r.stderr.strip()), file=sys.stderr)
        elif isinstance(policy, RetentionWithPoints):
            try:
                os.remove(os.path.join(policy.points_dir, n + ".json"))
            except FileNotFoundError:
                pass


def prune(snap_dir, policy, now=None):
    """Delete the snapshots the job's retention expires (:func:`prune_plan`: calendar time, and for
    a repository job the snapshots that alone hold restore points gone from geo are kept);
    (kept, deleted) names. A bad policy raises ValueError before anything is deleted."""
    keep, delete, _ = prune_plan(snap_dir, policy, now)
    delete_snapshots(snap_dir, delete, policy)
    return keep, delete


def parse_clock(text, now):
    """The retention clock of ``prune --now`` (an aware UTC datetime): ``+Nd`` is N days after
    ``now`` (Unix time), else an ISO 8601 time with its zone (``Z`` or an offset): the calendar
    buckets are Beijing days, so a time without a zone would be a guess."""
    m = re.fullmatch(r"\+(\d+)d", text.strip())
    if m:
        return dt.datetime.fromtimestamp(now, dt.timezone.utc) + dt.timedelta(days=int(m.group(1)))
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        t = None
    if t is None or t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("--now: expected +Nd or an ISO 8601 time with a zone (2027-12-31T12:00:00+08:00 or "
                         "...Z), got %r" % text)
    return t.astimezone(dt.timezone.utc)


def _plan_lines(keep, delete, reasons, most=5):
    """One line a snapshot, oldest first: keep/delete, its name, why (at most ``most`` reasons)."""
    lines = []
    for name in sorted(set(keep) | set(delete)):
        why = reasons.get(name) or []
        shown = "; ".join(why[:most]) + ("; and %d more" % (len(why) - most) if len(why) > most else "")
        lines.append("%-6s %s  %s" % ("keep" if name in keep else "delete", name, shown))
    return lines


def cmd_prune(cfg, job, now=None, dry_run=False):
    """Apply (or with ``dry_run`` only print) the job's retention at the clock ``now`` (an aware
    datetime; default the host's): each snapshot, keep or delete, and why. ``now`` moves the
    retention logic's clock, not the host's, to see what a year of retention does to today's
    snapshots. A quarantine freezes retention, as in a pull: everything is kept (exit 3)."""
    if job not in cfg["jobs"]:
        raise ValueError("unknown job %r (have %s)" % (job, ", ".join(sorted(cfg["jobs"]))))
    spec = cfg["jobs"][job]
    lock = None if dry_run else _lock(cfg, job, wait=RELEASE_LOCK_WAIT)
    if not dry_run and lock is None:
        raise RuntimeError("a pull of %s is still running after %d s; prune after it ends" % (job, RELEASE_LOCK_WAIT))
    host = time.time()
    clock = now or dt.datetime.fromtimestamp(host, dt.timezone.utc)
    st = load_job_status(cfg, job)
    frozen = bool(st.get("quarantine"))
    policy = job_retention(cfg, job)
    keep, delete, reasons = prune_plan(spec["snapshots"], policy, clock, frozen)
    ahead = (clock.timestamp() - host) / 86400
    print("replica %s: retention at %s%s: %d kept, %d %s%s" % (
        job, clock.strftime("%Y-%m-%dT%H:%M:%SZ"), " (%+.1f day(s) from the host's clock)" % ahead if now else "",
        len(keep), len(delete), "to delete (dry run, nothing deleted)" if dry_run else "deleted",
        " -- QUARANTINE since %s: retention frozen until released" % stamp(float(st["quarantine"]["since"]))
        if frozen else ""))
    for line in _plan_lines(keep, delete, reasons):
        print(line)
    if not dry_run and not frozen:
        delete_snapshots(spec["snapshots"], delete, policy)
        kept = list_snapshots(spec["snapshots"])
        if st.get("damaged_snapshots"):
            st["damaged_snapshots"] = {n: d for n, d in st["damaged_snapshots"].items() if n in kept}
        st["snapshots"] = len(kept)
        save_job_status(cfg, job, st)
        write_metrics(cfg)
    if lock is not None:
        lock.close()
    return 3 if frozen else 0


def _lock(cfg, job, wait=False):
    """The job's lock file, held; None when another run holds it (``wait``: True = until it ends,
    a number = at most that many seconds)."""
    os.makedirs(cfg["status_dir"], exist_ok=True)
    lock = open(os.path.join(cfg["status_dir"], "." + job + ".lock"), "w")
    deadline = time.monotonic() + wait if wait is not True and wait else None
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait is True else fcntl.LOCK_NB))
            return lock
        except OSError:
            if deadline is None or time.monotonic() >= deadline:
                lock.close()
                return None
            time.sleep(0.2)


# ---------------------------------------------------------------- verification (reads the bytes)
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
BACKUP_LABEL = re.compile(r"^\d{8}-\d{6}F")


def subset_for(day, period_days, full=False, subset=None):
    """The share verified today, ``n/t``: every object is read once in any ``period_days`` days."""
    if full:
        return "1/1"
    if subset:
        n, t = (int(x) for x in subset.split("/"))
        if not 1 <= n <= t <= dr_history.RESTIC_SUBSETS_MAX:
            raise ValueError("subset must be n/t with 1 <= n <= t <= %d" % dr_history.RESTIC_SUBSETS_MAX)
        return "%d/%d" % (n, t)
    return dr_history.read_data_subset(day, period_days)


def in_subset(key, subset):
    """A file is in subset n/t when the first byte of its path's SHA-256 modulo t is n - 1 (restic's
    rule for pack ids), so the t subsets partition the tree."""
    n, t = (int(x) for x in subset.split("/"))
    return hashlib.sha256(key.encode("utf-8")).digest()[0] % t == n - 1


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fixity_records(cfg, spec):
    """{file_path: sha256} of the archive's items, from the standby at this site."""
    sb = cfg.get("standby") or {}
    r = run(["runuser", "-u", "postgres", "--", "psql", "-XAt", "-F", "|", "-p", str(sb.get("port", 5432)),
             "-d", spec.get("fixity_db", "archive"), "-c", "SELECT file_path, sha256 FROM archive_item"], timeout=600)
    if r.returncode:
        raise RuntimeError("fixity records: %s" % r.stderr.strip()[-300:])
    return dict(line.split("|", 1) for line in r.stdout.splitlines() if "|" in line)


def check_copy(cfg, job, path, subset, records=None):
    """(ok, message, damaged paths relative to path) of one copy, reading ``subset`` of its bytes."""
    spec = cfg["jobs"][job]
    kind = spec["kind"]
    if kind == "restic":
        bad, msgs = [], []
        for repo, rp, env in restic_repositories(spec, path):
            r = run(["restic", "-r", rp, "--no-lock", "check", "--read-data-subset=" + subset], env=env, timeout=86400)
            out = (r.stdout + r.stderr).strip()
            if r.returncode:
                packs = sorted(set(HEX64.findall(out)))
                bad += [os.path.join(repo, "data", p[:2], p) for p in packs
                        if os.path.exists(os.path.join(rp, "data", p[:2], p))]
                msgs.append("%s: restic check failed: %s" % (repo, out[-400:]))
            else:
                msgs.append("%s: read %s ok" % (repo, subset))
        return not msgs or all(m.endswith(" ok") for m in msgs), "; ".join(msgs) or "no restic repositories", bad
    if kind == "pgbackrest":
        env = dict(os.environ, PGBACKREST_REPO1_CIPHER_PASS=open(spec["cipher_pass_file"]).read().strip())
        base = ["pgbackrest", "--config=" + spec["pgbackrest_config"], "--repo1-path=" + path]
        info = run(base + ["--log-level-console=warn", "--output=json", "info"], env=env, timeout=600)
        if info.returncode:
            return False, "pgbackrest info: %s" % info.stderr.strip()[-400:], []
        bad, msgs = [], []
        for stanza in [x["name"] for x in json.loads(info.stdout or "[]")]:
            # at log level detail verify names each bad file: "invalid checksum '20261203-155656F/pg_data/...'"
            r = run(base + ["--stanza=" + stanza, "--log-level-console=detail", "verify"], env=env, timeout=86400)
            out = (r.stdout + r.stderr).strip()
            named = re.findall(r"(?:invalid|missing)[^'\n]*'([^']+)'", out)
            if r.returncode or named or "status: error" in out:
                bad += [os.path.join("backup" if BACKUP_LABEL.match(n) else "archive", stanza, n) for n in named]
                msgs.append("%s: pgbackrest verify failed: %s" % (stanza, "; ".join(
                    line.strip() for line in out.splitlines() if "invalid" in line or "missing" in line)[-400:]))
            else:
                msgs.append("%s: verify ok" % stanza)
        return all(m.endswith(" ok") for m in msgs), "; ".join(msgs) or "no stanzas", sorted(set(bad))
    records = fixity_records(cfg, spec) if records is None else records
    bad, read, missing = [], 0, 0
    for rel, want in sorted(records.items()):
        rel = rel.lstrip("/")
        if not in_subset(rel, subset):
            continue
        full = os.path.join(path, rel)
        if not os.path.isfile(full):
            missing += 1
            continue
        read += os.path.getsize(full)
        if sha256_file(full) != want:
            bad.append(rel)
    msg = "%d file(s) of subset %s against the fixity records, %d MB read, %d not yet replicated" % (
        sum(1 for r in records if in_subset(r.lstrip("/"), subset)), subset, read >> 20, missing)
    if bad:
        msg += "; SHA-256 differs: %s" % ", ".join(bad[:10])
    return not bad, msg, bad


def repair_filters(damaged):
    """rsync filter rules that select only the damaged objects (paths relative to the copy's root).
    Filters, not --files-from: the source side's `rrsync -ro` refuses --files-from."""
    rules, dirs = [], set()
    for rel in sorted(damaged):
        parts = rel.strip("/").split("/")
        for n in range(1, len(parts)):
            d = "/" + "/".join(parts[:n]) + "/"
            if d not in dirs:
                dirs.add(d)
                rules.append("--include=" + d)
        rules.append("--include=/" + "/".join(parts))
    return rules + ["--exclude=*"]


def repair_working_copy(cfg, job, damaged):
    """Re-pull the damaged objects from geo, comparing content (--checksum); all of the copy when
    the check could not name them. Returns (rc, message)."""
    spec = cfg["jobs"][job]
    selected = repair_filters(damaged) if damaged else []
    for phase in spec["phases"]:
        # the selection first (the first matching rule wins), so a phase's own excludes cannot hide it
        args = ["--checksum"] + selected[:-1] + phase.get("args", []) + selected[-1:]
        rc, changes, _, err, files = rsync_phase(cfg, job, dict(phase, args=args), spec["working"])
        if spec["kind"] == "files":
            add_to_window(cfg, job, files)      # what the repair brought from geo passes the gate too
        if rc:
            return rc, "repair pull: rc=%d %s" % (rc, err)
    return 0, "%s re-pulled from geo" % ("%d object(s)" % len(damaged) if damaged else "the whole copy")


def cmd_verify(cfg, job, full=False, subset=None, today=None):
    if job not in cfg["jobs"]:
        raise ValueError("unknown job %r (have %s)" % (job, ", ".join(sorted(cfg["jobs"]))))
    spec = cfg["jobs"][job]
    lock = _lock(cfg, job, wait=True)
    start = time.time()
    share = subset_for(today or dt.date.fromtimestamp(start), int(spec.get("verify_period_days", 7)), full, subset)
    records = fixity_records(cfg, spec) if spec["kind"] == "files" else None
    ok, msg, damaged = check_copy(cfg, job, spec["working"], share, records)
    result = {"time": start, "subset": share, "working": msg, "outcome": "ok", "working_ok": True}
    if not ok:
        rc, how = repair_working_copy(cfg, job, damaged)
        ok2, msg2, _ = check_copy(cfg, job, spec["working"], share, records)
        result.update(outcome="repaired" if rc == 0 and ok2 else "damaged", repair=how,
                      working_damaged=damaged, working_after=msg2, working_ok=rc == 0 and ok2)
    snaps = list_snapshots(spec["snapshots"])
    st = load_job_status(cfg, job)
    if snaps:
        newest = snaps[-1]
        sok, smsg, sbad = check_copy(cfg, job, os.path.join(spec["snapshots"], newest), share, records)
        result.update(snapshot=newest, snapshot_result=smsg)
        if not sok:
            # history is read-only: a damaged snapshot is reported, never rewritten
            result.update(outcome="damaged", snapshot_damaged=sbad)
            st.setdefault("damaged_snapshots", {})[newest] = {"found": start, "objects": sbad[:50], "message": smsg}
        elif newest in (st.get("damaged_snapshots") or {}) and share == "1/1":
            st["damaged_snapshots"].pop(newest)      # read in full and found intact again
    result["duration_seconds"] = round(time.time() - start, 3)
    if result["outcome"] == "repaired":
        st["pending_changes"] = True      # the next pull snapshots the repaired copy
    st["verify"] = result
    save_job_status(cfg, job, st)
    with open(os.path.join(cfg["status_dir"], job + ".verify.jsonl"), "a") as f:
        f.write(json.dumps(result, sort_keys=True) + "\n")
    lock.close()
    write_metrics(cfg)
    print("replica %s: verify %s: %s in %.1f s -- working copy: %s%s%s" % (
        job, share, result["outcome"], result["duration_seconds"], msg,
        "; %s; after: %s" % (result["repair"], result["working_after"]) if "repair" in result else "",
        "; snapshot %s: %s" % (result["snapshot"], result["snapshot_result"]) if "snapshot" in result else ""))
    return 0 if result["outcome"] in ("ok", "repaired") else 1


def cmd_pull(cfg, job):
    if job not in cfg["jobs"]:
        raise ValueError("unknown job %r (have %s)" % (job, ", ".join(sorted(cfg["jobs"]))))
    spec = cfg["jobs"][job]
    lock = _lock(cfg, job)
    if lock is None:
        print("replica %s: another pull is running" % job)
        return 0
    st = load_job_status(cfg, job)
    start = time.time()
    ensure_subvolume(spec["working"])
    os.makedirs(spec["snapshots"], exist_ok=True)
    rc, changes, stats, err, msg = 0, 0, {"bytes_received": 0, "bytes_sent": 0, "transferred_file_bytes": 0}, "", ""
    for phase in spec["phases"]:
        for attempt in range(1 + RSYNC_VANISHED_RETRIES):
            prc, pch, pstats, perr, pfiles = rsync_phase(cfg, job, phase, spec["working"])
            changes += pch
            for k in stats:
                stats[k] += pstats.get(k, 0)
            if spec["kind"] == "files":
                add_to_window(cfg, job, pfiles)     # a failed pull changed the working copy too
            if prc != RSYNC_VANISHED:
                break
            # geo wrote while we read (a WAL segment archived, a backup expired): read again
            print("replica %s: %s changed during the pull (rsync rc=24), pass %d again" % (job, phase["src"], attempt + 2))
        if prc:
            rc, err = prc, "rsync %s: rc=%d %s" % (phase["src"], prc, perr)
            break
    ok, points, quarantine, findings, judged = rc == 0, None, False, [], {}
    if ok:
        vok, msg, points = verify_copy(cfg, job, spec["working"])
        if not vok:
            ok, err = False, msg
    end = time.time()
    if ok:
        quarantine, findings, judged = gate_pull(cfg, job, st, points, end)
    snaps = list_snapshots(spec["snapshots"])
    pending = bool(st.get("pending_changes")) or changes > 0
    took = None
    if quarantine:
        # the copy stays out of history and nothing expires until an operator releases it
        # findings: what started the quarantine; last_findings: the newest pull's, for the operator
        st["quarantine"] = dict(st.get("quarantine") or {"since": end, "findings": findings},
                                last=end, last_findings=findings, **judged)
        critical = [f for f in findings if f.startswith("CRITICAL")]
        ok, err = False, "QUARANTINE: " + ("; ".join(critical) or "held since %s, not released: %s" % (
            stamp(float(st["quarantine"]["since"])), "; ".join(st["quarantine"]["findings"])))
    elif ok and (st.get("verify") or {}).get("working_ok") is False:
        # rsync's quick check never sees in-place damage: a snapshot now would make it history
        ok, err = False, ("the working copy holds damage verification could not repair (%s): no snapshot until "
                          "`replica_tool.py verify %s --full` repairs it" % (st["verify"].get("working_after"), job))
    elif should_snapshot(ok, changes > 0, pending, st.get("last_snapshot"), end,
                         float(spec.get("snapshot_min_interval", 0)), bool(snaps)):
        try:
            took, pending = take_snapshot(spec, end), False
            record_snapshot_points(cfg, job, took, points)
            st["last_snapshot"] = end
            st["last_snapshot_name"] = took
            if spec["kind"] == "files":
                clear_window(cfg, job)
        except (RuntimeError, OSError) as e:   # OSError: the snapshot's restore-point record not written
            ok, err = False, str(e)
    if ok:
        if points is not None:
            accept_points(cfg, job, st, points, end)
        st["gate_findings"] = findings
    kept, deleted = (list_snapshots(spec["snapshots"]), []) if quarantine else prune(spec["snapshots"],
                                                                                      job_retention(cfg, job))
    if st.get("damaged_snapshots"):
        st["damaged_snapshots"] = {n: d for n, d in st["damaged_snapshots"].items() if n in kept}
    st.update({"job": job, "kind": spec["kind"], "last_run_start": start, "last_run_end": end,
               "last_duration_seconds": round(end - start, 3), "last_rc": rc,
               "outcome": "quarantine" if quarantine else "success" if ok else "failure", "pending_changes": pending,
               "snapshots": len(kept), "last_changes": changes, "last_message": msg if ok else err})
    if ok:
        st.update({"last_success": end, "last_success_start": start, "consecutive_failures": 0,
                   "bytes_received": stats["bytes_received"], "transferred_file_bytes": stats["transferred_file_bytes"]})
        if changes:
            st["last_change_success"] = end
    else:
        st["consecutive_failures"] = int(st.get("consecutive_failures") or 0) + 1
    save_job_status(cfg, job, st)
    write_metrics(cfg)
    print("replica %s: %s in %.1f s, %d change(s), %d bytes received%s%s%s" % (
        job, st["outcome"], end - start, changes, stats["bytes_received"],
        ", snapshot %s" % took if took else "", ", deleted %d old" % len(deleted) if deleted else "",
        "" if ok else " -- " + err))
    return 0 if ok else 3 if quarantine else 1


RELEASE_LOCK_WAIT = 600


def cmd_release(cfg, job, by, reason):
    """An operator accepts the quarantined copy: it becomes a snapshot and the gate's new
    baseline; the release is appended to the job's release log. A repository copy must still
    verify; the file tree is not judged again (the operator decided), only a working copy that
    verification found damaged and could not repair is refused, as a pull would refuse it."""
    if job not in cfg["jobs"]:
        raise ValueError("unknown job %r (have %s)" % (job, ", ".join(sorted(cfg["jobs"]))))
    if not by.strip() or not reason.strip():
        raise ValueError("a release names the operator (--by) and the reason (--reason)")
    spec = cfg["jobs"][job]
    lock = _lock(cfg, job, wait=RELEASE_LOCK_WAIT)       # a file pull every 10 s: wait for the running one
    if lock is None:
        raise RuntimeError("a pull of %s is still running after %d s; release after it ends" % (job, RELEASE_LOCK_WAIT))
    st = load_job_status(cfg, job)
    if not st.get("quarantine"):
        print("replica %s: not in quarantine, nothing to release" % job)
        return 0
    ok, msg, points = verify_copy(cfg, job, spec["working"])
    if not ok:
        raise RuntimeError("the quarantined copy does not verify, pull again before releasing: %s" % msg)
    if (st.get("verify") or {}).get("working_ok") is False:
        raise RuntimeError("the working copy holds damage verification could not repair (%s): run "
                           "`replica_tool.py verify %s --full` before releasing" % (st["verify"].get("working_after"), job))
    now = time.time()
    name = take_snapshot(spec, now)
    record_snapshot_points(cfg, job, name, points)
    if points is not None:
        accept_points(cfg, job, st, points, now)
    if spec["kind"] == "files":
        clear_window(cfg, job)
    record = {"time": now, "job": job, "by": by, "reason": reason, "snapshot": name,
              "quarantine": st.pop("quarantine"), "points": len(points or [])}
    with open(os.path.join(cfg["status_dir"], job + ".releases.jsonl"), "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    st.update({"last_snapshot": now, "last_snapshot_name": name, "outcome": "success", "last_success": now,
               "consecutive_failures": 0, "pending_changes": False, "gate_findings": [],
               "last_message": "released by %s: %s" % (by, reason)})
    save_job_status(cfg, job, st)
    write_metrics(cfg)
    print("replica %s: released by %s, snapshot %s, %s" % (
        job, by, name, "%d restore point(s) accepted" % len(points) if points is not None else
        "the working copy accepted as it is (%s changed file(s) since %s)" % (
            record["quarantine"].get("changed_files", "?"), record["quarantine"].get("baseline_snapshot", "?"))))
    return 0


def standby_status(cfg, now):
    sb = cfg.get("standby")
    if not sb:
        return None
    q = ("SELECT pg_is_in_recovery(), coalesce((SELECT status FROM pg_stat_wal_receiver), ''), "
         "coalesce((SELECT latest_end_lsn::text FROM pg_stat_wal_receiver), ''), "
         "coalesce(pg_last_wal_replay_lsn()::text, ''), "
         "coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, '')")
    r = run(["runuser", "-u", "postgres", "--", "psql", "-XAt", "-F", "|", "-p", str(sb.get("port", 5432)), "-c", q],
            timeout=20)
    if r.returncode:
        return {"role": "down", "streaming": 0, "lag_bytes": None, "lag_seconds": None, "stale": True,
                "error": r.stderr.strip()[-300:]}
    f = (r.stdout.strip().split("|") + [""] * 5)[:5]
    row = dict(zip(["in_recovery", "status", "latest_end_lsn", "replay_lsn", "replay_ts"], f))
    res = standby_lag(row, now)
    max_lag = float(sb.get("max_lag_seconds", 300))
    res["stale"] = res["role"] == "standby" and (not res["streaming"] or res["lag_seconds"] is None
                                                 or res["lag_seconds"] > max_lag)
    res["max_lag_seconds"] = max_lag
    return res


def collect(cfg, now=None, timer_times=None):
    now = time.time() if now is None else now
    timer_times = timers() if timer_times is None else timer_times
    jobs = {}
    for job, spec in sorted(cfg["jobs"].items()):
        st = load_job_status(cfg, job)
        st["snapshots"] = len(list_snapshots(spec["snapshots"]))
        max_age = float(spec.get("max_age", 0) or 0)
        st["max_age"] = max_age
        health = job_health(st.get("last_success"), max_age, now,
                            first_due(timer_times, "archive-dr-replica-pull-%s.timer" % job)) if max_age else "ok"
        st["pending"] = health == "pending"
        st["stale"] = health == "stale"
        jobs[job] = st
    return {"time": now, "jobs": jobs, "standby": standby_status(cfg, now)}


def write_metrics(cfg, now=None):
    status = collect(cfg, now)
    _atomic_write(os.path.join(cfg["status_dir"], "replica-status.json"),
                  json.dumps(status, indent=2, sort_keys=True) + "\n")
    if cfg.get("textfile_dir"):
        _atomic_write(os.path.join(cfg["textfile_dir"], "archive_dr_replica.prom"),
                      metrics_text(status, status["time"]))
    return status


def cmd_deadman(cfg):
    status = write_metrics(cfg)
    bad = []
    for job, st in sorted(status["jobs"].items()):
        age = (status["time"] - float(st["last_success"])) if st.get("last_success") else None
        print("%-6s %-12s age %s (max %d s), %d snapshot(s)" % (
              "STALE" if st["stale"] else "PENDING" if st.get("pending") else "ok", job,
              "never" if age is None else "%d s" % age, st["max_age"], st["snapshots"]))
        if st["stale"]:
            bad.append(job)
        if st.get("quarantine"):
            print("QUARANTINE %s since %s: %s" % (job, stamp(float(st["quarantine"]["since"])),
                                                 "; ".join(st["quarantine"].get("findings") or [])))
            bad.append(job + " (quarantine)")
    sb = status.get("standby")
    if sb is not None:
        print("%-6s standby      role %s, streaming %s, lag %s s / %s bytes" % (
            "STALE" if sb.get("stale") else "ok", sb.get("role"), sb.get("streaming"),
            sb.get("lag_seconds"), sb.get("lag_bytes")))
        if sb.get("stale"):
            bad.append("standby")
    if bad:
        print("dead-man: stale: %s" % ", ".join(bad), file=sys.stderr)
        return 1
    print("dead-man: replica current")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="replica_tool.py", description="archive-dr replica services")
    p.add_argument("--config", default=os.environ.get("ARCHIVE_DR_REPLICA_CONFIG", DEFAULT_CONFIG))
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("pull").add_argument("job")
    ver = sub.add_parser("verify")
    ver.add_argument("job")
    ver.add_argument("--full", action="store_true", help="read everything now, not today's share")
    ver.add_argument("--subset", help="read this share n/t")
    rel = sub.add_parser("release")
    rel.add_argument("job")
    rel.add_argument("--by", required=True)
    rel.add_argument("--reason", required=True)
    pru = sub.add_parser("prune", help="apply the job's retention now, or print the plan at another clock")
    pru.add_argument("job")
    pru.add_argument("--now", help="the retention clock: ISO 8601 with a zone, or +Nd (N days after the host's "
                     "clock); the host's clock is not touched. Without --dry-run the plan at that clock is "
                     "applied: snapshots the host's clock would still keep are deleted")
    pru.add_argument("--dry-run", action="store_true", help="print the plan (keep/delete and why), delete nothing")
    sub.add_parser("metrics")
    sub.add_parser("deadman")
    sub.add_parser("show")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config)
        if a.cmd == "pull":
            return cmd_pull(cfg, a.job)
        if a.cmd == "verify":
            return cmd_verify(cfg, a.job, a.full, a.subset)
        if a.cmd == "release":
            return cmd_release(cfg, a.job, a.by, a.reason)
        if a.cmd == "prune":
            return cmd_prune(cfg, a.job, parse_clock(a.now, time.time()) if a.now else None, a.dry_run)
        if a.cmd == "metrics":
            write_metrics(cfg)
            return 0
        if a.cmd == "deadman":
            return cmd_deadman(cfg)
        print(json.dumps(collect(cfg), indent=2, sort_keys=True))
        return 0
    except (OSError, ValueError, RuntimeError, subprocess.SubprocessError) as e:
        print("replica_tool: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
