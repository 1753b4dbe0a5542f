# -*- coding: utf-8 -*-
"""Fixity and metadata primitives for the electronic accounting archive.

Stdlib-only (Python 3.11); runs on the controller (imported by ``archive_dr``)
and on target hosts (shipped by Ansible with the ``archive_*`` modules).

* ``hash_file`` - SHA-256 and SM3 of a file in ONE read (mmap + large slices,
  hashlib releases the GIL so a thread pool scales over cores).
* archive numbers (档号) ``Z001-KJ·2019-30-0001``: format / parse / group key.
* the ``archive_item`` metadata columns and CSV / JSON manifest I/O.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import mmap
import os
import re
import struct

CHUNK = 4 * 1024 * 1024

# Column order of table archive_item (see module_utils/archive_schema.sql)
# and of every CSV manifest written or read by these tools.
COLUMNS = (
    "archive_no", "fonds", "category", "year", "retention", "seq",
    "title", "voucher_nos", "pages", "file_path", "size_bytes",
    "sha256", "sm3", "format",
)
INT_COLUMNS = ("year", "seq", "pages", "size_bytes")

RETENTION_CODES = {"永久": "Y", "30年": "30", "10年": "10"}
RETENTION_BY_CODE = {v: k for k, v in RETENTION_CODES.items()}

# 档号: <fonds>-<category>·<year>-<retention code>-<seq (4+ digits)>
ARCHIVE_NO_RE = re.compile(
    r"^(?P<fonds>[A-Za-z0-9]+)-(?P<category>[A-Za-z]+)[·.](?P<year>\d{4})-"
    r"(?P<ret>Y|30|10|D\d+)-(?P<seq>\d{4,})$"
)


def format_archive_no(fonds, category, year, retention, seq):
    code = RETENTION_CODES.get(retention, retention)
    return "%s-%s·%04d-%s-%04d" % (fonds, category, int(year), code, int(seq))


def parse_archive_no(archive_no):
    """Return dict(fonds, category, year, ret, seq) or None if malformed."""
    m = ARCHIVE_NO_RE.match(archive_no or "")
    if not m:
        return None
    d = m.groupdict()
    d["year"] = int(d["year"])
    d["seq"] = int(d["seq"])
    return d


def archive_group(archive_no):
    """Numbering group of an archive number: everything before the sequence
    (fonds, category, year, retention). Sequences are contiguous (1..n) per group."""
    p = parse_archive_no(archive_no)
    if p is None:
        return None, None
    return archive_no.rsplit("-", 1)[0], p["seq"]


# --------------------------------------------------------------------- SM3
def _sm3_available():
    try:
        return hashlib.new("sm3", b"abc").hexdigest() == (
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    except (ValueError, TypeError):
        return False


SM3_NATIVE = _sm3_available()


class _PySM3:
    """Pure-Python SM3 (GB/T 32905-2016), used only where OpenSSL lacks sm3.
    Slow (~2 MB/s); hashlib's OpenSSL sm3 is used whenever available."""
    _IV = (0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600,
           0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E)
    name = "sm3"
    digest_size = 32

    def __init__(self, data=b""):
        self._v = list(self._IV)
        self._buf = b""
        self._n = 0
        if data:
            self.update(data)

    @staticmethod
    def _rotl(x, n):
        n %= 32
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    def _cf(self, block):
        rotl = self._rotl
        w = list(struct.unpack(">16I", block))
        for j in range(16, 68):
            x = w[j - 16] ^ w[j - 9] ^ rotl(w[j - 3], 15)
            x = x ^ rotl(x, 15) ^ rotl(x, 23)
            w.append(x ^ rotl(w[j - 13], 7) ^ w[j - 6])
        w1 = [w[j] ^ w[j + 4] for j in range(64)]
        a, b, c, d, e, f, g, h = self._v
        for j in range(64):
            t = 0x79CC4519 if j < 16 else 0x7A879D8A
            a12 = rotl(a, 12)
            ss1 = rotl((a12 + e + rotl(t, j)) & 0xFFFFFFFF, 7)
            ss2 = ss1 ^ a12
            if j < 16:
                ff = a ^ b ^ c
                gg = e ^ f ^ g
            else:
                ff = (a & b) | (a & c) | (b & c)
                gg = (e & f) | (~e & g)
            tt1 = (ff + d + ss2 + w1[j]) & 0xFFFFFFFF
            tt2 = (gg + h + ss1 + w[j]) & 0xFFFFFFFF
            d, c, b, a = c, rotl(b, 9), a, tt1
            h, g, f = g, rotl(f, 19), e
            e = tt2 ^ rotl(tt2, 9) ^ rotl(tt2, 17)
        self._v = [x ^ y for x, y in zip(self._v, (a, b, c, d, e, f, g, h))]

    def update(self, data):
        data = self._buf + bytes(data)
        self._n += len(data) - len(self._buf)
        n = len(data) // 64 * 64
        for i in range(0, n, 64):
            self._cf(data[i:i + 64])
        self._buf = data[n:]

    def hexdigest(self):
        saved = (list(self._v), self._buf, self._n)
        bits = self._n * 8
        pad = b"\x80" + b"\0" * ((55 - self._n) % 64) + struct.pack(">Q", bits)
        buf = self._buf + pad
        for i in range(0, len(buf), 64):
            self._cf(buf[i:i + 64])
        out = "".join("%08x" % x for x in self._v)
        self._v, self._buf, self._n = saved
        return out


