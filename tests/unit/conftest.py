"""Fixtures for the unit tests (no lab, no root)."""
from __future__ import annotations

import pytest

from archive_dr import paths, secrets
from archive_dr.paths import ROOT

LAB_VAULT = secrets.vault_file(paths.LAB_INVENTORY)
LAB_SSH_KEY = paths.LAB_STATE_DIR / "ssh" / "id_ed25519.pub"


@pytest.fixture(scope="session")
def lab_keys():
    """What the lab inventory reads (its vault, the lab SSH key): `archive-dr lab keys` makes them, and
    `make unit` runs it first. Missing, the tests that render from the lab inventory fail (never skip)."""
    missing = [str(p.relative_to(ROOT)) for p in (LAB_VAULT, LAB_SSH_KEY) if not p.exists()]
    if missing:
        pytest.fail("%s missing: run `archive-dr lab keys` first (make unit does)" % ", ".join(missing),
                    pytrace=False)
    return LAB_SSH_KEY.read_text().strip()
