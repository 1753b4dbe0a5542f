"""The two-site lab: five systemd containers, their networks and disks, on one machine.

Everything the lab builds is named from the lab inventory and labelled
``archive-dr.lab``, so ``down`` removes exactly what ``up`` made.
"""
from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from archive_dr import prereqs

ROOT = Path(__file__).resolve().parent.parent
LAB_FILES = ROOT / "lab"
CONTAINERS_CONF = LAB_FILES / "containers.conf"
LABEL = "archive-dr.lab"
NETWORK_PREFIX = "archive-dr-"
SUITE = "bookworm"
HOSTNAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
SIZE_RE = re.compile(r"^(\d+)([KMGT]?)$", re.IGNORECASE)


class LabError(Exception):
    """A problem with the lab's input or state, reported as one clear line."""


# ---------------------------------------------------------------- the spec

@dataclasses.dataclass
class Interface:
    name: str
    network: str          # lab network key: a site name or "wan"
    address: ipaddress.IPv4Interface
    mac: str


@dataclasses.dataclass
class Disk:
    name: str
    size: int


@dataclasses.dataclass
class HostSpec:
    name: str
    site: str
    mgmt_address: ipaddress.IPv4Address
    mgmt_mac: str
    interfaces: list[Interface]
    routes: list[tuple[str, str]]  # (destination subnet, via)
    disks: list[Disk]
    gateway: bool
    internet: bool = True   # False: no default route, and the machine drops its forwarded traffic


@dataclasses.dataclass
class LabSpec:
    inventory: Path
    state_dir: Path
    mgmt_subnet: ipaddress.IPv4Network
    mgmt_gateway: ipaddress.IPv4Address
    mgmt_mtu: int
    networks: dict[str, ipaddress.IPv4Network]  # site LANs and "wan"
    wan_rate: str
    hosts: list[HostSpec]

    def host(self, name: str) -> HostSpec:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise LabError(f"unknown host '{name}' (the lab has: {known})")

    def network_name(self, key: str) -> str:
        return NETWORK_PREFIX + key


def parse_size(text) -> int:
    match = SIZE_RE.match(str(text).strip())
    if not match:
        raise LabError(f"malformed size '{text}' (expected e.g. 2G, 512M)")
    value = int(match.group(1)) * 1024 ** "BKMGT".index((match.group(2) or "B").upper())
    if value <= 0:
        raise LabError(f"disk size must be greater than 0, got '{text}'")
    return value


def parse_network(text, what: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(text), strict=True)
    except ValueError as exc:
        raise LabError(f"malformed network range for {what}: '{text}' ({exc})") from None


def _mac(address: ipaddress.IPv4Address, index: int) -> str:
    # Fixed MACs: a rebuilt gateway must not leave its neighbours' ARP stale.
    octets = address.packed
    return "02:ad:%02x:%02x:%02x:%02x" % (index, octets[1], octets[2], octets[3])


def _load_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    with path.open() as handle:
        return yaml.safe_load(handle) or {}


def _group_vars(inventory: Path) -> dict:
    merged: dict = {}
    all_dir = inventory / "group_vars" / "all"
    for path in sorted(all_dir.glob("*.yml")):
        if path.name.startswith("vault"):
            continue
        merged.update(_load_yaml(path))
    return merged


def _groups(inventory: Path) -> dict[str, list[str]]:
    tree = _load_yaml(inventory / "hosts.yml")
    groups: dict[str, list[str]] = {}
    for group, body in ((tree.get("all") or {}).get("children") or {}).items():
        groups[group] = list(((body or {}).get("hosts") or {}).keys())
    return groups


