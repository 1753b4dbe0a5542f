"""The bootstrap's inputs, read from the Ansible inventory (the one source of truth).

Variables are resolved exactly as a play would see them, through archive_dr.inventory (Ansible's
own inventory manager, variable manager and templating, vault included), with the defaults of the
roles that own them (baseline, apt_source) as the lowest layer.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from archive_dr import paths
from archive_dr.errors import InventoryError
from archive_dr.inventory import Inventory, role_defaults

# Variable -> the role whose defaults apply when the inventory does not set it.
BOOTSTRAP_VARS = {
    "ansible_host": None,
    "ansible_user": None,
    "ansible_port": None,
    "ansible_ssh_private_key_file": None,
    "baseline_hostname": "baseline",
    "baseline_admin_user": "baseline",
    "baseline_admin_ssh_keys": "baseline",
    "apt_source_uri": "apt_source",
    "apt_source_suites": "apt_source",
    "apt_source_components": "apt_source",
    "apt_source_key": "apt_source",
    "apt_source_keyring": "apt_source",
    "apt_source_local_archive": "apt_source",
    "apt_source_local_dir": "apt_source",
    "apt_source_check_timeout": "apt_source",
    "apt_source_bootstrap_packages": "apt_source",
    "site_name": None,
    "group_names": None,
    "inventory_hostname": None,
}


def load(inventory: list[Path], names: list[str], extra: dict | None = None) -> dict[str, dict]:
    """{host: {var: value}} for the bootstrap, fully templated; ``inventory`` is the ordered sources."""
    inv = Inventory(paths.sources(inventory, []))
    defaults = role_defaults(*sorted({role for role in BOOTSTRAP_VARS.values() if role}))
    return {name: inv.host_vars(name, BOOTSTRAP_VARS, extra=extra, defaults=defaults) for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="print the bootstrap's inputs for hosts, as JSON")
    parser.add_argument("hosts", nargs="+")
    parser.add_argument("--inventory", action="append",
                        help="an inventory source, repeatable in order (default: $ARCHIVE_DR_INVENTORY, "
                             f"'{os.pathsep}'-separated, else the lab inventory)")
    parser.add_argument("--extra", default="{}", help="JSON object of overrides (like ansible -e)")
    parser.add_argument("--full", action="store_true", help="print key material too (for bootstrap/inventory.py)")
    args = parser.parse_args(argv)
    inventory = paths.sources(args.inventory, paths.sources(os.environ.get("ARCHIVE_DR_INVENTORY"),
                                                            paths.LAB_INVENTORY))
    try:
        data = load(inventory, args.hosts, json.loads(args.extra))
    except InventoryError as exc:
        print(f"bootstrap: {exc}", file=sys.stderr)
        return 2
    for values in data.values():
        if values.get("apt_source_key") and not args.full:
            values["apt_source_key"] = f"<{len(values['apt_source_key'])} bytes>"
    print(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
