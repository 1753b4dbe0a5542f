# -*- coding: utf-8 -*-
"""The archive's four-property check (四性检测), stdlib only.

* 真实性 authenticity: SHA-256 and SM3 (and size) of every file vs metadata;
* 完整性 integrity: every row has its file, every file has its row, archive
  numbers well-formed, unique, and contiguous (1..n) per numbering group
  (fonds-category·year-retention), no duplicate paths;
* 可用性 usability: every file parses as the format it claims (PDF: own
  stdlib structural parser, plus ``qpdf --check`` when installed);
* 安全性 security: a configurable scan command (exit-code semantics) and
  foreign files (present on disk, absent from metadata).

Each file is read once: one mmap feeds both hashes and the PDF parser.
Nothing is ever modified.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import xml.dom.minidom
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.archive_fixity import (
    COLUMNS, SM3_NATIVE, archive_group, hash_file, parse_archive_no,
    rows_from_csv_text, walk_files,
)
from ansible.module_utils.archive_pdf import PDFError, check_pdf

PROPERTIES = ("authenticity", "integrity", "usability", "security")
LABELS = {"authenticity": "真实性", "integrity": "完整性", "usability": "可用性", "security": "安全性"}


# ------------------------------------------------------------ metadata
def rows_from_postgres(dbname=None, host=None, port=None, user=None, password=None,
                       table="archive_item", where=None, psql="psql", timeout=600):
    """Metadata rows via ``psql -X -c "COPY (SELECT ...) TO STDOUT WITH CSV HEADER"``.
    Connection parameters go through libpq environment variables (the password
    never appears on a command line)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", table):
        raise ValueError("invalid table name %r" % table)
    sql = "COPY (SELECT %s FROM %s%s ORDER BY archive_no) TO STDOUT WITH (FORMAT csv, HEADER true)" % (
        ", ".join(COLUMNS), table, (" WHERE " + where) if where else "")
    env = dict(os.environ)
    for k, v in (("PGDATABASE", dbname), ("PGHOST", host), ("PGPORT", port),
                 ("PGUSER", user), ("PGPASSWORD", password)):
        if v not in (None, ""):
            env[k] = str(v)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    p = subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       capture_output=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("psql failed (rc=%d): %s" % (p.returncode, p.stderr.decode("utf-8", "replace").strip()))
    return rows_from_csv_text(p.stdout.decode("utf-8"))


# ------------------------------------------------------------ usability
def qpdf_version(qpdf=None):
    exe = qpdf or shutil.which("qpdf")
    if not exe:
        return None, None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return None, None
    m = re.search(r"qpdf version (\S+)", out)
    return exe, (m.group(1) if m else "unknown")


def run_qpdf(exe, path, warnings_fail=True):
    p = subprocess.run([exe, "--check", path], capture_output=True, timeout=600)
    if p.returncode == 0 or (p.returncode == 3 and not warnings_fail):
        return None
    lines = [ln for ln in (p.stdout + p.stderr).decode("utf-8", "replace").splitlines()
             if ln.strip() and not ln.startswith(("checking ", "PDF Version", "File is not", "R = ",
                                                  "P = ", "User password", "extract for", "modify"))]
    return "qpdf --check rc=%d: %s" % (p.returncode, "; ".join(lines[-3:])[:400])


