# -*- coding: utf-8 -*-
"""Offline Blu-ray volume sets (stdlib only + xorriso + par2 on the host).

Pipeline (``build_set``):

1. scan the snapshot, hash every file once (SHA-256 + SM3); if an archive
   metadata manifest is given, every hash must match it (never burn a
   damaged file) and archive numbers go into the manifests;
2. ``plan_volumes``: first-fit-decreasing bin packing; a file is never split;
   a file larger than one disc's data capacity is an error (see docs);
3. per volume: ``MANIFEST.csv`` (path, size, sha256, sm3, archive_no),
   ``SET-MANIFEST.csv`` (every file of the set -> volume) and ``README.txt``
   are added; xorriso writes the ISO with ``-md5 on`` (per-file and session
   MD5 embedded); then par2 recovery data for the ISO is appended after the
   filesystem (image-level ECC, like dvdisaster's augmented images: the disc
   still mounts as plain ISO 9660, the tail protects every sector including
   directories);
4. read-back, mount-free: ``xorriso -check_md5_r``, every file's bytes read
   from the image at its extent (``report_lba``) and hashed against the
   manifest, and ``par2 verify`` of the filesystem part with the tail;
5. the media register (JSON + CSV) with next check due.

Capacity per disc: (iso + pad + par2 tail) <= media_size; the planner uses a
conservative estimate and the builder asserts the real size.
"""
from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import tempfile

from ansible.module_utils.archive_fixity import (
    CHUNK, hash_file, load_manifest, new_sm3, walk_files,
)

BDR_DL = 50050629632          # BD-R DL 2 layers, bytes
SECTOR = 2048
ISO_FIXED = 512 * 1024    # system area, descriptors, path tables, 300k padding, md5 tags (measured ~430k)
PER_FILE = 2 * SECTOR         # directory records (ISO + Joliet + RR/AAIP md5) and manifest lines
PER_DIR = 2 * SECTOR
PAR2_FIXED = 64 * 1024    # par2 main/creator packets; plus PAR2_PER_BLOCK per source block
PAR2_PER_BLOCK = 128      # IFSC checksums (20 B/block), repeated in index + recovery file
MANIFEST_COLS = ("path", "size", "sha256", "sm3", "archive_no")
REGISTER = "media-register.json"


class OfflineError(Exception):
    pass


def _ru(n, m=SECTOR):
    return (n + m - 1) // m * m


