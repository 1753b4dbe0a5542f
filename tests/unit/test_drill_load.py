"""archive_dr/drill.py: the drill's write load at geo (LoadWriter) against a fake ``ssh … psql`` (a Python script
that answers each statement with an increasing geo timestamp and, like a host lost in a disaster, can end after
M statements or hang), its settings (dr_drill.load), the resolution of an RPO figure, the database RPO from the
heartbeat and the load figure, and the probe's answer with and without ``load``."""
from __future__ import annotations

import sys
import time

import pytest

from archive_dr import drill

FAKE_PSQL = r'''
import sys, time
limit, delay, mode, log = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(log, "a") as f:
    f.write("remote: %s\n" % sys.argv[-1])
if mode.startswith("hang"):     # a host gone with the WAN: no answer, not even to the end of stdin
    if mode == "hang-held":     # and, like ssh's master connection, another process holds our stdout
        import subprocess
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    time.sleep(60)
n, t = 0, 1000.0
for line in sys.stdin:
    if not line.strip():
        continue
    with open(log, "a") as f:
        f.write(line)
    time.sleep(delay)
    n += 1
    t += 0.05
    print("oops" if mode == "bad" and n == 2 else "%.6f" % t, flush=True)
    if limit and n >= limit:
        sys.exit(255)           # the disaster: the connection is gone, as ssh reports it
'''


@pytest.fixture
def fake(tmp_path):
    """ssh argv of the fake: fake(limit=0 (no end), delay=0, mode="ok"|"bad"|"hang"); .log is what it read."""
    script = tmp_path / "fake_psql.py"
    script.write_text(FAKE_PSQL)
    log = tmp_path / "fake.log"

    def argv(limit=0, delay=0.0, mode="ok"):
        return [sys.executable, str(script), str(limit), str(delay), mode, str(log)]
    argv.log = log
    return argv


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_commits_are_acknowledged_and_a_stop_is_clean(fake):
    lw = drill.LoadWriter(fake(), "drill-1", "archive", interval=0.01)
    lw.start()
    wait_for(lambda: len(lw.acked) >= 10)
    last = lw.stop()
    assert not lw.is_alive() and lw.ended == "stopped" and lw.errors == 0
    # stdin closed: the fake answered what it had, so everything sent was acknowledged
    assert lw.sent == len(lw.acked) == lw.answered >= 10
    assert lw.acked == sorted(lw.acked) and last == lw.acked[-1] == pytest.approx(1000.0 + 0.05 * lw.sent)
    log = fake.log.read_text().splitlines()
    assert log[0] == "remote: runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d archive"
    assert log[1] == ("with w as (insert into archive_dr_drill_load(drill, at, filler) select 'drill-1', "
                      "clock_timestamp(), repeat('x', 200) from generate_series(1, 20) returning at) "
                      "select extract(epoch from max(at)) from w;")
    assert len(log) == 1 + lw.sent
    s = lw.summary()
    assert (s["enabled"], s["sent"], s["acked"], s["errors"], s["unanswered"]) == (True, lw.sent, lw.sent, 0, 0)
    assert (s["interval"], s["rows_per_commit"], s["row_bytes"], s["table"]) == (0.01, 20, 200, "archive_dr_drill_load")
    assert s["last_acked"] == last and s["resolution_seconds"] == 0.05 and s["commits_per_s"] == 20.0


def test_pipelining_is_bounded(fake):
    """A slow geo (0.1 s a commit) and a fast writer: never more than max_in_flight statements unanswered."""
    lw = drill.LoadWriter(fake(delay=0.1), "drill-2", interval=0.001, max_in_flight=3)
    lw.start()
    seen = []
    end = time.monotonic() + 0.8
    while time.monotonic() < end:
        seen.append(lw.sent - lw.answered)
        time.sleep(0.005)
    acked_before = len(lw.acked)
    lw.stop()
    assert max(seen) <= 3 and lw.peak_in_flight == 3
    assert 2 <= acked_before <= 9                         # ~0.1 s a commit, not the writer's 1 ms
    assert lw.sent == len(lw.acked) and lw.ended == "stopped"