def load_spec(inventory: Path, state_dir: Path, overrides: dict | None = None) -> LabSpec:
    overrides = overrides or {}
    if not (inventory / "hosts.yml").exists():
        raise LabError(f"no lab inventory at {inventory} (hosts.yml missing)")
    gvars = _group_vars(inventory)
    gvars.update({k: v for k, v in overrides.items() if v is not None})
    groups = _groups(inventory)
    sites = gvars.get("sites") or {}
    if not sites:
        raise LabError(f"{inventory}: 'sites' is not defined in group_vars/all")

    mgmt_subnet = parse_network(gvars.get("lab_mgmt_subnet"), "the management network")
    networks = {"wan": parse_network(gvars.get("lab_wan_subnet"), "the WAN")}
    for site, body in sites.items():
        networks[site] = parse_network((body or {}).get("lan_subnet"), f"site {site}")
    try:
        mgmt_gateway = ipaddress.IPv4Address(str(gvars.get("lab_mgmt_gateway")))
    except ValueError:
        raise LabError(f"malformed lab_mgmt_gateway '{gvars.get('lab_mgmt_gateway')}'") from None
    if mgmt_gateway not in mgmt_subnet:
        raise LabError(f"lab_mgmt_gateway {mgmt_gateway} is not in {mgmt_subnet}")
    default_disk_size = parse_size(gvars.get("lab_disk_size", "2G"))
    wan_rate = str(gvars.get("lab_wan_rate", "100mbit"))
    if not re.match(r"^\d+(kbit|mbit|gbit)$", wan_rate):
        raise LabError(f"malformed lab_wan_rate '{wan_rate}' (expected e.g. 100mbit)")

    all_ranges = [("management", mgmt_subnet)] + [(k, v) for k, v in networks.items()]
    for i, (name_a, net_a) in enumerate(all_ranges):
        for name_b, net_b in all_ranges[i + 1:]:
            if net_a.overlaps(net_b):
                raise LabError(f"network ranges overlap: {name_a} {net_a} and {name_b} {net_b}")

    gateways = {body.get("gateway_host"): site for site, body in sites.items()}
    # Sites whose hosts reach the package mirror through the management NAT. A host
    # rebuilt by `lab destroy` never does (see destroy()).
    internet_sites = set(gvars.get("lab_internet_sites", list(sites)))
    hosts: list[HostSpec] = []
    seen_names = set()
    for name in [h for g in groups.values() for h in g]:
        if name in seen_names:
            continue
        seen_names.add(name)
        if not HOSTNAME_RE.match(name):
            raise LabError(f"invalid host name '{name}'")
        host_site = [g[len("site_"):] for g, members in groups.items()
                     if g.startswith("site_") and name in members]
        if len(host_site) != 1 or host_site[0] not in sites:
            raise LabError(f"host '{name}' must be in exactly one site_<name> group of a declared site")
        site = host_site[0]
        hvars = _load_yaml(inventory / "host_vars" / f"{name}.yml")
        try:
            mgmt_address = ipaddress.IPv4Address(str(hvars.get("ansible_host")))
        except ValueError:
            raise LabError(f"host '{name}': malformed ansible_host '{hvars.get('ansible_host')}'") from None
        if mgmt_address not in mgmt_subnet or mgmt_address == mgmt_gateway:
            raise LabError(f"host '{name}': ansible_host {mgmt_address} is not a host address in {mgmt_subnet}")
        interfaces = []
        for index, (kind, network_key) in enumerate((("lan", site), ("wan", "wan")), start=1):
            if not hvars.get(f"{kind}_address"):
                continue
            try:
                address = ipaddress.IPv4Address(str(hvars[f"{kind}_address"]))
            except ValueError:
                raise LabError(f"host '{name}': malformed {kind}_address '{hvars[f'{kind}_address']}'") from None
            net = networks[network_key]
            if address not in net:
                raise LabError(f"host '{name}': {kind}_address {address} is not in {net}")
            interfaces.append(Interface(
                name=hvars.get(f"{kind}_interface", f"{kind}0"), network=network_key,
                address=ipaddress.IPv4Interface(f"{address}/{net.prefixlen}"), mac=_mac(address, index)))
        is_gateway = gateways.get(name) == site
        routes = []
        if not is_gateway:
            gw_vars = _load_yaml(inventory / "host_vars" / f"{sites[site]['gateway_host']}.yml")
            for other, body in sites.items():
                if other != site and gw_vars.get("lan_address"):
                    routes.append((str(networks[other]), str(gw_vars["lan_address"])))
        disks = []
        for disk in hvars.get("lab_disks") or []:
            if not re.match(r"^[a-z0-9][a-z0-9_-]*$", str(disk.get("name", ""))):
                raise LabError(f"host '{name}': invalid disk name '{disk.get('name')}'")
            size = parse_size(overrides.get("lab_disk_size") or disk.get("size") or default_disk_size)
            disks.append(Disk(name=disk["name"], size=size))
        hosts.append(HostSpec(name=name, site=site, mgmt_address=mgmt_address,
                              mgmt_mac=_mac(mgmt_address, 0), interfaces=interfaces,
                              routes=routes, disks=disks, gateway=is_gateway,
                              internet=site in internet_sites))
    if not hosts:
        raise LabError(f"{inventory}: no hosts")
    return LabSpec(inventory=inventory, state_dir=state_dir, mgmt_subnet=mgmt_subnet,
                   mgmt_gateway=mgmt_gateway, mgmt_mtu=int(gvars.get("lab_mgmt_mtu", 1500)),
                   networks=networks, wan_rate=wan_rate, hosts=hosts)


# ------------------------------------------------------------ host checks

def run(cmd: list[str], check: bool = True, capture: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))
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


# ------------------------------------------------------------------ images

