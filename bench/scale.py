#!/usr/bin/env python3
"""The real archive's scale against the lab: every stage measured in one run, with its physical limit.

The institute's archive is 67,335 items, about 670,000 pages and 219 GB. This benchmark seeds the
lab's archive with the same item and page count (module_utils/archive_seed.py keeps the real page
density and scales the page size to --total-size), then measures, in order, on the running lab:

  seed                 generate on geo-archive, copy into the file store, load the metadata
  backup db (full)     pgBackRest full backup on the appliance       limit: raw copy of the data dir
  backup files         the appliance's snapshot job (rsync staging + restic)   limit: tar|tar of the store
  first file replica   miyun's first pull of the whole tree through the shaped WAN   limit: WAN rate
  first repo pull      miyun's first pull of the appliance's repositories           limit: WAN rate
  file lag             new files at geo -> present at miyun, >= 100 samples, 67k items in the tree
  db lag               pgbench at geo -> age of the newest transaction replayed at miyun
  1 % change           new + rewritten files, one pull: bytes on the WAN per changed byte
  four-property check  the whole archive at miyun (files/s, pages/s, MB/s)   limit: raw read
  restore (snapshot)   the file replica's newest snapshot -> scratch, as the role does   vs tar|tar
  restore (restic)     the pulled restic copy -> scratch                                 vs tar|tar
  ransomware drill     archive-dr drill --scenario ransomware: its RTO
  offline set          Blu-ray volume set of the archive: plan, ISO build, read-back
  + peak memory (RSS) of rsync, restic, pgbackrest, qpdf, python3 on the hosts, sampled per stage

Every local stage is compared with a raw copy or read of the same data on the same host, page
cache dropped before each (this machine is the containers' kernel). It prints one table and an
extrapolation to 219 GB / 67,335 items at 100 Mbit/s and 1 Gbit/s, writes it as Markdown and HTML
under reports/, and ends with `scale <name>: <value>` lines.

    archive-dr lab up --disk-size 24G && archive-dr secrets && ansible-playbook playbooks/site.yml
    .venv/bin/python bench/scale.py [--items 67335] [--total-size 4G] [--skip STAGE ...]

Bounded: every command has a timeout; the bench restores the timers it pauses and removes its
scratch data. It does not bring the lab up itself (the lab's disks must hold the scale archive:
it checks the free space first and says what to run).
"""
from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from archive_dr import paths, runner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rpo import WATCH, db_lag, pct, wan_bytes  # noqa: E402  (same directory: the RPO bench's probes)

ENV = dict(os.environ, CONTAINERS_CONF=str(paths.CONTAINERS_CONF))
GEO, APPLIANCE, MIYUN, GEO_FW = "geo-archive", "geo-backup", "miyun-store", "geo-fw"
STORE, WORKING = "/srv/archive", "/srv/dr/files/current"
FILE_SNAPSHOTS, RESTIC_COPIES = "/srv/dr/files/snapshots", "/srv/dr/repos/restic/snapshots"
SCRATCH_MIYUN, SCRATCH_APPLIANCE = "/srv/dr/restore/scale-bench", "/srv/restore/scale-bench"
BENCH_DIR = ".scale-bench"
SEED_DIR = "/var/lib/archive-dr/seed"            # playbooks/lab-seed.yml: the pristine generated tree
REAL_ITEMS, REAL_PAGES, REAL_BYTES = 67335, 670000, 219 * 10**9
HEAVY = ("rsync", "restic", "pgbackrest", "qpdf", "python3", "xorriso", "par2", "tar")
PULL_TIMERS = ("archive-dr-replica-pull-files.timer", "archive-dr-replica-pull-restic.timer",
               "archive-dr-replica-pull-pgbackrest.timer")
APPLIANCE_TIMERS = ("archive-dr-backup-archive-files-snapshot.timer", "archive-dr-backup-archive-db-full.timer",
                    "archive-dr-backup-archive-db-diff.timer", "archive-dr-backup-archive-db-incr.timer")


class StageFailed(Exception):
    pass


