# -*- coding: utf-8 -*-
"""Audit trail of every playbook run: one hash-chained ledger entry per run, shipped to miyun."""
from __future__ import annotations

DOCUMENTATION = r"""
name: archive_dr_audit
type: aggregate
short_description: Records every playbook run (who, what, every change, the result) in the hash-chained audit ledger
description:
  - Collects per run the operator (controller user and SUDO_USER), controller host, start and end time,
    playbooks, inventory sources, limit, tags and skip-tags, check and diff mode, the NAMES of the extra
    vars, every changed task (host, task, action, its diff), every failure, every vendor_firewall session
    (device, outcome, commands) and the final stats.
  - Appends ONE record per run to the controller's ledger (module_utils/audit_ledger.py) and, when
    I(remote) is set, first ships it over SSH to the append-only account at miyun (roles/audit_ledger),
    whose receipt (seq, hash) is kept in the local record. A record that cannot be shipped is spooled and
    shipped by the next run.
  - "Secrets: a no_log task's result, diff and message are never recorded (only C(censored)); every value
    of a vault-encrypted file or inline !vault value the run can read (inventory sources, playbook-adjacent
    group_vars/host_vars, roles' vars and defaults, play vars_files, @extra-vars files) is replaced by
    [REDACTED] anywhere in the record, as are its lines and its base64 form."
  - Enable with C(callbacks_enabled = archive_dr_audit) and C(callback_plugins = callback_plugins) in ansible.cfg.
requirements: [enable in ansible.cfg]
options:
  ledger:
    description: The controller's ledger (default C(<project>/.audit/ledger.jsonl)).
    type: path
    env: [{name: ARCHIVE_DR_AUDIT_LEDGER}]
    ini: [{section: callback_archive_dr_audit, key: ledger}]
  remote_host:
    description:
      - Inventory name of the ledger host at miyun (e.g. C(miyun-store)); its C(ansible_host), C(ansible_port) and
        C(ansible_ssh_private_key_file) (templated) say where to ship. A run whose inventory lacks that host
        (a test inventory) ships nothing and says so in the record.
    type: str
    default: ""
    env: [{name: ARCHIVE_DR_AUDIT_REMOTE_HOST}]
    ini: [{section: callback_archive_dr_audit, key: remote_host}]
  remote_user:
    description: The append-only account at I(remote_host) (roles/audit_ledger's C(audit_ledger_user)).
    type: str
    default: audit-append
    env: [{name: ARCHIVE_DR_AUDIT_REMOTE_USER}]
    ini: [{section: callback_archive_dr_audit, key: remote_user}]
  remote:
    description: C(user@address[:port]) of the append-only account, instead of I(remote_host); empty and no
      I(remote_host) ships nothing.
    type: str
    default: ""
    env: [{name: ARCHIVE_DR_AUDIT_REMOTE}]
    ini: [{section: callback_archive_dr_audit, key: remote}]
  remote_key:
    description: SSH private key for the delivery (default the remote host's C(ansible_ssh_private_key_file), else ssh's own).
    type: path
    env: [{name: ARCHIVE_DR_AUDIT_REMOTE_KEY}]
    ini: [{section: callback_archive_dr_audit, key: remote_key}]
  remote_timeout:
    description: Seconds for one SSH delivery.
    type: int
    default: 20
    env: [{name: ARCHIVE_DR_AUDIT_REMOTE_TIMEOUT}]
    ini: [{section: callback_archive_dr_audit, key: remote_timeout}]
  max_diff_chars:
    description: A longer diff (or message) is cut to this many characters (the record says so).
    type: int
    default: 20000
    env: [{name: ARCHIVE_DR_AUDIT_MAX_DIFF_CHARS}]
    ini: [{section: callback_archive_dr_audit, key: max_diff_chars}]
"""

import atexit
import base64
import datetime
import difflib
import getpass
import importlib.util
import json
import os
import socket
import subprocess
import uuid

