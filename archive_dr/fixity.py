"""Bridge from the ``archive_dr`` package to the shared, stdlib-only logic in
``module_utils/archive_*.py`` (one copy of the code, used by both the
Ansible modules on target hosts and the controller-side CLIs).

The module_utils files import each other the way Ansible requires
(``from ansible.module_utils.archive_fixity import ...``), so Ansible's
module packager ships them with the modules. Here we make the same import
names resolve on the controller by adding the repository's ``module_utils``
directory to the ``ansible.module_utils`` package path -- what Ansible itself
does for the configured ``module_utils`` directory. If ansible-core is not
installed, a bare namespace is created, so the code stays stdlib-only.
"""
from __future__ import annotations

import importlib
import os
import sys
import types

MODULE_UTILS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "module_utils")


def _ensure_path():
    try:
        import ansible.module_utils as amu  # noqa: F401
    except ImportError:
        amu = sys.modules.get("ansible.module_utils")
        if amu is None:
            pkg = types.ModuleType("ansible")
            pkg.__path__ = []
            amu = types.ModuleType("ansible.module_utils")
            amu.__path__ = []
            pkg.module_utils = amu
            sys.modules.setdefault("ansible", pkg)
            sys.modules["ansible.module_utils"] = amu
    if MODULE_UTILS_DIR not in list(amu.__path__):
        amu.__path__.append(MODULE_UTILS_DIR)


def load(name):
    """Import ``module_utils/<name>.py`` as ``ansible.module_utils.<name>``."""
    _ensure_path()
    return importlib.import_module("ansible.module_utils." + name)


_fx = load("archive_fixity")

COLUMNS = _fx.COLUMNS
SM3_NATIVE = _fx.SM3_NATIVE
hash_file = _fx.hash_file
hash_bytes = _fx.hash_bytes
load_manifest = _fx.load_manifest
rows_to_csv = _fx.rows_to_csv
format_archive_no = _fx.format_archive_no
parse_archive_no = _fx.parse_archive_no
walk_files = _fx.walk_files
SCHEMA_SQL = os.path.join(MODULE_UTILS_DIR, "archive_schema.sql")
