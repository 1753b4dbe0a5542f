"""The file-tree quarantine gate wired into the file replica's pulls (issue 14 item 1, docs/dr-history.md).

Real files in temporary directories: "geo" (the file store), the working copy and its snapshots.
The boundary is ``replica_tool.run``: a fake rsync mirrors geo into the working copy and prints
rsync's itemized output (``--out-format='%i %n'``), a fake btrfs copies the working copy into a
snapshot directory. What is tested is the pull's decision: snapshot, or hold in quarantine (no
snapshot, no pruning, exit 3) until an operator releases it. The lab test
tests/lab/test_dr_history.py runs the real rsync and btrfs against openssl-encrypted files at geo.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import subprocess
import zlib

import pytest

import dr_history
import replica_tool as rt  # module_utils/ is on the test path (pyproject.toml)

UTC = dt.timezone.utc
FILES = 1200                   # 5 % = 60 files: above min_changed (50) and 1 % of the tree


def pdf_bytes(rng, n):
    """A plausible PDF: text objects, a Flate stream of page content, the trailer and %%EOF."""
    text = b"".join(b"%d 0 obj << /Type /Page /Parent 2 0 R /Contents %d 0 R >> endobj\n" % (i, i + 1)
                    for i in range(3, 40))
    page = b" ".join(b"BT /F1 12 Tf 72 %d Td (Voucher %d amount %d.%02d) Tj ET" % (
        700 - i * 14, n, rng.randrange(99999), rng.randrange(100)) for i in range(120))
    stream = zlib.compress(page + rng.randbytes(rng.randrange(1000, 6000)))
    return (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" + text
            + b"40 0 obj << /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream
            + b"\nendstream\nendobj\nxref\n0 41\ntrailer << /Size 41 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % n)


def encrypted(data, rng):
    """What `openssl enc -aes-256-cbc -pbkdf2` leaves: 'Salted__', 8 bytes of salt, the ciphertext."""
    return b"Salted__" + rng.randbytes(8) + rng.randbytes((len(data) // 16 + 1) * 16)


def flip(path):
    """One byte changed in place, size and mtime kept (what rsync's quick check cannot see)."""
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def write(path, data, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def escaped(name):
    """A name as rsync prints it in the C locale: bytes above 127 as \\#ooo."""
    return "".join(chr(b) if b < 128 else "\\#%03o" % b for b in name.encode("utf-8"))


def mirror(src, dst, only=None, checksum=False):
    """rsync -a --delete src/ dst/ (or only the given paths): (itemized lines, bytes moved)."""
    lines, moved = [], 0
    want = {}
    for root, _dirs, files in os.walk(src):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), src)
            if only is None or rel in only:
                want[rel] = os.path.join(root, f)
    for rel in sorted(want):
        s, d = want[rel], os.path.join(dst, rel)
        ss = os.stat(s)
        if not os.path.exists(d):
            code = ">f+++++++++"
        else:
            ds = os.stat(d)
            differs = (open(s, "rb").read() != open(d, "rb").read()) if checksum else (
                ss.st_size != ds.st_size or ss.st_mtime_ns != ds.st_mtime_ns)
            if not differs:
                continue
            code = ">f%s%s%s......" % ("c" if checksum else ".", "s" if ss.st_size != ds.st_size else ".",
                                       "t" if ss.st_mtime_ns != ds.st_mtime_ns else ".")
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(s, d)
        moved += ss.st_size
        lines.append("%s %s" % (code, escaped(rel)))
    if only is None:
        for root, _dirs, files in os.walk(dst):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), dst)
                if rel not in want:
                    os.remove(os.path.join(root, f))
                    lines.append("*deleting   %s" % rel)
    return lines, moved


