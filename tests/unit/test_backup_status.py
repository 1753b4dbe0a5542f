"""Status, metrics and dead-man logic of module_utils/backup_status.py (also run as a CLI)."""
import json
import os
import subprocess
import sys

from archive_dr.fixity import load

bs = load("backup_status")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "module_utils", "backup_status.py")


def test_record_success_then_failure_keeps_last_success():
    st = bs.record({}, "db-full", 100.0, 160.0, 0, 1234)
    assert st["outcome"] == "success" and st["last_success"] == 160.0 and st["size_bytes"] == 1234
    st2 = bs.record(st, "db-full", 200.0, 205.0, 3, 0)
    assert st2["outcome"] == "failure" and st2["last_success"] == 160.0 and st2["size_bytes"] == 1234
    assert st2["consecutive_failures"] == 1 and st2["last_rc"] == 3
    assert bs.record(st2, "db-full", 300.0, 301.0, 0, 5)["consecutive_failures"] == 0


def test_metrics_text_is_prometheus_exposition():
    st = bs.record({}, 'we"ird', 0.0, 10.0, 0, 42)
    text = bs.metrics_text(st, max_age=5, now=100.0)
    assert 'archive_dr_backup_size_bytes{job="we\\"ird"} 42' in text
    assert 'archive_dr_backup_stale{job="we\\"ird"} 1' in text
    assert 'archive_dr_backup_last_outcome_success{job="we\\"ird"} 1' in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.split()) == 2


def test_a_stopped_timer_is_a_gauge_of_its_own():
    st = bs.record({}, "db-full", 0.0, 10.0, 0, 1)
    assert 'archive_dr_backup_timer_active{job="db-full"} 0' in bs.metrics_text(st, 5, 11.0, timer_active=False)
    assert 'archive_dr_backup_timer_active{job="db-full"} 1' in bs.metrics_text(st, 5, 11.0, timer_active=True)
    assert "timer_active" not in bs.metrics_text(st, 5, 11.0)      # systemctl could not tell


def test_timer_active_asks_systemd(monkeypatch):
    seen = []

    def fake_run(argv, **kw):
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 3, stdout="inactive\n", stderr="")
    monkeypatch.setattr(bs.subprocess, "run", fake_run)
    assert bs.timer_active("archive-dr-backup-db-full.timer") is False
    assert seen == [["systemctl", "is-active", "archive-dr-backup-db-full.timer"]]


def test_is_stale():
    assert bs.is_stale({}, 10, now=0)
    assert not bs.is_stale({"last_success": 95}, 10, now=100)
    assert bs.is_stale({"last_success": 80}, 10, now=100)


def _cfg(tmp_path, jobs):
    cfg = {"status_dir": str(tmp_path / "status"), "textfile_dir": str(tmp_path / "prom"), "jobs": jobs}
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_cli_run_records_and_deadman_goes_red_then_green(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_bytes(b"x" * 1000)
    cfg = _cfg(tmp_path, {"a": {"max_age": 3600, "size_path": str(data)}, "b": {"max_age": 3600}})
    run = lambda *a: subprocess.run([sys.executable, SCRIPT, "--config", cfg] + list(a), capture_output=True, text=True)
    # never ran -> dead-man red
    r = run("deadman")
    assert r.returncode == 1 and "STALE" in r.stdout
    assert run("run", "a", "--", "true").returncode == 0
    st = json.loads((tmp_path / "status" / "a.json").read_text())
    assert st["outcome"] == "success" and st["size_bytes"] == 1000
    assert (tmp_path / "prom" / "archive_dr_backup_a.prom").exists()
    assert run("deadman").returncode == 1            # b still never succeeded
    assert run("run", "b", "--", "false").returncode == 1
    assert json.loads((tmp_path / "status" / "b.json").read_text())["outcome"] == "failure"
    assert run("deadman").returncode == 1
    assert run("run", "b", "--", "true").returncode == 0
    r = run("deadman")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "stale{job=\"b\"} 0" in (tmp_path / "prom" / "archive_dr_backup_b.prom").read_text()


def test_cli_rejects_bad_job_name(tmp_path):
    cfg = _cfg(tmp_path, {})
    r = subprocess.run([sys.executable, SCRIPT, "--config", cfg, "run", "../x", "--", "true"], capture_output=True, text=True)
    assert r.returncode == 2 and "bad job name" in r.stderr
