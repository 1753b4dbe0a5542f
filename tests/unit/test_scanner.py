"""The four-property check's virus scan (security property): the project's ClamAV signatures
(roles/replica/files/clamav), the role's default scan command, the parsing of clamscan's
``PATH: SIGNATURE FOUND`` lines into named files, the role tasks and the depot's package list.

With clamscan on this machine (or CLAMSCAN=/path/to/clamscan) the shipped signatures also run in
the real scanner; otherwise that one test is skipped and the signatures are checked by format and
by a small matcher of their (plain-hex, fixed-offset) form.
"""
from __future__ import annotations

import os
import re
import shutil

import jinja2
import pytest
import yaml

from archive_dr import seed
from archive_dr.fixity import load, load_manifest
from archive_dr.paths import ROOT

av = load("archive_verify")

ROLE = ROOT / "roles" / "replica"
NDB = ROLE / "files" / "clamav" / "archive-dr.ndb"
# The EICAR test file's 68 characters, written in two parts so that no scanner flags this file.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SALTED = b"Salted__"                    # `openssl enc` with a passphrase: magic, then the 8-byte salt
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # ClamAV's naming rules: alphanumerics, dot, underscore (and -id-rev)


def signatures():
    """(name, target, offset, hex) of every signature line of the shipped .ndb."""
    out = []
    for line in NDB.read_text(encoding="ascii").splitlines():
        if line.startswith("#"):
            continue
        fields = line.split(":")
        assert 4 <= len(fields) <= 6, "not Name:TargetType:Offset:HexSignature[:min_flevel[:max_flevel]]: %r" % line
        out.append(tuple(fields[:4]))
    return out


def matches(data: bytes) -> list[str]:
    """Names of the shipped signatures that match ``data`` (their form: plain hex at an absolute offset)."""
    hits = []
    for name, _target, offset, hexsig in signatures():
        body = bytes.fromhex(hexsig)
        if offset == "*":
            hit = body in data
        else:
            hit = data[int(offset):int(offset) + len(body)] == body
        if hit:
            hits.append(name)
    return hits


