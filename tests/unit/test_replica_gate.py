"""The quarantine gate wired into replica_tool's repository pulls (docs/dr-history.md).

rsync, btrfs and the repository tools are replaced by fakes at their boundary (the lab test
tests/lab/test_dr_history.py runs the real ones); what is tested here is the pull's decision:
accept and snapshot, or hold in quarantine (no snapshot, no pruning, exit 3) until released.
"""
from __future__ import annotations

import datetime as dt
import json
import os

import pytest

import dr_history
import replica_tool as rt  # module_utils/ is on the test path (pyproject.toml)

UTC = dt.timezone.utc


def point(n, hours_ago, now, fingerprint=None):
    return dr_history.RestorePoint(kind="restic", id="snap%02d" % n, time=now - dt.timedelta(hours=hours_ago),
                                   fingerprint=fingerprint or "tree%02d" % n, series="archive-files")


@pytest.fixture
def job(tmp_path, monkeypatch):
    """A restic pull job whose copy lists ``job.points`` and whose snapshots are plain directories."""
    cfg = {"status_dir": str(tmp_path / "status"), "textfile_dir": str(tmp_path / "textfile"), "ssh": {},
           "jobs": {"restic": {"kind": "restic", "working": str(tmp_path / "current"),
                               "snapshots": str(tmp_path / "snapshots"), "phases": [{"src": "/r/"}],
                               "retention": {"keep_all_days": 3650, "daily": 1}, "max_age": 0, "gate": {}}}}
    state = {"points": [], "clock": dt.datetime(2026, 12, 1, 12, tzinfo=UTC)}

    def snapshot(spec, now):
        name = rt.stamp(state["clock"].timestamp())
        os.makedirs(os.path.join(spec["snapshots"], name))
        return name

    monkeypatch.setattr(rt, "ensure_subvolume", lambda path: os.makedirs(path, exist_ok=True))
    monkeypatch.setattr(rt, "rsync_phase", lambda cfg, job, phase, dest: (0, 1, {"bytes_received": 10, "bytes_sent": 1,
                                                                                 "transferred_file_bytes": 5}, "", []))
    monkeypatch.setattr(rt, "verify_copy", lambda cfg, job, path: (True, "check ok", list(state["points"])))
    monkeypatch.setattr(rt, "take_snapshot", snapshot)
    monkeypatch.setattr(rt, "timers", lambda: {})
    monkeypatch.setattr(rt.time, "time", lambda: state["clock"].timestamp())
    state["cfg"] = cfg
    return state


def pull(job, hours=1):
    job["clock"] += dt.timedelta(hours=hours)
    rc = rt.cmd_pull(job["cfg"], "restic")
    return rc, rt.load_job_status(job["cfg"], "restic")


def snapshots(job):
    return rt.list_snapshots(job["cfg"]["jobs"]["restic"]["snapshots"])


def test_a_normal_history_is_accepted_and_snapshotted(job):
    now = job["clock"]
    job["points"] = [point(i, 100 - i, now) for i in range(5)]
    rc, st = pull(job)
    assert rc == 0 and st["outcome"] == "success" and "quarantine" not in st
    assert any(f.startswith("WARNING baseline") for f in st["gate_findings"])
    job["points"].append(point(5, 0, job["clock"]))
    rc, st = pull(job)
    assert rc == 0 and st["gate_findings"] == [] and len(snapshots(job)) == 2
    accepted = dr_history.load_points(open(rt.accepted_points_path(job["cfg"], "restic")).read())
    assert [p.id for p in accepted] == ["snap%02d" % i for i in range(6)]


def test_forget_keep_last_1_is_quarantined_until_released(job):
    now = job["clock"]
    job["points"] = [point(i, 30 - i, now) for i in range(6)]
    assert pull(job)[0] == 0
    before = snapshots(job)
    job["points"] = job["points"][-1:]                      # restic forget --keep-last 1 --prune at geo
    rc, st = pull(job)
    assert rc == 3 and st["outcome"] == "quarantine"
    assert any(f.startswith("CRITICAL vanished") for f in st["quarantine"]["findings"])
    assert any(f.startswith("CRITICAL mass-vanish") for f in st["quarantine"]["findings"])
    assert snapshots(job) == before, "a quarantined pull took a snapshot"
    metrics = open(os.path.join(job["cfg"]["textfile_dir"], "archive_dr_replica.prom")).read()
    assert 'archive_dr_replica_quarantined{job="restic"} 1' in metrics
    assert rt.cmd_deadman(job["cfg"]) == 1

    # geo's copy restored: the pull looks clean again, but stays held until an operator releases it
    job["points"] = [point(i, 30 - i, now) for i in range(6)]
    rc, st = pull(job)
    assert rc == 3 and st["quarantine"]["since"] < st["quarantine"]["last"] and snapshots(job) == before

    with pytest.raises(ValueError, match="names the operator"):
        rt.cmd_release(job["cfg"], "restic", "", "looked")
    job["clock"] += dt.timedelta(minutes=5)
    assert rt.cmd_release(job["cfg"], "restic", "zhang.wei", "geo-backup restored from miyun, history intact") == 0
    st = rt.load_job_status(job["cfg"], "restic")
    assert "quarantine" not in st and st["outcome"] == "success" and len(snapshots(job)) == len(before) + 1
    log = [json.loads(line) for line in open(os.path.join(job["cfg"]["status_dir"], "restic.releases.jsonl"))]
    assert [(r["by"], r["snapshot"]) for r in log] == [("zhang.wei", st["last_snapshot_name"])]
    assert any("mass-vanish" in f for f in log[0]["quarantine"]["findings"])
    assert pull(job)[0] == 0


