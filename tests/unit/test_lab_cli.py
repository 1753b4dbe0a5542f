"""`archive-dr lab up` with bad input: one line on stderr, exit 2, nothing created."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from archive_dr import paths
from archive_dr.paths import ROOT

ENV = dict(os.environ, CONTAINERS_CONF=str(paths.CONTAINERS_CONF))


def snapshot() -> tuple[str, str, str]:
    containers = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], env=ENV, capture_output=True, text=True).stdout
    networks = subprocess.run(["podman", "network", "ls", "--format", "{{.Name}}"], env=ENV, capture_output=True, text=True).stdout
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    return containers, networks, loops


def wan_on_the_machines_own_network(tmp_path: Path) -> list[str]:
    """An inventory whose WAN sits on this machine's own network (its default route's subnet)."""
    import yaml

    route = subprocess.run(["ip", "-4", "-o", "route", "show", "scope", "link"], capture_output=True, text=True).stdout.split()
    subnet = route[0]
    sources = []
    for source in paths.LAB_INVENTORY:
        sources.append(tmp_path / "inventory" / source.name)
        shutil.copytree(source, sources[-1], ignore=shutil.ignore_patterns("vault.yml"))
    base = subnet.split("/")[0].rsplit(".", 1)[0]
    for name, last in (("geo-fw", 201), ("miyun-fw", 202)):
        path = sources[-1] / "host_vars" / f"{name}.yml"
        data = yaml.safe_load(path.read_text())
        data["wan_address"] = f"{base}.{last}"
        path.write_text(yaml.safe_dump(data))
    return [arg for source in sources for arg in ("--inventory", str(source))] + ["--wan-subnet", subnet]


@pytest.mark.parametrize("args,message", [
    (["--hosts", "geo-nope"], "unknown host 'geo-nope'"),
    (wan_on_the_machines_own_network, "overlaps the host route"),
    (["--mgmt-subnet", "198.18.0.0/99"], "malformed network range"),
    (["--disk-size", "0"], "disk size must be greater than 0"),
    (["--ssh-key", "/nonexistent/id_ed25519"], "SSH key /nonexistent/id_ed25519"),
])
def test_bad_input_is_one_clear_line_and_creates_nothing(tmp_path, args, message):
    before = snapshot()
    if callable(args):
        inventory_args = args(tmp_path)
        prefix, args = inventory_args[:-2], inventory_args[-2:]
    else:
        prefix = []
    proc = subprocess.run([sys.executable, "-m", "archive_dr", *prefix, "--state-dir", str(tmp_path / "state"),
                           "lab", "up", *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert snapshot() == before
    assert not (tmp_path / "state").exists()
