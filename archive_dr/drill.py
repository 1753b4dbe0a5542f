"""DR drill (灾备演练): a scripted disaster at geo, recovery at miyun, failback; RTO per phase and RPO measured.

``archive-dr drill --scenario host-lost|ransomware [--mode destructive|non-destructive]``
``archive-dr inspect [ansible-playbook options]``   (runs playbooks/inspect.yml)

The drill is a sequence of timed phases. Host work is Ansible (``playbooks/drill.yml``
with ``-e dr_drill_phase=<phase>``, and the replica playbooks named in the
inventory's ``dr_drill``); this module measures and decides:

* a heartbeat writer on the controller commits one row per second into the
  archive database at geo (``archive_dr_drill_heartbeat``) and writes one
  heartbeat file into the file store, keeping the geo timestamps it got an
  acknowledgement for; after recovery the newest heartbeat present in the
  recovered database / file store gives the RPO (last acknowledged at geo minus
  newest recovered; for ransomware, the last acknowledged before the attack);
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
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from archive_dr import report

ROOT = Path(__file__).resolve().parents[1]
LAB_STATE = ROOT / ".lab" / "state.json"
SCENARIOS = {"host-lost": "主机损毁 archive host lost", "ransomware": "勒索软件 files encrypted + table dropped"}

# GB/T 20988-2007 Annex A, Table A.1 (informative): RTO / RPO per disaster-recovery level.
# (level, max RTO seconds or None = no bound stated, max RPO seconds). See docs/gbt20988.md.
GBT20988_LEVELS = [
    (6, 15 * 60, 0),               # RTO 数分钟, RPO 0
    (5, 2 * 86400, 30 * 60),       # RTO 数分钟至2天, RPO 0至30分钟
    (4, 2 * 86400, 86400),         # RTO 数小时至2天, RPO 数小时至1天
    (3, None, 86400),              # RTO 12小时以上, RPO 数小时至1天
    (2, None, 7 * 86400),          # RTO 24小时以后, RPO 1天至7天
    (1, None, 7 * 86400),          # RTO 2天以上, RPO 1天至7天
]


def gbt20988_level(rto_seconds, rpo_seconds, synchronous=False):
    """The highest level whose RTO and RPO bounds the measured figures meet (technical indicators only).

    Level 6 (RPO 0) needs synchronous replication: with asynchronous replication a measured 0 is
    luck of timing, not a property of the system (docs/gbt20988.md), so it supports level 5 at most."""
    if rto_seconds is None or rpo_seconds is None:
        return {"level": None, "note": "not measured", "basis": "RTO or RPO not measured"}
    for level, max_rto, max_rpo in GBT20988_LEVELS:
        if level == 6 and not synchronous:
            continue
        if rpo_seconds <= max_rpo and (max_rto is None or rto_seconds <= max_rto):
            basis = ("measured RTO %s, RPO %s; GB/T 20988-2007 Annex A Table A.1: level %d allows RTO %s and RPO up to %s. "
                     "The level also requires the non-technical elements of Annex A (backup site, staff, "
                     "operations, plan); the figures support it, they do not confer it." % (
                         report.human_seconds(rto_seconds), report.human_seconds(rpo_seconds), level,
                         "up to " + report.human_seconds(max_rto) if max_rto else "without upper bound",
                         report.human_seconds(max_rpo)))
            return {"level": level, "note": "technical indicators", "basis": basis}
    return {"level": 0, "note": "below level 1", "basis": "RPO above 7 days"}


class Phases:
    """Timed phases; the first phase's start is the declaration of the disaster unless marked otherwise."""

    def __init__(self):
        self.items = []

    def run(self, name, label, fn, *a, **kw):
        p = {"name": name, "label": label, "start": time.time(), "ok": False, "detail": ""}
        self.items.append(p)
        try:
            out = fn(*a, **kw)
            p["ok"] = True
            if isinstance(out, str):
                p["detail"] = out
            return out
        except Exception as e:  # noqa: BLE001 - recorded in the report, then re-raised
            p["detail"] = "%s: %s" % (type(e).__name__, e)
            raise
        finally:
            p["end"] = time.time()
            p["seconds"] = round(p["end"] - p["start"], 3)


def rto_from(phases, declared_at, available_phase):
    """Seconds from the declaration to the end of the phase that made the archive available."""
    for p in phases:
        if p["name"] == available_phase and p.get("ok"):
            return round(p["end"] - declared_at, 3)
    return None


