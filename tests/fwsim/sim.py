"""SSH firewall simulator for Huawei USG, H3C SecPath (Comware) and Hillstone StoneOS.

A paramiko SSH server on 127.0.0.1 (ephemeral port) that speaks enough of each
platform's CLI for netmiko's real SSH driver to work: login banner and prompt,
paging-disable commands, user/system view (VRP, Comware) or exec/config mode
(StoneOS), nested configuration views with their prompts, `undo`/`no`,
single-valued lines that replace their predecessor, pre-shared keys displayed
encrypted, the running-config display, `save` with its confirm dialog, and a
saved configuration separate from the running one.

Deliberately independent of module_utils/vendor_firewall.py: own tree, own grammar
tables, own display code, so tests exercise the module against something it did not
write.

Fault injection (``sim.fault``): ``{"line": N}`` rejects the Nth configuration line
received while in a configuration view, ``{"match": regex}`` rejects the first line
matching; ``"action": "error"`` (default) answers with the platform's error message
and does not apply the line, ``"action": "disconnect"`` drops the SSH session
instead. A fault fires once and disarms itself.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import paramiko

_HOST_KEY = None
_HOST_KEY_LOCK = threading.Lock()


def _host_key():
    global _HOST_KEY
    with _HOST_KEY_LOCK:
        if _HOST_KEY is None:
            _HOST_KEY = paramiko.RSAKey.generate(2048)
        return _HOST_KEY


@dataclass
class Line:
    text: str
    kids: list = field(default_factory=list)
    section: bool = False
    view: str = ""


def _hash(v: str, n: int = 24) -> str:
    return base64.b64encode(hashlib.sha256(v.encode()).digest()).decode()[:n]


# --------------------------------------------------------------------------- platforms
# headers: (parent header regex or None for root, header regex, view name format)

PROFILES = {
    "huawei": {
        "hostname": "USG-GEO",
        "style": "vrp", "indent": 1, "negate": "undo",
        "enter": "system-view", "enter_msg": "Enter system view, return user view with Ctrl+Z.",
        "exit_one": "quit", "exit_all": "return",
        "paging": {"screen-length 0 temporary":
                   "Info: The configuration takes effect on the current user terminal interface only."},
        "show_running": ("display current-configuration",),
        "show_saved": ("display saved-configuration",),
        "err_unknown": "Error: Unrecognized command found at '^' position.",
        "err_fault": "Error: Failed to apply the configuration (simulated fault).",
        "err_missing": "Error: The configuration does not exist.",
        "headers": [
            (None, r"ip address-set (\S+) type object", "object-address-set-{0}"),
            (None, r"ike proposal (\d+)", "ike-proposal-{0}"),
            (None, r"ike peer (\S+)", "ike-peer-{0}"),
            (None, r"ipsec proposal (\S+)", "ipsec-proposal-{0}"),
            (None, r"ipsec policy (\S+) (\d+) isakmp", "ipsec-policy-isakmp-{0}-{1}"),
            (None, r"acl number (\d+)", "acl-adv-{0}"),
            (None, r"security-policy", "policy-security"),
            (None, r"interface (\S+)", "{0}"),
            (r"security-policy", r"rule name (\S+)", "policy-security-rule-{0}"),
        ],
        "root_leaves": [r"sysname \S+", r"clock timezone .*", r"info-center .*", r"ip route-static .*",
                        r"firewall zone .*"],
        "single": [r"address \d+", r"action", r"encryption-algorithm", r"dh", r"authentication-algorithm",
                   r"integrity-algorithm", r"prf", r"ike-proposal", r"pre-shared-key", r"remote-address",
                   r"esp authentication-algorithm", r"esp encryption-algorithm", r"security acl",
                   r"ike-peer", r"proposal", r"pfs", r"sa duration time-based", r"ipsec policy",
                   r"ip address", r"sysname", r"dpd type", r"rule \d+", r"service protocol"],
        "stored_negations": [r"undo version \d"],
        "secret": (r"pre-shared-key (?:cipher )?(\S+)",
                   lambda v: f"pre-shared-key {v}" if v.startswith("%^%#")
                   else f"pre-shared-key %^%#{_hash(v)}%^%#"),
        "save": [("save", "The current configuration will be written to the device. Continue? [Y/N]:",
                  "Now saving the current configuration to the slot 0.\r\nInfo: Save the configuration successfully.")],
        "seed": [
            "sysname {h}",
            "clock timezone Beijing add 08:00:00",
            ("interface GigabitEthernet1/0/0", ["ip address 192.0.2.1 255.255.255.0"]),
            ("interface GigabitEthernet1/0/1", ["ip address 203.0.113.1 255.255.255.0"]),
            ("security-policy", [("rule name site-mgmt", ["source-zone trust", "destination-zone local",
                                                          "service protocol tcp destination-port 22",
                                                          "action permit"])]),
        ],
        "banner": "Info: The max number of VTY users is 10, and the number\r\n"
                  "      of current VTY users on line is 1.\r\n",
    },
    "hp_comware": {
        "hostname": "SecPath-GEO",
        "style": "vrp", "indent": 1, "negate": "undo",
        "enter": "system-view",
        "enter_msg": "System View: return to User View with Ctrl+Z.",
        "exit_one": "quit", "exit_all": "return",
        "paging": {"screen-length disable": ""},
        "show_running": ("display current-configuration",),
        "show_saved": ("display saved-configuration",),
        "err_unknown": "                  ^\r\n % Unrecognized command found at '^' position.",
        "err_fault": " % Simulated fault: the command could not be applied.",
        "err_missing": " % The specified configuration does not exist.",
        "headers": [
            (None, r"object-group ip address (\S+)", "obj-ip-{0}"),
            (None, r"object-group service (\S+)", "obj-svc-{0}"),
            (None, r"acl advanced (\d+)", "acl-ipv4-adv-{0}"),
            (None, r"ipsec transform-set (\S+)", "ipsec-transform-set-{0}"),
            (None, r"ikev2 proposal (\S+)", "ikev2-proposal-{0}"),
            (None, r"ikev2 policy (\S+)", "ikev2-policy-{0}"),
            (None, r"ikev2 keychain (\S+)", "ikev2-keychain-{0}"),
            (None, r"ikev2 profile (\S+)", "ikev2-profile-{0}"),
            (None, r"ipsec policy (\S+) (\d+) isakmp", "ipsec-policy-isakmp-{0}-{1}"),
            (None, r"security-policy ip", "security-policy-ip"),
            (None, r"interface (\S+)", "{0}"),
            (r"ikev2 keychain \S+", r"peer (\S+)", "ikev2-keychain-peer-{0}"),
            (r"security-policy ip", r"rule (\d+) name (\S+)", "security-policy-ip-{0}-{1}"),
        ],
        "root_leaves": [r"sysname \S+", r"clock timezone .*", r"ip route-static .*"],
        "single": [r"\d+", r"rule \d+", r"esp encryption-algorithm", r"esp authentication-algorithm", r"pfs",
                   r"encryption", r"integrity", r"prf", r"dh", r"proposal", r"address", r"identity address",
                   r"pre-shared-key", r"keychain", r"dpd", r"transform-set", r"security acl",
                   r"local-address", r"remote-address", r"ikev2-profile", r"sa duration time-based",
                   r"ipsec apply policy", r"action", r"sysname", r"ip address", r"service"],
        "stored_negations": [],
        "secret": (r"pre-shared-key (?:plaintext|ciphertext|simple|cipher) (\S+)",
                   lambda v: f"pre-shared-key ciphertext {v}" if v.startswith("$c$3$")
                   else f"pre-shared-key ciphertext $c$3${_hash(v, 32)}"),
        "save": [("save force", None,
                  "Validating file. Please wait...\r\n"
                  "Saved the current configuration to mainboard device successfully."),
                 ("save", "The current configuration will be written to the device. Are you sure? [Y/N]:",
                  "Please input the file name(*.cfg)[flash:/startup.cfg]\r\n"
                  "(To leave the existing filename unchanged, press the enter key):"),
                 ],
        "seed": [
            "sysname {h}",
            "clock timezone Beijing add 08:00:00",
            ("interface GigabitEthernet1/0/0", ["ip address 192.0.2.1 255.255.255.0"]),
            ("interface GigabitEthernet1/0/1", ["ip address 203.0.113.1 255.255.255.0"]),
            ("security-policy ip", [("rule 1 name site-mgmt", ["action pass", "source-zone Trust",
                                                               "destination-zone Local"])]),
        ],
        "banner": "******************************************************************************\r\n"
                  "* Copyright (c) 2004-2024 New H3C Technologies Co., Ltd. All rights reserved.*\r\n"
                  "******************************************************************************\r\n",
    },
    "hillstone_stoneos": {
        "hostname": "SG-GEO",
        "style": "stoneos", "indent": 2, "negate": "no",
        "enter": "configure", "enter_msg": "",
        "exit_one": "exit", "exit_all": "end",
        "paging": {"terminal length 0": ""},
        "show_running": ("show configuration", "show configuration running"),
        "show_saved": ("show configuration saved",),
        "err_unknown": "                ^-----unrecognized keyword\r\nError: Invalid input",
        "err_fault": "Error: Simulated fault, the command was not applied",
        "err_missing": "Error: Entry does not exist",
        "headers": [
            (None, r'address "?([^"]+)"?', "addr"),
            (None, r'service "?([^"]+)"?', "service"),
            (None, r'ikev2 proposal "?([^"]+)"?', "ikev2-proposal"),
            (None, r'ikev2 ipsec-proposal "?([^"]+)"?', "ikev2-ipsec-proposal"),
            (None, r'ikev2 peer "?([^"]+)"?', "ikev2-peer"),
            (None, r'ikev2 profile "?([^"]+)"?', "ikev2-profile"),
            (None, r'tunnel ipsec "?([^"]+)"? auto', "tunnel-ipsec-auto"),
            (None, r"policy-global", "policy"),
            (None, r"interface (\S+)", "if-eth"),
            (None, r'zone "?([^"]+)"?', "zone"),
            (r"policy-global", r"rule id (\d+)", "policy-rule"),
        ],
        "root_leaves": [r"hostname \S+", r"clock zone .*", r"ip vrouter .*", r"admin user .*"],
        "single": [r"ip", r"encryption", r"integrity", r"prf", r"group", r"hash", r"protocol", r"lifetime",
                   r"interface", r"ikev2-proposal", r"peer", r"pre-share", r"remote id", r"local id",
                   r"ikev2-peer", r"ikev2-profile", r"ipsec-proposal", r"id", r"action", r"name",
                   r"hostname", r"zone", r"trust-domain"],
        "stored_negations": [],
        "secret": (r"pre-share (\S+)",
                   lambda v: f"pre-share {v}" if v.startswith('"') else f'pre-share "{_hash(v, 32)}"'),
        "save": [("save", "Save configuration, are you sure? [y]/n: ",
                  "Saving configuration is finished"),
                 ("save all", "Save configuration for all VSYS, are you sure? [y]/n: ",
                  "Saving configuration is finished")],
        "seed": [
            'hostname "{h}"',
            "clock zone china",
            ("interface ethernet0/0", ["zone trust", "ip address 192.0.2.1 255.255.255.0"]),
            ("interface ethernet0/1", ["zone untrust", "ip address 203.0.113.1 255.255.255.0"]),
            ("policy-global", [("rule id 1", ["action permit", 'src-zone "trust"', 'dst-zone "trust"',
                                              'name "site-mgmt"'])]),
        ],
        "banner": "",
    },
}


class FirewallSim:
    """One simulated device. Use as a context manager, or start()/stop()."""

    def __init__(self, platform: str, hostname: str | None = None,
                 username: str = "admin", password: str = "fwsim-pass"):
        if platform not in PROFILES:
            raise ValueError(f"unknown platform {platform}")
        self.platform = platform
        self.p = PROFILES[platform]
        self.hostname = hostname or self.p["hostname"]
        self.username, self.password = username, password
        self.lock = threading.RLock()
        self.running = Line("")
        self._seed(self.running, self.p["seed"])
        self.saved = copy.deepcopy(self.running)
        self.fault: dict | None = None
        self.stats = {"connections": 0, "config_lines": 0, "saves": 0, "faults_fired": 0}
        self.log: list[str] = []
        self._sock = None
        self._threads: list[threading.Thread] = []
        self._transports: list[paramiko.Transport] = []
        self._stop = threading.Event()
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FirewallSim":
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        _host_key()
        t = threading.Thread(target=self._accept, name=f"fwsim-{self.platform}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for tr in list(self._transports):
            try:
                tr.close()
            except Exception:
                pass
        if self._sock:
            self._sock.close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ state views
    def running_text(self) -> str:
        with self.lock:
            return self._display(self.running)

    def saved_text(self) -> str:
        with self.lock:
            return self._display(self.saved)

    # ------------------------------------------------------------------ tree
    def _seed(self, node: Line, items):
        for it in items:
            if isinstance(it, str):
                node.kids.append(Line(it.format(h=self.hostname)))
            else:
                head, kids = it
                hl = Line(head, section=True, view=self._header(node, head)[1] or "")
                node.kids.append(hl)
                self._seed(hl, kids)

    def _header(self, parent: Line, text: str):
        for ptn, rx, view in self.p["headers"]:
            if (ptn is None and parent.text == "") or (ptn and parent.text and re.fullmatch(ptn, parent.text)):
                m = re.fullmatch(rx, text)
                if m:
                    return True, view.format(*m.groups())
        return False, None

    def _display(self, root: Line) -> str:
        ind = self.p["indent"]
        out: list[str] = []

        def walk(n: Line, d: int):
            for k in n.kids:
                out.append(" " * (ind * d) + k.text)
                walk(k, d + 1)
                if self.p["style"] == "stoneos" and k.section:
                    out.append(" " * (ind * d) + "exit")

        if self.p["style"] == "vrp":
            out.append("!Software Version V500R005C20SPC300" if self.platform == "huawei"
                       else " version 7.1.064, Release 9333P38")
            leaves = [k for k in root.kids if not k.section]
            out.append("#")
            for k in leaves:
                out.append(" " * ind + k.text)
            for k in root.kids:
                if k.section:
                    out.append("#")
                    out.append(k.text)
                    walk(k, 1)
            out.append("#")
            out.append("return")
        else:
            out += ["Building configuration..", "Running configuration:", "!",
                    "config-version 5.5.0R9", "!"]
            walk(root, 0)
            out.append("end")
        return "\r\n".join(out)

    # ------------------------------------------------------------------ server
    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn):
        tr = paramiko.Transport(conn)
        self._transports.append(tr)
        tr.add_server_key(_host_key())
        iface = _Iface(self)
        try:
            tr.start_server(server=iface)
            chan = tr.accept(10)
            if chan is None or not iface.shell.wait(10):
                return
            with self.lock:
                self.stats["connections"] += 1
            _Session(self, chan).run()
        except Exception:
            pass
        finally:
            try:
                tr.close()
            except Exception:
                pass
            if tr in self._transports:
                self._transports.remove(tr)


class _Iface(paramiko.ServerInterface):
    def __init__(self, sim: FirewallSim):
        self.sim = sim
        self.shell = threading.Event()

    def check_auth_password(self, username, password):
        ok = username == self.sim.username and password == self.sim.password
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username):
        return "password"

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, *args):
        return True

    def check_channel_shell_request(self, channel):
        self.shell.set()
        return True


class _Disconnect(Exception):
    pass


class _Session:
    def __init__(self, sim: FirewallSim, chan):
        self.sim, self.chan, self.p = sim, chan, sim.p
        self.config = False
        self.stack: list[Line] = []       # open views below the root in config mode
        self.pending: tuple | None = None  # (kind, state) of a save dialog

    # prompts ---------------------------------------------------------------
    def prompt(self) -> str:
        h = self.sim.hostname
        if self.pending:
            return ""
        if self.p["style"] == "vrp":
            if not self.config:
                return f"<{h}>"
            if not self.stack:
                return f"[{h}]"
            return f"[{h}-{self.stack[-1].view}]"
        if not self.config:
            return f"{h}# "
        if not self.stack:
            return f"{h}(config)# "
        return f"{h}(config-{self.stack[-1].view})# "

    def send(self, s: str):
        self.chan.sendall(s.encode())

    def run(self):
        self.send(self.p["banner"] + "\r\n" + self.prompt())
        buf, last = "", ""
        while True:
            data = self.chan.recv(4096)
            if not data:
                return
            echo = []
            for ch in data.decode("utf-8", "replace"):
                if ch in "\r\n":
                    if ch == "\n" and last == "\r":
                        last = ch
                        continue
                    last = ch
                    echo.append("\r\n")
                    self.send("".join(echo))
                    echo = []
                    try:
                        out = self.line(buf)
                    except _Disconnect:
                        self.chan.close()
                        return
                    buf = ""
                    if out is None:          # logout
                        self.chan.close()
                        return
                    self.send((out + "\r\n" if out else "") + self.prompt())
                elif ch in "\x08\x7f":
                    buf = buf[:-1]
                    echo.append("\b \b")
                elif ch == "\x1a":           # Ctrl+Z
                    self.config, self.stack = False, []
                    echo.append("\r\n" + self.prompt())
                else:
                    last = ch
                    buf += ch
                    echo.append(ch)
            if echo:
                self.send("".join(echo))

    # commands --------------------------------------------------------------
    def line(self, raw: str):
        cmd = " ".join(raw.split())
        with self.sim.lock:
            self.sim.log.append(cmd)
            if self.pending:
                return self.answer(cmd)
            if not cmd:
                return ""
            if cmd in self.p["paging"]:
                return self.p["paging"][cmd]
            if cmd in self.p["show_running"]:
                return self.sim._display(self.sim.running)
            if cmd in self.p["show_saved"]:
                return self.sim._display(self.sim.saved)
            for scmd, question, done in self.p["save"]:
                if cmd == scmd and (not self.config or self.p["style"] == "vrp"):
                    if question is None:
                        self.do_save()
                        return done
                    self.pending = ("save", scmd, done)
                    self.send(question)
                    return ""
            if not self.config:
                if cmd == self.p["enter"]:
                    self.config = True
                    return self.p["enter_msg"]
                if cmd in ("quit", "exit", "logout"):
                    return None
                if cmd.startswith(("display ", "show ")):
                    return ""
                return self.p["err_unknown"]
            return self.config_line(cmd)

    def answer(self, cmd: str):
        kind, scmd, done = self.pending
        self.pending = None
        if self.sim.platform == "hp_comware" and scmd == "save":
            # Comware's three-step dialog: Y/N, file name, overwrite
            if kind == "save":
                if cmd.lower() not in ("y", "yes"):
                    return "Save operation canceled"
                self.pending = ("file", scmd, done)
                self.send(done)
                return ""
            if kind == "file":
                self.pending = ("overwrite", scmd, done)
                self.send("flash:/startup.cfg exists, overwrite? [Y/N]:")
                return ""
            if cmd.lower() in ("y", "yes"):
                self.do_save()
                return "Validating file. Please wait...\r\nSaved the current configuration to mainboard device successfully."
            return "Save operation canceled"
        if cmd.lower() in ("y", "yes", ""):
            self.do_save()
            return done
        return "Info: Save canceled." if self.p["style"] == "vrp" else "Save canceled"

    def do_save(self):
        self.sim.saved = copy.deepcopy(self.sim.running)
        self.sim.stats["saves"] += 1

    def config_line(self, cmd: str):
        p = self.p
        if cmd == p["exit_all"]:
            self.config, self.stack = False, []
            return ""
        if cmd == p["exit_one"]:
            if self.stack:
                self.stack.pop()
            else:
                self.config = False
            return ""
        self.sim.stats["config_lines"] += 1
        f = self.sim.fault
        if f:
            f["seen"] = f.get("seen", 0) + 1
            hit = ("line" in f and f["seen"] == f["line"]) or ("match" in f and re.search(f["match"], cmd))
            if hit:
                self.sim.fault = None
                self.sim.stats["faults_fired"] += 1
                if f.get("action") == "disconnect":
                    raise _Disconnect()
                return p["err_fault"]
        cur = self.stack[-1] if self.stack else self.sim.running
        neg = p["negate"] + " "
        if cmd.startswith(neg) and not any(re.fullmatch(r, cmd) for r in p["stored_negations"]):
            target = cmd[len(neg):]
            for k in cur.kids:
                if k.text == target or k.text.startswith(target + " "):
                    cur.kids.remove(k)
                    return ""
            return p["err_missing"]
        is_head, view = self._head(cur, cmd)
        if is_head:
            for k in cur.kids:
                if k.section and k.text == cmd:
                    self.stack.append(k)
                    return ""
            node = Line(cmd, section=True, view=view)
            cur.kids.append(node)
            self.stack.append(node)
            return ""
        if not self.stack and not any(re.fullmatch(r, cmd) for r in p["root_leaves"]):
            return p["err_unknown"]
        m = re.fullmatch(p["secret"][0], cmd)
        if m:
            cmd = p["secret"][1](m.group(1))
        # a default restored: `version 1` removes a stored `undo version 1`
        if (neg + cmd) in [k.text for k in cur.kids]:
            cur.kids = [k for k in cur.kids if k.text != neg + cmd]
            return ""
        if any(k.text == cmd for k in cur.kids):
            return ""
        for rx in p["single"]:
            m = re.match(rf"^({rx})(\s|$)", cmd)
            if m:
                key = m.group(1)
                for i, k in enumerate(cur.kids):
                    if not k.section and re.match(rf"^{re.escape(key)}(\s|$)", k.text):
                        cur.kids[i] = Line(cmd)
                        return ""
                break
        cur.kids.append(Line(cmd))
        return ""

    def _head(self, cur: Line, cmd: str):
        return self.sim._header(cur, cmd)
