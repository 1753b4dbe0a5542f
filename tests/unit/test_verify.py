"""Four-property check: a clean archive passes; each kind of damage is
caught by the right property (and only the expected ones)."""
import csv
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from archive_dr import runner, seed, verify as V
from archive_dr.fixity import COLUMNS, load, load_manifest

fx = load("archive_fixity")
pdf = load("archive_pdf")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    out = tmp_path_factory.mktemp("arch")
    seed.generate(str(out), items=14, seed="v1", total_size=3 * 2**20, workers=2)
    return out


@pytest.fixture
def arch(pristine, tmp_path):
    dst = tmp_path / "a"
    shutil.copytree(pristine, dst)
    rows = load_manifest(str(dst / "archive_item.csv"))
    return dst / "files", rows


def failing(res):
    return {k for k, v in res["properties"].items() if not v["ok"]}


def kinds(res, prop):
    return {f["kind"] for f in res["properties"][prop]["failures"]}


def _group_head(rows):
    """A row with seq 1 whose group has at least 2 items (removing it leaves a gap)."""
    groups = {}
    for r in rows:
        groups.setdefault(r["archive_no"].rsplit("-", 1)[0], []).append(r)
    for g in groups.values():
        if len(g) >= 2:
            return next(r for r in g if r["seq"] == 1)
    raise AssertionError("seed has no group with 2 items")


def test_clean_archive_passes(arch):
    root, rows = arch
    res = V.verify(str(root), rows)
    assert res["ok"], V.summary_text(res)
    assert res["properties"]["authenticity"]["checked"] == len(rows) == res["files"]
    assert res["bytes"] == sum(r["size_bytes"] for r in rows)
    assert res["properties"]["usability"]["checkers"][0].startswith("stdlib")
    assert any(c.startswith("qpdf") for c in res["properties"]["usability"]["checkers"])   # qpdf is installed
    json.dumps(res)  # machine-readable


def test_bit_flip_is_authenticity(arch):
    root, rows = arch
    p = root / rows[3]["file_path"]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01   # inside the page image: still a valid PDF
    p.write_bytes(bytes(data))
    res = V.verify(str(root), rows)
    assert failing(res) == {"authenticity"}
    fails = res["properties"]["authenticity"]["failures"]
    assert {f["field"] for f in fails} == {"sha256", "sm3"}
    assert {f["archive_no"] for f in fails} == {rows[3]["archive_no"]}


def test_deleted_file_is_integrity(arch):
    root, rows = arch
    os.remove(root / rows[0]["file_path"])
    res = V.verify(str(root), rows)
    assert failing(res) == {"integrity"}
    assert kinds(res, "integrity") == {"missing_file"}


def test_extra_file_is_integrity_and_security(arch):
    root, rows = arch
    (root / "Z001" / "dropper.exe").write_bytes(b"MZ\x90\x00")
    res = V.verify(str(root), rows)
    assert failing(res) == {"integrity", "security"}
    assert kinds(res, "integrity") == {"file_without_row"}
    assert res["properties"]["security"]["failures"] == [{"kind": "foreign_file", "path": "Z001/dropper.exe"}]


def test_missing_row_is_integrity(arch):
    root, rows = arch
    head = _group_head(rows)
    rows = [r for r in rows if r is not head]
    res = V.verify(str(root), rows)
    assert "integrity" in failing(res) and "authenticity" not in failing(res)
    assert kinds(res, "integrity") == {"file_without_row", "gap_in_numbering"}
    gap = res["properties"]["integrity"]["gaps"][0]
    assert gap["group"] == head["archive_no"].rsplit("-", 1)[0] and gap["missing"] == [1]


def test_gap_in_numbering_is_integrity(arch):
    root, rows = arch
    head = _group_head(rows)
    os.remove(root / head["file_path"])      # row and file both gone: only the number tells
    rows = [r for r in rows if r is not head]
    res = V.verify(str(root), rows)
    assert failing(res) == {"integrity"}
    assert kinds(res, "integrity") == {"gap_in_numbering"}


