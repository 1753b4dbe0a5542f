"""Seed generator: deterministic, valid PDFs, consistent metadata."""
import csv
import hashlib
import os
import re
import shutil
import subprocess

import pypdf
import pytest

from archive_dr import seed
from archive_dr.fixity import COLUMNS, SCHEMA_SQL, load, parse_archive_no

pdf = load("archive_pdf")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("seed")
    s = seed.generate(str(out), items=12, seed="t1", total_size=4 * 2**20, workers=2)
    return out, s


def _rows(out):
    with open(out / "archive_item.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_summary_and_sizes(archive):
    out, s = archive
    assert s["items"] == 12
    assert abs(s["total_bytes"] - 4 * 2**20) < 0.1 * 4 * 2**20
    assert s["min_bytes"] < s["median_bytes"] < s["max_bytes"]
    assert len(list((out / "files").rglob("*.pdf"))) == 12


def test_deterministic(tmp_path, archive):
    out, s = archive
    s2 = seed.generate(str(tmp_path / "again"), items=12, seed="t1", total_size=4 * 2**20, workers=1)
    assert s2["manifest_sha256"] == s["manifest_sha256"]
    a = (out / "archive_item.csv").read_bytes()
    assert a == (tmp_path / "again" / "archive_item.csv").read_bytes()
    r = _rows(out)[0]["file_path"]
    assert (out / "files" / r).read_bytes() == (tmp_path / "again" / "files" / r).read_bytes()
    s3 = seed.generate(str(tmp_path / "other"), items=12, seed="t2", total_size=4 * 2**20, workers=1)
    assert s3["manifest_sha256"] != s["manifest_sha256"]


def test_metadata_rows_match_files(archive):
    out, _ = archive
    rows = _rows(out)
    assert list(rows[0].keys()) == list(COLUMNS)
    groups = {}
    for r in rows:
        p = parse_archive_no(r["archive_no"])
        assert p and p["fonds"] == r["fonds"] and p["year"] == int(r["year"]) and p["seq"] == int(r["seq"])
        assert r["retention"] in ("永久", "30年", "10年") and r["format"] == "pdf"
        assert re.fullmatch(r"记-\d{4}(;记-\d{4})*", r["voucher_nos"])
        data = (out / "files" / r["file_path"]).read_bytes()
        assert len(data) == int(r["size_bytes"])
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert hashlib.new("sm3", data).hexdigest() == r["sm3"]
        groups.setdefault(r["archive_no"].rsplit("-", 1)[0], []).append(int(r["seq"]))
    for seqs in groups.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))


def test_pdfs_open_in_real_parsers(archive):
    out, _ = archive
    qpdf = shutil.which("qpdf")
    for r in _rows(out):
        path = out / "files" / r["file_path"]
        reader = pypdf.PdfReader(str(path), strict=True)
        assert len(reader.pages) == int(r["pages"])
        assert r["archive_no"].replace("·", "-") in reader.pages[0].extract_text()
        assert reader.metadata.title == r["title"]
        assert pdf.check_pdf(path.read_bytes())["pages"] == int(r["pages"])
        if qpdf:
            subprocess.run([qpdf, "--check", str(path)], check=True, capture_output=True)


def test_copy_sql_and_schema(archive):
    out, _ = archive
    sql = (out / "archive_item.copy.sql").read_text(encoding="utf-8")
    assert "COPY archive_item (%s) FROM stdin" % ", ".join(COLUMNS) in sql
    assert sql.rstrip().endswith("\\.")
    assert len(sql.strip().splitlines()) == 2 + 12 + 1
    ddl = open(SCHEMA_SQL, encoding="utf-8").read()
    for c in COLUMNS:
        assert re.search(r"^\s+%s\s" % c, ddl, re.M), c


def test_parse_size_and_bad_items():
    assert seed.parse_size("300M") == 300 * 2**20
    assert seed.parse_size("2G") == 2 * 2**30
    assert seed.parse_size("1000") == 1000
    with pytest.raises(ValueError):
        seed.plan_items(0, 1)


def test_cli(tmp_path, capsys):
    assert seed.main([str(tmp_path / "c"), "--items", "3", "--total-size", "1M", "--seed", "x"]) == 0
    assert "generated 3 items" in capsys.readouterr().out
    assert len(_rows(tmp_path / "c")) == 3
