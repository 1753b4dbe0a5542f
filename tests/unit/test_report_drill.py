"""archive_dr/drill.py pure parts: GB/T 20988 mapping, RTO/RPO figures (measured or bound), verdicts, timed
phases with one-line outcomes and full logs, the disaster method and replication mode, preflight gates."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from archive_dr import drill, paths, runner

LAB_INV = paths.LAB_INVENTORY


@pytest.mark.parametrize("rto,rpo,level", [
    (300, 0, 6), (3600, 0, 5), (300, 5, 5), (3600, 1800, 5), (3600, 1801, 4), (3 * 86400, 600, 3),
    (86400, 2 * 86400, 2), (2 * 86400, 7 * 86400, 2), (2 * 86400 + 1, 2 * 86400, 1), (10 * 86400, 7 * 86400, 1),
    (86400, 8 * 86400, 0)])
def test_gbt20988_level(rto, rpo, level):
    assert drill.gbt20988_level(rto, rpo, synchronous=True)["level"] == level


def test_level_1_and_2_differ_by_rto_and_every_level_is_reachable():
    # level 2 "24小时以后" vs level 1 "2天以上": the same RPO (1-7 days), an RTO within 2 days or beyond
    assert drill.gbt20988_level(1.5 * 86400, 3 * 86400)["level"] == 2
    assert drill.gbt20988_level(3 * 86400, 3 * 86400)["level"] == 1
    reached = {drill.gbt20988_level(rto, rpo, synchronous=True)["level"]
               for rto in (60, 3600, 86400, 1.5 * 86400, 3 * 86400, 30 * 86400)
               for rpo in (0, 60, 3600, 86400, 3 * 86400, 30 * 86400)}
    assert reached == {0, 1, 2, 3, 4, 5, 6}


def test_level_basis_quotes_the_table():
    lv = drill.gbt20988_level(8.4, 7.0)
    assert lv["level"] == 5
    assert "GB/T 20988-2007 附录A" in lv["basis"] and "数分钟至2天" in lv["basis"] and "0至30分钟" in lv["basis"]
    assert "8.40 s" in lv["basis"] and "7.00 s" in lv["basis"]
    one = drill.gbt20988_level(5 * 86400, 3 * 86400)
    assert one["level"] == 1 and "2天以上" in one["basis"] and "1天至7天" in one["basis"]


def test_level_6_needs_synchronous_replication():
    assert drill.gbt20988_level(300, 0)["level"] == 5
    assert "asynchronous" in drill.gbt20988_level(300, 0)["basis"]
    assert drill.gbt20988_level(300, 0, synchronous=True)["level"] == 6


def test_level_not_measured():
    lv = drill.gbt20988_level(None, 3)
    assert lv["level"] is None and "RTO not measured" in lv["basis"]
    assert drill.gbt20988_level(10, None, why_not="because")["basis"] == "because"


def test_rpo_and_rto():
    assert drill.rpo_from(100.5, 99.0) == 1.5
    assert drill.rpo_from(100.0, 101.0) == 0.0
    assert drill.rpo_from(100.0, None) is None
    assert drill.rpo_from(100.1234, 99.9) == pytest.approx(0.223)       # ms resolution, not whole seconds
    phases = [{"name": "recover", "end": 130.0, "ok": True}, {"name": "service", "end": 160.0, "ok": True}]
    assert drill.rto_from(phases, 100.0, "service") == 60.0
    phases[1]["ok"] = False
    assert drill.rto_from(phases, 100.0, "service") is None


def test_rpo_figure_measured_bound_and_unknown():
    acked = [100.0, 101.0, 160.25]
    f = drill.rpo_figure(acked, 159.75, 1.0)
    assert (f["seconds"], f["measured"], f["bound"]) == (0.5, True, None)
    assert f["last_acked"] == 160.25 and f["newest_recovered"] == 159.75 and f["resolution_seconds"] == 1.0
    # a heartbeat newer than the last acknowledgement came back (its ack was lost): 0, and by how much
    f = drill.rpo_figure(acked, 161.0)
    assert f["seconds"] == 0.0 and f["measured"] and f["ahead_seconds"] == 0.75 and "acknowledg" in f["note"]
    # nothing of this drill recovered (nothing, or a file of an earlier drill): a lower bound, not a measurement
    for newest in (None, 40.0):
        f = drill.rpo_figure(acked, newest)
        assert (f["seconds"], f["measured"], f["bound"]) == (60.25, False, "lower") and "at least" in f["note"]
    f = drill.rpo_figure([], 10.0)
    assert (f["seconds"], f["measured"], f["bound"]) == (None, False, None)


TARGETS = {"rto_seconds": 14400, "rpo_seconds": 900}


def test_assess_measured():
    rpo = {"database": drill.rpo_figure([1.0, 2.0], 2.0), "files": drill.rpo_figure([1.0, 9.0], 2.0)}
    v = drill.assess(rpo, 8.4, TARGETS)
    assert v["rpo_seconds"] == 7.0 and v["rpo_overall"] == {"seconds": 7.0, "measured": True, "bound": None}
    assert v["rto_met"] and v["rpo_met"] and v["level"]["level"] == 5


def test_assess_a_lower_bound_is_no_pass_and_no_level():
    """The finding: a bound (no heartbeat file recovered) set rpo_met, the level and passed."""
    rpo = {"database": drill.rpo_figure([1.0, 2.0], 2.0), "files": drill.rpo_figure([1.0, 9.0], None)}
    v = drill.assess(rpo, 8.4, TARGETS)
    assert v["rpo_seconds"] is None and v["rpo_met"] is False        # 8 s ≤ 15 min, still no pass on a bound
    assert v["rpo_overall"] == {"seconds": 8.0, "measured": False, "bound": "lower"}
    assert v["level"]["level"] is None
    assert "files RPO ≥ 8.00 s (lower bound)" in v["level"]["basis"] and "not measured" in v["level"]["basis"]
    v = drill.assess({}, 8.4, TARGETS)
    assert v["rpo_seconds"] is None and v["rpo_met"] is False and v["level"]["level"] is None


def event(kind, **data):
    return {"event": kind, "created": "2026-12-03T08:26:31.000000+00:00", "stdout": "", "event_data": data}


def result(events, status="successful", rc=0, stdout="PLAY [Promote miyun] ***\nTASK [Promote the standby] ***\n"):
    return runner.PlaybookResult(playbook="promote-miyun.yml", status=status, rc=rc, events=events, stdout=stdout,
                                 artifact_dir=Path("/nonexistent/artifacts"))


def stats(**per_host):
    keys = ("ok", "changed", "dark", "failures", "skipped", "rescued", "ignored")
    return event("playbook_on_stats", **{k: {h: v[i] for h, v in per_host.items()} for i, k in enumerate(keys)})


PLAYBOOK_OK = result([
    event("playbook_on_play_start", play="Promote miyun"),
    event("runner_on_ok", task="Promote the standby", task_action="ansible.builtin.command", host="miyun-store",
          res={"changed": True, "msg": "not a debug message"}),
    event("runner_on_ok", task="Report", task_action="ansible.builtin.debug", host="miyun-store",
          res={"msg": "miyun promoted in 3.9 s (last replayed transaction 2026-12-03 08:26:31.117488+00)\n  more lines"}),
    stats(**{"miyun-store": (15, 4, 0, 0, 1, 0, 0)})])
PLAYBOOK_FAILED = result([
    event("playbook_on_play_start", play="Promote miyun"),
    event("runner_on_ok", task="Read the standby's state", task_action="ansible.builtin.command", host="miyun-store",
          res={}),
    event("runner_on_failed", task="Try something", host="miyun-store", ignore_errors=True, res={"msg": "ignored"}),
    event("runner_on_failed", task="Promote the standby", host="miyun-store", ignore_errors=None,
          res={"changed": False, "msg": "pg_ctl: server is not in standby mode"}),
    stats(**{"miyun-store": (1, 0, 0, 1, 0, 0, 0)})], status="failed", rc=2,
    stdout="TASK [Promote the standby] ***\nfatal: [miyun-store]: FAILED! =>\n    msg: 'pg_ctl: server is not in standby mode'\n")


def test_playbook_outcome_is_one_line_from_the_events():
    ok = drill.outcome(PLAYBOOK_OK)
    assert ok == "miyun promoted in 3.9 s (last replayed transaction 2026-12-03 08:26:31.117488+00) (1 host, 4 changed)"
    bad = drill.outcome(PLAYBOOK_FAILED)
    assert bad == "task “Promote the standby” failed on miyun-store: pg_ctl: server is not in standby mode"
    quiet = result([e for e in PLAYBOOK_OK.events if e["event_data"].get("task") != "Report"])
    quiet = drill.outcome(quiet)
    assert quiet == "miyun-store: 15 ok, 4 changed"
    unreachable = result([event("runner_on_unreachable", task="Gathering Facts", host="h",
                                res={"unreachable": True, "msg": "ssh: timed out"})], status="failed", rc=4)
    assert drill.outcome(unreachable) == "task “Gathering Facts” unreachable on h: ssh: timed out"
    for text in (ok, bad, quiet):
        assert "\n" not in text and "PLAY" not in text and "TASK [" not in text


def test_results_and_stats_are_read_from_the_events():
    assert PLAYBOOK_OK.stats == {"miyun-store": runner.HostStats(ok=15, changed=4, skipped=1)}
    assert PLAYBOOK_OK.task_result("Promote the standby", "miyun-store") == {"changed": True,
                                                                             "msg": "not a debug message"}
    with pytest.raises(runner.RunnerError, match="returned 0 results"):
        PLAYBOOK_OK.task_result("Promote the standby", "geo-archive")
    assert PLAYBOOK_OK.check() is PLAYBOOK_OK
    with pytest.raises(runner.PlaybookFailed, match="pg_ctl"):
        PLAYBOOK_FAILED.check()


def test_phases_keep_one_line_and_the_full_output_in_a_log(tmp_path):
    ph = drill.Phases(tmp_path / "drill-x-logs", "drill-x-logs")
    assert ph.run("a", "A", lambda: "done") == "done"

    def recovered():
        drill._capture("ansible-playbook promote-miyun.yml", PLAYBOOK_OK.stdout)
        return PLAYBOOK_OK
    ph.run("recover", "R", recovered)

    def failing():
        drill._capture("ansible-playbook promote-miyun.yml", PLAYBOOK_FAILED.stdout)
        PLAYBOOK_FAILED.check()

    with pytest.raises(runner.PlaybookFailed):
        ph.run("recover2", "R2", failing)
    with pytest.raises(ValueError):
        ph.run("b", "B", lambda: (_ for _ in ()).throw(ValueError("boom")))
    a, rec, rec2, b = ph.items
    assert a["ok"] and a["detail"] == "done" and 0 <= a["seconds"] < 1
    assert rec["ok"] and rec["detail"].startswith("miyun promoted in 3.9 s") and rec["log"] == "drill-x-logs/02-recover.log"
    log = (tmp_path / rec["log"]).read_text()
    assert "TASK [Promote the standby]" in log and "# outcome: miyun promoted" in log
    assert not rec2["ok"] and rec2["detail"] == ("PlaybookFailed: promote-miyun.yml failed (failed, rc=2): task “Promote "
                                                 "the standby” failed on miyun-store: pg_ctl: server is not in standby mode")
    log2 = (tmp_path / rec2["log"]).read_text()
    assert "$ ansible-playbook promote-miyun.yml" in log2 and "fatal: [miyun-store]" in log2 and "# error" in log2
    assert not b["ok"] and b["detail"] == "ValueError: boom" and b["end"] <= time.time()
    for p in ph.items:
        assert "\n" not in p["detail"] and "PLAY [" not in p["detail"]


def test_phase_commands_are_logged(tmp_path):
    ph = drill.Phases(tmp_path / "logs")                 # links relative to the report: logs/NN-name.log
    out = ph.run("disaster", "D", drill.commands, [["true"], ["echo", "hello world"]])
    assert out == "ran: true; echo 'hello world'" and ph.items[0]["detail"] == out
    assert "$ echo 'hello world'\nhello world" in (tmp_path / ph.items[0]["log"]).read_text()
    with pytest.raises(subprocess.CalledProcessError):
        ph.run("disaster2", "D", drill.commands, [["false"]])
    assert "returned non-zero exit status 1" in ph.items[1]["detail"]


@pytest.mark.parametrize("cmd,method", [
    (["podman", "stop", "geo-archive"], "stop"),
    ("podman stop -t 0 geo-archive", "stop"),
    ([["podman", "kill", "geo-archive"], ["tc", "qdisc", "replace", "dev", "lab-wan-geo", "root", "netem", "loss",
                                             "100%"]], "kill+wan-cut"),
    ([["podman", "kill", "--signal", "KILL", "geo-archive"], ["ip", "link", "set", "wan0", "down"]], "kill+wan-cut"),
    ([["podman", "network", "disconnect", "lab-lan-geo", "geo-archive"]], "net-cut"),
    (["virsh", "destroy", "geo-archive"], "kill"),
    (["podman", "pause", "geo-archive"], "pause"),
    (None, "not configured")])
def test_disaster_method_is_derived_from_the_commands(cmd, method):
    d = drill.disaster_method({"disaster_commands": {"host-lost": cmd}}, "host-lost", "destructive")
    assert d["method"] == method
    assert len(d["commands"]) == len(drill._argvs(cmd))


def test_disaster_method_of_the_lab_inventory_and_other_scenarios():
    _, cfg = drill.load_config(LAB_INV)
    expected = "+".join(dict.fromkeys(drill.command_method(a)
                                      for a in drill._argvs(cfg["disaster_commands"]["host-lost"])))
    assert drill.disaster_method(cfg, "host-lost", "destructive")["method"] == expected
    rw = drill.disaster_method(cfg, "ransomware", "destructive")
    assert rw["method"] == "encrypt+drop-table" and str(cfg["ransomware_files"]) in rw["description"]
    assert drill.disaster_method(cfg, "ransomware", "non-destructive")["method"] == "none"


def test_replication_mode():
    # without the sync guard's status: the inventory's declared mode, labelled as such
    # (a declaration supports no level: synchronous is False whatever it says)
    assert drill.replication_info({}) == {"mode": "async", "synchronous": False, "declared_synchronous": False,
                                          "source": "inventory", "measured": False}
    assert drill.replication_info({"replication_mode": "sync"}) == {
        "mode": "sync", "synchronous": False, "declared_synchronous": True, "source": "inventory", "measured": False}


def test_preflight_gates(tmp_path, monkeypatch):
    cfg = {"playbooks": {"recover_host-lost": "site.yml", "failback": "no-such-playbook.yml",
                         "recover_scratch": "site.yml"}}
    with pytest.raises(RuntimeError, match="failback"):
        drill.preflight(cfg, "host-lost", "destructive")
    cfg["playbooks"]["failback"] = "site.yml"
    monkeypatch.setattr(drill, "LAB_STATE_DIR", tmp_path)
    lab_inv = [tmp_path / "production", tmp_path / "lab"]
    with pytest.raises(RuntimeError, match="not the lab inventory"):
        drill.preflight(cfg, "host-lost", "destructive", lab_inv)
    (tmp_path / "state.json").write_text(json.dumps({"inventory": [str(p) for p in lab_inv]}))
    with pytest.raises(RuntimeError, match="not the lab inventory"):
        drill.preflight(cfg, "host-lost", "destructive", lab_inv[:1])      # production alone is not the lab
    with pytest.raises(RuntimeError, match="not the lab inventory"):
        drill.preflight(cfg, "host-lost", "destructive", lab_inv[::-1])    # the order of the layers counts
    assert "site.yml" in drill.preflight(cfg, "host-lost", "destructive", lab_inv)
    assert drill.preflight(cfg, "ransomware", "non-destructive") == "playbooks: site.yml"
    cfg["playbooks"]["recover_ransomware"] = "site.yml"
    assert drill.preflight(cfg, "ransomware", "destructive", lab_inv) == "playbooks: site.yml, site.yml"
    cfg["playbooks"]["failback_ransomware"] = "no-such-repair.yml"
    with pytest.raises(RuntimeError, match="failback_ransomware"):
        drill.preflight(cfg, "ransomware", "destructive", lab_inv)


class _FakeHeartbeat:
    def __init__(self, *a, **k):
        self.acked_db, self.acked_files, self.errors, self.alive = [], [], 0, False

    def start(self):
        self.alive = True
        now = time.time()
        self.acked_db, self.acked_files = [now - 2, now - 1], [now - 2, now - 1]

    def stop(self):
        self.alive = False
        return self.acked_db[-1]

    def is_alive(self):
        return self.alive


@pytest.mark.parametrize("scenario,mode,released", [
    ("ransomware", "destructive", True), ("ransomware", "non-destructive", False), ("host-lost", "destructive", False)])
def test_only_the_destructive_ransomware_drill_releases_the_file_replica(scenario, mode, released, tmp_path,
                                                                         monkeypatch):
    """The attack's encrypted files hold the file replica's pulls in quarantine; after geo's repair the drill
    releases them through the playbook of `archive-dr release` (phase release, after failback)."""
    cfg = {"playbooks": {"recover_host-lost": "promote-miyun.yml", "recover_ransomware": "replica.yml",
                         "recover_scratch": "replica.yml", "failback": "failback-geo.yml",
                         "failback_ransomware": "repair-geo.yml"},
           "disaster_commands": {"host-lost": [["true"]]}, "heartbeat_warmup": 0, "ransomware_files": 20,
           "sites": {"scratch": {"host": "miyun-store"}}}
    ran = []
    monkeypatch.setattr(drill, "load_config", lambda inventory: ({"rto_seconds": 3600, "rpo_seconds": 60}, cfg))
    monkeypatch.setattr(drill, "preflight", lambda *a: "ok")
    monkeypatch.setattr(drill, "playbook", lambda name, inventory, extra=None, timeout=3600: ran.append((name, extra)))
    monkeypatch.setattr(drill, "commands", lambda *a, **k: "ran")
    monkeypatch.setattr(drill, "verify", lambda *a: {"passed": True, "summary": "ok"})
    monkeypatch.setattr(drill, "newest_recovered", lambda *a: (time.time() - 1, time.time() - 1))
    monkeypatch.setattr(drill, "Heartbeat", _FakeHeartbeat)
    monkeypatch.setattr(drill, "heartbeat_ssh_argv", lambda *a: [])
    res = drill.run(scenario, mode, [tmp_path / "inventory"], tmp_path / "reports")
    assert not res.get("error"), res.get("error")
    # no sync guard to ask (no ssh here): the declared mode, labelled as such (tests/unit/test_drill_replication.py)
    assert (res["replication"]["source"], res["replication"]["mode"]) == ("inventory", "async")
    names = [p["name"] for p in res["phases"]]
    releases = [extra for name, extra in ran if name == drill.RELEASE_PLAYBOOK]
    if not released:
        assert "release" not in names and releases == []
        return
    assert names[names.index("failback"):] == ["failback", "release", "verify-failback"]
    phase = res["phases"][names.index("release")]
    assert phase["ok"] and phase["label"].startswith("放行 release")
    assert releases == [{"replica_release_job": "files", "replica_release_by": releases[0]["replica_release_by"],
                         "replica_release_reason": "drill %s: geo repaired (repair-geo.yml)" % res["id"]}]
    assert releases[0]["replica_release_by"].endswith("(archive-dr drill)")


# ------------------------------------------------------------------ the write load in a drill (dr_drill.load)
T = 1_800_000_000.25


class _FixedHeartbeat(_FakeHeartbeat):
    """Heartbeats acknowledged at T-2 and T-1 (geo timestamps)."""

    def start(self):
        self.alive = True
        self.acked_db, self.acked_files = [T - 2, T - 1], [T - 2, T - 1]


class _FakeLoad:
    """LoadWriter's interface: load commits acknowledged every 50 ms up to T-0.2."""
    made = []

    def __init__(self, ssh, drill_id, db, table, interval, rows, row_bytes, max_in_flight):
        self.args = (drill_id, db, table, interval, rows, row_bytes, max_in_flight)
        self.interval, self.acked, self.alive = interval, [], False
        _FakeLoad.made.append(self)

    def start(self):
        self.alive = True
        self.acked = [round(T - 1.2 + 0.05 * i, 3) for i in range(21)]

    def stop(self, wait=True):
        self.alive = False
        return self.acked[-1]

    @property
    def last_acked(self):
        return self.acked[-1]

    def is_alive(self):
        return self.alive

    def summary(self):
        return {"enabled": True, "sent": 22, "acked": len(self.acked), "errors": 1, "interval": self.interval}


