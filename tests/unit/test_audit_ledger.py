"""The audit ledger (module_utils/audit_ledger.py), the miyun forced command
(roles/audit_ledger/files/audit_append.py), the role (check run against localhost) and the evidence
listing (archive_dr/audit.py): a chain that verifies, and every way of tampering with it detected."""
from __future__ import annotations

import datetime as dt
import importlib.util
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import audit_ledger as L
from archive_dr import audit

ROOT = Path(__file__).resolve().parents[2]
APPEND_PY = ROOT / "roles" / "audit_ledger" / "files" / "audit_append.py"
VENV_BIN = ROOT / ".venv" / "bin"


def load_file(name, path):
    """A Python file that is not in a package (the forced command, the callback plugin) as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


A = load_file("audit_append", APPEND_PY)


def rec(i=0, **kw):
    r = {"kind": "playbook-run", "operator": {"user": "op%d" % i}, "controller": "ctl", "result": "ok",
         "started": "2026-03-0%dT08:00:00+00:00" % (1 + i % 9), "finished": "2026-03-01T08:01:00+00:00",
         "playbooks": ["playbooks/site.yml"], "changed": [{"host": "miyun-store", "task": "任务 %d" % i}]}
    r.update(kw)
    return r


@pytest.fixture
def chain(tmp_path):
    p = tmp_path / "ledger.jsonl"
    for i in range(5):
        L.append(p, rec(i), now="2026-03-0%dT09:00:00+00:00" % (i + 1))
    return p


def lines(p):
    return p.read_bytes().splitlines(keepends=True)


# ------------------------------------------------------------------ the chain
def test_append_chains_entries_and_verifies(chain):
    es = [json.loads(x) for x in lines(chain)]
    assert [e["seq"] for e in es] == [1, 2, 3, 4, 5]
    assert es[0]["prev"] == L.GENESIS
    assert all(es[i]["prev"] == es[i - 1]["hash"] for i in range(1, 5))
    assert all(e["hash"] == L.entry_hash(e) for e in es)
    assert set(es[0]) == set(L.FIELDS)
    assert es[2]["record"]["changed"][0]["task"] == "任务 2"        # UTF-8, not escaped, still hashed
    assert L.verify(chain) == []
    assert L.head(chain)["seq"] == 5
    assert oct(chain.stat().st_mode & 0o777) == "0o640"


def test_hash_is_sha256_of_canonical_json_without_hash(chain):
    import hashlib
    e = json.loads(lines(chain)[0])
    body = {k: v for k, v in e.items() if k != "hash"}
    expect = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                            .encode()).hexdigest()
    assert e["hash"] == expect


def test_altered_entry_is_named(chain):
    ls = lines(chain)
    ls[2] = ls[2].replace(b'"op2"', b'"mallory"')
    chain.write_bytes(b"".join(ls))
    problems = L.verify(chain)
    assert problems and problems[0].startswith("seq 3 (line 3): altered")
    assert len(problems) == 1


def test_altered_entry_with_recomputed_hash_breaks_the_next_link(chain):
    ls = lines(chain)
    e = json.loads(ls[1])
    e["record"]["result"] = "failed"
    e["hash"] = L.entry_hash(e)
    ls[1] = L.canonical(e) + b"\n"
    chain.write_bytes(b"".join(ls))
    problems = L.verify(chain)
    assert len(problems) == 1 and problems[0].startswith("seq 3 (line 3): prev does not match")


def test_deleted_entry_is_named(chain):
    ls = lines(chain)
    del ls[1]
    chain.write_bytes(b"".join(ls))
    problems = L.verify(chain)
    assert problems[0] == "seq 3 (line 2): seq 2 expected (entries deleted before it)"
    assert len(problems) == 1                   # one deletion, one problem


def test_reordered_entries_are_named(chain):
    ls = lines(chain)
    ls[1], ls[2] = ls[2], ls[1]
    chain.write_bytes(b"".join(ls))
    problems = L.verify(chain)
    assert problems[0].startswith("seq 3 (line 2): seq 2 expected")
    assert any(p.startswith("seq 2 (line 3): seq 4 expected (reordered") for p in problems)


def test_inserted_forged_entry_is_detected(chain):
    ls = lines(chain)
    forged = {"seq": 3, "time": "2026-03-03T10:00:00+00:00", "prev": json.loads(ls[1])["hash"],
              "record": rec(9)}
    forged["hash"] = L.entry_hash(forged)
    ls.insert(2, L.canonical(forged) + b"\n")
    chain.write_bytes(b"".join(ls))
    problems = L.verify(chain)
    assert problems[0].startswith("seq 3 (line 4): seq 4 expected (reordered or duplicated)")


def test_truncated_middle_line_is_named(chain):
    ls = lines(chain)
    ls[2] = ls[2][:40] + b"\n"
    chain.write_bytes(b"".join(ls))
    problems = L.verify(chain)
    assert problems[0].startswith("line 3 (seq 3 expected): not a ledger entry")
    # the chain continues after the broken line: seq 4's link cannot be checked, seq 5's can
    assert len(problems) == 1


def test_torn_tail_is_reported_and_refuses_appends(chain):
    data = chain.read_bytes()
    chain.write_bytes(data[:-30])
    assert L.verify(chain)[0].startswith("line 5 (seq 5 expected): incomplete last line")
    with pytest.raises(L.LedgerError, match="incomplete line"):
        L.append(chain, rec())


def test_altered_last_entry_refuses_appends(chain):
    ls = lines(chain)
    ls[-1] = ls[-1].replace(b'"op4"', b'"eve"')
    chain.write_bytes(b"".join(ls))
    with pytest.raises(L.LedgerError, match="seq 5"):
        L.append(chain, rec())


def test_cut_tail_is_found_by_receipts(chain):
    receipts = [(e["seq"], e["hash"]) for e in map(json.loads, lines(chain))]
    assert L.verify(chain, receipts) == []
    chain.write_bytes(b"".join(lines(chain)[:3]))
    assert L.verify(chain) == []                  # the chain alone cannot see a cut tail
    problems = L.verify(chain, receipts)
    assert problems == ["seq 4: receipt %s... not in the ledger (tail cut?)" % receipts[3][1][:12],
                        "seq 5: receipt %s... not in the ledger (tail cut?)" % receipts[4][1][:12]]


def test_missing_ledger_is_a_problem(tmp_path):
    assert L.verify(tmp_path / "none.jsonl") == ["%s: no ledger" % (tmp_path / "none.jsonl")]
    assert L.head(tmp_path / "none.jsonl") is None


def _worker(args):
    path, i = args
    for j in range(20):
        L.append(path, rec(i, n=j))


def test_concurrent_appends_keep_one_chain(tmp_path):
    p = str(tmp_path / "ledger.jsonl")
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_worker, [(p, i) for i in range(4)])
    es = [json.loads(x) for x in Path(p).read_bytes().splitlines()]
    assert [e["seq"] for e in es] == list(range(1, 81))
    assert L.verify(p) == []


def test_entries_by_period(chain):
    assert [e["seq"] for e in L.entries(chain)] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in L.entries(chain, dt.date(2026, 3, 2), dt.date(2026, 3, 4))] == [2, 3, 4]
    assert [e["seq"] for e in L.entries(chain, "2026-03-02T09:00:00Z", "2026-03-03T08:59:59+00:00")] == [2]
    assert L.entries(chain, dt.date(2026, 4, 1)) == []


def test_record_must_be_an_object(tmp_path):
    with pytest.raises(TypeError):
        L.append(tmp_path / "l.jsonl", ["not", "a", "dict"])


# ------------------------------------------------------------------ the forced command at miyun
def test_validate_rejects_bad_records():
    good = json.dumps(rec()).encode()
    assert A.validate(good)["kind"] == "playbook-run"
    bad = {
        b"": "no record", b"not json": "not JSON", b"[1, 2]": "JSON object",
        json.dumps(dict(rec(), kind="other")).encode(): "kind",
        json.dumps({k: v for k, v in rec().items() if k != "finished"}).encode(): "'finished' missing",
        json.dumps(dict(rec(), operator="root")).encode(): "'operator' is not a dict",
        json.dumps(dict(rec(), operator={"user": ""})).encode(): "operator.user",
        b"\xff\xfe": "not JSON",
    }
    for data, why in bad.items():
        with pytest.raises(A.Rejected, match=why):
            A.validate(data)
    with pytest.raises(A.Rejected, match="larger than 100 bytes"):
        A.validate(good, max_bytes=100)


def run_append(ledger, data=b"", asked="", argv=(), conn="198.18.0.1 40000 198.18.0.21 22"):
    out = io.StringIO()
    env = {"SSH_ORIGINAL_COMMAND": asked, "SSH_CONNECTION": conn}
    rc = A.main(["--ledger", str(ledger), *argv], stdin=io.BytesIO(data), stdout=out, environ=env)
    return rc, out.getvalue()


def test_append_assigns_the_chain_itself(tmp_path, capsys):
    led = tmp_path / "audit" / "ledger.jsonl"
    # a client trying to shape the chain: its seq/prev/hash stay inside its record, meaningless
    forged = dict(rec(), seq=99, prev="f" * 64, hash="0" * 64)
    rc, out = run_append(led, json.dumps(forged).encode())
    assert rc == 0
    receipt = json.loads(out)
    e = json.loads(led.read_text())
    assert receipt == {"seq": 1, "hash": e["hash"], "time": e["time"]}
    assert e["seq"] == 1 and e["prev"] == L.GENESIS
    assert e["record"]["received_from"] == "198.18.0.1"
    rc, out = run_append(led, json.dumps(rec(1)).encode(), asked="append")
    assert rc == 0 and json.loads(out)["seq"] == 2
    assert L.verify(led) == []
    rc, _ = run_append(led, b"{}")
    assert rc == 2 and "rejected: field 'kind' missing" in capsys.readouterr().err
    assert L.head(led)["seq"] == 2


def test_verify_dump_and_unknown_requests(tmp_path, capsys):
    led = tmp_path / "ledger.jsonl"
    assert run_append(led, asked="verify") == (0, "ok: %s is empty (no entry yet)\n" % led)
    for i in range(3):
        run_append(led, json.dumps(rec(i)).encode())
    rc, out = run_append(led, asked="verify")
    assert rc == 0 and out.startswith("ok: %s, seq 1..3, head " % led)
    dump = io.BytesIO()
    assert A.main(["--ledger", str(led)], stdout=dump, environ={"SSH_ORIGINAL_COMMAND": "dump"}) == 0
    assert dump.getvalue() == led.read_bytes()
    rc, _ = run_append(led, asked="rm -rf /var/lib/archive-dr")
    assert rc == 2 and "unknown request 'rm -rf /var/lib/archive-dr'" in capsys.readouterr().err
    assert L.head(led)["seq"] == 3
    # a broken chain: --verify (the timer) exits 1 and names the entry
    ls = lines(led)
    ls[1] = ls[1].replace(b'"op1"', b'"op9"')
    led.write_bytes(b"".join(ls))
    rc, out = run_append(led, argv=["--verify"])
    assert rc == 1 and out.splitlines()[0] == "BROKEN: %s" % led and "seq 2 (line 2): altered" in out


def test_installed_program_runs_beside_its_library(tmp_path):
    """As the role installs it: audit_append.py and audit_ledger.py in one directory, run by python3."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(APPEND_PY, lib / "audit_append.py")
    shutil.copy(ROOT / "module_utils" / "audit_ledger.py", lib / "audit_ledger.py")
    led = tmp_path / "ledger.jsonl"
    env = {"PATH": os.environ["PATH"], "SSH_ORIGINAL_COMMAND": "append"}
    p = subprocess.run(["/usr/bin/python3", "-I", str(lib / "audit_append.py"), "--ledger", str(led)],
                       input=json.dumps(rec()).encode(), capture_output=True, env=env, timeout=30)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["seq"] == 1
    p = subprocess.run(["/usr/bin/python3", "-I", str(lib / "audit_append.py"), "--verify", "--ledger", str(led)],
                       capture_output=True, env={"PATH": os.environ["PATH"]}, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith(b"ok:")
    assert json.loads(led.read_text())["record"]["received_from"] == "local"


# ------------------------------------------------------------------ the role (check run against localhost)
def test_role_check_run_restricts_the_key(tmp_path):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv4kP0G2f3kJ7cYp3nQ0VQ8o2o1S4hJkqTt5g0f5zQm controller@lab"
    (tmp_path / "inv.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        "      ansible_python_interpreter: %s\n" % sys.executable)
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: audit_ledger\n"
        "      audit_ledger_authorized_keys: ['%s']\n      audit_ledger_from: [198.18.0.1]\n"
        "      audit_ledger_home: %s/home\n      audit_ledger_path: %s/audit/ledger.jsonl\n"
        "      audit_ledger_lib_dir: %s/lib\n" % (key, tmp_path, tmp_path, tmp_path))
    env = dict(os.environ, ANSIBLE_ROLES_PATH=str(ROOT / "roles"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=str(tmp_path / "none.cfg"))
    env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "inv.yml"), "--check", "--diff",
                        str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, timeout=180,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    line = 'command="%s/lib/audit_append.py --ledger %s/audit/ledger.jsonl --max-bytes 1048576",restrict,' \
           'from="198.18.0.1" %s' % (tmp_path, tmp_path, key)
    assert "+" + line in p.stdout
    assert not (tmp_path / "home").exists() and not (tmp_path / "lib").exists()     # check mode wrote nothing
    # bad input fails in the first task, before any change
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: audit_ledger\n"
        "      audit_ledger_authorized_keys: ['command=\"/bin/sh\" %s']\n" % key)
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "inv.yml"), "--check",
                        str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, timeout=180,
                       cwd=tmp_path)
    assert p.returncode == 2 and "Check the audit ledger input" in p.stdout and "changed=0" in p.stdout


