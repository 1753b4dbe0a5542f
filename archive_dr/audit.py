"""The operators' actions of a period, from the audit ledger, with its chain verification (evidence pack).

The ledger (``module_utils/audit_ledger.py``) gets one record per playbook run from the callback
``callback_plugins/archive_dr_audit.py``: on the controller (``.audit/ledger.jsonl``) and, shipped over
SSH to the append-only account at miyun (``roles/audit_ledger``), in miyun's own chain. ``section()``
reads miyun's ledger (``dump``, read-only) when the remote is configured, verifies both chains, checks
that every receipt the controller holds (miyun's seq and hash of each record it shipped) is in miyun's
ledger, and lists the runs of the period::

    sec = section(start, end)             # dates, inclusive (UTC)
    write(sec, out_dir, "2026-01-01_2026-01-07")   # audit-<id>.{json,md} + copies of the ledgers
    print(render_markdown(sec))

Where: ``ARCHIVE_DR_AUDIT_LEDGER`` / ``ARCHIVE_DR_AUDIT_REMOTE`` / ``ARCHIVE_DR_AUDIT_REMOTE_KEY``, else
ansible.cfg's ``[callback_archive_dr_audit]`` ``ledger``, ``remote``, ``remote_key`` (the callback's options).
"""
from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from archive_dr import paths
from archive_dr.fixity import load
from archive_dr.ssh import SshTarget, ssh_argv

ledger = load("audit_ledger")

DEFAULT_LEDGER = paths.ROOT / ".audit" / "ledger.jsonl"
SECTION = "callback_archive_dr_audit"


def config(cfg_path: Path | str = paths.ANSIBLE_CFG, environ=None) -> dict:
    """{"ledger", "remote", "remote_key"}: the environment first, then ansible.cfg (as the callback reads them)."""
    environ = os.environ if environ is None else environ
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(cfg_path)

    def get(key, env):
        return environ.get(env) or (ini.get(SECTION, key, fallback="") if ini.has_section(SECTION) else "")
    base = Path(cfg_path).resolve().parent
    led = get("ledger", "ARCHIVE_DR_AUDIT_LEDGER")
    key = get("remote_key", "ARCHIVE_DR_AUDIT_REMOTE_KEY")
    return {"ledger": Path(led) if led and Path(led).is_absolute() else base / led if led else DEFAULT_LEDGER,
            "remote": get("remote", "ARCHIVE_DR_AUDIT_REMOTE") or None,
            "remote_host": get("remote_host", "ARCHIVE_DR_AUDIT_REMOTE_HOST") or None,
            "remote_user": get("remote_user", "ARCHIVE_DR_AUDIT_REMOTE_USER") or "audit-append",
            "remote_key": str(Path(key).expanduser() if Path(key).expanduser().is_absolute() else base / key)
            if key else None}


def remote_target(remote: str, key: str | None = None) -> SshTarget:
    """``user@address[:port]`` as an SshTarget."""
    user, _, host = remote.rpartition("@")
    port = None
    if host.count(":") == 1:
        host, port = host.split(":")
    return SshTarget(address=host, user=user or "root", key=key, port=int(port) if port else None)


