"""Production is the model, the lab only its delta.

The lab inventory is inventory/production with inventory/lab layered over it
(`-i inventory/production -i inventory/lab`, ansible.cfg). These tests hold that layering
to its promise, on the variables Ansible itself computes for every host:
- the lab differs from production exactly in the variables inventory/lab declares, and each
  declared value is the one the lab's hosts get (no production host_vars shadows a lab
  group_vars value);
- the lab restates nothing production already says, and adds no concept production lacks
  (a lab variable is production's, a role default's, a lab_* setting of `archive-dr lab` or
  a connection setting);
- role defaults name no inventory host (the inventory says who is who).
"""
from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import yaml

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)
PRODUCTION = ROOT / "inventory" / "production"
LAB = ROOT / "inventory" / "lab"
# Generated per environment by `archive-dr secrets`: secrets are never part of the model.
SECRETS_FILE = "vault.yml"
CONNECTION_VARS = {"ansible_user", "ansible_ssh_private_key_file"}


def _vault_loader():
    from ansible.parsing.dataloader import DataLoader
    from ansible.parsing.vault import VaultSecret

    loader = DataLoader()
    password = subprocess.run([str(ROOT / "scripts" / "vault-pass")], capture_output=True, check=True).stdout.strip()
    loader.set_vault_secrets([("default", VaultSecret(password))])
    return loader


@lru_cache(maxsize=None)
def host_vars(*sources: Path) -> dict[str, dict]:
    """Every host's inventory variables (untemplated), as Ansible merges the sources."""
    from ansible.inventory.manager import InventoryManager
    from ansible.vars.manager import VariableManager

    loader = _vault_loader()
    inventory = InventoryManager(loader=loader, sources=[str(s) for s in sources])
    variables = VariableManager(loader=loader, inventory=inventory)
    return {host.name: {k: _plain(v) for k, v in variables.get_vars(host=host, include_hostvars=False).items()}
            for host in inventory.get_hosts()}


@lru_cache(maxsize=None)
def host_groups(*sources: Path) -> dict[str, set[str]]:
    from ansible.inventory.manager import InventoryManager

    inventory = InventoryManager(loader=_vault_loader(), sources=[str(s) for s in sources])
    return {host.name: {g.name for g in host.get_groups()} for host in inventory.get_hosts()}


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def declared_delta(lab: Path = LAB) -> dict[tuple[str, str], dict]:
    """{(kind, name): variables} of inventory/lab: kind group or host, name the group or host."""
    delta = {}
    for kind, folder in (("group", "group_vars"), ("host", "host_vars")):
        for path in sorted((lab / folder).rglob("*.yml")):
            if path.name == SECRETS_FILE:
                continue
            scope = path.relative_to(lab / folder).parts[0].removesuffix(".yml")
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            delta.setdefault((kind, scope), {}).update(data)
    return delta


def delta_for(host: str, groups: set[str], lab: Path = LAB) -> dict:
    """The lab values that apply to a host, with Ansible's precedence (host over group over all)."""
    values = {}
    delta = declared_delta(lab)
    values.update(delta.get(("group", "all"), {}))
    for group in sorted(groups - {"all"}):
        values.update(delta.get(("group", group), {}))
    values.update(delta.get(("host", host), {}))
    return values


def secret_names(lab: Path = LAB) -> set[str]:
    path = lab / "group_vars" / "all" / SECRETS_FILE
    return set(_vault_loader().load_from_file(str(path)) or {}) if path.exists() else set()


def role_default_names() -> set[str]:
    names = set()
    for defaults in ROOT.glob("roles/*/defaults/main.yml"):
        names.update(yaml.safe_load(defaults.read_text(encoding="utf-8")) or {})
    return names


def delta_problems(model: Path, delta: Path) -> list[str]:
    production, lab = host_vars(model), host_vars(model, delta)
    groups = host_groups(model, delta)
    assert production.keys() == lab.keys()
    secrets = secret_names(delta)
    problems = []
    for host in sorted(lab):
        declared = delta_for(host, groups[host], delta)
        missing = object()
        differing = {k for k in production[host].keys() | lab[host].keys()
                     if production[host].get(k, missing) != lab[host].get(k, missing)}
        undeclared = differing - declared.keys() - secrets
        problems += [f"{host}: {name} differs from production but inventory/lab does not declare it"
                     for name in sorted(undeclared)]
        problems += [f"{host}: {name} is declared in inventory/lab but the host gets another value "
                     f"(a production host_vars or group value shadows it)"
                     for name, value in sorted(declared.items()) if lab[host].get(name, missing) != value]
    return problems


def test_lab_differs_from_production_exactly_in_its_declared_delta():
    problems = delta_problems(PRODUCTION, LAB)
    assert not problems, "\n".join(problems)


def test_lab_restates_nothing_production_says():
    production = host_vars(PRODUCTION)
    groups = host_groups(PRODUCTION, LAB)
    restated = []
    for (kind, scope), values in declared_delta().items():
        hosts = [h for h in production if (h == scope if kind == "host" else scope in groups[h])]
        restated += [f"inventory/lab {kind} {scope}: {name} restates production's value"
                     for name, value in values.items()
                     if hosts and all(production[h].get(name, object()) == value for h in hosts)]
    assert not restated, "\n".join(restated)


def test_lab_adds_no_concept_production_lacks():
    production = host_vars(PRODUCTION)
    known = role_default_names() | CONNECTION_VARS | {k for values in production.values() for k in values}
    lab_only = sorted(f"inventory/lab {kind} {scope}: {name}"
                      for (kind, scope), values in declared_delta().items() for name in values
                      if name not in known and not name.startswith("lab_"))
    assert not lab_only, "the lab sets variables that neither production nor a role knows:\n" + "\n".join(lab_only)


def test_role_defaults_name_no_inventory_host():
    hosts = set(host_vars(PRODUCTION))
    named = []
    for defaults in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        for number, line in enumerate(defaults.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            named += [f"{defaults.relative_to(ROOT)}:{number}: {host}" for host in sorted(hosts) if host in code]
    assert not named, "role defaults name inventory hosts (the inventory says who is who):\n" + "\n".join(named)


def test_the_comparison_catches_a_shadowed_lab_value(tmp_path):
    """Not true by construction: a lab value that a production host_vars file shadows is reported."""
    import shutil

    model, delta = tmp_path / "production", tmp_path / "lab"
    shutil.copytree(PRODUCTION, model)
    shutil.copytree(LAB, delta)
    with open(model / "host_vars" / "geo-fw.yml", "a", encoding="utf-8") as f:
        f.write("site_gateway_wan_rate: 1gbit\n")              # host_vars beat the lab's group value
    problems = "\n".join(delta_problems(model, delta))
    assert "geo-fw: site_gateway_wan_rate is declared in inventory/lab but the host gets another value" in problems
    assert delta_problems(PRODUCTION, LAB) == []
