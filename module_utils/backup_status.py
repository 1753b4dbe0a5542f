#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Backup job status, Prometheus textfile metrics and the dead-man check (stdlib only).

Installed on the appliance as ``/usr/local/lib/archive-dr/backup_status.py``
and used by every backup/verify systemd unit::

    backup_status.py run JOB -- COMMAND...   run a job, record its outcome
    backup_status.py deadman                 fail when a job's newest success is too old
    backup_status.py show                    print the status table

The configuration (``/etc/archive-dr/backup-jobs.json``, written by the
backup_appliance role) is ``{"status_dir", "textfile_dir", "jobs": {JOB:
{"max_age": seconds, "size_path": path}}}``. Per job, ``<status_dir>/<JOB>.json``
holds the last run and the last success; ``<textfile_dir>/archive_dr_backup_<JOB>.prom``
the same as metrics for node_exporter's textfile collector.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

DEFAULT_CONFIG = "/etc/archive-dr/backup-jobs.json"
JOB_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _atomic_write(path, text):
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def tree_size(path):
    """Bytes under path (files only, no symlinks followed); 0 when absent."""
    if not path or not os.path.exists(path):
        return 0
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def load_status(status_dir, job):
    try:
        with open(os.path.join(status_dir, job + ".json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def record(previous, job, start, end, rc, size):
    """New status dict from the previous one and this run (pure)."""
    ok = rc == 0
    st = dict(previous or {})
    st.update({"job": job, "last_run_start": start, "last_run_end": end,
               "last_duration_seconds": round(end - start, 3), "last_rc": rc,
               "outcome": "success" if ok else "failure"})
    if ok:
        st.update({"last_success": end, "last_success_duration_seconds": round(end - start, 3),
                   "size_bytes": size, "consecutive_failures": 0})
    else:
        st["consecutive_failures"] = int(st.get("consecutive_failures") or 0) + 1
    return st


def _label(v):
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(st, max_age=None, now=None, stale=None, timer_active=None):
    """Prometheus text exposition for one job's status (pure)."""
    job = _label(st["job"])
    lines = []

    def g(name, help_, value):
        lines.append("# HELP archive_dr_backup_%s %s" % (name, help_))
        lines.append("# TYPE archive_dr_backup_%s gauge" % name)
        lines.append('archive_dr_backup_%s{job="%s"} %s' % (name, job, value))

    g("last_success_timestamp_seconds", "Unix time of the job's newest success (0 = never).",
      "%.3f" % float(st.get("last_success") or 0))
    g("last_run_timestamp_seconds", "Unix time the job's last run ended.", "%.3f" % float(st.get("last_run_end") or 0))
    g("last_duration_seconds", "Duration of the job's last run.", "%.3f" % float(st.get("last_duration_seconds") or 0))
    g("size_bytes", "Size of what the job's last success produced or protects.", int(st.get("size_bytes") or 0))
    g("last_outcome_success", "1 when the job's last run succeeded, else 0.",
      1 if st.get("outcome") == "success" else 0)
    g("consecutive_failures", "Failed runs since the last success.", int(st.get("consecutive_failures") or 0))
    if max_age:
        g("max_age_seconds", "Dead-man threshold for the job.", int(max_age))
        if stale is None:
            stale = is_stale(st, max_age, now)
        g("stale", "1 when the newest success is older than the threshold (a job not yet due is not stale).",
          1 if stale else 0)
    if timer_active is not None:
        g("timer_active", "1 when the job's timer is active (a stopped timer never runs the job again).",
          1 if timer_active else 0)
    return "\n".join(lines) + "\n"


def job_health(last_success, max_age, now, first_due=None):
    """'ok', 'pending' or 'stale' (pure).

    A job that has never succeeded is pending, not stale, until its timer's
    first due time plus the threshold: a fresh install is healthy until a job
    had its chance to run. ``first_due`` is the timer's first trigger (or its
    next elapse when it never triggered); unknown means stale at once.
    """
    if last_success:
        return "stale" if (now - float(last_success)) > float(max_age) else "ok"
    if first_due and now <= float(first_due) + float(max_age):
        return "pending"
    return "stale"


def is_stale(st, max_age, now=None, first_due=None):
    now = time.time() if now is None else now
    return job_health(st.get("last_success"), max_age, now, first_due) == "stale"


def parse_timers(text):
    """{unit: (last_trigger, next_elapse)} in Unix seconds (0 = never/none) from
    ``systemctl list-timers --all -o json`` (pure)."""
    try:
        rows = json.loads(text or "[]")
    except ValueError:
        return {}
    return {r["unit"]: (float(r.get("last") or 0) / 1e6, float(r.get("next") or 0) / 1e6)
            for r in rows if isinstance(r, dict) and r.get("unit")}


def timers():
    """The host's timers as parse_timers() gives them; {} when systemctl cannot tell."""
    try:
        out = subprocess.run(["systemctl", "list-timers", "--all", "-o", "json"], capture_output=True,
                             text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_timers(out)


def timer_active(unit):
    """True when systemd reports the unit active, False when not, None when systemctl cannot tell."""
    try:
        r = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    state = r.stdout.strip()
    return state == "active" if state else None


def first_due(timer_times, unit):
    """A timer's first due time: its first trigger, else its next elapse (None when unknown)."""
    last, nxt = timer_times.get(unit, (0, 0))
    return last or nxt or None


def deadman(config, now=None, timer_times=None):
    """[(job, health, age_seconds or None, max_age)] for every job with a threshold (pure but for reads)."""
    now = time.time() if now is None else now
    timer_times = timers() if timer_times is None else timer_times
    prefix = config.get("unit_prefix", "archive-dr-backup-")
    out = []
    for job, spec in sorted(config.get("jobs", {}).items()):
        max_age = spec.get("max_age")
        if not max_age:
            continue
        st = load_status(config["status_dir"], job)
        last = st.get("last_success")
        age = (now - float(last)) if last else None
        due = first_due(timer_times, "%s%s.timer" % (prefix, job))
        out.append((job, job_health(last, max_age, now, due), age, max_age))
    return out


def write_status(config, st):
    job = st["job"]
    spec = config.get("jobs", {}).get(job, {})
    _atomic_write(os.path.join(config["status_dir"], job + ".json"), json.dumps(st, indent=2, sort_keys=True) + "\n")
    if config.get("textfile_dir"):
        _atomic_write(os.path.join(config["textfile_dir"], "archive_dr_backup_%s.prom" % job.replace("-", "_")),
                      metrics_text(st, spec.get("max_age")))


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    for key in ("status_dir", "jobs"):
        if key not in cfg:
            raise ValueError("%s: missing %r" % (path, key))
    return cfg


def cmd_run(cfg, job, argv):
    if not JOB_RE.match(job):
        raise ValueError("bad job name %r" % job)
    if not argv:
        raise ValueError("run: no command given")
    prev = load_status(cfg["status_dir"], job)
    start = time.time()
    try:
        rc = subprocess.call(argv)
    except OSError as e:
        print("backup_status: cannot run %s: %s" % (argv[0], e), file=sys.stderr)
        rc = 127
    end = time.time()
    spec = cfg.get("jobs", {}).get(job, {})
    size = tree_size(spec.get("size_path")) if rc == 0 else prev.get("size_bytes", 0)
    st = record(prev, job, start, end, rc, size)
    write_status(cfg, st)
    print("job %s: %s in %.1f s (rc=%d, size %d bytes)" % (job, st["outcome"], end - start, rc, size or 0))
    return rc


def cmd_deadman(cfg, now=None):
    rows = deadman(cfg, now)
    bad = [r for r in rows if r[1] == "stale"]
    prefix = cfg.get("unit_prefix", "archive-dr-backup-")
    for job, health, age, max_age in rows:
        st = load_status(cfg["status_dir"], job)
        if not st:
            st = {"job": job}
        if cfg.get("textfile_dir"):
            _atomic_write(os.path.join(cfg["textfile_dir"], "archive_dr_backup_%s.prom" % job.replace("-", "_")),
                          metrics_text(st, max_age, now, stale=health == "stale",
                                       timer_active=timer_active("%s%s.timer" % (prefix, job))))
        print("%-8s %-40s age %s (max %d s)" % (health.upper() if health != "ok" else "ok", job,
                                               "never" if age is None else "%d s" % age, max_age))
    if bad:
        print("dead-man: %d job(s) without a recent success: %s" % (len(bad), ", ".join(r[0] for r in bad)),
              file=sys.stderr)
        return 1
    print("dead-man: all %d jobs have a recent success" % len(rows))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="backup_status.py", description="archive-dr backup job status")
    p.add_argument("--config", default=os.environ.get("ARCHIVE_DR_BACKUP_JOBS", DEFAULT_CONFIG))
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("job")
    r.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("deadman")
    sub.add_parser("show")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config)
        if a.cmd == "run":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            return cmd_run(cfg, a.job, cmd)
        if a.cmd == "deadman":
            return cmd_deadman(cfg)
        for job in sorted(cfg["jobs"]):
            print(json.dumps(load_status(cfg["status_dir"], job) or {"job": job}, sort_keys=True))
        return 0
    except (OSError, ValueError) as e:
        print("backup_status: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
