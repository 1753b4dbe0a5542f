"""archive_dr/drill.py: the replication mode of a drill, measured from the sync guard's status at geo
(module_utils/sync_guard.py ``status``), the inventory's declared mode only as a labelled fallback."""
from __future__ import annotations

import json
import subprocess

import pytest

from archive_dr import drill

APPLIED = {"synchronous_standby_names": '"miyun_store"', "synchronous_commit": "on", "sync_state": "sync"}


def status(mode="sync", effective=None, **kw):
    out = {"mode": mode, "since": 1790000000.0, "since_iso": "2026-09-21T14:13:20Z", "reason": "why",
           "standby": "miyun_store", "synchronous_commit": "on", "degraded_total": 2,
           "effective": dict(APPLIED if effective is None else effective)}
    out.update(kw)
    return out


def test_sync_measured_from_the_guard_and_what_postgresql_applies():
    info = drill.replication_info({}, status())
    assert (info["mode"], info["synchronous"], info["source"], info["measured"]) == ("sync", True,
                                                                                    "sync-guard status", True)
    assert info["since"] == "2026-09-21T14:13:20Z" and info["reason"] == "why" and "note" not in info
    remote_apply = dict(APPLIED, synchronous_commit="remote_apply")
    assert drill.replication_info({}, status(effective=remote_apply))["synchronous"]


def test_degraded_is_not_synchronous_whatever_the_inventory_declares():
    info = drill.replication_info({"replication_mode": "sync"},
                                  status("degraded", dict(APPLIED, synchronous_standby_names="", sync_state="async")))
    assert (info["mode"], info["synchronous"], info["source"]) == ("degraded", False, "sync-guard status")


@pytest.mark.parametrize("effective", [
    dict(APPLIED, synchronous_standby_names=""),          # the guard's state file says sync, PostgreSQL names none
    dict(APPLIED, synchronous_commit="local"),            # commits do not wait
    dict(APPLIED, sync_state="async"),                    # the standby is not the synchronous one
    dict(APPLIED, sync_state=""),                         # not connected
    {"error": "psql: connection refused"},                # not measured now
])
def test_a_sync_guard_that_postgresql_does_not_follow_is_not_synchronous(effective):
    info = drill.replication_info({"replication_mode": "sync"}, status("sync", effective))
    assert (info["mode"], info["synchronous"], info["measured"]) == ("async", False, True)
    assert "does not apply" in info["note"]


@pytest.mark.parametrize("probe", [{"error": "rc 2: python3: can't open file"}, {"mode": "unknown"}])
def test_an_unusable_probe_falls_back_to_the_declared_mode(probe):
    info = drill.replication_info({"replication_mode": "sync"}, probe)
    assert (info["mode"], info["synchronous"], info["source"], info["measured"]) == ("sync", False, "inventory", False)
    assert info["declared_synchronous"] is True
    assert "not usable" in info["note"]
    assert drill.replication_info({}, probe)["mode"] == "async"


def test_the_level_follows_the_measured_mode():
    rpo = {"database": {"seconds": 0.0, "measured": True}, "files": {"seconds": 0.0, "measured": True}}
    for probe, level in ((status(), 6), (status("degraded", dict(APPLIED, synchronous_standby_names="")), 5)):
        rep = drill.replication_info({}, probe)
        assert drill.assess(rpo, 300, {"rto_seconds": 900, "rpo_seconds": 0},
                            synchronous=rep["synchronous"])["level"]["level"] == level


def test_sync_guard_status_over_ssh(monkeypatch):
    calls = []

    def fake_run(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, json.dumps(status()), "")

    monkeypatch.setattr(drill.subprocess, "run", fake_run)
    assert drill.sync_guard_status(["ssh", "root@geo-archive"])["mode"] == "sync"
    assert calls == [["ssh", "root@geo-archive", "python3 /usr/local/lib/archive-dr/sync_guard.py status"]]

    monkeypatch.setattr(drill.subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(
        argv, 2, "", "python3: can't open file '/usr/local/lib/archive-dr/sync_guard.py'"))
    assert "can't open file" in drill.sync_guard_status(["ssh", "x"])["error"]
    monkeypatch.setattr(drill.subprocess, "run", lambda argv, **kw: subprocess.CompletedProcess(argv, 0, "[1]", ""))
    assert drill.sync_guard_status(["ssh", "x"]) == {"error": "not a JSON object"}

    def timeout(argv, **kw):
        raise subprocess.TimeoutExpired(argv, kw.get("timeout"))

    monkeypatch.setattr(drill.subprocess, "run", timeout)
    assert "timed out" in drill.sync_guard_status(["ssh", "x"])["error"]
    assert drill.sync_guard_status([]) == {"error": "no ssh command for the primary"}
