#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Synchronous replication to the DR standby that degrades to asynchronous (stdlib only).

Installed on the primary (geo-archive) as ``/usr/local/lib/archive-dr/sync_guard.py`` by the
replica role (entry point ``source_primary``, ``replica_pg_synchronous: true``) and run as the
postgres user by ``archive-dr-sync-guard.service`` (Restart=always)::

    sync_guard.py [--config PATH] run       check every check_interval s, switch the mode (the service)
    sync_guard.py [--config PATH] once      one check decided as at a start, and its switch (an operator's)
    sync_guard.py [--config PATH] status    JSON: mode, since, reason, and what PostgreSQL applies now
    sync_guard.py [--config PATH] release [--reason TEXT]
                                            asynchronous now (ExecStopPost: a stopped guard leaves
                                            nothing that can block a commit)

The guard owns ``synchronous_standby_names``; Ansible never sets it. In mode ``sync`` it is
``'"<standby>"'``: every commit waits until the standby has flushed (synchronous_commit = on) or
applied (remote_apply) it, so an acknowledged commit exists at miyun (RPO 0). When the standby
has not been heard from for ``degrade_after`` seconds (not in pg_stat_replication, not streaming,
or its status replies stopped: a cut WAN leaves the walsender "streaming" until wal_sender_timeout)
the guard writes ``''`` and reloads: the checkpointer releases every commit waiting for the
standby, and the archive carries on asynchronously (mode ``degraded``). Once the standby streams
again and is caught up (flush/replay lag <= catchup_bytes) for ``return_checks`` checks in a row,
the guard returns to ``sync``. The decision is :func:`decide`, a pure function.

The value is written to a drop-in of the cluster's configuration directory (``conf_file``, under
/etc/postgresql), never with ALTER SYSTEM: postgresql.auto.conf lies in the data directory, so
every pg_basebackup (the standby's rebuild, the failback's rebuild of geo) would copy the name to
the other node, and a promoted miyun would then wait for a standby called miyun_store for ever.
An ALTER SYSTEM value found overriding the drop-in is reset (``ALTER SYSTEM RESET``).

The degrade runs here, not in PostgreSQL: while the guard is not running nothing degrades. The
unit restarts it (Restart=always, no start limit) and its ExecStopPost runs ``release``, so a
stopped or crashed guard leaves the primary asynchronous, never blocked; a guard that starts
decides at once (sync only when the standby streams and is caught up).

Transitions are printed (journal) with their reason and kept in the state file (the last
:data:`HISTORY` of them); metrics go to ``metrics_file`` (the role links it into the node_exporter
textfile directory): archive_dr_replica_sync_mode, _sync_degraded_total,
_sync_last_change_timestamp_seconds, _sync_guard_last_check_timestamp_seconds, _sync_guard_error.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

DEFAULT_CONFIG = "/etc/archive-dr/sync-guard.json"
MODES = ("sync", "degraded")
COMMIT_LEVELS = ("on", "remote_apply")
HISTORY = 100                 # transitions kept in the state file
PERSIST_EVERY = 10.0          # seconds between rewrites of the state and metrics files without a change
NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,63}$")
AUTO_CONF = "postgresql.auto.conf"


# ---------------------------------------------------------------- configuration
@dataclasses.dataclass(frozen=True)
class Policy:
    degrade_after: float = 5.0      # seconds without hearing from a streaming standby before degrading
    check_interval: float = 1.0
    catchup_bytes: int = 16 * 1024 * 1024   # lag at or below which the standby counts as caught up
    return_checks: int = 2          # consecutive caught-up checks before returning to sync


def _number(cfg, key, default, path, low, whole=False, above=False):
    """cfg[key] (or the default) when it is a number (whole: an integer) >= low (above: > low)."""
    value = cfg.get(key, default)
    typed = isinstance(value, int) if whole else isinstance(value, (int, float))
    if isinstance(value, bool) or not typed or (value <= low if above else value < low):
        raise ValueError("%s: %s must be a %s %s %s, got %r" % (
            path, key, "whole number" if whole else "number", ">" if above else ">=", low, value))
    return value