# ------------------------------------------------------------------ the evidence listing
def _controller_ledger(tmp_path, miyun):
    """A controller ledger whose records carry miyun's receipts (as the callback writes them)."""
    local = tmp_path / "controller.jsonl"
    for i, r in enumerate([rec(0, limit="miyun-store", tags=["replica"], hosts_changed=["miyun-store"]),
                           rec(1, check=True, result="failed", extra_vars=["target"],
                               firewall=[{"device": "geo-fw", "commands": ["+ rule name dr-x"]}]),
                           rec(2, operator={"user": "root", "sudo_user": "alice"})]):
        entry = L.append(miyun, dict(r, received_from="198.18.0.1"), now="2026-03-0%dT10:00:00+00:00" % (i + 1))
        L.append(local, dict(r, remote={"target": "audit-append@x", "receipt": {
            "seq": entry["seq"], "hash": entry["hash"], "time": entry["time"]}}),
            now="2026-03-0%dT10:00:01+00:00" % (i + 1))
    return local


def test_section_lists_the_period_from_miyun_and_checks_receipts(tmp_path):
    miyun = tmp_path / "miyun.jsonl"
    local = _controller_ledger(tmp_path, miyun)
    sec = audit.section(dt.date(2026, 3, 2), dt.date(2026, 3, 3), local=local, remote_file=miyun, cfg={})
    assert sec["verified"] and sec["problems"] == [] and sec["source"] == "miyun"
    assert [r["seq"] for r in sec["rows"]] == [2, 3]
    r1, r2 = sec["rows"]
    assert (r1["mode"], r1["result"], r1["firewall_sessions"], r1["scope"]) == ("check", "failed", 1, "-e target")
    assert r2["operator"] == "root (sudo: alice)" and r2["changed_tasks"] == 1
    assert sec["ledgers"][0]["receipts_checked"] == 3
    md = audit.render_markdown(sec)
    assert "Hash chain: **intact**" in md and "| 3 | 2026-03-03 08:00:00 | root (sudo: alice) | site.yml |" in md
    written = audit.write(sec, tmp_path / "out", "2026-03-02_2026-03-03")
    assert json.loads(written["json"].read_text())["runs"] == 2
    assert written["ledger-miyun"].read_bytes() == miyun.read_bytes()


