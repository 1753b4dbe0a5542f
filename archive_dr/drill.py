"""DR drill (灾备演练): a scripted disaster at geo, recovery at miyun, failback; RTO per phase and RPO measured.

``archive-dr drill --scenario host-lost|ransomware [--mode destructive|non-destructive]``
``archive-dr inspect [ansible-playbook options]``   (runs playbooks/inspect.yml)

The drill is a sequence of timed phases. Host work is Ansible (``playbooks/drill.yml``
with ``-e dr_drill_phase=<phase>``, the replica playbooks named in the
inventory's ``dr_drill``, and after a destructive ransomware drill ``release.yml``, the
operator's release of the file replica held in quarantine by the attack); this module
measures and decides:

* a heartbeat writer on the controller commits one row per second into the
  archive database at geo (``archive_dr_drill_heartbeat``) and writes one
  heartbeat file into the file store, keeping the geo timestamps it got an
  acknowledgement for; after recovery the newest heartbeat present in the
  recovered database / file store gives the RPO (last acknowledged at geo minus
  newest recovered; for ransomware, the last acknowledged before the attack);
* with it, for a destructive host-lost drill (``dr_drill.load``), a write load: one persistent
  ``psql`` session at geo commits ~20 transactions a second of filler rows
  (``archive_dr_drill_load``), pipelined but at most a few statements ahead of their results; its
  acknowledged geo commit timestamps give the database RPO at sub-second resolution (the worse of
  the heartbeat's and the load's figure is reported, both are kept);
* RTO = declaration -> the recovered archive passed the four-property check
  and answers queries at miyun; each phase is reported with its duration;
* the GB/T 20988 level the measured RTO/RPO support (docs/gbt20988.md).

Destructive mode is allowed only against the lab: the inventory must be the one
``archive-dr lab up`` recorded in ``.lab/state.json`` (never production); the disaster for
``host-lost`` is the inventory's ``dr_drill.disaster_commands`` (in the lab:
``podman stop geo-archive``), run on the controller. Non-destructive mode (real
sites) restores into the scratch area at miyun and never touches geo except for
the heartbeat rows.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from archive_dr import lab, paths, report, runner
from archive_dr.inventory import Inventory
from archive_dr.ssh import TARGET_VARS, SshTarget, ssh_argv

LAB_STATE_DIR = paths.LAB_STATE_DIR
# The task of playbooks/drill.yml (phase probe) whose stdout is {"db": <epoch>, "files": <epoch>, "load": <epoch>}.
PROBE_TASK = "Newest heartbeat row and file present here"
# The drill's write load at geo (LoadWriter, dr_drill.load): its table and the defaults of its settings.
LOAD_TABLE = "archive_dr_drill_load"
LOAD_DEFAULTS = {"interval": 0.05, "rows": 20, "row_bytes": 200, "max_in_flight": 4}
# The playbook of `archive-dr release` (a quarantined pull at miyun accepted by an operator).
RELEASE_PLAYBOOK = "release.yml"
SCENARIOS = {"host-lost": "主机损毁 archive host lost", "ransomware": "勒索软件 files encrypted + table dropped"}

# GB/T 20988-2007 Annex A (灾难恢复能力等级划分), its table of RTO / RPO per disaster-recovery level.
# (level, max RTO seconds or None = no upper bound, max RPO seconds, RTO as the table states it,
#  RPO as the table states it). The bounds are this project's reading of the table (docs/gbt20988.md):
#  "数分钟" = 15 min; level 2 "24小时以后" differs from level 1 "2天以上" by an RTO within 2 days.
GBT20988_SOURCE = "GB/T 20988-2007 附录A 灾难恢复能力等级划分, RTO/RPO 对应表"
GBT20988_LEVELS = [
    (6, 15 * 60, 0, "数分钟", "0"),
    (5, 2 * 86400, 30 * 60, "数分钟至2天", "0至30分钟"),
    (4, 2 * 86400, 86400, "数小时至2天", "数小时至1天"),
    (3, None, 86400, "12小时以上", "数小时至1天"),
    (2, 2 * 86400, 7 * 86400, "24小时以后", "1天至7天"),
    (1, None, 7 * 86400, "2天以上", "1天至7天"),
]


def gbt20988_level(rto_seconds, rpo_seconds, synchronous=False, why_not=None):
    """The highest level whose RTO and RPO bounds the measured figures meet (technical indicators only).

    Only measured figures count: None (not measured, or only a bound) gives level None, with
    ``why_not`` (or a generic reason) as the basis. Level 6 (RPO 0) needs synchronous replication:
    with asynchronous replication a measured 0 is luck of timing, not a property of the system
    (docs/gbt20988.md), so it supports level 5 at most."""
    if rto_seconds is None or rpo_seconds is None:
        missing = " and ".join(n for n, v in (("RTO", rto_seconds), ("RPO", rpo_seconds)) if v is None)
        return {"level": None, "note": "not measured",
                "basis": why_not or ("%s not measured: no GB/T 20988 level is derived from unmeasured figures"
                                     % missing)}
    skipped6 = False
    for level, max_rto, max_rpo, rto_text, rpo_text in GBT20988_LEVELS:
        if level == 6 and not synchronous:
            skipped6 = True
            continue
        if rpo_seconds <= max_rpo and (max_rto is None or rto_seconds <= max_rto):
            basis = ("measured RTO %s, RPO %s. %s: level %d — RTO “%s”, RPO “%s” (judged as RTO %s, RPO ≤ %s)."
                     % (report.human_seconds(rto_seconds), report.human_seconds(rpo_seconds), GBT20988_SOURCE,
                        level, rto_text, rpo_text,
                        "≤ " + report.human_seconds(max_rto) if max_rto else "without upper bound",
                        report.human_seconds(max_rpo)))
            if skipped6 and level == 5 and rpo_seconds == 0 and rto_seconds <= 15 * 60:
                basis += (" Level 6 (RPO 0) is not claimed: replication is asynchronous, so a measured 0 is "
                          "timing, not a guarantee.")
            basis += (" The level also requires the non-technical elements of Annex A (backup site, staff, "
                      "operations, plan); the figures support it, they do not confer it.")
            return {"level": level, "note": "technical indicators", "basis": basis}
    return {"level": 0, "note": "below level 1",
            "basis": "measured RPO %s is above 7 days (%s: levels 1 and 2 allow RPO “1天至7天”)"
                     % (report.human_seconds(rpo_seconds), GBT20988_SOURCE)}


# ------------------------------------------------------------------ phase output: one line for the table, all in a log
_CAPTURE = []       # stack: the running phase's list of (command, output) pairs; playbook() and commands() add to it


def _capture(command, output):
    if _CAPTURE:
        _CAPTURE[-1].append((command, output))


def _one_line(text, limit=240):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def outcome(value):
    """The one-line outcome of a phase from what its function returned."""
    if value is None:
        return ""
    if isinstance(value, runner.PlaybookResult):
        return value.outcome()
    if isinstance(value, str):
        return _one_line(value)
    if isinstance(value, dict) and "summary" in value:
        return _one_line(str(value["summary"]).splitlines()[0] if value["summary"] else "")
    if isinstance(value, subprocess.CompletedProcess):
        return _one_line("rc %d: %s" % (value.returncode, shlex.join(str(a) for a in value.args)))
    return ""


class Phases:
    """Timed phases. Each phase keeps a one-line ``detail`` (its outcome: the message of the task that failed,
    or what it did) and, with ``log_dir``, the full output of the commands it ran in a log file whose path
    relative to the report (``log_prefix``/NN-name.log) is the phase's ``log``."""

    def __init__(self, log_dir=None, log_prefix=None):
        self.items = []
        self.log_dir = Path(log_dir) if log_dir else None
        self.log_prefix = log_prefix if log_prefix is not None else (self.log_dir.name if self.log_dir else "")

    def run(self, name, label, fn, *a, **kw):
        p = {"name": name, "label": label, "start": time.time(), "ok": False, "detail": ""}
        self.items.append(p)
        captured = []
        _CAPTURE.append(captured)
        error = None
        try:
            out = fn(*a, **kw)
            p["ok"] = True
            p["detail"] = outcome(out)
            if isinstance(out, str) and not captured:
                captured.append((None, out))
            return out
        except Exception as e:  # noqa: BLE001 - recorded in the report, then re-raised
            error = "%s: %s" % (type(e).__name__, e)
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            p["detail"] = _one_line("%s: %s" % (type(e).__name__, getattr(e, "outcome", None) or first))
            raise
        finally:
            p["end"] = time.time()
            p["seconds"] = round(p["end"] - p["start"], 3)
            _CAPTURE.remove(captured)
            self._log(p, captured, error)

    def _log(self, p, captured, error):
        if self.log_dir is None or not (captured or error):
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        fname = "%02d-%s.log" % (len(self.items), re.sub(r"[^A-Za-z0-9_.-]+", "-", p["name"]))
        lines = ["# phase %s — %s" % (p["name"], p["label"]),
                 "# start %s, end %s, %.3f s, %s" % (report.iso(p["start"]), report.iso(p["end"]), p["seconds"],
                                                      "ok" if p["ok"] else "FAILED"),
                 "# outcome: %s" % p["detail"], ""]
        for command, output in captured:
            if command:
                lines.append("$ %s" % command)
            lines.append(output.rstrip("\n"))
            lines.append("")
        if error:
            lines += ["# error", error]
        (self.log_dir / fname).write_text("\n".join(lines) + "\n", encoding="utf-8")
        p["log"] = "%s/%s" % (self.log_prefix, fname) if self.log_prefix else fname


