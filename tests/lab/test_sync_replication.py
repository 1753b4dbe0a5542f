"""Synchronous replication that never stops the archive (issue 13 item 2, module_utils/sync_guard.py):
the lab runs replica_pg_synchronous: true. Commits at geo wait for miyun's standby; when the WAN is
cut the sync guard degrades to asynchronous after replica_pg_sync_degrade_after seconds, so the
waiting commit completes; when the WAN is back the guard returns to synchronous."""
from __future__ import annotations

import json
import time

from tests.lab.labkit import sh, try_sh, wait_for

GEO, GEO_FW = "geo-archive", "geo-fw"
GUARD = "python3 /usr/local/lib/archive-dr/sync_guard.py status"
PSQL = "runuser -u postgres -- psql -XAtq -d postgres -c %s"


def guard_status():
    return json.loads(sh(GEO, GUARD).stdout)


def test_commits_wait_for_miyun_and_a_wan_cut_degrades_instead_of_blocking():
    st = wait_for("the guard in sync mode", lambda: (lambda s: s if s["mode"] == "sync" else None)(guard_status()), 120)
    assert st["effective"]["sync_state"] == "sync", st
    rows = sh(GEO, PSQL % "\"select application_name, sync_state from pg_stat_replication\"").stdout.split()
    assert "miyun_store|sync" in rows, rows
    sh(GEO, PSQL % "'create table if not exists sync_probe(t timestamptz)'")
    degraded_before = st.get("degraded_total", 0)
    cut = time.time()
    sh(GEO_FW, "ip link set wan0 down")
    try:
        # a commit during the cut waits for the standby until the guard degrades, then completes
        r = try_sh(GEO, PSQL % "'insert into sync_probe values (now())'", timeout=120)
        waited = time.time() - cut
        assert r.returncode == 0, r.stderr
        st = guard_status()
        assert st["mode"] == "degraded" and st.get("degraded_total", 0) == degraded_before + 1, st
        quick = time.time()
        sh(GEO, PSQL % "'insert into sync_probe values (now())'")
        print("\nWAN cut: the first commit waited %.1f s (degrade after %s s), the next took %.2f s"
              % (waited, st.get("degrade_after", "?"), time.time() - quick))
    finally:
        sh(GEO_FW, "ip link set wan0 up")
    back = time.time()
    wait_for("the guard back in sync mode", lambda: guard_status()["mode"] == "sync", 240)
    print("WAN back: synchronous again after %.1f s" % (time.time() - back))
    sh(GEO, PSQL % "'drop table sync_probe'")
    log = sh(GEO, "journalctl -u archive-dr-sync-guard --since @%d -o cat --no-pager" % int(cut)).stdout
    assert "sync -> degraded" in log and "degraded -> sync" in log, log[-2000:]