def check_config(cfg, path="config"):
    """The configuration with its defaults, or ValueError naming the key (pure)."""
    if not isinstance(cfg, dict):
        raise ValueError("%s: expected a JSON object, got %s" % (path, type(cfg).__name__))
    missing = [k for k in ("standby", "conf_file", "state_file", "metrics_file") if not cfg.get(k)]
    if missing:
        raise ValueError("%s: missing %s" % (path, ", ".join(missing)))
    if not isinstance(cfg["standby"], str) or not NAME_RE.match(cfg["standby"]):
        raise ValueError("%s: standby must be the standby's application_name ([A-Za-z0-9_], at most 63), got %r"
                         % (path, cfg["standby"]))
    out = dict(cfg)
    out["synchronous_commit"] = cfg.get("synchronous_commit", "on")
    if out["synchronous_commit"] not in COMMIT_LEVELS:
        raise ValueError("%s: synchronous_commit must be one of %s, got %r"
                         % (path, ", ".join(COMMIT_LEVELS), out["synchronous_commit"]))
    for key in ("conf_file", "state_file", "metrics_file") + (("data_dir",) if cfg.get("data_dir") else ()):
        if not isinstance(cfg[key], str) or not os.path.isabs(cfg[key]):
            raise ValueError("%s: %s must be an absolute path, got %r" % (path, key, cfg[key]))
    if not cfg["conf_file"].endswith(".conf") or os.path.basename(cfg["conf_file"]).startswith("."):
        raise ValueError("%s: conf_file must be a *.conf file PostgreSQL's include_dir reads, got %r"
                         % (path, cfg["conf_file"]))
    out["degrade_after"] = _number(cfg, "degrade_after", Policy.degrade_after, path, 0, above=True)
    out["check_interval"] = _number(cfg, "check_interval", Policy.check_interval, path, 0, above=True)
    if out["check_interval"] > out["degrade_after"]:
        raise ValueError("%s: check_interval (%s) must not exceed degrade_after (%s)"
                         % (path, out["check_interval"], out["degrade_after"]))
    out["catchup_bytes"] = _number(cfg, "catchup_bytes", Policy.catchup_bytes, path, 0, whole=True)
    out["return_checks"] = _number(cfg, "return_checks", Policy.return_checks, path, 1, whole=True)
    out["port"] = _number(cfg, "port", 5432, path, 1, whole=True)
    return out


def load_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except ValueError as e:
        raise ValueError("%s: not JSON: %s" % (path, e)) from None
    return check_config(cfg, path)


def policy_of(cfg):
    return Policy(degrade_after=float(cfg["degrade_after"]), check_interval=float(cfg["check_interval"]),
                  catchup_bytes=int(cfg["catchup_bytes"]), return_checks=int(cfg["return_checks"]))


# ---------------------------------------------------------------- the decision (pure)
@dataclasses.dataclass(frozen=True)
class Observed:
    """One look at PostgreSQL. ``reply`` is the standby's last status reply time as pg_stat_replication
    shows it: the standby sends one every wal_receiver_status_interval (1 s), so a value that stops
    changing means the standby is not heard from any more, whatever ``state`` still says."""
    ok: bool                        # PostgreSQL answered
    streaming: bool = False         # the standby is in pg_stat_replication with state 'streaming'
    reply: str | None = None
    reply_age: float | None = None  # seconds since that reply by this host's clock (the standby's clock stamps it)
    lag_bytes: int | None = None    # WAL not yet flushed (on) / applied (remote_apply) by the standby
    in_recovery: bool = False       # this node is a standby itself (failback): nothing to wait for
    state: str = ""                 # the walsender's state ('' = not connected)
    error: str = ""


def fresh_state(previous=None):
    """The state a starting guard decides from: the counters and last mode of the previous run, no
    observation (a start decides at once)."""
    previous = previous or {}
    return {"mode": previous.get("mode") if previous.get("mode") in MODES else None,
            "since": previous.get("since"), "reason": previous.get("reason", ""),
            "degraded_total": int(previous.get("degraded_total") or 0),
            "last_change": previous.get("last_change"), "history": list(previous.get("history") or [])[-HISTORY:],
            "last_alive": None, "last_reply": None, "caught_up_checks": 0, "fresh": True}


def _heard(st, obs, now, policy):
    """Update last_alive from this observation: the standby streams and sent a new status reply. A reply
    seen for the first time (a guard that just started) counts only when it is younger than degrade_after
    by this host's clock: a cut WAN leaves the walsender "streaming" with its last, ageing reply."""
    if not (obs.ok and obs.streaming and not obs.in_recovery and obs.reply):
        return
    if st.get("last_alive") is None:
        if obs.reply_age is not None and obs.reply_age < policy.degrade_after:
            st["last_alive"], st["last_reply"] = now, obs.reply
    elif obs.reply != st.get("last_reply"):
        st["last_alive"], st["last_reply"] = now, obs.reply