def fetch_remote(target: SshTarget, dest: Path, timeout: float = 60) -> Path:
    """miyun's ledger, byte for byte (the forced command's ``dump``), into ``dest``."""
    p = subprocess.run(ssh_argv(target, connect_timeout=10) + ["dump"], capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("ssh %s@%s dump: exit %d %s" % (target.user, target.address, p.returncode,
                                                            p.stderr.decode(errors="replace").strip()[-300:]))
    dest.write_bytes(p.stdout)
    return dest


def receipts(path) -> list[tuple[int, str]]:
    """(seq, hash) of every record this controller shipped to miyun (its local ledger's receipts)."""
    out = []
    for e in ledger.entries(path):
        rem = e["record"].get("remote") or {}
        for r in [rem.get("receipt")] + list(rem.get("spool_shipped") or []):
            if isinstance(r, dict) and "seq" in r and "hash" in r:
                out.append((int(r["seq"]), str(r["hash"])))
    return out


def _operator(rec):
    op = rec.get("operator") or {}
    who = str(op.get("user") or "?")
    return who + (" (sudo: %s)" % op["sudo_user"] if op.get("sudo_user") else "")


def _scope(rec):
    parts = []
    if rec.get("limit"):
        parts.append("limit %s" % rec["limit"])
    if rec.get("tags"):
        parts.append("tags %s" % ",".join(rec["tags"]))
    if rec.get("skip_tags"):
        parts.append("skip %s" % ",".join(rec["skip_tags"]))
    if rec.get("extra_vars"):
        parts.append("-e %s" % ",".join(rec["extra_vars"]))
    return "; ".join(parts) or "-"


def row(entry: dict) -> dict:
    """One run as a table row."""
    rec = entry["record"]
    changed = rec.get("changed") or []
    return {
        "seq": entry["seq"], "time": str(rec.get("started") or entry["time"])[:19].replace("T", " "),
        "operator": _operator(rec), "controller": rec.get("controller") or "-",
        "playbook": ", ".join(os.path.basename(p) for p in rec.get("playbooks") or []) or "-",
        "inventory": ", ".join(rec.get("inventory") or []) or "-",
        "scope": _scope(rec), "mode": "check" if rec.get("check") else "apply",
        "hosts_changed": ", ".join(rec.get("hosts_changed") or []) or "-",
        "changed_tasks": len(changed),
        "failed_tasks": sum(1 for f in rec.get("failed") or [] if not f.get("ignored")),
        "firewall_sessions": len(rec.get("firewall") or []),
        "result": rec.get("result") or "-",
    }


def _ledger_state(name, path, anchors=()):
    problems = ledger.verify(path, anchors) if Path(path).exists() else []
    return {"name": name, "path": str(path), "exists": Path(path).exists(),
            "entries": len(ledger.entries(path)) if Path(path).exists() else 0,
            "head": ledger.head(path) if Path(path).exists() else None, "problems": problems,
            "ok": not problems}


def remote_from_inventory(cfg: dict, inventory) -> dict:
    """The remote as the callback finds it: the inventory host ``remote_host`` (its ansible_host, port and
    key), the account ``remote_user``; cfg unchanged when a remote is given directly or no host is named."""
    if cfg.get("remote") or not cfg.get("remote_host") or inventory is None:
        return cfg
    from archive_dr.inventory import Inventory

    inv = Inventory(inventory)
    if cfg["remote_host"] not in inv.hosts():
        return cfg
    v = inv.host_vars(cfg["remote_host"], ["ansible_host", "ansible_port", "ansible_ssh_private_key_file"])
    port = ":%s" % v["ansible_port"] if v.get("ansible_port") else ""
    return dict(cfg, remote="%s@%s%s" % (cfg["remote_user"], v.get("ansible_host") or cfg["remote_host"], port),
                remote_key=cfg.get("remote_key") or v.get("ansible_ssh_private_key_file"))


def section(start, end, local: Path | str | None = None, remote_file: Path | str | None = None,
            cfg: dict | None = None, work_dir: Path | str | None = None, inventory=None) -> dict:
    """The audit section of the evidence pack for the days [start, end] (UTC).

    ``local``: the controller's ledger (default from ``config()``); ``remote_file``: miyun's ledger
    already fetched (default: fetched now when a remote is configured, into ``work_dir``)."""
    cfg = remote_from_inventory(cfg if cfg is not None else config(), inventory)
    local = Path(local) if local else Path(cfg["ledger"])
    ledgers, problems = [], []
    if remote_file is None and cfg.get("remote"):
        work = Path(work_dir or tempfile.mkdtemp(prefix="archive-dr-audit-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            remote_file = fetch_remote(remote_target(cfg["remote"], cfg.get("remote_key")), work / "audit-ledger-miyun.jsonl")
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            problems.append("miyun: ledger not fetched (%s)" % e)
    if remote_file is not None:
        anchors = receipts(local) if local.exists() else []
        st = _ledger_state("miyun", remote_file, anchors)
        st["receipts_checked"] = len(anchors)
        ledgers.append(st)
    if local.exists() or remote_file is None:
        ledgers.append(_ledger_state("controller", local))
    for st in ledgers:
        if not st["exists"]:
            problems.append("%s: no ledger at %s" % (st["name"], st["path"]))
        problems += ["%s: %s" % (st["name"], p) for p in st["problems"]]
    source = next((st for st in ledgers if st["exists"]), None)
    rows = [row(e) for e in ledger.entries(source["path"], start, end)] if source else []
    return {
        "period": {"from": str(start), "to": str(end)},
        "source": source["name"] if source else None,
        "ledgers": ledgers, "verified": not problems and source is not None, "problems": problems,
        "rows": rows, "runs": len(rows), "changed_tasks": sum(r["changed_tasks"] for r in rows),
        "runs_failed": sum(1 for r in rows if r["result"] != "ok"),
        "firewall_sessions": sum(r["firewall_sessions"] for r in rows),
    }


def _cell(v):
    return str(v).replace("|", "\\|").replace("\n", " ")


COLUMNS = [("seq", "#"), ("time", "time (UTC)"), ("operator", "operator"), ("playbook", "playbook"),
           ("inventory", "inventory"), ("scope", "limit / tags"), ("mode", "mode"),
           ("hosts_changed", "hosts changed"), ("changed_tasks", "changed tasks"),
           ("firewall_sessions", "firewall"), ("result", "result")]


def render_markdown(sec: dict) -> str:
    lines = ["## 操作审计 Operators' actions %s – %s" % (sec["period"]["from"], sec["period"]["to"]), ""]
    verdict = "intact" if sec["verified"] else "BROKEN / NOT VERIFIED"
    lines.append("Hash chain: **%s**" % verdict)
    for st in sec["ledgers"]:
        head = st["head"]
        lines.append("- %s ledger `%s`: %d entries%s%s" % (
            st["name"], st["path"], st["entries"], ", head seq %d %s" % (head["seq"], head["hash"][:16]) if head else "",
            ", %d controller receipts checked" % st["receipts_checked"] if "receipts_checked" in st else ""))
    for p in sec["problems"]:
        lines.append("- **problem**: %s" % p)
    lines += ["", "%d runs (source: %s ledger), %d changed tasks, %d firewall sessions, %d runs not ok"
              % (sec["runs"], sec["source"] or "no", sec["changed_tasks"], sec["firewall_sessions"],
                 sec["runs_failed"]), ""]
    lines.append("| " + " | ".join(t for _k, t in COLUMNS) + " |")
    lines.append("|" + "---|" * len(COLUMNS))
    for r in sec["rows"]:
        lines.append("| " + " | ".join(_cell(r[k]) for k, _t in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write(sec: dict, out_dir, ident: str) -> dict:
    """audit-<ident>.json and .md in out_dir, and a copy of each ledger read (the evidence itself)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / ("audit-%s.json" % ident), "md": out / ("audit-%s.md" % ident)}
    written["json"].write_text(json.dumps(sec, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    written["md"].write_text(render_markdown(sec), encoding="utf-8")
    for st in sec["ledgers"]:
        if st["exists"]:
            dest = out / ("audit-ledger-%s.jsonl" % st["name"])
            if Path(st["path"]).resolve() != dest.resolve():
                shutil.copyfile(st["path"], dest)
            written["ledger-" + st["name"]] = dest
    return written
