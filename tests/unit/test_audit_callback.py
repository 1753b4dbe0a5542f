"""The audit callback (callback_plugins/archive_dr_audit.py) in real ansible-playbook runs against
localhost (connection local): one ledger entry per run with who/what/every change; no vault value in
the ledger even at -vvv; no_log results censored; records shipped to the miyun forced command
(roles/audit_ledger/files/audit_append.py behind a stand-in `ssh`) with the receipt kept locally, spooled
when miyun is unreachable; vendor_firewall sessions (tests/fwsim) recorded with their commands."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import audit_ledger as L
from tests.unit.test_audit_ledger import load_file

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
PLUGIN = ROOT / "callback_plugins" / "archive_dr_audit.py"

# the tmp inventory's vault (whole-file vault and an inline !vault value)
SECRETS = {
    "vault_db_password": "S3cr3t-DB-pa55word-XyZ",
    "vault_api_token": "tok_9f8e7d6c5b4a39281706",
    "vault_short": "pw9",            # too short for substring redaction: whole strings only
}
SSH_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
           "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
           "QyNTUxOQAAACDf2u3vlD9eLq0mHn7x8sK1oWqZc0b5d4e3f2a1b0c9d8e7f6a5b4c3d2e1\n"
           "-----END OPENSSH PRIVATE KEY-----\n")
INLINE = "Inline-Vaulted-Value-777"
EXTRA_VALUE = "extra-var-value-not-to-record"

PLAY = """
- hosts: box
  gather_facts: false
  tasks:
    - name: File with a secret, no_log
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/out/nolog.txt"
        content: "pw={{ vault_db_password }} gen={{ gen }}\\n"
      no_log: true
    - name: File with secrets, logged
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/out/logged.txt"
        content: "pw={{ vault_db_password }} inline={{ inline_secret }} b64={{ vault_api_token | b64encode }} gen={{ gen }}\\n{{ vault_ssh_key }}"
    - name: Template with secrets
      ansible.builtin.template:
        src: tmpl.j2
        dest: "{{ playbook_dir }}/out/conf.ini"
        mode: "0600"
    - name: Loop
      ansible.builtin.copy:
        dest: "{{ playbook_dir }}/out/{{ item }}.txt"
        content: "{{ item }} {{ vault_api_token }} {{ gen }}"
      loop: [a, b]
    - name: Debug a secret
      ansible.builtin.debug:
        msg: "{{ vault_api_token }}"
    - name: Fail with a secret in the message
      ansible.builtin.fail:
        msg: "bad {{ vault_db_password }}"
      ignore_errors: true
    - name: Short secret as a whole value
      ansible.builtin.set_fact:
        short_copy: "{{ vault_short }}"
      changed_when: true
- hosts: miyun-store
  gather_facts: false
  tasks:
    - name: The ledger's host is part of this run
      ansible.builtin.debug:
        msg: miyun
