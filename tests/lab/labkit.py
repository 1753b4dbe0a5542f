"""Helpers shared by the lab tests (tests/lab/test_*.py); no test module imports another.

Two flavours, as the tests use them:

- checked (backup, drill): `sh` and `psql` raise AssertionError with the output when a
  command fails (check=False returns the CompletedProcess); `play` runs a playbook with
  `-e` extras through the runner layer (archive_dr.runner) and raises when it fails.
- probing (replica): `try_sh` returns the CompletedProcess whatever the exit status;
  `host_psql` returns psql's stdout from any host; `play_recap` returns the
  PlaybookResult and the stats per host (from Ansible's events, never its text).

The lab-is-up check (`lab_state`) is used once per session by tests/lab/conftest.py.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time

from archive_dr import paths, runner

CONTAINERS_CONF = str(paths.CONTAINERS_CONF)
INVENTORY = paths.LAB_INVENTORY
LAB_HOSTS = ["geo-archive", "geo-backup", "geo-fw", "miyun-store", "miyun-fw"]
# Logs a person reads: no colour codes (tests/lab/conftest.py also sets them in os.environ for
# everything else the tests run).
ENV = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")


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


def extra_vars(*extra) -> dict:
    """-e values as ansible-playbook reads them: a JSON object, or key=value words (quotes as Ansible parses them)."""
    from ansible.parsing.splitter import parse_kv

    merged: dict = {}
    for item in extra:
        merged.update(json.loads(item) if item.lstrip().startswith("{") else parse_kv(item))
    return merged


def play(name, *extra, check=True, timeout=1200, check_mode=False, diff=False) -> runner.PlaybookResult:
    """playbooks/<name> -e <extra>... on the lab inventory; raises when it fails unless check=False."""
    result = runner.run_playbook(name, INVENTORY, extra_vars(*extra), check=check_mode, diff=diff, timeout=timeout)
    if check and not result.ok:
        raise AssertionError("%s failed: %s\n%s" % (name, result.outcome(), result.stdout[-6000:]))
    return result


def changed_total(result: runner.PlaybookResult) -> int:
    """Tasks changed on all hosts together, from the run's stats (AssertionError when there are none)."""
    assert result.stats, "%s: no stats (the play did not run): %s" % (result.playbook, result.outcome())
    return sum(stats.changed for stats in result.stats.values())


def failure_text(result: runner.PlaybookResult) -> str:
    """The failed tasks' messages on one line, whitespace collapsed."""
    return " ".join(" ".join(result.failure_messages()).split())


# ------------------------------------------------------------------ probing

def try_sh(host, script, timeout=120):
    """bash -c script in a lab host; the CompletedProcess whatever its exit status."""
    return subprocess.run(["podman", "exec", host, "bash", "-c", script], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def host_psql(host, sql, db="postgres"):
    return try_sh(host, "runuser -u postgres -- psql -XAt -d %s -c %s" % (db, json.dumps(sql))).stdout.strip()


def play_recap(playbook, *args, timeout=900):
    """A playbook with ansible-playbook-style arguments (-e X, --check, --diff, others passed on):
    (PlaybookResult, {host: {ok, changed, failed, unreachable, ...}}) from the run's stats."""
    extra, options, check_mode, diff = [], [], False, False
    words = iter(args)
    for word in words:
        if word in ("-e", "--extra-vars"):
            extra.append(next(words))
        elif word == "--check":
            check_mode = True
        elif word == "--diff":
            diff = True
        else:
            options.append(word)
    result = runner.run_playbook(playbook, INVENTORY, extra_vars(*extra), check=check_mode, diff=diff,
                                 args=options, timeout=timeout)
    return result, {host: dataclasses.asdict(stats) for host, stats in result.stats.items()}


def wait_for(what, probe, timeout, every=2.0):
    """probe()'s first truthy result, polled every ``every`` s; AssertionError after ``timeout`` s."""
    end = time.time() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.time() > end:
            raise AssertionError("%s: not seen within %d s" % (what, timeout))
        time.sleep(every)


ALERT_MAILBOX = ("miyun-store", "/var/mail/archive-dr-alerts")   # roles/monitoring: the local copy of every alert mail


def alert_mails(subject_part):
    """Subject lines of the alert mails in the monitoring server's local mailbox that contain subject_part."""
    host, mailbox = ALERT_MAILBOX
    out = try_sh(host, "grep -a '^Subject: ' %s" % mailbox).stdout
    return [line for line in out.splitlines() if subject_part in line]