@pytest.fixture
def site(tmp_path, monkeypatch):
    """geo's file store with FILES PDFs, miyun's files job (working copy + snapshots), fake rsync and btrfs."""
    rng = random.Random(14)
    geo, working, snaps, status = tmp_path / "geo", tmp_path / "current", tmp_path / "snapshots", tmp_path / "status"
    base = dt.datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()
    for i in range(FILES):
        write(geo / ("Z001/2025/KJ%02d/%05d.pdf" % (i % 12 + 1, i)), pdf_bytes(rng, i), base - 86400 + i)
    cfg = {"status_dir": str(status), "textfile_dir": str(tmp_path / "prom"), "ssh": {"user": "replica-pull", "key": "/k", "known_hosts": "/kh"},
           "jobs": {"files": {"kind": "files", "host": "geo-archive", "working": str(working), "snapshots": str(snaps),
                              "phases": [{"src": "./", "dst": ""}], "max_delete": 1000, "snapshot_min_interval": 60,
                              "retention": {"keep_all_days": 3650, "hourly": 48}, "max_age": 0, "gate": {}}}}
    state = {"clock": base, "cfg": cfg, "geo": geo, "working": working, "snaps": snaps, "rng": rng,
             "rsync": [], "deleted": [], "pruned": 0}
    prune = rt.prune

    def counted_prune(snap_dir, policy, now=None):
        state["pruned"] += 1
        return prune(snap_dir, policy, now)

    def fake_run(argv, env=None, timeout=None):
        if argv[0] == "rsync":
            assert "--out-format=%i %n" in argv and "--delete" in argv
            only = {a[len("--include=/"):] for a in argv if a.startswith("--include=/") and not a.endswith("/")}
            lines, moved = mirror(str(geo), argv[-1], only or None, "--checksum" in argv)
            state["rsync"].append(lines)
            out = "\n".join(lines) + "\n\nTotal bytes received: %d\nTotal transferred file size: %d\n" % (moved, moved)
            return subprocess.CompletedProcess(argv, 0, out, "")
        if argv[:3] == ["btrfs", "subvolume", "snapshot"]:
            shutil.copytree(argv[-2], argv[-1], symlinks=True)
            return subprocess.CompletedProcess(argv, 0, "", "")
        if argv[:3] == ["btrfs", "subvolume", "delete"]:
            state["deleted"].append(os.path.basename(argv[3]))
            shutil.rmtree(argv[3])
            return subprocess.CompletedProcess(argv, 0, "", "")
        raise AssertionError("unexpected command %r" % (argv,))

    monkeypatch.setattr(rt, "run", fake_run)
    monkeypatch.setattr(rt, "prune", counted_prune)
    monkeypatch.setattr(rt, "ensure_subvolume", lambda path: os.makedirs(path, exist_ok=True))
    monkeypatch.setattr(rt, "timers", lambda: {})
    monkeypatch.setattr(rt.time, "time", lambda: state["clock"])
    return state


def pull(site, seconds=61):
    site["clock"] += seconds
    rc = rt.cmd_pull(site["cfg"], "files")
    return rc, rt.load_job_status(site["cfg"], "files")


def snapshots(site):
    return rt.list_snapshots(str(site["snaps"]))


def pdfs(site):
    return sorted(p for p in site["geo"].rglob("*.pdf"))


def critical(findings):
    return [f.split(":", 1)[0] for f in findings if f.startswith("CRITICAL")]


def baseline(site):
    """The first pull (the baseline snapshot), then a normal day: new vouchers arrive and are snapshotted."""
    rc, st = pull(site)
    assert rc == 0 and st["outcome"] == "success" and len(snapshots(site)) == 1
    assert [f.split(":")[0] for f in st["gate_findings"]] == ["WARNING baseline"]
    for i in range(5):
        write(site["geo"] / ("Z001/2026/KJ01/%05d.pdf" % i), pdf_bytes(site["rng"], 9000 + i), site["clock"])
    rc, st = pull(site)
    assert rc == 0 and st["gate_findings"] == [] and len(snapshots(site)) == 2
    return st


