"""archive_dr/drill.py pure parts: GB/T 20988 mapping, RTO/RPO arithmetic, timed phases, preflight gates."""
from __future__ import annotations

import time

import pytest

from archive_dr import drill


@pytest.mark.parametrize("rto,rpo,level", [
    (300, 0, 6), (3600, 0, 5), (300, 5, 5), (3600, 1800, 5), (3600, 1801, 4), (3 * 86400, 600, 3),
    (86400, 2 * 86400, 2), (86400, 8 * 86400, 0)])
def test_gbt20988_level(rto, rpo, level):
    assert drill.gbt20988_level(rto, rpo, synchronous=True)["level"] == level


def test_level_6_needs_synchronous_replication():
    assert drill.gbt20988_level(300, 0)["level"] == 5
    assert drill.gbt20988_level(300, 0, synchronous=True)["level"] == 6


def test_level_not_measured():
    assert drill.gbt20988_level(None, 3)["level"] is None


def test_rpo_and_rto():
    assert drill.rpo_from(100.5, 99.0) == 1.5
    assert drill.rpo_from(100.0, 101.0) == 0.0
    assert drill.rpo_from(100.0, None) is None
    phases = [{"name": "recover", "end": 130.0, "ok": True}, {"name": "service", "end": 160.0, "ok": True}]
    assert drill.rto_from(phases, 100.0, "service") == 60.0
    phases[1]["ok"] = False
    assert drill.rto_from(phases, 100.0, "service") is None


def test_phases_record_failures():
    ph = drill.Phases()
    assert ph.run("a", "A", lambda: "done") == "done"
    with pytest.raises(ValueError):
        ph.run("b", "B", lambda: (_ for _ in ()).throw(ValueError("boom")))
    a, b = ph.items
    assert a["ok"] and a["detail"] == "done" and 0 <= a["seconds"] < 1
    assert not b["ok"] and "boom" in b["detail"] and b["end"] <= time.time()


def test_preflight_gates(tmp_path, monkeypatch):
    cfg = {"playbooks": {"recover_host-lost": "site.yml", "failback": "no-such-playbook.yml",
                         "recover_scratch": "site.yml"}}
    with pytest.raises(RuntimeError, match="failback"):
        drill.preflight(cfg, "host-lost", "destructive")
    cfg["playbooks"]["failback"] = "site.yml"
    monkeypatch.setattr(drill, "LAB_STATE", tmp_path / "state.json")
    with pytest.raises(RuntimeError, match="not the lab inventory"):
        drill.preflight(cfg, "host-lost", "destructive", tmp_path / "inv")
    (tmp_path / "state.json").write_text('{"inventory": "%s"}' % (tmp_path / "inv"))
    with pytest.raises(RuntimeError, match="not the lab inventory"):
        drill.preflight(cfg, "host-lost", "destructive", tmp_path / "production")
    assert "site.yml" in drill.preflight(cfg, "host-lost", "destructive", tmp_path / "inv")
    assert drill.preflight(cfg, "ransomware", "non-destructive") == "playbooks: site.yml"
    cfg["playbooks"]["recover_ransomware"] = "site.yml"
    assert drill.preflight(cfg, "ransomware", "destructive", tmp_path / "inv") == "playbooks: site.yml, site.yml"
    cfg["playbooks"]["failback_ransomware"] = "no-such-repair.yml"
    with pytest.raises(RuntimeError, match="failback_ransomware"):
        drill.preflight(cfg, "ransomware", "destructive", tmp_path / "inv")


def test_files_rpo_is_a_lower_bound_when_no_heartbeat_file_came_back():
    assert drill.files_rpo([], None) == (None, None)
    assert drill.files_rpo([100.0, 101.0, 160.0], 150.0) == (10.0, None)
    seconds, note = drill.files_rpo([100.0, 101.0, 160.0], None)
    assert seconds == 60.0 and "at least" in note
    # a file of an earlier drill in the shared heartbeat directory is not this drill's
    seconds, note = drill.files_rpo([100.0, 101.0, 160.0], 40.0)
    assert seconds == 60.0 and "at least" in note
