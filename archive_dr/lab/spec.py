"""The lab's spec: hosts, networks and disks, read from the lab inventory and checked before anything is made."""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path

from archive_dr.errors import InventoryError, LabError
from archive_dr.inventory import Inventory

# Everything the lab makes carries this label (value: the inventory), so `down` removes exactly that.
LABEL = "archive-dr.lab"
NETWORK_PREFIX = "archive-dr-"
HOSTNAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
SIZE_RE = re.compile(r"^(\d+)([KMGT]?)$", re.IGNORECASE)
# What the spec reads: the lab's globals and each host's cabling. Only these are templated, and the
# inventory is read without the vault: `lab up` runs before any secret exists.
GLOBAL_VARS = ["sites", "lab_mgmt_subnet", "lab_mgmt_gateway", "lab_mgmt_mtu", "lab_wan_subnet", "lab_wan_rate",
               "lab_disk_size", "lab_internet_sites"]
HOST_VARS = ["ansible_host", "lan_address", "lan_interface", "wan_address", "wan_interface", "lab_disks"]


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
    inventory: list[Path]     # the ordered inventory sources
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


def load_spec(inventory: list[Path], state_dir: Path, overrides: dict | None = None) -> LabSpec:
    """The lab from its inventory (ordered sources), with the CLI's overrides; every bad input is one LabError."""
    overrides = overrides or {}
    sources = [Path(source) for source in inventory]
    try:
        inv = Inventory(sources, vault=False)
        names = inv.hosts()
        if not names:
            raise LabError(f"{inv.describe()}: no hosts")
        gvars = inv.group_vars("all", GLOBAL_VARS)
        host_vars = {name: inv.host_vars(name, HOST_VARS) for name in names}
    except InventoryError as exc:
        raise LabError(str(exc)) from None
    gvars.update({k: v for k, v in overrides.items() if v is not None})
    groups = inv.groups()
    sites = gvars.get("sites") or {}
    if not sites:
        raise LabError(f"{inv.describe()}: 'sites' is not defined in group_vars/all")

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
    # rebuilt by `lab destroy` never does (see lifecycle.destroy()).
    internet_sites = set(gvars.get("lab_internet_sites", list(sites)))
    hosts: list[HostSpec] = []
    for name in names:
        if not HOSTNAME_RE.match(name):
            raise LabError(f"invalid host name '{name}'")
        host_site = [g[len("site_"):] for g, members in groups.items()
                     if g.startswith("site_") and name in members]
        if len(host_site) != 1 or host_site[0] not in sites:
            raise LabError(f"host '{name}' must be in exactly one site_<name> group of a declared site")
        site = host_site[0]
        hvars = host_vars[name]
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
            gw_vars = host_vars.get(sites[site]["gateway_host"]) or {}
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
    return LabSpec(inventory=sources, state_dir=state_dir, mgmt_subnet=mgmt_subnet,
                   mgmt_gateway=mgmt_gateway, mgmt_mtu=int(gvars.get("lab_mgmt_mtu", 1500)),
                   networks=networks, wan_rate=wan_rate, hosts=hosts)
