"""Where things are: the one project root and the inventories' default source lists.

An inventory is an ordered list of source directories, as ``ansible-playbook -i A -i B`` takes
them: later sources' group_vars and host_vars override earlier ones. Production is the model
and the lab is its delta, so the lab inventory is production plus ``inventory/lab``.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSIBLE_CFG = ROOT / "ansible.cfg"
PLAYBOOKS = ROOT / "playbooks"
VAULT_PASS_SCRIPT = ROOT / "scripts" / "vault-pass"
CONTAINERS_CONF = ROOT / "lab" / "containers.conf"
LAB_STATE_DIR = ROOT / ".lab"
REPORTS = ROOT / "reports"
# ansible-runner's private data dir: artifacts of each run, rotated (archive_dr/runner.py).
RUNNER_DIR = LAB_STATE_DIR / "runner"

PRODUCTION_INVENTORY: list[Path] = [ROOT / "inventory" / "production"]
LAB_INVENTORY: list[Path] = [*PRODUCTION_INVENTORY, ROOT / "inventory" / "lab"]
# Overrides the lab inventory for the CLI: source paths separated by os.pathsep.
LAB_INVENTORY_ENV = "ARCHIVE_DR_LAB_INVENTORY"


def sources(value: str | os.PathLike | list | tuple | None, default: list[Path] | None = None) -> list[Path]:
    """An inventory as a list of source paths: from a list, one path, or os.pathsep-separated paths."""
    if value is None or value == [] or value == "":
        return list(default if default is not None else LAB_INVENTORY)
    if isinstance(value, (list, tuple)):
        return [Path(item) for item in value]
    return [Path(item) for item in str(value).split(os.pathsep) if item]


def default_lab_inventory() -> list[Path]:
    """The lab inventory, or the one named in $ARCHIVE_DR_LAB_INVENTORY."""
    return sources(os.environ.get(LAB_INVENTORY_ENV), LAB_INVENTORY)


def same_inventory(a, b) -> bool:
    """Whether two inventories are the same ordered list of sources."""
    return [Path(p).resolve() for p in sources(a, [])] == [Path(p).resolve() for p in sources(b, [])]