def _check_png(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("no PNG signature")
    pos, n = 8, len(data)
    while pos < n:
        ln = int.from_bytes(data[pos:pos + 4], "big")
        typ = data[pos + 4:pos + 8]
        end = pos + 12 + ln
        if end > n:
            raise ValueError("PNG chunk %r truncated" % bytes(typ))
        crc = int.from_bytes(data[end - 4:end], "big")
        if zlib.crc32(data[pos + 4:end - 4]) != crc:
            raise ValueError("PNG chunk %r CRC mismatch" % bytes(typ))
        if typ == b"IEND":
            return
        pos = end
    raise ValueError("PNG without IEND")


def check_format(fmt, data, path):
    """Stdlib usability check; returns info dict, raises on failure."""
    if fmt == "pdf":
        return check_pdf(data)
    if fmt in ("ofd", "zip"):
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            if bad:
                raise ValueError("zip member %s is corrupt" % bad)
            if fmt == "ofd" and "OFD.xml" not in z.namelist():
                raise ValueError("OFD package without OFD.xml")
        return {}
    if fmt == "xml":
        xml.dom.minidom.parseString(bytes(data))
        return {}
    if fmt == "png":
        _check_png(data)
        return {}
    if fmt in ("jpg", "jpeg"):
        if data[:3] != b"\xff\xd8\xff" or bytes(data[-2:]) != b"\xff\xd9":
            raise ValueError("JPEG without SOI/EOI markers (truncated?)")
        return {}
    if fmt in ("tif", "tiff"):
        if bytes(data[:4]) not in (b"II*\0", b"MM\0*"):
            raise ValueError("no TIFF header")
        return {}
    if fmt in ("txt", "csv"):
        bytes(data).decode("utf-8")
        return {}
    raise ValueError("no usability checker for format %r" % fmt)


# ------------------------------------------------------------ security
# A scanner's report of one infected file, as clamscan prints it (``--infected``): "PATH: SIGNATURE
# FOUND". The path may itself contain ": "; the signature never contains a space.
_FOUND = re.compile(r"^(?P<path>.+): (?P<signature>\S+) FOUND$")


def parse_found(output, root):
    """``PATH: SIGNATURE FOUND`` lines of a scanner's output -> ``[{path, signature}]`` in the
    order reported, once per (path, signature); a path inside ``root`` is made relative to it
    (the form the rest of the check uses), any other is kept as printed."""
    root = root.rstrip("/")
    found, seen = [], set()
    for line in output.splitlines():
        m = _FOUND.match(line.rstrip("\r"))
        if not m:
            continue
        path = m.group("path")
        if path.startswith(root + "/"):
            path = path[len(root) + 1:]
        key = (path, m.group("signature"))
        if key not in seen:
            seen.add(key)
            found.append({"path": path, "signature": m.group("signature")})
    return found


def _scan_argv(cmd):
    if isinstance(cmd, (list, tuple)):
        return [str(c) for c in cmd]
    return shlex.split(cmd)


def run_scan(cmd, root, paths, ok_codes=(0,), infected_codes=(1,), workers=4, timeout=86400):
    """Run the malware-scan hook. ``{root}`` in the command -> run once for the
    tree (appended if neither placeholder is given); ``{path}`` -> once per file.
    Exit code in ok_codes = clean, in infected_codes = infected, else error.
    In tree mode every ``PATH: SIGNATURE FOUND`` line (clamscan) is one infected
    file, named relative to the root; a scanner that names none is reported as
    the root. ``timeout`` (seconds) bounds each scanner process: one clamscan over
    the whole archive (hundreds of GB) takes hours, not one."""
    argv = _scan_argv(cmd)
    res = {"command": argv, "mode": None, "status": "clean", "infected": [], "errors": [], "output": ""}

    def classify(rc):
        if rc in ok_codes:
            return "clean"
        if rc in infected_codes:
            return "infected"
        return "error"

    if any("{path}" in a for a in argv):
        res["mode"] = "per-file"

        def one(rel):
            full = os.path.join(root, rel)
            try:
                p = subprocess.run([a.replace("{path}", full).replace("{root}", root) for a in argv],
                                   capture_output=True, timeout=timeout)
                return rel, classify(p.returncode), p.returncode, (p.stdout + p.stderr)[-300:]
            except (OSError, subprocess.TimeoutExpired) as e:
                return rel, "error", None, str(e).encode()

        with ThreadPoolExecutor(max_workers=workers) as ex:
            for rel, st, rc, out in ex.map(one, paths):
                if st == "infected":
                    text = out.decode("utf-8", "replace").strip()
                    item = {"path": rel, "exit_code": rc, "output": text}
                    sigs = [f["signature"] for f in parse_found(text, root)]
                    if sigs:
                        item["signature"] = ", ".join(sigs)
                    res["infected"].append(item)
                elif st == "error":
                    res["errors"].append({"path": rel, "exit_code": rc,
                                          "output": out.decode("utf-8", "replace").strip()})
    else:
        res["mode"] = "tree"
        if any("{root}" in a for a in argv):
            argv = [a.replace("{root}", root) for a in argv]
        else:
            argv = argv + [root]
        try:
            p = subprocess.run(argv, capture_output=True, timeout=timeout)
            rc, out = p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
        except (OSError, subprocess.TimeoutExpired) as e:
            rc, out = None, str(e)
        res["exit_code"] = rc
        res["output"] = out[-2000:]
        st = "error" if rc is None else classify(rc)
        # The exit code decides whether anything was found; the FOUND lines say what and where.
        # They count on an error exit too (a scanner may report both), never on a clean one.
        found = parse_found(out, root) if st != "clean" else []
        for f in found:
            res["infected"].append(dict(f, exit_code=rc))
        if st == "infected" and not found:
            # a scanner that names no file: the tree is infected, its output says the rest
            named = [ln.strip() for ln in out.splitlines() if root in ln or "FOUND" in ln]
            res["infected"].append({"path": root, "exit_code": rc, "output": "\n".join(named[-50:])})
        elif st == "error":
            res["errors"].append({"path": root, "exit_code": rc, "output": out[-500:]})
    if res["errors"]:
        res["status"] = "error"
    elif res["infected"]:
        res["status"] = "infected"
    return res


# ------------------------------------------------------------ the check
def _fail(lst, limit, item):
    lst.append(item) if len(lst) < limit else None


def verify(root, rows, scan_command=None, scan_ok_codes=(0,), scan_infected_codes=(1,),
           usability="auto", qpdf=None, qpdf_warnings_fail=True, workers=None,
           exclude=(), require_scan=False, max_report=500, check_pages=True, scan_timeout=86400):
    """Run the four-property check of the tree ``root`` against ``rows``
    (dicts with the archive_item columns). Returns a JSON-serialisable dict;
    ``result["ok"]`` is False on any failure."""
    t0 = time.monotonic()
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError("archive root %s is not a directory" % root)
    workers = workers or min(16, 2 * (os.cpu_count() or 1))
    P = {k: {"ok": True, "failures": [], "failure_count": 0} for k in PROPERTIES}

    def fail(prop, **item):
        P[prop]["ok"] = False
        P[prop]["failure_count"] += 1
        _fail(P[prop]["failures"], max_report, item)

    # --- integrity: the metadata itself
    by_path, seen_no, groups = {}, set(), {}
    for r in rows:
        no = r.get("archive_no") or ""
        if no in seen_no:
            fail("integrity", kind="duplicate_archive_no", archive_no=no)
        seen_no.add(no)
        g, seq = archive_group(no)
        if g is None:
            fail("integrity", kind="bad_archive_no", archive_no=no)
        else:
            groups.setdefault(g, []).append(seq)
        fp = (r.get("file_path") or "").lstrip("/")
        if fp in by_path:
            fail("integrity", kind="duplicate_file_path", path=fp, archive_no=no)
        by_path[fp] = r
    gaps = []
    for g, seqs in sorted(groups.items()):
        have = set(seqs)
        missing = sorted(set(range(1, max(have) + 1)) - have)
        if missing:
            gaps.append({"group": g, "missing": missing[:200], "missing_count": len(missing)})
            fail("integrity", kind="gap_in_numbering", group=g, missing=missing[:50],
                 missing_count=len(missing))

    # --- the tree
    files = [f for f in walk_files(root, exclude_dirs=tuple(exclude))
             if not any(f == e or f.startswith(e.rstrip("/") + "/") for e in exclude)]
    on_disk = set(files)
    foreign = [f for f in files if f not in by_path]
    for f in foreign:
        fail("integrity", kind="file_without_row", path=f)
        fail("security", kind="foreign_file", path=f)
    for fp, r in by_path.items():
        if fp not in on_disk:
            fail("integrity", kind="missing_file", path=fp, archive_no=r.get("archive_no"))

    # --- usability tools
    checkers = []
    qexe, qver = (None, None)
    if usability in ("auto", "qpdf", "both"):
        qexe, qver = qpdf_version(qpdf)
        if usability in ("qpdf", "both") and not qexe:
            raise RuntimeError("usability=%s but qpdf is not installed" % usability)
    use_stdlib = usability in ("auto", "stdlib", "both")
    if use_stdlib:
        checkers.append("stdlib (pdf,ofd,zip,xml,png,jpeg,tiff)")
    if qexe:
        checkers.append("qpdf %s --check (pdf)" % qver)

    # --- per-file work: one read -> sha256 + sm3 (+ stdlib parse); qpdf
    todo = [(fp, r) for fp, r in sorted(by_path.items()) if fp in on_disk]

    def work(item):
        fp, r = item
        full = os.path.join(root, fp)
        out = {"path": fp, "archive_no": r.get("archive_no"), "errors": []}
        try:
            sha, sm3, size, mm = hash_file(full, want_map=True)
        except OSError as e:
            out["read_error"] = str(e)
            return out
        out.update(sha256=sha, sm3=sm3, size=size)
        fmt = (r.get("format") or os.path.splitext(fp)[1].lstrip(".")).lower()
        try:
            if use_stdlib:
                try:
                    info = check_format(fmt, mm, full)
                    if check_pages and fmt == "pdf" and r.get("pages") and info.get("pages") != r["pages"]:
                        out["errors"].append("PDF has %s pages, metadata says %s" % (info.get("pages"), r["pages"]))
                except Exception as e:  # any parser error means: does not open
                    out["errors"].append("%s: %s" % (type(e).__name__, e))
        finally:
            if mm:
                mm.close()
        if qexe and fmt == "pdf":
            msg = run_qpdf(qexe, full, qpdf_warnings_fail)
            if msg:
                out["errors"].append(msg)
        return out

    nbytes = 0
    t_hash = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for res in ex.map(work, todo):
            r = by_path[res["path"]]
            if "read_error" in res:
                fail("authenticity", kind="unreadable", path=res["path"], archive_no=res["archive_no"],
                     error=res["read_error"])
                fail("usability", kind="unreadable", path=res["path"], error=res["read_error"])
                continue
            nbytes += res["size"]
            for field, actual in (("sha256", res["sha256"]), ("sm3", res["sm3"]), ("size_bytes", res["size"])):
                exp = r.get(field)
                if exp in (None, ""):
                    if field != "size_bytes":
                        fail("authenticity", kind="no_reference_value", field=field, path=res["path"],
                             archive_no=res["archive_no"])
                    continue
                if exp != actual:
                    fail("authenticity", kind="mismatch", field=field, path=res["path"],
                         archive_no=res["archive_no"], expected=exp, actual=actual)
            for e in res["errors"]:
                fail("usability", kind="does_not_parse", path=res["path"], archive_no=res["archive_no"],
                     format=r.get("format"), error=e)
    hash_seconds = time.monotonic() - t_hash

    # --- security: scan hook
    scan = None
    if scan_command:
        scan = run_scan(scan_command, root, files, tuple(scan_ok_codes), tuple(scan_infected_codes), workers,
                        timeout=scan_timeout)
        for i in scan["infected"]:
            fail("security", kind="scan_infected", **i)
        for e in scan["errors"]:
            fail("security", kind="scan_error", **e)
    elif require_scan:
        fail("security", kind="scan_not_configured")

    P["authenticity"]["checked"] = len(todo)
    P["authenticity"]["algorithms"] = ["sha256", "sm3" + ("" if SM3_NATIVE else " (pure-python)")]
    P["integrity"].update(rows=len(rows), files=len(files), groups=len(groups), gaps=gaps[:100],
                          missing_files=len([1 for fp in by_path if fp not in on_disk]),
                          files_without_row=len(foreign))
    P["usability"].update(checkers=checkers, checked=len(todo), mode=usability)
    P["security"].update(scan=scan if scan else {"status": "not configured"}, foreign_files=len(foreign))
    dt = time.monotonic() - t0
    return {
        "ok": all(P[k]["ok"] for k in PROPERTIES),
        "root": root, "rows": len(rows), "files": len(files), "bytes": nbytes,
        "seconds": round(dt, 3), "hash_seconds": round(hash_seconds, 3),
        "mb_per_s": round(nbytes / 1048576 / hash_seconds, 1) if hash_seconds > 0 else None,
        "workers": workers,
        "properties": P,
    }


def summary_text(res):
    mb = res["bytes"] / 1048576
    lines = ["四性检测 four-property check: %s  (%d rows, %d files, %.1f MB, %.1f s, %s MB/s)" % (
        "PASS 通过" if res["ok"] else "FAIL 不通过", res["rows"], res["files"], mb, res["seconds"],
        res["mb_per_s"])]
    P = res["properties"]
    for k in PROPERTIES:
        p = P[k]
        if k == "authenticity":
            detail = "%d files, %s" % (p["checked"], "+".join(p["algorithms"]))
        elif k == "integrity":
            detail = "%d missing files, %d files without row, %d numbering gaps, %d groups" % (
                p["missing_files"], p["files_without_row"], len(p["gaps"]), p["groups"])
        elif k == "usability":
            detail = "%d files; %s" % (p["checked"], ", ".join(p["checkers"]) or "no checker")
        else:
            s = p["scan"]
            detail = "scan %s; %d foreign files" % (s.get("status"), p["foreign_files"])
        lines.append("  %s %-12s %s  %s" % (LABELS[k], k, "OK  " if p["ok"] else "FAIL", detail))
        for f in p["failures"][:5]:
            lines.append("      - " + ", ".join("%s=%s" % (a, b) for a, b in f.items()
                                                if a not in ("expected", "actual", "output"))[:200])
        if p["failure_count"] > 5:
            lines.append("      ... %d more" % (p["failure_count"] - 5))
    return "\n".join(lines)