# ---------------------------------------------------------------- plan
def data_capacity(media_size, redundancy_pct, ndirs=0, manifest_bytes=0, max_source_blocks=2000):
    """Bytes of file cost (see file_cost) that fit on one disc."""
    r = redundancy_pct / 100.0
    par2_fixed = PAR2_FIXED + PAR2_PER_BLOCK * max_source_blocks
    # par2 tail ~ r * iso (+1 block rounding, +~1% packet headers) + critical packets
    bs = max(SECTOR, _ru(-(-media_size // max_source_blocks)))
    iso_max = int((media_size - par2_fixed - 2 * bs - 2 * SECTOR) / (1 + r * 1.02 + 0.001))
    return iso_max - ISO_FIXED - ndirs * PER_DIR - 2 * manifest_bytes


def file_cost(size):
    return _ru(size) + PER_FILE


def plan_volumes(files, media_size=BDR_DL, redundancy_pct=5.0, manifest_bytes_per_file=300,
                 max_source_blocks=2000):
    """files: list of (path, size). First-fit decreasing; returns list of
    volumes, each a sorted list of (path, size). Raises OfflineError listing
    files that cannot fit on one disc."""
    dirs = {os.path.dirname(p) for p, _ in files}
    ndirs = sum(1 for _ in dirs) + 8
    # the set manifest travels on every disc, the volume manifest only on its own
    set_manifest = manifest_bytes_per_file * len(files)
    cap = data_capacity(media_size, redundancy_pct, ndirs, set_manifest, max_source_blocks) \
        - manifest_bytes_per_file * len(files)
    if cap <= 0:
        raise OfflineError("media size %d is too small for the overhead of %d files" % (media_size, len(files)))
    too_big = [(p, s) for p, s in files if file_cost(s) > cap]
    if too_big:
        raise OfflineError("%d file(s) larger than one disc's data capacity (%d bytes), e.g. %s (%d bytes); "
                           "splitting is not supported - use a larger medium" % (
                               len(too_big), cap, too_big[0][0], too_big[0][1]))
    bins = []   # [free, [files]]
    for p, s in sorted(files, key=lambda x: (-x[1], x[0])):
        c = file_cost(s)
        for b in bins:
            if b[0] >= c:
                b[0] -= c
                b[1].append((p, s))
                break
        else:
            bins.append([cap - c, [(p, s)]])
    return [sorted(b[1]) for b in bins], cap


# ---------------------------------------------------------------- hashing
def hash_tree(root, files, workers=None, metadata=None):
    """{path: (size, sha256, sm3)}; with metadata rows, mismatches raise."""
    from concurrent.futures import ThreadPoolExecutor
    workers = workers or min(16, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as ex:
        res = dict(zip(files, ex.map(lambda p: hash_file(os.path.join(root, p)), files)))
    out = {p: (size, sha, sm3) for p, (sha, sm3, size) in res.items()}
    if metadata is not None:
        by_path = {r["file_path"]: r for r in metadata}
        bad = [p for p, (sz, sha, sm3) in out.items()
               if p in by_path and (by_path[p]["sha256"] != sha or by_path[p]["sm3"] != sm3)]
        if bad:
            raise OfflineError("%d snapshot file(s) do not match the archive metadata, e.g. %s: "
                               "run the four-property check first" % (len(bad), bad[0]))
    return out


def _csv(rows, cols):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(r)
    return buf.getvalue().encode("utf-8")


def _xq(s):
    """Quote a word for xorriso -options_from_file."""
    if "'" not in s:
        return "'" + s + "'"
    if '"' not in s and "\\" not in s:
        return '"' + s + '"'
    raise OfflineError("path with both quote kinds is not supported: %r" % s)


def _run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    return p.returncode, p.stdout + p.stderr


def tool_versions():
    v = {}
    for t, args, rx in (("xorriso", ["-version"], r"xorriso (\S+)"), ("par2", ["-V"], r"(\d+\.\d+\.\d+)")):
        exe = shutil.which(t)
        if exe:
            m = re.search(rx, _run([exe] + args)[1])
            v[t] = m.group(1) if m else "unknown"
    return v


# ---------------------------------------------------------------- build
def build_iso(image, label, entries, workdir):
    """entries: list of (source path, iso path). Writes image with embedded MD5."""
    opts = os.path.join(workdir, label + ".xorriso")
    with open(opts, "w", encoding="utf-8") as f:
        for src, dst in entries:
            f.write("-map %s %s\n" % (_xq(src), _xq(dst)))
    if os.path.exists(image):
        os.remove(image)
    rc, out = _run(["xorriso", "-no_rc", "-report_about", "SORRY", "-md5", "on", "-outdev", image,
                    "-volid", label[:32], "-joliet", "on", "-rockridge", "on",
                    "-options_from_file", opts, "-commit"])
    if rc != 0:
        raise OfflineError("xorriso failed to build %s (rc=%d): %s" % (image, rc, out[-800:]))
    os.remove(opts)
    return os.path.getsize(image)


def add_ecc(image, redundancy_pct, max_source_blocks=2000):
    """Append par2 recovery data for the ISO filesystem to the image.
    Returns the ECC record (offset/length of the tail, block size, counts)."""
    iso_size = os.path.getsize(image)
    bs = max(SECTOR, _ru(-(-iso_size // max_source_blocks)))
    nblocks = -(-iso_size // bs)
    nrec = max(1, int(math.ceil(nblocks * redundancy_pct / 100.0)))
    d = tempfile.mkdtemp(prefix="ecc-", dir=os.path.dirname(image))
    try:
        target = os.path.join(d, "volume.iso")
        os.link(image, target) if hasattr(os, "link") else shutil.copy(image, target)
        rc, out = _run(["par2", "c", "-q", "-q", "-s%d" % bs, "-c%d" % nrec, "-n1", "-u",
                        "volume.par2", "volume.iso"], cwd=d)
        if rc != 0:
            raise OfflineError("par2 create failed (rc=%d): %s" % (rc, out[-500:]))
        parts = ["volume.par2"] + sorted(f for f in os.listdir(d) if f.startswith("volume.vol"))
        pad = _ru(iso_size) - iso_size
        with open(image, "ab") as img:
            img.write(b"\0" * pad)
            off = iso_size + pad
            for pth in parts:
                with open(os.path.join(d, pth), "rb") as f:
                    shutil.copyfileobj(f, img, CHUNK)
        length = os.path.getsize(image) - off
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return {"tool": "par2", "redundancy_pct": redundancy_pct, "block_size": bs, "source_blocks": nblocks,
            "recovery_blocks": nrec, "iso_bytes": iso_size, "offset": off, "length": length,
            "target_name": "volume.iso"}


def build_set(snapshot, out_dir, media_size=BDR_DL, redundancy_pct=5.0, prefix="AKJ", metadata=None,
              check_interval_days=365, today=None, max_source_blocks=2000, workers=None, check_mode=False):
    """Plan and (unless check_mode) build the volume set for ``snapshot``.
    Idempotent: a set with the same content hash in the register is reused."""
    snapshot = os.path.abspath(snapshot)
    today = today or _dt.date.today()
    files = walk_files(snapshot)
    if not files:
        raise OfflineError("snapshot %s holds no files" % snapshot)
    rows = load_manifest(metadata) if isinstance(metadata, str) else metadata
    hashes = hash_tree(snapshot, files, workers, rows)
    archive_no = {r["file_path"]: r["archive_no"] for r in (rows or [])}
    content = hashlib.sha256("".join("%s\0%d\0%s\n" % (p, hashes[p][0], hashes[p][1])
                                     for p in files).encode()).hexdigest()
    reg_path = os.path.join(out_dir, REGISTER)
    reg = load_register(reg_path)
    existing = [m for m in reg["media"] if m.get("content_sha256") == content]
    if existing:
        return {"changed": False, "set_id": existing[0]["set_id"], "volumes": existing,
                "register": reg_path, "content_sha256": content}
    volumes, cap = plan_volumes([(p, hashes[p][0]) for p in files], media_size, redundancy_pct,
                                max_source_blocks=max_source_blocks)
    set_id = "%s_%s_%s" % (prefix, today.strftime("%Y%m%d"), content[:6])
    n = len(volumes)
    plan = {"set_id": set_id, "media_size": media_size, "data_capacity": cap, "redundancy_pct": redundancy_pct,
            "files": len(files), "bytes": sum(h[0] for h in hashes.values()),
            "volumes": [{"label": "%s_V%02d" % (set_id, k + 1), "files": len(v), "bytes": sum(s for _, s in v)}
                        for k, v in enumerate(volumes)]}
    if check_mode:
        return {"changed": True, "plan": plan, "content_sha256": content}
    set_dir = os.path.join(out_dir, set_id)
    os.makedirs(set_dir, exist_ok=True)
    vol_of = {}
    for k, v in enumerate(volumes):
        for p, _ in v:
            vol_of[p] = k + 1
    set_rows = [(p, hashes[p][0], hashes[p][1], hashes[p][2], archive_no.get(p, ""), vol_of[p]) for p in files]
    set_csv = _csv(set_rows, MANIFEST_COLS + ("volume",))
    with open(os.path.join(set_dir, "SET-MANIFEST.csv"), "wb") as f:
        f.write(set_csv)
    work = tempfile.mkdtemp(prefix="work-", dir=set_dir)
    media = []
    try:
        for k, vol in enumerate(volumes):
            label = "%s_V%02d" % (set_id, k + 1)
            vrows = [(p, hashes[p][0], hashes[p][1], hashes[p][2], archive_no.get(p, "")) for p, _ in vol]
            man = os.path.join(work, "MANIFEST.csv")
            with open(man, "wb") as f:
                f.write(_csv(vrows, MANIFEST_COLS))
            with open(os.path.join(set_dir, label + ".manifest.csv"), "wb") as f:
                f.write(_csv(vrows, MANIFEST_COLS))
            smf = os.path.join(work, "SET-MANIFEST.csv")
            with open(smf, "wb") as f:
                f.write(set_csv)
            readme = os.path.join(work, "README.txt")
            with open(readme, "w", encoding="utf-8") as f:
                f.write(README % {"label": label, "set_id": set_id, "k": k + 1, "n": n, "files": len(vol),
                                  "date": today.isoformat(), "r": redundancy_pct})
            entries = [(os.path.join(snapshot, p), "/" + p) for p, _ in vol]
            entries += [(man, "/MANIFEST.csv"), (smf, "/SET-MANIFEST.csv"), (readme, "/README.txt")]
            image = os.path.join(set_dir, label + ".iso")
            build_iso(image, label, entries, work)
            ecc = add_ecc(image, redundancy_pct, max_source_blocks)
            size = os.path.getsize(image)
            if size > media_size:
                raise OfflineError("%s is %d bytes, more than the media size %d (planner margin too small)"
                                   % (image, size, media_size))
            sha = hashlib.sha256()
            with open(image, "rb") as f:
                for b in iter(lambda: f.read(CHUNK), b""):
                    sha.update(b)
            m = {"label": label, "set_id": set_id, "volume": k + 1, "volumes": n, "image": image,
                 "manifest": os.path.join(set_dir, label + ".manifest.csv"),
                 "image_bytes": size, "media_size": media_size, "files": len(vol),
                 "data_bytes": sum(s for _, s in vol), "image_sha256": sha.hexdigest(), "ecc": ecc,
                 "content_sha256": content, "created": today.isoformat(),
                 "check_interval_days": check_interval_days, "last_check": None, "last_result": None,
                 "next_check_due": today.isoformat(), "status": "built"}
            r = verify_image(image, m["manifest"], ecc)
            record_check(m, r, today)
            if not r["ok"]:
                raise OfflineError("read-back of %s failed: %s" % (label, r["errors"][:3]))
            media.append(m)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reg["media"].extend(media)
    save_register(reg, reg_path)
    with open(os.path.join(set_dir, "SET.json"), "w", encoding="utf-8") as f:
        json.dump({"plan": plan, "media": media, "tools": tool_versions()}, f, ensure_ascii=False, indent=2)
    return {"changed": True, "set_id": set_id, "plan": plan, "volumes": media, "register": reg_path,
            "content_sha256": content}


README = """离线归档光盘 Offline archive volume
标签 label: %(label)s    卷 volume: %(k)d / %(n)d    套 set: %(set_id)s
文件数 files: %(files)d    制作日期 created: %(date)s

MANIFEST.csv      本卷文件清单 (path,size,sha256,sm3,archive_no)
SET-MANIFEST.csv  全套文件清单及所在卷号 (every file of the set and its volume)

校验 verify:  xorriso -md5 on -indev <image or /dev/sr0> -check_md5_r SORRY / --
纠错 ECC: par2 recovery data (%(r)s%%) is stored on this disc AFTER the ISO 9660
filesystem (it starts at the first 2048-byte boundary after the filesystem;
search for "PAR2\\0PKT"). Repair: read the whole disc to an image (ddrescue),
split it at that offset into volume.iso + ecc.par2, then: par2 r ecc.par2 volume.iso
"""


# ---------------------------------------------------------------- verify
_LBA_RE = re.compile(r"File data lba:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*'(.*)'\s*$")


def file_extents(image):
    rc, out = _run(["xorriso", "-no_rc", "-abort_on", "NEVER", "-indev", image,
                    "-find", "/", "-type", "f", "-exec", "report_lba", "--"])
    ext = {}
    for ln in out.splitlines():
        m = _LBA_RE.match(ln.strip())
        if m:
            xt, lba, blocks, size, path = int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), m.group(5)
            ext.setdefault(path.lstrip("/"), []).append((xt, lba, blocks, size))
    if rc != 0 and not ext:
        raise OfflineError("xorriso cannot read %s: %s" % (image, out[-500:]))
    return ext


def _hash_extents(f, extents, size):
    sha, sm3 = hashlib.sha256(), new_sm3()
    left = size
    for _xt, lba, blocks, _sz in sorted(extents):
        f.seek(lba * SECTOR)
        n = min(left, blocks * SECTOR)
        while n > 0:
            b = f.read(min(CHUNK, n))
            if not b:
                break
            sha.update(b)
            sm3.update(b)
            n -= len(b)
            left -= len(b)
    return sha.hexdigest(), sm3.hexdigest()


def verify_image(image, manifest, ecc=None):
    """Mount-free read-back: embedded MD5 (xorriso -check_md5_r), every file
    hashed from its extents against the manifest (SHA-256 + SM3, no missing,
    no extra), and par2 verification of the filesystem with the ECC tail."""
    errors = []
    res = {"image": image, "ok": False, "md5": None, "files_checked": 0, "par2": None, "errors": errors}
    if not os.path.exists(image):
        errors.append("image missing")
        return res
    rc, out = _run(["xorriso", "-no_rc", "-md5", "on", "-abort_on", "NEVER", "-return_with", "SORRY", "32",
                    "-indev", image, "-check_md5_r", "SORRY", "/", "--"])
    res["md5"] = "match" if rc == 0 and "checksums match" in out else "MISMATCH"
    if res["md5"] != "match":
        bad = re.findall(r"MD5 MISMATCH: '(.*)'", out)
        errors.append("xorriso -check_md5_r: %s" % (", ".join(bad[:10]) or out.strip().splitlines()[-1:]))
    with open(manifest, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        ext = file_extents(image)
    except OfflineError as e:
        errors.append(str(e))
        ext = {}
    extra = set(ext) - {r["path"] for r in rows} - {"MANIFEST.csv", "SET-MANIFEST.csv", "README.txt"}
    for p in sorted(extra):
        errors.append("file on image not in manifest: %s" % p)
    with open(image, "rb") as f:
        for r in rows:
            e = ext.get(r["path"])
            if not e:
                errors.append("missing on image: %s" % r["path"])
                continue
            size = e[0][3]
            if size != int(r["size"]):
                errors.append("size mismatch: %s" % r["path"])
                continue
            sha, sm3 = _hash_extents(f, e, size)
            res["files_checked"] += 1
            if sha != r["sha256"] or sm3 != r["sm3"]:
                errors.append("hash mismatch (SHA-256/SM3): %s" % r["path"])
    if ecc:
        res["par2"] = _par2(image, ecc, "v")
        if res["par2"]["status"] != "ok":
            errors.append("par2 verify: %s" % res["par2"]["status"])
    res["ok"] = not errors
    return res


def _par2(image, ecc, verb, write_back=False):
    """Run par2 verify ('v') or repair ('r') on the filesystem part of image."""
    d = tempfile.mkdtemp(prefix="par2-", dir=os.path.dirname(os.path.abspath(image)))
    try:
        iso = os.path.join(d, ecc.get("target_name", "volume.iso"))
        with open(image, "rb") as src, open(iso, "wb") as dst:
            left = ecc["iso_bytes"]
            while left > 0:
                b = src.read(min(CHUNK, left))
                if not b:
                    break
                dst.write(b)
                left -= len(b)
            src.seek(ecc["offset"])
            with open(os.path.join(d, "ecc.par2"), "wb") as t:
                shutil.copyfileobj(src, t, CHUNK)
        rc, out = _run(["par2", verb, "-q", "ecc.par2", os.path.basename(iso)], cwd=d)
        if verb == "v":
            status = "ok" if rc == 0 else ("repairable" if rc == 1 else "NOT repairable (rc=%d)" % rc)
        else:
            status = "repaired" if rc == 0 else "repair FAILED (rc=%d)" % rc
            if rc == 0 and write_back:
                with open(iso, "rb") as s, open(image, "r+b") as dst:
                    shutil.copyfileobj(s, dst, CHUNK)
        m = re.search(r"Target: .* - (\w+)\.", out)
        return {"status": status, "rc": rc, "target": m.group(1) if m else None,
                "output": "\n".join(out.strip().splitlines()[-6:])}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def repair_image(image, ecc):
    """Repair the filesystem part of the image in place from its par2 tail."""
    return _par2(image, ecc, "r", write_back=True)


# ---------------------------------------------------------------- register
def load_register(path):
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {"version": 1, "media": []}


def save_register(reg, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(reg, f, ensure_ascii=False, indent=2)
    os.replace(tmp, path)
    cols = ("label", "set_id", "volume", "volumes", "created", "files", "data_bytes", "image_bytes",
            "image_sha256", "last_check", "last_result", "next_check_due", "status")
    with open(path[:-5] + ".csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for m in reg["media"]:
            w.writerow([m.get(c, "") for c in cols])


def record_check(m, result, when=None):
    when = when or _dt.date.today()
    m["last_check"] = when.isoformat()
    m["last_result"] = "pass" if result["ok"] else "FAIL"
    m["status"] = "verified" if result["ok"] else "damaged"
    m["next_check_due"] = (when + _dt.timedelta(days=int(m.get("check_interval_days") or 365))).isoformat()
    return m


def due_for_recheck(reg, today=None):
    """Media whose next check is due (on or before today), or whose last check failed."""
    today = (today or _dt.date.today()).isoformat()
    return [m for m in reg["media"] if (m.get("next_check_due") or "") <= today or m.get("last_result") == "FAIL"]


def recheck(register_path, today=None, labels=None, check_mode=False):
    """Re-verify media due (or the given labels) and update the register."""
    reg = load_register(register_path)
    todo = [m for m in reg["media"] if m["label"] in labels] if labels else due_for_recheck(reg, today)
    results = []
    for m in todo:
        if check_mode:
            results.append({"label": m["label"], "would_check": True})
            continue
        r = verify_image(m["image"], m["manifest"], m.get("ecc"))
        record_check(m, r, today)
        results.append({"label": m["label"], "ok": r["ok"], "errors": r["errors"][:20], "par2": r["par2"]})
    if todo and not check_mode:
        save_register(reg, register_path)
    return {"checked": results, "changed": bool(todo) and not check_mode,
            "ok": all(r.get("ok", True) for r in results)}