def commands(argvs, timeout=120, simultaneous=False):
    """Run configured commands on the controller (check=True); their output goes to the log.

    One after the other by default; ``simultaneous`` starts them all at once, as a disaster strikes
    (the host and the room's uplink lost in the same instant, not one after a polite delay)."""
    if simultaneous:
        procs = [(argv, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                 for argv in argvs]
        results = [(argv, p.communicate(timeout=timeout)[0], p.returncode) for argv, p in procs]
    else:
        results = []
        for argv in argvs:
            cp = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)
            results.append((argv, (cp.stdout or "") + (cp.stderr or ""), cp.returncode))
            if cp.returncode != 0:
                break
    for argv, out, rc in results:
        _capture(shlex.join(argv), (out or "") + "(rc %d)" % rc)
        if rc != 0:
            raise subprocess.CalledProcessError(rc, argv, out)
    return ("ran at once: " if simultaneous else "ran: ") + "; ".join(shlex.join(a) for a, _o, _r in results)


def rto_from(phases, declared_at, available_phase):
    """Seconds from the declaration to the end of the phase that made the archive available."""
    for p in phases:
        if p["name"] == available_phase and p.get("ok"):
            return round(p["end"] - declared_at, 3)
    return None


def rpo_from(last_acked_geo, newest_recovered):
    """Seconds of acknowledged writes lost, at millisecond resolution (0 when everything acknowledged was
    recovered; see rpo_figure for the case of a recovered write newer than the last acknowledgement)."""
    if last_acked_geo is None:
        return None
    if newest_recovered is None:
        return None
    return round(max(0.0, float(last_acked_geo) - float(newest_recovered)), 3)


def ack_resolution(acked, last=20):
    """The resolution of an RPO figure: the gap between acknowledged commits near the disaster, the (lower) median
    of the gaps between the last ``last`` acknowledgements (ms); None with fewer than two."""
    tail = [float(x) for x in (acked or [])][-last:]
    gaps = [b - a for a, b in zip(tail, tail[1:])]
    return round(statistics.median_low(gaps), 3) if gaps else None


def rpo_figure(acked, newest_recovered, interval=None, what="heartbeat"):
    """One RPO figure from the writes (``what``: heartbeats, or the load's commits) acknowledged at geo (their
    geo timestamps, oldest first) and the newest one of this drill found in the recovered data:
    ``{"seconds", "measured", "bound"}`` plus the timestamps and ``resolution_seconds`` (ack_resolution, else
    the configured ``interval``).

    * measured: last acknowledged − newest recovered, ms resolution, floored at 0; when the recovered data has a
      heartbeat newer than the last acknowledged one (committed at geo, its acknowledgement lost with the
      disaster) the figure is 0 and ``ahead_seconds`` says by how much;
    * nothing of this drill recovered: not measured, a lower bound (everything since the first acknowledged
      heartbeat was lost, so at least the heartbeat's lifetime); the drill does not pass on a bound;
    * nothing acknowledged: not measured, no figure."""
    acked = [float(x) for x in acked or []]
    fig = {"seconds": None, "measured": False, "bound": None,
           "last_acked": acked[-1] if acked else None, "newest_recovered": newest_recovered}
    resolution = ack_resolution(acked)
    if resolution is None and interval:
        resolution = float(interval)
    if resolution is not None:
        fig["resolution_seconds"] = resolution
    if not acked:
        fig["note"] = "no %s was acknowledged at geo: not measured" % what
        return fig
    if newest_recovered is None or float(newest_recovered) < acked[0]:
        fig.update(seconds=round(acked[-1] - acked[0], 3), bound="lower",
                   note="no %s of this drill was recovered: the RPO is at least the %s's lifetime "
                        "(a lower bound, not a measurement)" % (what, what))
        return fig
    raw = acked[-1] - float(newest_recovered)
    fig.update(seconds=round(max(0.0, raw), 3), measured=True)
    if raw < 0:
        fig["ahead_seconds"] = round(-raw, 3)
        fig["note"] = ("the newest recovered %s is %.3f s newer than the last acknowledged one (committed at "
                       "geo, acknowledgement lost in the disaster): nothing acknowledged was lost" % (what, -raw))
    return fig


