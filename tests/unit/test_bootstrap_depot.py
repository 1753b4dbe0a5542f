"""The depot's package list, tarball and signing key (no lab, no network)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archive_dr.paths import ROOT



@pytest.fixture(scope="module")
def depot_build():
    path = ROOT / "roles" / "depot" / "files" / "depot_build.py"
    spec = importlib.util.spec_from_file_location("depot_build", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["depot_build"] = module
    spec.loader.exec_module(module)
    return module


def test_role_packages_cover_every_role_list(depot_build):
    found = depot_build.role_packages(ROOT / "roles")
    assert "postgresql-15" in found["archive_system"]          # "postgresql-{{ archive_system_pg_version }}"
    assert "smartmontools" in found["storage"]                  # literal apt task name
    assert {"strongswan-swanctl", "nftables"} <= set(found["site_gateway"])
    for role in ("baseline", "archive_system", "backup_appliance", "site_gateway", "storage"):
        for key, value in (yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text())
                           if (ROOT / "roles" / role / "vars" / "main.yml").exists() else {}).items():
            if key.endswith("_packages"):
                assert all("{{" in item or item in found[role] for item in value), (role, key)


def test_role_packages_from_a_new_role(depot_build, tmp_path):
    role = tmp_path / "roles" / "replica"
    (role / "tasks").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "defaults" / "main.yml").write_text("replica_pg: 15\nreplica_packages: ['postgresql-{{ replica_pg }}']\n")
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([
        {"name": "x", "ansible.builtin.apt": {"name": ["btrfs-progs", "{{ undefined_var }}"]}},
        {"block": [{"name": "y", "apt": {"name": "zstd", "state": "present"}}]},
        {"name": "z", "ansible.builtin.apt": {"name": "nano", "state": "absent"}},
    ]))
    assert depot_build.role_packages(tmp_path / "roles") == {"replica": ["btrfs-progs", "postgresql-15", "zstd"]}
    lists = tmp_path / "extra.txt"
    lists.write_text("# comment\npython3\n\nsudo  # trailing\n")
    assert depot_build.wanted(tmp_path / "roles", [lists], ["gnupg", ""]) == [
        "btrfs-progs", "gnupg", "postgresql-15", "python3", "sudo", "zstd"]
    with pytest.raises(SystemExit, match="malformed package names"):
        depot_build.wanted(tmp_path / "roles", [], ["bad name"])


def test_tarball_is_byte_stable(depot_build, tmp_path):
    repo = tmp_path / "repo"
    (repo / "dists" / "bookworm").mkdir(parents=True)
    (repo / "dists" / "bookworm" / "InRelease").write_text("x\n")
    (repo / "pool").mkdir()
    (repo / "pool" / "a_1_all.deb").write_bytes(b"deb")
    (repo / ".depot-stamp.json").write_text("{}")
    depot_build.write_tarball(repo, tmp_path / "one.tar")
    (repo / "pool" / "a_1_all.deb").touch()                 # new mtime, same content
    depot_build.write_tarball(repo, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    names = subprocess.run(["tar", "-tf", str(tmp_path / "one.tar")], capture_output=True, text=True).stdout.split()
    assert ".depot-stamp.json" not in names and "pool/a_1_all.deb" in names


def test_signing_key_generator_signs_and_verifies(tmp_path):
    from archive_dr import pki, secrets

    assert secrets.GENERATORS["gpg_signing"] is pki.gen_gpg_signing
    keys = pki.gen_gpg_signing("vault_depot_signing_key", {})
    assert "BEGIN PGP PRIVATE KEY BLOCK" in keys["vault_depot_signing_key"]
    assert "BEGIN PGP PUBLIC KEY BLOCK" in keys["vault_depot_signing_key_pub"]
    home = tmp_path / "gpg"
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback"]
    try:
        subprocess.run(gpg + ["--import"], input=keys["vault_depot_signing_key"], text=True, check=True)
        (tmp_path / "Release").write_text("Suite: bookworm\n")
        subprocess.run(gpg + ["--clearsign", "--output", str(tmp_path / "InRelease"), str(tmp_path / "Release")],
                       check=True)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    keyring = tmp_path / "depot.gpg"
    subprocess.run(["gpg", "--dearmor", "--output", str(keyring)], input=keys["vault_depot_signing_key_pub"].encode(),
                   check=True)
    # apt verifies with gpgv against the public key only.
    ok = subprocess.run(["gpgv", "--keyring", str(keyring), str(tmp_path / "InRelease")], capture_output=True)
    assert ok.returncode == 0
    tampered = (tmp_path / "InRelease").read_text().replace("bookworm", "trixie")
    (tmp_path / "bad").write_text(tampered)
    bad = subprocess.run(["gpgv", "--keyring", str(keyring), str(tmp_path / "bad")], capture_output=True)
    assert bad.returncode != 0


def test_the_depot_carries_the_virus_scanner(depot_build):
    assert "clamav" in depot_build.role_packages(ROOT / "roles")["replica"]
