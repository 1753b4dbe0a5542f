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
    replica_tool.py metrics       standby lag (bytes, seconds), file replica age, last
                                  pull per job, snapshot counts -> JSON + Prometheus
    replica_tool.py deadman       exit 1 when any job or the standby is stale
    replica_tool.py show          print the status JSON

Configuration: ``/etc/archive-dr/replica.json`` (written by the role). A pull that
fails or is cut (WAN down, rsync error, verification error) leaves the working copy
as it is and takes no snapshot; the next run continues from there (rsync only moves
what is missing) and snapshots once it completes.

Repository pulls pass a quarantine gate (dr_history.gate, docs/dr-history.md) before they
become history: restore points that vanished, were rewritten, are dated in the future or
arrive in a flood keep the copy in quarantine (no snapshot, no pruning, the unit fails, the
metric and dead-man go red) until an operator releases it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import dr_history  # installed next to this file
from backup_status import first_due, job_health, timers  # installed next to this file

DEFAULT_CONFIG = "/etc/archive-dr/replica.json"
STAMP_FMT = "%Y%m%dT%H%M%SZ"
SNAP_RE = re.compile(r"^(\d{8}T\d{6}Z)$")
PERIODS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


# ---------------------------------------------------------------- pure helpers
def stamp(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime(STAMP_FMT)


def parse_stamp(name):
    m = SNAP_RE.match(name)
    if not m:
        return None
    return dt.datetime.strptime(m.group(1), STAMP_FMT).replace(tzinfo=dt.timezone.utc).timestamp()


def _bucket(t, period):
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    if period == "hourly":
        return d.strftime("%Y%m%d%H")
    if period == "daily":
        return d.strftime("%Y%m%d")
    if period == "weekly":
        y, w, _ = d.isocalendar()
        return "%04d%02d" % (y, w)
    if period == "monthly":
        return d.strftime("%Y%m")
    if period == "yearly":
        return d.strftime("%Y")
    raise ValueError(period)


def retention_plan(names, policy):
    """(keep, delete) lists of snapshot names under a GFS policy (pure).

    policy: {last: n, hourly: n, daily: n, weekly: n, monthly: n, yearly: n}; every
    count >= 1 when given, at least one given. The newest snapshot is always kept,
    names that are not snapshot stamps are never touched.
    """
    if not policy or any(k not in PERIODS for k in policy):
        raise ValueError("retention: give counts for %s" % ", ".join(PERIODS))
    if any(int(v) < 1 for v in policy.values()):
        raise ValueError("retention: every count must be >= 1 (a retention of 0 keeps nothing)")
    snaps = sorted(((parse_stamp(n), n) for n in names if parse_stamp(n) is not None), reverse=True)
    keep = set()
    if snaps:
        keep.add(snaps[0][1])
    keep.update(n for _, n in snaps[:int(policy.get("last", 0))])
    for period in PERIODS[1:]:
        want = int(policy.get(period, 0))
        seen = []
        for t, n in snaps:  # newest first: the newest snapshot of each bucket
            b = _bucket(t, period)
            if b in seen:
                continue
            if len(seen) >= want:
                break
            seen.append(b)
            keep.add(n)
    delete = [n for _, n in snaps if n not in keep]
    return sorted(keep), sorted(delete)


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


def rsync_phase(cfg, job, phase, dest):
    """One rsync of remote path phase['src'] into dest/phase['dst']; returns (rc, changes, stats, stderr)."""
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
    return r.returncode, count_changes(r.stdout), parse_stats(r.stdout), r.stderr.strip()[-2000:]


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
        for repo in sorted(os.listdir(path)):
            rp = os.path.join(path, repo)
            if not os.path.isfile(os.path.join(rp, "config")):
                continue
            env = dict(os.environ, RESTIC_PASSWORD_FILE=spec["password_file"], RESTIC_CACHE_DIR="/var/cache/restic")
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
    """(quarantine, findings as text) for a verified pull. A pull stays quarantined while an
    earlier quarantine is not released, whatever it looks like now."""
    findings = dr_history.gate(load_accepted_points(cfg, job), points,
                               dt.datetime.fromtimestamp(now, dr_history.UTC), gate_policy(cfg["jobs"][job]),
                               last_accepted=(dt.datetime.fromtimestamp(float(st["last_accepted"]), dr_history.UTC)
                                              if st.get("last_accepted") else None))
    return dr_history.quarantined(findings) or bool(st.get("quarantine")), [str(f) for f in findings]


def accept_points(cfg, job, st, points, now):
    _atomic_write(accepted_points_path(cfg, job), dr_history.dump_points(points), mode=0o600)
    st["last_accepted"] = now


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


def prune(snap_dir, policy):
    keep, delete = retention_plan(list_snapshots(snap_dir), policy)
    for n in delete:
        p = os.path.join(snap_dir, n)
        r = run(["btrfs", "subvolume", "delete", p])
        if r.returncode:
            print("replica: cannot delete snapshot %s: %s" % (p, r.stderr.strip()), file=sys.stderr)
    return keep, delete


def _lock(cfg, job):
    """The job's lock file, held; None when another run holds it."""
    os.makedirs(cfg["status_dir"], exist_ok=True)
    lock = open(os.path.join(cfg["status_dir"], "." + job + ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return None
    return lock


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
        prc, pch, pstats, perr = rsync_phase(cfg, job, phase, spec["working"])
        changes += pch
        for k in stats:
            stats[k] += pstats[k]
        if prc:
            rc, err = prc, "rsync %s: rc=%d %s" % (phase["src"], prc, perr)
            break
    ok, points, quarantine, findings = rc == 0, None, False, []
    if ok:
        vok, msg, points = verify_copy(cfg, job, spec["working"])
        if not vok:
            ok, err = False, msg
    end = time.time()
    if ok and points is not None:
        quarantine, findings = gate_pull(cfg, job, st, points, end)
    snaps = list_snapshots(spec["snapshots"])
    pending = bool(st.get("pending_changes")) or changes > 0
    took = None
    if quarantine:
        # the copy stays out of history and nothing expires until an operator releases it
        # findings: what started the quarantine; last_findings: the newest pull's, for the operator
        st["quarantine"] = dict(st.get("quarantine") or {"since": end, "findings": findings},
                                last=end, last_findings=findings, points=len(points))
        critical = [f for f in findings if f.startswith("CRITICAL")]
        ok, err = False, "QUARANTINE: " + ("; ".join(critical) or "held since %s, not released: %s" % (
            stamp(float(st["quarantine"]["since"])), "; ".join(st["quarantine"]["findings"])))
    elif should_snapshot(ok, changes > 0, pending, st.get("last_snapshot"), end,
                         float(spec.get("snapshot_min_interval", 0)), bool(snaps)):
        try:
            took, pending = take_snapshot(spec, end), False
            st["last_snapshot"] = end
            st["last_snapshot_name"] = took
        except RuntimeError as e:
            ok, err = False, str(e)
    if ok and points is not None:
        accept_points(cfg, job, st, points, end)
        st["gate_findings"] = findings
    kept, deleted = (list_snapshots(spec["snapshots"]), []) if quarantine else prune(spec["snapshots"],
                                                                                      spec["retention"])
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


def cmd_release(cfg, job, by, reason):
    """An operator accepts the quarantined copy: it becomes a snapshot and the gate's new
    baseline; the release is appended to the job's release log."""
    if job not in cfg["jobs"]:
        raise ValueError("unknown job %r (have %s)" % (job, ", ".join(sorted(cfg["jobs"]))))
    if not by.strip() or not reason.strip():
        raise ValueError("a release names the operator (--by) and the reason (--reason)")
    spec = cfg["jobs"][job]
    lock = _lock(cfg, job)
    if lock is None:
        raise RuntimeError("a pull of %s is running; release after it ends" % job)
    st = load_job_status(cfg, job)
    if not st.get("quarantine"):
        print("replica %s: not in quarantine, nothing to release" % job)
        return 0
    ok, msg, points = verify_copy(cfg, job, spec["working"])
    if not ok:
        raise RuntimeError("the quarantined copy does not verify, pull again before releasing: %s" % msg)
    now = time.time()
    name = take_snapshot(spec, now)
    accept_points(cfg, job, st, points or [], now)
    record = {"time": now, "job": job, "by": by, "reason": reason, "snapshot": name,
              "quarantine": st.pop("quarantine"), "points": len(points or [])}
    with open(os.path.join(cfg["status_dir"], job + ".releases.jsonl"), "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
    st.update({"last_snapshot": now, "last_snapshot_name": name, "outcome": "success", "last_success": now,
               "consecutive_failures": 0, "pending_changes": False, "gate_findings": [],
               "last_message": "released by %s: %s" % (by, reason)})
    save_job_status(cfg, job, st)
    write_metrics(cfg)
    print("replica %s: released by %s, snapshot %s, %d restore point(s) accepted" % (job, by, name, len(points or [])))
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
    rel = sub.add_parser("release")
    rel.add_argument("job")
    rel.add_argument("--by", required=True)
    rel.add_argument("--reason", required=True)
    sub.add_parser("metrics")
    sub.add_parser("deadman")
    sub.add_parser("show")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config)
        if a.cmd == "pull":
            return cmd_pull(cfg, a.job)
        if a.cmd == "release":
            return cmd_release(cfg, a.job, a.by, a.reason)
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
