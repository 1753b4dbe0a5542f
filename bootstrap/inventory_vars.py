"""The bootstrap's inputs, read from the Ansible inventory (the one source of truth).

Variables are resolved exactly as a play would see them: Ansible's own inventory
manager, variable manager and templating (vault included), with the defaults of
the roles that own them (baseline, apt_source) as the lowest layer.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

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


class InventoryError(Exception):
    pass


def _trusted(value):
    """Role defaults read with PyYAML are templates, as Ansible trusts its own role files."""
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    if isinstance(value, dict):
        return {key: _trusted(item) for key, item in value.items()}
    return value


def role_defaults(role: str) -> dict:
    path = ROOT / "roles" / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def load(inventory: Path, names: list[str], extra: dict | None = None) -> dict[str, dict]:
    """{host: {var: value}} for the bootstrap, fully templated."""
    os.environ.setdefault("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecret
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    init_plugin_loader()
    sys.path.insert(0, str(ROOT))
    from archive_dr.secrets import vault_password

    loader = DataLoader()
    loader.set_vault_secrets([("default", VaultSecret(vault_password().encode()))])
    manager = InventoryManager(loader=loader, sources=[str(inventory)])
    variables = VariableManager(loader=loader, inventory=manager)
    HostVars(inventory=manager, variable_manager=variables, loader=loader)  # makes `hostvars` resolvable
    defaults: dict = {}
    for role in sorted({r for r in BOOTSTRAP_VARS.values() if r}):
        defaults.update(_trusted(role_defaults(role)))
    result = {}
    for name in names:
        host = manager.get_host(name)
        if host is None:
            raise InventoryError(f"host '{name}' is not in the inventory {inventory}")
        context = {**defaults, **variables.get_vars(host=host), **(extra or {})}
        templar = Templar(loader=loader, variables=context)
        values = {}
        for var in BOOTSTRAP_VARS:
            if var in context:
                values[var] = _plain(templar.template(context[var]))
        result[name] = values
    return result


def _plain(value):
    """Ansible's lazy containers and tagged strings as plain JSON-able values."""
    return json.loads(json.dumps(value, default=str))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="print the bootstrap's inputs for hosts, as JSON")
    parser.add_argument("hosts", nargs="+")
    parser.add_argument("--inventory", default=str(ROOT / "inventory" / "lab"))
    parser.add_argument("--extra", default="{}", help="JSON object of overrides (like ansible -e)")
    parser.add_argument("--full", action="store_true", help="print key material too (for bootstrap/inventory.py)")
    args = parser.parse_args(argv)
    try:
        data = load(Path(args.inventory), args.hosts, json.loads(args.extra))
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