def test_the_load_ends_by_itself_when_the_session_dies(fake):
    """The disaster kills the host: ssh ends after 10 answers; no exception, the thread ends on its own."""
    lw = drill.LoadWriter(fake(limit=10), "drill-3", interval=0.005, max_in_flight=4)
    lw.start()
    lw.join(timeout=10)
    assert not lw.is_alive()
    assert len(lw.acked) == 10 and lw.acked[-1] == pytest.approx(1000.5)
    assert 10 <= lw.sent <= 10 + 4
    assert lw.ended.startswith("session lost (rc 255)") and lw.errors == 1
    assert lw.stop() == pytest.approx(1000.5)            # stopping an ended load is harmless
    assert lw.summary()["unanswered"] == lw.sent - 10


@pytest.mark.parametrize("mode", ["hang", "hang-held"])
def test_a_hung_session_is_terminated(fake, mode):
    lw = drill.LoadWriter(fake(mode=mode), "drill-4", interval=0.01, stop_timeout=0.3)
    lw.start()
    wait_for(lambda: lw.sent == 4)                       # bounded: four statements wait for an answer
    t0 = time.monotonic()
    assert lw.stop() is None
    assert time.monotonic() - t0 < 5 and not lw.is_alive()
    assert lw.ended == "stopped (no end within 0.3 s: terminated)" and lw.acked == []


def test_a_session_that_cannot_start_or_answers_garbage(fake, tmp_path):
    lw = drill.LoadWriter([str(tmp_path / "no-such-ssh")], "drill-5")
    lw.start()
    lw.join(timeout=5)
    assert lw.ended.startswith("could not start") and lw.errors == 1 and lw.stop() is None
    assert drill.LoadWriter([], "x").stop() is None       # never started: nothing to stop
    lw = drill.LoadWriter(fake(mode="bad"), "drill-6", interval=0.01)
    lw.start()
    wait_for(lambda: lw.answered >= 4)
    lw.stop()
    assert lw.errors == 1 and len(lw.acked) == lw.answered - 1 == lw.sent - 1


@pytest.mark.parametrize("scenario,mode,conf,enabled", [
    ("host-lost", "destructive", None, True),
    ("ransomware", "destructive", None, False),
    ("host-lost", "non-destructive", None, False),
    ("ransomware", "non-destructive", {"enabled": True}, True),
    ("ransomware", "destructive", {"enabled": "true"}, True),
    ("host-lost", "destructive", {"enabled": False}, False),
    ("host-lost", "destructive", False, False),
    ("host-lost", "destructive", {"interval": 0.1}, True)])
def test_load_settings(scenario, mode, conf, enabled):
    cfg = {} if conf is None else {"load": conf}
    s = drill.load_settings(cfg, scenario, mode)
    assert s["enabled"] is enabled
    assert s["table"] == "archive_dr_drill_load" and s["rows"] == 20 and s["max_in_flight"] == 4
    assert s["interval"] == (conf or {}).get("interval", 0.05)


def test_load_settings_are_checked():
    s = drill.load_settings({"load": {"interval": "0.2", "rows": "5", "table": "my_load"}}, "host-lost", "destructive")
    assert (s["interval"], s["rows"], s["table"]) == (0.2, 5, "my_load")
    for bad in ({"table": "x; drop table archive_item"}, {"interval": 0}, {"rows": 0}):
        with pytest.raises(ValueError, match="dr_drill.load"):
            drill.load_settings({"load": bad}, "host-lost", "destructive")


def test_resolution_is_the_gap_between_the_last_acknowledgements():
    assert drill.ack_resolution([]) is None and drill.ack_resolution([5.0]) is None
    acked = [float(i) for i in range(10)] + [10 + 0.05 * i for i in range(1, 25)]
    assert drill.ack_resolution(acked) == 0.05                     # the last 20: the load's 50 ms, not 1 s
    assert drill.ack_resolution([0.0, 1.0, 60.0]) == 1.0           # an even number of gaps: the lower median
    f = drill.rpo_figure(acked, acked[-3], 0.05, what="load commit")
    assert (f["seconds"], f["measured"], f["resolution_seconds"]) == (0.1, True, 0.05)
    assert drill.rpo_figure([], None, 0.05, what="load commit")["resolution_seconds"] == 0.05   # the interval
    assert "no load commit was acknowledged" in drill.rpo_figure([], None, what="load commit")["note"]
    assert "no load commit of this drill was recovered" in drill.rpo_figure([1.0, 2.0], None, what="load commit")["note"]


