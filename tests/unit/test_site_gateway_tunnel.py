"""The site gateway's tunnel helper (roles/site_gateway/files/archive_dr_tunnel.py): VICI
message coding, facts from the SAs, the watch decision, the Prometheus output. No network."""
from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import pytest

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)
_spec = importlib.util.spec_from_file_location(
    "archive_dr_tunnel", ROOT / "roles" / "site_gateway" / "files" / "archive_dr_tunnel.py")
tunnel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tunnel)

CONF = {"conn": "archive-dr", "child": "lan-lan", "site": "geo", "peer": "miyun", "initiator": True,
        "backend": "kernel", "auth": "cert", "kick_after": 5, "kick_window": 120,
        "state_dir": "/var/lib/archive-dr", "metrics_dir": "/var/lib/archive-dr/metrics", "certs": {}}


def _key(name: str, value: str) -> bytes:
    return struct.pack("!BB", 3, len(name)) + name.encode() + struct.pack("!H", len(value)) + value.encode()


def _section(name: str, body: bytes) -> bytes:
    return struct.pack("!BB", 1, len(name)) + name.encode() + body + bytes([2])


def _list(name: str, items: list[str]) -> bytes:
    out = struct.pack("!BB", 4, len(name)) + name.encode()
    for item in items:
        out += bytes([5]) + struct.pack("!H", len(item)) + item.encode()
    return out + bytes([6])


def test_encoded_request_decodes_to_the_same_keys():
    assert tunnel._dec_msg(tunnel._enc_msg({"ike": "archive-dr", "timeout": 10})) == \
        {"ike": "archive-dr", "timeout": "10"}


def test_a_list_sa_event_decodes_with_sections_and_lists():
    child = _section("lan-lan-7", _key("name", "lan-lan") + _key("state", "INSTALLED")
                     + _key("bytes-in", "100") + _list("local-ts", ["198.18.1.0/24"]))
    event = _section("archive-dr", _key("state", "ESTABLISHED") + _key("established", "42")
                     + _section("child-sas", child))
    sa = tunnel._dec_msg(event)["archive-dr"]
    assert sa["state"] == "ESTABLISHED"
    assert sa["child-sas"]["lan-lan-7"]["local-ts"] == ["198.18.1.0/24"]
    assert sa["child-sas"]["lan-lan-7"]["bytes-in"] == "100"


def _sa(state="ESTABLISHED", established="30", children=None):
    return {"archive-dr": {"state": state, "established": established, "child-sas": children or {}}}


def _child(name="lan-lan", state="INSTALLED", install="12", **counts):
    return {"name": name, "state": state, "install-time": install,
            **{k.replace("_", "-"): str(v) for k, v in counts.items()}}


def test_facts_count_only_the_installed_children_of_our_connection():
    sas = [_sa(children={"a": _child(bytes_in=100, bytes_out=50, packets_in=2, packets_out=1),
                         "b": _child(install="3", bytes_in=7),
                         "c": _child(state="REKEYING", bytes_in=999),
                         "d": _child(name="other", bytes_in=999)}),
           {"someone-else": {"state": "ESTABLISHED", "child-sas": {"x": _child(bytes_in=5)}}}]
    f = tunnel.sa_facts(CONF, sas, daemon_up=True, now=1000)
    assert (f["up"], f["child_sas"], f["bytes_in"], f["bytes_out"]) == (True, 2, 107, 50)
    assert (f["ike_state"], f["ike_established_seconds"], f["child_installed_seconds"]) == ("ESTABLISHED", 30, 3)
    assert (f["daemon"], f["time"], f["site"], f["peer"]) == ("up", 1000, "geo", "miyun")


def test_an_established_sa_wins_over_a_connecting_one_and_the_youngest_age_counts():
    f = tunnel.sa_facts(CONF, [_sa(state="CONNECTING"), _sa(established="90"), _sa(established="15")],
                        daemon_up=True, now=0)
    assert (f["ike_state"], f["ike_established_seconds"], f["up"]) == ("ESTABLISHED", 15, False)


def test_no_daemon_means_no_tunnel():
    f = tunnel.sa_facts(CONF, [], daemon_up=False, now=0)
    assert (f["daemon"], f["ike_state"], f["up"], f["child_sas"]) == ("down", "none", False, 0)


