"""Filters for the site_gateway role: validate the tunnel model, expand flows.

Pure Python (ipaddress); unit-tested in tests/unit/test_site_gateway_model.py.
The same checks as module_utils/vendor_firewall.build_model, for Linux gateways.
"""
from __future__ import annotations

import ipaddress
import re

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$")


def _net(value):
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None


def _addr(value):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def model_errors(sites, site_hosts, flows, local_site, auth="cert", has_psk=False, has_cert=False,
                 has_key=False, has_ca=False):
    """Every problem in the tunnel model, as plain sentences (never a secret value)."""
    errors = []
    if not isinstance(sites, dict) or len(sites) != 2:
        return [f"sites must name exactly two sites, got {sorted(sites or {})}"]
    if local_site not in sites:
        errors.append(f"this gateway's site {local_site!r} is not in sites {sorted(sites)}")
    nets = {}
    for name, site in sites.items():
        if not isinstance(site, dict) or _net(site.get("lan")) is None:
            errors.append(f"site {name}: lan {site.get('lan') if isinstance(site, dict) else site!r} "
                          "is not a network address (CIDR)")
            continue
        if _addr(site.get("wan")) is None:
            errors.append(f"site {name}: wan {site.get('wan')!r} is not an IP address")
        nets[name] = _net(site["lan"])
    if len(nets) == 2:
        (a, na), (b, nb) = nets.items()
        if na.overlaps(nb):
            errors.append(f"site subnets overlap: {a} {na} and {b} {nb}; the tunnel cannot route between them")
    hosts = {}
    for hname, haddr in (site_hosts or {}).items():
        ip = _addr(haddr)
        if ip is None:
            errors.append(f"host {hname}: {haddr!r} is not an IP address")
            continue
        hosts[hname] = next((s for s, n in nets.items() if ip in n), None)
    if not flows:
        errors.append("no flows declared: a tunnel gateway with no declared flow would pass nothing")
    seen = set()
    for i, flow in enumerate(flows or []):
        missing = [k for k in ("name", "src", "dst", "port", "proto") if k not in flow]
        if missing:
            errors.append(f"flow #{i} lacks {', '.join(missing)}: {flow}")
            continue
        name = str(flow["name"])
        if not NAME_RE.match(name) or name in seen:
            errors.append(f"flow name {name!r} is not a plain unique name")
        seen.add(name)
        for end in ("src", "dst"):
            if flow[end] not in hosts:
                errors.append(f"flow {name}: {end} {flow[end]!r} is not a known host "
                              f"(hosts: {', '.join(sorted(hosts)) or 'none'})")
            elif hosts[flow[end]] is None:
                errors.append(f"flow {name}: {end} {flow[end]} ({site_hosts[flow[end]]}) is in no site LAN")
        if str(flow["proto"]).lower() not in ("tcp", "udp"):
            errors.append(f"flow {name}: proto {flow['proto']!r} must be tcp or udp")
        try:
            port = int(flow["port"])
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            errors.append(f"flow {name}: port {flow['port']!r} out of range")
        s, d = hosts.get(flow["src"]), hosts.get(flow["dst"])
        if s is not None and s == d:
            errors.append(f"flow {name}: {flow['src']} and {flow['dst']} are both at {s}; it does not cross the tunnel")
    if auth == "psk":
        if not has_psk:
            errors.append("site_gateway_auth is psk but no pre-shared key is set (gateway_ipsec_psk in the vault)")
    elif auth == "cert":
        for ok, what in ((has_ca, "CA certificate (site_gateway_ca_cert)"),
                         (has_cert, f"certificate for site {local_site} (site_gateway_cert)"),
                         (has_key, f"private key for site {local_site} (site_gateway_cert_key)")):
            if not ok:
                errors.append(f"site_gateway_auth is cert but the {what} is missing; run `archive-dr secrets`")
    else:
        errors.append(f"site_gateway_auth {auth!r} must be cert or psk")
    return errors


def tunnel_flows(flows, site_hosts, sites, local_site):
    """Flows with addresses and direction ('out': src is at this site) and an nft-safe counter name."""
    nets = {name: ipaddress.ip_network(str(s["lan"])) for name, s in sites.items()}
    out = []
    for flow in flows:
        src, dst = str(site_hosts[flow["src"]]), str(site_hosts[flow["dst"]])
        src_site = next(s for s, n in nets.items() if ipaddress.ip_address(src) in n)
        out.append({
            "name": flow["name"], "src": flow["src"], "dst": flow["dst"],
            "src_addr": src, "dst_addr": dst,
            "port": int(flow["port"]), "proto": str(flow["proto"]).lower(),
            "direction": "out" if src_site == local_site else "in",
            "counter": "flow_" + re.sub(r"[^A-Za-z0-9_]", "_", str(flow["name"])),
        })
    return out


class FilterModule:
    def filters(self):
        return {"site_gateway_model_errors": model_errors, "site_gateway_flows": tunnel_flows}
