"""The lab's input validation: every bad input is one clear error, before anything is made."""
from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import pytest
import yaml

from archive_dr import lab, paths
from archive_dr.lab import machine, spec as lab_spec


def copy_inventory(tmp_path) -> list[Path]:
    """The lab inventory's sources copied (without the vault): edits change only the copy."""
    sources = []
    for source in paths.LAB_INVENTORY:
        target = tmp_path / "inventory" / source.name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("vault.yml"))
        sources.append(target)
    return sources


@pytest.fixture()
def inventory(tmp_path):
    return copy_inventory(tmp_path)


def edit(path: Path, **changes):
    data = yaml.safe_load(path.read_text()) or {}
    data.update(changes)
    path.write_text(yaml.safe_dump(data))


def test_lab_inventory_loads(inventory, tmp_path):
    spec = lab.load_spec(inventory, tmp_path / "state")
    assert [h.name for h in spec.hosts] == ["geo-archive", "geo-backup", "geo-fw", "miyun-store", "miyun-fw"]
    gateways = {h.name for h in spec.hosts if h.gateway}
    assert gateways == {"geo-fw", "miyun-fw"}
    store = spec.host("miyun-store")
    assert [d.name for d in store.disks] == ["data0", "data1"]
    assert store.routes == [("198.18.1.0/24", "198.18.2.1")]
    # Gateway MACs are fixed, derived from the address.
    assert spec.host("geo-fw").interfaces[1].mac == lab_spec._mac(spec.host("geo-fw").interfaces[1].address.ip, 2)


def test_unknown_host(inventory, tmp_path):
    spec = lab.load_spec(inventory, tmp_path / "state")
    with pytest.raises(lab.LabError, match="unknown host 'geo-nope'"):
        spec.host("geo-nope")


@pytest.mark.parametrize("override,message", [
    ({"lab_wan_subnet": "198.18.3.0/33"}, "malformed network range for the WAN"),
    ({"lab_wan_subnet": "198.18.3.7/24"}, "malformed network range for the WAN"),
    ({"lab_wan_subnet": "banana"}, "malformed network range"),
    ({"lab_wan_subnet": "198.18.0.0/16"}, "network ranges overlap"),
    ({"lab_disk_size": "0"}, "disk size must be greater than 0"),
    ({"lab_disk_size": "-1G"}, "malformed size"),
    ({"lab_wan_rate": "fast"}, "malformed lab_wan_rate"),
])
def test_bad_overrides(inventory, tmp_path, override, message):
    with pytest.raises(lab.LabError, match=message):
        lab.load_spec(inventory, tmp_path / "state", override)


def test_address_outside_its_lan(inventory, tmp_path):
    edit(inventory[-1] / "host_vars" / "geo-archive.yml", lan_address="198.18.2.99")
    with pytest.raises(lab.LabError, match="lan_address 198.18.2.99 is not in 198.18.1.0/24"):
        lab.load_spec(inventory, tmp_path / "state")


def test_range_overlapping_a_host_route_is_refused(inventory, tmp_path, monkeypatch):
    spec = lab.load_spec(inventory, tmp_path / "state")
    monkeypatch.setattr(machine, "host_routes", lambda exclude: [("eth0", ipaddress.IPv4Network("198.18.1.0/24"))])
    monkeypatch.setattr(machine, "mirror_addresses", lambda uri: set())
    with pytest.raises(lab.LabError, match="overlaps the host route 198.18.1.0/24 on eth0"):
        lab.check_ranges(spec, set())


def test_range_overlapping_the_mirror_is_refused(inventory, tmp_path, monkeypatch):
    spec = lab.load_spec(inventory, tmp_path / "state")
    monkeypatch.setattr(machine, "host_routes", lambda exclude: [])
    monkeypatch.setattr(machine, "mirror_addresses", lambda uri: {ipaddress.IPv4Address("198.18.3.80")})
    with pytest.raises(lab.LabError, match="package mirror"):
        lab.check_ranges(spec, set())


def test_missing_ssh_key(inventory, tmp_path):
    spec = lab.load_spec(inventory, tmp_path / "state")
    with pytest.raises(lab.LabError, match="SSH key .* not found"):
        lab.ensure_ssh_key(spec, str(tmp_path / "no-such-key"))
    assert not (tmp_path / "state").exists()


def test_apt_mirror_comes_from_this_machines_sources():
    assert lab.apt_mirror().startswith(("http://", "https://", "file:/"))


def test_the_lab_is_production_plus_its_delta(inventory, tmp_path):
    """The layered lab: hosts from the first source, the lab's addresses from the last one override production's."""
    spec = lab.load_spec(inventory, tmp_path / "state")
    assert spec.inventory == inventory
    assert str(spec.host("miyun-store").mgmt_address) == "198.18.0.21"
    with pytest.raises(lab.LabError, match="no hosts"):
        lab.load_spec(inventory[-1:], tmp_path / "state")


def test_a_vault_is_not_needed(inventory, tmp_path):
    """lab up runs before any secret exists: a vault that cannot be decrypted is not read."""
    (inventory[-1] / "group_vars" / "all" / "vault.yml").write_text(
        "$ANSIBLE_VAULT;1.1;AES256\n6162636465666768\n")
    assert [h.name for h in lab.load_spec(inventory, tmp_path / "state").hosts][0] == "geo-archive"


def test_state_records_the_inventory_sources(inventory, tmp_path):
    spec = lab.load_spec(inventory, tmp_path / "state")
    spec.state_dir.mkdir(parents=True)
    lab.state.write_state(spec, {"bare": "b", "host": "h"})
    assert lab.recorded_inventory(spec.state_dir) == inventory
