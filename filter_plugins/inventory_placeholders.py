"""Filter for playbooks/validate.yml: which inventory variables an engineer still has to set.

A placeholder is the literal ``CHANGE_ME`` in a group_vars/host_vars file of an inventory
source. This filter only finds the candidate names (the variables written with a placeholder
somewhere); whether one is still unset for a host is decided by Ansible's own precedence in
the play (the templated value still contains the placeholder), so a layer over production
(the lab, a site's values) that sets the variable clears it.
"""
from __future__ import annotations

from pathlib import Path

import yaml

PLACEHOLDER = "CHANGE_ME"


def _holds_placeholder(value) -> bool:
    if isinstance(value, str):
        return PLACEHOLDER in value
    if isinstance(value, dict):
        return any(_holds_placeholder(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_placeholder(v) for v in value)
    return False


def _vars_files(source: Path):
    for folder in ("group_vars", "host_vars"):
        base = source / folder
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def placeholder_names(sources) -> list[str]:
    """Names of the variables written with a CHANGE_ME in the sources' group_vars/host_vars."""
    names = set()
    for source in sources or []:
        path = Path(str(source))
        for vars_file in _vars_files(path if path.is_dir() else path.parent):
            text = vars_file.read_text(encoding="utf-8")
            if PLACEHOLDER not in text or text.lstrip().startswith("$ANSIBLE_VAULT"):
                continue
            data = yaml.safe_load(text) or {}
            names.update(name for name, value in data.items() if _holds_placeholder(value))
    return sorted(names)


class FilterModule:
    def filters(self):
        return {"inventory_placeholder_names": placeholder_names}