def new_sm3(data=b""):
    if SM3_NATIVE:
        return hashlib.new("sm3", data)
    return _PySM3(data)


# --------------------------------------------------------------- hashing
def hash_bytes(data):
    return hashlib.sha256(data).hexdigest(), new_sm3(data).hexdigest()


def hash_file(path, want_map=False):
    """SHA-256 and SM3 of ``path`` in one pass over the data.

    Returns (sha256_hex, sm3_hex, size). With ``want_map=True`` returns a
    4th element: the open read-only mmap (or b"" for an empty file) so a
    caller can parse the same pages without reading the file again; the
    caller must close it.
    """
    sha = hashlib.sha256()
    sm3 = new_sm3()
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            res = (sha.hexdigest(), sm3.hexdigest(), 0)
            return res + (b"",) if want_map else res
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        try:
            mm.madvise(mmap.MADV_SEQUENTIAL)
        except (AttributeError, OSError):
            pass
        view = memoryview(mm)
        try:
            for off in range(0, size, CHUNK):
                part = view[off:off + CHUNK]
                sha.update(part)
                sm3.update(part)
                part.release()
        finally:
            view.release()
    except BaseException:
        mm.close()
        raise
    res = (sha.hexdigest(), sm3.hexdigest(), size)
    if want_map:
        return res + (mm,)
    mm.close()
    return res


# ------------------------------------------------------------ manifests
def normalize_row(row):
    """Coerce a row (dict with COLUMNS keys, strings allowed) to typed values."""
    out = {}
    for k in COLUMNS:
        v = row.get(k)
        if k in INT_COLUMNS:
            v = int(v) if v not in (None, "") else None
        elif v is None:
            v = ""
        out[k] = v
    out["sha256"] = (out["sha256"] or "").lower()
    out["sm3"] = (out["sm3"] or "").lower()
    out["format"] = (out["format"] or "").lower()
    return out


def rows_to_csv(rows, fh, header=True):
    w = csv.writer(fh, lineterminator="\n")
    if header:
        w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in COLUMNS])


def rows_from_csv_text(text):
    rdr = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("archive_no", "file_path", "sha256", "sm3")
               if c not in (rdr.fieldnames or [])]
    if missing:
        raise ValueError("CSV manifest lacks columns: %s" % ", ".join(missing))
    return [normalize_row(r) for r in rdr]


def load_manifest(path):
    """Rows from a CSV (header line with COLUMNS names) or JSON manifest
    (a list of row objects, or {"items": [...]})."""
    with open(path, "r", encoding="utf-8-sig", newline="") as f:
        text = f.read()
    if path.endswith(".json") or text.lstrip()[:1] in ("[", "{"):
        data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("items", [])
        return [normalize_row(r) for r in data]
    return rows_from_csv_text(text)


def walk_files(root, exclude_dirs=()):
    """Relative POSIX paths of all regular files and symlinks under root, sorted."""
    out = []
    root = os.path.abspath(root)
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    rel = os.path.relpath(e.path, root).replace(os.sep, "/")
                    if rel in exclude_dirs or e.name in exclude_dirs:
                        continue
                    stack.append(e.path)
                else:
                    out.append(os.path.relpath(e.path, root).replace(os.sep, "/"))
    out.sort()
    return out