def _what(obs, name, silent):
    if not obs.ok:
        return "PostgreSQL not answering (%s)" % (obs.error or "no reply")
    if obs.in_recovery:
        return "this node is in recovery (a standby): no commit here to protect"
    if not obs.state:
        return "standby %s not connected" % name
    if not obs.streaming:
        return "standby %s in state %s" % (name, obs.state)
    if silent is None:
        return "standby %s streaming, %s" % (name, "no status reply yet" if obs.reply_age is None else
                                             "its last status reply %.1f s old" % obs.reply_age)
    return "standby %s streaming, %s bytes behind, last reply %.1f s ago" % (
        name, "?" if obs.lag_bytes is None else obs.lag_bytes, silent)


def _transition(st, mode, now, reason):
    if st.get("mode") == "sync" and mode == "degraded":
        st["degraded_total"] = int(st.get("degraded_total") or 0) + 1
    st.update(mode=mode, since=now, reason=reason, last_change=now, caught_up_checks=0)
    st["history"] = (list(st.get("history") or []) + [{"time": now, "mode": mode, "reason": reason}])[-HISTORY:]
    return st, ("sync" if mode == "sync" else "async")


def decide(state, observed, now, policy, name="standby"):
    """(new state, action) from the state, one observation, the time and the policy; pure.

    action: None (nothing to change), "sync" (name the standby) or "async" (name none).
    * a starting guard (state ``fresh``, or no mode yet) decides at once: sync when the standby streams
      and is caught up, degraded otherwise;
    * sync -> degraded when the standby has not been heard from (streaming with a new status reply) for
      ``degrade_after`` s: not connected, another state, replies stopped, PostgreSQL not answering or
      this node in recovery. Not before: commits wait that long at most (a reply seen first, e.g. by a
      guard that just started, counts only when younger than degrade_after);
    * degraded -> sync after ``return_checks`` consecutive checks with the standby streaming, heard from
      within degrade_after and caught up (lag <= catchup_bytes); any other check starts the count again.
    """
    st = dict(state)
    fresh = st.pop("fresh", False)
    _heard(st, observed, now, policy)
    silent = None if st.get("last_alive") is None else now - st["last_alive"]
    healthy = (observed.ok and observed.streaming and not observed.in_recovery and silent is not None
               and silent < policy.degrade_after)
    caught_up = healthy and observed.lag_bytes is not None and observed.lag_bytes <= policy.catchup_bytes
    what = _what(observed, name, silent)
    if fresh or st.get("mode") not in MODES:
        if caught_up:
            return _transition(st, "sync", now, "guard started: %s" % what)
        return _transition(st, "degraded", now, "guard started: %s%s" % (
            what, " (not caught up: more than %d bytes)" % policy.catchup_bytes if healthy else ""))
    if st["mode"] == "sync":
        if healthy:
            return st, None
        quiet_since = st["last_alive"] if st.get("last_alive") is not None else st.get("since") or now
        if now - quiet_since >= policy.degrade_after:
            return _transition(st, "degraded", now, "standby %s not heard from for %.1f s: %s; commits no "
                                                    "longer wait for it" % (name, now - quiet_since, what))
        return st, None
    if not caught_up:
        st["caught_up_checks"] = 0
        return st, None
    st["caught_up_checks"] = int(st.get("caught_up_checks") or 0) + 1
    if st["caught_up_checks"] >= policy.return_checks:
        return _transition(st, "sync", now, "%s, caught up (<= %d bytes) for %d checks" % (
            what, policy.catchup_bytes, st["caught_up_checks"]))
    return st, None


# ---------------------------------------------------------------- SQL and the drop-in
def observe_sql(cfg):
    lsn = "replay_lsn" if cfg["synchronous_commit"] == "remote_apply" else "flush_lsn"
    return ("SELECT pg_is_in_recovery(), coalesce(r.state, ''), coalesce(r.reply::text, ''), "
            "coalesce(extract(epoch FROM clock_timestamp() - r.reply)::text, ''), "
            "coalesce((CASE WHEN pg_is_in_recovery() THEN NULL "
            "ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), r.lsn)::bigint END)::text, '') "
            "FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT state, reply_time AS reply, %s AS lsn "
            "FROM pg_stat_replication WHERE application_name = '%s' "
            "ORDER BY state = 'streaming' DESC, reply_time DESC NULLS LAST LIMIT 1) AS r ON true"
            % (lsn, cfg["standby"]))