def database_figure(heartbeat, load=None):
    """The database RPO figure from its two measurements, the heartbeat's (a row a second) and the write load's
    (sub-second); without a load figure, the heartbeat's as it is. ``source`` names the figure taken:

    * both measured: the worse (larger; on a tie the load's, the finer one);
    * one measured: that one, with a note naming the other as not measured; but when the other is a lower bound
      above it, at least that much was lost: the bound (not measured) is taken;
    * neither measured: the larger lower bound, else unknown (``seconds`` None)."""
    if load is None:
        return heartbeat
    figs = {"heartbeat": heartbeat or {}, "load": load}

    def worse(keys):
        return max(keys, key=lambda k: (figs[k]["seconds"], k == "load"))

    def text(k):
        f = figs[k]
        if f.get("measured"):
            return "%s %s" % (k, report.human_seconds(f["seconds"]))
        return "%s %s" % (k, "≥ %s (lower bound)" % report.human_seconds(f["seconds"]) if k in bounds
                          else "not measured")

    measured = [k for k in figs if figs[k].get("measured")]
    bounds = [k for k in figs if not figs[k].get("measured") and figs[k].get("bound") == "lower"
              and figs[k].get("seconds") is not None]
    if len(measured) == 2:
        key = worse(measured)
        note = "the worse of %s and %s" % (text("heartbeat"), text("load"))
    elif measured:
        key = measured[0]
        other = "load" if key == "heartbeat" else "heartbeat"
        if other in bounds and figs[other]["seconds"] > figs[key]["seconds"]:
            note = "%s measured, but %s: at least that much was lost" % (text(key), text(other))
            key = other
        else:
            note = "%s only: the %s RPO was not measured (%s)" % (key, other, figs[other].get("note") or "no figure")
    elif bounds:
        key = worse(bounds)
        note = "neither the heartbeat nor the load RPO was measured: %s" % "; ".join(text(k) for k in figs)
    else:
        return {"seconds": None, "measured": False, "bound": None, "source": None, "last_acked": None,
                "newest_recovered": None, "note": "neither the heartbeat nor the load RPO was measured: unknown"}
    if figs[key].get("note"):
        note += " — %s" % figs[key]["note"]
    return dict(figs[key], source=key, note=note)


def assess(rpo, rto_seconds, targets, synchronous=False):
    """Overall RPO, the verdicts and the level from the figures: only measured figures count.

    ``rpo``: {"database": figure, "files": figure}. Returns {"rpo_overall", "rpo_seconds", "rto_met", "rpo_met",
    "level"}; rpo_seconds is None unless every figure was measured."""
    figs = [(k, f) for k, f in ((k, (rpo or {}).get(k)) for k in ("database", "files")) if f]
    secs = [f["seconds"] for _, f in figs if f.get("seconds") is not None]
    measured = bool(figs) and all(f.get("measured") for _, f in figs)
    if measured:
        overall = {"seconds": max(secs), "measured": True, "bound": None}
    elif secs:
        overall = {"seconds": max(secs), "measured": False, "bound": "lower"}
    else:
        overall = {"seconds": None, "measured": False, "bound": None}
    rpo_seconds = overall["seconds"] if measured else None
    rto_met = rto_seconds is not None and rto_seconds <= (targets.get("rto_seconds") or 0)
    rpo_met = rpo_seconds is not None and rpo_seconds <= (targets.get("rpo_seconds") or 0)
    why = None
    if not measured:
        parts = []
        for k, f in figs:
            if not f.get("measured"):
                parts.append("%s RPO %s" % (k, ("≥ %s (lower bound)" % report.human_seconds(f["seconds"]))
                                            if f.get("bound") == "lower" else "unknown"))
        why = ("RPO not measured (%s): a bound is no measurement, so the drill does not pass on it and no "
               "GB/T 20988 level is derived" % ("; ".join(parts) or "no heartbeat figures"))
    level = gbt20988_level(rto_seconds, rpo_seconds, synchronous=synchronous, why_not=why)
    return {"rpo_overall": overall, "rpo_seconds": rpo_seconds, "rto_met": rto_met, "rpo_met": rpo_met,
            "level": level}


# ------------------------------------------------------------------ what the drill did: disaster and replication
_KILL = {"kill", "destroy", "sigkill", "-9", "--signal=kill", "crash", "poweroff-force"}
_STOP = {"stop", "shutdown", "poweroff", "halt"}
_PAUSE = {"pause", "freeze", "suspend"}
_NET = {"tc", "nft", "iptables", "ip6tables", "ip", "bridge"}
_CUT = {"down", "disconnect", "drop", "cut", "loss", "delete", "del", "blackhole"}


def _argvs(cmd):
    """A configured command as a list of argvs: one argv (list of words), a list of argvs, or a string."""
    if not cmd:
        return []
    if isinstance(cmd, str):
        return [shlex.split(cmd)]
    if all(isinstance(c, (list, tuple)) for c in cmd):
        return [[str(w) for w in c] for c in cmd if c]
    return [[str(w) for w in cmd]]


def command_method(argv):
    """What one disaster command does, from its words: kill, stop, pause, wan-cut / net-cut, or its program."""
    words = [w.lower() for w in argv]
    toks = set(words) | {t for w in words for t in re.split(r"[^a-z0-9-]+", w) if t}
    base = os.path.basename(words[0]) if words else ""
    if base in ("kill", "pkill", "killall") or toks & _KILL:
        return "kill"
    network = base in _NET or "network" in toks or "link" in toks or "wan" in " ".join(words)
    if network and (toks & _CUT or base in ("tc", "nft", "iptables", "ip6tables")):
        return "wan-cut" if "wan" in " ".join(words) else "net-cut"
    if toks & _STOP:
        return "stop"
    if toks & _PAUSE:
        return "pause"
    return base or "?"


