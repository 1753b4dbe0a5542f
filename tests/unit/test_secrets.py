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
    with pytest.raises(secrets.InventoryError, match="bad entry .*rot13"):
        secrets.ensure(inventory)


def test_layered_inventory_union_of_requirements_vault_in_the_last_source(tmp_path, monkeypatch):
    """Each source's group_vars/all/*.yml may declare secrets; all count (an empty list in the lab adds
    nothing and removes nothing), and the vault is the last source's."""
    monkeypatch.setattr(secrets, "vault_password", lambda: "test-vault-password")
    production, lab = tmp_path / "production", tmp_path / "lab"
    for source, files in ((production, {"a.yml": [{"name": "db_password", "kind": "password"}],
                                        "b.yml": [{"name": "restic_password", "kind": "hex32"}]}),
                          (lab, {"lab.yml": [], "extra.yml": [{"name": "lab_only", "kind": "password"},
                                                              {"name": "db_password", "kind": "password"}]})):
        (source / "group_vars" / "all").mkdir(parents=True)
        for name, required in files.items():
            (source / "group_vars" / "all" / name).write_text(yaml.safe_dump({"secrets_required": required}))
    assert [item["name"] for item in secrets.required([production, lab])] == \
        ["db_password", "restic_password", "lab_only"]
    assert sorted(secrets.ensure([production, lab])) == ["db_password", "lab_only", "restic_password"]
    assert secrets.vault_file([production, lab]) == lab / "group_vars" / "all" / "vault.yml"
    assert not (production / "group_vars" / "all" / "vault.yml").exists()
    assert secrets.ensure([production, lab]) == []
