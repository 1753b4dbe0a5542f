"""playbooks/validate.yml runs on the controller only: the lab inventory passes, a broken copy is
refused with one line per problem, and no host is contacted either way (an ssh that would record
any connection attempt is never called)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
LAB = [ROOT / "inventory" / "production", ROOT / "inventory" / "lab"]

pytestmark = pytest.mark.skipif(
    not (ROOT / ".lab" / "ssh" / "id_ed25519.pub").exists() or shutil.which("systemd-analyze") is None,
    reason="needs `archive-dr lab keys` (lab inventory lookups, vault) and systemd-analyze")


def run_validate(inventory: list[Path], tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    marker = tmp_path / "ssh-was-called"
    fake_ssh = tmp_path / "ssh"
    fake_ssh.write_text(f"#!/bin/sh\necho \"$@\" >> {marker}\nexit 255\n")
    fake_ssh.chmod(0o755)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), *(arg for source in inventory for arg in ("-i", str(source))),
         "playbooks/validate.yml",
         "-e", f"ansible_ssh_executable={fake_ssh}", *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    return proc, marker


def copy_lab(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the lab's two layers (production's model, the lab's delta) to break."""
    model, delta = tmp_path / "production", tmp_path / "lab"
    shutil.copytree(ROOT / "inventory" / "production", model)
    shutil.copytree(ROOT / "inventory" / "lab", delta)
    return model, delta


def test_lab_inventory_passes_without_contacting_a_host(tmp_path):
    proc, marker = run_validate(LAB, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not marker.exists()
    assert "unreachable=1" not in proc.stdout


def test_broken_inventory_copy_is_refused_in_one_line_each_before_any_host(tmp_path):
    model, delta = copy_lab(tmp_path)
    appliance = model / "group_vars" / "backup_appliances.yml"
    appliance.write_text(appliance.read_text().replace("retention: {full: 2, diff: 7}", "retention: {full: 0, diff: 7}"))
    tunnel = model / "group_vars" / "all" / "tunnel.yml"
    tunnel.write_text(tunnel.read_text().replace("port: 8080", "port: 80800"))
    store = model / "host_vars" / "miyun-store.yml"
    store.write_text(store.read_text().replace('mode: "0750"', "mode: 0750"))
    proc, marker = run_validate([model, delta], tmp_path, "-e", "site_gateway_wan_rate=0mbit")
    assert proc.returncode != 0
    assert not marker.exists()
    out = proc.stdout
    for line in (
        "4 problem(s) in the inventory:",
        "miyun-store: storage_pools[0].volumes[0].mode is a number (488), the role expects a string "
        "(quote it, e.g. \"0750\": unquoted 0750 is the number 488)",
        "group_vars/all: dr_flows[3] (depot) port 80800 is outside 1-65535",
        "geo-backup: backup_appliance_protected_systems[0] (archive-db) retention.full is 0; "
        "every retention count must be >= 1 (0 would keep nothing)",
        "group_vars/gateways: site_gateway_wan_rate '0mbit' is zero; use \"\" for no shaping",
    ):
        assert f"        {line}\n" in out, out
    assert out.count("FAILED!") == 1  # refused once, with every problem


def test_duplicate_yaml_key_is_an_error(tmp_path):
    model, delta = copy_lab(tmp_path)
    with open(delta / "host_vars" / "geo-archive.yml", "a") as f:
        f.write("lan_address: 198.18.1.99\n")
    proc, marker = run_validate([model, delta], tmp_path)
    assert proc.returncode != 0
    assert not marker.exists()
    assert "lan_address" in proc.stdout + proc.stderr
