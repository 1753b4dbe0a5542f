# -*- coding: utf-8 -*-
"""Monthly inspection (月度巡检): collect a host's state, turn it into findings (stdlib only).

Two halves:

* ``collect(opts)`` runs on the inspected host (through ``library/dr_inspect.py``)
  and only reads: filesystems (statvfs), the storage role's facts, backup/pull
  job status (``backup_status.py`` style configs), systemd timers, PostgreSQL
  replication, Prometheus textfile gauges (replica lag/age), tunnel facts and
  certificates, ``chronyc tracking``, failed units, ``sshd -T``, the nftables
  input policy, listening sockets, offline media registers, optionally lynis,
  and the DR history since the previous inspection: the release log and the
  verification log of every job's status directory, the alert log.
* ``evaluate(host, collected, thresholds, now)`` is pure: it turns what was
  collected into findings ``{severity, host, check, item, message, value,
  threshold}`` with severity ``critical`` / ``warning`` / ``info``.

``forecast(points, capacity)`` (pure) fits a least-squares line to
``[(unix_time, used_bytes), ...]`` and returns the growth rate and days until
the filesystem is full; the controller keeps the history (archive_dr/report.py).
"""
from __future__ import annotations

import collections
import glob
import json
import os
import re
import shutil
import subprocess
import time

from ansible.module_utils.backup_status import first_due, job_health, parse_timers

SEVERITIES = ("critical", "warning", "info")
REAL_FS = ("ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "vfat", "f2fs", "jfs", "reiserfs", "nfs", "nfs4")

DEFAULT_THRESHOLDS = {
    "fs_used_pct_warn": 85.0,
    "fs_used_pct_crit": 95.0,
    "fs_days_full_warn": 180.0,
    "fs_days_full_crit": 60.0,
    "forecast_min_samples": 2,
    "forecast_min_span_days": 7.0,
    "cert_days_warn": 60.0,
    "cert_days_crit": 30.0,
    "time_offset_warn": 0.1,
    "time_offset_crit": 1.0,
    "pg_lag_bytes_warn": 16 * 1024 * 1024,
    "pg_lag_bytes_crit": 1024 * 1024 * 1024,
    "job_failure_severity": "warning",
    "metric_thresholds": {},
    "critical_units": ["postgresql", "strongswan", "chrony", "ssh", "nftables", "archive-dr-"],
    "allowed_ports": [22],
    "replication_expected": False,
    "tunnel_expected": None,
}

# The DR history an inspection carries is bounded (newest kept, the rest counted as dropped).
DEFAULT_ALERT_LOG_DIR = "/var/lib/archive-dr/alerts"
ALERT_LOG = "alerts.jsonl"             # one Alertmanager webhook notification a line (roles/monitoring)
MAX_ALERTS = 500                       # alert entries (one per alert of a notification)
MAX_RELEASES = 200                     # release records per job
MAX_VERIFY_RUNS = 400                  # verification runs per job
MAX_FINDINGS = 20                      # findings kept of a quarantine
MAX_TEXT = 500                         # characters kept of a free text (reason, finding, summary)
RELEASES_SHOWN = 5                     # releases named in a job's job-release finding


# ------------------------------------------------------------------ helpers
def _run(argv, timeout=20, env=None):
    """(rc, stdout, stderr); rc 127 when the program is missing, 124 on timeout."""
    if not shutil.which(argv[0]) and not os.path.exists(argv[0]):
        return 127, "", "%s: not found" % argv[0]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return 124, "", "timeout after %ss" % timeout
    except OSError as e:
        return 127, "", str(e)
    return p.returncode, p.stdout, p.stderr


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------ parsers (pure)
def parse_mounts(text):
    """[(device, mount_point, fstype)] from /proc/self/mounts text."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            mp = parts[1].replace("\\040", " ")
            out.append((parts[0], mp, parts[2]))
    return out


def parse_chrony_tracking(text):
    d = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        d[k.strip()] = v.strip()
    res = {"leap_status": d.get("Leap status"), "stratum": None, "offset_seconds": None, "reference": d.get("Reference ID")}
    try:
        res["stratum"] = int(d.get("Stratum", ""))
    except ValueError:
        pass
    m = re.match(r"([0-9.]+) seconds (slow|fast)", d.get("System time", ""))
    if m:
        res["offset_seconds"] = float(m.group(1)) * (-1 if m.group(2) == "slow" else 1)
    return res


def parse_sshd_t(text):
    d = {}
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            d.setdefault(parts[0].lower(), parts[1].strip().lower())
    return d


def parse_nft_input_policies(nft_json_text):
    """[(family, table, chain, policy)] of base chains hooked on input."""
    try:
        data = json.loads(nft_json_text)
    except ValueError:
        return []
    out = []
    for item in data.get("nftables", []):
        c = item.get("chain")
        if c and c.get("hook") == "input":
            out.append((c.get("family"), c.get("table"), c.get("name"), c.get("policy", "accept")))
    return out


def parse_ss(text):
    """[(proto, address, port)] of listening sockets from ``ss -Hltun``."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        proto = parts[0]
        local = parts[4]
        addr, _, port = local.rpartition(":")
        addr = addr.strip("[]").split("%")[0]
        try:
            out.append((proto, addr, int(port)))
        except ValueError:
            continue
    return sorted(set(out))


def is_loopback(addr):
    return addr.startswith("127.") or addr in ("::1", "localhost")


def parse_prom_gauges(text):
    """{(name, frozenset(labels.items())): value} from Prometheus text exposition."""
    out = {}
    rx = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?\s+([-+0-9.eEnaNInf]+)')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = rx.match(line)
        if not m:
            continue
        labels = {}
        if m.group(3):
            for lm in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3)):
                labels[lm.group(1)] = lm.group(2)
        try:
            out[(m.group(1), tuple(sorted(labels.items())))] = float(m.group(4))
        except ValueError:
            continue
    return out


