"""module_utils/sync_guard.py: synchronous replication that degrades to asynchronous (roles/replica)."""
from __future__ import annotations

import json
import os
import signal

import pytest
import yaml

import sync_guard as sg  # module_utils/ is on the test path (pyproject.toml)
from archive_dr.paths import ROOT

POLICY = sg.Policy(degrade_after=5.0, check_interval=1.0, catchup_bytes=1000, return_checks=2)


def seen(reply, lag=0, age=0.2, state="streaming"):
    """The standby in pg_stat_replication with this status reply (changing each second while it is heard)."""
    return sg.Observed(ok=True, streaming=state == "streaming", state=state, reply=reply, reply_age=age,
                       lag_bytes=lag)


GONE = sg.Observed(ok=True, state="")
DOWN = sg.Observed(ok=False, error="psql: could not connect to server")


def started(obs, now=0.0, previous=None):
    return sg.decide(sg.fresh_state(previous), obs, now, POLICY, "miyun_store")


def run(state, observations, start=1.0, step=1.0):
    """Feed one observation per check; [(time, mode, action)] of every check."""
    out = []
    t = start
    for obs in observations:
        state, action = sg.decide(state, obs, t, POLICY, "miyun_store")
        out.append((t, state["mode"], action))
        t += step
    return state, out


def sync_state(now=0.0):
    st, action = started(seen("r0"), now)
    assert (st["mode"], action) == ("sync", "sync")
    return st


# ---------------------------------------------------------------- the state machine
def test_a_starting_guard_decides_at_once():
    st, action = started(seen("r0", lag=10))
    assert (st["mode"], action, st["degraded_total"]) == ("sync", "sync", 0)
    assert "guard started" in st["reason"] and "fresh" not in st
    for obs, why in ((GONE, "not connected"), (seen("r0", state="catchup"), "state catchup"),
                     (seen("r0", lag=5000), "not caught up"), (DOWN, "not answering"),
                     (sg.Observed(ok=True, in_recovery=True), "in recovery"),
                     (seen("r0", age=30.0), "last status reply 30.0 s old"),   # a cut WAN: the walsender's old reply
                     (seen("r0", age=None), "no status reply yet")):
        st, action = started(obs)
        assert (st["mode"], action) == ("degraded", "async"), why
        assert why in st["reason"]


def test_a_start_after_a_sync_run_that_degrades_counts():
    st, _ = started(GONE, previous={"mode": "sync", "degraded_total": 3, "history": [{"mode": "sync"}]})
    assert st["degraded_total"] == 4 and len(st["history"]) == 2
    st, _ = started(GONE, previous={"mode": "degraded", "degraded_total": 3})
    assert st["degraded_total"] == 3


def test_degrade_after_n_seconds_without_hearing_from_the_standby_not_before():
    st = sync_state()
    # the standby is heard at t=1 (new reply), then the WAN is cut: the walsender still says streaming,
    # with the same last reply, until wal_sender_timeout
    st, checks = run(st, [seen("r1")] + [seen("r1", age=9)] * 6, start=1.0, step=1.0)
    assert [c[2] for c in checks] == [None, None, None, None, None, "async", None]
    assert checks[5][:2] == (6.0, "degraded")             # 5 s after the last reply heard, not before
    assert st["degraded_total"] == 1 and "not heard from for 5.0 s" in st["reason"]
    assert st["history"][-1]["mode"] == "degraded" and st["last_change"] == 6.0


def test_not_before_at_a_fraction_of_a_second():
    st = sync_state()
    st, action = sg.decide(st, GONE, 4.99, POLICY)
    assert (st["mode"], action) == ("sync", None)
    st, action = sg.decide(st, GONE, 5.0, POLICY)
    assert (st["mode"], action) == ("degraded", "async")


@pytest.mark.parametrize("obs", [GONE, DOWN, seen("r0", state="startup"), sg.Observed(ok=True, in_recovery=True)])
def test_every_kind_of_silence_degrades(obs):
    st, checks = run(sync_state(), [obs] * 6)
    assert [c[2] for c in checks].count("async") == 1 and checks[4][1:] == ("degraded", "async")


def test_a_standby_that_keeps_replying_keeps_sync_whatever_its_lag():
    st, checks = run(sync_state(), [seen("r%d" % i, lag=10 ** 9) for i in range(1, 30)])
    assert {c[1] for c in checks} == {"sync"} and st["degraded_total"] == 0