def rpo_from(last_acked_geo, newest_recovered):
    """Seconds of acknowledged writes lost (0 when everything acknowledged was recovered)."""
    if last_acked_geo is None:
        return None
    if newest_recovered is None:
        return None
    return round(max(0.0, float(last_acked_geo) - float(newest_recovered)), 3)


def files_rpo(acked_files, newest_recovered):
    """(seconds, note) for the heartbeat files: when not one of this drill's came back (nothing, or
    only files of an earlier drill, which share the directory), everything since the first
    acknowledged file was lost, so the heartbeat's lifetime is a lower bound (and the note says so)."""
    if not acked_files:
        return None, None
    if newest_recovered is None or float(newest_recovered) < acked_files[0]:
        return (rpo_from(acked_files[-1], acked_files[0]),
                "no heartbeat file recovered: the file RPO is at least the heartbeat's lifetime")
    return rpo_from(acked_files[-1], newest_recovered), None


# ------------------------------------------------------------------ Ansible plumbing
def _env():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               CONTAINERS_CONF=str(ROOT / "lab" / "containers.conf"))
    return env


def _bin(tool):
    return str(Path(sys.executable).parent / tool)


def playbook(name, inventory, extra=None, timeout=3600):
    path = ROOT / "playbooks" / name
    argv = [_bin("ansible-playbook"), "-i", str(inventory), str(path)]
    if extra:
        argv += ["-e", json.dumps(extra)]
    p = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("%s failed (rc=%d): %s" % (name, p.returncode, (p.stdout + p.stderr)[-3000:]))
    return p.stdout


def host_vars(inventory, host, names):
    """Templated variables of a host, via ansible's debug module (resolves lookups like the SSH key path)."""
    argv = [_bin("ansible"), "-i", str(inventory), host, "-m", "ansible.builtin.debug", "-a",
            "msg={{ {%s} | to_json }}" % ", ".join("'%s': %s | default(None)" % (n, n) for n in names)]
    env = _env()
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
    env["ANSIBLE_STDOUT_CALLBACK"] = "json"
    p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    data = json.loads(p.stdout)
    res = data["plays"][0]["tasks"][0]["hosts"][host]
    msg = res["msg"]
    return json.loads(msg) if isinstance(msg, str) else msg


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


def ssh_argv(inventory, host):
    v = host_vars(inventory, host, ["ansible_host", "ansible_user", "ansible_ssh_private_key_file", "ansible_port"])
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3", "-o", "ControlMaster=auto",
            "-o", "ControlPath=/tmp/archive-dr-drill-%C", "-o", "ControlPersist=120"]
    if v.get("ansible_ssh_private_key_file"):
        argv += ["-i", v["ansible_ssh_private_key_file"]]
    if v.get("ansible_port"):
        argv += ["-p", str(v["ansible_port"])]
    argv.append("%s@%s" % (v.get("ansible_user") or "root", v.get("ansible_host") or host))
    return argv


