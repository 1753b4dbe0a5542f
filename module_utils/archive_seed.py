# -*- coding: utf-8 -*-
"""Deterministic lab data generator: scanned accounting-voucher PDFs and
their ``archive_item`` metadata rows (stdlib only; runs on the controller or,
through ``library/archive_seed.py``, directly on the archive host).

Every item ``i`` is derived from ``Random("<seed>:<i>")`` alone, so the same
seed gives byte-identical files and rows, in any process/thread layout.

Output layout under ``out_dir``::

    files/<fonds>/<year>/<fonds>-KJ-<year>-<ret>-<seq>.pdf
    archive_item.csv     header + rows, columns = archive_fixity.COLUMNS
    archive_item.copy.sql  psql script: COPY archive_item (...) FROM stdin (CSV)
    summary.json
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor

from ansible.module_utils.archive_fixity import (
    COLUMNS, format_archive_no, new_sm3, rows_to_csv,
)

KB = 1024
MB = 1024 * 1024
DEFAULT_ITEMS = 200                # ~300 MB with the default distribution
SIZE_MEDIAN = 1.2 * MB             # log-normal median
SIZE_SIGMA = 0.7
SIZE_MIN = 150 * KB
SIZE_MAX = 12 * MB
MEAN_SIZE = SIZE_MEDIAN * math.exp(SIZE_SIGMA ** 2 / 2)
# The real archive: 67,335 items, ~670,000 pages, 219 GB (about 10 pages and 3.3 MB an item).
# Pages follow the item's drawn size at the real archive's density, before any --total-size
# scaling: a smaller lab archive keeps the real page count and has thinner pages.
REAL_ITEMS, REAL_PAGES = 67335, 670000
PAGE_BYTES = MEAN_SIZE * REAL_ITEMS / REAL_PAGES
IMG_W = 800                        # raster width in pixels (8-bit gray)
VOUCHER_BOX = (680, 397)           # 240 mm x 140 mm voucher, in points
FONDS = (("Z001", "本级"), ("Z002", "第一研究所"), ("Z003", "第二研究所"))
YEARS = tuple(range(2015, 2025))
RETENTION_WEIGHTS = (("30年", 70), ("10年", 20), ("永久", 10))
CATEGORY = "KJ"

_PAPER = bytes(215 + (b * 36) // 256 for b in range(256))  # noise -> light paper grays


def _size_for(rng):
    s = rng.lognormvariate(math.log(SIZE_MEDIAN), SIZE_SIGMA)
    return int(min(max(s, SIZE_MIN), SIZE_MAX))


def plan_items(items, seed, total_size=None, fonds=FONDS, years=YEARS):
    """Metadata skeleton for all items (no file data yet)."""
    if items is None:
        items = max(1, int(round((total_size or DEFAULT_ITEMS * MEAN_SIZE) / MEAN_SIZE)))
    items = int(items)
    if items < 1:
        raise ValueError("items must be >= 1")
    specs = []
    for i in range(items):
        rng = random.Random("%s:%d" % (seed, i))
        f_code, f_name = fonds[rng.randrange(len(fonds))]
        year = years[rng.randrange(len(years))]
        ret = rng.choices([r for r, _ in RETENTION_WEIGHTS],
                          [w for _, w in RETENTION_WEIGHTS])[0]
        specs.append({"i": i, "fonds": f_code, "fonds_name": f_name, "year": year,
                      "retention": ret, "size": _size_for(rng),
                      "month": rng.randint(1, 12), "nvouchers": rng.randint(5, 40),
                      "first_voucher": rng.randint(1, 400)})
    for s in specs:
        s["pages"] = max(1, min(200, int(round(s["size"] / PAGE_BYTES))))
    if total_size:
        factor = float(total_size) / sum(s["size"] for s in specs)
        for s in specs:
            s["size"] = max(16 * KB, int(s["size"] * factor))
    counters = {}
    for s in specs:
        key = (s["fonds"], s["year"], s["retention"])
        counters[key] = counters.get(key, 0) + 1
        s["seq"] = counters[key]
        s["archive_no"] = format_archive_no(s["fonds"], CATEGORY, s["year"], s["retention"], s["seq"])
        s["file_path"] = "%s/%d/%s.pdf" % (s["fonds"], s["year"],
                                          s["archive_no"].replace("·", "-"))
        a = s["first_voucher"]
        b = a + s["nvouchers"] - 1
        s["voucher_nos"] = ";".join("记-%04d" % n for n in range(a, b + 1))
        s["title"] = "%s%d年%02d月记账凭证（记-%04d至记-%04d）" % (
            s["fonds_name"], s["year"], s["month"], a, b)
    return specs


def _pdf_text(s):
    return "(" + s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _utf16(s):
    return "<FEFF" + s.encode("utf-16-be").hex().upper() + ">"


def _page_raster(rng, nbytes):
    h = max(2, -(-nbytes // IMG_W))  # rows rounded up: thin pages would otherwise lose a row each
    buf = bytearray(rng.randbytes(IMG_W * h).translate(_PAPER))
    dark = b"\x30" * IMG_W
    step = max(6, h // 14)
    for r in range(step, h - 1, step):               # ruled lines of the voucher form
        buf[r * IMG_W:(r + 1) * IMG_W] = dark
    for c in (IMG_W // 6, IMG_W // 2, IMG_W * 5 // 6):  # column rules
        buf[c::IMG_W] = b"\x30" * h
    return h, bytes(buf)


def build_pdf(spec, seed):
    """Yield the PDF as a list of byte chunks (big image chunks not copied)."""
    rng = random.Random("%s:%d:data" % (seed, spec["i"]))
    pages = spec["pages"]
    overhead = 1200 + 900 * pages
    per_page = max(IMG_W * 2, (spec["size"] - overhead) // pages)
    chunks = []
    offsets = {}
    pos = 0

    def add(b):
        nonlocal pos
        chunks.append(b)
        pos += len(b)

    def obj(num, body, stream=None):
        offsets[num] = pos
        if stream is None:
            add(b"%d 0 obj\n%s\nendobj\n" % (num, body))
        else:
            add(b"%d 0 obj\n%s\nstream\n" % (num, body))
            add(stream)
            add(b"\nendstream\nendobj\n")

    add(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    # 1 catalog, 2 pages, 3 font, 4 info; per page k: page, content, image
    page_nums = [5 + 3 * k for k in range(pages)]
    obj(1, b"<< /Type /Catalog /Pages 2 0 R /Lang (zh-CN) >>")
    kids = b" ".join(b"%d 0 R" % n for n in page_nums)
    w, h = VOUCHER_BOX
    obj(2, b"<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 %d %d] >>" % (kids, pages, w, h))
    obj(3, b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    date = "D:%04d%02d28120000+08'00'" % (spec["year"], spec["month"])
    info = "<< /Title %s /Subject (%s) /Author %s /Producer (archive-dr seed) /CreationDate (%s) >>" % (
        _utf16(spec["title"]), spec["archive_no"].replace("·", "-"), _utf16(spec["fonds_name"]), date)
    obj(4, info.encode("ascii"))
    vouchers = spec["voucher_nos"].split(";")
    for k, pn in enumerate(page_nums):
        ih, raster = _page_raster(rng, per_page)
        v = vouchers[k % len(vouchers)].replace("记", "JI")
        text = "%s  %s  page %d/%d  amount %d.%02d CNY" % (
            spec["archive_no"].replace("·", "-"), v, k + 1, pages,
            rng.randint(10, 999999), rng.randint(0, 99))
        # image, then an invisible (3 Tr) OCR text layer: a double-layer PDF page
        content = ("q %d 0 0 %d 0 0 cm /Im%d Do Q\nBT /F1 11 Tf 3 Tr 40 %d Td %s Tj ET\n"
                   "BT /F1 7 Tf 0 Tr 12 8 Td %s Tj ET\n" % (
                       w, h, k + 1, h - 40, _pdf_text(text),
                       _pdf_text("scan %s p%d" % (spec["archive_no"].replace("·", "-"), k + 1))
                   )).encode("ascii")
        obj(pn, b"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >> "
                b"/XObject << /Im%d %d 0 R >> >> /Contents %d 0 R >>" % (k + 1, pn + 2, pn + 1))
        obj(pn + 1, b"<< /Length %d >>" % len(content), content)
        obj(pn + 2, b"<< /Type /XObject /Subtype /Image /Width %d /Height %d "
                    b"/ColorSpace /DeviceGray /BitsPerComponent 8 /Length %d >>"
            % (IMG_W, ih, len(raster)), raster)
    nobj = 5 + 3 * pages
    xref_at = pos
    xr = [b"xref\n0 %d\n0000000000 65535 f \n" % nobj]
    for n in range(1, nobj):
        xr.append(b"%010d 00000 n \n" % offsets[n])
    file_id = hashlib.md5(("%s:%s" % (seed, spec["archive_no"])).encode()).hexdigest().encode()
    xr.append(b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n"
              % (nobj, file_id, file_id, xref_at))
    add(b"".join(xr))
    return chunks


def _write_item(args):
    spec, seed, files_root = args
    path = os.path.join(files_root, spec["file_path"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    chunks = build_pdf(spec, seed)
    sha, sm3, size = hashlib.sha256(), new_sm3(), 0
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        for c in chunks:
            sha.update(c)
            sm3.update(c)
            size += len(c)
            f.write(c)
    os.replace(tmp, path)
    row = {k: spec.get(k) for k in COLUMNS}
    row.update({"category": CATEGORY, "size_bytes": size, "sha256": sha.hexdigest(),
                "sm3": sm3.hexdigest(), "format": "pdf"})
    return row


def write_metadata(rows, out_dir):
    csv_path = os.path.join(out_dir, "archive_item.csv")
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        rows_to_csv(rows, f)
    sql_path = os.path.join(out_dir, "archive_item.copy.sql")
    with open(sql_path, "w", encoding="utf-8", newline="") as f:
        f.write("-- generated by archive-dr seed; load with: psql -v ON_ERROR_STOP=1 -f %s\n"
                % os.path.basename(sql_path))
        f.write("COPY archive_item (%s) FROM stdin WITH (FORMAT csv, HEADER false);\n" % ", ".join(COLUMNS))
        rows_to_csv(rows, f, header=False)
        f.write("\\.\n")
    return csv_path, sql_path


def generate(out_dir, items=None, seed=1, total_size=None, workers=None,
             fonds=FONDS, years=YEARS):
    """Generate the archive under out_dir; returns a summary dict."""
    t0 = time.monotonic()
    out_dir = os.path.abspath(out_dir)
    files_root = os.path.join(out_dir, "files")
    os.makedirs(files_root, exist_ok=True)
    specs = plan_items(items, seed, total_size, fonds, years)
    workers = workers or min(8, os.cpu_count() or 1)
    args = [(s, seed, files_root) for s in specs]
    if workers > 1 and len(specs) > 4:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            rows = list(ex.map(_write_item, args, chunksize=4))
    else:
        rows = [_write_item(a) for a in args]
    csv_path, sql_path = write_metadata(rows, out_dir)
    total = sum(r["size_bytes"] for r in rows)
    dt = time.monotonic() - t0
    groups = {}
    for r in rows:
        groups.setdefault(r["archive_no"].rsplit("-", 1)[0], 0)
        groups[r["archive_no"].rsplit("-", 1)[0]] += 1
    sizes = sorted(r["size_bytes"] for r in rows)
    summary = {
        "out_dir": out_dir, "files_root": files_root, "manifest_csv": csv_path,
        "copy_sql": sql_path, "seed": seed, "items": len(rows), "pages": sum(r["pages"] for r in rows),
        "total_bytes": total, "min_bytes": sizes[0], "median_bytes": sizes[len(sizes) // 2],
        "max_bytes": sizes[-1], "groups": len(groups), "seconds": round(dt, 3),
        "mb_per_s": round(total / MB / dt, 1) if dt else None,
        "manifest_sha256": hashlib.sha256(open(csv_path, "rb").read()).hexdigest(),
    }
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, ensure_ascii=False, indent=2)
    return summary


def parse_size(s):
    """'300M', '2G', '512k', '1000' -> bytes."""
    if s is None:
        return None
    s = str(s).strip().upper().rstrip("B").rstrip("I")
    mult = {"K": KB, "M": MB, "G": 1024 * MB, "T": 1024 * 1024 * MB}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)
