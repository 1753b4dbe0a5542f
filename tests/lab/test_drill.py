"""DR drill against the lab.

* non-destructive, always: the RPO probe machinery (heartbeat table + files at geo,
  heartbeats committed over SSH, newest one read back by the probe phase) and the
  four-property check phase produce a real result;
* one drill end to end by default (destructive host-lost: promote miyun, failback);
  the ransomware scenario and the non-destructive scratch restore run with
  ARCHIVE_DR_LAB_FULL=1. Bounded: the lab archive is small and each drill must
  finish within DRILL_TIMEOUT.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from archive_dr import drill
from test_backup_restore import sh

ROOT = Path(__file__).resolve().parents[2]
INV = ROOT / "inventory" / "lab"
DRILL_TIMEOUT = 240
TARGETS, CFG = drill.load_config(INV)
FULL = os.environ.get("ARCHIVE_DR_LAB_FULL") == "1"
full_only = pytest.mark.skipif(not FULL, reason="CI runs one scenario; ARCHIVE_DR_LAB_FULL=1 runs all")


def test_heartbeat_and_probe_measure_at_geo(tmp_path):
    drill_id = "test-%d" % time.time()
    drill.playbook("drill.yml", INV, {"dr_drill_phase": "prepare", "dr_drill_id": drill_id})
    hb = drill.Heartbeat(drill.ssh_argv(INV, CFG["archive_host"]), drill_id, CFG["db"], CFG["heartbeat_table"],
                         CFG["heartbeat_dir"], 0.5)
    hb.start()
    time.sleep(4)
    last = hb.stop()
    assert hb.errors == 0 and len(hb.acked_db) >= 4
    assert abs(last - time.time()) < 30                         # geo's clock, seconds ago
    db_new, files_new = drill.newest_recovered(INV, "geo", drill_id)
    assert db_new == pytest.approx(last, abs=1e-3)              # nothing lost at the source itself
    assert files_new == pytest.approx(hb.acked_files[-1], abs=1e-3)
    assert drill.rpo_from(last, db_new) == 0.0


def test_verify_phase_returns_the_four_property_result(tmp_path):
    out = tmp_path / "v.json"
    drill.playbook("drill.yml", INV, {"dr_drill_phase": "verify", "dr_drill_where": "geo",
                                      "dr_drill_host": CFG["sites"]["geo"]["host"], "dr_drill_verify_out": str(out)})
    res = json.loads(out.read_text())
    assert isinstance(res["passed"], bool) and "四性检测" in res["summary"]
    assert set(res["result"]["properties"]) == {"authenticity", "integrity", "usability", "security"}


def _ready(scenario, mode):
    try:
        drill.preflight(CFG, scenario, mode, INV)
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.mark.slow
@pytest.mark.parametrize("scenario,mode", [pytest.param("ransomware", "non-destructive", marks=full_only),
                                           ("host-lost", "destructive"),
                                           pytest.param("ransomware", "destructive", marks=full_only)])
def test_drill_end_to_end(tmp_path, scenario, mode):
    _ready(scenario, mode)
    if scenario == "ransomware":
        # what a ransomware recovery stands on: the appliance's scheduled database backup and file snapshot
        for job in ("archive-db-incr", "archive-files-snapshot"):
            sh("geo-backup", "systemctl start archive-dr-backup-%s.service" % job, timeout=900)
    t0 = time.time()
    res = drill.run(scenario, mode, INV, tmp_path)
    elapsed = time.time() - t0
    paths = drill.report.write(res, tmp_path)
    assert res.get("error") is None, res.get("error")
    assert all(p["ok"] for p in res["phases"])
    assert res["verify"] and all(v["passed"] for v in res["verify"])
    if mode == "destructive":
        assert [v["stage"] for v in res["verify"]][-1] == "after failback (geo)"
    assert res["rto_seconds"] is not None and res["rpo_seconds"] is not None
    assert res["rto_seconds"] <= TARGETS["rto_seconds"] and res["rpo_seconds"] <= TARGETS["rpo_seconds"]
    assert res["level"]["level"] == drill.gbt20988_level(res["rto_seconds"], res["rpo_seconds"])["level"]
    assert elapsed < DRILL_TIMEOUT
    assert "<svg" in paths["html"].read_text()
    if mode == "destructive":
        # after the failback miyun is a standby again and stays one past geo's next commit
        # (a recovery target left in geo's postgresql.auto.conf would make a clone promote itself)
        sh("geo-archive", "runuser -u postgres -- psql -X -q -d %s -c \"insert into %s(drill) values ('after-%s')\""
           % (CFG["db"], CFG["heartbeat_table"], scenario))
        time.sleep(3)
        state = sh("miyun-store", "runuser -u postgres -- psql -XAt -d %s -c \"select pg_is_in_recovery(), "
                   "(select count(*) from %s where drill = 'after-%s')\"" % (CFG["db"], CFG["heartbeat_table"], scenario))
        assert state.stdout.strip() == "t|1", state.stdout