def test_return_only_after_caught_up_for_two_checks():
    st, _ = started(GONE)
    st, checks = run(st, [seen("r1"), seen("r2")])
    assert [c[1:] for c in checks] == [("degraded", None), ("sync", "sync")]
    assert "caught up" in st["reason"] and st["degraded_total"] == 0


def test_catching_up_does_not_count():
    st, _ = started(GONE)
    st, checks = run(st, [seen("r1", lag=50000), seen("r2", lag=2000), seen("r3", lag=900), seen("r4", lag=5000),
                          seen("r5", lag=10), seen("r6", lag=0)])
    assert [c[2] for c in checks] == [None, None, None, None, None, "sync"]


def test_a_silent_standby_is_not_caught_up():
    st, _ = started(GONE)
    # one new reply at t=1, then the same one: caught up at t=1 and t=2 (heard 1 s ago), silent from then on
    st, checks = run(st, [seen("r1")] + [seen("r1")] * 7)
    assert [c[2] for c in checks] == [None, "sync", None, None, None, "async", None, None]
    assert checks[5][:2] == (6.0, "degraded")               # 5 s after the reply heard at t=1
    # degraded, the same old reply never makes it caught up again
    assert {c[1] for c in checks[5:]} == {"degraded"}


def test_flapping_standby_never_returns_and_counts_each_real_degrade_once():
    st, _ = started(GONE)
    flaps = [seen("r%d" % i) if i % 2 else GONE for i in range(40)]
    st, checks = run(st, flaps)
    assert {c[1] for c in checks} == {"degraded"} and st["degraded_total"] == 0
    # sync, then on and off every 3 s: degrades once after 5 s of silence, returns after 2 good checks
    st = sync_state()
    pattern = ([GONE] * 6 + [seen("a"), seen("b")]) * 3
    st, checks = run(st, pattern)
    assert [c[2] for c in checks if c[2]] == ["async", "sync"] * 3
    assert st["degraded_total"] == 3 and len(st["history"]) == 7


def test_history_is_bounded():
    st = sync_state()
    for i in range(sg.HISTORY + 20):
        st, _ = sg._transition(st, "degraded" if i % 2 else "sync", float(i), "x")
    assert len(st["history"]) == sg.HISTORY


# ---------------------------------------------------------------- SQL, drop-in and reload (psql mocked)
@pytest.fixture()
def cfg(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "data").mkdir()
    raw = {"standby": "miyun_store", "synchronous_commit": "on", "degrade_after": 5, "check_interval": 1,
           "catchup_bytes": 1000, "port": 5432, "conf_file": str(tmp_path / "conf.d" / "90-archive-dr-sync-guard.conf"),
           "data_dir": str(tmp_path / "data"), "state_file": str(tmp_path / "state" / "state.json"),
           "metrics_file": str(tmp_path / "state" / "archive_dr_sync_guard.prom")}
    path = tmp_path / "sync-guard.json"
    path.write_text(json.dumps(raw))
    return sg.load_config(str(path))


class FakePsql:
    """Answers the guard's SQL from a script: observe rows in order, pg_file_settings, failures."""

    def __init__(self, cfg, rows=(), applied_from=None, fail=()):
        self.cfg, self.rows, self.sql = cfg, list(rows), []
        self.applied_from = applied_from            # {"file": ..., "setting": ...} overriding the drop-in, or None
        self.fail = set(fail)

    def __call__(self, sql):
        self.sql.append(sql)
        kind = ("observe" if "pg_stat_replication" in sql and "pg_is_in_recovery" in sql else
                "reload" if sql == sg.RELOAD_SQL else "files" if sql == sg.FILE_SETTINGS_SQL else
                "reset" if sql == sg.RESET_SQL else "status" if "current_setting" in sql else sql)
        if kind in self.fail:
            raise RuntimeError("psql: %s failed" % kind)
        if kind == "observe":
            row = self.rows.pop(0) if self.rows else "f||||"
            if isinstance(row, Exception):
                raise row
            return row + "\n"
        if kind == "files":
            out = "%s|%s|%s|\n" % (self.cfg["conf_file"], '"miyun_store"', "f" if self.applied_from else "t")
            if self.applied_from:
                out += "%s|%s|t|\n" % (self.applied_from["file"], self.applied_from["setting"])
            return out
        if kind == "reset":
            self.applied_from = None
            return ""
        if kind == "status":
            return '"miyun_store"|on|sync\n'
        return "t\n"


