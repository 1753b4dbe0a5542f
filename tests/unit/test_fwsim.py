"""The simulator behaves like the devices where the module relies on it (raw SSH, no netmiko):
grammar errors with the caret, references, paging, idle timeout, privilege levels."""

import re
import time

import paramiko
import pytest

from tests.fwsim import FirewallSim


class Shell:
    def __init__(self, sim, user="admin", password="fwsim-pass"):
        self.c = paramiko.SSHClient()
        self.c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.c.connect("127.0.0.1", port=sim.port, username=user, password=password,
                       look_for_keys=False, allow_agent=False, timeout=5)
        self.ch = self.c.invoke_shell()
        self.ch.settimeout(5)
        self.read(r"[>\]#]\s*$")

    def read(self, until, timeout=5.0):
        buf, end = "", time.time() + timeout
        while time.time() < end:
            if self.ch.recv_ready():
                buf += self.ch.recv(65536).decode()
                if re.search(until, buf):
                    return buf
            elif self.ch.closed or self.ch.exit_status_ready():
                return buf
            else:
                time.sleep(0.02)
        return buf

    def cmd(self, line, until=r"[>\]#]\s*$"):
        self.ch.send(line + "\r")
        return self.read(until)

    def close(self):
        self.c.close()


@pytest.fixture(scope="module")
def huawei():
    with FirewallSim("huawei", idle_timeout=1.5) as sim:
        yield sim


def test_grammar_errors_with_caret_and_references(huawei):
    sh = Shell(huawei)
    sh.cmd("screen-length 0 temporary")
    sh.cmd("system-view")
    sh.cmd("security-policy")
    sh.cmd("rule name t1")
    out = sh.cmd("servce protocol tcp destination-port 1")
    assert "Error: Unrecognized command found at '^' position." in out
    caret = next(ln for ln in out.splitlines() if ln.strip() == "^")
    assert caret.index("^") == len("[USG-GEO-policy-security-rule-t1]")   # under the first token
    out = sh.cmd("action accept")
    assert "Error: Wrong parameter found at '^' position." in out
    out = sh.cmd("service protocol tcp")
    assert "Error: Incomplete command found at '^' position." in out
    out = sh.cmd("source-address address-set ghost")          # an object that does not exist
    assert "Error: The specified object does not exist." in out
    sh.cmd("quit")
    sh.cmd("quit")
    sh.cmd("ip address-set used type object")
    sh.cmd("address 0 192.0.2.5 mask 32")
    sh.cmd("quit")
    sh.cmd("security-policy")
    sh.cmd("rule name t1")
    assert "Error" not in sh.cmd("source-address address-set used")
    sh.cmd("return")
    sh.cmd("system-view")
    out = sh.cmd("undo ip address-set used type object")      # still referenced by rule t1
    assert "Error: The object is being referenced and cannot be deleted." in out
    assert "ip address-set used type object" in huawei.running_text()
    sh.cmd("security-policy")
    sh.cmd("undo rule name t1")
    sh.cmd("quit")
    assert "Error" not in sh.cmd("undo ip address-set used type object")
    assert "used" not in huawei.running_text()
    sh.close()


def test_paging_until_disabled_and_idle_timeout(huawei):
    sh = Shell(huawei)
    out = sh.cmd("display current-configuration", until=r"---- More ----")
    assert out.rstrip().endswith("---- More ----") and "return" not in out
    out = sh.ch.send("q") and sh.read(r">\s*$")
    assert out.rstrip().endswith("<USG-GEO>")
    sh.cmd("screen-length 0 temporary")
    out = sh.cmd("display current-configuration", until=r"return\r\n<USG-GEO>")
    assert "More" not in out and "return" in out
    assert not sh.ch.eof_received
    time.sleep(2.0)                                            # idle_timeout=1.5 s: the device logs out
    sh.read(r"$^", timeout=0.5)
    assert sh.ch.eof_received or sh.ch.closed
    sh.close()


def test_monitor_level_user_cannot_configure(huawei):
    sh = Shell(huawei, user="monitor", password="fwsim-monitor")
    out = sh.cmd("system-view")
    assert "Error: Unrecognized command found at '^' position." in out and out.rstrip().endswith("<USG-GEO>")
    sh.close()


def test_stoneos_and_comware_errors():
    with FirewallSim("hillstone_stoneos") as sim:
        sh = Shell(sim)
        sh.cmd("terminal length 0")
        sh.cmd("configure")
        out = sh.cmd("polcy-global")
        assert "^-----unrecognized keyword polcy-global" in out and "Error: Invalid input" in out
        sh.close()
    with FirewallSim("hp_comware") as sim:
        sh = Shell(sim)
        sh.cmd("screen-length disable")
        sh.cmd("system-view")
        sh.cmd("ipsec transform-set t")
        out = sh.cmd("esp encryption-algorithm aes-256")           # Comware spells it aes-cbc-256
        assert "% Wrong parameter found at '^' position." in out
        sh.close()


def test_junos_candidate_rollback_and_syntax_error():
    with FirewallSim("juniper_junos") as sim:
        before = sim.running_text()
        sh = Shell(sim)
        sh.cmd("set cli screen-length 0")
        assert "[edit]" in sh.cmd("configure")
        out = sh.cmd("set security polcies global policy x then deny")
        assert "syntax error." in out
        sh.cmd("set security address-book global address dr-x 192.0.2.7/32")
        assert "+   set security address-book global address dr-x 192.0.2.7/32" in sh.cmd("show | compare")
        assert sim.running_text() == before                     # not committed yet
        assert "load complete" in sh.cmd("rollback 0")
        assert sh.cmd("show | compare").count("set ") == 0
        sh.close()