def disaster_method(cfg, scenario, mode):
    """``{"method", "description", "commands"}`` of the disaster this drill makes, derived from the configuration."""
    if mode != "destructive":
        return {"method": "none", "commands": [],
                "description": "non-destructive: nothing at geo is harmed; recovery into the scratch area at miyun"}
    if scenario == "ransomware":
        return {"method": "encrypt+drop-table", "commands": [],
                "description": "%s files encrypted in place and table %s dropped at geo (playbooks/drill.yml "
                               "phase attack)" % (cfg.get("ransomware_files", "?"), cfg.get("ransomware_table", "?"))}
    argvs = _argvs((cfg.get("disaster_commands") or {}).get(scenario))
    methods = []
    for argv in argvs:
        m = command_method(argv)
        if m not in methods:
            methods.append(m)
    return {"method": "+".join(methods) or "not configured", "commands": [shlex.join(a) for a in argvs],
            "description": "controller runs dr_drill.disaster_commands.%s" % scenario}


# The sync guard on the primary (roles/replica, replica_pg_synchronous): its status is the measured mode.
SYNC_GUARD_STATUS = ["python3", "/usr/local/lib/archive-dr/sync_guard.py", "status"]
SYNCHRONOUS_COMMITS = ("on", "remote_apply", "remote_write")


def sync_guard_status(ssh, timeout=20):
    """The sync guard's ``status`` JSON read on the primary over ``ssh`` (an argv), or ``{"error": ...}``."""
    if not ssh:
        return {"error": "no ssh command for the primary"}
    try:
        p = subprocess.run(list(ssh) + [shlex.join(SYNC_GUARD_STATUS)], capture_output=True, text=True,
                           timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": _one_line(str(e))}
    if p.returncode:
        return {"error": _one_line("rc %d: %s" % (p.returncode, p.stderr.strip() or p.stdout.strip()))}
    try:
        status = json.loads(p.stdout)
    except ValueError:
        return {"error": _one_line("not JSON: %s" % p.stdout)}
    return status if isinstance(status, dict) else {"error": "not a JSON object"}


def replication_info(cfg, probe=None):
    """The replication mode, measured when ``probe`` (the sync guard's status, :func:`sync_guard_status`) is given.

    Measured: ``sync`` only when the guard is in sync mode and PostgreSQL applies it (a standby named, a
    synchronous_commit that waits, the standby's sync_state ``sync``); ``degraded`` when the guard degraded
    to asynchronous; otherwise ``async``. Without a usable probe the inventory's ``replication_mode`` (default
    async) is reported as declared (``source: inventory``, ``measured: false``) and counts as asynchronous for
    the level: a declaration is no measurement."""
    if probe and not probe.get("error") and probe.get("mode") in ("sync", "degraded"):
        eff = probe.get("effective") or {}
        applied = (not eff.get("error") and bool(eff.get("synchronous_standby_names"))
                   and eff.get("synchronous_commit") in SYNCHRONOUS_COMMITS and eff.get("sync_state") in ("sync", "quorum"))
        synchronous = probe["mode"] == "sync" and applied
        info = {"mode": "sync" if synchronous else ("degraded" if probe["mode"] == "degraded" else "async"),
                "synchronous": synchronous, "source": "sync-guard status", "measured": True,
                "guard_mode": probe["mode"], "since": probe.get("since_iso") or probe.get("since"),
                "reason": probe.get("reason", ""), "effective": eff}
        if probe["mode"] == "sync" and not synchronous:
            info["note"] = ("the guard says sync but PostgreSQL does not apply it (%s)"
                            % (eff.get("error") or "standby names %r, synchronous_commit %r, sync_state %r" % (
                                eff.get("synchronous_standby_names"), eff.get("synchronous_commit"),
                                eff.get("sync_state"))))
        return info
    mode = str(cfg.get("replication_mode") or "async")
    # a declared mode supports no level: level 6 needs synchronous replication measured at the disaster
    info = {"mode": mode, "synchronous": False, "declared_synchronous": mode in ("sync", "synchronous"),
            "source": "inventory", "measured": False}
    if probe:
        info["note"] = "sync guard status not usable (%s): the inventory's declared mode" % _one_line(
            probe.get("error") or "mode %r" % probe.get("mode"), 300)
    return info


# ------------------------------------------------------------------ Ansible plumbing
def playbook(name, inventory, extra=None, timeout=3600):
    """Run playbooks/<name> through the runner layer; its text output goes to the phase's log. Raises
    runner.PlaybookFailed (with the one-line outcome) when it fails; returns the PlaybookResult."""
    result = runner.run_playbook(name, inventory, extra, timeout=timeout)
    _capture("ansible-playbook %s%s" % (name, (" -e '%s'" % json.dumps(extra)) if extra else ""),
             result.stdout + ("\n# artifacts: %s" % result.artifact_dir))
    return result.check()


def release(inventory, job, reason, by=None):
    """The operator's release of a pull held in quarantine at miyun: the playbook `archive-dr release` runs
    (docs/dr-history.md); nothing held is nothing to release (no change)."""
    by = by or "%s (archive-dr drill)" % (os.environ.get("SUDO_USER") or getpass.getuser())
    return playbook(RELEASE_PLAYBOOK, inventory, {"replica_release_job": job, "replica_release_by": by,
                                                  "replica_release_reason": reason})


class Heartbeat(threading.Thread):
    """Commits one heartbeat row per interval at geo over one persistent SSH connection."""

    def __init__(self, ssh_argv, drill_id, db, table, file_dir, interval=1.0):
        super().__init__(daemon=True)
        self.ssh = ssh_argv
        self.id = drill_id
        self.interval = interval
        self.stop_ev = threading.Event()
        self.acked_db = []        # geo commit timestamps acknowledged
        self.acked_files = []     # geo file mtimes acknowledged
        self.errors = 0
        self.cmd = ("set -e; t=$(runuser -u postgres -- psql -X -q -At -d %s -c \"insert into %s(drill) values ('%s') "
                    "returning extract(epoch from at)\"); echo $t > %s/hb-$t; echo $t" % (
                        shlex.quote(db), table, drill_id, shlex.quote(file_dir)))

    def run(self):
        while not self.stop_ev.is_set():
            t0 = time.time()
            try:
                p = subprocess.run(self.ssh + [self.cmd], capture_output=True, text=True, timeout=10)
                if p.returncode == 0 and p.stdout.strip():
                    ts = float(p.stdout.strip().splitlines()[-1])
                    self.acked_db.append(ts)
                    self.acked_files.append(ts)
                else:
                    self.errors += 1
            except (subprocess.SubprocessError, ValueError):
                self.errors += 1
            self.stop_ev.wait(max(0.0, self.interval - (time.time() - t0)))

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=15)
        return (self.acked_db[-1] if self.acked_db else None)


