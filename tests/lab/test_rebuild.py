"""archive-dr rebuild against the running lab (issue 7).

The refusal tests only read the hosts. The destructive ones (lab destroy + rebuild)
always run: depot unreachable, miyun-store with its disks kept and with blank disks (a
full resync), miyun-fw; each rebuilt twice, the second run changes nothing.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from archive_dr import paths
from archive_dr.paths import ROOT

CLI = [sys.executable, "-m", "archive_dr"]
ENV = dict(os.environ, CONTAINERS_CONF=str(paths.CONTAINERS_CONF))


def archive_dr(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def rebuild(host: str, *extra: str, report_dir: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    started = time.monotonic()
    proc = archive_dr("rebuild", host, "--report-dir", str(report_dir), *extra)
    reports = sorted(report_dir.glob(f"rebuild-{host}-*.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(reports[-1].read_text()) if reports else None
    if report is not None:
        report["wall_seconds"] = round(time.monotonic() - started, 1)
    return proc, report


def test_refuses_a_host_outside_the_dr_site(tmp_path):
    proc = archive_dr("rebuild", "geo-archive", "--report-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "refused: geo-archive is not a DR-site host" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_refuses_an_unknown_host(tmp_path):
    proc = archive_dr("rebuild", "miyun-nas", "--report-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "host 'miyun-nas' is not in the inventory" in proc.stderr


def test_refuses_a_serving_host_without_force(tmp_path, podman_exec):
    # positive control: the converged lab's miyun-store serves (standby, replica timers)
    serving = podman_exec("miyun-store", "systemctl is-active 'postgresql@*' 'archive-dr-replica-*' | grep -c ^active")
    assert serving.stdout.strip() not in ("", "0"), "miyun-store is not serving: " + serving.stdout + serving.stderr
    proc = archive_dr("rebuild", "miyun-store", "--report-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "refused: miyun-store is alive and serving" in proc.stderr and "--force" in proc.stderr


# ------------------------------------------------------------- destructive

def nft_ruleset(podman_exec, host: str) -> str:
    out = podman_exec(host, "nft list ruleset").stdout
    # counters (inline and named counter objects) change with traffic; the policy is the rest.
    return re.sub(r"packets \d+ bytes \d+", "packets - bytes -", out)


@pytest.mark.slow
def test_rebuild_with_depot_unreachable_stops_early(tmp_path, podman_exec):
    assert archive_dr("lab", "destroy", "miyun-store", "--keep-disks").returncode == 0
    before = podman_exec("miyun-store", "sha256sum /etc/apt/sources.list; ls /home").stdout
    podman_exec("geo-backup", "systemctl stop archive-dr-depot.service")
    try:
        proc, report = rebuild("miyun-store", report_dir=tmp_path)
    finally:
        podman_exec("geo-backup", "systemctl start archive-dr-depot.service")
    assert proc.returncode == 3
    assert "package source unreachable" in proc.stderr
    assert report["result"] == "stopped: depot unreachable"
    assert podman_exec("miyun-store", "sha256sum /etc/apt/sources.list; ls /home").stdout == before
    assert podman_exec("miyun-store", "command -v python3").returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize("keep_disks, case", [(True, "disks-survived"), (False, "blank")])
def test_rebuild_store(tmp_path, podman_exec, keep_disks, case):
    args = ["lab", "destroy", "miyun-store"] + (["--keep-disks"] if keep_disks else [])
    assert archive_dr(*args).returncode == 0
    proc, report = rebuild("miyun-store", report_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report["case"] == case and report["result"] == "verified"
    print(json.dumps({k: report.get(k) for k in ("case", "total_seconds", "wan", "phases")}, indent=1))
    # no internet from the rebuilt host (lab: site miyun has no default route)
    assert podman_exec("miyun-store", "ip route show default").stdout.strip() == ""
    standby = podman_exec("miyun-store", "su postgres -c \"psql -Atc 'select status from pg_stat_wal_receiver'\"")
    assert standby.stdout.strip() == "streaming"
    again, second = rebuild("miyun-store", "--force", report_dir=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert second["changed_total"] == 0, second["recap"]


@pytest.mark.slow
def test_rebuild_gateway_same_policy_and_tunnel(tmp_path, podman_exec):
    before = nft_ruleset(podman_exec, "miyun-fw")
    assert archive_dr("lab", "destroy", "miyun-fw").returncode == 0
    proc, report = rebuild("miyun-fw", report_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert report["case"] == "no-data-disks" and report["result"] == "verified"
    assert nft_ruleset(podman_exec, "miyun-fw") == before
    sas = podman_exec("miyun-fw", "swanctl --list-sas")
    assert "ESTABLISHED" in sas.stdout
    probe = podman_exec("miyun-store", "timeout 5 bash -c 'exec 3<>/dev/tcp/198.18.1.11/5432' && echo open")
    assert probe.stdout.strip() == "open"
    again, second = rebuild("miyun-fw", "--force", report_dir=tmp_path)
    assert again.returncode == 0 and second["changed_total"] == 0, second["recap"]
