"""The lab's podman networks: management (NAT, SSH from the controller), the site LANs and the WAN."""
from __future__ import annotations

import json

from archive_dr.lab.machine import podman
from archive_dr.lab.spec import LABEL, LabSpec

# nftables table that keeps hosts without internet from reaching it through the management NAT.
EGRESS_TABLE = "archive-dr-lab-egress"


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