def sh(host: str, script: str, timeout: float = 3600, check: bool = True) -> str:
    proc = subprocess.run(["podman", "exec", host, "bash", "-c", "set -euo pipefail; " + script], env=ENV,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise StageFailed("%s: %s (rc %d): %s" % (host, script[:100], proc.returncode, proc.stderr.strip()[-600:]))
    return proc.stdout


def timed(host: str, script: str, timeout: float = 3600) -> float:
    start = time.monotonic()
    sh(host, script, timeout)
    return time.monotonic() - start


def drop_caches() -> None:
    """The containers share this machine's kernel: one drop serves every host."""
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def tree_size(host: str, root: str) -> tuple[int, int]:
    out = sh(host, "find %s -type f -printf '%%s\\n' | awk '{s+=$1; n++} END {printf \"%%.0f %%d\\n\", s, n}'" % root)
    size, count = out.split()
    return int(size), int(count)


def free_bytes(host: str, path: str) -> int:
    return int(sh(host, "df -B1 --output=avail %s | tail -1" % path).strip())


class MemorySampler:
    """Peak RSS per heavy command on the hosts while a stage runs (ps every half second)."""

    def __init__(self, hosts=(GEO, APPLIANCE, MIYUN)):
        self.hosts, self.peak, self._stop = hosts, {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for host in self.hosts:
                out = subprocess.run(["podman", "exec", host, "ps", "-eo", "rss=,comm="], env=ENV,
                                     capture_output=True, text=True).stdout
                for line in out.splitlines():
                    parts = line.split(None, 1)
                    if len(parts) == 2 and parts[1].strip() in HEAVY:
                        key = "%s@%s" % (parts[1].strip(), host)
                        self.peak[key] = max(self.peak.get(key, 0), int(parts[0]) * 1024)
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)


class Bench:
    def __init__(self, args):
        self.args, self.rows, self.headlines, self.notes, self.failed = args, [], {}, [], []
        self.wan_rate = args.wan_mbit * 1e6 / 8          # bytes per second on the line

    def row(self, stage, items, nbytes, seconds, limit_seconds=None, limit_name="", memory=None, note=""):
        ratio = (limit_seconds / seconds) if (limit_seconds and seconds) else None
        self.rows.append({"stage": stage, "items": items, "bytes": nbytes, "seconds": seconds,
                          "per_item_ms": (seconds * 1000 / items) if items else None,
                          "per_gb_s": (seconds / (nbytes / 1e9)) if nbytes else None,
                          "limit": limit_name, "limit_seconds": limit_seconds, "ratio": ratio,
                          "memory": memory or {}, "note": note})
        shown = "%.2f" % ratio if ratio is not None else "-"
        print("  %-22s %8s items %10.1f MB %9.1f s  ratio %s  %s" % (
            stage, items if items is not None else "-", (nbytes or 0) / 1e6, seconds, shown, note), flush=True)

    def stage(self, name, function):
        if name in self.args.skip:
            self.notes.append("%s: skipped on request (--skip)" % name)
            return
        print("stage %s ..." % name, flush=True)
        try:
            function()
        except (StageFailed, subprocess.TimeoutExpired, runner.RunnerError, KeyError, ValueError) as error:
            self.failed.append(name)
            self.notes.append("%s: FAILED: %s" % (name, str(error).splitlines()[0][:300]))
            print("  FAILED: %s" % error, flush=True)


def pause(host, units):
    sh(host, "systemctl stop %s; for s in archive-dr-replica-pull@files archive-dr-replica-pull@restic "
             "archive-dr-replica-pull@pgbackrest archive-dr-backup-archive-files-snapshot; do "
             "while systemctl -q is-active $s.service 2>/dev/null; do sleep 0.5; done; done" % " ".join(units),
       timeout=3600, check=False)


def resume(host, units):
    sh(host, "systemctl start %s" % " ".join(units), check=False)


# ---------------------------------------------------------------- stages

def stage_seed(b: Bench):
    with MemorySampler((GEO,)) as mem:
        start = time.monotonic()
        result = runner.run_playbook("lab-seed.yml", paths.default_lab_inventory(), timeout=7200, extra_vars={
            "lab_seed_items": b.args.items, "lab_seed_total_size": b.args.total_size, "lab_seed_reload": True})
        result.check()
        seconds = time.monotonic() - start
    generated = result.task_result("Generate the archive items", GEO)
    summary = generated["summary"]
    b.items, b.pages, b.bytes = summary["items"], summary["pages"], summary["total_bytes"]
    if generated.get("changed"):
        b.row("seed", b.items, b.bytes, seconds, memory=mem.peak,
              note="%d pages; generation %.0f s, then copy into the store and metadata load" % (b.pages, summary["seconds"]))
    else:   # the same seed was there already: only its generation time is a measurement
        b.row("seed (generation)", b.items, b.bytes, summary["seconds"],
              note="%d pages; archive already seeded, generation time as measured when it was made" % b.pages)


def stage_backup_db(b: Bench):
    data = int(sh(GEO, "du -sb /var/lib/postgresql/15/main | cut -f1"))
    drop_caches()
    raw = timed(GEO, "rm -rf /var/tmp/scale-raw && mkdir -p /var/tmp/scale-raw && "
                     "tar -C /var/lib/postgresql/15/main -cf - . | tar -C /var/tmp/scale-raw -xf - && sync; "
                     "rm -rf /var/tmp/scale-raw")
    drop_caches()
    with MemorySampler() as mem:
        seconds = timed(APPLIANCE, "systemctl start archive-dr-backup-archive-db-full.service")
    b.row("backup db (full)", None, data, seconds, raw, "tar|tar of the data dir", mem.peak)


def stage_backup_files(b: Bench):
    size, count = tree_size(GEO, STORE)
    drop_caches()
    raw = timed(GEO, "rm -rf /var/tmp/scale-raw && mkdir -p /var/tmp/scale-raw && "
                     "tar -C %s -cf - . | tar -C /var/tmp/scale-raw -xf - && sync; rm -rf /var/tmp/scale-raw" % STORE)
    drop_caches()
    with MemorySampler() as mem:
        seconds = timed(APPLIANCE, "systemctl start archive-dr-backup-archive-files-snapshot.service", timeout=7200)
    b.row("backup files (restic)", count, size, seconds, raw, "tar|tar of the store", mem.peak,
          note="rsync to staging + restic backup")


def wan_stage(b: Bench, name, unit, nbytes, items, headline=None):
    drop_caches()
    before = wan_bytes()
    with MemorySampler() as mem:
        seconds = timed(MIYUN, "systemctl start %s" % unit, timeout=14400)
    crossed = wan_bytes() - before
    # The limit is the payload at the line rate: tunnel, TCP and rsync overheads count against the stage.
    limit = nbytes / b.wan_rate
    b.row(name, items, nbytes, seconds, limit, "WAN %d Mbit/s" % b.args.wan_mbit, mem.peak,
          note="%.1f MB on the wire (%.2f x the payload, line %.0f%% busy)"
               % (crossed / 1e6, crossed / nbytes, 100 * crossed / b.wan_rate / seconds))
    if headline:
        b.headlines[headline] = "%.2f" % (limit / seconds)


def stage_first_file_replica(b: Bench):
    size, count = tree_size(GEO, STORE)
    wan_stage(b, "first file replica", "archive-dr-replica-pull@files.service", size, count, "first sync/limit")


def stage_first_repo_pull(b: Bench):
    for kind in ("restic", "pgbackrest"):
        size = int(sh(APPLIANCE, "du -sb /srv/backup/%s | cut -f1" % kind))
        wan_stage(b, "first repo pull (%s)" % kind, "archive-dr-replica-pull@%s.service" % kind, size, None)


CREATE = r"""
import os, sys, time
d, n, spacing = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
os.makedirs(d, exist_ok=True)
for i in range(n):
    name = "f%04d.bin" % i
    tmp = os.path.join(d, "." + name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(os.urandom(65536))
    os.replace(tmp, os.path.join(d, name))
    print(name, "%.3f" % time.time(), flush=True)
    time.sleep(spacing)
"""


def stage_file_lag(b: Bench):
    """New files at geo, one every spacing seconds, while the tree holds the whole archive; a watcher at
    miyun notes when each appears in the working copy (the hosts share this machine's clock)."""
    n, spacing = b.args.lag_samples, b.args.lag_spacing
    target = "%s/%s" % (STORE, BENCH_DIR)
    sh(GEO, "rm -rf %s && install -d -m 2750 -g archive-read %s" % (target, target))
    cpu_before = {h: cpu_seconds(h) for h in (GEO, MIYUN)}
    watcher = subprocess.Popen(["podman", "exec", MIYUN, "python3", "-c", WATCH, "%s/%s" % (WORKING, BENCH_DIR),
                                str(n), str(n * spacing + 180)], env=ENV, stdout=subprocess.PIPE, text=True)
    start = time.monotonic()
    try:
        with MemorySampler((GEO, MIYUN)) as mem:
            created_out = sh(GEO, "python3 -c '%s' %s %d %s && chgrp -R archive-read %s"
                             % (CREATE.replace("'", "'\\''"), target, n, spacing, target), timeout=n * spacing + 120)
            seen_out = watcher.communicate(timeout=n * spacing + 240)[0]
    finally:
        if watcher.poll() is None:
            watcher.kill()
        sh(GEO, "rm -rf %s" % target, check=False)
    seconds = time.monotonic() - start
    cpu = {h: cpu_seconds(h) - cpu_before[h] for h in cpu_before}
    created = dict((line.split()[0], float(line.split()[1])) for line in created_out.splitlines())
    seen = dict((line.split()[0], float(line.split()[1])) for line in seen_out.splitlines())
    lags = [seen[k] - created[k] for k in created if k in seen]
    missing = len(created) - len(lags)
    p50, p99 = pct(lags, 50), (pct(lags, 99) if not missing else float("inf"))
    b.row("file lag", len(lags), None, seconds, memory=mem.peak,
          note="p50 %.2f s, p99 %.2f s, max %.2f s, %d missing; CPU over the run: geo %.0f%%, miyun %.0f%%"
               % (p50, p99, max(lags) if lags else float("nan"), missing,
                  100 * cpu[GEO] / seconds, 100 * cpu[MIYUN] / seconds))
    b.headlines["file lag p50"] = "%.2f s" % p50
    b.headlines["file lag p99"] = "%.2f s" % p99
    b.headlines["file lag cpu geo"] = "%.0f %%" % (100 * cpu[GEO] / seconds)
    b.headlines["file lag cpu miyun"] = "%.0f %%" % (100 * cpu[MIYUN] / seconds)


def cpu_seconds(host: str) -> float:
    """CPU time every process of a container has used (its cgroup's cpuacct, seen from inside)."""
    out = sh(host, "cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || "
                   "awk '/^usage_usec/ {printf \"%.0f\\n\", $2 * 1000}' /sys/fs/cgroup/cpu.stat")
    return int(float(out.strip())) / 1e9


def stage_db_lag(b: Bench):
    reported, visible, tps = db_lag(b.args.pgbench_seconds)
    b.row("db lag (pgbench)", len(visible), None, float(b.args.pgbench_seconds),
          note="visible at miyun p50 %.3f s, p99 %.3f s; %s" % (pct(visible, 50), pct(visible, 99), tps))
    b.headlines["db lag p99"] = "%.3f s" % pct(visible, 99)


def stage_change(b: Bench):
    """1 % of the archive changed: half new files, half rewritten ones (a re-scan replaces an item's PDF),
    then one pull with the timer paused; bytes on the WAN per changed byte."""
    size, count = tree_size(GEO, STORE)
    change = size // 100
    pause(MIYUN, PULL_TIMERS[:1])
    target = "%s/%s" % (STORE, BENCH_DIR)
    try:
        sh(GEO, "rm -rf %s && install -d -m 2750 -g archive-read %s" % (target, target))
        sh(MIYUN, "systemctl start archive-dr-replica-pull@files.service")
        rewrite = sh(GEO, "find %s -path '*/%s' -prune -o -type f -name '*.pdf' -printf '%%s %%p\\n' | sort -k2 | "
                          "awk -v want=%d '{ if (s < want) { print $2; s += $1 } }'" % (STORE, BENCH_DIR, change // 2))
        files = rewrite.split()
        rewritten = int(sh(GEO, "cat %s | wc -c" % " ".join(files))) if files else 0
        sh(GEO, "for f in %s; do s=$(stat -c %%s $f); head -c $s /dev/urandom > $f.new && "
                "chgrp archive-read $f.new && chmod 0640 $f.new && mv $f.new $f; done" % " ".join(files))
        new = change - rewritten
        sh(GEO, "python3 -c 'import os; [open(\"%s/n%%05d.bin\" %% i, \"wb\").write(os.urandom(262144)) "
                "for i in range(%d)]' && chgrp -R archive-read %s" % (target, max(1, new // 262144), target))
        new = max(1, new // 262144) * 262144
        before = wan_bytes()
        seconds = timed(MIYUN, "systemctl start archive-dr-replica-pull@files.service", timeout=3600)
        crossed = wan_bytes() - before
    finally:
        sh(GEO, "rm -rf %s" % target, check=False)
        # The rewritten items back from the pristine seed (their metadata never changed): the four-property
        # check and the drill that follow must find a sound archive.
        sh(GEO, "rsync -rt --chown=root:archive-read --chmod=D2750,F0640 %s/files/ %s/" % (SEED_DIR, STORE),
           timeout=3600, check=False)
        sh(MIYUN, "systemctl start archive-dr-replica-pull@files.service", timeout=3600, check=False)
        resume(MIYUN, PULL_TIMERS[:1])
    changed = rewritten + new
    b.row("1 % change", len(files), changed, seconds, changed / b.wan_rate, "WAN %d Mbit/s" % b.args.wan_mbit,
          note="%d rewritten + %d new bytes; %.1f MB on the WAN" % (rewritten, new, crossed / 1e6))
    b.headlines["wan/changed"] = "%.2f" % (crossed / changed)


def standby_caught_up(timeout: float = 600) -> None:
    """Wait until miyun's standby has replayed everything geo's primary has written so far."""
    target = sh(GEO, "runuser -u postgres -- psql -XAt -c 'SELECT pg_current_wal_lsn()'").strip()
    sh(MIYUN, "for i in $(seq %d); do [ \"$(runuser -u postgres -- psql -XAt -c \"SELECT pg_wal_lsn_diff("
              "pg_last_wal_replay_lsn(), '%s') >= 0\")\" = t ] && exit 0; sleep 1; done; exit 1"
       % (int(timeout), target), timeout=timeout + 30)


def stage_four_property(b: Bench):
    sh(MIYUN, "systemctl start archive-dr-replica-pull@files.service", timeout=3600)   # the replica is current
    standby_caught_up()                                                                # and so is its metadata
    size, count = tree_size(MIYUN, WORKING)
    sh(MIYUN, "runuser -u postgres -- psql -XAt -v ON_ERROR_STOP=1 -d archive -c \"COPY (SELECT archive_no, fonds, "
              "category, year, retention, seq, title, voucher_nos, pages, file_path, size_bytes, sha256, sm3, format "
              "FROM archive_item ORDER BY archive_no) TO STDOUT WITH (FORMAT csv, HEADER true)\" "
              "> /var/tmp/scale-manifest.csv")
    rows = int(sh(MIYUN, "tail -n +2 /var/tmp/scale-manifest.csv | wc -l"))
    if rows < (getattr(b, "items", 0) or 1):
        raise StageFailed("the standby's archive_item has %d rows, the seed %s items" % (rows, getattr(b, "items", "?")))
    drop_caches()
    raw = timed(MIYUN, "find %s -type f -print0 | xargs -0 cat > /dev/null" % WORKING)
    drop_caches()
    with MemorySampler((MIYUN,)) as mem:
        start = time.monotonic()
        result = runner.run_module("archive_verify", {
            "root": WORKING, "manifest": "/var/tmp/scale-manifest.csv", "fail_on_error": False,
            "exclude": [".archive-dr-drill", BENCH_DIR]}, MIYUN, paths.default_lab_inventory(), become=True,
            timeout=14400)
        seconds = time.monotonic() - start
    res = result.task_result("archive_verify", MIYUN)
    pages = b.__dict__.get("pages") or 0
    b.row("four-property check", count, size, seconds, raw, "raw read (cat)", mem.peak,
          note="%.0f files/s, %.0f pages/s, %.1f MB/s; passed=%s" % (count / seconds, pages / seconds,
                                                                    size / 1e6 / seconds, res.get("passed")))
    b.headlines["four-property pages/s"] = "%.0f" % (pages / seconds)
    b.headlines["four-property MB/s"] = "%.1f" % (size / 1e6 / seconds)


def restore_stage(b: Bench, name, source_script, source_root, headline):
    size, count = tree_size(MIYUN, source_root)
    sh(MIYUN, "rm -rf %s && mkdir -p %s" % (SCRATCH_MIYUN, SCRATCH_MIYUN))
    try:
        drop_caches()
        raw = timed(MIYUN, "mkdir %s/raw && tar -C %s -cf - . | tar -C %s/raw -xf - && sync"
                    % (SCRATCH_MIYUN, source_root, SCRATCH_MIYUN), timeout=7200)
        sh(MIYUN, "rm -rf %s/raw" % SCRATCH_MIYUN)
        drop_caches()
        with MemorySampler((MIYUN,)) as mem:
            seconds = timed(MIYUN, source_script + " && sync", timeout=7200)
        restored = tree_size(MIYUN, "%s/files" % SCRATCH_MIYUN)
    finally:
        sh(MIYUN, "rm -rf %s" % SCRATCH_MIYUN, check=False)
    if restored[1] < count:
        raise StageFailed("%s restored %d of %d files" % (name, restored[1], count))
    b.row(name, count, size, seconds, raw, "tar|tar of the same tree", mem.peak)
    b.headlines[headline] = "%.2f" % (raw / seconds)


def stage_restore_snapshot(b: Bench):
    snap = sh(MIYUN, "ls -1 %s | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort | tail -1" % FILE_SNAPSHOTS).strip()
    if not snap:
        raise StageFailed("no file replica snapshot at miyun")
    root = "%s/%s" % (FILE_SNAPSHOTS, snap)
    # as roles/replica/tasks/restore.yml does it: a reflink copy of the read-only snapshot
    restore_stage(b, "restore (file snapshot)", "cp -a --reflink=auto %s %s/files" % (root, SCRATCH_MIYUN),
                  root, "restore/raw snapshot")


def stage_restore_restic(b: Bench):
    copy = sh(MIYUN, "ls -1d %s/*/ | sort | tail -1" % RESTIC_COPIES).strip().rstrip("/")
    repo = "%s/archive-files" % copy
    # as roles/replica/tasks/restore.yml does it: the read-only copy, no lock, straight into the scratch tree
    script = ("export RESTIC_PASSWORD_FILE=/etc/archive-dr/replica/restic.pass RESTIC_CACHE_DIR=/var/cache/restic; "
              "restic -r %s --no-lock restore latest --target %s/files" % (repo, SCRATCH_MIYUN))
    restore_stage(b, "restore (restic copy)", script, WORKING, "restore/raw restic")


def stage_drill(b: Bench):
    reports = Path(tempfile.mkdtemp(prefix="scale-drill-"))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "archive_dr", "drill", "--scenario", "ransomware",
                           "--reports", str(reports)], env=ENV, capture_output=True, text=True, timeout=7200)
    seconds = time.monotonic() - start
    found = sorted(reports.glob("drill-*.json"))
    if proc.returncode or not found:
        raise StageFailed("drill rc %d: %s" % (proc.returncode, (proc.stderr or proc.stdout).strip()[-400:]))
    data = json.loads(found[-1].read_text())
    rto = data.get("rto_seconds") if "rto_seconds" in data else data["rto"]["seconds"]
    b.row("ransomware drill", None, None, seconds, note="RTO %.1f s (report %s)" % (rto, found[-1].name))
    b.headlines["ransomware rto"] = "%.1f s" % rto


def stage_offline(b: Bench):
    snap = sh(MIYUN, "ls -1 %s | grep -E '^[0-9]{8}T[0-9]{6}Z$' | sort | tail -1" % FILE_SNAPSHOTS).strip()
    size, count = tree_size(MIYUN, "%s/%s" % (FILE_SNAPSHOTS, snap))
    out = "/srv/dr/restore/scale-offline"
    try:
        with MemorySampler((MIYUN,)) as mem:
            start = time.monotonic()
            runner.run_playbook("offline-archive.yml", paths.default_lab_inventory(), timeout=14400, extra_vars={
                "offline_archive_snapshot": "%s/%s" % (FILE_SNAPSHOTS, snap),
                "offline_archive_output_dir": out}).check()
            seconds = time.monotonic() - start
    finally:
        sh(MIYUN, "rm -rf %s" % out, check=False)
    b.row("offline set (build+read-back)", count, size, seconds, memory=mem.peak, note="ISO + par2 5 %, re-read")


# ---------------------------------------------------------------- report

def extrapolate(b: Bench) -> list[dict]:
    """Each stage at 219 GB / 67,335 items. Transfers: the bytes at the achieved share of the line rate,
    capped by the slowest local stage measured (the line is not the limit at 1 Gbit/s if the disks are);
    local stages: linear in bytes (their per-GB time); per-item stages (lag) depend on the item count,
    which is the real one already."""
    copy_rates = [r["bytes"] / r["limit_seconds"] for r in b.rows
                  if r["bytes"] and r["limit"].startswith("tar") and r["limit_seconds"]]
    disk_cap = min(copy_rates) if copy_rates else None     # a transfer cannot beat a raw copy on these disks
    out = []
    scale = REAL_BYTES / b.bytes if getattr(b, "bytes", None) else None
    for r in b.rows:
        if not r["bytes"] or not scale:
            continue
        real = r["bytes"] * scale
        if r["limit"].startswith("WAN"):
            efficiency = r["ratio"] or 1.0
            est = {}
            for mbit in (100, 1000):
                rate = mbit * 1e6 / 8 * efficiency
                if disk_cap:
                    rate = min(rate, disk_cap)
                est[mbit] = real / rate
            out.append({"stage": r["stage"], "bytes": real, "100M": est[100], "1G": est[1000]})
        else:
            out.append({"stage": r["stage"], "bytes": real, "100M": r["seconds"] * scale, "1G": r["seconds"] * scale})
    return out


def fmt_s(seconds):
    if seconds is None:
        return "-"
    if seconds >= 3600:
        return "%.1f h" % (seconds / 3600)
    if seconds >= 120:
        return "%.1f min" % (seconds / 60)
    return "%.1f s" % seconds


def render(b: Bench, started: dt.datetime) -> tuple[str, str]:
    head = ["stage", "items", "MB", "seconds", "ms/item", "s/GB", "limit", "ratio", "peak RSS", "note"]
    body = []
    for r in b.rows:
        mem = ", ".join("%s %.0f MB" % (k, v / 1e6) for k, v in sorted(r["memory"].items(), key=lambda kv: -kv[1])[:3])
        body.append([r["stage"], "" if r["items"] is None else str(r["items"]),
                     "" if not r["bytes"] else "%.1f" % (r["bytes"] / 1e6), "%.1f" % r["seconds"],
                     "" if r["per_item_ms"] is None else "%.2f" % r["per_item_ms"],
                     "" if r["per_gb_s"] is None else "%.1f" % r["per_gb_s"], r["limit"],
                     "" if r["ratio"] is None else "%.2f" % r["ratio"], mem, r["note"]])
    ext = extrapolate(b)
    lines = ["# archive-dr at the real archive's scale", "",
             "Run %s on the lab: %s items, %s pages, %.2f GB (the real archive: 67,335 items, ~670,000 pages, 219 GB)."
             % (started.strftime("%Y-%m-%d %H:%M UTC"), getattr(b, "items", "?"), getattr(b, "pages", "?"),
                getattr(b, "bytes", 0) / 1e9), "",
             "ratio = physical limit time / measured time (1.00 = at the limit): the WAN's line rate for transfers, "
             "a raw `tar | tar` copy or raw read of the same data on the same host for local stages "
             "(page cache dropped before each).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body]
    lines += ["", "## Extrapolation to 219 GB / 67,335 items", "",
              "Assumptions: transfers keep the share of the line rate measured here, capped by the raw copy rate of "
              "these disks (the slowest `tar | tar` measured); local stages scale linearly with bytes; per-item costs are already at the real "
              "item count; the real pages are 8x larger than the lab's (same count), which does not change "
              "per-page parsing cost much but does change bytes.", "",
              "| stage | bytes | at 100 Mbit/s | at 1 Gbit/s |", "|---|---|---|---|"]
    lines += ["| %s | %.0f GB | %s | %s |" % (e["stage"], e["bytes"] / 1e9, fmt_s(e["100M"]), fmt_s(e["1G"]))
              for e in ext]
    peaks = {}
    for r in b.rows:
        for k, v in r["memory"].items():
            name = k.split("@")[0]
            peaks[name] = max(peaks.get(name, 0), v)
    scale = REAL_BYTES / b.bytes if getattr(b, "bytes", None) else 1
    lines += ["", "## Peak memory", "",
              "| process | peak RSS here | predicted at 219 GB | why |", "|---|---|---|---|"]
    why = {"restic": ("upper bound, linear in bytes (only its index grows with the data: one entry per "
                      "~1 MB blob; the rest is fixed)", scale),
           "rsync": ("by file count (~100 B per file in its list): the count is already real", 1),
           "python3": ("by file count (manifest rows in memory)", 1),
           "pgbackrest": ("by database size, not by the file store", 1)}
    for name, value in sorted(peaks.items(), key=lambda kv: -kv[1]):
        reason, factor = why.get(name, ("streaming: constant", 1))
        lines.append("| %s | %.0f MB | %.0f MB | %s |" % (name, value / 1e6, value * factor / 1e6, reason))
    if b.notes:
        lines += ["", "## Notes", ""] + ["- " + n for n in b.notes]
    lines += ["", "## Headline figures", ""] + ["    scale %s: %s" % (k, v) for k, v in headline_items(b)]
    markdown = "\n".join(lines) + "\n"
    page = ["<!doctype html><meta charset=utf-8><title>archive-dr scale</title>",
            "<style>body{font-family:'Noto Sans CJK SC',sans-serif;max-width:1200px;margin:2em auto}"
            "table{border-collapse:collapse}td,th{border:1px solid #999;padding:3px 6px;font-size:90%}</style>"]
    for line in lines:
        if line.startswith("# "):
            page.append("<h1>%s</h1>" % html.escape(line[2:]))
        elif line.startswith("## "):
            page.append("<h2>%s</h2>" % html.escape(line[3:]))
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            page.append("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape(c) for c in cells))
        elif line.startswith("    scale"):
            page.append("<pre>%s</pre>" % html.escape(line.strip()))
        elif line and not line.startswith("|---"):
            page.append("<p>%s</p>" % html.escape(line))
    text = "\n".join(page)
    text = text.replace("</p>\n<tr>", "</p>\n<table><tr>").replace("</tr>\n<h", "</tr></table>\n<h")
    text = text.replace("</tr>\n<p>", "</tr></table>\n<p>")
    return markdown, text


def headline_items(b: Bench):
    items = [("items", getattr(b, "items", "?")), ("pages", getattr(b, "pages", "?")),
             ("bytes", getattr(b, "bytes", "?"))]
    return items + list(b.headlines.items())


STAGES = [("seed", stage_seed), ("backup-db", stage_backup_db), ("backup-files", stage_backup_files),
          ("first-file-replica", stage_first_file_replica), ("first-repo-pull", stage_first_repo_pull),
          ("file-lag", stage_file_lag), ("db-lag", stage_db_lag), ("change", stage_change),
          ("four-property", stage_four_property), ("restore-snapshot", stage_restore_snapshot),
          ("restore-restic", stage_restore_restic), ("drill", stage_drill), ("offline", stage_offline)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=REAL_ITEMS, help="archive items (default: the real archive's 67,335)")
    ap.add_argument("--total-size", default="4G", help="archive size in the lab (default 4G; the lab disks must hold "
                                                        "about 5x this at miyun and 3x at the appliance)")
    ap.add_argument("--wan-mbit", type=float, default=100.0, help="the lab WAN's shaped rate (lab_wan_rate)")
    ap.add_argument("--lag-samples", type=int, default=120)
    ap.add_argument("--lag-spacing", type=float, default=0.5, help="seconds between new files in the lag stage")
    ap.add_argument("--pgbench-seconds", type=int, default=20)
    ap.add_argument("--skip", nargs="*", default=[], choices=[name for name, _ in STAGES])
    ap.add_argument("--reports", default=str(paths.REPORTS))
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench/scale.py: run as root (it drops the page cache between stages)")
    from archive_dr.seed import parse_size
    want = parse_size(args.total_size)
    need = {(APPLIANCE, "/srv/backup"): 2.3 * want, (MIYUN, "/srv/dr"): 3.3 * want}
    short = ["%s:%s has %.1f GB free, needs %.1f GB" % (h, p, free_bytes(h, p) / 1e9, n / 1e9)
             for (h, p), n in need.items() if free_bytes(h, p) < n]
    if short:
        sys.exit("bench/scale.py: the lab's disks are too small for a %s archive:\n  %s\nRun: archive-dr lab down && "
                 "archive-dr lab up --disk-size %dG && archive-dr secrets && ansible-playbook playbooks/site.yml"
                 % (args.total_size, "\n  ".join(short), int(3.5 * want / 2**30) + 2))
    b = Bench(args)
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.monotonic()
    pause(MIYUN, PULL_TIMERS)
    pause(APPLIANCE, APPLIANCE_TIMERS)
    try:
        for name, function in STAGES:
            if name == "file-lag":                      # steady state: the replica runs on its own timer again
                resume(MIYUN, PULL_TIMERS)
            b.stage(name, lambda f=function: f(b))
    finally:
        resume(MIYUN, PULL_TIMERS)
        resume(APPLIANCE, APPLIANCE_TIMERS)
    b.notes.append("bench took %.0f s" % (time.monotonic() - t0))
    markdown, page = render(b, started)
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / ("scale-%s" % started.strftime("%Y%m%dT%H%M%SZ"))
    stem.with_suffix(".md").write_text(markdown, encoding="utf-8")
    stem.with_suffix(".html").write_text(page, encoding="utf-8")
    print()
    print(markdown)
    print("report: %s.md / .html" % stem)
    for key, value in headline_items(b):
        print("scale %s: %s" % (key, value))
    return 1 if b.failed else 0


if __name__ == "__main__":
    sys.exit(main())
