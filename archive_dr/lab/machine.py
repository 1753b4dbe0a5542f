"""This machine: running its commands, its apt sources and routes, which the lab's ranges must not overlap."""
from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
from pathlib import Path

from archive_dr import paths
from archive_dr.errors import LabError
from archive_dr.lab.spec import LabSpec

SUITE = "bookworm"


def run(cmd: list[str], check: bool = True, capture: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONTAINERS_CONF=str(paths.CONTAINERS_CONF))
    proc = subprocess.run(cmd, env=env, text=True, capture_output=capture, **kwargs)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise LabError(f"{' '.join(cmd[:4])} failed: {detail[-1] if detail else proc.returncode}")
    return proc

def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["podman", *args], check=check)

def apt_mirror() -> str:
    """The Debian mirror URI from this machine's own apt sources."""
    candidates = []
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    for path in [deb822, *sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]:
        if path.exists():
            for block in path.read_text().split("\n\n"):
                if re.search(r"^Suites:.*\b" + SUITE + r"\b", block, re.M) and "security" not in block:
                    match = re.search(r"^URIs:\s*(\S+)", block, re.M)
                    if match:
                        candidates.append(match.group(1))
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                match = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s", line)
                if match:
                    candidates.append(match.group(1))
    if not candidates:
        raise LabError("no Debian bookworm mirror found in this machine's apt sources")
    return candidates[0]

def apt_source_lines() -> list[str]:
    """This machine's bookworm apt sources (main suite, updates, security) as one-line deb entries."""
    lines = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for block in path.read_text().split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", block, re.M))
            if "deb" not in fields.get("Types", "").split() or SUITE not in fields.get("Suites", ""):
                continue
            signed = f"[signed-by={fields['Signed-By']}] " if fields.get("Signed-By", "").startswith("/") else ""
            for uri in fields.get("URIs", "").split():
                for suite in fields["Suites"].split():
                    lines.append(f"deb {signed}{uri} {suite} {fields.get('Components', 'main')}")
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            lines += [line.strip() for line in path.read_text().splitlines()
                      if re.match(r"^deb\s", line) and f" {SUITE}" in line]
    if not lines:
        raise LabError("no Debian bookworm sources found in this machine's apt configuration")
    return lines

def write_apt_facts(spec: LabSpec) -> None:
    """What the lab inventory reads for package sources, taken from this machine's apt setup."""
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    (spec.state_dir / "apt-mirror").write_text(apt_mirror() + "\n")
    (spec.state_dir / "apt-sources.list").write_text("\n".join(apt_source_lines()) + "\n")

def mirror_addresses(uri: str) -> set[ipaddress.IPv4Address]:
    host = re.sub(r"^\w+://", "", uri).split("/")[0].split(":")[0]
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET)
    except socket.gaierror:
        return set()
    return {ipaddress.IPv4Address(info[4][0]) for info in infos}

def host_routes(exclude_devices: set[str]) -> list[tuple[str, ipaddress.IPv4Network]]:
    proc = run(["ip", "-j", "-4", "route", "show", "table", "all"])
    routes = []
    for route in json.loads(proc.stdout or "[]"):
        dst = route.get("dst", "")
        if route.get("dev") in exclude_devices or dst in ("", "default") or route.get("type") in ("broadcast", "local"):
            continue
        try:
            routes.append((route.get("dev", "?"), ipaddress.IPv4Network(dst, strict=False)))
        except ValueError:
            continue
    return routes

def check_ranges(spec: LabSpec, own_bridges: set[str]) -> None:
    ranges = [("management", spec.mgmt_subnet)] + list(spec.networks.items())
    mirror = apt_mirror()
    for name, net in ranges:
        for dev, route in host_routes(own_bridges):
            if net.overlaps(route):
                raise LabError(f"lab network {name} {net} overlaps the host route {route} on {dev}")
        for address in mirror_addresses(mirror):
            if address in net or net.overlaps(ipaddress.IPv4Network(f"{address}/24", strict=False)):
                raise LabError(f"lab network {name} {net} overlaps the package mirror's network ({address}/24)")
