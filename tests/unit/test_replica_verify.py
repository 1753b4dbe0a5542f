"""replica_tool.py verify: the rotating share, and the file replica's check against the fixity
records with real files (rsync's repair pull is replaced at its boundary by a copy from a
"geo" directory; tests/lab/test_dr_history.py flips bytes in the real copies)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil

import pytest

import replica_tool as rt  # module_utils/ is on the test path (pyproject.toml)


def test_the_daily_shares_partition_the_tree_and_a_period_reads_all():
    paths = ["2019/KJ/%05d.pdf" % i for i in range(2000)]
    shares = [rt.subset_for(dt.date(2026, 12, 1) + dt.timedelta(days=d), 7) for d in range(7)]
    assert sorted(shares) == ["%d/7" % n for n in range(1, 8)]
    owners = [[s for s in shares if rt.in_subset(p, s)] for p in paths]
    assert all(len(o) == 1 for o in owners), "a file is read on no day or twice in a period"
    assert rt.subset_for(dt.date(2026, 12, 1), 7, full=True) == "1/1"
    assert rt.subset_for(dt.date(2026, 12, 1), 7, subset="2/3") == "2/3"
    with pytest.raises(ValueError):
        rt.subset_for(dt.date(2026, 12, 1), 7, subset="4/3")


def test_repair_filters_select_only_the_damaged_objects():
    assert rt.repair_filters(["archive-files/data/ab/abcd", "archive-files/data/cd/cdef"]) == [
        "--include=/archive-files/", "--include=/archive-files/data/", "--include=/archive-files/data/ab/",
        "--include=/archive-files/data/ab/abcd", "--include=/archive-files/data/cd/",
        "--include=/archive-files/data/cd/cdef", "--exclude=*"]


def flip(path):
    """One byte changed in place, size and mtime kept (what rsync's quick check cannot see)."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        b = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([b[0] ^ 0x01]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture
def files_job(tmp_path, monkeypatch):
    geo, working, snaps = tmp_path / "geo", tmp_path / "current", tmp_path / "snapshots"
    records = {}
    for i in range(30):
        p = geo / "2019" / ("%03d.pdf" % i)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"%PDF-1.7\n" + os.urandom(3000) + b"\n%%EOF\n")
        records["2019/%03d.pdf" % i] = hashlib.sha256(p.read_bytes()).hexdigest()
    shutil.copytree(geo, working)
    shutil.copytree(geo, snaps / "20261203T010000Z")
    cfg = {"status_dir": str(tmp_path / "status"), "textfile_dir": str(tmp_path / "prom"), "ssh": {},
           "jobs": {"files": {"kind": "files", "working": str(working), "snapshots": str(snaps),
                              "phases": [{"src": "./", "dst": ""}], "retention": {"keep_all_days": 1, "daily": 5}, "max_age": 0,
                              "verify_period_days": 7}}}
    repairs = []

    def rsync_from_geo(cfg, job, phase, dest):
        assert "--checksum" in phase["args"] and phase["args"][-1] == "--exclude=*"
        names = [a[len("--include=/"):] for a in phase["args"] if a.startswith("--include=") and not a.endswith("/")]
        repairs.append(names)
        for rel in names:
            shutil.copy2(geo / rel, os.path.join(dest, rel))
        return 0, len(names), {"bytes_received": 0, "bytes_sent": 0, "transferred_file_bytes": 0}, "", names

    monkeypatch.setattr(rt, "fixity_records", lambda cfg, spec: dict(records))
    monkeypatch.setattr(rt, "rsync_phase", rsync_from_geo)
    monkeypatch.setattr(rt, "timers", lambda: {})
    return cfg, working, snaps / "20261203T010000Z", repairs


def status(cfg):
    return rt.load_job_status(cfg, "files")


def test_an_intact_copy_verifies(files_job):
    cfg, *_ = files_job
    assert rt.cmd_verify(cfg, "files", full=True) == 0
    st = status(cfg)
    assert st["verify"]["outcome"] == "ok" and st["verify"]["subset"] == "1/1"
    assert "30 file(s) of subset 1/1" in st["verify"]["working"]