def kinds(psql):
    return ["observe" if "pg_stat_replication" in s and "pg_is_in_recovery" in s else
            {sg.RELOAD_SQL: "reload", sg.FILE_SETTINGS_SQL: "files", sg.RESET_SQL: "reset"}.get(s, s) for s in psql.sql]


def test_observe_sql_names_the_standby_and_the_lsn_of_the_commit_level(cfg):
    on = sg.observe_sql(cfg)
    assert "application_name = 'miyun_store'" in on and "flush_lsn AS lsn" in on and "replay_lsn" not in on
    assert "reply_time" in on and "pg_current_wal_lsn()" in on and "WHEN pg_is_in_recovery() THEN NULL" in on
    assert "replay_lsn AS lsn" in sg.observe_sql(dict(cfg, synchronous_commit="remote_apply"))
    assert "application_name = 'miyun_store'" in sg.status_sql(cfg)


def test_parse_observation():
    o = sg.parse_observation("f|streaming|2026-09-21 14:13:20.5+00|0.25|4096\n")
    assert (o.ok, o.streaming, o.reply, o.reply_age, o.lag_bytes, o.in_recovery) == (
        True, True, "2026-09-21 14:13:20.5+00", 0.25, 4096, False)
    o = sg.parse_observation("f||||")
    assert (o.streaming, o.state, o.reply, o.reply_age, o.lag_bytes) == (False, "", None, None, None)
    assert sg.parse_observation("t||||").in_recovery
    assert sg.parse_observation("f|streaming|x|-1.5|-20").lag_bytes == 0      # clock skew, an LSN ahead


def test_apply_writes_the_drop_in_and_reloads(cfg):
    psql = FakePsql(cfg)
    done = sg.apply(cfg, "sync", psql, "guard started:\nstandby streaming")
    text = open(cfg["conf_file"]).read()
    assert "synchronous_standby_names = '\"miyun_store\"'\n" in text
    assert "# mode sync: guard started: standby streaming" in text
    assert kinds(psql) == ["reload", "files"] and "pg_reload_conf()" in done
    assert "ALTER SYSTEM SET" not in " ".join(psql.sql)
    sg.apply(cfg, "degraded", psql)
    assert open(cfg["conf_file"]).read().endswith("synchronous_standby_names = ''\n")
    assert not [n for n in os.listdir(os.path.dirname(cfg["conf_file"])) if n.startswith(".tmp-")]


def test_apply_resets_an_alter_system_value_that_overrides_the_drop_in(cfg):
    psql = FakePsql(cfg, applied_from={"file": "/var/lib/postgresql/15/main/postgresql.auto.conf",
                                       "setting": '"miyun_store"'})
    done = sg.apply(cfg, "degraded", psql)
    assert kinds(psql) == ["reload", "files", "reset", "reload", "files"]
    assert "ALTER SYSTEM RESET synchronous_standby_names" in done


def test_apply_refuses_another_file_that_overrides_the_drop_in(cfg):
    psql = FakePsql(cfg, applied_from={"file": "/etc/postgresql/15/main/conf.d/99-local.conf", "setting": "*"})
    with pytest.raises(RuntimeError, match="99-local.conf sets synchronous_standby_names = '\\*'"):
        sg.apply(cfg, "degraded", psql)
    assert sg.RESET_SQL not in psql.sql


