"""OS install stage: the preseed and PXE files rendered from the inventory (not run in the lab)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from archive_dr import paths, rebuild

LAB = paths.LAB_INVENTORY


@pytest.fixture(scope="module")
def media(tmp_path_factory, lab_keys):
    out = tmp_path_factory.mktemp("media")
    files = {p.relative_to(out).as_posix(): p for p in rebuild.render_install_media("miyun-store", LAB, out)}
    return out, files


def test_renders_all_files(media):
    _, files = media
    assert set(files) == {"http/preseed/miyun-store.cfg", "dnsmasq.conf",
                          "tftp/debian-installer/amd64/grub/grub.cfg", "tftp/pxelinux.cfg/default"}


def test_preseed_passes_debconf_checkonly(media):
    preseed = media[1]["http/preseed/miyun-store.cfg"]
    proc = subprocess.run(["debconf-set-selections", "--checkonly", str(preseed)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_preseed_content_from_inventory(media, lab_keys):
    text = media[1]["http/preseed/miyun-store.cfg"].read_text()
    key = lab_keys
    assert "d-i netcfg/get_ipaddress string 198.18.0.21\n" in text          # ansible_host
    assert "d-i netcfg/get_hostname string miyun-store\n" in text
    assert "d-i partman-auto/disk string /dev/sda\n" in text                 # OS disk only
    assert "d-i grub-installer/bootdev string /dev/sda\n" in text
    assert "d-i netcfg/no_default_route boolean true\n" in text              # DR room: no internet
    assert f"'{key}'" in text                                                # root key for the bootstrap
    assert "/dev/disk/by-id/lab-data" not in text                            # data disks never named
    assert "d-i passwd/root-password-crypted password !\n" in text


def test_broken_preseed_fails_checkonly(tmp_path):
    bad = tmp_path / "bad.cfg"
    bad.write_text("d-i netcfg/get_hostname\n")
    proc = subprocess.run(["debconf-set-selections", "--checkonly", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0


def test_pxe_files(media):
    out, files = media
    dnsmasq = files["dnsmasq.conf"].read_text()
    assert "dhcp-host=02:ad:00:00:00:21,miyun-store,198.18.0.21,1h" in dnsmasq
    assert "dhcp-ignore=tag:!known" in dnsmasq and "port=0" in dnsmasq
    assert f"tftp-root={(out / 'tftp').resolve()}" in dnsmasq
    for name in ("tftp/debian-installer/amd64/grub/grub.cfg", "tftp/pxelinux.cfg/default"):
        boot = files[name].read_text()
        assert "url=http://198.18.0.1:8081/preseed/miyun-store.cfg" in boot
        assert "netcfg/get_ipaddress=198.18.0.21" in boot and "auto=true priority=critical" in boot
    proc = subprocess.run(["dnsmasq", "--test", f"--conf-file={files['dnsmasq.conf']}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_refuses_geo_hosts_and_placeholders(tmp_path, lab_keys):
    with pytest.raises(rebuild.RebuildError, match="not a DR-site host"):
        rebuild.render_install_media("geo-archive", LAB, tmp_path)
    values = {"ansible_host": "10.0.0.5", "os_install_defaults": {"netmask": "255.255.255.0", "pxe_server": "10.0.0.1",
                                                                   "http_port": 8081, "domain": "x"},
              "os_install_hosts": {"miyun-store": {"mac": "CHANGE_ME", "disk": "/dev/sda"}},
              "baseline_admin_ssh_keys": ["ssh-ed25519 AAAA k"]}
    with pytest.raises(rebuild.RebuildError, match="still CHANGE_ME.*mac"):
        rebuild.install_context("miyun-store", values)
    values["os_install_hosts"]["miyun-store"]["mac"] = "02:00:00:00:00:01"
    values["baseline_admin_ssh_keys"] = []
    with pytest.raises(rebuild.RebuildError, match="would be unreachable"):
        rebuild.install_context("miyun-store", values)
