#!/usr/bin/env python3
"""Fixity-check throughput vs a raw read of the same tree, in one run.

    .venv/bin/python bench/verify_speed.py [--items N | --total-size 300M] [--root DIR --manifest CSV]

Generates a lab archive (unless --root/--manifest are given), then times, on
the same files, with the page cache in the same state for each (all warm:
one untimed pre-read first):
  raw      every file read with 4 MiB reads, data discarded (cat > /dev/null)
  fixity   SHA-256 + SM3 of every file (one read per file, thread pool)
  verify   the full four-property check, usability=stdlib
  verify+qpdf  the same with qpdf --check (if qpdf is installed)
Last line: ``verify/raw ratio: X.XX`` (full check with the stdlib parser).
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from archive_dr import seed, verify as V  # noqa: E402
from archive_dr.fixity import SM3_NATIVE, hash_file, load_manifest, walk_files  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
import shutil  # noqa: E402


def raw_read(root, files):
    n = 0
    buf = bytearray(4 * 1024 * 1024)
    for f in files:
        with open(os.path.join(root, f), "rb", buffering=0) as fh:
            while True:
                k = fh.readinto(buf)
                if not k:
                    break
                n += k
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--total-size", default="300M")
    ap.add_argument("--root")
    ap.add_argument("--manifest")
    a = ap.parse_args()
    tmp = None
    if a.root:
        root, rows = a.root, load_manifest(a.manifest)
    else:
        tmp = tempfile.mkdtemp(prefix="verify-bench-")
        t = time.monotonic()
        s = seed.generate(tmp, items=a.items, seed="bench", total_size=seed.parse_size(a.total_size))
        print("seed: %d items, %.1f MB in %.2f s = %.1f MB/s" % (
            s["items"], s["total_bytes"] / 2**20, time.monotonic() - t, s["mb_per_s"]))
        root, rows = s["files_root"], load_manifest(s["manifest_csv"])
    files = walk_files(root)
    raw_read(root, files)  # warm the page cache equally for every measurement
    t = time.monotonic(); nbytes = raw_read(root, files); t_raw = time.monotonic() - t
    mb = nbytes / 2**20
    workers = min(16, 2 * (os.cpu_count() or 1))
    t = time.monotonic()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda f: hash_file(os.path.join(root, f)), files))
    t_fix = time.monotonic() - t
    t = time.monotonic(); r = V.verify(root, rows, usability="stdlib"); t_ver = time.monotonic() - t
    assert r["ok"], V.summary_text(r)
    print("cpus %d, sm3 %s, %d files, %.1f MB" % (os.cpu_count(), "openssl" if SM3_NATIVE else "pure-python",
                                                 len(files), mb))
    print("raw read            %7.2f s  %8.1f MB/s" % (t_raw, mb / t_raw))
    print("fixity sha256+sm3   %7.2f s  %8.1f MB/s" % (t_fix, mb / t_fix))
    print("verify (stdlib pdf) %7.2f s  %8.1f MB/s" % (t_ver, mb / t_ver))
    if shutil.which("qpdf"):
        t = time.monotonic(); r = V.verify(root, rows, usability="both"); t_q = time.monotonic() - t
        print("verify (+qpdf)      %7.2f s  %8.1f MB/s" % (t_q, mb / t_q))
    print("fixity/raw ratio: %.2f" % (t_raw / t_fix))
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    print("verify/raw ratio: %.2f" % (t_raw / t_ver))


if __name__ == "__main__":
    main()
