"""Secrets are generated once: a second run adds nothing and never replaces a CA."""
from __future__ import annotations

import pytest
import yaml

from archive_dr import secrets


@pytest.fixture()
def inventory(tmp_path, monkeypatch):
    monkeypatch.setattr(secrets, "vault_password", lambda: "test-vault-password")
    inv = tmp_path / "inventory"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "group_vars" / "all" / "a.yml").write_text(yaml.safe_dump({"secrets_required": [
        {"name": "db_password", "kind": "password"},
        {"name": "pull_key", "kind": "ed25519"},
        {"name": "site_gateway_ipsec_ca", "kind": "ipsec_ca"},
        {"name": "site_gateway_ipsec_cert_geo", "kind": "ipsec_cert"},
    ]}))
    return inv


def test_generated_once_and_encrypted(inventory):
    added = secrets.ensure(inventory)
    assert {"db_password", "pull_key", "pull_key_pub", "site_gateway_ipsec_ca_key",
            "site_gateway_ipsec_ca_cert", "site_gateway_ipsec_cert_geo"} <= set(added)
    raw = secrets.vault_file(inventory).read_bytes()
    assert raw.startswith(b"$ANSIBLE_VAULT;1.1;AES256")
    first = secrets.load(inventory)
    assert first["db_password"].encode() not in raw
    assert secrets.ensure(inventory) == []
    assert secrets.load(inventory) == first  # the CA and everything else kept


def test_a_new_requirement_is_added_without_touching_the_rest(inventory):
    secrets.ensure(inventory)
    before = secrets.load(inventory)
    (inventory / "group_vars" / "all" / "b.yml").write_text(yaml.safe_dump(
        {"secrets_required": [{"name": "restic_password", "kind": "hex32"}]}))
    assert secrets.ensure(inventory) == ["restic_password"]
    after = secrets.load(inventory)
    assert {k: after[k] for k in before if k != "secrets_generated"} == \
        {k: before[k] for k in before if k != "secrets_generated"}


def test_unknown_kind_is_a_clear_error(inventory):
    (inventory / "group_vars" / "all" / "c.yml").write_text(yaml.safe_dump(
        {"secrets_required": [{"name": "x", "kind": "rot13"}]}))
    with pytest.raises(secrets.LabError, match="bad entry .*rot13"):
        secrets.ensure(inventory)