def test_ransomware_encrypting_5_percent_at_geo_is_held_after_one_pull_until_released(site):
    baseline(site)
    before = snapshots(site)
    victims = site["rng"].sample(pdfs(site), FILES * 5 // 100)
    originals = {p: (p.read_bytes(), p.stat().st_mtime) for p in victims}
    for p in victims:                                   # openssl enc in place: new content, new mtime
        write(p, encrypted(p.read_bytes(), site["rng"]), site["clock"] + 5)

    pruned = site["pruned"]
    rc, st = pull(site)
    assert rc == 3 and st["outcome"] == "quarantine"
    q = st["quarantine"]
    assert critical(q["findings"]) == ["CRITICAL mass-change", "CRITICAL suspicious-content"], q["findings"]
    assert "60 of 1205 files modified" in " ".join(q["findings"]) and "60 of 60 changed files" in " ".join(q["findings"])
    assert (q["changed_files"], q["modified"], q["snapshot_files"], q["baseline_snapshot"]) == (60, 60, 1205, before[-1])
    assert snapshots(site) == before, "a quarantined pull became history"
    assert site["pruned"] == pruned and site["deleted"] == [], "a quarantined pull pruned snapshots"
    # the working copy follows geo (it is what a promotion serves); the pre-attack snapshot is intact
    victim = os.path.relpath(victims[0], site["geo"])
    assert (site["working"] / victim).read_bytes().startswith(b"Salted__")
    assert all((site["snaps"] / before[-1] / os.path.relpath(p, site["geo"])).read_bytes() == data
               for p, (data, _) in originals.items())
    prom = open(os.path.join(site["cfg"]["textfile_dir"], "archive_dr_replica.prom")).read()
    assert 'archive_dr_replica_quarantined{job="files"} 1' in prom
    assert 'archive_dr_replica_last_outcome_success{job="files"} 0' in prom
    assert rt.cmd_deadman(site["cfg"]) == 1

    # new files keep arriving and reach the working copy; history stays at the last good snapshot
    write(site["geo"] / "Z001/2026/KJ01/09999.pdf", pdf_bytes(site["rng"], 9999), site["clock"])
    rc, st = pull(site)
    assert rc == 3 and snapshots(site) == before and (site["working"] / "Z001/2026/KJ01/09999.pdf").exists()
    assert site["pruned"] == pruned
    assert "60 of 61 changed files" in " ".join(st["quarantine"]["last_findings"])

    # geo repaired (files back with their own mtimes): the copy looks clean, and is still held
    for p, (data, mtime) in originals.items():
        write(p, data, mtime)
    rc, st = pull(site)
    assert rc == 3 and st["quarantine"]["last_findings"] == [] and st["quarantine"]["changed_files"] == 1
    assert critical(st["quarantine"]["findings"]) == ["CRITICAL mass-change", "CRITICAL suspicious-content"]
    assert "held since" in st["last_message"]

    site["clock"] += 30
    assert rt.cmd_release(site["cfg"], "files", "zhang.wei", "geo repaired from the appliance, files verified") == 0
    st = rt.load_job_status(site["cfg"], "files")
    assert "quarantine" not in st and st["outcome"] == "success" and len(snapshots(site)) == len(before) + 1
    assert rt.load_window(site["cfg"], "files") == set()
    log = [json.loads(line) for line in open(os.path.join(site["cfg"]["status_dir"], "files.releases.jsonl"))]
    assert [(r["by"], r["snapshot"]) for r in log] == [("zhang.wei", snapshots(site)[-1])]
    assert critical(log[0]["quarantine"]["findings"]) == ["CRITICAL mass-change", "CRITICAL suspicious-content"]
    assert not os.path.exists(rt.accepted_points_path(site["cfg"], "files")), "a file tree has no restore points"
    rc, st = pull(site)
    assert rc == 0 and st["outcome"] == "success"


def test_new_valid_pdfs_and_a_handful_of_legitimate_edits_are_snapshotted(site):
    baseline(site)
    for i in range(40):                                 # a day's new vouchers
        write(site["geo"] / ("Z001/2026/KJ02/%05d.pdf" % i), pdf_bytes(site["rng"], 8000 + i), site["clock"])
    for n, p in enumerate(pdfs(site)[:5]):              # corrected scans, saved again
        write(p, pdf_bytes(site["rng"], 7000 + n), site["clock"])
    for p in pdfs(site)[-2:]:                           # two withdrawn
        p.unlink()
    (site["geo"] / "Z001/2026/KJ02/readme.txt").write_text("清单\n")
    before = snapshots(site)
    rc, st = pull(site)
    assert rc == 0 and st["outcome"] == "success", st.get("last_message")
    assert critical(st["gate_findings"]) == [] and len(snapshots(site)) == len(before) + 1
    assert rt.load_window(site["cfg"], "files") == set(), "a snapshot empties the window"


def test_a_few_broken_scans_are_a_warning_not_a_quarantine(site):
    baseline(site)
    for i in range(30):
        write(site["geo"] / ("Z001/2026/KJ03/%05d.pdf" % i), pdf_bytes(site["rng"], 6000 + i), site["clock"])
    for i in range(2):                                  # a scanner wrote two truncated files
        write(site["geo"] / ("Z001/2026/KJ03/bad%d.pdf" % i), pdf_bytes(site["rng"], i)[:3000], site["clock"])
    rc, st = pull(site)
    assert rc == 0 and [f.split(":")[0] for f in st["gate_findings"]] == ["WARNING suspicious-content"]


def test_a_deletion_spread_over_pulls_is_judged_against_the_newest_snapshot(site):
    """Pulls every 10 s, snapshots at most every 60 s: the gate judges everything a snapshot would take in."""
    baseline(site)
    before = snapshots(site)
    files = pdfs(site)
    for p in files[:30]:
        p.unlink()
    rc, st = pull(site, seconds=10)                     # 30 deletions: below min_changed, too soon to snapshot
    assert rc == 0 and critical(st["gate_findings"]) == [] and snapshots(site) == before
    for p in files[30:60]:
        p.unlink()
    rc, st = pull(site, seconds=10)                     # 60 since the newest snapshot: a mass deletion
    assert rc == 3 and critical(st["quarantine"]["findings"]) == ["CRITICAL mass-change"]
    assert st["quarantine"]["deleted"] == 60 and snapshots(site) == before


def test_a_failed_pull_still_records_what_it_changed(site, monkeypatch):
    baseline(site)
    real = rt.run

    def cut(argv, env=None, timeout=None):
        r = real(argv, env, timeout)
        return subprocess.CompletedProcess(argv, 12 if argv[0] == "rsync" else r.returncode, r.stdout, "cut")

    for p in pdfs(site)[:60]:
        write(p, encrypted(p.read_bytes(), site["rng"]), site["clock"])
    monkeypatch.setattr(rt, "run", cut)
    rc, st = pull(site, seconds=10)
    assert rc == 1 and st["outcome"] == "failure" and len(rt.load_window(site["cfg"], "files")) == 60
    monkeypatch.setattr(rt, "run", real)
    rc, st = pull(site, seconds=10)                     # geo's side looks settled now: nothing to move
    assert site["rsync"][-1] == [] and rc == 3 and "CRITICAL suspicious-content" in " ".join(st["quarantine"]["findings"])


def test_what_a_verification_repair_brings_from_geo_passes_the_gate(site, monkeypatch):
    """Damage in the working copy is re-pulled from geo with --checksum: when geo's files were encrypted
    with their size and mtime kept, the quick check never moves them, but the repair does."""
    baseline(site)
    before = snapshots(site)
    victims = pdfs(site)[:4]
    records = {os.path.relpath(p, site["geo"]): hashlib.sha256(p.read_bytes()).hexdigest() for p in pdfs(site)}
    for p in victims:
        rel = os.path.relpath(p, site["geo"])
        flip(site["working"] / rel)                     # in-place damage at miyun, size and mtime kept
        st = p.stat()                                   # at geo: encrypted, size and mtime kept
        p.write_bytes(encrypted(p.read_bytes(), site["rng"])[:st.st_size])
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.setattr(rt, "fixity_records", lambda cfg, spec: dict(records))
    assert rt.cmd_verify(site["cfg"], "files", full=True) == 1   # re-pulled from geo: still not the record
    assert rt.load_window(site["cfg"], "files") == {os.path.relpath(p, site["geo"]) for p in victims}
    rc, st = pull(site)
    assert site["rsync"][-1] == [], "the quick check saw something"
    assert rc == 3 and critical(st["quarantine"]["findings"]) == ["CRITICAL suspicious-content"]
    assert snapshots(site) == before


def test_entropy_jump_of_an_unknown_type_counts_as_suspicious(site):
    baseline(site)
    for i in range(10):
        write(site["geo"] / ("Z001/ledger/%02d.dat" % i), b"amount,account,voucher\n" * 600, site["clock"])
    rc, _ = pull(site)
    assert rc == 0
    for i in range(10):
        p = site["geo"] / ("Z001/ledger/%02d.dat" % i)
        write(p, site["rng"].randbytes(p.stat().st_size), site["clock"])
    rc, st = pull(site)
    assert rc == 3 and critical(st["quarantine"]["findings"]) == ["CRITICAL suspicious-content"]
    assert "turned random" in " ".join(st["quarantine"]["findings"])


def test_a_file_gate_limit_comes_from_the_job(site):
    site["cfg"]["jobs"]["files"]["gate"] = {"max_changed_share": 0.5, "min_suspicious": 100}
    pol = rt.file_policy(site["cfg"]["jobs"]["files"])
    assert (pol.max_changed_share, pol.min_suspicious, pol.min_changed) == (0.5, 100, 50)
    with pytest.raises(TypeError):
        rt.file_policy({"gate": {"no_such_limit": 1}})
    baseline(site)
    for p in pdfs(site)[:60]:
        write(p, encrypted(p.read_bytes(), site["rng"]), site["clock"])
    rc, st = pull(site)                                 # 5 % is below this job's 50 %, 60 below its 100
    assert rc == 0 and [f.split(":")[0] for f in st["gate_findings"]] == ["WARNING suspicious-content"]


def test_the_tree_size_is_counted_once_per_snapshot(site, monkeypatch):
    baseline(site)
    calls = []
    count = rt.count_files
    monkeypatch.setattr(rt, "count_files", lambda root: calls.append(root) or count(root))
    for i in range(3):
        write(site["geo"] / ("Z001/2026/KJ04/%05d.pdf" % i), pdf_bytes(site["rng"], i), site["clock"])
        pull(site, seconds=10)
    st = rt.load_job_status(site["cfg"], "files")
    assert len(calls) == 1 and st["snapshot_files"] == {"snapshot": snapshots(site)[-1], "count": 1205}


def test_release_of_files_when_nothing_is_held(site, capsys):
    assert rt.cmd_release(site["cfg"], "files", "zhang.wei", "drill: geo repaired") == 0
    assert "nothing to release" in capsys.readouterr().out


def test_itemized_files_are_the_content_changes():
    out = "\n".join([
        ">f+++++++++ Z001/2020/a.pdf",
        ">f.st...... Z001/2020/b.pdf",
        ">f..t......  leading space.pdf",
        ">fcs....... Z001/2020/c.pdf",
        ".f...p..... Z001/2020/perm-only.pdf",
        ">f......... Z001/2020/no-flag.pdf",
        ".d..t...... Z001/2020/",
        "cd+++++++++ Z002/",
        "cL+++++++++ link.pdf -> a.pdf",
        "*deleting   Z001/2019/old.pdf",
        "*deleting   Z001/2019/",
        ">f+++++++++ Z001/\\#346\\#241\\#243\\#346\\#241\\#210.pdf",
        ">f+++++++++ back\\#x.pdf",
        "",
        "Number of files: 3",
        "Total bytes received: 1,234",
    ])
    assert rt.itemized_files(out) == ["Z001/2020/a.pdf", "Z001/2020/b.pdf", " leading space.pdf", "Z001/2020/c.pdf",
                                      "Z001/2019/old.pdf", "Z001/档案.pdf", "back\\#x.pdf"]


def test_file_change_reads_only_what_it_needs(tmp_path):
    snap, work = tmp_path / "snap", tmp_path / "work"
    rng = random.Random(1)
    data = pdf_bytes(rng, 1)
    write(snap / "same.pdf", data, 1000)
    write(work / "same.pdf", data, 1000)
    write(snap / "gone.pdf", data, 1000)
    write(work / "new.pdf", data, 2000)
    write(snap / "enc.pdf", data, 1000)
    write(work / "enc.pdf", encrypted(data, rng), 2000)
    write(snap / "resaved.pdf", data, 1000)
    write(work / "resaved.pdf", pdf_bytes(rng, 2), 2000)
    pol = dr_history.FilePolicy()
    assert rt.file_change(str(work), str(snap), "same.pdf", pol) is None
    assert rt.file_change(str(work), str(snap), "never.pdf", pol) is None
    assert rt.file_change(str(work), str(snap), "gone.pdf", pol).change == "deleted"
    new = rt.file_change(str(work), str(snap), "new.pdf", pol)
    assert new.change == "added" and new.old_entropy is None and dr_history.content_verdict(new) is None
    enc = rt.file_change(str(work), str(snap), "enc.pdf", pol)
    assert enc.old_entropy is None, "a failed format check needs no entropy"
    assert dr_history.content_verdict(enc) == "format" and len(enc.head) == rt.HEAD_BYTES
    ok = rt.file_change(str(work), str(snap), "resaved.pdf", pol)
    assert ok.change == "modified" and ok.old_entropy is not None and dr_history.content_verdict(ok) is None
    assert ok.tail.endswith(b"%%EOF\n") and len(ok.tail) == rt.TAIL_BYTES


def test_cli_and_role_release_accept_files():
    import yaml

    from archive_dr import cli
    from archive_dr.paths import ROOT

    args = cli.build_parser().parse_args(["release", "files", "--reason", "drill: geo repaired"])
    assert args.job == "files"
    spec = yaml.safe_load((ROOT / "roles/replica/meta/argument_specs.yml").read_text())["argument_specs"]
    assert spec["release"]["options"]["replica_release_job"]["choices"] == ["files", "pgbackrest", "restic"]
    for entry in ("main", "validate"):
        assert set(spec[entry]["options"]["replica_files_gate"]["options"]) == {
            f.name for f in dataclasses.fields(dr_history.FilePolicy)}


def test_a_release_waits_for_the_running_pull(site, monkeypatch):
    import threading

    baseline(site)
    for p in pdfs(site)[:60]:
        write(p, encrypted(p.read_bytes(), site["rng"]), site["clock"])
    assert pull(site)[0] == 3
    held = rt._lock(site["cfg"], "files")               # a pull is running
    monkeypatch.setattr(rt, "RELEASE_LOCK_WAIT", 0.3)
    with pytest.raises(RuntimeError, match="still running"):
        rt.cmd_release(site["cfg"], "files", "zhang.wei", "geo repaired")
    monkeypatch.setattr(rt, "RELEASE_LOCK_WAIT", 30)
    threading.Timer(0.5, held.close).start()           # ... and ends
    assert rt.cmd_release(site["cfg"], "files", "zhang.wei", "geo repaired") == 0
    assert "quarantine" not in rt.load_job_status(site["cfg"], "files")