def heartbeat_ssh_argv(inventory, host):
    """ssh argv to a host of the inventory over one persistent connection (the heartbeat's)."""
    values = Inventory(inventory).host_vars(host, TARGET_VARS)
    return ssh_argv(SshTarget.from_vars(host, values), connect_timeout=3, persist="/tmp/archive-dr-drill-%C")


class LoadWriter(threading.Thread):
    """The drill's write load at geo: one persistent ``ssh <host> runuser -u postgres -- psql`` session that
    commits one transaction every ``interval`` seconds (``rows`` filler rows of ``row_bytes`` each into
    ``table``), each statement autocommitted and answered by exactly one line, the geo timestamp of its last row.

    A writer loop (this thread) sends the statements, at most ``max_in_flight`` ahead of their answers
    (pipelined but bounded: acknowledged means the client saw the result of the commit); a reader thread
    takes each answer line as one commit acknowledged at geo (``acked``: geo timestamps, oldest first).
    The load ends by itself when the session does (the disaster kills the host: the reader sees the end of
    the output; nothing is raised), or on :meth:`stop`: stdin is closed (psql answers what it has, then
    exits), and a session that does not end within ``stop_timeout`` seconds (a host gone with the WAN cut)
    is terminated. ``errors``: answers that are no timestamp, a session that could not start or ended before
    it was stopped."""

    def __init__(self, ssh_argv, drill_id, db="archive", table=LOAD_TABLE, interval=LOAD_DEFAULTS["interval"],
                 rows=LOAD_DEFAULTS["rows"], row_bytes=LOAD_DEFAULTS["row_bytes"],
                 max_in_flight=LOAD_DEFAULTS["max_in_flight"], stop_timeout=5.0):
        super().__init__(daemon=True, name="drill-load")
        self.argv = list(ssh_argv) + [shlex.join(["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v",
                                                  "ON_ERROR_STOP=1", "-d", str(db)])]
        self.table, self.interval, self.rows, self.row_bytes = table, float(interval), int(rows), int(row_bytes)
        self.max_in_flight, self.stop_timeout = max(1, int(max_in_flight)), float(stop_timeout)
        self.statement = ("with w as (insert into %s(drill, at, filler) select '%s', clock_timestamp(), "
                          "repeat('x', %d) from generate_series(1, %d) returning at) "
                          "select extract(epoch from max(at)) from w;\n" % (table, drill_id, self.row_bytes,
                                                                            self.rows))
        self.acked = []           # geo timestamps of the commits acknowledged, oldest first
        self.sent = 0
        self.answered = 0         # answer lines read (acknowledged or not a timestamp)
        self.errors = 0
        self.peak_in_flight = 0
        self.ended = None         # why the session ended (None while it runs)
        self.stderr_tail = deque(maxlen=5)
        self.proc = None
        self._cv = threading.Condition()
        self._stopping = threading.Event()
        self._eof = False
        self._lost = False

    @property
    def last_acked(self):
        with self._cv:
            return self.acked[-1] if self.acked else None

    def run(self):
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, bufsize=1)
        except OSError as e:
            self.errors += 1
            self.ended = _one_line("could not start: %s" % e)
            return
        readers = [threading.Thread(target=self._read, daemon=True),
                   threading.Thread(target=self._drain_stderr, daemon=True)]
        for t in readers:
            t.start()
        for step, what in ((self._write, "writer"), (lambda: self._close(readers), "close")):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - the load's end is recorded, never raised into the drill
                self.errors += 1
                self.ended = self.ended or _one_line("%s failed: %s: %s" % (what, type(e).__name__, e))

    def _write(self):
        due = time.monotonic()
        while not self._stopping.is_set():
            with self._cv:
                while not (self._stopping.is_set() or self._eof) and self.sent - self.answered >= self.max_in_flight:
                    self._cv.wait(0.5)
                if self._stopping.is_set() or self._eof:
                    return
            try:
                self.proc.stdin.write(self.statement)
                self.proc.stdin.flush()
            except (OSError, ValueError):      # the session is gone (broken pipe): the reader sees its end
                return
            with self._cv:
                self.sent += 1
                self.peak_in_flight = max(self.peak_in_flight, self.sent - self.answered)
            due = max(due + self.interval, time.monotonic())      # late: no burst to catch up
            self._stopping.wait(due - time.monotonic())

    def _read(self):
        try:
            for line in self.proc.stdout:
                if not line.strip():
                    continue
                with self._cv:
                    self.answered += 1
                    try:
                        self.acked.append(float(line))
                    except ValueError:
                        self.errors += 1
                    self._cv.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cv:
                self._eof = True
                self._lost = not self._stopping.is_set()
                self._cv.notify_all()

    def _drain_stderr(self):
        try:
            for line in self.proc.stderr:
                if line.strip():
                    self.stderr_tail.append(line.strip())
        except (OSError, ValueError):
            pass

    def _close(self, readers):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        how = ""
        try:
            self.proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            how = " (no end within %g s: terminated)" % self.stop_timeout
            self.proc.terminate()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in readers:
            t.join(timeout=2)
        if self.ended is None:
            with self._cv:
                lost = self._lost
            if lost:
                self.errors += 1
                self.ended = _one_line("session lost (rc %s)%s" % (self.proc.returncode, (": " + " / ".join(
                    self.stderr_tail)) if self.stderr_tail else ""))
            else:
                self.ended = "stopped%s" % (how or (" (rc %s)" % self.proc.returncode if self.proc.returncode else ""))

    def stop(self, wait=True):
        """End the load (see the class); the geo timestamp of the last commit acknowledged, or None. ``wait=False``
        only asks (the load ends while the caller stops something else)."""
        self._stopping.set()
        with self._cv:
            self._cv.notify_all()
        if wait and self.ident is not None:
            self.join(timeout=self.stop_timeout + 10)
        return self.last_acked

    def summary(self):
        """What the drill JSON records of the load (``load``)."""
        with self._cv:
            acked, sent, answered = list(self.acked), self.sent, self.answered
        span = acked[-1] - acked[0] if len(acked) > 1 else 0
        return {"enabled": True, "table": self.table, "interval": self.interval, "rows_per_commit": self.rows,
                "row_bytes": self.row_bytes, "max_in_flight": self.max_in_flight, "sent": sent,
                "acked": len(acked), "errors": self.errors, "unanswered": sent - answered,
                "commits_per_s": round((len(acked) - 1) / span, 1) if span > 0 else None,
                "first_acked": acked[0] if acked else None, "last_acked": acked[-1] if acked else None,
                "resolution_seconds": ack_resolution(acked), "ended": self.ended}


