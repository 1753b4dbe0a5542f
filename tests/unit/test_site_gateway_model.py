"""The Linux gateways' side of the one tunnel model (roles/site_gateway/filter_plugins):
the checks and messages of module_utils/vendor_firewall.tunnel_model, flow directions, and the
nftables ruleset rendered from it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import vendor_firewall as vf  # module_utils/ is on the test path (pyproject.toml)

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)
_spec = importlib.util.spec_from_file_location(
    "site_gateway_filters", ROOT / "roles" / "site_gateway" / "filter_plugins" / "site_gateway.py")
sg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sg)

SITES = {"geo": {"lan": "198.18.1.0/24", "wan": "198.18.3.11"},
         "miyun": {"lan": "198.18.2.0/24", "wan": "198.18.3.21"}}
HOSTS = {"geo-archive": "198.18.1.11", "geo-backup": "198.18.1.12", "miyun-store": "198.18.2.21"}
FLOWS = [{"name": "pg-stream", "src": "miyun-store", "dst": "geo-archive", "port": 5432, "proto": "tcp"},
         {"name": "depot", "src": "miyun-store", "dst": "geo-backup", "port": 8080, "proto": "tcp"}]
CERTS = {"has_ca": True, "has_cert": True, "has_key": True}


def errors(**over):
    kw = dict(sites=SITES, site_hosts=HOSTS, flows=FLOWS, local_site="geo", auth="cert", **CERTS)
    kw.update(over)
    return sg.model_errors(**kw)


def test_valid_model_has_no_errors():
    assert errors() == []
    assert errors(auth="psk", psk="x" * vf.PSK_MIN_LENGTH) == []


def test_every_problem_at_once_in_the_vendor_modules_words():
    bad = errors(flows=[{"name": "same", "src": "geo-backup", "dst": "geo-archive", "port": 70000, "proto": "icmp"},
                        {"name": "ghost", "src": "miyun-ghost", "dst": "geo-archive", "port": 22, "proto": "tcp"}],
                 has_key=False)
    assert bad == [
        "flow same: proto 'icmp' must be tcp or udp",
        "flow same: port 70000 out of range",
        "flow same: geo-backup and geo-archive are both at geo; it does not cross the tunnel",
        "flow ghost: src 'miyun-ghost' is not a known host (site hosts: geo-archive, geo-backup, miyun-store)",
        "site_gateway_auth is cert but the private key for site geo (site_gateway_cert_key) is missing; "
        "run `archive-dr secrets`",
    ]


def test_vendor_devices_and_linux_gateways_refuse_the_same_model_with_the_same_words():
    sites = {"geo": SITES["geo"], "miyun": {"lan": "198.18.1.128/25", "wan": "198.18.3.21"}}
    with pytest.raises(vf.VendorFirewallError) as e:
        vf.build_model("huawei", "geo", sites, HOSTS, FLOWS, "GigabitEthernet1/0/1",
                       {"auth": "psk", "psk": "x" * 24}, {"ips": "a", "av": "b"})
    assert str(e.value) in errors(sites=sites)


@pytest.mark.parametrize("psk, ok", [("x" * (vf.PSK_MIN_LENGTH - 1), False), ("x" * vf.PSK_MIN_LENGTH, True),
                                     ("", False), ("with space and more than twenty", False)])
def test_one_psk_rule_for_every_gateway(psk, ok):
    found = errors(auth="psk", psk=psk)
    assert (found == []) is ok
    assert all(psk not in e for e in found if psk)
    assert (vf.psk_errors(psk) == []) is ok


def test_psk_minimum_is_one_constant():
    import inventory_checks as ic
    assert sg.PSK_MIN_LENGTH == ic.PSK_MIN_LENGTH == vf.PSK_MIN_LENGTH == 20


def test_flows_are_the_models_flows_with_direction_and_counter():
    flows = sg.tunnel_flows(FLOWS + [{"name": "x.y", "src": "geo-backup", "dst": "miyun-store",
                                      "port": "53", "proto": "UDP"}], HOSTS, SITES, "geo")
    assert [(f["direction"], f["counter"], f["proto"], f["port"]) for f in flows] == [
        ("in", "flow_pg_stream", "tcp", 5432), ("in", "flow_depot", "tcp", 8080), ("out", "flow_x_y", "udp", 53)]
    assert flows[0]["src_addr"] == "198.18.2.21" and flows[0]["dst_addr"] == "198.18.1.11"
    with pytest.raises(ValueError, match="does not cross the tunnel"):
        sg.tunnel_flows([dict(FLOWS[0], src="geo-backup")], HOSTS, SITES, "geo")


def test_kernel_ruleset():
    text = sg.gateway_ruleset(SITES, HOSTS, FLOWS, "geo", "lan0", "wan0")
    lines = text.splitlines()
    assert 'add rule inet baseline input iifname "wan0" ip saddr 198.18.3.21 udp dport { 500, 4500 } accept' in lines
    assert 'add rule inet baseline input iifname "wan0" ip saddr 198.18.3.21 ip protocol esp accept' in lines
    assert ('    meta ipsec exists oifname "lan0" ip saddr 198.18.2.21 ip daddr 198.18.1.11 tcp dport 5432 '
            'ct state new counter name flow_pg_stream accept') in lines
    assert '  counter flow_depot { comment "miyun-store -> geo-backup tcp/8080" }' in lines
    assert "    type filter hook forward priority filter; policy drop;" in lines
    assert ('    oifname "wan0" ip saddr 198.18.1.0/24 rt ipsec missing counter name clear_dropped '
            'log prefix "site_gateway clear: " group 5 drop') in lines
    assert text.endswith("}\n")


def test_libipsec_ruleset_at_the_other_site():
    text = sg.gateway_ruleset(SITES, HOSTS, FLOWS, "miyun", "lan0", "wan0", backend="libipsec",
                              nflog_group=7, tcp_mss=1300, base_table="")
    assert "add rule" not in text and "ipsec exists" not in text and "esp" not in text
    assert ('    iifname "lan0" oifname "ipsec0" ip saddr 198.18.2.21 ip daddr 198.18.1.11 tcp dport 5432 '
            'ct state new counter name flow_pg_stream accept') in text.splitlines()
    assert "maxseg size set 1300" in text and "group 7 drop" in text
    assert '    ip daddr 198.18.1.0/24 oifname != "ipsec0" counter name clear_dropped' in text


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="must be one of kernel, libipsec"):
        sg.gateway_ruleset(SITES, HOSTS, FLOWS, "geo", "lan0", "wan0", backend="xfrmi")