def _progress(label: str, proc: subprocess.Popen) -> int:
    start = time.monotonic()
    last = 0.0
    for line in proc.stdout:  # type: ignore[union-attr]
        now = time.monotonic()
        line = line.strip()
        if line and now - last > 2:
            print(f"  [{label} {now - start:5.0f}s] {line[:100]}", flush=True)
            last = now
    code = proc.wait()
    print(f"  [{label}] done in {time.monotonic() - start:.0f}s", flush=True)
    return code


def _packages(name: str) -> list[str]:
    lines = (LAB_FILES / f"packages-{name}.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def image_tags() -> dict[str, str]:
    mirror = apt_mirror()
    bare_hash = hashlib.sha256(json.dumps([SUITE, mirror, _packages("bare")]).encode()).hexdigest()[:12]
    host_input = [bare_hash, _packages("host"), (LAB_FILES / "Containerfile.host").read_text()]
    host_hash = hashlib.sha256(json.dumps(host_input).encode()).hexdigest()[:12]
    return {"bare": f"localhost/archive-dr-bare:{bare_hash}", "host": f"localhost/archive-dr-host:{host_hash}"}


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def build_images(cache_dir: Path) -> dict[str, str]:
    prereqs.require(prereqs.IMAGES, LabError)
    tags = image_tags()
    mirror = apt_mirror()
    if not image_exists(tags["bare"]):
        if shutil.which("debootstrap") is None:
            raise LabError("debootstrap is not installed (make lab installs it)")
        rootfs = cache_dir / "bare-rootfs"
        if rootfs.exists():
            shutil.rmtree(rootfs)
        cache_dir.mkdir(parents=True, exist_ok=True)
        print(f"building image {tags['bare']} (debootstrap {SUITE} from {mirror})", flush=True)
        proc = subprocess.Popen(
            ["debootstrap", "--variant=minbase", "--include=" + ",".join(_packages("bare")),
             SUITE, str(rootfs), mirror], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if _progress("debootstrap", proc) != 0:
            raise LabError("debootstrap failed (see output above)")
        # A fresh install: sshd on, networkd for the lab's cabling, no machine-id baked in.
        (rootfs / "etc/machine-id").write_text("")
        (rootfs / "etc/apt/sources.list").write_text(
            f"deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\n")
        # Host keys are made at first boot, as an installer makes them per machine.
        (rootfs / "etc/systemd/system/ssh-hostkeys.service").write_text(
            "[Unit]\nDescription=Generate SSH host keys\nBefore=ssh.service\n"
            "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
            "[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n\n"
            "[Install]\nWantedBy=multi-user.target\n")
        run(["chroot", str(rootfs), "systemctl", "enable", "systemd-networkd", "ssh", "ssh-hostkeys"])
        run(["chroot", str(rootfs), "sh", "-c", "rm -f /etc/ssh/ssh_host_*"])
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(["podman", "import", "--change", 'CMD ["/sbin/init"]', "-", tags["bare"]], stdin=tar.stdout)
        tar.wait()
        shutil.rmtree(rootfs)
    if not image_exists(tags["host"]):
        print(f"building image {tags['host']} (bare + python3 and role packages)", flush=True)
        env = dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))
        proc = subprocess.Popen(
            ["podman", "build", "--network=host", "-f", str(LAB_FILES / "Containerfile.host"),
             "--build-arg", f"BARE_IMAGE={tags['bare']}",
             "--build-arg", "HOST_PACKAGES=" + " ".join(_packages("host")),
             "-t", tags["host"], str(LAB_FILES)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        if _progress("podman build", proc) != 0:
            raise LabError("building the host image failed (see output above)")
    for kind, tag in tags.items():
        # A stable name for Molecule scenarios; the hashed tag stays the cache key.
        podman("tag", tag, f"localhost/archive-dr-{kind}:latest")
    return tags


# ---------------------------------------------------------------- networks

def _network_exists(name: str) -> bool:
    return podman("network", "exists", name, check=False).returncode == 0


def ensure_networks(spec: LabSpec) -> None:
    mgmt = spec.network_name("mgmt")
    if not _network_exists(mgmt):
        # The only network with a host address: NAT for apt, SSH from the controller.
        podman("network", "create", "--label", LABEL, "--subnet", str(spec.mgmt_subnet),
               "--gateway", str(spec.mgmt_gateway), "--disable-dns", "-o", f"mtu={spec.mgmt_mtu}", mgmt)
    for key in spec.networks:
        name = spec.network_name(key)
        if not _network_exists(name):
            # LANs and WAN: internal, no IPAM, so the host holds no address on them.
            podman("network", "create", "--label", LABEL, "--internal", "--ipam-driver", "none",
                   "--disable-dns", name)


def network_bridges(spec: LabSpec) -> dict[str, str]:
    bridges = {}
    for key in ["mgmt", *spec.networks]:
        name = spec.network_name(key)
        if _network_exists(name):
            info = json.loads(podman("network", "inspect", name).stdout)[0]
            bridges[key] = info.get("network_interface", "")
    return bridges


# ------------------------------------------------------------------- disks

def disk_file(spec: LabSpec, host: HostSpec, disk: Disk) -> Path:
    return spec.state_dir / "disks" / f"{host.name}-{disk.name}.img"


def loop_for(path: Path) -> str | None:
    proc = run(["losetup", "-j", str(path), "-n", "-O", "NAME"], check=False)
    names = proc.stdout.split()
    return names[0] if names else None


def ensure_disks(spec: LabSpec, host: HostSpec, blank: bool = False) -> dict[str, str]:
    """Attach the host's disk images to loop devices; returns disk name -> /dev/loopN."""
    attached = {}
    for disk in host.disks:
        path = disk_file(spec, host, disk)
        path.parent.mkdir(parents=True, exist_ok=True)
        if blank:
            release_disk(path)
            path.unlink(missing_ok=True)
        if not path.exists():
            with path.open("wb") as handle:
                handle.truncate(disk.size)
        device = loop_for(path) or run(["losetup", "-f", "--show", str(path)]).stdout.strip()
        attached[disk.name] = device
    return attached


def release_disk(path: Path) -> None:
    while (device := loop_for(path)) is not None:
        run(["losetup", "-d", device], check=False)
        if loop_for(path) == device:
            raise LabError(f"cannot detach {device} ({path}); is it still mounted?")


# --------------------------------------------------------------- containers

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
    args = ["create", "--name", host.name, "--hostname", host.name, "--label", f"{LABEL}={spec.inventory}",
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


EGRESS_TABLE = "archive-dr-lab-egress"


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
    key = spec.state_dir / "ssh" / "id_ed25519"
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


# -------------------------------------------------------------------- verbs

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


def write_state(spec: LabSpec, tags: dict[str, str]) -> None:
    state = {"inventory": str(spec.inventory), "images": tags,
             "hosts": {h.name: {"mgmt": str(h.mgmt_address)} for h in spec.hosts}}
    (spec.state_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")


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
    for leftover in ["disks", "staging", "state.json", "apt-mirror", "apt-sources.list"]:
        path = spec.state_dir / leftover
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    print("lab down: done", flush=True)


def status(spec: LabSpec) -> list[dict]:
    rows = []
    for host in spec.hosts:
        info = container_state(host.name)
        state = "absent" if info is None else info["State"]["Status"]
        disks = []
        for disk in host.disks:
            device = loop_for(disk_file(spec, host, disk))
            disks.append(f"{disk.name}={device or '-'}({disk.size // 2**20}M)")
        rows.append({"host": host.name, "site": host.site, "state": state,
                     "mgmt": str(host.mgmt_address),
                     "addresses": " ".join(f"{i.name}={i.address}" for i in host.interfaces),
                     "disks": " ".join(disks) or "-"})
    return rows


def format_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


SMOKE_UNITS = re.compile(r"^(postgresql@|pgbackrest|restic|archive-dr|strongswan|chrony|nftables|ssh\.|smartd|srv-)")


def ssh(spec: LabSpec, host: HostSpec, command: str, timeout: int = 20,
        connect_timeout: int = 5) -> subprocess.CompletedProcess:
    key = spec.state_dir / "ssh" / "id_ed25519"
    return run(["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", f"ConnectTimeout={connect_timeout}", "-o", "LogLevel=ERROR",
                f"root@{host.mgmt_address}", command], check=False, timeout=timeout)


def smoke(spec: LabSpec) -> tuple[list[dict], bool]:
    """What runs where: active archive-dr units per host, failed units, LAN reachability."""
    rows, healthy = [], True
    for host in spec.hosts:
        proc = ssh(spec, host, "systemctl list-units --no-legend --plain --state=active "
                               "--type=service,timer,mount; echo ---; systemctl --failed --no-legend --plain")
        if proc.returncode != 0:
            rows.append({"host": host.name, "site": host.site, "running": "UNREACHABLE", "failed": "-"})
            healthy = False
            continue
        active, _, failed = proc.stdout.partition("---")
        units = sorted({line.split()[0] for line in active.splitlines()
                        if line.strip() and SMOKE_UNITS.match(line.split()[0])})
        failed_units = [line.split()[0] for line in failed.splitlines() if line.strip()]
        healthy &= not failed_units
        rows.append({"host": host.name, "site": host.site, "running": " ".join(units) or "-",
                     "failed": " ".join(failed_units) or "none"})
    return rows, healthy
