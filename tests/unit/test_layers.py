"""The layering contract (pyproject.toml [tool.importlinter], docs/DEVELOPING.md "Layers") holds, and breaks
when a lower layer imports a higher one or when bootstrap or the secrets import the lab."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from archive_dr.paths import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    # The tree's own packages first: a copy is analysed, not the installed archive_dr.
    env = dict(os.environ, PYTHONPATH=str(tree))
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_contracts_are_kept():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    for name in ("archive_dr", "bootstrap"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint_imports(tmp_path).returncode == 0          # the copy alone is as good as the original

    with (tmp_path / "archive_dr" / "runner.py").open("a") as handle:
        handle.write("\nfrom archive_dr import cli  # noqa: E402,F401\n")
    with (tmp_path / "archive_dr" / "secrets.py").open("a") as handle:
        handle.write("\nimport archive_dr.lab  # noqa: E402,F401\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Contracts: 0 kept, 2 broken." in proc.stdout
    assert "archive_dr.runner -> archive_dr.cli" in proc.stdout
    assert "archive_dr.secrets -> archive_dr.lab" in proc.stdout