def parse_lynis_report(text):
    res = {"hardening_index": None, "warnings": [], "suggestions": 0}
    for line in text.splitlines():
        if line.startswith("hardening_index="):
            try:
                res["hardening_index"] = int(line.split("=", 1)[1])
            except ValueError:
                pass
        elif line.startswith("warning[]="):
            res["warnings"].append(line.split("=", 1)[1].split("|")[0:2])
        elif line.startswith("suggestion[]="):
            res["suggestions"] += 1
    return res


# ------------------------------------------------------------------ collection (on the host)
def collect_filesystems(storage_facts_file):
    facts = _read_json(storage_facts_file) if storage_facts_file else None
    volumes = {}
    for v in (facts or {}).get("volumes", []):
        if v.get("mount_point"):
            volumes[v["mount_point"]] = {"pool": v.get("pool"), "volume": v.get("name"),
                                         "raid_level": v.get("raid_level"), "disks": v.get("disks", [])}
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            mounts = parse_mounts(f.read())
    except OSError:
        mounts = []
    out, seen = [], set()
    for dev, mp, fstype in mounts:
        if fstype not in REAL_FS or mp in seen:
            continue
        if mp.startswith(("/etc/", "/proc", "/sys", "/dev", "/run")):
            continue        # bind-mounted files of a container runtime
        seen.add(mp)
        try:
            st = os.statvfs(mp)
        except OSError:
            continue
        total = st.f_blocks * st.f_frsize
        free = st.f_bavail * st.f_frsize
        used = total - st.f_bfree * st.f_frsize
        if total <= 0:
            continue
        out.append({"mount_point": mp, "device": dev, "fs_type": fstype, "capacity_bytes": total,
                    "used_bytes": used, "free_bytes": free,
                    "used_pct": round(100.0 * (total - free) / total, 2),
                    "inodes_free": st.f_favail, "storage": volumes.get(mp)})
    missing = [mp for mp in volumes if mp not in seen]
    return {"filesystems": out, "storage_facts": bool(facts), "storage_volumes_unmounted": missing}


def _timer_state(name):
    rc, out, _ = _run(["systemctl", "show", name, "-p", "ActiveState", "-p", "UnitFileState", "-p",
                       "LoadState", "-p", "NextElapseUSecRealtime"])
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {"active": props.get("ActiveState"), "enabled": props.get("UnitFileState"),
            "loaded": props.get("LoadState"), "next": props.get("NextElapseUSecRealtime") or None}


def job_runs(unit, job, since):
    """(successes, failures) of a job's runs since the Unix time ``since``, from the journal."""
    rc, out, _ = _run(["journalctl", "-u", unit, "--since", "@%d" % int(since), "-o", "cat", "--no-pager", "-q"],
                      timeout=30)
    if rc != 0:
        return None, None
    ok = len(re.findall(r"^job %s: success" % re.escape(job), out, re.M))
    bad = len(re.findall(r"^job %s: failure" % re.escape(job), out, re.M))
    return ok, bad


def collect_jobs(config_paths, history_since=None):
    """Every job of every backup_status.py-style config present on this host."""
    jobs, configs = [], []
    timer_times = parse_timers(_run(["systemctl", "list-timers", "--all", "-o", "json"])[1])
    for pattern in config_paths or []:
        for path in sorted(glob.glob(pattern)):
            cfg = _read_json(path)
            if not cfg or "jobs" not in cfg:
                continue
            configs.append(path)
            prefix = cfg.get("unit_prefix") or _unit_prefix(path)
            # replica.json names its units ({"timer": "...-%s.timer", "service": "...@%s.service"}) and does
            # not count runs: a file pull every few seconds is no "backup run" of the success rate
            units = cfg.get("units") or {}
            for job, spec in sorted(cfg["jobs"].items()):
                st = _read_json(os.path.join(cfg.get("status_dir", ""), job + ".json")) or {}
                timer_unit = units["timer"] % job if "timer" in units else "%s%s.timer" % (prefix, job)
                service_unit = units["service"] % job if "service" in units else "%s%s.service" % (prefix, job)
                count = history_since and units.get("count_runs", True)
                runs_ok, runs_failed = job_runs(service_unit, job, history_since) if count else (None, None)
                jobs.append({"job": job, "config": path, "kind": spec.get("kind"), "system": spec.get("system"),
                             "max_age": spec.get("max_age"), "last_success": st.get("last_success"),
                             "last_run_end": st.get("last_run_end"), "outcome": st.get("outcome"),
                             "last_rc": st.get("last_rc"), "consecutive_failures": st.get("consecutive_failures", 0),
                             "quarantine": st.get("quarantine"), "verify": st.get("verify"),
                             "damaged_snapshots": st.get("damaged_snapshots"),
                             "verify_period_days": spec.get("verify_period_days"),
                             "duration": st.get("last_success_duration_seconds"), "size_bytes": st.get("size_bytes"),
                             "timer_unit": timer_unit, "timer": _timer_state(timer_unit),
                             "first_due": first_due(timer_times, timer_unit),
                             "runs_since": history_since, "runs_ok": runs_ok, "runs_failed": runs_failed})
    return {"job_configs": configs, "jobs": jobs}


