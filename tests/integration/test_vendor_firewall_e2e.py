"""vendor_firewall end to end: ansible-playbook -> library/vendor_firewall.py -> netmiko
(real SSH) -> tests/fwsim simulator on 127.0.0.1, for huawei, hp_comware, hillstone_stoneos.

Each test starts its own simulator and stops it (no leftovers). Proven per platform:
check mode pushes nothing and shows the diff; first run pushes; second run changes
nothing; a failure mid-push (rejected line, or dropped SSH session) leaves the running
and saved configuration exactly as before; bad input fails before any connection.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fwsim import FirewallSim

ROOT = Path(__file__).resolve().parents[2]

VENV = ROOT / ".venv" / "bin"
PSK = "fwsim-only-not-a-secret-0123"  # inventory/fwsim/group_vars/all.yml
TARGET = {"huawei": "fwsim-huawei", "hp_comware": "fwsim-comware", "hillstone_stoneos": "fwsim-hillstone"}
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
    return [m.strip('"') for m in re.findall(r'^    name (\S+)', text, re.M)]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_lifecycle_check_push_idempotent_rollback(platform, sim_for):
    sim, r = sim_for(platform)
    pristine, pristine_saved = sim.running_text(), sim.saved_text()

    # 1. check mode: diff shown, nothing pushed, nothing saved
    rc, out = r.play(check=True)
    assert rc == 0, out
    rec = r.records()[-1]
    assert rec["outcome"] == "check" and rec["check_mode"] is True and rec["user"] == "pytest"
    assert rec["changed_lines"] > 50
    assert "+ " in out and "dr-pg-replication" in out and "******" in out
    assert PSK not in out and PSK not in r.log.read_text()
    assert sim.running_text() == pristine and sim.saved_text() == pristine_saved
    assert sim.stats["config_lines"] == 0 and sim.stats["saves"] == 0
    assert Path(rec["backup"]).read_text().replace("\n", "\r\n").rstrip() == pristine.rstrip()

    # 2. first run pushes, saves, verifies
    rc, out = r.play()
    assert rc == 0, out
    rec = r.records()[-1]
    assert rec["outcome"] == "changed", rec
    pushed = sim.stats["config_lines"]
    assert pushed >= rec["changed_lines"] > 50
    assert sim.saved_text() == sim.running_text() != pristine
    assert sim.stats["saves"] == 1
    assert PSK not in sim.running_text()         # the device shows it encrypted
    names = rule_order(sim)
    assert names[0] == "site-mgmt"               # the site's own rule is untouched
    assert names[1:] == ["dr-pg-replication", "dr-pgbackrest-pull", "dr-file-mirror",
                         "dr-tunnel-deny", "dr-tunnel-deny-out"]
    converged = sim.running_text()

    # 3. second run and a second check: no change, nothing sent
    for check in (False, True):
        rc, out = r.play(check=check)
        assert rc == 0, out
        assert r.records()[-1]["outcome"] == "unchanged"
        assert r.records()[-1]["changed_lines"] == 0
    assert sim.stats["config_lines"] == pushed and sim.running_text() == converged

    # 4. a new flow, and the device rejects the 5th line of the push: restored exactly
    sim.fault = {"line": 5}
    rc, out = r.play(dr_flows=BASE_FLOWS + [NEW_FLOW])
    assert rc != 0, out
    rec = r.records()[-1]
    assert rec["outcome"] == "failed-restored", rec
    assert sim.stats["faults_fired"] == 1
    assert rec["rollback"]["restored"] is True and rec["rollback"]["restore_lines"] > 0
    assert sim.running_text() == converged        # the whole display, byte for byte
    assert sim.saved_text() == converged
    assert "failed" in out and "restored" in out

    # 5. same change without the fault: the new permit lands before the final deny
    rc, out = r.play(dr_flows=BASE_FLOWS + [NEW_FLOW])
    assert rc == 0, out
    assert r.records()[-1]["outcome"] == "changed"
    assert rule_order(sim)[-3:] == ["dr-restic-pull", "dr-tunnel-deny", "dr-tunnel-deny-out"]
    rc, out = r.play(dr_flows=BASE_FLOWS + [NEW_FLOW])
    assert rc == 0 and r.records()[-1]["outcome"] == "unchanged", out

    # 6. the flow leaves the inventory again: its permit is removed, the rest stays
    rc, out = r.play()
    assert rc == 0 and r.records()[-1]["outcome"] == "changed", out
    assert rule_order(sim) == names
    assert sim.saved_text() == sim.running_text()
    print(f"{platform}: first push {pushed} config lines, {len(r.records())} runs logged")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_session_dropped_mid_push_is_restored(platform, sim_for):
    """The SSH session dies in the middle of the push: reconnect, restore, compare."""
    sim, r = sim_for(platform)
    pristine, pristine_saved = sim.running_text(), sim.saved_text()
    sim.fault = {"match": r"^(ike peer|ikev2 peer|ikev2 keychain)", "action": "disconnect"}
    rc, out = r.play()
    assert rc != 0, out
    rec = r.records()[-1]
    assert sim.stats["faults_fired"] == 1 and sim.stats["connections"] >= 2
    assert rec["outcome"] == "failed-restored", rec
    assert sim.stats["config_lines"] > 5           # something was applied before the drop
    assert sim.running_text() == pristine and sim.saved_text() == pristine_saved


BAD = [
    ("unknown platform", {"gateway_platform": "cisco_asa"}, "gateway_platform is huawei, hp_comware or hillstone"),
    ("overlapping subnets", {"dr_sites": {"geo": {"lan": "192.0.2.0/24", "wan": "203.0.113.1"},
                                          "miyun": {"lan": "192.0.2.128/25", "wan": "203.0.113.2"}}},
     "site subnets overlap"),
    ("unknown host", {"dr_flows": BASE_FLOWS + [dict(NEW_FLOW, src="miyun-ghost")]},
     "src 'miyun-ghost' is not a known host"),
    ("missing psk", {"gateway_ipsec_psk": ""}, "no pre-shared key"),
    ("missing cert", {"gateway_ipsec_auth": "cert", "gateway_ipsec_cert": {"pki_domain": "dr"}},
     "lacks local_id, peer_id"),
    ("empty template", {"vendor_fw_template_dir": "@EMPTY@"}, "rendered an empty configuration"),
    ("template without policy", {"vendor_fw_template_dir": "@NOPOLICY@"}, "renders no section for"),
    ("no target", {"target": None}, "Give exactly one device"),
    ("empty target", {"target": ""}, "Give exactly one device"),
    ("two targets", {"target": "fwsim-huawei,fwsim-comware"}, "Give exactly one device"),
]


@pytest.mark.parametrize("name, extra, msg", BAD, ids=[b[0] for b in BAD])
def test_bad_input_fails_before_connecting(name, extra, msg, sim_for, tmp_path):
    sim, r = sim_for("huawei")
    pristine = sim.running_text()
    extra = dict(extra)
    if extra.get("vendor_fw_template_dir", "").startswith("@"):
        t = tmp_path / "tpl"
        shutil.copytree(ROOT / "templates" / "firewall", t)
        if extra["vendor_fw_template_dir"] == "@EMPTY@":
            (t / "huawei" / "main.j2").write_text("{# intentionally nothing #}\n")
        else:
            (t / "huawei" / "policy.j2").write_text("#\n")
        extra["vendor_fw_template_dir"] = str(t)
    rc, out = r.play(**extra)
    assert rc != 0, out
    assert msg in out, out
    assert sim.stats["connections"] == 0
    assert sim.running_text() == pristine


def test_module_itself_refuses_unknown_platform(tmp_path):
    """Without the playbook's guard, the module's own validation answers."""
    args = {"platform": "cisco_asa", "device": "x", "host": "127.0.0.1", "username": "unused-user", "password": "unused-password-xyz",
            "local_site": "geo", "sites": {}, "site_hosts": {}, "flows": [], "wan_interface": "g0",
            "template_dir": str(ROOT / "templates" / "firewall")}
    p = subprocess.run([str(VENV / "ansible"), "-i", "inventory/fwsim", "-c", "local", "localhost", "-m", "vendor_firewall", "-a", json.dumps(args),
                        "-e", "ansible_python_interpreter=" + str(VENV / "python")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "unknown platform 'cisco_asa'" in p.stdout + p.stderr