FILE_SETTINGS_SQL = ("SELECT sourcefile, setting, applied, coalesce(error, '') FROM pg_file_settings "
                     "WHERE name = 'synchronous_standby_names' ORDER BY seqno")
RELOAD_SQL = "SELECT pg_reload_conf()"
RESET_SQL = "ALTER SYSTEM RESET synchronous_standby_names"


def status_sql(cfg):
    return ("SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit'), "
            "coalesce((SELECT sync_state FROM pg_stat_replication WHERE application_name = '%s' "
            "ORDER BY state = 'streaming' DESC LIMIT 1), '')" % cfg["standby"])


def _float(text):
    try:
        return float(text)
    except ValueError:
        return None


def parse_observation(text):
    """Observed from the row of :func:`observe_sql` (in_recovery|state|reply|reply_age|lag)."""
    f = (text.strip().split("|") + [""] * 5)[:5]
    lag = int(f[4]) if re.fullmatch(r"-?\d+", f[4].strip()) else None
    return Observed(ok=True, in_recovery=f[0] == "t", state=f[1], streaming=f[1] == "streaming",
                    reply=f[2] or None, reply_age=_float(f[3]) if f[3] else None,
                    lag_bytes=None if lag is None else max(0, lag))


def standby_names(cfg, mode):
    return '"%s"' % cfg["standby"] if mode == "sync" else ""


def conf_text(cfg, mode, reason=""):
    return ("# Managed by archive-dr-sync-guard (module_utils/sync_guard.py): rewritten at each change of\n"
            "# mode; never edit, never ALTER SYSTEM (roles/replica/README.md, synchronous replication).\n"
            "# mode %s: %s\n"
            "synchronous_standby_names = '%s'\n" % (mode, " ".join(str(reason).split())[:300],
                                                     standby_names(cfg, mode)))


def _atomic_write(path, text, mode=0o644):
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")     # a dot file: include_dir and node_exporter skip it
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Psql:
    """psql as the user running the guard (postgres: peer authentication); as root through runuser."""

    def __init__(self, cfg, timeout=10):
        self.cfg, self.timeout = cfg, timeout

    def __call__(self, sql):
        argv = ["psql", "-XAtq", "-F", "|", "-p", str(self.cfg["port"]), "-d", "postgres", "-c", sql]
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        env = dict(os.environ, PGCONNECT_TIMEOUT="5", PGAPPNAME="archive-dr-sync-guard",
                   PGOPTIONS="-c statement_timeout=5000")
        try:
            r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=self.timeout)
        except (OSError, subprocess.SubprocessError) as e:
            raise RuntimeError("psql: %s" % e) from None
        if r.returncode:
            raise RuntimeError("psql: %s" % (" ".join(r.stderr.split())[-300:] or "exit %d" % r.returncode))
        return r.stdout


def observe(cfg, psql):
    try:
        return parse_observation(psql(observe_sql(cfg)))
    except RuntimeError as e:
        return Observed(ok=False, error=str(e))


def reload(cfg, psql):
    """pg_reload_conf(); without SQL, SIGHUP to the postmaster of data_dir/postmaster.pid. Returns how.
    No postmaster.pid: PostgreSQL is not running and reads the drop-in when it starts (nothing to reload)."""
    try:
        psql(RELOAD_SQL)
        return "pg_reload_conf()"
    except RuntimeError as e:
        if not cfg.get("data_dir"):
            raise
        pidfile = os.path.join(cfg["data_dir"], "postmaster.pid")
        try:
            with open(pidfile, encoding="utf-8") as f:
                pid = int(f.readline().strip())
        except FileNotFoundError:
            return "PostgreSQL not running (no %s): it reads the drop-in when it starts" % pidfile
        except (OSError, ValueError) as e2:
            raise RuntimeError("%s; %s: %s" % (e, pidfile, e2)) from None
        try:
            os.kill(pid, signal.SIGHUP)
        except OSError as e2:
            raise RuntimeError("%s; SIGHUP to the postmaster (%d): %s" % (e, pid, e2)) from None
        return "SIGHUP to the postmaster (%d)" % pid


def parse_file_settings(text):
    rows = []
    for line in text.splitlines():
        if line.strip():
            f = (line.split("|") + [""] * 4)[:4]
            rows.append({"sourcefile": f[0], "setting": f[1], "applied": f[2] == "t", "error": f[3]})
    return rows


