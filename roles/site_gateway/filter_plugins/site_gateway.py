"""Filters for the site_gateway role: the tunnel model of module_utils/vendor_firewall.py for
the Linux gateways, and their nftables ruleset rendered from it.

Vendor devices (library/vendor_firewall.py) and the Linux gateways read one model
(``vendor_firewall.tunnel_model``): the same checks, the same messages, the same flow
directions. module_utils/ is found relative to this file (roles/site_gateway/filter_plugins/),
as filter_plugins/inventory_checks.py finds it. Pure Python; unit-tested in
tests/unit/test_site_gateway_model.py.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

_NAME = "archive_dr_vendor_firewall"
if _NAME in sys.modules:
    _vf = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).resolve().parents[3] / "module_utils" / "vendor_firewall.py")
    _vf = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _vf
    _spec.loader.exec_module(_vf)

PSK_MIN_LENGTH = _vf.PSK_MIN_LENGTH
BACKENDS = ("kernel", "libipsec")


def model_errors(sites, site_hosts, flows, local_site, auth="cert", psk="", has_cert=False,
                 has_key=False, has_ca=False):
    """Every problem in the tunnel model and the gateway's credentials, as plain sentences
    (never a secret value)."""
    _, errors = _vf.tunnel_model(local_site, sites, site_hosts, flows)
    if auth == "psk":
        errors += _vf.psk_errors(psk)
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
    """The model's flows for nftables: addresses, direction ('out': src is at this site) and
    an nft-safe counter name. Raises on a model with errors (validate.yml checks it first)."""
    model, errors = _vf.tunnel_model(local_site, sites, site_hosts, flows)
    if errors:
        raise ValueError("; ".join(errors))
    return [{
        "name": f["name"], "src": f["src"]["name"], "dst": f["dst"]["name"],
        "src_addr": f["src"]["address"], "dst_addr": f["dst"]["address"],
        "port": f["port"], "proto": f["proto"],
        "direction": "out" if f["direction"] == "outbound" else "in",
        "counter": "flow_" + re.sub(r"[^A-Za-z0-9_]", "_", str(f["name"])),
    } for f in model["flows"]]


def gateway_ruleset(sites, site_hosts, flows, local_site, lan_interface, wan_interface,
                    backend="kernel", libipsec_interface="ipsec0", nflog_group=5, tcp_mss=1360,
                    base_table="baseline"):
    """The gateway's nftables drop-in: IKE from the peer in the base table's input chain, and
    ``table inet site_gateway`` (default-deny forward, only the declared flows, MSS clamp,
    nothing for the peer LAN or from the LAN on the WAN in clear)."""
    if backend not in BACKENDS:
        raise ValueError(f"site_gateway_ipsec_backend {backend!r} must be one of {', '.join(BACKENDS)}")
    peer = next(s for s in sites if s != local_site)
    local_lan, peer_lan, peer_wan = sites[local_site]["lan"], sites[peer]["lan"], sites[peer]["wan"]
    lan, wan = f'"{lan_interface}"', f'"{wan_interface}"'
    libipsec = backend == "libipsec"
    t_in = f'iifname "{libipsec_interface}"' if libipsec else "meta ipsec exists"
    t_out = f'oifname "{libipsec_interface}"' if libipsec else "rt ipsec exists"
    t_out_missing = f'oifname != "{libipsec_interface}"' if libipsec else "rt ipsec missing"
    nflog = f"group {nflog_group}"
    mss = f"tcp flags syn / syn,rst tcp option maxseg size > {tcp_mss} tcp option maxseg size set {tcp_mss}"
    rows = tunnel_flows(flows, site_hosts, sites, local_site)

    out = ["# Site gateway policy. Loaded by /etc/nftables.conf after the base policy."]
    if base_table:
        out.append("# IKE (and NAT-T / UDP-encapsulated ESP) from the peer gateway only.")
        out.append(f"add rule inet {base_table} input iifname {wan} ip saddr {peer_wan} udp dport {{ 500, 4500 }} accept")
        if not libipsec:
            out.append(f"add rule inet {base_table} input iifname {wan} ip saddr {peer_wan} ip protocol esp accept")
    out += ["", "table inet site_gateway {"]
    out += [f'  counter {f["counter"]} {{ comment "{f["src"]} -> {f["dst"]} {f["proto"]}/{f["port"]}" }}'
            for f in rows]
    out += [
        '  counter tunnel_dropped { comment "undeclared traffic to or from the tunnel" }',
        '  counter clear_dropped { comment "LAN traffic that would leave unencrypted" }',
        '  counter forward_dropped { comment "any other forwarded traffic" }',
        '  counter ike_foreign_dropped { comment "IKE from an address that is not the peer gateway" }',
        "",
        "  chain input {",
        "    type filter hook input priority filter - 10; policy accept;",
        f'    iifname {wan} ip saddr != {peer_wan} udp dport {{ 500, 4500 }} counter name ike_foreign_dropped'
        f' log prefix "site_gateway ike: " {nflog} drop',
        "  }",
        "",
        "  chain forward {",
        "    type filter hook forward priority filter; policy drop;",
        "    # Clamp TCP MSS to the tunnel MTU, both ways.",
        f"    {t_out} {mss}",
        f"    {t_in} {mss}",
        "    ct state invalid counter name forward_dropped drop",
        "    # Replies of connections a declared flow opened.",
        f"    iifname {lan} {t_out} ip saddr {local_lan} ip daddr {peer_lan} ct state established,related accept",
        f"    {t_in} oifname {lan} ip saddr {peer_lan} ip daddr {local_lan} ct state established,related accept",
        "    # Declared flows (new connections from src to dst only).",
    ]
    for f in rows:
        match = (f'ip saddr {f["src_addr"]} ip daddr {f["dst_addr"]} {f["proto"]} dport {f["port"]} '
                 f'ct state new counter name {f["counter"]} accept')
        way = f"iifname {lan} {t_out}" if f["direction"] == "out" else f"{t_in} oifname {lan}"
        out.append(f"    {way} {match}")
    out += [
        f'    {t_in} counter name tunnel_dropped log prefix "site_gateway tunnel-in: " {nflog} drop',
        f'    {t_out} counter name tunnel_dropped log prefix "site_gateway tunnel-out: " {nflog} drop',
        f'    ip daddr {peer_lan} counter name clear_dropped log prefix "site_gateway clear: " {nflog} drop',
        f'    counter name forward_dropped log prefix "site_gateway forward: " {nflog} drop',
        "  }",
        "",
        "  chain postrouting {",
        "    type filter hook postrouting priority filter; policy accept;",
        "    # Nothing for the peer LAN, and nothing from our LAN on the WAN, unencrypted.",
        f'    ip daddr {peer_lan} {t_out_missing} counter name clear_dropped log prefix "site_gateway clear: "'
        f' {nflog} drop',
        f'    oifname {wan} ip saddr {local_lan} {"" if libipsec else "rt ipsec missing "}counter name clear_dropped'
        f' log prefix "site_gateway clear: " {nflog} drop',
        "  }",
        "}",
    ]
    return "\n".join(out) + "\n"


class FilterModule:
    def filters(self):
        return {
            "site_gateway_model_errors": model_errors,
            "site_gateway_flows": tunnel_flows,
            "site_gateway_ruleset": gateway_ruleset,
        }
