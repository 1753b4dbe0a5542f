"""The one way archive-dr reads the inventory: Ansible's own InventoryManager and VariableManager.

An inventory is an ordered list of sources (``archive_dr.paths``): later sources' group_vars and
host_vars override earlier ones, exactly as ``ansible-playbook -i A -i B`` sees them. Values are
templated as a play would see them, and only the variables asked for are templated.

``vault=True`` decrypts with the password that ansible.cfg names (vault_password_file, which is
scripts/vault-pass). ``vault=False`` is for readers that must work before any secret exists
(``archive-dr lab up``): encrypted files read as empty, so vault variables are undefined, which
matters only to a variable asked for that uses one. It runs no process.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

from archive_dr import paths
from archive_dr.errors import InventoryError

_PLUGINS_READY = False


def _ansible():
    """Ansible configured from this project's ansible.cfg (it must be set before ansible.constants loads)."""
    global _PLUGINS_READY
    os.environ.setdefault("ANSIBLE_CONFIG", str(paths.ANSIBLE_CFG))
    if not _PLUGINS_READY:
        from ansible.plugins.loader import init_plugin_loader

        init_plugin_loader()
        _PLUGINS_READY = True


def vault_password() -> str:
    """The vault password from ansible.cfg's vault_password_file (an executable is run, as Ansible runs it)."""
    _ansible()
    from ansible import constants as C
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import get_file_vault_secret

    filename = C.DEFAULT_VAULT_PASSWORD_FILE
    if not filename:
        raise InventoryError(f"{paths.ANSIBLE_CFG}: vault_password_file is not set")
    secret = get_file_vault_secret(filename=filename, loader=DataLoader())
    secret.load()
    return secret.bytes.decode()


def trusted(value):
    """Values read with PyYAML (role defaults) as templates, as Ansible trusts its own role files."""
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, list):
        return [trusted(item) for item in value]
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    return value


def role_defaults(*roles: str) -> dict:
    """roles/<role>/defaults/main.yml of the named roles merged, trusted as templates."""
    import yaml

    merged: dict = {}
    for role in roles:
        path = paths.ROOT / "roles" / role / "defaults" / "main.yml"
        if path.exists():
            merged.update(yaml.safe_load(path.read_text()) or {})
    _ansible()
    return trusted(merged)


def plain(value):
    """Ansible's lazy containers and tagged strings as plain JSON-able values."""
    return json.loads(json.dumps(value, default=str))


def _loader(vault: bool):
    _ansible()
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecret, is_encrypted

    if vault:
        loader = DataLoader()
        loader.set_vault_secrets([("default", VaultSecret(vault_password().encode()))])
        return loader

    class WithoutVault(DataLoader):
        def _decrypt_if_vault_data(self, b_data: bytes) -> tuple[bytes, bool]:
            if is_encrypted(b_data):
                return b"{}\n", False
            return b_data, True

    return WithoutVault()


class Inventory:
    """Hosts, groups and templated variables of one inventory (an ordered list of sources)."""

    def __init__(self, sources: Iterable[Path | str], vault: bool = True):
        self.sources = [Path(source) for source in sources]
        if not self.sources:
            raise InventoryError("no inventory sources given")
        missing = [str(source) for source in self.sources if not source.exists()]
        if missing:
            raise InventoryError(f"inventory source not found: {', '.join(missing)}")
        self.loader = _loader(vault)
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.vars.hostvars import HostVars
        from ansible.vars.manager import VariableManager

        try:
            self.manager = InventoryManager(loader=self.loader, sources=[str(source) for source in self.sources])
        except AnsibleError as exc:
            raise InventoryError(f"inventory {self.describe()}: {exc.message}") from None
        self.variables = VariableManager(loader=self.loader, inventory=self.manager)
        HostVars(inventory=self.manager, variable_manager=self.variables, loader=self.loader)  # `hostvars` resolves

    def describe(self) -> str:
        return " + ".join(str(source) for source in self.sources)

    def hosts(self, pattern: str = "all") -> list[str]:
        return [host.name for host in self.manager.get_hosts(pattern)]

    def groups(self) -> dict[str, list[str]]:
        """{group: its hosts, including those of its child groups}, without 'all' and 'ungrouped'."""
        return {name: [host.name for host in group.get_hosts()]
                for name, group in self.manager.groups.items() if name not in ("all", "ungrouped")}

    def _host(self, name: str):
        host = self.manager.get_host(name)
        if host is None:
            raise InventoryError(f"host '{name}' is not in the inventory {self.describe()}")
        return host

    def raw_host_vars(self, name: str) -> dict:
        """Every variable of the host, untemplated (Ansible's precedence, all sources)."""
        return self.variables.get_vars(host=self._host(name))

    def host_vars(self, name: str, names: Iterable[str], extra: dict | None = None,
                  defaults: dict | None = None) -> dict:
        """{var: templated value} of the named variables the host has; ``defaults`` is the lowest layer
        (role defaults), ``extra`` the highest (like -e). A variable the host does not have is left out."""
        context = {**(defaults or {}), **self.raw_host_vars(name), **(extra or {})}
        return self._template(context, names, f"host '{name}'")

    def group_vars(self, group: str, names: Iterable[str]) -> dict:
        """{var: templated value} of a group's variables (group_vars of every source; 'all' for the globals)."""
        from ansible.vars.plugins import get_vars_from_inventory_sources

        entity = self.manager.groups.get(group)
        if entity is None:
            raise InventoryError(f"group '{group}' is not in the inventory {self.describe()}")
        context = {**entity.get_vars(),
                   **get_vars_from_inventory_sources(self.loader, self.manager._sources, [entity], "task")}
        return self._template(context, names, f"group '{group}'")

    def _template(self, context: dict, names: Iterable[str], what: str) -> dict:
        from ansible.errors import AnsibleError
        from ansible.template import Templar

        templar = Templar(loader=self.loader, variables=context)
        values = {}
        for var in names:
            if var not in context:
                continue
            try:
                values[var] = plain(templar.template(context[var]))
            except AnsibleError as exc:
                raise InventoryError(f"{what}: variable {var} of the inventory {self.describe()} does not "
                                     f"resolve: {exc.message}") from None
        return values


def host_vars(sources: Iterable[Path | str], host: str, names: Iterable[str], vault: bool = True) -> dict:
    """One host's templated variables (see Inventory.host_vars)."""
    return Inventory(sources, vault=vault).host_vars(host, names)