def test_section_detects_a_rewritten_miyun_ledger(tmp_path):
    miyun = tmp_path / "miyun.jsonl"
    local = _controller_ledger(tmp_path, miyun)
    # root at miyun rewrites history consistently: drop seq 2, renumber, re-chain -> chain fine, receipts not
    es = [json.loads(x) for x in lines(miyun)]
    del es[1]
    prev = L.GENESIS
    out = b""
    for n, e in enumerate(es, 1):
        e.update(seq=n, prev=prev)
        e["hash"] = L.entry_hash(e)
        prev = e["hash"]
        out += L.canonical(e) + b"\n"
    miyun.write_bytes(out)
    assert L.verify(miyun) == []
    sec = audit.section(dt.date(2026, 3, 1), dt.date(2026, 3, 31), local=local, remote_file=miyun, cfg={})
    assert not sec["verified"]
    assert any(p.startswith("miyun: seq 2: receipt") and "differs" in p for p in sec["problems"])
    assert "BROKEN / NOT VERIFIED" in audit.render_markdown(sec)


def test_section_tampered_local_ledger_without_remote(tmp_path):
    miyun = tmp_path / "miyun.jsonl"
    local = _controller_ledger(tmp_path, miyun)
    ls = lines(local)
    ls[0] = ls[0].replace(b'"op0"', b'"nobody"')
    local.write_bytes(b"".join(ls))
    sec = audit.section(dt.date(2026, 3, 1), dt.date(2026, 3, 31), local=local, cfg={})
    assert sec["source"] == "controller" and sec["runs"] == 3
    assert sec["problems"] == ["controller: seq 1 (line 1): altered, its hash does not match its content"]


