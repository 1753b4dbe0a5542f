"""Filters for playbooks/validate.yml: the inventory checks of module_utils/inventory_checks.py.

The checks are pure Python in module_utils/ (unit-tested in tests/unit/test_inventory_checks.py);
this file only loads them for Ansible on the controller.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "archive_dr_inventory_checks"
if _NAME in sys.modules:
    _checks = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).resolve().parent.parent / "module_utils" / "inventory_checks.py")
    _checks = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _checks
    _spec.loader.exec_module(_checks)


def _plain(value):
    """Ansible's tagged containers and strings as plain Python values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


def inventory_errors(checked, groups, host_errors=None, hostvars=None):
    """checked: {host: variables} of the play's hosts; hosts left out of the play (--limit)
    still count with their addresses and site, read from hostvars."""
    merged = _plain(checked)
    for host in (groups or {}).get("all", []):
        if host not in merged and hostvars is not None:
            known = hostvars[host]
            merged[host] = {v: _plain(known[v]) for v in _checks.BASE_VARS if v in known}
    return _checks.inventory_errors(merged, _plain(groups), host_errors=_plain(host_errors))


def spec_type_errors(values, options):
    return _checks.spec_type_errors(_plain(values), _plain(options))


def argument_spec_messages(errors, role):
    return _checks.argument_spec_messages(role, _plain(errors))


class FilterModule:
    def filters(self):
        return {
            "inventory_errors": inventory_errors,
            "inventory_spec_type_errors": spec_type_errors,
            "inventory_argument_spec_messages": argument_spec_messages,
        }