def _run_with_load(scenario, mode, cfg_extra, tmp_path, monkeypatch, recovered):
    cfg = {"playbooks": {"recover_host-lost": "promote-miyun.yml", "recover_ransomware": "replica.yml",
                         "recover_scratch": "replica.yml", "failback": "failback-geo.yml",
                         "failback_ransomware": "repair-geo.yml"},
           "disaster_commands": {"host-lost": [["true"]]}, "heartbeat_warmup": 0,
           "sites": {"scratch": {"host": "miyun-store"}}}
    cfg.update(cfg_extra)
    ran, probes = [], []
    _FakeLoad.made = []
    monkeypatch.setattr(drill, "load_config", lambda inventory: ({"rto_seconds": 3600, "rpo_seconds": 60}, cfg))
    monkeypatch.setattr(drill, "preflight", lambda *a: "ok")
    monkeypatch.setattr(drill, "playbook", lambda name, inventory, extra=None, timeout=3600: ran.append((name, extra)))
    monkeypatch.setattr(drill, "commands", lambda *a, **k: "ran")
    monkeypatch.setattr(drill, "verify", lambda *a: {"passed": True, "summary": "ok"})
    monkeypatch.setattr(drill, "newest_recovered", lambda *a: probes.append(a) or recovered)
    monkeypatch.setattr(drill, "Heartbeat", _FixedHeartbeat)
    monkeypatch.setattr(drill, "LoadWriter", _FakeLoad)
    monkeypatch.setattr(drill, "heartbeat_ssh_argv", lambda *a: [])
    res = drill.run(scenario, mode, [tmp_path / "inventory"], tmp_path / "reports")
    assert not res.get("error"), res.get("error")
    return res, ran, probes