def _unit_prefix(config_path):
    # /etc/archive-dr/backup-jobs.json -> archive-dr-backup-
    base = os.path.basename(config_path)
    kind = base[:-len("-jobs.json")] if base.endswith("-jobs.json") else "backup"
    return "archive-dr-%s-" % kind


# ------------------------------------------------------------------ DR history (release, verification and alert logs)
def _text(v, limit=MAX_TEXT):
    return None if v is None else str(v)[:limit]


def _stamp(rec, key):
    """rec[key] as a float when ``rec`` is an object with a number there, else None."""
    if not isinstance(rec, dict) or isinstance(rec.get(key), bool):
        return None
    try:
        return float(rec[key])
    except (KeyError, TypeError, ValueError):
        return None


def _jsonl(path):
    """Each non-blank line of a JSON-lines log, parsed (None for a line that does not parse);
    nothing when the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        yield None
    except OSError:
        return


def read_log(path, key, since, limit, entries):
    """The entries of the records of a JSON-lines log whose ``key`` (Unix time) is at or after ``since``
    (None: all): ``entries(record, time)`` turns a record into a list of entries. The newest ``limit``
    entries are kept, oldest first. ``{entries, dropped, malformed}``: entries over the limit, lines
    without an object and a time. A missing log is an empty one."""
    kept = collections.deque(maxlen=limit)
    total = malformed = 0
    for rec in _jsonl(path):
        t = _stamp(rec, key)
        if t is None:
            malformed += 1
            continue
        if since is not None and t < float(since):
            continue
        for entry in entries(rec, t):
            total += 1
            kept.append(entry)
    return {"entries": list(kept), "dropped": total - len(kept), "malformed": malformed}


def _texts(v, limit=MAX_FINDINGS):
    return [_text(x) for x in v[:limit]] if isinstance(v, list) else []


def quarantine_entry(q):
    """A quarantine (status ``quarantine`` or a release record's), bounded: its times, the findings that
    started it (at most MAX_FINDINGS), what the gate judged (the scalar fields)."""
    if not isinstance(q, dict) or not q:
        return None
    out = {k: v for k, v in q.items() if v is None or isinstance(v, (bool, int, float))}
    out.update({k: _text(v) for k, v in q.items() if isinstance(v, str)})
    out["findings"] = _texts(q.get("findings"))
    if isinstance(q.get("findings"), list) and len(q["findings"]) > MAX_FINDINGS:
        out["findings_dropped"] = len(q["findings"]) - MAX_FINDINGS
    return out


def release_entry(job):
    """entries() of read_log for ``<job>.releases.jsonl`` (replica_tool.py cmd_release): who released
    which quarantine, when, why, into which snapshot."""
    def entries(rec, t):
        return [{"time": t, "job": job, "by": _text(rec.get("by")), "reason": _text(rec.get("reason")),
                 "snapshot": _text(rec.get("snapshot")), "points": rec.get("points"),
                 "quarantine": quarantine_entry(rec.get("quarantine"))}]
    return entries


def verify_entry(rec, t=None):
    """One verification run (replica_tool.py cmd_verify's result), bounded: damaged objects are counted."""
    t = _stamp(rec, "time") if t is None else t
    if t is None:
        return None
    out = {"time": t, "outcome": _text(rec.get("outcome")), "subset": _text(rec.get("subset")),
           "snapshot": _text(rec.get("snapshot")), "working_ok": rec.get("working_ok"),
           "duration_seconds": rec.get("duration_seconds")}
    for k in ("working_damaged", "snapshot_damaged"):
        out[k] = len(rec[k]) if isinstance(rec.get(k), list) else 0
    for k in ("repair", "working_after", "snapshot_result"):
        if rec.get(k) is not None:
            out[k] = _text(rec[k])
    return out


def damaged_entry(damaged):
    """``damaged_snapshots`` of a job's status: {snapshot: {found, message, objects (a count)}}."""
    out = {}
    for name, d in (damaged.items() if isinstance(damaged, dict) else ()):
        d = d if isinstance(d, dict) else {}
        out[str(name)] = {"found": _stamp(d, "found"), "message": _text(d.get("message")),
                          "objects": len(d["objects"]) if isinstance(d.get("objects"), list) else 0}
    return out


def collect_dr_history(config_paths, since=None):
    """The DR history of every job of the configs (backup_status.py-style job configs and the replica
    config, ``{status_dir, jobs}``) at or after ``since``: from ``<status_dir>/<job>.releases.jsonl`` the
    operator releases, from ``<status_dir>/<job>.verify.jsonl`` (and the status's ``verify``) the
    verification runs, from the status the open quarantine and the damaged snapshots. Jobs without
    any of these are left out; missing files are empty logs."""
    jobs, configs, seen = [], [], set()
    for pattern in config_paths or []:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            cfg = _read_json(path)
            if real in seen or not isinstance(cfg, dict) or not isinstance(cfg.get("jobs"), dict) \
                    or not cfg.get("status_dir"):
                continue
            seen.add(real)
            configs.append(path)
            for job in sorted(cfg["jobs"]):
                base = os.path.join(str(cfg["status_dir"]), job)
                st = _read_json(base + ".json")
                st = st if isinstance(st, dict) else {}
                rel = read_log(base + ".releases.jsonl", "time", since, MAX_RELEASES, release_entry(job))
                ver = read_log(base + ".verify.jsonl", "time", since, MAX_VERIFY_RUNS,
                               lambda rec, t: [verify_entry(rec, t)])
                current = verify_entry(st.get("verify")) if isinstance(st.get("verify"), dict) else None
                if current and (since is None or current["time"] >= float(since)) \
                        and current["time"] not in {v["time"] for v in ver["entries"]}:
                    ver["entries"] = sorted(ver["entries"] + [current], key=lambda v: v["time"])
                    if len(ver["entries"]) > MAX_VERIFY_RUNS:
                        ver["dropped"] += 1
                        ver["entries"] = ver["entries"][1:]
                quarantine, damaged = quarantine_entry(st.get("quarantine")), damaged_entry(st.get("damaged_snapshots"))
                if not (rel["entries"] or ver["entries"] or current or quarantine or damaged):
                    continue
                spec = cfg["jobs"][job] if isinstance(cfg["jobs"][job], dict) else {}
                jobs.append({"job": job, "config": path, "kind": spec.get("kind"),
                             "quarantine": quarantine, "verify": current, "damaged_snapshots": damaged,
                             "releases": rel["entries"], "releases_dropped": rel["dropped"],
                             "verify_runs": ver["entries"], "verify_runs_dropped": ver["dropped"],
                             "malformed_lines": rel["malformed"] + ver["malformed"]})
    return {"since": since, "configs": configs, "jobs": jobs}


def alert_entries(rec, received):
    """entries() of read_log for the alert log: one entry per alert of a webhook notification (v4)."""
    payload = rec.get("payload") if isinstance(rec.get("payload"), dict) else {}
    out = []
    for a in payload.get("alerts") if isinstance(payload.get("alerts"), list) else []:
        if not isinstance(a, dict):
            continue
        labels = a.get("labels") if isinstance(a.get("labels"), dict) else {}
        notes = a.get("annotations") if isinstance(a.get("annotations"), dict) else {}
        out.append({"received": received, "status": _text(a.get("status") or payload.get("status"), 20),
                    "alertname": _text(labels.get("alertname"), 200), "severity": _text(labels.get("severity"), 40),
                    "instance": _text(labels.get("instance"), 200), "job": _text(labels.get("job"), 200),
                    "summary": _text(notes.get("summary")), "starts_at": _text(a.get("startsAt"), 40)})
    return out


def collect_alerts(log_dir, since=None):
    """The alert notifications received at or after ``since`` from ``<log_dir>/alerts.jsonl``, one entry per
    alert, the newest MAX_ALERTS kept: ``{log, present, since, entries, dropped, malformed}``."""
    path = os.path.join(log_dir, ALERT_LOG) if log_dir else None
    res = read_log(path, "received", since, MAX_ALERTS, alert_entries) if path else {
        "entries": [], "dropped": 0, "malformed": 0}
    res.update(log=path, present=bool(path) and os.path.isfile(path), since=since)
    return res


def collect_postgres():
    rc, out, _ = _run(["pg_lsclusters", "-h"])
    if rc != 0:
        return None
    clusters = []
    for line in out.splitlines():
        p = line.split()
        if len(p) < 4:
            continue
        c = {"version": p[0], "cluster": p[1], "port": int(p[2]), "status": p[3]}
        if p[3].startswith("online"):
            sql = ("select pg_is_in_recovery(), "
                   "coalesce((select json_agg(json_build_object('client', client_addr::text, 'name', application_name, "
                   "'state', state, 'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), "
                   "'replay_lag', extract(epoch from replay_lag))) from pg_stat_replication "
                   "where not pg_is_in_recovery()), '[]'::json), "
                   "(select status from pg_stat_wal_receiver), "
                   "case when pg_is_in_recovery() then pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
                   "pg_last_wal_replay_lsn()) end, "
                   "case when pg_is_in_recovery() then extract(epoch from now() - pg_last_xact_replay_timestamp()) end")
            rc2, out2, err2 = _run(["runuser", "-u", "postgres", "--", "psql", "-X", "-At", "-F", "\t",
                                    "-p", str(c["port"]), "-d", "postgres", "-c", sql])
            if rc2 == 0 and out2.strip():
                f = out2.rstrip("\n").split("\t")
                c["in_recovery"] = f[0] == "t"
                c["replicas"] = json.loads(f[1]) if f[1] else []
                c["wal_receiver"] = f[2] or None
                c["replay_gap_bytes"] = float(f[3]) if f[3] else None
                c["replay_age_seconds"] = float(f[4]) if f[4] else None
            else:
                c["error"] = (err2 or "").strip()[-300:]
        clusters.append(c)
    return clusters


def collect_metrics(textfile_dirs, prefixes):
    gauges = []
    for d in textfile_dirs or []:
        for path in sorted(glob.glob(os.path.join(d, "*.prom"))):
            try:
                with open(path, encoding="utf-8") as f:
                    parsed = parse_prom_gauges(f.read())
            except OSError:
                continue
            for (name, labels), value in parsed.items():
                if any(name.startswith(p) for p in prefixes):
                    gauges.append({"name": name, "labels": dict(labels), "value": value, "file": path})
    return gauges


def cert_not_after(path):
    rc, out, _ = _run(["openssl", "x509", "-noout", "-enddate", "-subject", "-in", path], timeout=10)
    if rc != 0:
        return None, None
    na = subj = None
    for line in out.splitlines():
        if line.startswith("notAfter="):
            try:
                import calendar
                na = calendar.timegm(time.strptime(line.split("=", 1)[1].strip(), "%b %d %H:%M:%S %Y %Z"))
            except ValueError:
                pass
        elif line.startswith("subject="):
            subj = line.split("=", 1)[1].strip()
    return na, subj


def collect_tunnel(helper, state_file, cert_paths):
    tunnel = None
    if helper and os.path.exists(helper):
        rc, out, _ = _run([helper, "status"], timeout=20)
        if rc == 0:
            try:
                tunnel = json.loads(out)
            except ValueError:
                tunnel = None
    if tunnel is None and state_file:
        tunnel = _read_json(state_file)
    certs = []
    paths = {}
    for label, c in ((tunnel or {}).get("certs") or {}).items():
        paths[c.get("path")] = "tunnel-" + label
    for p in cert_paths or []:
        for path in sorted(glob.glob(p)):
            paths.setdefault(path, os.path.basename(path))
    for path, label in sorted(paths.items()):
        if not path:
            continue
        na, subj = cert_not_after(path)
        certs.append({"path": path, "label": label, "not_after": na, "subject": subj})
    if tunnel is not None:
        tunnel = {k: tunnel.get(k) for k in ("up", "daemon", "ike_state", "child_sas", "ike_established_seconds",
                                              "child_installed_seconds", "bytes_in", "bytes_out", "peer", "site",
                                              "time")}
    return tunnel, certs


def collect_time():
    rc, out, err = _run(["chronyc", "-n", "tracking"])
    if rc != 0:
        return {"error": (err or out).strip()[-200:] or "chronyc rc=%d" % rc}
    return parse_chrony_tracking(out)


def collect_failed_units():
    rc, out, _ = _run(["systemctl", "list-units", "--failed", "--no-legend", "--plain", "--no-pager"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def collect_security(lynis_timeout=0):
    res = {}
    rc, out, err = _run(["sshd", "-T"]) if shutil.which("sshd") else _run(["/usr/sbin/sshd", "-T"])
    res["sshd"] = parse_sshd_t(out) if rc == 0 else {"error": (err or "").strip()[-200:]}
    rc, out, err = _run(["nft", "-j", "list", "chains"])
    res["nft_input_chains"] = parse_nft_input_policies(out) if rc == 0 else None
    rc, out, _ = _run(["ss", "-Hltun"])
    res["listening"] = parse_ss(out) if rc == 0 else None
    if lynis_timeout:
        rc, out, err = _run(["lynis", "audit", "system", "--quick", "--no-colors", "--no-log", "--cronjob",
                             "--report-file", "/var/tmp/archive-dr-lynis.dat"], timeout=int(lynis_timeout))
        try:
            with open("/var/tmp/archive-dr-lynis.dat", encoding="utf-8") as f:
                res["lynis"] = parse_lynis_report(f.read())
            os.unlink("/var/tmp/archive-dr-lynis.dat")
        except OSError:
            res["lynis"] = {"error": "lynis rc=%d %s" % (rc, (err or "").strip()[-200:])}
    return res


def collect_media(register_paths, today):
    out = []
    for pattern in register_paths or []:
        for path in sorted(glob.glob(pattern)):
            reg = _read_json(path)
            if not reg:
                continue
            for m in reg.get("media", []):
                due = (m.get("next_check_due") or "") <= today
                out.append({"register": path, "label": m.get("label"), "next_check_due": m.get("next_check_due"),
                            "last_check": m.get("last_check"), "last_result": m.get("last_result"),
                            "due": due or m.get("last_result") == "FAIL"})
    return out


def collect(opts):
    """Everything the inspection reads on this host (read-only)."""
    now = time.time()
    res = {"time": now}
    res.update(collect_filesystems(opts.get("storage_facts_file")))
    since = opts.get("job_history_since") or (now - 31 * 86400)
    res.update(collect_jobs(opts.get("job_configs"), since))
    res["dr_history"] = collect_dr_history(opts.get("job_configs"), since)
    res["alerts"] = collect_alerts(opts.get("alert_log_dir", DEFAULT_ALERT_LOG_DIR), since)
    res["postgres"] = collect_postgres()
    res["metrics"] = collect_metrics(opts.get("textfile_dirs"), opts.get("metric_prefixes") or ["archive_dr_"])
    res["tunnel"], res["certificates"] = collect_tunnel(opts.get("tunnel_helper"), opts.get("tunnel_state_file"),
                                                        opts.get("certificates"))
    res["time_sync"] = collect_time()
    res["failed_units"] = collect_failed_units()
    res["security"] = collect_security(opts.get("lynis_timeout") or 0)
    res["media"] = collect_media(opts.get("media_registers"), time.strftime("%Y-%m-%d", time.gmtime(now)))
    return res


# ------------------------------------------------------------------ evaluation (pure)
def _f(findings, severity, host, check, item, message, value=None, threshold=None):
    findings.append({"severity": severity, "host": host, "check": check, "item": item, "message": message,
                     "value": value, "threshold": threshold})


def _age_text(seconds):
    if seconds is None:
        return "never"
    s = abs(seconds)
    if s < 120:
        return "%d s" % s
    if s < 7200:
        return "%.0f min" % (s / 60)
    if s < 172800:
        return "%.1f h" % (s / 3600)
    return "%.1f d" % (s / 86400)


def _when(unix_time):
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(unix_time)))


def evaluate(host, c, thresholds=None, now=None):
    """Findings for one host's collected state (pure)."""
    t = dict(DEFAULT_THRESHOLDS)
    t.update(thresholds or {})
    now = c.get("time") if now is None else now
    F = []
    # --- capacity
    for fs in c.get("filesystems", []):
        mp = fs["mount_point"]
        if fs["free_bytes"] <= 0 or fs["used_pct"] >= t["fs_used_pct_crit"]:
            _f(F, "critical", host, "capacity", mp, "filesystem %s is %.1f%% full (%d bytes free)"
               % (mp, fs["used_pct"], fs["free_bytes"]), fs["used_pct"], t["fs_used_pct_crit"])
        elif fs["used_pct"] >= t["fs_used_pct_warn"]:
            _f(F, "warning", host, "capacity", mp, "filesystem %s is %.1f%% full" % (mp, fs["used_pct"]),
               fs["used_pct"], t["fs_used_pct_warn"])
    for mp in c.get("storage_volumes_unmounted", []):
        _f(F, "critical", host, "capacity", mp, "storage volume %s is not mounted" % mp)
    # --- jobs (backup, verify, pull)
    for j in c.get("jobs", []):
        name = j["job"]
        age = (now - float(j["last_success"])) if j.get("last_success") else None
        timer = j.get("timer") or {}
        if timer.get("loaded") == "not-found":
            _f(F, "critical", host, "job-timer", name, "timer %s does not exist" % j["timer_unit"])
        elif timer.get("active") != "active" or timer.get("enabled") not in ("enabled", "static", "enabled-runtime"):
            _f(F, "critical", host, "job-timer", name, "timer %s is %s/%s: the job will not run"
               % (j["timer_unit"], timer.get("active"), timer.get("enabled")), timer.get("active"), "active")
        if j.get("max_age"):
            health = job_health(j.get("last_success"), j["max_age"], now, j.get("first_due"))
            if health == "pending":
                _f(F, "info", host, "job-age", name, "job %s has not run yet: first due %s, overdue after %s"
                   % (name, _when(j["first_due"]), _when(float(j["first_due"]) + float(j["max_age"]))),
                   None, j["max_age"])
            elif age is None:
                _f(F, "critical", host, "job-age", name, "job %s has never succeeded" % name, None, j["max_age"])
            elif age > float(j["max_age"]):
                _f(F, "critical", host, "job-age", name, "job %s: last success %s ago, threshold %s"
                   % (name, _age_text(age), _age_text(j["max_age"])), round(age), j["max_age"])
        if j.get("quarantine"):
            q = j["quarantine"]
            _f(F, "critical", host, "job-quarantine", name, "job %s: pulls held in quarantine since %s (no snapshot, "
               "retention frozen) until `archive-dr release %s`: %s" % (
                   name, _when(q.get("since")), name, "; ".join(q.get("findings") or [])), q.get("points"), None)
        if j.get("verify_period_days"):
            v = j.get("verify") or {}
            if j.get("damaged_snapshots"):
                _f(F, "critical", host, "job-verify", name, "job %s: snapshot(s) found damaged by verification (history is "
                   "never rewritten; restore from another point): %s" % (name, "; ".join(
                       "%s: %s" % (n, d.get("message", "")) for n, d in sorted(j["damaged_snapshots"].items()))),
                   len(j["damaged_snapshots"]), 0)
            if v.get("outcome") == "damaged" and not j.get("damaged_snapshots"):
                _f(F, "critical", host, "job-verify", name, "job %s: verification found damage the re-pull did not "
                   "repair: %s" % (name, v.get("working_after") or v.get("working")), None, None)
            elif v.get("outcome") == "repaired":
                _f(F, "warning", host, "job-verify", name, "job %s: verification on %s found damage in the working copy, "
                   "re-pulled from geo: %s" % (name, _when(v["time"]), v.get("repair")), None, None)
            if not v:
                _f(F, "info", host, "job-verify", name, "job %s: not verified yet (a share of the copy is read daily, "
                   "all of it within %s days)" % (name, j["verify_period_days"]), None, None)
            elif now - float(v["time"]) > 2 * 86400:
                _f(F, "warning", host, "job-verify", name, "job %s: last verification %s ago, expected daily"
                   % (name, _age_text(now - float(v["time"]))), round(now - float(v["time"])), 86400)
        if j.get("outcome") == "failure" and (age is None or age <= float(j.get("max_age") or 0) or not j.get("max_age")):
            _f(F, t["job_failure_severity"], host, "job-outcome", name, "job %s: last run failed (rc=%s, %s "
               "consecutive failures)" % (name, j.get("last_rc"), j.get("consecutive_failures")), j.get("last_rc"), 0)
    # --- DR history: operator releases of quarantined pulls since the previous inspection
    hist = c.get("dr_history") or {}
    for h in hist.get("jobs") or []:
        rel = h.get("releases") or []
        if rel:
            total = len(rel) + int(h.get("releases_dropped") or 0)
            _f(F, "info", host, "job-release", h["job"], "job %s: %d quarantined pull(s) released since %s%s: %s" % (
                h["job"], total, _when(hist["since"]) if hist.get("since") else "the start of the log",
                " (the newest %d)" % RELEASES_SHOWN if total > RELEASES_SHOWN else "", "; ".join(
                    "%s by %s (%s), snapshot %s" % (_when(r["time"]), r.get("by"), r.get("reason"), r.get("snapshot"))
                    for r in rel[-RELEASES_SHOWN:])), total, None)
    # --- replication (PostgreSQL)
    pgs = c.get("postgres") or []
    for cl in pgs:
        cid = "pg%s/%s" % (cl["version"], cl["cluster"])
        if not cl["status"].startswith("online"):
            _f(F, "critical", host, "replication", cid, "PostgreSQL %s is %s" % (cid, cl["status"]))
            continue
        if cl.get("error"):
            _f(F, "warning", host, "replication", cid, "cannot query %s: %s" % (cid, cl["error"]))
            continue
        if cl.get("in_recovery"):
            if cl.get("wal_receiver") != "streaming":
                _f(F, "critical", host, "replication", cid, "standby %s is not streaming (WAL receiver: %s)"
                   % (cid, cl.get("wal_receiver")), cl.get("wal_receiver"), "streaming")
            gap = cl.get("replay_gap_bytes")
            if gap is not None and gap > t["pg_lag_bytes_crit"]:
                _f(F, "critical", host, "replication", cid, "standby replay is %d bytes behind" % gap, gap,
                   t["pg_lag_bytes_crit"])
            elif gap is not None and gap > t["pg_lag_bytes_warn"]:
                _f(F, "warning", host, "replication", cid, "standby replay is %d bytes behind" % gap, gap,
                   t["pg_lag_bytes_warn"])
        else:
            reps = cl.get("replicas") or []
            streaming = [r for r in reps if r.get("state") == "streaming"]
            if t["replication_expected"] and not streaming:
                _f(F, "critical", host, "replication", cid, "primary %s has no streaming standby" % cid, 0, 1)
            for r in reps:
                lag = r.get("lag_bytes")
                who = r.get("name") or r.get("client")
                if lag is not None and lag > t["pg_lag_bytes_crit"]:
                    _f(F, "critical", host, "replication", "%s->%s" % (cid, who), "standby %s is %d bytes behind"
                       % (who, lag), lag, t["pg_lag_bytes_crit"])
                elif lag is not None and lag > t["pg_lag_bytes_warn"]:
                    _f(F, "warning", host, "replication", "%s->%s" % (cid, who), "standby %s is %d bytes behind"
                       % (who, lag), lag, t["pg_lag_bytes_warn"])
    # --- metric thresholds (replica lag / age gauges, any archive_dr_* gauge)
    for g in c.get("metrics", []):
        spec = (t.get("metric_thresholds") or {}).get(g["name"])
        if not spec:
            continue
        item = g["name"] + ("{%s}" % ",".join("%s=%s" % kv for kv in sorted(g["labels"].items())) if g["labels"] else "")
        v = g["value"]
        if spec.get("crit") is not None and v > float(spec["crit"]):
            _f(F, "critical", host, spec.get("check", "replication"), item, "%s = %g > %g" % (item, v, spec["crit"]),
               v, spec["crit"])
        elif spec.get("warn") is not None and v > float(spec["warn"]):
            _f(F, "warning", host, spec.get("check", "replication"), item, "%s = %g > %g" % (item, v, spec["warn"]),
               v, spec["warn"])
    # --- tunnel and certificates
    tun = c.get("tunnel")
    if t.get("tunnel_expected") and tun is None:
        _f(F, "critical", host, "tunnel", "tunnel", "no tunnel facts on a gateway")
    if tun is not None:
        if tun.get("daemon") != "up":
            _f(F, "critical", host, "tunnel", "ike", "IKE daemon is not answering")
        elif not tun.get("up"):
            _f(F, "critical", host, "tunnel", "child-sa", "tunnel to %s is down (IKE %s, %s CHILD_SA)"
               % (tun.get("peer"), tun.get("ike_state"), tun.get("child_sas")), tun.get("child_sas"), 1)
    for cert in c.get("certificates", []):
        if cert.get("not_after") is None:
            _f(F, "critical", host, "certificate", cert["path"], "cannot read certificate %s" % cert["path"])
            continue
        days = (cert["not_after"] - now) / 86400.0
        cert["days_left"] = round(days, 1)
        if days <= t["cert_days_crit"]:
            _f(F, "critical", host, "certificate", cert["path"], "certificate %s (%s) %s in %.1f days"
               % (cert["label"], cert["path"], "expired" if days < 0 else "expires", days), round(days, 1),
               t["cert_days_crit"])
        elif days <= t["cert_days_warn"]:
            _f(F, "warning", host, "certificate", cert["path"], "certificate %s (%s) expires in %.1f days"
               % (cert["label"], cert["path"], days), round(days, 1), t["cert_days_warn"])
    # --- time sync
    ts = c.get("time_sync") or {}
    if ts.get("error"):
        _f(F, "critical", host, "time", "chrony", "chronyc tracking failed: %s" % ts["error"])
    else:
        if ts.get("leap_status") not in ("Normal", None):
            _f(F, "critical", host, "time", "chrony", "chrony is not synchronised (leap status %s)"
               % ts.get("leap_status"), ts.get("leap_status"), "Normal")
        off = ts.get("offset_seconds")
        if off is not None and abs(off) > t["time_offset_crit"]:
            _f(F, "critical", host, "time", "offset", "clock offset %.3f s" % off, off, t["time_offset_crit"])
        elif off is not None and abs(off) > t["time_offset_warn"]:
            _f(F, "warning", host, "time", "offset", "clock offset %.3f s" % off, off, t["time_offset_warn"])
    # --- failed units
    for unit in c.get("failed_units", []):
        crit = any(unit.startswith(p) for p in t["critical_units"])
        _f(F, "critical" if crit else "warning", host, "units", unit, "unit %s has failed" % unit)
    # --- security baseline
    sec = c.get("security") or {}
    sshd = sec.get("sshd") or {}
    if sshd.get("error") or not sshd:
        _f(F, "warning", host, "security", "sshd", "cannot read the sshd configuration: %s" % sshd.get("error"))
    else:
        if sshd.get("passwordauthentication") != "no":
            _f(F, "critical", host, "security", "sshd", "sshd allows password logins")
        if sshd.get("kbdinteractiveauthentication", "no") != "no":
            _f(F, "critical", host, "security", "sshd", "sshd allows keyboard-interactive logins")
        if sshd.get("permitrootlogin") == "yes":
            _f(F, "critical", host, "security", "sshd", "sshd allows root logins with a password")
        if sshd.get("permitemptypasswords", "no") != "no":
            _f(F, "critical", host, "security", "sshd", "sshd allows empty passwords")
    chains = sec.get("nft_input_chains")
    if chains is None:
        _f(F, "critical", host, "security", "nftables", "cannot list nftables chains")
    elif not any(p == "drop" for _fam, _tab, _ch, p in chains):
        _f(F, "critical", host, "security", "nftables", "no input chain with policy drop (default-deny missing)",
           [list(x) for x in chains], "drop")
    allowed = set(int(p) for p in t.get("allowed_ports") or [])
    for proto, addr, port in sec.get("listening") or []:
        if is_loopback(addr) or port in allowed:
            continue
        _f(F, "warning", host, "security", "%s/%d" % (proto, port), "unexpected listener %s %s:%d"
           % (proto, addr, port), port, sorted(allowed))
    ly = sec.get("lynis")
    if ly:
        if ly.get("error"):
            _f(F, "info", host, "security", "lynis", ly["error"])
        else:
            _f(F, "info", host, "security", "lynis", "lynis hardening index %s, %d warnings, %d suggestions"
               % (ly.get("hardening_index"), len(ly.get("warnings", [])), ly.get("suggestions", 0)),
               ly.get("hardening_index"))
            for w in ly.get("warnings", []):
                _f(F, "warning", host, "security", "lynis-%s" % (w[0] if w else "?"), "lynis: %s" % " ".join(w))
    # --- offline media
    for m in c.get("media", []):
        if m.get("last_result") == "FAIL":
            _f(F, "critical", host, "media", m["label"], "offline medium %s failed its last read-back check (%s)"
               % (m["label"], m.get("last_check")))
        elif m.get("due"):
            _f(F, "warning", host, "media", m["label"], "offline medium %s is due for re-check (due %s)"
               % (m["label"], m.get("next_check_due")), m.get("next_check_due"))
    return F


# ------------------------------------------------------------------ forecast (pure)
def forecast(points, capacity, min_samples=2, now=None):
    """Least-squares trend of used bytes; days until full from the newest sample.

    ``points``: [(unix_time, used_bytes)]. Returns ``{samples, span_days,
    bytes_per_day, days_until_full}`` (``days_until_full`` None when the trend
    is flat or shrinking, or there are too few distinct samples)."""
    pts = sorted((float(t), float(u)) for t, u in points)
    res = {"samples": len(pts), "span_days": 0.0, "bytes_per_day": None, "days_until_full": None}
    if len(pts) < max(2, int(min_samples)) or pts[-1][0] - pts[0][0] <= 0:
        return res
    n = len(pts)
    mt = sum(p[0] for p in pts) / n
    mu = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mt) ** 2 for p in pts)
    sxy = sum((p[0] - mt) * (p[1] - mu) for p in pts)
    slope = sxy / sxx if sxx else 0.0               # bytes per second
    res["span_days"] = round((pts[-1][0] - pts[0][0]) / 86400.0, 3)
    res["bytes_per_day"] = slope * 86400.0
    if slope > 0:
        t_last = pts[-1][0] if now is None else float(now)
        fitted_now = mu + slope * (t_last - mt)
        remaining = float(capacity) - max(fitted_now, pts[-1][1])
        res["days_until_full"] = max(0.0, remaining / slope / 86400.0)
    return res


def forecast_findings(host, mount, fc, thresholds=None):
    t = dict(DEFAULT_THRESHOLDS)
    t.update(thresholds or {})
    F = []
    d = fc.get("days_until_full")
    if d is None or fc.get("span_days", 0) < float(t["forecast_min_span_days"]):
        return F        # too little history for a trend worth alarming on (still shown in the report)
    if d <= t["fs_days_full_crit"]:
        _f(F, "critical", host, "forecast", mount, "%s will be full in %.0f days at %.1f MB/day"
           % (mount, d, fc["bytes_per_day"] / 1e6), round(d, 1), t["fs_days_full_crit"])
    elif d <= t["fs_days_full_warn"]:
        _f(F, "warning", host, "forecast", mount, "%s will be full in %.0f days at %.1f MB/day"
           % (mount, d, fc["bytes_per_day"] / 1e6), round(d, 1), t["fs_days_full_warn"])
    return F