def _truthy(value):
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


def load_settings(cfg, scenario, mode):
    """The drill's write load from ``dr_drill.load`` (``enabled``, ``interval``, ``rows``, ``row_bytes``,
    ``max_in_flight``, ``table``; ``load: false`` is short for ``enabled: false``). Without ``enabled`` the load
    runs in a destructive host-lost drill only: the ransomware scenario and non-destructive mode (real sites)
    run none unless the inventory says ``enabled: true``."""
    conf = cfg.get("load")
    conf = conf if isinstance(conf, dict) else ({} if conf is None else {"enabled": conf})
    enabled = conf.get("enabled")
    settings = {"enabled": (scenario == "host-lost" and mode == "destructive") if enabled in (None, "")
                else _truthy(enabled),
                "table": str(conf.get("table") or LOAD_TABLE),
                "interval": float(conf.get("interval", LOAD_DEFAULTS["interval"])),
                "rows": int(conf.get("rows", LOAD_DEFAULTS["rows"])),
                "row_bytes": int(conf.get("row_bytes", LOAD_DEFAULTS["row_bytes"])),
                "max_in_flight": int(conf.get("max_in_flight", LOAD_DEFAULTS["max_in_flight"]))}
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,50}", settings["table"]):
        raise ValueError("dr_drill.load.table %r: a plain lower-case table name expected" % settings["table"])
    if settings["interval"] <= 0 or settings["rows"] < 1 or settings["row_bytes"] < 0 or settings["max_in_flight"] < 1:
        raise ValueError("dr_drill.load: interval > 0, rows >= 1, row_bytes >= 0, max_in_flight >= 1 expected (%s)"
                         % {k: v for k, v in settings.items() if k != "enabled"})
    return settings


# ------------------------------------------------------------------ the drill
def load_config(inventory):
    """(dr_targets, dr_drill) of the inventory, templated (no vault needed)."""
    values = Inventory(inventory, vault=False).group_vars("all", ["dr_targets", "dr_drill"])
    return values.get("dr_targets") or {}, values.get("dr_drill") or {}


def lab_inventory():
    """The inventory of the running lab (its sources, recorded by ``archive-dr lab up``), or None."""
    return lab.recorded_inventory(LAB_STATE_DIR)


def failback_key(cfg, scenario):
    """The scenario's own failback playbook (failback_<scenario>) when configured, else the common one."""
    own = "failback_%s" % scenario
    return own if own in (cfg.get("playbooks") or {}) else "failback"


def preflight(cfg, scenario, mode, inventory=None):
    missing = []
    need = ["recover_%s" % (scenario if mode == "destructive" else "scratch")]
    if mode == "destructive":
        need.append(failback_key(cfg, scenario))
    for key in need:
        pb = (cfg.get("playbooks") or {}).get(key)
        if not pb or not (paths.PLAYBOOKS / pb).exists():
            missing.append("%s (%s)" % (key, pb))
    if missing:
        raise RuntimeError("playbooks missing: %s — the replica work (promote/failback/restore at miyun) has "
                           "not landed" % ", ".join(missing))
    if mode == "destructive":
        recorded = lab_inventory()
        if recorded is None or inventory is None or not paths.same_inventory(inventory, recorded):
            raise RuntimeError("destructive drill refused: %s is not the lab inventory recorded in %s (%s); "
                               "on real sites use --mode non-destructive"
                               % (_sources_text(inventory), LAB_STATE_DIR / lab.STATE_FILE, _sources_text(recorded)))
    return "playbooks: %s" % ", ".join(cfg["playbooks"][k] for k in need)


def _sources_text(inventory):
    return "none" if inventory is None else " + ".join(str(p) for p in paths.sources(inventory, []))


def _site_host(inventory, where):
    return load_config(inventory)[1]["sites"][where]["host"]


def verify(inventory, where, drill_id, out_dir):
    """Four-property check through playbooks/drill.yml (phase verify); returns the archive_verify result."""
    out = Path(out_dir) / ("verify-%s-%s.json" % (drill_id, where))
    playbook("drill.yml", inventory, {"dr_drill_phase": "verify", "dr_drill_where": where,
                                      "dr_drill_host": _site_host(inventory, where),
                                      "dr_drill_verify_out": str(out)})
    res = json.loads(out.read_text())
    if not res.get("passed"):
        raise RuntimeError("four-property check at %s failed: %s" % (where, res.get("summary")))
    return res


def parse_probe(stdout):
    """(db, files, load) from the probe's stdout: the newest heartbeat row, heartbeat file and load row of the
    drill at the site (epochs; None where absent, or a probe of an earlier version without ``load``)."""
    data = json.loads(stdout)
    return data.get("db"), data.get("files"), data.get("load")


def newest_recovered(inventory, where, drill_id, load_table=None):
    """(db, files) of :func:`parse_probe` at ``where``; with ``load_table`` (a drill with a write load) the probe
    also reads that table and the answer is (db, files, load)."""
    host = _site_host(inventory, where)
    extra = {"dr_drill_phase": "probe", "dr_drill_where": where, "dr_drill_host": host, "dr_drill_id": drill_id}
    if load_table:
        extra["dr_drill_load_table"] = load_table
    result = playbook("drill.yml", inventory, extra)
    found = parse_probe(result.task_result(PROBE_TASK, host)["stdout"])
    return found if load_table else found[:2]