def test_a_host_lost_drill_runs_the_load_and_reports_the_worse_database_rpo(tmp_path, monkeypatch):
    # recovered: heartbeat row T-1 (0 s lost), file T-2 (1 s), load row T-0.5 (0.3 s of load commits lost)
    res, ran, probes = _run_with_load("host-lost", "destructive", {}, tmp_path, monkeypatch, (T - 1, T - 2, T - 0.5))
    (load,) = _FakeLoad.made
    assert load.args[1:] == ("archive", "archive_dr_drill_load", 0.05, 20, 200, 4)
    assert ran[0] == ("drill.yml", {"dr_drill_phase": "prepare", "dr_drill_id": res["id"],
                                    "dr_drill_load_table": "archive_dr_drill_load"})
    assert probes[0][3] == "archive_dr_drill_load"                   # the probe reads the load's table
    rpo = res["rpo"]
    assert (rpo["database_heartbeat"]["seconds"], rpo["database_load"]["seconds"]) == (0.0, 0.3)
    assert (rpo["database"]["seconds"], rpo["database"]["source"], rpo["db_seconds"]) == (0.3, "load", 0.3)
    assert rpo["database_load"]["resolution_seconds"] == 0.05 and rpo["database_heartbeat"]["resolution_seconds"] == 1.0
    assert rpo["load_commits_acked"] == 21 and rpo["load_interval"] == 0.05
    assert rpo["last_load_acked_at_geo"].startswith("20") and ".050 " in rpo["last_load_acked_at_geo"]
    assert res["rpo_seconds"] == 1.0 and rpo["overall"]["seconds"] == 1.0      # the file figure is the worse
    assert res["load"] == {"enabled": True, "sent": 22, "acked": 21, "errors": 1, "interval": 0.05}
    assert "newest load row" in res["phases"][[p["name"] for p in res["phases"]].index("service")]["detail"]