def scan_command(mirror=""):
    """The role's default replica_verify_scan_command, rendered as Ansible would (defaults only)."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    context = dict(defaults, replica_scan_freshclam_mirror=mirror)
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(
        defaults["replica_verify_scan_command"]).render(context)


# ------------------------------------------------------------------ the shipped signatures

def test_the_shipped_database_parses_as_clamav_extended_signatures():
    text = NDB.read_text(encoding="ascii")      # ASCII only: ClamAV reads it byte by byte
    # clamav's .ndb loader skips lines starting with '#'; an empty line is a malformed signature
    assert all(line.strip() for line in text.splitlines()), "empty line in %s" % NDB.name
    sigs = signatures()
    assert len(sigs) >= 2
    names = [s[0] for s in sigs]
    assert len(names) == len(set(names)), "signature names must be unique"
    for name, target, offset, hexsig in sigs:
        assert NAME.match(name) and not name.endswith(".UNOFFICIAL"), name   # clamav appends that itself
        assert target.isdigit() and 0 <= int(target) <= 14, (name, target)
        assert offset == "*" or offset.isdigit(), (name, offset)
        assert len(hexsig) % 2 == 0 and re.fullmatch(r"[0-9a-f]+", hexsig), (name, hexsig)
        assert len(hexsig) >= 4, "ClamAV needs at least two fixed bytes: %s" % name


def test_the_signatures_are_the_eicar_file_and_the_openssl_salted_header():
    by_body = {bytes.fromhex(h): (n, t, o) for n, t, o, h in signatures()}
    assert len(EICAR) == 68
    assert by_body[EICAR] == ("Eicar.Test.ArchiveDR_EICAR-1-1", "0", "0")
    assert by_body[SALTED] == ("Multios.Ransomware.ArchiveDR_OpenSSL_Salted-2-1", "0", "0")


def test_the_lab_ransomware_still_leaves_the_salted_header():
    """The signature fits the drill's attack only while it encrypts with a passphrase (`openssl enc
    -pass`: "Salted__" + salt); with a raw key (-K/-iv) there is no header and the signature misses."""
    drill = (ROOT / "playbooks" / "drill.yml").read_text()
    attack = next(line for line in drill.splitlines() if "openssl enc" in line)
    assert "-pass" in attack and "-K " not in attack and "-nosalt" not in attack, attack


def test_the_signatures_hit_the_planted_files_and_miss_clean_archive_files(tmp_path):
    assert matches(EICAR) == ["Eicar.Test.ArchiveDR_EICAR-1-1"]
    assert matches(EICAR + b"\r\n") == ["Eicar.Test.ArchiveDR_EICAR-1-1"]
    assert matches(SALTED + os.urandom(8) + os.urandom(4096)) == ["Multios.Ransomware.ArchiveDR_OpenSSL_Salted-2-1"]
    # Only at the start of a file: the same bytes inside a document are no finding.
    assert matches(b"%PDF-1.7\n" + SALTED + EICAR) == []
    seed.generate(str(tmp_path), items=6, seed="scan", total_size=2**20, workers=1)
    pdfs = sorted((tmp_path / "files").rglob("*.pdf"))
    assert len(pdfs) == 6
    assert [p.name for p in pdfs if matches(p.read_bytes())] == []


# ------------------------------------------------------------------ the role's default command

def test_the_default_scan_command_is_one_clamscan_over_the_tree_with_the_shipped_signatures():
    argv = scan_command().split()
    assert argv[0] == "clamscan" and argv[-1] == "{root}" and "{path}" not in argv     # tree mode: one process
    assert {"--no-summary", "--infected", "--recursive"} <= set(argv)
    assert [a for a in argv if a.startswith("--database")] == ["--database=/var/lib/archive-dr/clamav"]
    # with a mirror, freshclam's official databases are loaded too (clamscan takes --database repeatedly)
    argv = scan_command("http://clamav-mirror.example.internal").split()
    assert [a for a in argv if a.startswith("--database")] == ["--database=/var/lib/archive-dr/clamav",
                                                                "--database=/var/lib/clamav"]
    assert argv[-1] == "{root}"


def _planted(tmp_path):
    root = tmp_path / "archive"
    seed.generate(str(tmp_path / "seed"), items=3, seed="scan", total_size=2**20, workers=1)
    shutil.copytree(tmp_path / "seed" / "files", root)
    rows = load_manifest(str(tmp_path / "seed" / "archive_item.csv"))
    (root / "sub dir").mkdir()
    (root / "eicar.pdf").write_bytes(EICAR)
    (root / "sub dir" / "report: 2026.pdf").write_bytes(SALTED + os.urandom(8) + os.urandom(1000))
    return root, rows


# ------------------------------------------------------------------ parsing clamscan's output

def test_found_lines_name_files_relative_to_the_root():
    out = "\n".join([
        "/srv/dr/restore/drill/files/Z001/2019/eicar.pdf: Eicar.Test.ArchiveDR_EICAR-1-1.UNOFFICIAL FOUND",
        "/srv/dr/restore/drill/files/sub dir/a: b.pdf: Multios.Ransomware.ArchiveDR_OpenSSL_Salted-2-1.UNOFFICIAL FOUND",
        "/srv/dr/restore/drill/files/Z001/2019/eicar.pdf: Eicar.Test.ArchiveDR_EICAR-1-1.UNOFFICIAL FOUND",
        "/srv/dr/restore/drill/files/x.pdf: Can't open file ERROR",
        "WARNING: /srv/dr/restore/drill/files/y.pdf: Can't access file",
        "LibClamAV Warning: something FOUND here",
        "/elsewhere/z.pdf: Win.Test.EICAR_HDB-1 FOUND\r",
    ])
    assert av.parse_found(out, "/srv/dr/restore/drill/files/") == [
        {"path": "Z001/2019/eicar.pdf", "signature": "Eicar.Test.ArchiveDR_EICAR-1-1.UNOFFICIAL"},
        {"path": "sub dir/a: b.pdf", "signature": "Multios.Ransomware.ArchiveDR_OpenSSL_Salted-2-1.UNOFFICIAL"},
        {"path": "/elsewhere/z.pdf", "signature": "Win.Test.EICAR_HDB-1"},
    ]
    assert av.parse_found("", "/r") == []


def _fake_scanner(lines, rc):
    """A tree-mode hook that prints clamscan-style lines for files under {root} and exits rc."""
    script = "".join('printf "%%s\\n" "$1/%s"; ' % line for line in lines) + "exit %d" % rc
    return ["sh", "-c", script, "scan", "{root}"]


def test_tree_mode_names_every_infected_file(tmp_path):
    res = av.run_scan(_fake_scanner(["a/eicar.pdf: Eicar.Test.X FOUND", "b c/enc.pdf: Ransom.Y FOUND"], 1),
                      str(tmp_path), [])
    assert res["mode"] == "tree" and res["status"] == "infected" and res["errors"] == []
    assert [(i["path"], i["signature"], i["exit_code"]) for i in res["infected"]] == [
        ("a/eicar.pdf", "Eicar.Test.X", 1), ("b c/enc.pdf", "Ransom.Y", 1)]


def test_tree_mode_exit_code_decides(tmp_path):
    # clean exit: FOUND text is not a finding
    res = av.run_scan(_fake_scanner(["a.pdf: Eicar.Test.X FOUND"], 0), str(tmp_path), [])
    assert res["status"] == "clean" and res["infected"] == []
    # infected exit without a FOUND line: the tree itself is named (a scanner that names no file)
    res = av.run_scan(["sh", "-c", "exit 1"], str(tmp_path), [])
    assert [i["path"] for i in res["infected"]] == [str(tmp_path)]
    # error exit with FOUND lines: both the error and the named file are reported
    res = av.run_scan(_fake_scanner(["a.pdf: Eicar.Test.X FOUND"], 2), str(tmp_path), [])
    assert res["status"] == "error"
    assert [i["path"] for i in res["infected"]] == ["a.pdf"] and len(res["errors"]) == 1


def test_per_file_mode_keeps_the_signature(tmp_path):
    (tmp_path / "x.pdf").write_bytes(b"x")
    hook = ["sh", "-c", 'echo "$1: Eicar.Test.X FOUND"; exit 1', "scan", "{path}"]
    res = av.run_scan(hook, str(tmp_path), ["x.pdf"])
    assert res["mode"] == "per-file"
    assert [(i["path"], i["signature"]) for i in res["infected"]] == [("x.pdf", "Eicar.Test.X")]


def test_a_planted_file_fails_security_and_the_summary_names_it(tmp_path):
    root, rows = _planted(tmp_path)
    hook = _fake_scanner(["eicar.pdf: Eicar.Test.ArchiveDR_EICAR-1-1.UNOFFICIAL FOUND"], 1)
    res = av.verify(str(root), rows, scan_command=hook)
    sec = res["properties"]["security"]
    assert not res["ok"] and not sec["ok"]
    scan = [f for f in sec["failures"] if f["kind"] == "scan_infected"]
    assert [(f["path"], f["signature"]) for f in scan] == [("eicar.pdf", "Eicar.Test.ArchiveDR_EICAR-1-1.UNOFFICIAL")]
    assert "kind=scan_infected, path=eicar.pdf, signature=Eicar.Test.ArchiveDR_EICAR-1-1.UNOFFICIAL" \
        in av.summary_text(res)
    # the planted files are also foreign (no metadata row): reported separately
    assert {f["path"] for f in sec["failures"] if f["kind"] == "foreign_file"} == {
        "eicar.pdf", "sub dir/report: 2026.pdf"}


def test_the_scan_timeout_reaches_the_scanner(tmp_path):
    res = av.verify(str(tmp_path), [], scan_command=["sh", "-c", "sleep 5", "scan", "{root}"], scan_timeout=1)
    assert res["properties"]["security"]["scan"]["status"] == "error"
    assert "timed out" in res["properties"]["security"]["failures"][0]["output"]


# ------------------------------------------------------------------ role tasks and the depot

def test_scanner_tasks_ship_the_database_and_run_where_the_check_runs():
    tasks = yaml.safe_load((ROLE / "tasks" / "scanner.yml").read_text())
    copies = [t["ansible.builtin.copy"] for t in tasks if "src" in t.get("ansible.builtin.copy", {})]
    assert [c["src"] for c in copies] == ["clamav/archive-dr.ndb"]
    assert (ROLE / "files" / copies[0]["src"]).is_file()
    units = {t["ansible.builtin.systemd_service"]["name"] for t in tasks if "ansible.builtin.systemd_service" in t}
    assert units == {"clamav-freshclam.service"}                 # never clamd
    for entry in ("main.yml", "source_primary.yml"):
        imports = [t.get("ansible.builtin.import_tasks") for t in yaml.safe_load((ROLE / "tasks" / entry).read_text())]
        assert "scanner.yml" in imports, entry
    specs = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    for entry in ("main", "source_primary", "four_property"):
        assert {"replica_scan_database_dir", "replica_scan_freshclam_mirror"} <= set(specs[entry]["options"]), entry