def test_reload_falls_back_to_sighup_of_the_postmaster(cfg, monkeypatch):
    with open(os.path.join(cfg["data_dir"], "postmaster.pid"), "w") as f:
        f.write("4242\n/var/lib/postgresql/15/main\n")
    sent = []
    monkeypatch.setattr(sg.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    done = sg.apply(cfg, "degraded", FakePsql(cfg, fail={"reload", "files"}))
    assert sent == [(4242, signal.SIGHUP)] and "SIGHUP to the postmaster (4242)" in done and "not checked" in done
    def gone(pid, sig):
        raise ProcessLookupError(3, "No such process")

    monkeypatch.setattr(sg.os, "kill", gone)
    with pytest.raises(RuntimeError, match=r"reload failed; SIGHUP to the postmaster \(4242\): .*No such process"):
        sg.reload(cfg, FakePsql(cfg, fail={"reload"}))
    # PostgreSQL stopped (no postmaster.pid): it reads the drop-in at its start, the switch is done
    os.unlink(os.path.join(cfg["data_dir"], "postmaster.pid"))
    assert "PostgreSQL not running" in sg.reload(cfg, FakePsql(cfg, fail={"reload"}))
    with pytest.raises(RuntimeError, match="reload failed"):
        sg.reload(dict(cfg, data_dir=None), FakePsql(cfg, fail={"reload"}))


def test_blocked_commits_are_released_by_naming_no_standby(cfg):
    """Sync, then the WAN is cut: the walsender still shows 'streaming' with its last reply. After
    degrade_after s the guard writes '' and reloads, which releases the commits waiting for the standby."""
    ok = "f|streaming|r%d|0.1|0"
    cut = "f|streaming|r1|%.1f|800"
    psql = FakePsql(cfg, [ok % 0, ok % 1] + [cut % a for a in range(1, 7)])
    st = sg.fresh_state()
    log = []
    for t in range(8):
        st, _changed = sg.step(cfg, st, psql, float(t), sg.policy_of(cfg))
        log.append((t, st["mode"], open(cfg["conf_file"]).read().splitlines()[-1]))
    assert log[0] == (0, "sync", "synchronous_standby_names = '\"miyun_store\"'")
    assert [m for _t, m, _l in log[:6]] == ["sync"] * 6                     # heard at t=1: not before t=6
    assert log[6] == (6, "degraded", "synchronous_standby_names = ''")
    assert kinds(psql).count("reload") == 2 and st["degraded_total"] == 1


def test_a_failed_switch_is_retried_and_keeps_the_mode(cfg, capsys):
    psql = FakePsql(cfg, ["f|streaming|r0|0.1|0"] * 4, applied_from={"file": "/etc/x.conf", "setting": "*"})
    st, changed = sg.step(cfg, sg.fresh_state(), psql, 0.0, sg.policy_of(cfg))
    assert changed and st.get("fresh") and st["mode"] is None and "x.conf" in st["error"]
    assert "retrying at every check" in capsys.readouterr().out
    st, changed = sg.step(cfg, st, psql, 0.5, sg.policy_of(cfg))        # the same failure: no new line
    assert not changed and st["mode"] is None and capsys.readouterr().out == ""
    psql.applied_from = None
    st, changed = sg.step(cfg, st, psql, 1.0, sg.policy_of(cfg))
    assert changed and st["mode"] == "sync" and st["error"] == ""


# ---------------------------------------------------------------- metrics, state, commands
def test_metrics_text(cfg):
    st = dict(sg.fresh_state(), mode="sync", degraded_total=3, last_change=1790000000.5)
    assert sg.metrics_text(cfg, st, 1790000100.25) == "\n".join([
        "# HELP archive_dr_replica_sync_mode 1 when commits wait for the standby (synchronous), 0 when asynchronous "
        "(degraded).",
        "# TYPE archive_dr_replica_sync_mode gauge",
        'archive_dr_replica_sync_mode{standby="miyun_store"} 1',
        "# HELP archive_dr_replica_sync_degraded_total Times the sync guard degraded synchronous replication to "
        "asynchronous.",
        "# TYPE archive_dr_replica_sync_degraded_total counter",
        'archive_dr_replica_sync_degraded_total{standby="miyun_store"} 3',
        "# HELP archive_dr_replica_sync_last_change_timestamp_seconds Unix time of the sync guard's last change of "
        "mode (0 = none).",
        "# TYPE archive_dr_replica_sync_last_change_timestamp_seconds gauge",
        'archive_dr_replica_sync_last_change_timestamp_seconds{standby="miyun_store"} 1790000000.500',
        "# HELP archive_dr_replica_sync_guard_last_check_timestamp_seconds Unix time of the sync guard's last check.",
        "# TYPE archive_dr_replica_sync_guard_last_check_timestamp_seconds gauge",
        'archive_dr_replica_sync_guard_last_check_timestamp_seconds{standby="miyun_store"} 1790000100.250',
        "# HELP archive_dr_replica_sync_guard_error 1 when the sync guard's last check or switch failed (PostgreSQL "
        "not answering, another file overriding synchronous_standby_names).",
        "# TYPE archive_dr_replica_sync_guard_error gauge",
        'archive_dr_replica_sync_guard_error{standby="miyun_store"} 0', ""])
    for mode in (None, "degraded"):
        assert 'archive_dr_replica_sync_mode{standby="miyun_store"} 0' in sg.metrics_text(
            cfg, dict(st, mode=mode, error="x"), 0)
    assert 'archive_dr_replica_sync_guard_error{standby="miyun_store"} 1' in sg.metrics_text(cfg, dict(st, error="x"), 0)


def test_run_logs_transitions_and_keeps_them_in_the_state_file(cfg, capsys):
    rows = ["f|streaming|r0|0.1|0", "f|streaming|r1|0.1|0"] + ["f||||"] * 6 + [
        "f|streaming|r%d|0.1|0" % i for i in range(2, 5)]
    clock = iter(float(t) for t in range(100))
    now = [0.0]

    def tick():
        now[0] = next(clock)
        return now[0]

    sg.cmd_run(cfg, FakePsql(cfg, rows), clock=lambda: now[0] if now[0] else tick(), sleep=lambda s: tick(), checks=11)
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if "->" in x]
    assert len(lines) == 3
    assert lines[0].startswith("sync-guard: start -> sync: guard started")
    assert lines[1].startswith("sync-guard: sync -> degraded: standby miyun_store not heard from for 5.0 s")
    assert lines[2].startswith("sync-guard: degraded -> sync:") and "caught up" in lines[2]
    state = json.load(open(cfg["state_file"]))
    assert state["mode"] == "sync" and state["degraded_total"] == 1
    assert [h["mode"] for h in state["history"]] == ["sync", "degraded", "sync"]
    assert "last_alive" not in state and state["standby"] == "miyun_store"
    assert 'archive_dr_replica_sync_degraded_total{standby="miyun_store"} 1' in open(cfg["metrics_file"]).read()
    # a new run keeps the counter and the history, and decides afresh
    sg.cmd_run(cfg, FakePsql(cfg, ["f||||"]), clock=lambda: 200.0, sleep=lambda s: None, checks=1)
    state = json.load(open(cfg["state_file"]))
    assert state["mode"] == "degraded" and state["degraded_total"] == 2 and len(state["history"]) == 4
    assert "start (was sync) -> degraded: guard started: standby miyun_store not connected" in capsys.readouterr().out