def test_no_load_by_default_in_the_ransomware_drill(tmp_path, monkeypatch):
    res, ran, probes = _run_with_load("ransomware", "destructive", {}, tmp_path, monkeypatch, (T - 1, T - 1))
    assert _FakeLoad.made == [] and res["load"] == {"enabled": False}
    assert ran[0] == ("drill.yml", {"dr_drill_phase": "prepare", "dr_drill_id": res["id"]})
    assert probes[0][3] is None
    assert "database_load" not in res["rpo"] and "source" not in res["rpo"]["database"]
    assert res["rpo"]["database"]["seconds"] == 0.0


def test_a_configured_load_moves_the_last_good_point(tmp_path, monkeypatch):
    """Ransomware with dr_drill.load enabled: the restore target follows the newest acknowledged commit of either
    (the load's T-0.2 here, not the heartbeat's T-1), so no acknowledged load commit is cut off by the PITR."""
    res, ran, _ = _run_with_load("ransomware", "destructive", {"load": {"enabled": True, "interval": 0.1}},
                                 tmp_path, monkeypatch, (T - 1, T - 1, T - 0.2))
    assert _FakeLoad.made[0].args[3] == 0.1
    target = [extra for name, extra in ran if name == "replica.yml"][0]["replica_restore_target_time"]
    assert target == time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(T - 0.2 + 1)) != time.strftime(
        "%Y-%m-%d %H:%M:%S+00", time.gmtime(T - 1 + 1))
    assert res["rpo"]["database"]["seconds"] == 0.0 and res["rpo"]["database_load"]["measured"]


