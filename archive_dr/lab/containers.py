"""The lab's hosts: systemd containers, their cabling on this machine, SSH into them."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from archive_dr.errors import LabError
from archive_dr.lab.disks import ensure_disks
from archive_dr.lab.machine import podman, run
from archive_dr.lab.networks import EGRESS_TABLE
from archive_dr.lab.spec import LABEL, HostSpec, Interface, LabSpec
from archive_dr.ssh import SshTarget, ssh_run


def container_state(name: str) -> dict | None:
    proc = podman("container", "inspect", name, check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)[0]

def _is_ours(info: dict) -> bool:
    return LABEL in ((info.get("Config") or {}).get("Labels") or {})

def _networkd_file(iface: Interface, routes: list[tuple[str, str]]) -> str:
    text = f"[Match]\nName={iface.name}\n\n[Network]\nAddress={iface.address}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    for destination, via in routes:
        text += f"\n[Route]\nDestination={destination}\nGateway={via}\n"
    return text

def create_container(spec: LabSpec, host: HostSpec, image: str, disks: dict[str, str], pubkey: str) -> None:
    args = ["create", "--name", host.name, "--hostname", host.name, "--label", f"{LABEL}={','.join(map(str, spec.inventory))}",
            "--systemd", "always", "--stop-signal", "SIGRTMIN+3",
            # /etc/hosts belongs to the host (the baseline role), not to podman, which
            # would rewrite it at every start and drop the sites' names.
            "--no-hosts",
            "--cap-add", "NET_ADMIN,NET_RAW,AUDIT_WRITE,SYS_PTRACE",
            "--network", f"{spec.network_name('mgmt')}:ip={host.mgmt_address},mac={host.mgmt_mac}"]
    for iface in host.interfaces:
        args += ["--network", f"{spec.network_name(iface.network)}:interface_name={iface.name},mac={iface.mac}"]
    if host.gateway:
        # IPsec in userspace needs TUN; forwarding sysctls live in the container's namespace.
        args += ["--device", "/dev/net/tun", "--security-opt", "unmask=/proc/sys"]
    if disks:
        args += ["--cap-add", "SYS_ADMIN", "--device-cgroup-rule", "b 7:* rwm",
                 "--device-cgroup-rule", "b 259:* rwm", "--security-opt", "apparmor=unconfined"]
        if Path("/dev/btrfs-control").exists():
            args += ["--device", "/dev/btrfs-control"]
        for name, device in disks.items():
            args += ["--device", device, "--device", f"{device}:/dev/disk/by-id/lab-{name}"]
    podman(*args, image)
    files = {"/root/.ssh/authorized_keys": pubkey}
    routes = host.routes
    for iface in host.interfaces:
        files[f"/etc/systemd/network/10-{iface.name}.network"] = _networkd_file(
            iface, routes if iface.network == host.site else [])
    staging = spec.state_dir / "staging" / host.name
    for target, content in files.items():
        local = staging / target.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(content)
    podman("cp", f"{staging}/.", f"{host.name}:/")
    shutil.rmtree(staging)

def host_veth(container: str, ifname: str) -> str | None:
    proc = podman("exec", container, "cat", f"/sys/class/net/{ifname}/iflink", check=False)
    if proc.returncode != 0:
        return None
    index = proc.stdout.strip()
    for link in json.loads(run(["ip", "-j", "link", "show"]).stdout):
        if str(link.get("ifindex")) == index:
            return link["ifname"]
    return None

def _no_internet(spec: LabSpec, host: HostSpec, bridges: dict[str, str]) -> None:
    """No route to the internet: drop the default route inside, and the machine forwards nothing from it."""
    pid = podman("inspect", "-f", "{{.State.Pid}}", host.name).stdout.strip()
    run(["nsenter", "-t", pid, "-n", "ip", "route", "del", "default"], check=False)
    bridge = bridges.get("mgmt")
    if not bridge:
        return
    run(["nft", "add", "table", "inet", EGRESS_TABLE])
    run(["nft", "add", "chain", "inet", EGRESS_TABLE, "forward",
         "{ type filter hook forward priority filter - 5; policy accept; }"])
    rules = run(["nft", "-a", "list", "chain", "inet", EGRESS_TABLE, "forward"]).stdout
    if f"ip saddr {host.mgmt_address} " not in rules:
        run(["nft", "add", "rule", "inet", EGRESS_TABLE, "forward", "iifname", bridge, "ip", "saddr",
             str(host.mgmt_address), "counter", "drop", "comment", f'"{host.name} has no internet"'])

def wire_host(spec: LabSpec, host: HostSpec, bridges: dict[str, str]) -> None:
    """Host-side cabling that podman does not do: isolation, no IPv6, WAN shaping, no internet for the DR site."""
    mgmt_veth = host_veth(host.name, "eth0")
    if mgmt_veth:
        # Hosts may talk to the controller over management, never to each other.
        run(["bridge", "link", "set", "dev", mgmt_veth, "isolated", "on"])
    if not host.internet:
        _no_internet(spec, host, bridges)
    for iface in host.interfaces:
        veth = host_veth(host.name, iface.name)
        for dev in filter(None, [veth, bridges.get(iface.network)]):
            Path(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6").write_text("1\n") \
                if Path(f"/proc/sys/net/ipv6/conf/{dev}").exists() else None
        if iface.network == "wan" and veth:
            # Shapes traffic towards this gateway; with both ends shaped, each direction is limited.
            run(["tc", "qdisc", "replace", "dev", veth, "root", "tbf", "rate", spec.wan_rate,
                 "burst", "64kb", "latency", "20ms"])
    for key, bridge in bridges.items():
        if key != "mgmt" and bridge and Path(f"/proc/sys/net/ipv6/conf/{bridge}").exists():
            Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6").write_text("1\n")


def ssh_key(spec: LabSpec) -> Path:
    return spec.state_dir / "ssh" / "id_ed25519"


def ssh_target(spec: LabSpec, host: HostSpec) -> SshTarget:
    return SshTarget(address=str(host.mgmt_address), user="root", key=str(ssh_key(spec)))


def ssh(spec: LabSpec, host: HostSpec, command: str, timeout: int = 20,
        connect_timeout: int = 5) -> subprocess.CompletedProcess:
    return ssh_run(ssh_target(spec, host), command, timeout=timeout, connect_timeout=connect_timeout)


def wait_for_ssh(spec: LabSpec, hosts: list[HostSpec], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    pending = list(hosts)
    while pending:
        host = pending[0]
        proc = ssh(spec, host, "true", connect_timeout=3)
        if proc.returncode == 0:
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise LabError(f"{host.name} did not answer SSH on {host.mgmt_address} within {timeout:.0f}s")
        time.sleep(0.5)

def ensure_ssh_key(spec: LabSpec, given: str | None) -> str:
    key = ssh_key(spec)
    if given:
        source = Path(given).expanduser()
        if not source.exists() or not Path(f"{source}.pub").exists():
            raise LabError(f"SSH key {source} (and {source}.pub) not found")
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, key)
        shutil.copyfile(f"{source}.pub", f"{key}.pub")
        key.chmod(0o600)
    elif not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "archive-dr-lab", "-f", str(key)])
    return Path(f"{key}.pub").read_text()

def start_host(spec: LabSpec, host: HostSpec, image: str, pubkey: str, blank_disks: bool = False) -> None:
    info = container_state(host.name)
    if info is not None and not _is_ours(info):
        raise LabError(f"a container named {host.name} exists and was not made by archive-dr; remove it first")
    disks = ensure_disks(spec, host, blank=blank_disks)
    if info is not None:
        running = info["State"]["Running"]
        # podman reports PathOnHost by major:minor lookup (a char device may stand in for
        # /dev/loopN), so compare the in-container names, which lab up sets equal to the loop's.
        devices = {d.get("PathInContainer") for d in (info.get("HostConfig") or {}).get("Devices") or []}
        if running and set(disks.values()) <= devices:
            return
        if not running and set(disks.values()) <= devices and podman("start", host.name, check=False).returncode == 0:
            print(f"  {host.name}: restarted stale container", flush=True)
            return
        print(f"  {host.name}: replacing stale container", flush=True)
        podman("rm", "-f", "-t", "5", host.name)
    create_container(spec, host, image, disks, pubkey)
    podman("start", host.name)
    print(f"  {host.name}: started", flush=True)
