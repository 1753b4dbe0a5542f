#!/usr/bin/env python3
"""Commit cost of synchronous replication, measured in one run against the running lab.

geo-archive's sync guard must be in sync mode (replica_pg_synchronous: true, as the lab sets it):
synchronous_standby_names names miyun_store and pg_stat_replication shows it as the `sync` standby;
otherwise the bench stops and says so. Then, in one run:

1. the WAN's round trip: TCP handshakes from miyun-store to geo-archive's PostgreSQL port, the
   replication flow itself (the gateways forward only the declared flows, so no ping crosses the
   tunnel), p50 of --pings;
2. pgbench at geo-archive in its own database `sync_bench` (created, `pgbench -i -s 1`, dropped
   afterwards), -c 4 -j 2 -T --seconds twice: once with `PGOPTIONS=-c synchronous_commit=local`
   (asynchronous: the commit waits for geo's disk only) and once with `-c synchronous_commit=on`
   (or remote_apply, --sync-commit; default: the server's setting), which waits for miyun. The guard
   must still be in sync mode after the sync run, or the figures are void.

    .venv/bin/python bench/sync_commit.py [--seconds 20] [--pings 20] [--sync-commit on|remote_apply]

The last four lines are `sync tps: X`, `async tps: Y`, `sync/async tps ratio: R`, `wan rtt ms: Z`.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

from archive_dr import paths
from archive_dr.inventory import Inventory
from rpo import ENV, GEO, MIYUN, pct, sh  # bench/rpo.py, next to this file: podman exec into the lab

STANDBY = "miyun_store"                    # the standby's application_name (roles/replica primary_conninfo)
DB = "sync_bench"
PGBIN = "/usr/lib/postgresql/15/bin"
FIBRE_KM_PER_MS = 200.0                    # light in glass: about 200 km per millisecond

RTT = r"""
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(n):
    t = time.perf_counter()
    s = socket.create_connection((host, port), timeout=5)   # returns after the SYN-ACK: one round trip
    print("%.6f" % ((time.perf_counter() - t) * 1000), flush=True)
    s.close()
    time.sleep(0.05)