"""
TEMPLATE = "db_password = {{ vault_db_password }}\ntoken = {{ vault_api_token }}\nhost = {{ inventory_hostname }}\ngen = {{ gen }}\n"


def _vault(*args, cwd):
    # Only the test's own password: the project's ansible.cfg (ANSIBLE_CONFIG, as `make` exports it) would
    # add its vault_password_file as a second "default" vault id.
    env = {k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"}
    p = subprocess.run([str(VENV_BIN / "ansible-vault"), *args, "--vault-password-file", "vpass"], cwd=cwd,
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.fixture
def project(tmp_path):
    """A tiny project: inventory with a vault (password file), a playbook, a template, a stand-in ssh."""
    d = tmp_path
    (d / "inv" / "group_vars" / "all").mkdir(parents=True)
    (d / "out").mkdir()
    (d / "inv" / "hosts.yml").write_text(
        "all:\n  hosts:\n    box:\n      ansible_connection: local\n      ansible_python_interpreter: %s\n"
        "    miyun-store:\n      ansible_host: 127.0.0.9\n      ansible_port: 2222\n"
        "      ansible_ssh_private_key_file: \"{{ playbook_dir }}/id_test\"\n" % (VENV_BIN / "python"))
    (d / "vpass").write_text("tmp-vault-pass-123\n")
    vault = d / "inv" / "group_vars" / "all" / "vault.yml"
    vault.write_text(json.dumps(dict(SECRETS, vault_ssh_key=SSH_KEY)))
    _vault("encrypt", str(vault), cwd=d)
    assert vault.read_text().startswith("$ANSIBLE_VAULT")
    (d / "inv" / "group_vars" / "all" / "inline.yml").write_text(
        _vault("encrypt_string", INLINE, "--name", "inline_secret", cwd=d))
    (d / "play.yml").write_text(PLAY)
    (d / "tmpl.j2").write_text(TEMPLATE)
    (d / "ansible.cfg").write_text(
        "[defaults]\ninventory = inv\ncallback_plugins = %s\ncallbacks_enabled = archive_dr_audit\n"
        "vault_password_file = vpass\nretry_files_enabled = false\n" % PLUGIN.parent)
    # miyun: the forced command as the role installs it, behind a stand-in ssh that logs its argv
    lib = d / "miyun-lib"
    lib.mkdir()
    shutil.copy(ROOT / "roles" / "audit_ledger" / "files" / "audit_append.py", lib)
    shutil.copy(ROOT / "module_utils" / "audit_ledger.py", lib)
    (d / "bin").mkdir()
    ssh = d / "bin" / "ssh"
    ssh.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> %s/ssh-argv\nif [ -e %s/miyun-down ]; then echo "ssh: connect '
                   'to host 127.0.0.9 port 2222: Connection refused" >&2; exit 255; fi\nfor a; do last="$a"; done\n'
                   'SSH_ORIGINAL_COMMAND="$last" SSH_CONNECTION="127.0.0.1 5555 127.0.0.9 2222" exec /usr/bin/python3 '
                   '%s/audit_append.py --ledger %s/miyun.jsonl\n' % (d, d, lib, d))
    ssh.chmod(0o755)
    return d


def play(d, *args, remote=False, **env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("ARCHIVE_DR_AUDIT_REMOTE", "ARCHIVE_DR_AUDIT_REMOTE_HOST", "ANSIBLE_CALLBACKS_ENABLED")}
    env.update(ANSIBLE_CONFIG=str(d / "ansible.cfg"), ARCHIVE_DR_AUDIT_LEDGER=str(d / "ledger.jsonl"),
               ANSIBLE_NOCOLOR="1", PATH="%s:%s" % (d / "bin", os.environ["PATH"]))
    if remote:
        env["ARCHIVE_DR_AUDIT_REMOTE_HOST"] = "miyun-store"
    env.update(env_extra)
    p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "play.yml", *args], cwd=d, env=env,
                       capture_output=True, text=True, timeout=300)
    return p


def records(path):
    return [json.loads(x)["record"] for x in Path(path).read_text().splitlines()]


def all_secret_forms():
    forms = list(SECRETS.values()) + [INLINE] + [ln for ln in SSH_KEY.splitlines() if len(ln) >= 12]
    import base64
    forms.append(base64.b64encode(SECRETS["vault_api_token"].encode()).decode())
    return forms


def test_vvv_run_records_every_change_and_never_a_secret(project):
    p = play(project, "-vvv", "--diff", "-e", "gen=%s" % EXTRA_VALUE, "--limit", "box", "--tags", "all",
             "--skip-tags", "never")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    log = p.stdout + p.stderr
    assert SECRETS["vault_api_token"] in log            # the screen shows it (debug): the ledger must not
    ledger = (project / "ledger.jsonl").read_text()
    for s in all_secret_forms():
        assert s not in ledger, s
    assert L.verify(project / "ledger.jsonl") == []
    [r] = records(project / "ledger.jsonl")
    assert r["kind"] == "playbook-run" and r["result"] == "ok"
    assert r["operator"]["user"] and "sudo_user" in r["operator"] and r["controller"]
    assert r["playbooks"] == [str(project / "play.yml")] and r["inventory"] == [str(project / "inv")]
    assert (r["limit"], r["tags"], r["skip_tags"], r["check"], r["diff"]) == ("box", [], ["never"], False, True)
    assert r["extra_vars"] == ["gen"]
    by = {c["task"]: c for c in r["changed"]}
    assert by["File with a secret, no_log"] == {"host": "box", "task": "File with a secret, no_log",
                                                "action": "ansible.builtin.copy", "censored": True}
    logged = by["File with secrets, logged"]["diff"]
    # every vault value (whole file, inline !vault, base64 of one, each line of a key) redacted, the rest kept
    assert "+pw=[REDACTED] inline=[REDACTED] b64=[REDACTED] gen=%s\n" % EXTRA_VALUE in logged
    assert "+[REDACTED]\n" * 4 in logged
    assert logged.startswith("--- before\n+++ %s/out/logged.txt\n" % project)
    tmpl = by["Template with secrets"]["diff"]
    assert "+db_password = [REDACTED]\n+token = [REDACTED]\n+host = box\n" in tmpl
    assert [i["item"] for i in by["Loop"]["items"]] == ['"a"', '"b"'] and "[REDACTED]" in by["Loop"]["items"][0]["diff"]
    assert r["hosts_changed"] == ["box"]
    [f] = r["failed"]
    assert f == {"host": "box", "task": "Fail with a secret in the message", "action": "ansible.builtin.fail",
                 "kind": "failed", "ignored": True, "msg": "bad [REDACTED]"}
    assert r["stats"]["box"]["changed"] == 5 and r["stats"]["box"]["ignored"] == 1
    assert r["redactions"] >= 6 and "remote" not in r


def test_check_run_records_extra_var_names_only(project):
    """Extra vars are recorded by name (a diff shows what a task wrote, extra-var values included)."""
    p = play(project, "-e", "gen=plain-value", "--check")
    assert p.returncode == 0, p.stdout[-2000:]
    [r] = records(project / "ledger.jsonl")
    assert r["extra_vars"] == ["gen"] and r["check"] is True and r["diff"] is False
    assert "plain-value" not in json.dumps({k: v for k, v in r.items() if k != "changed"})
    assert all("diff" not in c for c in r["changed"])           # no --diff: modules return no diff


def test_failed_run_is_recorded_as_failed(project):
    (project / "play.yml").write_text("- hosts: box\n  gather_facts: false\n  tasks:\n"
                                      "    - name: Breaks\n      ansible.builtin.command: /bin/false\n")
    p = play(project)
    assert p.returncode == 2
    [r] = records(project / "ledger.jsonl")
    assert r["result"] == "failed" and r["failed"][0]["task"] == "Breaks" and r["stats"]["box"]["failures"] == 1


def test_interrupted_run_is_recorded_at_exit(project):
    import signal
    import time
    (project / "play.yml").write_text(
        "- hosts: box\n  gather_facts: false\n  tasks:\n"
        "    - name: Change\n      ansible.builtin.copy: {dest: '{{ playbook_dir }}/out/first.txt', content: x}\n"
        "    - name: Wait\n      ansible.builtin.command: sleep 60\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_DR_AUDIT_REMOTE")}
    env.update(ANSIBLE_CONFIG=str(project / "ansible.cfg"), ARCHIVE_DR_AUDIT_LEDGER=str(project / "ledger.jsonl"))
    proc = subprocess.Popen([str(VENV_BIN / "ansible-playbook"), "play.yml"], cwd=project, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (project / "out" / "first.txt").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 99
    finally:
        if proc.poll() is None:
            proc.kill()
    [r] = records(project / "ledger.jsonl")
    assert r["result"] == "interrupted" and [c["task"] for c in r["changed"]] == ["Change"] and r["stats"] == {}


def test_a_run_that_does_not_reach_miyun_opens_no_connection_there(project):
    p = play(project, "-e", "gen=1", "--limit", "box", remote=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    assert not (project / "ssh-argv").exists()
    [rec] = records(project / "ledger.jsonl")
    assert rec["remote"]["spooled"] and rec["remote"]["deferred"].startswith("did not reach miyun-store")
    assert len(list((project / "spool").iterdir())) == 1


def test_shipped_to_miyun_with_the_receipt_kept_locally(project):
    p = play(project, "-vvv", "--diff", "-e", "gen=1", remote=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    assert "audit trail: run recorded (local seq 1, miyun seq 1)" in p.stdout
    argv = (project / "ssh-argv").read_text().split()
    assert argv[-2:] == ["audit-append@127.0.0.9", "append"]
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-i") + 1] == str(project / "id_test")
    assert "BatchMode=yes" in argv
    miyun, local = project / "miyun.jsonl", project / "ledger.jsonl"
    for s in all_secret_forms():
        assert s not in miyun.read_text() and s not in local.read_text(), s
    [m] = [json.loads(x) for x in miyun.read_text().splitlines()]
    [loc] = records(local)
    assert loc["remote"]["receipt"] == {"seq": 1, "hash": m["hash"], "time": m["time"]}
    assert m["record"]["received_from"] == "127.0.0.1" and m["record"]["id"] == loc["id"]
    assert {k: v for k, v in loc.items() if k != "remote"} == {k: v for k, v in m["record"].items()
                                                               if k != "received_from"}
    assert L.verify(miyun, [(m["seq"], m["hash"])]) == []

    # miyun unreachable: the run still succeeds, warns, spools; the next run ships the spool first
    (project / "miyun-down").touch()
    p = play(project, "-e", "gen=2", remote=True)
    assert p.returncode == 0
    assert "could not be shipped to audit-append@127.0.0.9:2222" in p.stderr + p.stdout
    rec2 = records(local)[-1]
    assert rec2["remote"]["spooled"] and "Connection refused" in rec2["remote"]["error"]
    assert len(list((project / "spool").iterdir())) == 1
    (project / "miyun-down").unlink()
    p = play(project, "-e", "gen=3", remote=True)
    assert p.returncode == 0
    rec3 = records(local)[-1]
    assert rec3["remote"]["spool_shipped"][0]["id"] == rec2["id"] and rec3["remote"]["receipt"]["seq"] == 3
    assert [e["record"]["id"] for e in map(json.loads, miyun.read_text().splitlines())] == \
        [loc["id"], rec2["id"], rec3["id"]]
    assert list((project / "spool").iterdir()) == []
    from archive_dr import audit
    import datetime as dt
    today = dt.datetime.now(dt.timezone.utc).date()
    sec = audit.section(today, today, local=local, remote_file=miyun, cfg={})
    assert sec["verified"] and sec["runs"] == 3 and sec["ledgers"][0]["receipts_checked"] == 3


def test_remote_host_not_in_the_inventory_ships_nothing(project):
    p = play(project, "-e", "gen=1", ARCHIVE_DR_AUDIT_REMOTE_HOST="miyun-other")
    assert p.returncode == 0
    [r] = records(project / "ledger.jsonl")
    assert r["remote"] == {"skipped": "miyun-other is not in this run's inventory"}
    assert not (project / "ssh-argv").exists()


def test_vendor_firewall_session_commands_are_recorded(tmp_path):
    """A real vendor_firewall run (playbooks/firewall-change.yml -> netmiko -> tests/fwsim): check, then apply."""
    from tests.fwsim import FirewallSim
    led = tmp_path / "ledger.jsonl"
    env = dict(os.environ, ANSIBLE_CALLBACK_PLUGINS=str(PLUGIN.parent), ANSIBLE_CALLBACKS_ENABLED="archive_dr_audit",
               ARCHIVE_DR_AUDIT_LEDGER=str(led), ANSIBLE_NOCOLOR="1")
    env.pop("ARCHIVE_DR_AUDIT_REMOTE", None)
    with FirewallSim("huawei") as sim:
        (tmp_path / "ev.json").write_text(json.dumps({
            "target": "fwsim-huawei", "vendor_fw_port": sim.port, "vendor_fw_backup_dir": str(tmp_path / "b"),
            "vendor_fw_change_log": str(tmp_path / "changes.jsonl"), "operator": "pytest"}))
        for check in (["--check", "--diff"], []):
            p = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "inventory/fwsim",
                                "playbooks/firewall-change.yml", "-e", "@%s" % (tmp_path / "ev.json"), *check],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    checked, applied = records(led)
    for r, outcome in ((checked, "check"), (applied, "changed")):
        [fw] = r["firewall"]
        assert fw["device"] == "fwsim-huawei" and fw["outcome"] == outcome and fw["status"] == "changed"
        assert "+ ip address-set dr-lan-geo type object" in fw["commands"]
        assert "+  pre-shared-key ******" in fw["commands"]
        assert fw["changed_lines"] > 0 and fw["backup"].startswith(str(tmp_path / "b"))
        [c] = [c for c in r["changed"] if c["action"] == "vendor_firewall"]
        assert c["host"] == "fwsim-huawei" and c["delegate_to"] == "localhost"
        assert "+ ip address-set dr-lan-geo type object" in c["diff"]
    assert checked["check"] is True and applied["check"] is False
    assert applied["firewall"][0]["pushed_lines"] > 0
    assert "fwsim-pass" not in led.read_text()       # the device password (no_log parameter)
    assert L.verify(led) == []


# ------------------------------------------------------------------ the plugin's pure parts
P = load_file("archive_dr_audit_plugin", PLUGIN)


def test_redactor_forms_and_keys():
    r = P.Redactor(["S3cr3t-DB-pa55word", "abc", SSH_KEY, 12345678, "S3cr3t"])
    assert r("x S3cr3t-DB-pa55word y") == "x [REDACTED] y"                     # longest first
    assert r("S3cr3t-DB") == "[REDACTED]-DB"
    assert r("abc") == "[REDACTED]" and r("abcdef") == "abcdef"                # short: whole strings only
    assert r({"S3cr3t-DB-pa55word": ["abc", 12345678, True, None]}) == {"[REDACTED]": ["[REDACTED]", "[REDACTED]",
                                                                                       True, None]}
    line = SSH_KEY.splitlines()[1]
    assert r("+" + line + "\n") == "+[REDACTED]\n"
    import base64
    assert r("b64=" + base64.b64encode(b"S3cr3t-DB-pa55word").decode()) == "b64=[REDACTED]"
    assert r.count >= 8


def test_diff_text_shapes():
    assert P.diff_text({"before": "a\n", "after": "b\n", "before_header": "f", "after_header": "f"}) == \
        "--- f\n+++ f\n@@ -1 +1 @@\n-a\n+b\n"
    assert P.diff_text([{"prepared": "+ rule x"}, {"before": {"state": "absent"}, "after": {"state": "file"}}]) \
        .startswith("+ rule x\n--- before\n+++ after\n")
    assert P.diff_text({"before": "same", "after": "same"}) is None
    assert P.diff_text({"prepared": "x" * 50}, limit=10) == "x" * 10 + "\n... [truncated, 41 more characters]"


def test_firewall_session_keeps_the_evidence():
    res = {"changed": False, "device": "geo-fw", "outcome": "failed-restored", "stage": "verify",
           "commands": ["+ rule name dr-a"], "rollback": {"restored": True}, "msg": "read-back differs",
           "diff": {"prepared": "+ rule name dr-a"}, "backup": "/b/geo-fw.cfg", "password": "never"}
    s = P.firewall_session("geo-fw", "Change", res, "failed")
    assert s == {"host": "geo-fw", "task": "Change", "status": "failed", "device": "geo-fw",
                 "outcome": "failed-restored", "stage": "verify", "commands": ["+ rule name dr-a"],
                 "rollback": {"restored": True}, "backup": "/b/geo-fw.cfg", "msg": "read-back differs"}
    assert P.is_firewall("vendor_firewall") and P.is_firewall("archive_dr.x.vendor_firewall")
    assert not P.is_firewall("ansible.builtin.copy")