# ------------------------------------------------------------------ the drill
def load_config(inventory):
    with open(Path(inventory) / "group_vars" / "all" / "dr_targets.yml", encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return data.get("dr_targets", {}), data.get("dr_drill", {})


def lab_inventory():
    """The inventory of the running lab (recorded by ``archive-dr lab up``), or None."""
    try:
        inv = json.loads(LAB_STATE.read_text()).get("inventory")
    except (OSError, ValueError):
        return None
    return Path(inv).resolve() if inv else None


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
        if not pb or not (ROOT / "playbooks" / pb).exists():
            missing.append("%s (%s)" % (key, pb))
    if missing:
        raise RuntimeError("playbooks missing: %s — the replica work (promote/failback/restore at miyun) has "
                           "not landed" % ", ".join(missing))
    if mode == "destructive":
        lab = lab_inventory()
        if lab is None or inventory is None or Path(inventory).resolve() != lab:
            raise RuntimeError("destructive drill refused: %s is not the lab inventory recorded in %s (%s); "
                               "on real sites use --mode non-destructive" % (inventory, LAB_STATE, lab))
    return "playbooks: %s" % ", ".join(cfg["playbooks"][k] for k in need)


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


def newest_recovered(inventory, where, drill_id):
    out = playbook("drill.yml", inventory, {"dr_drill_phase": "probe", "dr_drill_where": where,
                                            "dr_drill_host": _site_host(inventory, where), "dr_drill_id": drill_id})
    for line in out.splitlines():
        if "DRILL_PROBE " in line:
            data = json.loads(line.split("DRILL_PROBE ", 1)[1].rstrip("\"' ,"))
            return data.get("db"), data.get("files")
    raise RuntimeError("probe printed nothing")


def run(scenario, mode, inventory, reports_dir):
    targets, cfg = load_config(inventory)
    drill_id = time.strftime("%Y%m%dT%H%M%S") + "-" + scenario
    ph = Phases()
    verifies = []
    res = {"kind": "drill", "id": drill_id, "scenario": scenario, "scenario_label": SCENARIOS[scenario], "mode": mode,
           "started": time.time(), "targets": {"rto_seconds": targets.get("rto_seconds"),
                                               "rpo_seconds": targets.get("rpo_seconds")},
           "phases": ph.items, "verify": verifies, "rpo": {}}
    work = Path(reports_dir) / "drill-work"
    work.mkdir(parents=True, exist_ok=True)
    hb = None
    declared = None
    try:
        ph.run("preflight", "准备检查 preflight", preflight, cfg, scenario, mode, inventory)
        ph.run("prepare", "心跳表与基线 prepare", playbook, "drill.yml", inventory,
               {"dr_drill_phase": "prepare", "dr_drill_id": drill_id})
        v = ph.run("verify-before", "演练前四性检测 (geo)", verify, inventory, "geo", drill_id, work)
        verifies.append({"stage": "before (geo)", "passed": v["passed"], "summary": v["summary"]})
        hb = Heartbeat(ssh_argv(inventory, cfg.get("archive_host", "geo-archive")), drill_id,
                       cfg.get("db", "archive"), cfg.get("heartbeat_table", "archive_dr_drill_heartbeat"),
                       cfg.get("heartbeat_dir", "/srv/archive/.archive-dr-drill"), cfg.get("heartbeat_interval", 1.0))
        hb.start()
        warmup = cfg.get("heartbeat_warmup", 5)
        time.sleep(float(warmup.get(scenario, 5) if isinstance(warmup, dict) else warmup))
        if mode == "destructive" and scenario == "host-lost":
            cmd = (cfg.get("disaster_commands") or {}).get("host-lost")
            ph.run("disaster", "灾难: 主机断电 host lost", subprocess.run, cmd, check=True, capture_output=True,
                   timeout=120)
            last_acked = hb.stop()
        elif mode == "destructive" and scenario == "ransomware":
            last_acked = hb.stop()
            ph.run("disaster", "灾难: 文件加密+删表 ransomware", playbook, "drill.yml", inventory,
                   {"dr_drill_phase": "attack", "dr_drill_id": drill_id})
        else:
            last_acked = hb.stop()
            # the scratch restore reaches the last heartbeat only once its WAL is archived
            ph.run("flush", "WAL 归档 the last WAL reaches the repository", playbook, "drill.yml", inventory,
                   {"dr_drill_phase": "flush", "dr_drill_id": drill_id})
        declared = time.time()
        res["declared"] = declared
        key = "recover_%s" % (scenario if mode == "destructive" else "scratch")
        extra = dict(cfg.get("playbook_vars", {}).get(key) or {})
        if scenario == "ransomware" or mode != "destructive":
            # the last good point: just after the last acknowledged heartbeat before the attack
            extra.setdefault("replica_restore_target_time", time.strftime(
                "%Y-%m-%d %H:%M:%S+00", time.gmtime(float(last_acked) + 1)) if last_acked else "")
        if key != "recover_host-lost":
            ph.run("pull", "拉取最新备份副本 pull the repository copies at miyun", playbook, "drill.yml", inventory,
                   {"dr_drill_phase": "pull", "dr_drill_where": "scratch",
                    "dr_drill_host": _site_host(inventory, "scratch")})
        ph.run("recover", "恢复 recover at miyun (%s)" % cfg["playbooks"][key], playbook, cfg["playbooks"][key],
               inventory, extra)
        where = "miyun" if (mode == "destructive" and scenario == "host-lost") else "scratch"
        v = ph.run("verify-after", "恢复后四性检测 (%s)" % where, verify, inventory, where, drill_id, work)
        verifies.append({"stage": "after recovery (%s)" % where, "passed": v["passed"], "summary": v["summary"]})
        db_new, files_new = ph.run("service", "服务恢复 archive answers at %s" % where, newest_recovered,
                                   inventory, where, drill_id)
        res["rto_seconds"] = rto_from(ph.items, declared, "service")
        rpo_db = rpo_from(last_acked, db_new)
        rpo_files, files_note = files_rpo(hb.acked_files, files_new)
        res["rpo"] = {"db_seconds": rpo_db, "files_seconds": rpo_files, "last_acked_at_geo": report.iso(last_acked),
                      "newest_db_recovered": report.iso(db_new), "newest_file_recovered": report.iso(files_new),
                      "heartbeats_acked": len(hb.acked_db), "heartbeat_errors": hb.errors}
        if files_note:
            res["rpo"]["files_note"] = files_note
        if mode == "destructive":
            if scenario == "host-lost" and (cfg.get("disaster_commands") or {}).get("host-back"):
                ph.run("host-back", "geo 主机恢复 host back", subprocess.run, cfg["disaster_commands"]["host-back"],
                       check=True, capture_output=True, timeout=300)
            fb_key = failback_key(cfg, scenario)
            fb_vars = dict(cfg.get("playbook_vars", {}).get(fb_key) or {})
            if scenario == "ransomware":
                # geo is repaired in place to the point just verified at miyun
                fb_vars.setdefault("repair_time", extra["replica_restore_target_time"])
            ph.run("failback", "回切 failback to geo (%s)" % cfg["playbooks"][fb_key], playbook, cfg["playbooks"][fb_key],
                   inventory, fb_vars)
            v = ph.run("verify-failback", "回切后四性检测 (geo)", verify, inventory, "geo", drill_id, work)
            verifies.append({"stage": "after failback (geo)", "passed": v["passed"], "summary": v["summary"]})
    except Exception as e:  # noqa: BLE001 - the report is written whatever happened
        res["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        if hb is not None and hb.is_alive():
            hb.stop()
    res["finished"] = time.time()
    vals = [x for x in (res["rpo"].get("db_seconds"), res["rpo"].get("files_seconds")) if x is not None]
    res["rpo_seconds"] = max(vals) if vals else None
    res.setdefault("rto_seconds", None)
    res["rto_met"] = res["rto_seconds"] is not None and res["rto_seconds"] <= (targets.get("rto_seconds") or 0)
    res["rpo_met"] = res["rpo_seconds"] is not None and res["rpo_seconds"] <= (targets.get("rpo_seconds") or 0)
    res["level"] = gbt20988_level(res["rto_seconds"], res["rpo_seconds"],
                                  synchronous=cfg.get("replication_mode") == "sync")
    res["passed"] = (not res.get("error") and all(p["ok"] for p in ph.items) and all(v["passed"] for v in verifies)
                     and res["rto_met"] and res["rpo_met"])
    if res.get("error"):
        res["level"]["basis"] = "drill did not complete: " + res["error"][:500]
    return res


def main(argv=None):
    p = argparse.ArgumentParser(prog="archive-dr drill", description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    p.add_argument("--mode", choices=["destructive", "non-destructive"], default="destructive")
    p.add_argument("--inventory", default=str(ROOT / "inventory" / "lab"))
    p.add_argument("--reports", default=str(ROOT / "reports"))
    a = p.parse_args(argv)
    res = run(a.scenario, a.mode, a.inventory, a.reports)
    paths = report.write(res, a.reports)
    for ph in res["phases"]:
        print("%-16s %8.1f s  %s  %s" % (ph["name"], ph["seconds"], "ok" if ph["ok"] else "FAIL", ph["detail"][:120]))
    print("RTO %s (target %s)  RPO %s (target %s)  GB/T 20988 level %s" % (
        report.human_seconds(res["rto_seconds"]), report.human_seconds(res["targets"]["rto_seconds"]),
        report.human_seconds(res["rpo_seconds"]), report.human_seconds(res["targets"]["rpo_seconds"]),
        res["level"]["level"]))
    if res.get("error"):
        print("drill error: %s" % res["error"][:2000], file=sys.stderr)
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    print("drill report: %s (%s)" % (paths["html"], paths["md"]))
    return 0 if res["passed"] else 1


def inspect_main(argv=None):
    """archive-dr inspect [ansible-playbook options]: run playbooks/inspect.yml (exit non-zero on critical findings)."""
    argv = list(argv or [])
    return subprocess.call([_bin("ansible-playbook"), str(ROOT / "playbooks" / "inspect.yml"), *argv], cwd=ROOT,
                           env=_env())


if __name__ == "__main__":
    sys.exit(main())