@pytest.mark.parametrize("initiator, daemon, up, ike_state, uptime, expected", [
    (True, "up", False, "none", None, True),          # the initiator always brings it up
    (True, "up", True, "ESTABLISHED", None, False),   # already up
    (True, "up", False, "CONNECTING", None, False),   # on its way
    (True, "up", False, "REKEYING", None, False),
    (True, "down", False, "none", None, False),       # no daemon to ask
    (False, "up", False, "none", 4.0, False),         # responder: too soon after its restart
    (False, "up", False, "none", 5.0, True),          # responder: inside the kick window
    (False, "up", False, "none", 120.0, True),
    (False, "up", False, "none", 121.0, False),       # responder: long after, the initiator's job
    (False, "up", False, "none", None, False),        # responder: daemon not active
])
def test_watch_decision(initiator, daemon, up, ike_state, uptime, expected):
    facts = {"daemon": daemon, "up": up, "ike_state": ike_state}
    assert tunnel.should_initiate(dict(CONF, initiator=initiator), facts, uptime) is expected


def test_daemon_uptime_from_systemctl_show():
    show = "ActiveState=active\nActiveEnterTimestampMonotonic=10000000\n"
    assert tunnel.parse_uptime(show, monotonic_now=25.0) == pytest.approx(15.0)
    assert tunnel.parse_uptime("ActiveState=inactive\nActiveEnterTimestampMonotonic=0\n", 25.0) is None


def test_certificate_end_date_and_days_left():
    na = tunnel.parse_enddate("notAfter=Nov 26 22:30:00 2036 GMT\n")
    assert na == 2111351400
    assert tunnel.parse_enddate("notAfter=garbage") is None
    certs = tunnel.cert_facts({"local": ("/etc/swanctl/x509/geo.pem", na), "ca": ("/x", None)}, now=na - 86400 * 10)
    assert certs == {"local": {"path": "/etc/swanctl/x509/geo.pem", "not_after": na, "days_left": 10.0}}


def test_named_counters_from_nft_json():
    out = json.dumps({"nftables": [{"metainfo": {}},
                                   {"counter": {"name": "flow_pg_stream", "packets": 3, "bytes": 180}},
                                   {"counter": {"name": "tunnel_dropped"}}]})
    assert tunnel.parse_counters(out) == {"flow_pg_stream": {"packets": 3, "bytes": 180},
                                          "tunnel_dropped": {"packets": 0, "bytes": 0}}


def test_prometheus_textfile():
    f = tunnel.sa_facts(CONF, [_sa(children={"a": _child(bytes_in=100)})], daemon_up=True, now=1700000000)
    f["certs"] = {"local": {"path": "/p", "not_after": 2111351400, "days_left": 1.0}}
    f["counters"] = {"flow_pg_stream": {"packets": 3, "bytes": 180}}
    text = tunnel.prom(f)
    lab = 'conn="archive-dr",site="geo",peer="miyun"'
    assert text.endswith("\n")
    lines = text.splitlines()
    for line in (f"archive_dr_tunnel_up{{{lab}}} 1", f"archive_dr_tunnel_daemon_up{{{lab}}} 1",
                 f"archive_dr_tunnel_child_sas{{{lab}}} 1", f"archive_dr_tunnel_bytes_in{{{lab}}} 100",
                 f"archive_dr_tunnel_ike_sa_age_seconds{{{lab}}} 30",
                 f"archive_dr_tunnel_child_sa_age_seconds{{{lab}}} 12",
                 f'archive_dr_tunnel_cert_not_after_seconds{{{lab},cert="local"}} 2111351400',
                 f'archive_dr_tunnel_nft_packets_total{{{lab},counter="flow_pg_stream"}} 3',
                 f"archive_dr_tunnel_facts_time_seconds{{{lab}}} 1700000000"):
        assert line in lines
    # every sample has its HELP and TYPE
    names = {ln.split("{")[0] for ln in lines if not ln.startswith("#")}
    assert all(f"# TYPE {n} " in text and f"# HELP {n} " in text for n in names)


def test_no_age_lines_without_an_sa():
    text = tunnel.prom(tunnel.sa_facts(CONF, [], daemon_up=False, now=0))
    assert "archive_dr_tunnel_ike_sa_age_seconds{" not in text
    assert "archive_dr_tunnel_child_sa_age_seconds{" not in text
    assert 'archive_dr_tunnel_up{conn="archive-dr",site="geo",peer="miyun"} 0' in text


def test_settings_file_missing_a_key_is_named(tmp_path):
    path = tmp_path / "tunnel.json"
    path.write_text(json.dumps({k: v for k, v in CONF.items() if k != "kick_window"}))
    with pytest.raises(ValueError, match="missing kick_window"):
        tunnel.load_conf(str(path))
    path.write_text(json.dumps(CONF))
    assert tunnel.load_conf(str(path)) == CONF


def test_unknown_command_prints_usage_without_reading_settings(capsys, monkeypatch):
    monkeypatch.setenv("ARCHIVE_DR_TUNNEL_CONF", "/nonexistent/tunnel.json")
    assert tunnel.main(["archive-dr-tunnel", "bogus"]) == 2
    assert "archive-dr-tunnel status" in capsys.readouterr().err