def test_section_unreachable_remote_is_not_verified(tmp_path):
    local = _controller_ledger(tmp_path, tmp_path / "miyun.jsonl")
    cfg = {"ledger": local, "remote": "audit-append@127.0.0.1:1", "remote_key": None}
    sec = audit.section(dt.date(2026, 3, 1), dt.date(2026, 3, 31), cfg=cfg, work_dir=tmp_path / "w")
    assert not sec["verified"] and sec["problems"][0].startswith("miyun: ledger not fetched")
    assert sec["source"] == "controller" and sec["runs"] == 3


def test_config_from_env_then_ansible_cfg(tmp_path):
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n\n[callback_archive_dr_audit]\nledger = .audit/x.jsonl\n"
                   "remote = audit-append@198.18.0.21\nremote_key = .lab/ssh/id_ed25519\n")
    c = audit.config(cfg, environ={})
    assert c == {"ledger": tmp_path / ".audit/x.jsonl", "remote": "audit-append@198.18.0.21",
                 "remote_key": str(tmp_path / ".lab/ssh/id_ed25519"), "remote_host": None,
                 "remote_user": "audit-append"}
    c = audit.config(cfg, environ={"ARCHIVE_DR_AUDIT_REMOTE": "a@b:2222", "ARCHIVE_DR_AUDIT_LEDGER": "/x/l.jsonl"})
    assert c["remote"] == "a@b:2222" and c["ledger"] == Path("/x/l.jsonl")
    t = audit.remote_target("a@b:2222", "/k")
    assert (t.user, t.address, t.port, t.key) == ("a", "b", 2222, "/k")
    assert audit.config(tmp_path / "missing.cfg", environ={})["ledger"] == audit.DEFAULT_LEDGER
