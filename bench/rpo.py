#!/usr/bin/env python3
"""RPO of the replica services, measured in one run against the running lab.

1. pgbench load at geo-archive (own database, `replica_bench`) -> standby lag: the age of
   the newest transaction miyun has replayed (`db lag`), and for comparison the primary's
   pg_stat_replication.replay_lag, which waits for the standby's next status message.
2. files created at geo (a dot directory in the file store, removed afterwards) -> time
   until each is present in miyun's working copy (/srv/dr/files/current).
3. a 1 % change of the archive (new incompressible files worth 1 % of the file store)
   -> bytes that crossed the WAN (geo-fw wan0 rx+tx counters around one pull with the
   timer paused) / bytes changed.

    .venv/bin/python bench/rpo.py [--pgbench-seconds 20] [--files 20]

The last three lines are `db lag p99: X.XX s`, `file lag p99: X.XX s`, `wan/changed ratio: X.XX`.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import time

from archive_dr import paths

ENV = dict(os.environ, CONTAINERS_CONF=str(paths.CONTAINERS_CONF))
GEO, MIYUN, GEO_FW = "geo-archive", "miyun-store", "geo-fw"
STORE, WORKING = "/srv/archive", "/srv/dr/files/current"
BENCH_DIR = ".replica-bench"


def sh(host, script, timeout=300, check=True):
    r = subprocess.run(["podman", "exec", host, "bash", "-c", script], env=ENV, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode:
        raise RuntimeError("%s: %s: %s" % (host, script[:80], r.stderr.strip()[-500:]))
    return r.stdout


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


WATCH = r"""
import os, sys, time
d, n, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
seen = {}
while len(seen) < n and time.time() < deadline:
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        names = []
    now = time.time()
    for x in names:
        if x.endswith(".bin") and x not in seen:
            seen[x] = now
            print(x, "%.3f" % now, flush=True)
    time.sleep(0.1)
