"""vendor_firewall end to end: ansible-playbook -> library/vendor_firewall.py -> netmiko
(real SSH) -> tests/fwsim simulator on 127.0.0.1, for huawei, hp_comware,
hillstone_stoneos and juniper_junos.

Each test starts its own simulator and stops it (no leftovers). Proven per platform, in
one simulator session: check mode pushes nothing and shows the diff; first run pushes;
second run changes nothing; a template line the device's grammar refuses is reported
with the device's own error and changes nothing; a change that deletes an object still
referenced elsewhere is ordered (rules before objects) and a failure in its middle
restores the running and saved configuration byte for byte; a changed port leaves no old
line; a device that keeps the old value of a single-valued line fails the read-back and is
restored. Junos: a `commit confirmed` nobody confirms is rolled back by the device.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fwsim import FirewallSim

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)

VENV = ROOT / ".venv" / "bin"
PSK = "fwsim-only-not-a-secret-0123"  # inventory/fwsim/group_vars/all.yml
TARGET = {"huawei": "fwsim-huawei", "hp_comware": "fwsim-comware", "hillstone_stoneos": "fwsim-hillstone",
          "juniper_junos": "fwsim-junos"}
PLATFORMS = sorted(TARGET)
BASE_FLOWS = [
    {"name": "pg-replication", "src": "miyun-store", "dst": "geo-archive", "port": 5432, "proto": "tcp"},
    {"name": "pgbackrest-pull", "src": "miyun-store", "dst": "geo-backup", "port": 8432, "proto": "tcp"},
    {"name": "file-mirror", "src": "miyun-store", "dst": "geo-archive", "port": 873, "proto": "tcp"},
]
NEW_FLOW = {"name": "restic-pull", "src": "miyun-store", "dst": "geo-backup", "port": 8000, "proto": "tcp"}


class Runner:
    def __init__(self, sim: FirewallSim, tmp: Path):
        self.sim, self.tmp = sim, tmp
        self.log = tmp / "changes.jsonl"

    def play(self, check=False, timeout=240, **extra):
        ev = {"target": TARGET[self.sim.platform], "vendor_fw_port": self.sim.port,
              "vendor_fw_backup_dir": str(self.tmp / "backups"), "vendor_fw_change_log": str(self.log),
              "operator": "pytest"}
        ev.update(extra)
        ev = {k: v for k, v in ev.items() if v is not None}   # None: leave the variable out
        evf = self.tmp / "extra.json"
        evf.write_text(json.dumps(ev))
        cmd = [str(VENV / "ansible-playbook"), "-i", "inventory/fwsim", "playbooks/firewall-change.yml",
               "-e", f"@{evf}"]
        if check:
            cmd += ["--check", "--diff"]
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        return p.returncode, p.stdout + p.stderr

    def records(self):
        if not self.log.exists():
            return []
        return [json.loads(x) for x in self.log.read_text().splitlines()]


@pytest.fixture
def sim_for(tmp_path):
    sims = []

    def make(platform):
        s = FirewallSim(platform).start()
        sims.append(s)
        return s, Runner(s, tmp_path)
    yield make
    for s in sims:
        s.stop()


def rule_order(sim):
    """Names of the security rules in device order (simulator's own display)."""
    text = sim.running_text()
    if sim.platform == "huawei":
        return re.findall(r"^ rule name (\S+)", text, re.M)
    if sim.platform == "hp_comware":
        return re.findall(r"^ rule \d+ name (\S+)", text, re.M)
    if sim.platform == "juniper_junos":
        names = []
        for m in re.finditer(r"^set security policies (?:from-zone \S+ to-zone \S+|global) policy (\S+) ", text, re.M):
            if m.group(1) not in names:
                names.append(m.group(1))
        return names
    return [m.strip('"') for m in re.findall(r'^    name (\S+)', text, re.M)]


# a cross-vendor mistake in a template: each device refuses it with its own error text
BAD_TEMPLATE = {
    "huawei": ("policy.j2", "  action permit\n  profile av", "  action accept\n  profile av",
               "Error: Wrong parameter found at '^' position."),
    "hp_comware": ("policy.j2", "  action pass", "  action permit", "% Wrong parameter found at '^' position."),
    "hillstone_stoneos": ("policy.j2", "    action permit\n    src-zone", "    action pass\n    src-zone",
                          "^-----invalid parameter pass"),
    "juniper_junos": ("objects.j2", " destination-port ", " dst-port ", "syntax error."),
}
CHANGED_FLOWS = [dict(BASE_FLOWS[0], port=5433), BASE_FLOWS[2]]   # port changed, pgbackrest-pull gone
# the deletion of the host object nobody uses any more
DELETE_RX = r'^(undo ip address-set|undo object-group ip address|no address|delete security address-book global address) "?dr-h-geo-backup'



def bad_templates(tmp: Path, platform: str) -> str:
    t = tmp / "bad-tpl"
    if not t.exists():
        shutil.copytree(ROOT / "templates" / "firewall", t)
    name, old, new, _err = BAD_TEMPLATE[platform]
    f = t / platform / name
    text = f.read_text()
    assert old in text, (platform, old)
    f.write_text(text.replace(old, new, 1))
    return str(t)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_lifecycle_like_a_real_device(platform, sim_for, tmp_path):
    sim, r = sim_for(platform)
    pristine, pristine_saved = sim.running_text(), sim.saved_text()

    # 1. check mode: diff shown, nothing pushed, nothing saved
    rc, out = r.play(check=True)
    assert rc == 0, out
    rec = r.records()[-1]
    assert rec["outcome"] == "check" and rec["check_mode"] is True and rec["user"] == "pytest"
    assert rec["changed_lines"] > 40
    assert "+ " in out and "dr-pg-replication" in out and "******" in out
    assert PSK not in out and PSK not in r.log.read_text()
    assert sim.running_text() == pristine and sim.saved_text() == pristine_saved
    assert sim.stats["config_lines"] == 0 and sim.stats["saves"] == 0
    assert Path(rec["backup"]).read_text().replace("\n", "\r\n").rstrip() == pristine.rstrip()

    # 2. first run pushes, saves (or commits confirmed, then confirms), verifies
    rc, out = r.play()
    assert rc == 0, out
    rec = r.records()[-1]
    assert rec["outcome"] == "changed", rec
    assert sim.stats["config_lines"] >= rec["changed_lines"] > 40
    assert sim.saved_text() == sim.running_text() != pristine
    if platform == "juniper_junos":
        assert sim.stats["commits"] == 2 and sim.junos.timer is None   # commit confirmed, then confirmed
    else:
        assert sim.stats["saves"] == 1
    assert PSK not in sim.running_text()         # the device shows it encrypted
    assert sim.errors == [] and sim.internal == []
    names = rule_order(sim)
    assert names[0] == "site-mgmt"               # the site's own rule is untouched
    assert names[1:] == ["dr-pg-replication", "dr-pgbackrest-pull", "dr-file-mirror",
                         "dr-tunnel-deny", "dr-tunnel-deny-out"]
    converged = sim.running_text()
    # 3 permits and the profile itself (Comware: the permits name one app-profile that applies both)
    least = 2 if platform == "hp_comware" else 4
    assert converged.count("site-ips") >= least and converged.count("site-av") >= least

    # 3. second run: no change, nothing sent
    rc, out = r.play()
    assert rc == 0 and r.records()[-1]["outcome"] == "unchanged", out

    # 4. a template line the device's grammar refuses: its own error text, nothing changed
    rc, out = r.play(vendor_fw_template_dir=bad_templates(tmp_path, platform))
    assert rc != 0, out
    rec = r.records()[-1]
    assert rec["outcome"] == "failed-restored", rec
    assert BAD_TEMPLATE[platform][3] in rec["error"], rec["error"]
    assert any(BAD_TEMPLATE[platform][3] in e for e in sim.errors), sim.errors
    assert sim.running_text() == converged and sim.saved_text() == converged
    sim.errors.clear()

    # 5. port changed and a flow removed (its host object is deleted after the rule that
    #    references it); the device refuses the object deletion: everything restored
    mark = len(sim.log)
    sim.fault = {"match": DELETE_RX}
    rc, out = r.play(dr_flows=CHANGED_FLOWS)
    assert rc != 0, out
    rec = r.records()[-1]
    assert sim.stats["faults_fired"] == 1, sim.log[-40:]
    assert rec["outcome"] == "failed-restored", rec
    if platform == "juniper_junos":                # nothing was committed: the candidate is discarded
        assert rec["rollback"]["method"].startswith("rollback 0") and sim.stats["commits"] == 2
    else:
        assert rec["rollback"]["restored"] is True and rec["rollback"]["restore_lines"] > 0
    assert sim.running_text() == converged        # the whole display, byte for byte
    assert sim.saved_text() == converged
    log = sim.log[mark:]
    rule_gone = next(i for i, c in enumerate(log) if re.match(
        r'^(undo|no|delete) .*(dr-pgbackrest-pull|rule 20$|destination-ip dr-h-geo-backup|dst-addr "dr-h-geo-backup")', c))
    obj_gone = next(i for i, c in enumerate(log) if re.match(DELETE_RX, c))
    assert rule_gone < obj_gone, log
    assert len(sim.errors) == 1, sim.errors       # only the injected fault
    sim.errors.clear()

    # 6. the same change without the fault: the old port is gone, not merely joined by the new one
    rc, out = r.play(dr_flows=CHANGED_FLOWS)
    assert rc == 0 and r.records()[-1]["outcome"] == "changed", out
    text = sim.running_text()
    assert re.search(r"\b5433\b", text) and not re.search(r"\b5432\b", text), text
    assert "geo-backup" not in text and rule_order(sim)[1:] == ["dr-pg-replication", "dr-file-mirror",
                                                                 "dr-tunnel-deny", "dr-tunnel-deny-out"]
    assert sim.errors == [] and sim.internal == []   # the simulator refuses deleting an object in use
    changed = text

    # 7. a device that keeps the old value of a single-valued line (the peer's address):
    #    the read-back compares whole sections, sees the extra line, restores
    sim.quirks.add("keep_old")
    sites = {"geo": {"lan": "192.0.2.0/24", "wan": "203.0.113.1"}, "miyun": {"lan": "198.51.100.0/24", "wan": "203.0.113.9"}}
    rc, out = r.play(dr_flows=CHANGED_FLOWS, dr_sites=sites)
    sim.quirks.clear()
    assert rc != 0, out
    rec = r.records()[-1]
    assert rec["outcome"] == "failed-restored" and "read-back differs" in rec["error"], rec
    assert "203.0.113.2" in rec["error"] or "extra" in rec["error"], rec["error"]
    assert sim.running_text() == changed and sim.saved_text() == changed

    assert sim.internal == []


def test_junos_commit_confirmed_rolls_back_without_confirmation():
    """The device itself undoes an unconfirmed `commit confirmed 1` (1 minute = 1 s here)."""
    from netmiko import ConnectHandler
    with FirewallSim("juniper_junos", minute=1.0) as sim:
        before = sim.running_text()
        conn = ConnectHandler(device_type="juniper_junos", host="127.0.0.1", port=sim.port,
                              username="admin", password="fwsim-pass")
        conn.send_config_set(["set security address-book global address dr-probe 192.0.2.99/32"],
                             exit_config_mode=False)
        assert "dr-probe" in conn.send_command("show | compare", expect_string=r"#\s*$")
        out = conn.commit(confirm=True, confirm_delay=1)
        assert "rolled back in 1 minutes" in out
        assert "dr-probe" in sim.running_text()
        # a reference the candidate lacks fails the commit check-out, and nothing is committed
        conn.send_config_set(["set security policies global policy dr-x match source-address dr-ghost"],
                             exit_config_mode=False)
        with pytest.raises(ValueError, match="Referenced address 'dr-ghost' is not defined"):
            conn.commit()
        conn.send_command("rollback 0", expect_string=r"#\s*$")
        conn.exit_config_mode()
        deadline = __import__("time").time() + 5
        while "dr-probe" in sim.running_text() and __import__("time").time() < deadline:
            __import__("time").sleep(0.2)
        assert sim.running_text() == before and sim.stats["auto_rollbacks"] == 1
        # confirmed in time: it stays
        conn.send_config_set(["set security address-book global address dr-probe 192.0.2.99/32"],
                             exit_config_mode=False)
        conn.commit(confirm=True, confirm_delay=1)
        conn.commit()
        conn.exit_config_mode()
        __import__("time").sleep(1.5)
        assert "dr-probe" in sim.running_text() and sim.stats["auto_rollbacks"] == 1
        conn.disconnect()


@pytest.mark.parametrize("platform", PLATFORMS)
def test_session_dropped_mid_push_is_restored(platform, sim_for):
    """The SSH session dies in the middle of the push: reconnect, restore, compare."""
    sim, r = sim_for(platform)
    pristine, pristine_saved = sim.running_text(), sim.saved_text()
    sim.fault = {"match": r"^(ike peer|ikev2 peer|ikev2 keychain|set security ike gateway)", "action": "disconnect"}
    rc, out = r.play()
    assert rc != 0, out
    rec = r.records()[-1]
    assert sim.stats["faults_fired"] == 1 and sim.stats["connections"] >= 2
    assert rec["outcome"] == "failed-restored", rec
    assert sim.stats["config_lines"] > 5           # something was applied before the drop
    assert sim.running_text() == pristine and sim.saved_text() == pristine_saved


# Input the module's validation refuses (each a playbook run, so only a few here; every
# build_model/intended() refusal is unit-tested in tests/unit/test_vendor_firewall.py)
BAD = [
    ("unknown platform", {"gateway_platform": "cisco_asa"}, "gateway_platform is huawei, hp_comware, hillstone_stoneos or juniper_junos"),
    ("no security profiles", {"vendor_fw_security_profiles": {"ips": "site-ips"}}, "security profiles not declared: av"),
    ("no target", {"target": None}, "Give exactly one device"),
    ("empty target", {"target": ""}, "Give exactly one device"),
    ("two targets", {"target": "fwsim-huawei,fwsim-comware"}, "Give exactly one device"),
]


@pytest.mark.parametrize("name, extra, msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_before_connecting(name, extra, msg, sim_for):
    sim, r = sim_for("huawei")
    pristine = sim.running_text()
    rc, out = r.play(**extra)
    assert rc != 0, out
    assert msg in out, out
    assert sim.stats["connections"] == 0
    assert sim.running_text() == pristine


def test_module_itself_refuses_unknown_platform(tmp_path):
    """Without the playbook's guard, the module's own validation answers."""
    args = {"platform": "cisco_asa", "device": "x", "host": "127.0.0.1", "username": "unused-user", "password": "unused-password-xyz",
            "local_site": "geo", "sites": {}, "site_hosts": {}, "flows": [], "wan_interface": "g0",
            "template_dir": str(ROOT / "templates" / "firewall"), "security_profiles": {"ips": "site-ips", "av": "site-av"}}
    p = subprocess.run([str(VENV / "ansible"), "-i", "inventory/fwsim", "-c", "local", "localhost", "-m", "vendor_firewall", "-a", json.dumps(args),
                        "-e", "ansible_python_interpreter=" + str(VENV / "python")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "unknown platform 'cisco_asa'" in p.stdout + p.stderr