"""


def psql(sql, options=""):
    env = "env PGOPTIONS='%s' " % options if options else ""
    return sh(GEO, "runuser -u postgres -- %spsql -XAtq -c \"%s\"" % (env, sql)).strip()


def sync_mode():
    """(synchronous_standby_names, the standby's sync_state) at geo-archive now."""
    names = psql("SHOW synchronous_standby_names")
    state = psql("SELECT coalesce((SELECT sync_state FROM pg_stat_replication WHERE application_name = '%s' "
                 "ORDER BY state = 'streaming' DESC LIMIT 1), 'not connected')" % STANDBY)
    return names, state


def require_sync(when):
    names, state = sync_mode()
    if not names or state != "sync":
        raise SystemExit(
            "%s: geo-archive is not in synchronous mode (synchronous_standby_names %r, %s sync_state %r). The sync "
            "guard names the standby only while it streams and is caught up: check replica_pg_synchronous (the lab "
            "sets true), converge playbooks/replica.yml, and see `podman exec geo-archive python3 "
            "/usr/local/lib/archive-dr/sync_guard.py status` and `journalctl -u archive-dr-sync-guard`."
            % (when, names, STANDBY, state))
    return names


def wan_rtt_ms(n):
    geo = Inventory(paths.LAB_INVENTORY, vault=False).host_vars(GEO, ["lan_address"])["lan_address"]
    r = subprocess.run(["podman", "exec", MIYUN, "python3", "-c", RTT, str(geo), "5432", str(n)], env=ENV,
                       capture_output=True, text=True, timeout=30 + 6 * n)
    samples = [float(x) for x in r.stdout.split()]
    if r.returncode or not samples:
        raise RuntimeError("%s -> %s:5432 handshakes failed: %s" % (MIYUN, geo, r.stderr.strip()[-300:]))
    return pct(samples, 50), samples, geo


def pgbench(commit, seconds, clients, jobs):
    """(tps, latency ms, the session's synchronous_commit as the server saw it) for one pgbench run."""
    options = "-c synchronous_commit=%s" % commit
    seen = psql("SHOW synchronous_commit", options)
    out = sh(GEO, "runuser -u postgres -- env PGOPTIONS='%s' %s/pgbench -n -c %d -j %d -T %d %s 2>&1"
             % (options, PGBIN, clients, jobs, seconds, DB), timeout=seconds + 120)
    tps = re.search(r"^tps = ([\d.]+)", out, re.M)
    lat = re.search(r"^latency average = ([\d.]+) ms", out, re.M)
    if not tps:
        raise RuntimeError("pgbench (%s): no tps in its output: %s" % (commit, out[-500:]))
    return float(tps.group(1)), float(lat.group(1)) if lat else float("nan"), seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=20, help="pgbench -T of each run (default 20)")
    ap.add_argument("--pings", type=int, default=20, help="TCP handshakes for the RTT (default 20)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sync-commit", choices=["on", "remote_apply"],
                    help="synchronous_commit of the sync run (default: the server's, on unless remote_apply)")
    a = ap.parse_args()
    t0 = time.time()
    names = require_sync("before the bench")
    server = psql("SHOW synchronous_commit")
    sync_commit = a.sync_commit or (server if server in ("on", "remote_apply") else "on")
    rtt, samples, geo = wan_rtt_ms(a.pings)
    psql("DROP DATABASE IF EXISTS %s" % DB)
    psql("CREATE DATABASE %s" % DB)
    try:
        sh(GEO, "runuser -u postgres -- env PGOPTIONS='-c synchronous_commit=local' %s/pgbench -q -i -s 1 %s "
                ">/dev/null 2>&1" % (PGBIN, DB), timeout=300)
        async_tps, async_lat, async_seen = pgbench("local", a.seconds, a.clients, a.jobs)
        require_sync("before the sync run")
        sync_tps, sync_lat, sync_seen = pgbench(sync_commit, a.seconds, a.clients, a.jobs)
        require_sync("after the sync run (the guard degraded during it: the sync figure is void)")
    finally:
        sh(GEO, "runuser -u postgres -- psql -XAtq -c 'DROP DATABASE IF EXISTS %s'" % DB, check=False)
    print("geo-archive synchronous_standby_names = %s, server synchronous_commit = %s" % (names, server))
    print("WAN round trip %s -> %s:5432 (TCP handshake over the tunnel): %d samples, p50 %.3f ms, min %.3f ms, "
          "max %.3f ms" % (MIYUN, geo, len(samples), rtt, min(samples), max(samples)))
    print("(the production WAN's ~67 km of fibre alone add about %.2f ms to a round trip)" % (2 * 67 / FIBRE_KM_PER_MS))
    print("pgbench -c %d -j %d -T %d, database %s (scale 1):" % (a.clients, a.jobs, a.seconds, DB))
    print("  %-7s %-20s %10s %16s" % ("run", "synchronous_commit", "tps", "latency avg ms"))
    print("  %-7s %-20s %10.1f %16.3f" % ("async", async_seen, async_tps, async_lat))
    print("  %-7s %-20s %10.1f %16.3f" % ("sync", sync_seen, sync_tps, sync_lat))
    print("  latency added per transaction by waiting for miyun: %.3f ms (WAN RTT p50 %.3f ms)"
          % (sync_lat - async_lat, rtt))
    print("bench took %.0f s" % (time.time() - t0))
    print("sync tps: %.1f" % sync_tps)
    print("async tps: %.1f" % async_tps)
    print("sync/async tps ratio: %.2f" % (sync_tps / async_tps if async_tps else float("nan")))
    print("wan rtt ms: %.3f" % rtt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