def _stop_writes(hb, lw):
    """Stop the heartbeat and the load: (the last heartbeat acknowledged, the newest commit acknowledged by either,
    the last good point before an attack)."""
    if lw is not None:
        lw.stop(wait=False)          # both end at once: neither waits for the other's hung connection
    last_hb = hb.stop()
    last_load = lw.stop() if lw is not None else None
    acked = [t for t in (last_hb, last_load) if t is not None]
    return last_hb, (max(acked) if acked else None)


def _load_record(load, lw):
    """``load`` of the drill JSON: what the load did, or its settings when it did not run."""
    if lw is not None:
        return lw.summary()
    if not load or not load["enabled"]:
        return {"enabled": False}
    return {"enabled": True, "table": load["table"], "interval": load["interval"], "rows_per_commit": load["rows"],
            "row_bytes": load["row_bytes"], "sent": 0, "acked": 0, "errors": 0,
            "ended": "not started: the drill ended before the load began"}


def run(scenario, mode, inventory, reports_dir):
    targets, cfg = load_config(inventory)
    drill_id = time.strftime("%Y%m%dT%H%M%S") + "-" + scenario
    logs = "drill-%s-logs" % drill_id            # next to the report: reports/drill-<id>.html links into it
    ph = Phases(Path(reports_dir) / logs, logs)
    verifies = []
    res = {"kind": "drill", "id": drill_id, "scenario": scenario, "scenario_label": SCENARIOS[scenario], "mode": mode,
           "started": time.time(), "targets": {"rto_seconds": targets.get("rto_seconds"),
                                               "rpo_seconds": targets.get("rpo_seconds")},
           "disaster": disaster_method(cfg, scenario, mode), "replication": replication_info(cfg),
           "logs": logs, "phases": ph.items, "verify": verifies, "rpo": {}}
    work = Path(reports_dir) / "drill-work"
    work.mkdir(parents=True, exist_ok=True)
    hb = lw = load = None
    declared = None
    try:
        load = load_settings(cfg, scenario, mode)
        ph.run("preflight", "准备检查 preflight", preflight, cfg, scenario, mode, inventory)
        ph.run("prepare", "心跳表与基线 prepare", playbook, "drill.yml", inventory,
               dict({"dr_drill_phase": "prepare", "dr_drill_id": drill_id},
                    **({"dr_drill_load_table": load["table"]} if load["enabled"] else {})))
        v = ph.run("verify-before", "演练前四性检测 (geo)", verify, inventory, "geo", drill_id, work)
        verifies.append({"stage": "before (geo)", "passed": v["passed"], "summary": v["summary"]})
        hb = Heartbeat(heartbeat_ssh_argv(inventory, cfg.get("archive_host", "geo-archive")), drill_id,
                       cfg.get("db", "archive"), cfg.get("heartbeat_table", "archive_dr_drill_heartbeat"),
                       cfg.get("heartbeat_dir", "/srv/archive/.archive-dr-drill"), cfg.get("heartbeat_interval", 1.0))
        hb.start()
        if load["enabled"]:
            lw = LoadWriter(heartbeat_ssh_argv(inventory, cfg.get("archive_host", "geo-archive")), drill_id,
                            cfg.get("db", "archive"), load["table"], load["interval"], load["rows"], load["row_bytes"],
                            load["max_in_flight"])
            lw.start()
        warmup = cfg.get("heartbeat_warmup", 5)
        time.sleep(float(warmup.get(scenario, 5) if isinstance(warmup, dict) else warmup))
        # the mode at the moment of the disaster, measured at geo by its sync guard (declared as a fallback)
        res["replication"] = replication_info(cfg, sync_guard_status(
            heartbeat_ssh_argv(inventory, cfg.get("archive_host", "geo-archive"))))
        if mode == "destructive" and scenario == "host-lost":
            cmds = _argvs((cfg.get("disaster_commands") or {}).get("host-lost"))
            ph.run("disaster", "灾难: 主机损毁 host lost (%s)" % res["disaster"]["method"], commands, cmds, timeout=120,
                   simultaneous=True)
            last_acked, last_good = _stop_writes(hb, lw)
        elif mode == "destructive" and scenario == "ransomware":
            last_acked, last_good = _stop_writes(hb, lw)
            ph.run("disaster", "灾难: 文件加密+删表 ransomware", playbook, "drill.yml", inventory,
                   {"dr_drill_phase": "attack", "dr_drill_id": drill_id})
        else:
            last_acked, last_good = _stop_writes(hb, lw)
            # the scratch restore reaches the last heartbeat only once its WAL is archived
            ph.run("flush", "WAL 归档 the last WAL reaches the repository", playbook, "drill.yml", inventory,
                   {"dr_drill_phase": "flush", "dr_drill_id": drill_id})
        declared = time.time()
        res["declared"] = declared
        key = "recover_%s" % (scenario if mode == "destructive" else "scratch")
        extra = dict(cfg.get("playbook_vars", {}).get(key) or {})
        if scenario == "ransomware" or mode != "destructive":
            # the last good point: just after the last acknowledged heartbeat (or load commit) before the attack
            extra.setdefault("replica_restore_target_time", time.strftime(
                "%Y-%m-%d %H:%M:%S+00", time.gmtime(float(last_good) + 1)) if last_good else "")
        if key != "recover_host-lost":
            ph.run("pull", "拉取最新备份副本 pull the repository copies at miyun", playbook, "drill.yml", inventory,
                   {"dr_drill_phase": "pull", "dr_drill_where": "scratch",
                    "dr_drill_host": _site_host(inventory, "scratch")})
        ph.run("recover", "恢复 recover at miyun (%s)" % cfg["playbooks"][key], playbook, cfg["playbooks"][key],
               inventory, extra)
        where = "miyun" if (mode == "destructive" and scenario == "host-lost") else "scratch"
        v = ph.run("verify-after", "恢复后四性检测 (%s)" % where, verify, inventory, where, drill_id, work)
        verifies.append({"stage": "after recovery (%s)" % where, "passed": v["passed"], "summary": v["summary"]})
        found = ph.run("service", "服务恢复 archive answers at %s" % where, newest_recovered,
                       inventory, where, drill_id, load["table"] if lw is not None else None)
        db_new, files_new = found[:2]
        load_new = found[2] if len(found) > 2 else None
        ph.items[-1]["detail"] = "newest heartbeat found: row %s, file %s" % (report.iso(db_new), report.iso(files_new))
        if lw is not None:
            ph.items[-1]["detail"] += "; newest load row %s" % report.iso_ms(load_new)
        res["rto_seconds"] = rto_from(ph.items, declared, "service")
        interval = cfg.get("heartbeat_interval", 1.0)
        fig_hb = rpo_figure(hb.acked_db, db_new, interval)
        fig_files = rpo_figure(hb.acked_files, files_new, interval)
        fig_load = rpo_figure(lw.acked, load_new, lw.interval, what="load commit") if lw is not None else None
        fig_db = database_figure(fig_hb, fig_load)
        res["rpo"] = {"database": fig_db, "files": fig_files,
                      # the flat figures of earlier reports: set only when measured (None = not measured)
                      "db_seconds": fig_db["seconds"] if fig_db["measured"] else None,
                      "files_seconds": fig_files["seconds"] if fig_files["measured"] else None,
                      "last_acked_at_geo": report.iso(last_acked), "newest_db_recovered": report.iso(db_new),
                      "newest_file_recovered": report.iso(files_new), "heartbeats_acked": len(hb.acked_db),
                      "heartbeat_errors": hb.errors, "heartbeat_interval": interval}
        if fig_load is not None:
            # rpo.database is the worse of these two (database_figure); both are kept
            res["rpo"].update(database_heartbeat=fig_hb, database_load=fig_load,
                              last_load_acked_at_geo=report.iso_ms(lw.last_acked),
                              newest_load_recovered=report.iso_ms(load_new), load_commits_acked=len(lw.acked),
                              load_interval=lw.interval)
        if mode == "destructive":
            if scenario == "host-lost" and (cfg.get("disaster_commands") or {}).get("host-back"):
                ph.run("host-back", "geo 主机恢复 host back", commands, _argvs(cfg["disaster_commands"]["host-back"]),
                       timeout=300)
            fb_key = failback_key(cfg, scenario)
            fb_vars = dict(cfg.get("playbook_vars", {}).get(fb_key) or {})
            if scenario == "ransomware":
                # geo is repaired in place to the point just verified at miyun
                fb_vars.setdefault("repair_time", extra["replica_restore_target_time"])
            ph.run("failback", "回切 failback to geo (%s)" % cfg["playbooks"][fb_key], playbook, cfg["playbooks"][fb_key],
                   inventory, fb_vars)
            if scenario == "ransomware":
                # the encrypted files held the file replica's pulls in quarantine (no snapshot since the
                # attack); geo is repaired, so the operator's release lets history go on
                ph.run("release", "放行 release (files, %s)" % RELEASE_PLAYBOOK, release, inventory, "files",
                       "drill %s: geo repaired (%s)" % (drill_id, cfg["playbooks"][fb_key]))
            v = ph.run("verify-failback", "回切后四性检测 (geo)", verify, inventory, "geo", drill_id, work)
            verifies.append({"stage": "after failback (geo)", "passed": v["passed"], "summary": v["summary"]})
    except Exception as e:  # noqa: BLE001 - the report is written whatever happened
        res["error"] = _one_line("%s: %s" % (type(e).__name__, getattr(e, "outcome", None) or e), 500)
    finally:
        if hb is not None and hb.is_alive():
            hb.stop()
        if lw is not None and lw.is_alive():
            lw.stop()
    res["load"] = _load_record(load, lw)
    res["finished"] = time.time()
    res.setdefault("rto_seconds", None)
    verdict = assess(res["rpo"], res["rto_seconds"], targets, synchronous=res["replication"]["synchronous"])
    if res["rpo"]:
        res["rpo"]["overall"] = verdict["rpo_overall"]
    res.update(rpo_seconds=verdict["rpo_seconds"], rto_met=verdict["rto_met"], rpo_met=verdict["rpo_met"],
               level=verdict["level"])
    res["passed"] = (not res.get("error") and all(p["ok"] for p in ph.items) and all(v["passed"] for v in verifies)
                     and res["rto_met"] and res["rpo_met"])
    if res.get("error"):
        res["level"] = {"level": None, "note": "drill did not complete",
                        "basis": "drill did not complete: " + res["error"][:500]}
    return res


