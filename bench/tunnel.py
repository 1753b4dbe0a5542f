#!/usr/bin/env python3
"""Bulk throughput through the site-to-site tunnel as a ratio of the WAN rate limit.

Runs iperf3 between the two gateways' LAN addresses (geo-fw 198.18.1.1 server,
miyun-fw client bound to 198.18.2.1), so the traffic takes the IPsec tunnel
(libipsec/ESP-in-UDP) and the WAN shaping. The gateways are used because the
default-deny policy forwards only the replication flows between LAN hosts; a
temporary input rule on geo-fw admits the test port from miyun-fw's LAN address
only, and is removed afterwards. The limit is read from the inventory
(site_gateway_wan_rate).

    .venv/bin/python bench/tunnel.py [--seconds 10] [--port 5299]

Last line: `tunnel/limit ratio: X.XX`.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time

from archive_dr import paths
from archive_dr.inventory import Inventory

sys.path.insert(0, str(paths.ROOT / "tests" / "lab"))
import tunnel_probe as tp  # noqa: E402


def wan_limit_bps() -> float:
    inventory = Inventory(paths.LAB_INVENTORY, vault=False)
    values = inventory.host_vars(inventory.hosts("gateways")[0], ["site_gateway_wan_rate"])
    rate = str(values.get("site_gateway_wan_rate")).lower()
    m = re.fullmatch(r"([\d.]+)\s*([kmg]?)bit", rate)
    if not m:
        raise SystemExit(f"cannot parse site_gateway_wan_rate {rate!r}")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--port", type=int, default=5299)
    args = ap.parse_args()
    if not tp.lab_up():
        print("lab is down", file=sys.stderr)
        return 2
    limit = wan_limit_bps()
    rule = (f'iifname "ipsec0" ip saddr 198.18.2.1 ip daddr 198.18.1.1 tcp dport {args.port} '
            f'accept comment "bench-tunnel"')
    tp.sh("geo-fw", f"nft insert rule inet baseline input {rule}", timeout=30)
    try:
        tp.sh("geo-fw", f"iperf3 -s -1 -D -p {args.port} -B 198.18.1.1",
              timeout=30)
        time.sleep(0.5)
        r = tp.sh("miyun-fw", f"iperf3 -J -c 198.18.1.1 -B 198.18.2.1 -p {args.port} -t {args.seconds} -O 1",
                  timeout=args.seconds + 60)
        if r.returncode != 0:
            print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
            return 1
        res = json.loads(r.stdout)
        if "error" in res:
            print(f"iperf3: {res['error']}", file=sys.stderr)
            return 1
    finally:
        h = tp.sh("geo-fw", "nft -a list chain inet baseline input | sed -n 's/.*bench-tunnel.*# handle //p'")
        for handle in h.stdout.split():
            tp.sh("geo-fw", f"nft delete rule inet baseline input handle {handle}")
    bps = res["end"]["sum_received"]["bits_per_second"]
    retr = res["end"]["sum_sent"].get("retransmits")
    print(f"WAN limit (site_gateway_wan_rate): {limit / 1e6:.1f} Mbit/s")
    print(f"iperf3 miyun-fw 198.18.2.1 -> geo-fw 198.18.1.1 through the tunnel, {args.seconds} s: "
          f"{bps / 1e6:.1f} Mbit/s received, {retr} retransmits")
    print(f"tunnel/limit ratio: {bps / limit:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