def test_the_report_shows_the_load_row_and_the_resolution(tmp_path):
    from archive_dr import report
    from tests.unit.reportdata import drill_result
    d = drill_result(120, 0.3)
    hb = drill.rpo_figure([T - 2, T - 1], T - 1, 1.0)
    ld = drill.rpo_figure([round(T - 1.2 + 0.05 * i, 3) for i in range(21)], T - 0.5, 0.05, what="load commit")
    d["rpo"].update(database=drill.database_figure(hb, ld), database_heartbeat=hb, database_load=ld)
    d["load"] = {"enabled": True, "table": "archive_dr_drill_load", "interval": 0.05, "rows_per_commit": 20,
                 "sent": 22, "acked": 21, "errors": 1, "commits_per_s": 20.0, "ended": "session lost (rc 255)"}
    paths = report.write(d, tmp_path, pdf=False)
    html, md = paths["html"].read_text(), paths["md"].read_text()
    for text in (html, md):
        assert "└ 数据库·写负载 database, load" in text and "└ 数据库·心跳 database, heartbeat" in text
        assert "分辨率 resolution" in text and "0.050 s" in text and "写负载 write load" in text
        assert "session lost (rc 255)" in text and "the worse of heartbeat 0 s and load 0.300 s" in text
        assert "None" not in text
    plain = report.write(drill_result(120, 3.5), tmp_path / "plain", pdf=False)
    for text in (plain["html"].read_text(), plain["md"].read_text()):
        assert "写负载" not in text and "分辨率 resolution" in text and "None" not in text
