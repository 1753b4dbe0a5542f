"""DR drill against the lab.

* the RPO probe machinery (heartbeat table + files at geo, heartbeats committed over SSH,
  newest one read back by the probe phase) and the four-property check phase produce a
  real result, and the lab's archive passes the check;
* every drill end to end, always: ransomware non-destructive (scratch restore at miyun),
  host-lost destructive (promote miyun, failback) and ransomware destructive. Each must
  pass, within the targets, at the GB/T 20988 level the lab's setup supports (level 5:
  asynchronous replication, RPO seconds but not 0; docs/gbt20988.md). Bounded: the lab
  archive is small and each drill must finish within DRILL_TIMEOUT.
"""
from __future__ import annotations

import json
import numbers
import time

import pytest

from archive_dr import drill, paths
from tests.lab.labkit import sh

INV = paths.LAB_INVENTORY
DRILL_TIMEOUT = 240
TARGETS, CFG = drill.load_config(INV)
# What the lab's measured setup supports (docs/gbt20988.md): RTO minutes, RPO seconds but not 0
# (asynchronous streaming replication, file pulls every 10 s, snapshots every 60 s) -> level 5.
EXPECTED_LEVEL = 5


def test_heartbeat_and_probe_measure_at_geo(tmp_path):
    drill_id = "test-%d" % time.time()
    drill.playbook("drill.yml", INV, {"dr_drill_phase": "prepare", "dr_drill_id": drill_id})
    hb = drill.Heartbeat(drill.heartbeat_ssh_argv(INV, CFG["archive_host"]), drill_id, CFG["db"], CFG["heartbeat_table"],
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
    assert res["passed"] is True, res["summary"]                 # the lab's archive at geo is intact
    assert "四性检测" in res["summary"] and "PASS" in res["summary"]
    props = res["result"]["properties"]
    assert set(props) == {"authenticity", "integrity", "usability", "security"}
    assert all(p["ok"] is True for p in props.values()), props
    assert res["result"]["files"] > 0 and res["result"]["rows"] > 0   # it checked the archive, not an empty tree


def _ready(scenario, mode):
    # The converged lab meets every precondition of every drill: a refusal is a failure here.
    try:
        drill.preflight(CFG, scenario, mode, INV)
    except RuntimeError as e:
        pytest.fail("drill preflight refused %s/%s: %s" % (scenario, mode, e), pytrace=False)


def _number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


@pytest.mark.slow
@pytest.mark.parametrize("scenario,mode", [("ransomware", "non-destructive"),
                                           ("host-lost", "destructive"),
                                           ("ransomware", "destructive")])
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
    assert all(p["ok"] for p in res["phases"]), [(p["name"], p["detail"]) for p in res["phases"] if not p["ok"]]
    assert res["verify"] and all(v["passed"] is True for v in res["verify"]), res["verify"]
    if mode == "destructive":
        assert [v["stage"] for v in res["verify"]][-1] == "after failback (geo)"
    assert res["passed"] is True and res["rto_met"] is True and res["rpo_met"] is True
    # RTO: measured, positive, within the target (and the whole drill within DRILL_TIMEOUT).
    assert _number(res["rto_seconds"]) and 0 < res["rto_seconds"] < TARGETS["rto_seconds"], res["rto_seconds"]
    # RPO: both the database and the file figure measured, numbers >= 0; the RPO is the larger.
    rpo_db, rpo_files = res["rpo"]["db_seconds"], res["rpo"]["files_seconds"]
    assert _number(rpo_db) and rpo_db >= 0, res["rpo"]
    assert _number(rpo_files) and rpo_files >= 0, res["rpo"]
    assert res["rpo_seconds"] == max(rpo_db, rpo_files) <= TARGETS["rpo_seconds"], res["rpo"]
    assert res["rpo"]["heartbeats_acked"] > 0, res["rpo"]
    # The level the lab's setup supports, a literal (not recomputed by gbt20988_level).
    assert res["level"]["level"] == EXPECTED_LEVEL, (res["level"], res["rto_seconds"], res["rpo_seconds"])
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