def test_a_flipped_byte_in_the_working_copy_is_repaired_from_geo(files_job):
    cfg, working, _, repairs = files_job
    flip(working / "2019" / "007.pdf")
    assert rt.cmd_verify(cfg, "files", full=True) == 0
    st = status(cfg)
    assert st["verify"]["outcome"] == "repaired" and st["verify"]["working_damaged"] == ["2019/007.pdf"]
    assert repairs == [["2019/007.pdf"]] and st["pending_changes"] is True
    assert rt.check_copy(cfg, "files", str(working), "1/1", rt.fixity_records(cfg, None))[0]


def test_a_flipped_byte_in_a_snapshot_is_reported_never_rewritten(files_job):
    cfg, _, snapshot, repairs = files_job
    flip(snapshot / "2019" / "012.pdf")
    damaged = (snapshot / "2019" / "012.pdf").read_bytes()
    assert rt.cmd_verify(cfg, "files", full=True) == 1
    st = status(cfg)
    assert st["verify"]["outcome"] == "damaged" and st["verify"]["snapshot_damaged"] == ["2019/012.pdf"]
    assert list(st["damaged_snapshots"]) == ["20261203T010000Z"] and repairs == []
    assert (snapshot / "2019" / "012.pdf").read_bytes() == damaged
    prom = open(os.path.join(cfg["textfile_dir"], "archive_dr_replica.prom")).read()
    assert 'archive_dr_replica_damaged_snapshots{job="files"} 1' in prom
    assert 'archive_dr_replica_verify_ok{job="files"} 0' in prom
    # a full read of the intact snapshot clears the record
    flip(snapshot / "2019" / "012.pdf")
    assert rt.cmd_verify(cfg, "files", full=True) == 0 and status(cfg)["damaged_snapshots"] == {}
    log = [json.loads(line) for line in open(os.path.join(cfg["status_dir"], "files.verify.jsonl"))]
    assert [r["outcome"] for r in log] == ["damaged", "ok"]


def test_todays_share_reads_only_its_files(files_job):
    cfg, working, _, _ = files_job
    day = dt.date(2026, 12, 3)
    share = rt.subset_for(day, 7)
    outside = next(p for p in sorted(rt.fixity_records(cfg, None)) if not rt.in_subset(p, share))
    flip(working / outside)
    assert rt.cmd_verify(cfg, "files", today=day) == 0 and status(cfg)["verify"]["outcome"] == "ok"
    inside_day = next(day + dt.timedelta(days=d) for d in range(7)
                      if rt.in_subset(outside, rt.subset_for(day + dt.timedelta(days=d), 7)))
    assert rt.cmd_verify(cfg, "files", today=inside_day) == 0 and status(cfg)["verify"]["outcome"] == "repaired"


def test_damage_a_repair_could_not_fix_is_never_snapshotted(files_job, monkeypatch):
    cfg, working, _, _ = files_job
    flip(working / "2019" / "003.pdf")
    monkeypatch.setattr(rt, "rsync_phase", lambda cfg, job, phase, dest: (12, 0, {}, "connection unexpectedly closed", []))
    assert rt.cmd_verify(cfg, "files", full=True) == 1
    assert status(cfg)["verify"]["working_ok"] is False
    # geo reachable again, the quick check sees nothing to move: the pull must not snapshot the damage
    monkeypatch.setattr(rt, "rsync_phase", lambda cfg, job, phase, dest: (
        0, 1, {"bytes_received": 1, "bytes_sent": 1, "transferred_file_bytes": 0}, "", []))
    monkeypatch.setattr(rt, "take_snapshot", lambda spec, now: pytest.fail("snapshot of a damaged copy"))
    monkeypatch.setattr(rt, "ensure_subvolume", lambda path: None)
    assert rt.cmd_pull(cfg, "files") == 1
    assert "could not repair" in status(cfg)["last_message"]
