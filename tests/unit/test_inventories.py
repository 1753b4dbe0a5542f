"""inventory/production is complete: with the shipped placeholders validation names every value
still to set (and contacts no host); with the example values (inventory/example) it passes. The
lab has production's hosts and groups and only adds values (tests/unit/test_inventory_model.py)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)
BIN = Path(sys.executable).parent
PRODUCTION = ROOT / "inventory" / "production"
EXAMPLE = ROOT / "inventory" / "example"
# Every value an engineer must set (written CHANGE_ME in inventory/production), by host.
SERVER_VALUES = ["ansible_host", "lan_interface", "lan_address"]
SITE_VALUES = ["baseline_admin_ssh_keys", "baseline_controller_addresses", "baseline_ntp_servers",
               "depot_geo_apt_uri", "depot_upstream_sources", "monitoring_alert_mail_to", "monitoring_mail_relayhost",
               "os_install_hosts", "sites"]
TO_SET = {
    "geo-archive": SERVER_VALUES + SITE_VALUES,
    "geo-backup": SERVER_VALUES + SITE_VALUES + ["backup_pool_disks", "restore_pool_disks"],
    "geo-fw": SERVER_VALUES + SITE_VALUES + ["wan_address", "wan_interface"],
    "miyun-store": SERVER_VALUES + SITE_VALUES + ["dr_pool_disks"],
    "miyun-fw": SERVER_VALUES + SITE_VALUES + ["wan_address", "wan_interface"],
}


def run_validate(tmp_path: Path, *sources: Path):
    """playbooks/validate.yml through ansible-runner; returns (runner, failure messages)."""
    import ansible_runner

    runner = ansible_runner.run(
        private_data_dir=str(tmp_path), project_dir=str(ROOT), playbook=str(ROOT / "playbooks" / "validate.yml"),
        inventory=[str(s) for s in sources], quiet=True,
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"})
    failures = [e["event_data"]["res"].get("msg", "") for e in runner.events if e.get("event") == "runner_on_failed"]
    unreachable = [e for e in runner.events if e.get("event") == "runner_on_unreachable"]
    assert not unreachable, "validation contacted a host"
    return runner, failures


def test_the_lab_has_no_hosts_of_its_own():
    lab_hosts = yaml.safe_load((ROOT / "inventory" / "lab" / "hosts.yml").read_text())
    assert lab_hosts == {"all": {}}, "the lab's hosts and groups are production's (inventory/production/hosts.yml)"


def test_production_placeholders_name_every_value_still_to_set(tmp_path):
    runner, failures = run_validate(tmp_path, PRODUCTION)
    assert runner.rc != 0 and len(failures) == 1, failures
    lines = failures[0].splitlines()
    assert lines[0] == "Placeholders left in the inventory:"
    assert sorted(lines[1:]) == sorted(f"{host}: set these inventory values (still CHANGE_ME): {', '.join(sorted(names))}"
                                       for host, names in TO_SET.items())


def test_production_with_the_example_values_passes_validation(tmp_path):
    runner, failures = run_validate(tmp_path, PRODUCTION, EXAMPLE)
    assert runner.rc == 0 and not failures, failures
    assert {h for h, n in runner.stats["ok"].items() if n} == set(TO_SET)