def overriding_entry(cfg, rows):
    """The entry of another file that PostgreSQL applies instead of the guard's drop-in, or None."""
    applied = [r for r in rows if r["applied"]]
    if not applied:
        return None
    if os.path.normpath(applied[-1]["sourcefile"]) == os.path.normpath(cfg["conf_file"]):
        return None
    return applied[-1]


def apply(cfg, mode, psql, reason=""):
    """Write the drop-in for ``mode`` and reload; reset an ALTER SYSTEM value that overrides it. Returns
    a line saying what was done; RuntimeError when PostgreSQL applies another file's value."""
    _atomic_write(cfg["conf_file"], conf_text(cfg, mode, reason))
    done = ["synchronous_standby_names = '%s' (%s)" % (standby_names(cfg, mode), cfg["conf_file"])]
    done.append(reload(cfg, psql))
    try:
        other = overriding_entry(cfg, parse_file_settings(psql(FILE_SETTINGS_SQL)))
    except RuntimeError as e:
        return "; ".join(done + ["not checked (%s)" % e])
    if other and os.path.basename(other["sourcefile"]) == AUTO_CONF:
        psql(RESET_SQL)
        done.append("ALTER SYSTEM RESET synchronous_standby_names (postgresql.auto.conf had '%s')" % other["setting"])
        done.append(reload(cfg, psql))
        other = overriding_entry(cfg, parse_file_settings(psql(FILE_SETTINGS_SQL)))
    if other:
        raise RuntimeError("%s sets synchronous_standby_names = '%s' after the guard's drop-in: PostgreSQL "
                           "applies that value, not the guard's; remove it" % (other["sourcefile"], other["setting"]))
    return "; ".join(done)


# ---------------------------------------------------------------- state and metrics
def load_state(cfg):
    try:
        with open(cfg["state_file"], encoding="utf-8") as f:
            st = json.load(f)
        return st if isinstance(st, dict) else {}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log("state file %s unreadable (%s): starting without it" % (cfg["state_file"], e))
        return {}


def metrics_text(cfg, st, now):
    """Prometheus text of the guard's state (pure)."""
    lab = '{standby="%s"}' % cfg["standby"]
    out = []

    def m(name, kind, help_, value):
        out.extend(["# HELP archive_dr_replica_%s %s" % (name, help_), "# TYPE archive_dr_replica_%s %s" % (name, kind),
                    "archive_dr_replica_%s%s %s" % (name, lab, value)])

    m("sync_mode", "gauge", "1 when commits wait for the standby (synchronous), 0 when asynchronous (degraded).",
      1 if st.get("mode") == "sync" else 0)
    m("sync_degraded_total", "counter", "Times the sync guard degraded synchronous replication to asynchronous.",
      int(st.get("degraded_total") or 0))
    m("sync_last_change_timestamp_seconds", "gauge", "Unix time of the sync guard's last change of mode (0 = none).",
      "%.3f" % float(st.get("last_change") or 0))
    m("sync_guard_last_check_timestamp_seconds", "gauge", "Unix time of the sync guard's last check.",
      "%.3f" % float(now))
    m("sync_guard_error", "gauge", "1 when the sync guard's last check or switch failed (PostgreSQL not answering, "
      "another file overriding synchronous_standby_names).", 1 if st.get("error") else 0)
    return "\n".join(out) + "\n"


def persist(cfg, st, now):
    keep = {k: v for k, v in st.items() if k not in ("fresh", "last_alive", "last_reply")}
    keep.update(standby=cfg["standby"], synchronous_commit=cfg["synchronous_commit"], last_check=now)
    _atomic_write(cfg["state_file"], json.dumps(keep, indent=2, sort_keys=True) + "\n")
    _atomic_write(cfg["metrics_file"], metrics_text(cfg, st, now))


def log(message):
    print("sync-guard: %s" % message, flush=True)


def _iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(t))) if t else None


# ---------------------------------------------------------------- commands
def step(cfg, state, psql, now, policy):
    """One check: observe, decide, switch (printed when anything changes). Returns (state, changed)."""
    obs = observe(cfg, psql)
    new, action = decide(state, obs, now, policy, cfg["standby"])
    error = "" if obs.ok else obs.error
    changed = False
    if action:
        mode = "sync" if action == "sync" else "degraded"
        try:
            done = apply(cfg, mode, psql, new["reason"])
        except (OSError, RuntimeError) as e:
            failed = dict(state, error="switch to %s: %s" % (mode, e))
            if failed["error"] != state.get("error"):     # once, not at every retry
                log("could not switch to %s (%s): %s; retrying at every check" % (mode, new["reason"], e))
            return failed, failed["error"] != state.get("error")
        was = state.get("mode") or "start"
        if state.get("fresh"):
            was = "start (was %s)" % was if state.get("mode") else "start"
        log("%s -> %s: %s [%s]" % (was, mode, new["reason"], done))
        changed = True
    if error != (state.get("error") or ""):
        log("check failed: %s" % error if error else "checks succeed again")
        changed = True
    new["error"] = error
    return new, changed