from ansible import context
from ansible import constants as C
from ansible.plugins.callback import CallbackBase

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDACTED = "[REDACTED]"
MIN_SUBSTRING = 6          # a shorter vault value is redacted only where a whole string equals it
MIN_LINE = 12              # lines of a multi-line vault value (keys, certificates) redacted on their own
MAX_SCAN_BYTES = 1024 * 1024
FIREWALL_KEYS = ("device", "outcome", "commands", "changed_lines", "pushed_lines", "backup", "stage",
                 "rollback", "device_compare")


def _ledger_module():
    """module_utils/audit_ledger.py of this project, imported by file (no Ansible packaging involved)."""
    path = os.path.join(PROJECT, "module_utils", "audit_ledger.py")
    spec = importlib.util.spec_from_file_location("archive_dr_audit_ledger", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


audit_ledger = _ledger_module()


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _rel(path):
    """A path relative to the project when it is inside it."""
    p = os.path.abspath(str(path))
    return os.path.relpath(p, PROJECT) if p == PROJECT or p.startswith(PROJECT + os.sep) else p


# ------------------------------------------------------------------ secrets

def _leaves(data, encrypted_only):
    """Plaintext of every scalar in ``data`` (only the inline !vault ones when ``encrypted_only``)."""
    from ansible.parsing.vault import EncryptedString, VaultHelper
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set)):
            stack.extend(v)
        elif isinstance(v, EncryptedString):
            yield str(v)
        elif encrypted_only:
            if isinstance(v, str) and VaultHelper.get_ciphertext(v, with_tags=False) is not None:
                yield str(v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, (str, int, float)):
            yield str(v)


def vault_values_of_file(loader, path):
    """The plaintext values a vault-encrypted file or a file with inline !vault values holds."""
    try:
        if os.path.getsize(path) > MAX_SCAN_BYTES:
            return []
        with open(path, "rb") as f:
            head = f.read(MAX_SCAN_BYTES)
    except OSError:
        return []
    whole = head.lstrip().startswith(b"$ANSIBLE_VAULT")
    if not whole and b"!vault" not in head:
        return []
    data = loader.load_from_file(path, cache="none")
    return list(_leaves(data, encrypted_only=not whole))


def _files_under(path):
    if os.path.isfile(path):
        yield path
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            yield os.path.join(root, name)


def secret_files(inventory_sources, playbook_dirs, roles_paths, extra_var_files, vars_files):
    """Every file that may hold vault values of this run (existing ones, no duplicates)."""
    roots = []
    for src in inventory_sources:
        src = str(src)
        if os.path.isdir(src):
            roots.append(src)
        elif os.path.isfile(src):
            roots.append(src)
            d = os.path.dirname(src)
            roots += [os.path.join(d, "group_vars"), os.path.join(d, "host_vars")]
    for d in playbook_dirs:
        roots += [os.path.join(d, "group_vars"), os.path.join(d, "host_vars")]
    for rp in roles_paths:
        if os.path.isdir(rp):
            for role in sorted(os.listdir(rp)):
                roots += [os.path.join(rp, role, "vars"), os.path.join(rp, role, "defaults")]
    roots += list(extra_var_files) + list(vars_files)
    seen, out = set(), []
    for r in roots:
        if not os.path.exists(r):
            continue
        for f in _files_under(r):
            real = os.path.realpath(f)
            if real not in seen:
                seen.add(real)
                out.append(f)
    return out


