"""Helpers shared by the lab tests (tests/lab/test_*.py); no test module imports another.

Two flavours, as the tests use them:

- checked (backup, drill): `sh` and `psql` raise AssertionError with the output when a
  command fails (check=False returns the CompletedProcess); `play` runs a playbook with
  `-e` extras and raises when it fails.
- probing (replica): `try_sh` returns the CompletedProcess whatever the exit status;
  `host_psql` returns psql's stdout from any host; `play_recap` returns the
  CompletedProcess and the PLAY RECAP per host.

The lab-is-up check (`lab_state`) is used once per session by tests/lab/conftest.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = str(ROOT / "lab" / "containers.conf")
LAB_HOSTS = ["geo-archive", "geo-backup", "geo-fw", "miyun-store", "miyun-fw"]
# The tests read ansible-playbook's output: no colour codes (tests/lab/conftest.py also sets them
# in os.environ for everything else the tests run).
ENV = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
VENV_BIN = ROOT / ".venv" / "bin"


def lab_state() -> tuple[bool, str]:
    """(up, why not): every lab container exists and is running."""
    down = []
    for host in LAB_HOSTS:
        try:
            proc = subprocess.run(["podman", "container", "inspect", "-f", "{{.State.Running}}", host],
                                  env=ENV, capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            return False, "podman is not installed"
        except subprocess.TimeoutExpired:
            return False, "podman container inspect %s timed out" % host
        if proc.returncode != 0 or proc.stdout.strip() != "true":
            down.append(host)
    if down:
        return False, "not running: %s" % ", ".join(down)
    return True, ""


# ------------------------------------------------------------------ checked

def sh(host, script, check=True, timeout=600):
    p = subprocess.run(["podman", "exec", host, "bash", "-c", script], env=ENV, capture_output=True, text=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s: %s\nrc=%d\n%s\n%s" % (host, script, p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
    return p


def psql(sql, port=5432, db="archive", check=True):
    """psql on geo-archive (the archive system's database)."""
    return sh("geo-archive", "cd /tmp && runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -p %d -d %s -c %s"
              % (port, db, json.dumps(sql)), check=check).stdout.strip()


def play(name, *extra, check=True, timeout=1200):
    """ansible-playbook playbooks/<name> -e <extra>...; raises when it fails unless check=False."""
    argv = [str(VENV_BIN / "ansible-playbook"), str(ROOT / "playbooks" / name)]
    for e in extra:
        argv += ["-e", e]
    p = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s failed:\n%s" % (name, p.stdout[-6000:]))
    return p


def recap_changed(out):
    return sum(int(part.split("=")[1]) for line in out.splitlines() if "changed=" in line
               for part in line.split() if part.startswith("changed="))


# ------------------------------------------------------------------ probing

def try_sh(host, script, timeout=120):
    """bash -c script in a lab host; the CompletedProcess whatever its exit status."""
    return subprocess.run(["podman", "exec", host, "bash", "-c", script], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def host_psql(host, sql, db="postgres"):
    return try_sh(host, "runuser -u postgres -- psql -XAt -d %s -c %s" % (db, json.dumps(sql))).stdout.strip()


def play_recap(playbook, *args, timeout=900):
    """ansible-playbook <playbook> <args>: (CompletedProcess, {host: {ok, changed, ...}})."""
    r = subprocess.run([str(VENV_BIN / "ansible-playbook"), playbook, *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout, env=ENV)
    recap = {h: dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
             for h, line in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", r.stdout, re.M)}
    return r, recap
