"""The lab's verbs that make and remove things: up, destroy (a host lost), down."""
from __future__ import annotations

import shutil
import time

from archive_dr import prereqs
from archive_dr.errors import LabError
from archive_dr.lab.containers import (_is_ours, container_state, create_container, ensure_ssh_key, start_host,
                                       wait_for_ssh, wire_host)
from archive_dr.lab.disks import disk_file, ensure_disks, release_disk
from archive_dr.lab.images import build_images
from archive_dr.lab.machine import check_ranges, podman, run, write_apt_facts
from archive_dr.lab.networks import EGRESS_TABLE, _network_exists, ensure_networks, network_bridges
from archive_dr.lab.spec import LabSpec
from archive_dr.lab.state import STATE_FILE, write_state


def up(spec: LabSpec, ssh_key: str | None = None, only: list[str] | None = None) -> None:
    prereqs.require(error=LabError)
    started = time.monotonic()
    targets = [spec.host(name) for name in only] if only else spec.hosts
    bridges = network_bridges(spec)
    check_ranges(spec, set(bridges.values()))
    pubkey = ensure_ssh_key(spec, ssh_key)
    tags = build_images(spec.state_dir.parent / ".cache" / "images")
    ensure_networks(spec)
    for host in targets:
        start_host(spec, host, tags["host"], pubkey)
    bridges = network_bridges(spec)
    for host in targets:
        wire_host(spec, host, bridges)
    wait_for_ssh(spec, targets)
    write_apt_facts(spec)
    write_state(spec, tags)
    print(f"lab up: {len(targets)} hosts ready in {time.monotonic() - started:.1f}s", flush=True)

def destroy(spec: LabSpec, name: str, keep_disks: bool) -> None:
    """Replace a host by a fresh bare one (systemd + sshd, no Python), as after a hardware loss."""
    host = spec.host(name)
    info = container_state(host.name)
    if info is not None and not _is_ours(info):
        raise LabError(f"a container named {host.name} exists and was not made by archive-dr")
    pubkey = ensure_ssh_key(spec, None)
    tags = build_images(spec.state_dir.parent / ".cache" / "images")
    if info is not None:
        podman("rm", "-f", "-t", "5", host.name)
        print(f"  {host.name}: destroyed", flush=True)
    if not keep_disks:
        for disk in host.disks:
            release_disk(disk_file(spec, host, disk))
            disk_file(spec, host, disk).unlink(missing_ok=True)
    disks = ensure_disks(spec, host)
    # As in the real DR room, the replacement machine has no route to the internet:
    # everything it installs comes from the package depot.
    host.internet = False
    create_container(spec, host, tags["bare"], disks, pubkey)
    podman("start", host.name)
    wire_host(spec, host, network_bridges(spec))
    wait_for_ssh(spec, [host])
    kept = "kept" if keep_disks else "blank"
    print(f"lab destroy: {host.name} is a fresh bare host ({kept} disks)", flush=True)

def down(spec: LabSpec) -> None:
    for host in spec.hosts:
        info = container_state(host.name)
        if info is not None and _is_ours(info):
            podman("rm", "-f", "-t", "5", host.name)
            print(f"  removed container {host.name}", flush=True)
        for disk in host.disks:
            path = disk_file(spec, host, disk)
            release_disk(path)
            path.unlink(missing_ok=True)
        run(["ssh", "-O", "exit", "-o", "ControlPath=/tmp/archive-dr-cp/%C", f"root@{host.mgmt_address}"],
            check=False)
    run(["nft", "delete", "table", "inet", EGRESS_TABLE], check=False)
    for key in ["mgmt", *spec.networks]:
        name = spec.network_name(key)
        if _network_exists(name):
            podman("network", "rm", "-f", name)
            print(f"  removed network {name}", flush=True)
    for leftover in ["disks", "staging", STATE_FILE, "apt-mirror", "apt-sources.list"]:
        path = spec.state_dir / leftover
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    print("lab down: done", flush=True)