def test_truncated_pdf_is_usability(arch):
    root, rows = arch
    r = rows[5]
    p = root / r["file_path"]
    data = p.read_bytes()[: r["size_bytes"] * 2 // 3]
    p.write_bytes(data)
    # metadata updated to the truncated bytes: hashes agree, only usability can tell
    r["sha256"], r["sm3"] = fx.hash_bytes(data)
    r["size_bytes"] = len(data)
    res = V.verify(str(root), rows)
    assert failing(res) == {"usability"}
    errs = [f["error"] for f in res["properties"]["usability"]["failures"]]
    assert any("%%EOF" in e for e in errs)
    assert any(e.startswith("qpdf --check") for e in errs)   # both checkers flag it
    res2 = V.verify(str(root), rows, usability="stdlib")
    assert failing(res2) == {"usability"}


def test_page_count_mismatch_is_usability(arch):
    root, rows = arch
    rows[2]["pages"] += 1
    res = V.verify(str(root), rows, usability="stdlib")
    assert failing(res) == {"usability"}
    assert "pages" in res["properties"]["usability"]["failures"][0]["error"]


def test_renamed_file(arch):
    root, rows = arch
    src = root / rows[1]["file_path"]
    src.rename(src.with_name("renamed.pdf"))
    res = V.verify(str(root), rows)
    assert failing(res) == {"integrity", "security"}
    assert kinds(res, "integrity") == {"missing_file", "file_without_row"}


def test_scan_hook_infected_per_file(arch):
    root, rows = arch
    victim = rows[4]["file_path"]
    hook = ["sh", "-c", 'case "$1" in *%s) echo "$1: Eicar-Test FOUND"; exit 1;; esac; exit 0'
            % os.path.basename(victim), "scan", "{path}"]
    res = V.verify(str(root), rows, scan_command=hook)
    assert failing(res) == {"security"}
    f = res["properties"]["security"]["failures"]
    assert [(x["kind"], x["path"]) for x in f] == [("scan_infected", victim)]
    assert "FOUND" in f[0]["output"]


def test_scan_hook_tree_mode_codes(arch):
    root, rows = arch
    ok = V.verify(str(root), rows, scan_command="sh -c 'test -d \"$0\"' {root}")
    assert ok["ok"] and ok["properties"]["security"]["scan"]["status"] == "clean"
    infected = V.verify(str(root), rows, scan_command="sh -c 'exit 1'")
    assert kinds(infected, "security") == {"scan_infected"}
    broken = V.verify(str(root), rows, scan_command="sh -c 'exit 2'")
    assert kinds(broken, "security") == {"scan_error"}
    custom = V.verify(str(root), rows, scan_command="sh -c 'exit 3'", scan_ok_codes=(0, 3))
    assert custom["ok"]
    assert kinds(V.verify(str(root), rows, require_scan=True), "security") == {"scan_not_configured"}


def test_duplicate_and_malformed_numbers(arch):
    root, rows = arch
    rows.append(dict(rows[0]))
    rows[-1]["archive_no"] = "Z001-KJ-2019-0001"    # malformed
    rows.append(dict(rows[1]))                       # duplicate archive_no and path
    res = V.verify(str(root), rows)
    assert {"bad_archive_no", "duplicate_archive_no", "duplicate_file_path"} <= kinds(res, "integrity")


def test_stdlib_parser_reads_object_streams(arch, tmp_path):
    root, rows = arch
    src = root / rows[0]["file_path"]
    import pypdf
    w = pypdf.PdfWriter(clone_from=str(src))
    w.compress_identical_objects()
    out = tmp_path / "pypdf.pdf"
    w.write(str(out))
    assert pdf.check_pdf(out.read_bytes())["pages"] == rows[0]["pages"]
    os_pdf = tmp_path / "objstm.pdf"
    subprocess.run(["qpdf", "--object-streams=generate", "--compress-streams=y", str(src), str(os_pdf)],
                   check=True)
    info = pdf.check_pdf(os_pdf.read_bytes())
    assert info["pages"] == rows[0]["pages"] and info["xref"] == "stream"
    with pytest.raises(pdf.PDFError):
        pdf.check_pdf(b"%PDF-1.4\n" + b"x" * 100)


def test_pure_python_sm3_matches_openssl():
    for d in (b"", b"abc", b"abcd" * 16, os.urandom(1000)):
        assert fx._PySM3(d).hexdigest() == hashlib.new("sm3", d).hexdigest()


def test_cli_exit_codes(arch, tmp_path, capsys):
    root, rows = arch
    man = str(root.parent / "archive_item.csv")
    jout = tmp_path / "r.json"
    assert V.main([str(root), "--manifest", man, "--json-out", str(jout)]) == 0
    assert json.loads(jout.read_text())["ok"] is True
    assert "PASS" in capsys.readouterr().out
    os.remove(root / rows[0]["file_path"])
    assert V.main([str(root), "--manifest", man]) == 1
    assert V.main([str(root)]) == 2
    assert V.main([str(tmp_path / "nope"), "--manifest", man]) == 2


def _ansible(args, tmp_path):
    """archive_verify on localhost through the runner layer: (rc, the module's result)."""
    result = runner.run_module("archive_verify", args, "localhost", ["localhost,"],
                               extra_vars={"ansible_connection": "local"}, data_dir=tmp_path / "runner")
    failed = [dict(f.get("res") or {}, failed=True) for f in result.failures()]
    res = result.task_results("archive_verify", "localhost") + failed
    assert len(res) == 1, result.stdout[-3000:]
    return result.rc, res[0]


def test_ansible_module(arch, tmp_path):
    root, rows = arch
    man = str(root.parent / "archive_item.csv")
    rc, h = _ansible({"root": str(root), "manifest": man, "usability": "stdlib"}, tmp_path)
    assert rc == 0 and h["changed"] is False and h["passed"] is True
    (root / "stray.txt").write_text("x")
    rc, h = _ansible({"root": str(root), "manifest": man}, tmp_path)
    assert rc != 0 and h["failed"] and "integrity" in h["msg"] and h["changed"] is False
    rc, h = _ansible({"root": str(root), "manifest": man, "fail_on_error": False}, tmp_path)
    assert rc == 0 and h["passed"] is False and not h.get("failed")