HB = drill.rpo_figure([100.0, 101.0, 102.0], 101.0, 1.0)                  # 1.000 s, resolution 1 s
LOAD = drill.rpo_figure([101.9, 101.95, 102.0, 102.05], 101.95, 0.05, what="load commit")   # 0.100 s


def test_database_rpo_is_the_worse_of_heartbeat_and_load():
    assert drill.database_figure(HB) is HB and drill.database_figure(HB, None) is HB   # no load: as before
    f = drill.database_figure(HB, LOAD)
    assert (f["seconds"], f["measured"], f["source"], f["resolution_seconds"]) == (1.0, True, "heartbeat", 1.0)
    assert "the worse of heartbeat 1.00 s and load 0.100 s" in f["note"]
    late = drill.rpo_figure([101.0, 102.5], 101.0, 0.05, what="load commit")          # 1.5 s of load lost
    f = drill.database_figure(HB, late)
    assert (f["seconds"], f["source"], f["last_acked"]) == (1.5, "load", 102.5)
    tie = drill.rpo_figure([101.0, 102.0], 101.0, 0.05, what="load commit")
    assert drill.database_figure(HB, tie)["source"] == "load"                           # the finer of equals


def test_database_rpo_with_one_or_no_figure_measured():
    nothing = drill.rpo_figure([], None, 0.05, what="load commit")                      # no load acknowledged
    f = drill.database_figure(HB, nothing)
    assert (f["seconds"], f["measured"], f["source"]) == (1.0, True, "heartbeat")
    assert "heartbeat only: the load RPO was not measured (no load commit was acknowledged" in f["note"]
    f = drill.database_figure(drill.rpo_figure([], None), LOAD)
    assert (f["seconds"], f["measured"], f["source"]) == (0.1, True, "load") and "load only" in f["note"]
    small_bound = drill.rpo_figure([101.5, 101.6], None, what="load commit")            # ≥ 0.1 s < 1 s measured
    assert drill.database_figure(HB, small_bound)["source"] == "heartbeat"
    big_bound = drill.rpo_figure([90.0, 102.0], None, what="load commit")               # ≥ 12 s: at least that lost
    f = drill.database_figure(HB, big_bound)
    assert (f["seconds"], f["measured"], f["bound"], f["source"]) == (12.0, False, "lower", "load")
    assert "at least that much was lost" in f["note"]
    hb_bound = drill.rpo_figure([100.0, 102.0], None)
    f = drill.database_figure(hb_bound, big_bound)
    assert (f["seconds"], f["measured"], f["bound"]) == (12.0, False, "lower") and "neither" in f["note"]
    f = drill.database_figure(drill.rpo_figure([], None), nothing)
    assert (f["seconds"], f["measured"], f["bound"], f["source"]) == (None, False, None, None)
    assert "unknown" in f["note"]
    v = drill.assess({"database": f, "files": HB}, 10.0, {"rto_seconds": 600, "rpo_seconds": 60})
    assert v["rpo_seconds"] is None and v["rpo_met"] is False and v["level"]["level"] is None


def test_probe_with_and_without_load(monkeypatch):
    assert drill.parse_probe('{"db": 101.5, "files": 100.9, "load": 101.55}') == (101.5, 100.9, 101.55)
    assert drill.parse_probe('{"db": 101.5, "files": null}') == (101.5, None, None)      # an older probe
    assert drill.parse_probe('{"db": null, "files": null, "load": null}') == (None, None, None)
    calls = []

    class Result:
        def task_result(self, task, host):
            assert (task, host) == (drill.PROBE_TASK, "miyun-store")
            return {"stdout": '{"db": 1.5, "files": 1.0, "load": %s}' % (
                "1.55" if "dr_drill_load_table" in calls[-1] else "null")}

    monkeypatch.setattr(drill, "_site_host", lambda inventory, where: "miyun-store")
    monkeypatch.setattr(drill, "playbook", lambda name, inventory, extra: calls.append(extra) or Result())
    assert drill.newest_recovered(["inv"], "miyun", "d1") == (1.5, 1.0)               # no load: as before
    assert "dr_drill_load_table" not in calls[-1]
    assert drill.newest_recovered(["inv"], "miyun", "d1", "archive_dr_drill_load") == (1.5, 1.0, 1.55)
    assert calls[-1] == {"dr_drill_phase": "probe", "dr_drill_where": "miyun", "dr_drill_host": "miyun-store",
                         "dr_drill_id": "d1", "dr_drill_load_table": "archive_dr_drill_load"}