def main(argv=None):
    p = argparse.ArgumentParser(prog="archive-dr drill", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    p.add_argument("--mode", choices=["destructive", "non-destructive"], default="destructive")
    p.add_argument("--inventory", action="append",
                   help="an inventory source, repeatable in order (default: the lab inventory)")
    p.add_argument("--reports", default=str(paths.REPORTS))
    a = p.parse_args(argv)
    res = run(a.scenario, a.mode, paths.sources(a.inventory, paths.default_lab_inventory()), a.reports)
    written = report.write(res, a.reports)
    for ph in res["phases"]:
        print("%-16s %8.1f s  %s  %s" % (ph["name"], ph["seconds"], "ok" if ph["ok"] else "FAIL", ph["detail"][:120]))
    print("RTO %s (target %s)  RPO %s (target %s)  GB/T 20988 level %s" % (
        report.human_seconds(res["rto_seconds"]), report.human_seconds(res["targets"]["rto_seconds"]),
        report.figure_text(res["rpo"].get("overall")), report.human_seconds(res["targets"]["rpo_seconds"]),
        report.DASH if res["level"]["level"] is None else res["level"]["level"]))
    if res["level"]["level"] is None:
        print("level: %s" % res["level"]["basis"])
    if res.get("error"):
        print("drill error: %s" % res["error"][:2000], file=sys.stderr)
        for ph in res["phases"]:
            if not ph["ok"] and ph.get("log"):
                print("full output: %s" % (Path(a.reports) / ph["log"]), file=sys.stderr)
    print(json.dumps({k: str(v) for k, v in written.items()}))
    print("drill report: %s (%s)" % (written["html"], written["md"]))
    return 0 if res["passed"] else 1


def inspect_main(argv=None):
    """archive-dr inspect [ansible-playbook options]: run playbooks/inspect.yml (exit non-zero on critical findings).
    Without -i the inventory is the lab's."""
    argv = list(argv or [])
    own_inventory = any(a in ("-i", "--inventory", "--inventory-file") or a.startswith(("-i", "--inventory="))
                        for a in argv)
    result = runner.run_playbook("inspect.yml", None if own_inventory else paths.default_lab_inventory(),
                                 args=argv, quiet=False)
    if not result.ok:
        print("archive-dr inspect: %s" % result.outcome(), file=sys.stderr)
    return 0 if result.ok else (result.rc or 1)


if __name__ == "__main__":
    sys.exit(main())