def test_release_names_no_standby(cfg, monkeypatch, capsys):
    sg.persist(cfg, dict(sg.fresh_state(), mode="sync", degraded_total=1), 10.0)
    monkeypatch.setenv("SERVICE_RESULT", "signal")
    monkeypatch.setenv("EXIT_STATUS", "KILL")
    psql = FakePsql(cfg)
    assert sg.cmd_release(cfg, psql, now=20.0) == 0
    assert open(cfg["conf_file"]).read().endswith("synchronous_standby_names = ''\n")
    state = json.load(open(cfg["state_file"]))
    assert (state["mode"], state["degraded_total"]) == ("degraded", 2)
    assert state["reason"] == "guard stopped (signal, exit KILL)"
    assert "sync -> degraded: guard stopped" in capsys.readouterr().out
    # PostgreSQL stopped: the drop-in is what it reads at its start
    assert sg.cmd_release(cfg, FakePsql(cfg, fail={"reload", "files"}), "maintenance", 30.0) == 0
    assert open(cfg["conf_file"]).read().endswith("synchronous_standby_names = ''\n")
    # not reloadable, not known to be stopped: written all the same, the exit says the reload failed
    assert sg.cmd_release(dict(cfg, data_dir=None), FakePsql(cfg, fail={"reload"}), "maintenance", 40.0) == 1


def test_status_reports_the_mode_and_what_postgresql_applies(cfg, capsys):
    sg.persist(cfg, dict(sg.fresh_state(), mode="sync", since=1790000000.0, reason="caught up"), 1790000001.0)
    assert sg.cmd_status(cfg, FakePsql(cfg)) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["mode"], out["since_iso"], out["reason"]) == ("sync", "2026-09-21T14:13:20Z", "caught up")
    assert out["effective"] == {"synchronous_standby_names": '"miyun_store"', "synchronous_commit": "on",
                                "sync_state": "sync"}
    sg.cmd_status(cfg, FakePsql(cfg, fail={"status"}))
    assert "status failed" in json.loads(capsys.readouterr().out)["effective"]["error"]