class Redactor:
    """Replaces every known secret in every string of a record (keys included)."""

    def __init__(self, values=()):
        self.exact, self.subs, self.count = set(), set(), 0
        for v in values:
            self.add(v)

    def add(self, value):
        value = str(value)
        if not value.strip():
            return
        self.exact.add(value)
        if len(value) >= MIN_SUBSTRING:
            self.subs.add(value)
            self.subs.add(base64.b64encode(value.encode("utf-8")).decode("ascii").rstrip("="))
            for line in value.splitlines():
                line = line.strip()
                if len(line) >= MIN_LINE:
                    self.subs.add(line)
        self._ordered = sorted(self.subs, key=len, reverse=True)

    def text(self, s):
        if s in self.exact:
            self.count += 1
            return REDACTED
        for v in getattr(self, "_ordered", ()):
            if v in s:
                self.count += s.count(v)
                s = s.replace(v, REDACTED)
        return s

    def __call__(self, data):
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {self.text(str(k)): self(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self(v) for v in data]
        if isinstance(data, (bool, int, float)) or data is None:
            if not isinstance(data, bool) and data is not None and str(data) in self.exact:
                self.count += 1
                return REDACTED
            return data
        return self.text(str(data))


# ------------------------------------------------------------------ diffs and results

def _cut(text, limit):
    text = str(text)
    if len(text) <= limit:
        return text
    return text[:limit] + "\n... [truncated, %d more characters]" % (len(text) - limit)


def _side(v):
    if v is None:
        return []
    if isinstance(v, (dict, list)):
        v = json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    return str(v).splitlines(True)


def diff_text(diff, limit=20000):
    """A task's diff (a dict or a list of them: before/after/prepared) as unified text; None when empty."""
    items = diff if isinstance(diff, list) else [diff]
    out = []
    for d in items:
        if not isinstance(d, dict):
            continue
        if d.get("prepared"):
            out.append(str(d["prepared"]).rstrip("\n") + "\n")
        if "before" in d or "after" in d:
            before, after = _side(d.get("before")), _side(d.get("after"))
            if before != after:
                out.append("".join(difflib.unified_diff(
                    before, after, fromfile=str(d.get("before_header") or "before"),
                    tofile=str(d.get("after_header") or "after"))))
    text = "".join(out)
    return _cut(text, limit) if text.strip() else None


def _no_log(task, res):
    return bool(res.get("_ansible_no_log")) or "censored" in res or (isinstance(task.no_log, bool) and task.no_log)


def _msg(res, limit):
    parts = [str(res[k]) for k in ("msg", "reason") if res.get(k)]
    if res.get("stderr") and not parts:
        parts.append(str(res["stderr"])[-2000:])
    return _cut("; ".join(parts), limit) if parts else None


def firewall_session(host, task_name, res, status, limit=20000):
    """What the audit keeps of a vendor_firewall run: device, outcome, the commands (secrets masked by the
    module), backup, failure stage and rollback."""
    s = {"host": host, "task": task_name, "status": status}
    for k in FIREWALL_KEYS:
        if k in res:
            s[k] = res[k]
    if isinstance(s.get("device_compare"), str):
        s["device_compare"] = _cut(s["device_compare"], limit)
    if status == "failed":
        s["msg"] = _msg(res, limit)
    return s


def is_firewall(action):
    return str(action or "").split(".")[-1] == "vendor_firewall"


# ------------------------------------------------------------------ the plugin

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "archive_dr_audit"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = _now()
        self.pid = os.getpid()
        self.playbooks, self.playbook_dirs = [], []
        self.inventory, self.inventory_abs, self.extra_var_names = [], [], []
        self.changed, self.failed, self.firewall = [], [], []
        self.stats, self.plays = None, []
        self.redactor = Redactor()
        self.scanned, self.unreadable = False, []
        self.loader, self.vm = None, None
        self.written = False
        self.id = uuid.uuid4().hex
        atexit.register(self._at_exit)

    # -- collection -------------------------------------------------------
    def v2_playbook_on_start(self, playbook):
        name = getattr(playbook, "_file_name", None)
        if name:
            self.playbooks.append(_rel(name))
            self.playbook_dirs.append(os.path.dirname(os.path.abspath(name)))
        self.loader = getattr(playbook, "_loader", None) or self.loader

    def v2_playbook_on_play_start(self, play):
        self.plays.append(play.get_name())
        vm = play.get_variable_manager()
        loader = play.get_loader() or self.loader
        self.loader = loader or self.loader
        if vm is not None:
            self.vm = vm
            inv = getattr(vm, "_inventory", None)
            sources = list(getattr(inv, "_sources", None) or [])
            if sources and not self.inventory:
                self.inventory_abs = [os.path.abspath(str(s)) for s in sources]
                self.inventory = [_rel(s) for s in sources]
            names = set(self.extra_var_names) | set(str(k) for k in (vm.extra_vars or {}))
            self.extra_var_names = sorted(names)
            for v in _leaves(vm.extra_vars or {}, encrypted_only=True):
                self.redactor.add(v)
        vars_files = []
        for vf in play.vars_files or []:
            for f in (vf if isinstance(vf, list) else [vf]):
                if isinstance(f, str) and "{{" not in f and loader is not None:
                    vars_files.append(loader.path_dwim(f))
        self._scan(loader, vars_files, force=bool(vars_files))

    def _scan(self, loader, vars_files=(), force=False):
        if loader is None or (self.scanned and not force):
            return
        extra_files = [str(e)[1:] for e in (context.CLIARGS.get("extra_vars") or ()) if str(e).startswith("@")]
        inv = self.inventory_abs or [os.path.abspath(str(s))
                                     for s in (context.CLIARGS.get("inventory") or C.DEFAULT_HOST_LIST or [])]
        files = (secret_files(inv, self.playbook_dirs, C.DEFAULT_ROLES_PATH or [], extra_files, vars_files)
                 if not self.scanned else secret_files([], [], [], [], vars_files))
        for f in files:
            try:
                for v in vault_values_of_file(loader, f):
                    self.redactor.add(v)
            except Exception as e:  # noqa: BLE001 - a file the run cannot decrypt is named, never fatal
                self.unreadable.append("%s: %s" % (_rel(f), type(e).__name__))
        self.scanned = True

    def _task(self, result):
        task = result.task
        return (result.host.get_name(), task.get_name(), getattr(task, "resolved_action", None) or task.action,
                task.delegate_to if task.delegate_to and task.delegate_to != result.host.get_name() else None)

    def _limit(self):
        try:
            return int(self.get_option("max_diff_chars"))
        except KeyError:
            return 20000

    def _ok(self, result):
        host, name, action, delegate = self._task(result)
        res = result.result
        limit = self._limit()
        if is_firewall(action):
            self.firewall.append({"host": host, "task": name, "censored": True} if _no_log(result.task, res)
                                 else firewall_session(host, name, res, "changed" if res.get("changed") else "ok",
                                                       limit))
        if not res.get("changed"):
            return
        entry = {"host": host, "task": name, "action": action}
        if delegate:
            entry["delegate_to"] = delegate
        if _no_log(result.task, res):
            entry["censored"] = True
        elif isinstance(res.get("results"), list):
            items = []
            for r in res["results"]:
                if not isinstance(r, dict) or not r.get("changed"):
                    continue
                if r.get("_ansible_no_log") or "censored" in r:
                    items.append({"censored": True})
                    continue
                label = r.get("_ansible_item_label", r.get("item"))
                it = {"item": _cut(json.dumps(label, ensure_ascii=False, default=str), 300)}
                d = diff_text(r.get("diff"), limit) if r.get("diff") else None
                if d:
                    it["diff"] = d
                items.append(it)
            entry["items"] = items
        else:
            d = diff_text(res.get("diff"), limit) if res.get("diff") else None
            if d:
                entry["diff"] = d
        self.changed.append(entry)

    def _failed(self, result, kind, ignore_errors=False):
        host, name, action, delegate = self._task(result)
        res = result.result
        entry = {"host": host, "task": name, "action": action, "kind": kind}
        if ignore_errors:
            entry["ignored"] = True
        if delegate:
            entry["delegate_to"] = delegate
        if _no_log(result.task, res):
            entry["censored"] = True
        else:
            entry["msg"] = _msg(res, self._limit())
        self.failed.append(entry)
        if is_firewall(action):
            self.firewall.append({"host": host, "task": name, "censored": True} if entry.get("censored")
                                 else firewall_session(host, name, res, "failed", self._limit()))

    def v2_runner_on_ok(self, result):
        self._ok(result)

    def v2_runner_on_async_ok(self, result):
        self._ok(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._failed(result, "failed", ignore_errors)

    def v2_runner_on_async_failed(self, result):
        self._failed(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._failed(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        self.stats = {h: stats.summarize(h) for h in sorted(stats.processed)}
        args = context.CLIARGS.get("args") or ()
        if len(self.playbooks) >= len(args):
            self.write()

    def _at_exit(self):
        if os.getpid() == self.pid and not self.written:
            self.write()

    # -- the record -------------------------------------------------------
    def _result(self):
        if self.stats is None:
            return "interrupted"
        if any(s.get("unreachable") for s in self.stats.values()):
            return "unreachable"
        if any(s.get("failures") for s in self.stats.values()):
            return "failed"
        return "ok"

    def record(self):
        a = context.CLIARGS
        finished = _now()
        hosts = sorted({c["host"] for c in self.changed})
        rec = {
            "kind": "playbook-run", "id": self.id,
            "operator": {"user": getpass.getuser(), "sudo_user": os.environ.get("SUDO_USER") or None},
            "controller": socket.gethostname(),
            "started": self.started.isoformat(), "finished": finished.isoformat(),
            "duration_seconds": round((finished - self.started).total_seconds(), 3),
            "playbooks": self.playbooks or [_rel(p) for p in a.get("args") or ()],
            "plays": self.plays,
            "inventory": self.inventory or [_rel(s) for s in a.get("inventory") or ()],
            "limit": a.get("subset") or None,
            "tags": [t for t in a.get("tags") or () if t != "all"],
            "skip_tags": list(a.get("skip_tags") or ()),
            "check": bool(a.get("check")), "diff": bool(a.get("diff")),
            "extra_vars": self.extra_var_names,
            "ansible_version": _ansible_version(),
            "hosts_changed": hosts,
            "changed": self.changed, "failed": self.failed, "firewall": self.firewall,
            "stats": self.stats or {},
            "result": self._result(),
        }
        if self.unreadable:
            rec["vault_unreadable"] = self.unreadable
        rec = self.redactor(rec)
        rec["redactions"] = self.redactor.count
        return rec

    def write(self):
        self.written = True
        try:
            if not self.scanned:
                self._scan(self.loader)
            rec = self.record()
            local = dict(rec)
            remote, why = self._remote()
            if remote:
                local["remote"] = self._ship(rec, remote)
            elif why:
                local["remote"] = {"skipped": why}
            path = self.get_option("ledger") or os.path.join(PROJECT, ".audit", "ledger.jsonl")
            e = audit_ledger.append(path, local)
            where = "local seq %d" % e["seq"]
            if remote:
                r = local["remote"]
                where += (", miyun seq %s" % r["receipt"]["seq"] if r.get("receipt")
                          else ", spooled for miyun (%s)" % (r.get("deferred") or "NOT shipped"))
            self._display.v("audit trail: run recorded (%s)" % where)
            if remote and local["remote"].get("error"):
                self._display.warning("audit trail: the record could not be shipped to %s: %s (spooled; the next "
                                      "run ships it)" % (remote["target"], local["remote"].get("error")))
        except Exception as e:  # noqa: BLE001 - the audit never breaks a run, but it says so
            self._display.warning("audit trail: the run could NOT be recorded: %s: %s" % (type(e).__name__, e))

    # -- shipping to miyun ------------------------------------------------
    def _spool_dir(self):
        path = self.get_option("ledger") or os.path.join(PROJECT, ".audit", "ledger.jsonl")
        return os.path.join(os.path.dirname(os.path.abspath(path)), "spool")

    def _remote(self):
        """({"target": user@address[:port], "key": path or None}, None) or (None, why not / None: not configured)."""
        if self.get_option("remote"):
            return {"target": self.get_option("remote"), "key": self.get_option("remote_key")}, None
        name = self.get_option("remote_host")
        if not name:
            return None, None
        inv = getattr(self.vm, "_inventory", None)
        host = inv.get_host(name) if inv is not None else None
        if host is None:
            return None, "%s is not in this run's inventory" % name
        from ansible.template import Templar
        hv = self.vm.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=self.loader, variables=hv)

        def var(k):
            v = hv.get(k)
            return str(templar.template(v)) if v not in (None, "") else None
        addr, port = var("ansible_host") or name, var("ansible_port")
        target = "%s@%s%s" % (self.get_option("remote_user"), addr, ":%s" % port if port else "")
        return {"target": target, "key": self.get_option("remote_key") or var("ansible_ssh_private_key_file")}, None

    def _send(self, remote, data):
        user_host, _, port = remote["target"].rpartition(":") if remote["target"].count(":") == 1 \
            else (remote["target"], "", "")
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]
        if remote.get("key"):
            argv += ["-i", remote["key"]]
        if port:
            argv += ["-p", port]
        argv += [user_host, "append"]
        p = subprocess.run(argv, input=data, capture_output=True, timeout=int(self.get_option("remote_timeout")))
        if p.returncode != 0:
            raise RuntimeError("ssh exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace").strip()[-300:]))
        receipt = json.loads(p.stdout.decode().strip().splitlines()[-1])
        return {"seq": int(receipt["seq"]), "hash": str(receipt["hash"]), "time": str(receipt["time"])}

    def _ship(self, rec, remote):
        out = {"target": remote["target"]}
        spool = self._spool_dir()
        shipped = []
        try:
            stats = self.stats or {}
            if not any(s.get("changed") for s in stats.values()):
                # A run that changed nothing need not reach miyun now (validation, --check, an inspection:
                # it may not have contacted any host): it waits in the spool for the next run that does.
                raise _Deferred("changed nothing: sent with the next run that changes a host")
            name = self.get_option("remote_host")
            seen = stats.get(name) or {} if name else {}
            if name and (not (seen.get("ok") or seen.get("changed")) or seen.get("unreachable")):
                # Only a run that itself reached miyun opens a connection there: a run on other hosts (or on
                # the controller, e.g. bringing a lab up or down) must not send packets to an address that
                # may not exist at that moment.
                raise _Deferred("did not reach %s: sent with the next run that does" % name)
            for name in sorted(os.listdir(spool)) if os.path.isdir(spool) else []:
                p = os.path.join(spool, name)
                with open(p, "rb") as f:
                    receipt = self._send(remote, f.read())
                shipped.append(dict(receipt, id=name.rsplit(".", 1)[0].split("_", 1)[-1]))
                os.unlink(p)
            out["receipt"] = self._send(remote, json.dumps(rec, ensure_ascii=False, sort_keys=True).encode("utf-8"))
        except _Deferred as e:
            out["deferred"] = str(e)
            os.makedirs(spool, mode=0o700, exist_ok=True)
            p = os.path.join(spool, "%s_%s.json" % (self.started.strftime("%Y%m%dT%H%M%S%f"), self.id))
            with open(p, "wb") as f:
                f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True).encode("utf-8"))
            out["spooled"] = True
            return out
        except Exception as e:  # noqa: BLE001
            out["error"] = "%s: %s" % (type(e).__name__, e)
            os.makedirs(spool, mode=0o700, exist_ok=True)
            p = os.path.join(spool, "%s_%s.json" % (self.started.strftime("%Y%m%dT%H%M%S%f"), self.id))
            with open(p, "wb") as f:
                f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True).encode("utf-8"))
            out["spooled"] = True
        if shipped:
            out["spool_shipped"] = shipped
        return out


class _Deferred(Exception):
    """The record waits in the spool for the next run that reaches the hosts."""


def _ansible_version():
    from ansible.release import __version__
    return __version__