"""


def db_lag(seconds):
    """Replication lag under pgbench load at geo, two ways in the same run:
    reported - the primary's pg_stat_replication.replay_lag (includes waiting for the standby's
               next status message, sent about once a second: wal_receiver_status_interval);
    visible  - at miyun, clock_timestamp() - pg_last_xact_replay_timestamp(): how old the newest
               transaction miyun can already read is (the containers share the host's clock).
    Samples from the first 2 s of load (the idle time before it) and its last 0.5 s are dropped."""
    sh(GEO, "runuser -u postgres -- psql -XAtq -c 'DROP DATABASE IF EXISTS replica_bench' && "
            "runuser -u postgres -- createdb replica_bench && "
            "runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -q -i -s 2 replica_bench >/dev/null 2>&1")
    q = ("SELECT extract(epoch FROM clock_timestamp()), coalesce(extract(epoch FROM replay_lag), 0) "
         "FROM pg_stat_replication WHERE application_name = 'miyun_store'")
    qv = "SELECT extract(epoch FROM clock_timestamp()), extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
    sampler = ("cd /tmp; end=$(( $(date +%%s) + %d )); while [ $(date +%%s) -lt $end ]; do "
               "runuser -u postgres -- psql -XAt -F ' ' -c \"%s\" | sed 's/^/lag /'; sleep 0.1; done")
    visible = subprocess.Popen(["podman", "exec", MIYUN, "bash", "-c", sampler % (seconds + 2, qv)], env=ENV,
                               stdout=subprocess.PIPE, text=True)
    start = time.time()
    script = (sampler % (seconds + 2, q) + " & runuser -u postgres -- /usr/lib/postgresql/15/bin/pgbench -c 4 -j 2 "
              "-T %d replica_bench 2>&1 | grep -E '^(tps|number of transactions actually)'; wait" % seconds)
    out = sh(GEO, script, timeout=seconds + 180)
    vis_out = visible.communicate(timeout=seconds + 60)[0]
    sh(GEO, "runuser -u postgres -- psql -XAtq -c 'DROP DATABASE IF EXISTS replica_bench'", check=False)

    def samples(text):
        rows = [line.split()[1:] for line in text.splitlines() if line.startswith("lag ") and len(line.split()) == 3]
        return [float(v) for t, v in rows if start + 2 <= float(t) <= start + seconds - 0.5]
    info = " ".join(line for line in out.splitlines() if not line.startswith("lag "))
    return samples(out), samples(vis_out), " ".join(info.split())


def file_lag(n, spacing, timeout=180):
    sh(GEO, "rm -rf %s/%s && install -d -m 0750 -g archive-read %s/%s" % (STORE, BENCH_DIR, STORE, BENCH_DIR))
    watcher = subprocess.Popen(["podman", "exec", MIYUN, "python3", "-c", WATCH, "%s/%s" % (WORKING, BENCH_DIR),
                                str(n), str(timeout)], env=ENV, stdout=subprocess.PIPE, text=True)
    created = {}
    try:
        for i in range(n):
            name = "f%03d-%d.bin" % (i, time.time_ns())
            p = "%s/%s" % (STORE, BENCH_DIR)
            out = sh(GEO, "install -d -m 0750 -g archive-read {p} && head -c 65536 /dev/urandom > {p}/.{n}.tmp && "
                          "chgrp archive-read {p}/.{n}.tmp && mv {p}/.{n}.tmp {p}/{n} && date +%s.%N".format(p=p, n=name))
            created[name] = float(out.strip())
            time.sleep(spacing)
        seen = {}
        for line in watcher.communicate(timeout=timeout + 30)[0].splitlines():
            name, t = line.split()
            seen[name] = float(t)
    finally:
        if watcher.poll() is None:
            watcher.kill()
        sh(GEO, "rm -rf %s/%s" % (STORE, BENCH_DIR), check=False)
    return [seen[k] - created[k] for k in created if k in seen], n - len([k for k in created if k in seen])


def wan_bytes():
    out = sh(GEO_FW, "cat /sys/class/net/wan0/statistics/rx_bytes /sys/class/net/wan0/statistics/tx_bytes").split()
    return int(out[0]) + int(out[1])


def wan_ratio():
    size = int(sh(GEO, "du -sb --exclude=%s %s | cut -f1" % (BENCH_DIR, STORE)).split()[0])
    change = max(65536, size // 100)
    sh(MIYUN, "systemctl stop archive-dr-replica-pull-files.timer; "
              "while systemctl -q is-active archive-dr-replica-pull@files.service; do sleep 0.2; done")
    try:
        sh(GEO, "rm -rf %s/%s && install -d -m 0750 -g archive-read %s/%s" % (STORE, BENCH_DIR, STORE, BENCH_DIR))
        sh(MIYUN, "systemctl start archive-dr-replica-pull@files.service")  # settle: the empty dir
        chunk = 256 * 1024
        left, i = change, 0
        script = []
        while left > 0:
            b = min(chunk, left)
            script.append("head -c %d /dev/urandom > %s/%s/c%04d.bin" % (b, STORE, BENCH_DIR, i))
            left -= b
            i += 1
        script.append("chgrp -R archive-read %s/%s" % (STORE, BENCH_DIR))
        sh(GEO, " && ".join(script))
        before = wan_bytes()
        sh(MIYUN, "systemctl start archive-dr-replica-pull@files.service", timeout=600)
        after = wan_bytes()
    finally:
        sh(GEO, "rm -rf %s/%s" % (STORE, BENCH_DIR), check=False)
        sh(MIYUN, "systemctl start archive-dr-replica-pull@files.service; "
                  "systemctl start archive-dr-replica-pull-files.timer", check=False)
    return size, change, after - before


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pgbench-seconds", type=int, default=20)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--file-spacing", type=float, default=1.5)
    a = ap.parse_args()
    t0 = time.time()
    reported, db, tps = db_lag(a.pgbench_seconds)
    print("pgbench at geo: %s" % tps)
    print("reported (geo's replay_lag): %d samples: p50 %.3f s, p99 %.3f s, max %.3f s"
          % (len(reported), pct(reported, 50), pct(reported, 99), max(reported) if reported else float("nan")))
    print("visible at miyun (age of the newest replayed transaction): %d samples: p50 %.3f s, p99 %.3f s, max %.3f s"
          % (len(db), pct(db, 50), pct(db, 99), max(db) if db else float("nan")))
    fl, missing = file_lag(a.files, a.file_spacing)
    print("files at geo -> present at miyun: %d of %d, p50 %.2f s, p99 %.2f s, max %.2f s"
          % (len(fl), a.files, pct(fl, 50), pct(fl, 99), max(fl) if fl else float("nan")))
    size, change, wan = wan_ratio()
    print("1%% change: %d new bytes in a %d-byte archive; %d bytes crossed the WAN (geo-fw wan0 rx+tx)"
          % (change, size, wan))
    print("bench took %.0f s" % (time.time() - t0))
    print("db lag p99: %.2f s" % pct(db, 99))
    print("file lag p99: %.2f s" % (pct(fl, 99) if not missing else float("inf")))
    print("wan/changed ratio: %.2f" % (wan / change))


if __name__ == "__main__":
    main()