def test_status_without_a_state_file(cfg, capsys):
    sg.cmd_status(cfg, FakePsql(cfg))
    assert json.loads(capsys.readouterr().out)["mode"] == "unknown"


def test_an_unreadable_state_file_starts_afresh(cfg, capsys):
    with open(cfg["state_file"], "w") as f:
        f.write("{not json")
    assert sg.load_state(cfg) == {} and "unreadable" in capsys.readouterr().out


# ---------------------------------------------------------------- configuration errors
@pytest.mark.parametrize("change,message", [
    ({"standby": None}, "missing standby"),
    ({"state_file": ""}, "missing state_file"),
    ({"standby": "miyun-store"}, "application_name"),
    ({"standby": "x'; DROP TABLE y; --"}, "application_name"),
    ({"synchronous_commit": True}, "synchronous_commit must be one of on, remote_apply"),
    ({"synchronous_commit": "remote_write"}, "synchronous_commit must be one of"),
    ({"degrade_after": 0}, "degrade_after must be a number > 0"),
    ({"degrade_after": "5"}, "degrade_after must be a number"),
    ({"check_interval": True}, "check_interval must be a number"),
    ({"check_interval": 6}, r"check_interval \(6\) must not exceed degrade_after \(5\)"),
    ({"catchup_bytes": 1.5}, "catchup_bytes must be a whole number >= 0"),
    ({"catchup_bytes": -1}, "catchup_bytes must be a whole number >= 0"),
    ({"return_checks": 0}, "return_checks must be a whole number >= 1"),
    ({"port": 0}, "port must be a whole number >= 1"),
    ({"conf_file": "conf.d/90.conf"}, "conf_file must be an absolute path"),
    ({"conf_file": "/etc/postgresql/15/main/conf.d/90-sync"}, "conf_file must be a \\*.conf file"),
    ({"conf_file": "/etc/postgresql/15/main/conf.d/.90.conf"}, "conf_file must be a \\*.conf file"),
    ({"data_dir": "data"}, "data_dir must be an absolute path"),
])
def test_config_errors(cfg, change, message):
    raw = dict(cfg)
    raw.update(change)
    with pytest.raises(ValueError, match=message):
        sg.check_config(raw, "sync-guard.json")


def test_config_files(tmp_path, cfg, capsys):
    defaults = sg.check_config({k: cfg[k] for k in ("standby", "conf_file", "state_file", "metrics_file")})
    assert (defaults["synchronous_commit"], defaults["degrade_after"], defaults["check_interval"],
            defaults["catchup_bytes"], defaults["return_checks"], defaults["port"]) == ("on", 5.0, 1.0, 16777216, 2, 5432)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="bad.json: not JSON"):
        sg.load_config(str(bad))
    bad.write_text("[]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        sg.load_config(str(bad))
    assert sg.main(["--config", str(tmp_path / "missing.json"), "status"]) == 2
    assert "missing.json" in capsys.readouterr().err


# ---------------------------------------------------------------- the role
def test_the_role_installs_the_guard_only_when_synchronous_and_never_sets_the_setting_itself():
    role = ROOT / "roles" / "replica"
    text = (role / "tasks" / "source_primary.yml").read_text()
    assert "module_utils/sync_guard.py" in text and "replica_pg_synchronous | bool" in text
    assert "ALTER SYSTEM SET" not in text and "synchronous_standby_names =" not in text
    unit = (role / "templates" / "archive-dr-sync-guard.service.j2").read_text()
    for line in ("User=postgres", "Restart=always", "StartLimitIntervalSec=0", " run\n", " release\n"):
        assert line in unit, line
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    assert defaults["replica_pg_synchronous"] is False and defaults["replica_pg_synchronous_commit"] == "on"
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    new = {k for k in defaults if k.startswith(("replica_pg_synchronous", "replica_pg_sync_"))}
    for entry in ("main", "validate", "source_primary"):
        assert new <= set(specs[entry]["options"]), entry
    for inventory, value in (("production", False), ("lab", True)):
        data = yaml.safe_load((ROOT / "inventory" / inventory / "group_vars" / "all" / "replica.yml").read_text())
        assert data["replica_pg_synchronous"] is value, inventory
