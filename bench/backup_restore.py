#!/usr/bin/env python3
"""Backup and restore throughput of the lab archive vs a raw `tar | tar` copy, one run, same host.

On the appliance (geo-backup), with the tree it backs up (the rsync staging copy of
geo-archive:/srv/archive, refreshed first by the snapshot job), measures:

  raw      tar -C SRC -cf - . | tar -C DST -xf - ; sync
  backup   restic backup SRC into a fresh repository (first, full backup; same settings as the role)
  restore  restic restore latest --target DST ; sync
  + check  restored tree == source (sha256 of every file)

Every step starts from the same warm page cache (the source is read once first).
Last line: `restore/raw ratio: X.XX` (goal >= 0.80).

Run: .venv/bin/python bench/backup_restore.py [--host geo-backup] [--src /srv/backup/staging/archive-files]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from archive_dr import paths

ENV = dict(os.environ, CONTAINERS_CONF=str(paths.CONTAINERS_CONF))


def sh(host, script, timeout=3600):
    p = subprocess.run(["podman", "exec", host, "bash", "-c", "set -euo pipefail; " + script], env=ENV,
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit("bench: %s failed (rc=%d):\n%s\n%s" % (script, p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    return p.stdout


def timed(host, script):
    t0 = time.monotonic()
    sh(host, script)
    return time.monotonic() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="geo-backup")
    ap.add_argument("--src", default="/srv/backup/staging/archive-files")
    ap.add_argument("--work", default="/srv/backup/bench", help="scratch directory on the data pool (removed after)")
    ap.add_argument("--compression", default="auto", choices=["auto", "off", "max"],
                    help="restic --compression (the role's backup_appliance_restic_compression)")
    ap.add_argument("--refresh", default="archive-dr-backup-archive-files-snapshot.service",
                    help="unit that refreshes the source first ('' = skip)")
    a = ap.parse_args(argv)
    h, src, w = a.host, a.src, a.work
    if a.refresh:
        sh(h, "systemctl start %s" % a.refresh)
    sh(h, "rm -rf %s && mkdir -p %s/raw %s/restore && head -c 32 /dev/urandom | base64 > %s/pass" % (w, w, w, w))
    nbytes, nfiles = (int(x) for x in sh(h, "find %s -type f -printf '%%s\\n' | awk '{s+=$1; n++} END {print s, n}'"
                                          % src).split())
    sh(h, "find %s -type f -exec cat {} + > /dev/null" % src)
    env = "export RESTIC_REPOSITORY=%s/repo RESTIC_PASSWORD_FILE=%s/pass RESTIC_CACHE_DIR=%s/cache; " % (w, w, w)
    try:
        t_raw = timed(h, "tar -C %s -cf - . | tar -C %s/raw -xf - && sync" % (src, w))
        sh(h, env + "restic init -q")
        t_backup = timed(h, env + "cd %s && restic backup -q --compression %s --host bench . && sync" % (src, a.compression))
        repo = int(sh(h, "du -sb %s/repo | cut -f1" % w).split()[0])
        t_restore = timed(h, env + "restic restore -q latest --target %s/restore && sync" % w)
        same = sh(h, "cd %s && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum; "
                     "cd %s/restore && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum" % (src, w)).split()
        if same[0] != same[2]:
            sys.exit("bench: restored tree differs from the source")
    finally:
        sh(h, "rm -rf %s" % w)
    mb = nbytes / 2**20
    cpus = sh(h, "nproc").strip()
    print("tree: %s:%s, %d files, %.1f MiB (host has %s CPUs)" % (h, src, nfiles, mb, cpus))
    print("raw copy (tar | tar):     %6.2f s  %7.1f MiB/s" % (t_raw, mb / t_raw))
    print("restic compression: %s" % a.compression)
    print("backup (restic, full):    %6.2f s  %7.1f MiB/s  repository %.1f MiB (%.0f%% of source)"
          % (t_backup, mb / t_backup, repo / 2**20, 100.0 * repo / nbytes))
    print("restore (restic restore): %6.2f s  %7.1f MiB/s  (verified: sha256 of every file equal)"
          % (t_restore, mb / t_restore))
    print("backup/raw ratio: %.2f" % (t_raw / t_backup))
    print("restore/raw ratio: %.2f" % (t_raw / t_restore))
    return 0


if __name__ == "__main__":
    sys.exit(main())
