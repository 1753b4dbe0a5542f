"""pyinfra inventory for the bootstrap, built from the Ansible inventory.

    ARCHIVE_DR_BOOTSTRAP_HOSTS=miyun-store .venv/bin/pyinfra -y bootstrap/inventory.py bootstrap/deploy.py

Environment:
  ARCHIVE_DR_BOOTSTRAP_HOSTS      comma-separated inventory host names (required)
  ARCHIVE_DR_INVENTORY            inventory sources in order, os.pathsep-separated (default: the lab inventory,
                                  inventory/production then inventory/lab)
  ARCHIVE_DR_BOOTSTRAP_EXTRA      JSON object of variable overrides (like ansible -e)
"""
import json
import os
import subprocess
import sys

from archive_dr.paths import ROOT

_names = [n for n in os.environ.get("ARCHIVE_DR_BOOTSTRAP_HOSTS", "").split(",") if n]
if not _names:
    raise SystemExit("bootstrap: set ARCHIVE_DR_BOOTSTRAP_HOSTS to the inventory host(s) to bootstrap")
_extra = os.environ.get("ARCHIVE_DR_BOOTSTRAP_EXTRA", "{}")


def _load() -> dict:
    # Ansible runs in its own process: pyinfra's gevent and Ansible's loaders do not mix. The inventory
    # sources reach it through ARCHIVE_DR_INVENTORY, which it inherits.
    proc = subprocess.run([sys.executable, str(ROOT / "bootstrap" / "inventory_vars.py"), "--full",
                           "--extra", _extra, *_names], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr.strip() or "bootstrap: reading the inventory failed")
    return json.loads(proc.stdout)


def _target(name: str, values: dict) -> tuple[str, dict]:
    data = {
        "ssh_hostname": values.get("ansible_host", name),
        "ssh_user": values.get("ansible_user", "root"),
        "ssh_port": int(values.get("ansible_port") or 22),
        # A rebuilt host has new host keys: accept them (the controller trusts the
        # inventory's address, as Ansible does with host_key_checking = false).
        "ssh_strict_host_key_checking": "no",
        "ssh_known_hosts_file": "/dev/null",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
        "archive_dr": values,
    }
    if values.get("ansible_ssh_private_key_file"):
        data["ssh_key"] = values["ansible_ssh_private_key_file"]
    return name, data


targets = [_target(name, values) for name, values in _load().items()]
