"""Both inventories have the same groups; production refuses placeholders before touching a host."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
GROUPS = {"site_geo", "site_miyun", "archive_hosts", "backup_appliances", "storage_servers", "gateways"}


def inventory_groups(name: str) -> dict:
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", f"inventory/{name}", "--list"], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, check=True)
    data = json.loads(proc.stdout)
    return {group: sorted(data[group].get("hosts", [])) for group in GROUPS}


def test_production_has_the_lab_groups():
    assert inventory_groups("production") == inventory_groups("lab")


def test_production_placeholders_fail_validation_with_a_clear_message():
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventory/production", "playbooks/validate.yml"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "geo-archive: set these inventory values (still CHANGE_ME): ansible_host, lan_interface, lan_address" in proc.stdout
    assert "unreachable=1" not in proc.stdout  # nothing was contacted