def test_a_quarantine_freezes_pruning(job, monkeypatch):
    job["cfg"]["jobs"]["restic"]["retention"] = {"keep_all_days": 1, "daily": 1}
    pruned = []
    monkeypatch.setattr(rt, "prune", lambda snap_dir, policy: pruned.append(snap_dir) or ([], []))
    now = job["clock"]
    job["points"] = [point(i, 10 - i, now) for i in range(4)]
    pull(job)
    assert len(pruned) == 1
    job["points"] = [point(i, 10 - i, now, fingerprint="forged") for i in range(4)]   # rewritten sets
    rc, st = pull(job)
    assert rc == 3 and any(f.startswith("CRITICAL rewritten") for f in st["quarantine"]["findings"])
    assert len(pruned) == 1, "a quarantined pull pruned snapshots"


def test_a_flood_of_fake_snapshots_is_quarantined(job):
    now = job["clock"]
    job["points"] = [point(i, 50 - i, now) for i in range(3)]
    pull(job)
    job["points"] += [point(10 + i, 0, job["clock"] + dt.timedelta(hours=1)) for i in range(60)]
    rc, st = pull(job)
    assert rc == 3 and any(f.startswith("CRITICAL burst") for f in st["quarantine"]["findings"])


def test_gate_limits_come_from_the_job(job):
    job["cfg"]["jobs"]["restic"]["gate"] = {"source_min_age": 0, "burst_base": 100}
    policy = rt.gate_policy(job["cfg"]["jobs"]["restic"])
    assert policy.source_min_age == dt.timedelta(0) and policy.burst_base == 100
    with pytest.raises(TypeError):
        rt.gate_policy({"gate": {"no_such_limit": 1}})


def test_release_refuses_a_copy_that_does_not_verify(job, monkeypatch):
    now = job["clock"]
    job["points"] = [point(i, 30 - i, now) for i in range(6)]
    pull(job)
    job["points"] = []
    assert pull(job)[0] == 3
    monkeypatch.setattr(rt, "verify_copy", lambda cfg, job, path: (False, "restic check: pack damaged", None))
    with pytest.raises(RuntimeError, match="does not verify"):
        rt.cmd_release(job["cfg"], "restic", "zhang.wei", "ok")
    assert rt.load_job_status(job["cfg"], "restic")["quarantine"]


def test_a_job_not_in_quarantine_has_nothing_to_release(job, capsys):
    assert rt.cmd_release(job["cfg"], "restic", "zhang.wei", "ok") == 0
    assert "nothing to release" in capsys.readouterr().out


def test_files_vanishing_at_geo_during_a_pull_are_read_again(job, monkeypatch):
    calls = []

    def moving_source(cfg, job_name, phase, dest):
        calls.append(phase["src"])
        rc = 24 if len(calls) < 3 else 0      # geo archived a WAL segment twice while we read
        return rc, 1, {"bytes_received": 10, "bytes_sent": 1, "transferred_file_bytes": 5}, "file has vanished", []
    monkeypatch.setattr(rt, "rsync_phase", moving_source)
    job["points"] = [point(i, 100 - i, job["clock"]) for i in range(3)]
    rc, st = pull(job)
    assert rc == 0 and st["outcome"] == "success" and calls == ["/r/"] * 3

    calls.clear()
    monkeypatch.setattr(rt, "rsync_phase", lambda cfg, job_name, phase, dest: calls.append(1) or (
        24, 0, {"bytes_received": 0, "bytes_sent": 0, "transferred_file_bytes": 0}, "file has vanished", []))
    rc, st = pull(job)
    assert rc == 1 and st["outcome"] == "failure" and len(calls) == 1 + rt.RSYNC_VANISHED_RETRIES
    assert "rc=24" in st["last_message"]
