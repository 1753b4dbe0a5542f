"""Site-to-site tunnel in the running lab (roles/site_gateway, playbooks/tunnel.yml).

    .venv/bin/pytest -m lab tests/lab/test_tunnel.py -v

Skipped when the lab is down. Bounded: every probe has a timeout; the whole file
takes about 3-4 minutes (two converges, one check run, two gateway restarts, bench).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from archive_dr.paths import ROOT
from tests.lab import tunnel_probe as tp
from tests.lab.labkit import play_recap

MARKER = "ARCHIVE-DR-TUNNEL-MARKER-5e1c"


def play(*extra, timeout=600):
    return play_recap("tunnel.yml", *extra, timeout=timeout)


def test_converge_then_idempotent_and_check_clean():
    r, recap = play()
    assert r.ok, r.stdout[-3000:]
    if any(v["changed"] for v in recap.values()):
        r, recap = play()
    assert r.ok, r.stdout[-3000:]
    assert set(recap) == {"geo-fw", "miyun-fw"}
    assert all(v["changed"] == 0 for v in recap.values()), recap
    r, recap = play("--check", "--diff")
    assert r.ok, r.stdout[-3000:]
    assert all(v["changed"] == 0 for v in recap.values()), recap


def test_tunnel_facts_and_metrics():
    for gw in ("geo-fw", "miyun-fw"):
        st = tp.tunnel_status(gw)
        assert st["up"] and st["ike_state"] == "ESTABLISHED", st
        assert st["certs"]["local"]["days_left"] > 30
        tp.sh(gw, "systemctl start archive-dr-tunnel-metrics.service")
        prom = tp.sh(gw, "cat /var/lib/prometheus/node-exporter/tunnel.prom").stdout
        assert re.search(r'^archive_dr_tunnel_up\{.*\} 1$', prom, re.M), prom
        assert re.search(r'^archive_dr_tunnel_cert_not_after_seconds\{.*cert="local"\} \d+$', prom, re.M)
        facts = json.loads(tp.sh(gw, "cat /var/lib/archive-dr/tunnel.json").stdout)
        assert facts["child_sas"] >= 1


def test_wan_carries_only_ike_and_esp_in_udp_and_no_marker():
    tp.sh("geo-fw", "rm -f /tmp/t-wan.pcap /tmp/t-lan.pcap; "
          "(timeout 8 tcpdump -ni wan0 -U -w /tmp/t-wan.pcap >/dev/null 2>&1 &); "
          "(timeout 8 tcpdump -ni lan0 -U -w /tmp/t-lan.pcap >/dev/null 2>&1 &)")
    time.sleep(1.5)
    r = tp.sh("miyun-store", f"timeout 3 bash -c 'exec 3<>/dev/tcp/{tp.GEO_ARCHIVE}/5432; "
              f"echo {MARKER} >&3; sleep 0.5'")
    assert r.returncode == 0, "declared flow pg-stream must connect to carry the marker"
    time.sleep(7.5)
    out = tp.sh("geo-fw", "for f in wan lan; do "
                "echo $f $(tcpdump -r /tmp/t-$f.pcap 2>/dev/null | wc -l) "
                "$(tcpdump -r /tmp/t-$f.pcap 'ip and not (udp port 500 or udp port 4500)' 2>/dev/null | wc -l) "
                f"$(grep -c {MARKER} /tmp/t-$f.pcap); done").stdout.split()
    res = {out[i]: tuple(map(int, out[i + 1:i + 4])) for i in range(0, len(out), 4)}
    wan_total, wan_other_ip, wan_marker = res["wan"]
    assert wan_total > 0, "the WAN capture saw the tunnel traffic"
    assert wan_other_ip == 0, "only IKE / ESP-in-UDP (udp 500/4500) on the WAN"
    assert wan_marker == 0, "the marker must not appear in clear on the WAN"
    assert res["lan"][2] >= 1, "positive control: the marker is in clear on the geo LAN"


def test_declared_flow_connects_and_counts():
    before = tp.counter("miyun-fw", "flow_pg_stream"), tp.counter("geo-fw", "flow_pg_stream")
    assert tp.connects("miyun-store", tp.GEO_ARCHIVE, 5432)
    after = tp.counter("miyun-fw", "flow_pg_stream"), tp.counter("geo-fw", "flow_pg_stream")
    assert after[0] > before[0] and after[1] > before[1]


def test_declared_ssh_flows_cross_both_gateways():
    # miyun-store -> geo-archive/geo-backup tcp 22: the gateways pass the SYN (flow counters on
    # both sides), and the destination's own input policy lets the replica's pulls in (site.yml
    # converged the replica role), so the handshake completes.
    for flow, dst in (("flow_archive_pull", tp.GEO_ARCHIVE), ("flow_backup_pull", tp.GEO_BACKUP)):
        before = tp.counter("miyun-fw", flow), tp.counter("geo-fw", flow)
        assert tp.connects("miyun-store", dst, 22, wait=3.0), "%s: no TCP handshake with %s:22" % (flow, dst)
        after = tp.counter("miyun-fw", flow), tp.counter("geo-fw", flow)
        assert after[0] > before[0] and after[1] > before[1], (flow, before, after)


@pytest.mark.parametrize("src,dst,port,gw,why", [
    ("miyun-store", tp.GEO_ARCHIVE, 8080, "miyun-fw", "other port"),
    ("miyun-store", tp.GEO_BACKUP, 5432, "miyun-fw", "other host for that port"),
    ("geo-archive", tp.MIYUN_STORE, 22, "geo-fw", "reverse direction"),
    ("geo-backup", tp.MIYUN_STORE, 5432, "geo-fw", "reverse direction, other host"),
])
def test_undeclared_flow_dropped_and_counted(src, dst, port, gw, why):
    before = tp.counter(gw, "tunnel_dropped")
    assert not tp.connects(src, dst, port, wait=2.0), why
    assert tp.counter(gw, "tunnel_dropped") > before, why


def test_drops_are_logged_to_nflog():
    tp.sh("miyun-fw", "rm -f /tmp/t-nflog.txt; (timeout 6 tcpdump -lni nflog:5 -c 1 > /tmp/t-nflog.txt 2>/dev/null &)")
    time.sleep(1.5)
    assert not tp.connects("miyun-store", tp.GEO_ARCHIVE, 8081, wait=1.5), "undeclared port 8081 must be dropped"
    time.sleep(1)
    assert re.search(rf"{tp.MIYUN_STORE}\.\d+ > {tp.GEO_ARCHIVE}\.8081", tp.sh("miyun-fw", "cat /tmp/t-nflog.txt").stdout)


@pytest.mark.parametrize("gw", ["geo-fw", "miyun-fw"])
def test_restart_gateway_tunnel_comes_back(gw):
    res = tp.restart_and_time(gw, timeout=90)
    print(json.dumps(res))
    assert res["traffic_after_restart_command_s"] is not None, res
    assert res["traffic_after_restart_command_s"] < 60, res


def test_bench_ratio():
    r = subprocess.run([sys.executable, str(ROOT / "bench/tunnel.py"), "--seconds", "8"], capture_output=True,
                       text=True, timeout=180, env=tp.ENV)
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"tunnel/limit ratio: (\d+\.\d\d)", last)
    assert m, last
    assert float(m.group(1)) >= 0.85, r.stdout