def cmd_run(cfg, psql, clock=time.time, sleep=time.sleep, checks=None):
    policy = policy_of(cfg)
    state = fresh_state(load_state(cfg))
    log("started: standby %s, synchronous_commit %s, degrade after %s s, check every %s s"
        % (cfg["standby"], cfg["synchronous_commit"], cfg["degrade_after"], cfg["check_interval"]))
    written = None
    n = 0
    while checks is None or n < checks:
        n += 1
        now = clock()
        state, changed = step(cfg, state, psql, now, policy)
        if changed or written is None or now - written >= PERSIST_EVERY:
            try:
                persist(cfg, state, now)
                written = now
            except OSError as e:
                log("could not write the state or metrics: %s" % e)
        sleep(max(0.0, policy.check_interval - (clock() - now)))
    return 0


def cmd_once(cfg, psql, now=None):
    now = time.time() if now is None else now
    state, _ = step(cfg, fresh_state(load_state(cfg)), psql, now, policy_of(cfg))
    persist(cfg, state, now)
    print(json.dumps({k: state.get(k) for k in ("mode", "reason", "error", "degraded_total")}, sort_keys=True))
    return 0 if not state.get("error") else 1


def cmd_release(cfg, psql, reason="", now=None):
    """Asynchronous now, whatever the mode (ExecStopPost): the drop-in names no standby."""
    now = time.time() if now is None else now
    unit = os.environ.get("SERVICE_RESULT")
    reason = reason or ("guard stopped (%s, exit %s)" % (unit, os.environ.get("EXIT_STATUS", "?")) if unit
                        else "released by an operator")
    st = fresh_state(load_state(cfg))
    st.pop("fresh")
    prev = st.get("mode")
    st, _ = _transition(st, "degraded", now, reason)
    rc = 0
    try:
        done = apply(cfg, "degraded", psql, reason)
    except RuntimeError as e:
        done, rc = "drop-in written, %s" % e, 1
        st["error"] = str(e)
    log("%s -> degraded: %s [%s]" % (prev or "start", reason, done))
    persist(cfg, st, now)
    return rc


def cmd_status(cfg, psql):
    """The guard's mode from its state file and what PostgreSQL applies now (measured)."""
    st = load_state(cfg)
    out = {"mode": st.get("mode") or "unknown", "since": st.get("since"), "since_iso": _iso(st.get("since")),
           "reason": st.get("reason", ""), "standby": cfg["standby"], "synchronous_commit": cfg["synchronous_commit"],
           "degraded_total": int(st.get("degraded_total") or 0), "last_check": st.get("last_check"),
           "last_check_iso": _iso(st.get("last_check")), "error": st.get("error", "")}
    try:
        f = (psql(status_sql(cfg)).strip().split("|") + [""] * 3)[:3]
        out["effective"] = {"synchronous_standby_names": f[0], "synchronous_commit": f[1], "sync_state": f[2]}
    except RuntimeError as e:
        out["effective"] = {"error": str(e)}
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


def main(argv=None, psql=None):
    p = argparse.ArgumentParser(prog="sync_guard.py", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=os.environ.get("ARCHIVE_DR_SYNC_GUARD_CONFIG", DEFAULT_CONFIG))
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="check every check_interval s and switch the mode (the service)")
    sub.add_parser("once", help="one check decided as at a start, and its switch")
    sub.add_parser("status", help="JSON: mode, since, reason, and what PostgreSQL applies now")
    rel = sub.add_parser("release", help="asynchronous now (the unit's ExecStopPost)")
    rel.add_argument("--reason", default="")
    a = p.parse_args(argv)
    try:
        cfg = load_config(a.config)
        psql = psql or Psql(cfg)
        if a.cmd == "run":
            return cmd_run(cfg, psql)
        if a.cmd == "once":
            return cmd_once(cfg, psql)
        if a.cmd == "release":
            return cmd_release(cfg, psql, a.reason)
        return cmd_status(cfg, psql)
    except (OSError, ValueError, RuntimeError) as e:
        print("sync_guard: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
