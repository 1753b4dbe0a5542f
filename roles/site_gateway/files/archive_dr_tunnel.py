#!/usr/bin/python3
"""archive-dr tunnel helper on a site gateway.

  archive-dr-tunnel status    print the tunnel facts as JSON
  archive-dr-tunnel metrics   write the facts to <state_dir>/tunnel.json and
                              <metrics_dir>/tunnel.prom (Prometheus textfile)
  archive-dr-tunnel watch     bring the tunnel up when it is down: always on the initiator;
                              on the responder only shortly after its IKE daemon (re)started
                              (a rebuilt responder's INITIAL_CONTACT clears the peer's stale SA)

Settings come from the JSON file the site_gateway role writes (/etc/archive-dr/tunnel.json,
or $ARCHIVE_DR_TUNNEL_CONF). Talks to charon over its VICI socket (no extra Python packages).
Installed by roles/site_gateway; unit-tested in tests/unit/test_site_gateway_tunnel.py.
"""
import calendar
import json
import os
import socket
import struct
import subprocess
import sys
import time

CONF_PATH = "/etc/archive-dr/tunnel.json"
VICI = "/run/charon.vici"


# ---------------------------------------------------------------- minimal VICI client
def _enc_msg(d):
    out = b""
    for k, v in d.items():
        kb = k.encode()
        vb = str(v).encode()
        out += struct.pack("!BB", 3, len(kb)) + kb + struct.pack("!H", len(vb)) + vb
    return out


def _dec_msg(buf):
    root, stack, i = {}, [], 0
    cur, lst = root, None
    while i < len(buf):
        t = buf[i]
        i += 1
        if t in (1, 3, 4):
            n = buf[i]
            i += 1
            name = buf[i:i + n].decode()
            i += n
        if t == 1:                      # section start
            new = {}
            cur[name] = new
            stack.append(cur)
            cur = new
        elif t == 2:                    # section end
            cur = stack.pop()
        elif t == 3:                    # key = value
            (ln,) = struct.unpack("!H", buf[i:i + 2])
            i += 2
            cur[name] = buf[i:i + ln].decode(errors="replace")
            i += ln
        elif t == 4:                    # list start
            lst = cur[name] = []
        elif t == 5:                    # list item
            (ln,) = struct.unpack("!H", buf[i:i + 2])
            i += 2
            lst.append(buf[i:i + ln].decode(errors="replace"))
            i += ln
        elif t == 6:                    # list end
            lst = None
    return root


class Vici:
    def __init__(self, path=VICI, timeout=5):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)

    def _send(self, ptype, name=None, msg=b""):
        body = bytes([ptype])
        if name is not None:
            body += bytes([len(name)]) + name.encode()
        body += msg
        self.s.sendall(struct.pack("!I", len(body)) + body)

    def _recv(self):
        def exact(n):
            b = b""
            while len(b) < n:
                c = self.s.recv(n - len(b))
                if not c:
                    raise ConnectionError("vici closed")
                b += c
            return b
        (ln,) = struct.unpack("!I", exact(4))
        body = exact(ln)
        ptype = body[0]
        if ptype == 7:                  # event: named
            n = body[1]
            return ptype, body[2:2 + n].decode(), body[2 + n:]
        return ptype, None, body[1:]

    def request(self, cmd, args=None):
        self._send(0, cmd, _enc_msg(args or {}))
        ptype, _, body = self._recv()
        if ptype != 1:
            raise RuntimeError(f"vici {cmd}: unknown command")
        return _dec_msg(body)

    def streamed(self, cmd, event, args=None):
        self._send(3, event)
        self._recv()                    # EVENT_CONFIRM
        self._send(0, cmd, _enc_msg(args or {}))
        items = []
        while True:
            ptype, _, body = self._recv()
            if ptype == 7:
                items.append(_dec_msg(body))
            elif ptype == 1:
                break
        self._send(4, event)
        self._recv()
        return items


# ---------------------------------------------------------------- settings
REQUIRED = ("conn", "child", "site", "peer", "initiator", "backend", "auth", "kick_after", "kick_window",
            "state_dir", "metrics_dir", "certs")


def load_conf(path):
    """The role's settings; a missing key is an error naming it (never a KeyError later)."""
    with open(path) as fh:
        conf = json.load(fh)
    missing = [k for k in REQUIRED if k not in conf]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    return conf


# ---------------------------------------------------------------- facts
def _int(v, default=0):
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def parse_enddate(text):
    """`openssl x509 -enddate` output (notAfter=Nov 26 22:30:00 2036 GMT) as Unix time, or None."""
    stamp = text.strip().split("=", 1)[-1]
    try:
        return calendar.timegm(time.strptime(stamp, "%b %d %H:%M:%S %Y %Z"))
    except ValueError:
        return None


def cert_not_after(path):
    try:
        out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", path],
                             capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_enddate(out)


def parse_counters(nft_json):
    """{name: {packets, bytes}} of the named counters in `nft -j list counters` output."""
    res = {}
    for item in json.loads(nft_json).get("nftables", []):
        c = item.get("counter")
        if c:
            res[c["name"]] = {"packets": c.get("packets", 0), "bytes": c.get("bytes", 0)}
    return res


def nft_counters():
    try:
        out = subprocess.run(["nft", "-j", "list", "counters", "table", "inet", "site_gateway"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_counters(out)


def parse_uptime(show_output, monotonic_now):
    """Seconds since the unit became active, from `systemctl show -p ActiveState
    -p ActiveEnterTimestampMonotonic`; None when it is not active."""
    props = dict(line.split("=", 1) for line in show_output.splitlines() if "=" in line)
    if props.get("ActiveState") != "active":
        return None
    return monotonic_now - _int(props.get("ActiveEnterTimestampMonotonic")) / 1e6


def daemon_uptime():
    """Seconds since strongswan.service last became active (None when inactive)."""
    out = subprocess.run(["systemctl", "show", "strongswan", "-p", "ActiveState",
                          "-p", "ActiveEnterTimestampMonotonic"], capture_output=True, text=True).stdout
    return parse_uptime(out, time.monotonic())


def sa_facts(conf, sas, daemon_up, now):
    """The tunnel facts from the `list-sa` events of the connection (no I/O)."""
    f = {"time": now, "conn": conf["conn"], "child": conf["child"], "site": conf["site"],
         "peer": conf["peer"], "initiator": conf["initiator"], "backend": conf["backend"],
         "auth": conf["auth"], "daemon": "up" if daemon_up else "down", "ike_state": "none", "up": False,
         "ike_established_seconds": None, "child_installed_seconds": None,
         "child_sas": 0, "bytes_in": 0, "bytes_out": 0, "packets_in": 0, "packets_out": 0,
         "certs": {}, "counters": {}}
    for item in sas:
        for name, ike in item.items():
            if name != conf["conn"]:
                continue
            state = ike.get("state", "")
            if state == "ESTABLISHED" or f["ike_state"] == "none":
                f["ike_state"] = state
            if state == "ESTABLISHED":
                age = _int(ike.get("established"), None)
                if age is not None and (f["ike_established_seconds"] is None or age < f["ike_established_seconds"]):
                    f["ike_established_seconds"] = age
            for child in (ike.get("child-sas") or {}).values():
                if child.get("name") != conf["child"] or child.get("state") != "INSTALLED":
                    continue
                f["child_sas"] += 1
                f["up"] = True
                age = _int(child.get("install-time"), None)
                if age is not None and (f["child_installed_seconds"] is None or age < f["child_installed_seconds"]):
                    f["child_installed_seconds"] = age
                for k in ("bytes_in", "bytes_out", "packets_in", "packets_out"):
                    f[k] += _int(child.get(k.replace("_", "-")))
    return f


def cert_facts(not_after, now):
    """{label: {path, not_after, days_left}} from {label: (path, not_after or None)}."""
    return {label: {"path": path, "not_after": na, "days_left": round((na - now) / 86400, 1)}
            for label, (path, na) in not_after.items() if na is not None}


def facts(conf):
    now = int(time.time())
    try:
        sas = Vici().streamed("list-sas", "list-sa", {"ike": conf["conn"]})
        daemon_up = True
    except (OSError, ConnectionError, RuntimeError):
        sas, daemon_up = [], False
    f = sa_facts(conf, sas, daemon_up, now)
    f["certs"] = cert_facts({label: (path, cert_not_after(path) if os.path.exists(path) else None)
                             for label, path in conf["certs"].items()}, now)
    f["counters"] = nft_counters()
    return f


def prom(f):
    lab = f'conn="{f["conn"]}",site="{f["site"]}",peer="{f["peer"]}"'
    lines = [
        "# HELP archive_dr_tunnel_up 1 when the tunnel's CHILD_SA is installed.",
        "# TYPE archive_dr_tunnel_up gauge",
        f"archive_dr_tunnel_up{{{lab}}} {int(f['up'])}",
        "# HELP archive_dr_tunnel_daemon_up 1 when the IKE daemon answers on its VICI socket.",
        "# TYPE archive_dr_tunnel_daemon_up gauge",
        f"archive_dr_tunnel_daemon_up{{{lab}}} {int(f['daemon'] == 'up')}",
        "# HELP archive_dr_tunnel_child_sas Installed CHILD_SAs of the tunnel.",
        "# TYPE archive_dr_tunnel_child_sas gauge",
        f"archive_dr_tunnel_child_sas{{{lab}}} {f['child_sas']}",
    ]
    if f["ike_established_seconds"] is not None:
        lines += ["# HELP archive_dr_tunnel_ike_sa_age_seconds Age of the IKE SA.",
                  "# TYPE archive_dr_tunnel_ike_sa_age_seconds gauge",
                  f"archive_dr_tunnel_ike_sa_age_seconds{{{lab}}} {f['ike_established_seconds']}"]
    if f["child_installed_seconds"] is not None:
        lines += ["# HELP archive_dr_tunnel_child_sa_age_seconds Age of the newest CHILD_SA (resets at rekey).",
                  "# TYPE archive_dr_tunnel_child_sa_age_seconds gauge",
                  f"archive_dr_tunnel_child_sa_age_seconds{{{lab}}} {f['child_installed_seconds']}"]
    for k in ("bytes_in", "bytes_out", "packets_in", "packets_out"):
        lines += [f"# HELP archive_dr_tunnel_{k} ESP {k.replace('_', ' ')} of the current CHILD_SA(s).",
                  f"# TYPE archive_dr_tunnel_{k} gauge",
                  f"archive_dr_tunnel_{k}{{{lab}}} {f[k]}"]
    lines += ["# HELP archive_dr_tunnel_cert_not_after_seconds Certificate expiry (Unix time).",
              "# TYPE archive_dr_tunnel_cert_not_after_seconds gauge"]
    for label, c in sorted(f["certs"].items()):
        lines.append(f'archive_dr_tunnel_cert_not_after_seconds{{{lab},cert="{label}"}} {c["not_after"]}')
    lines += ["# HELP archive_dr_tunnel_nft_packets_total Packets counted by the gateway's named nftables counters.",
              "# TYPE archive_dr_tunnel_nft_packets_total counter"]
    for name, c in sorted(f["counters"].items()):
        lines.append(f'archive_dr_tunnel_nft_packets_total{{{lab},counter="{name}"}} {c["packets"]}')
    lines += ["# HELP archive_dr_tunnel_facts_time_seconds When these facts were collected.",
              "# TYPE archive_dr_tunnel_facts_time_seconds gauge",
              f"archive_dr_tunnel_facts_time_seconds{{{lab}}} {f['time']}"]
    return "\n".join(lines) + "\n"


def _atomic(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def should_initiate(conf, f, uptime):
    """Whether `watch` initiates: the daemon answers, no SA is up or on its way, and this
    gateway initiates, or it responds and its daemon (re)started kick_after..kick_window
    seconds ago (``uptime``; None when the daemon is not active)."""
    if f["daemon"] != "up" or f["up"] or f["ike_state"] in ("CONNECTING", "REKEYING"):
        return False
    if conf["initiator"]:
        return True
    return uptime is not None and conf["kick_after"] <= uptime <= conf["kick_window"]


def cmd_metrics(conf):
    f = facts(conf)
    _atomic(os.path.join(conf["state_dir"], "tunnel.json"), json.dumps(f, indent=1, sort_keys=True) + "\n")
    _atomic(os.path.join(conf["metrics_dir"], "tunnel.prom"), prom(f))
    return 0


def cmd_watch(conf):
    f = facts(conf)
    # the responder's uptime is read only when it could matter (one systemctl call less)
    uptime = None if conf["initiator"] or f["daemon"] != "up" or f["up"] else daemon_uptime()
    if not should_initiate(conf, f, uptime):
        return 0
    print(f"tunnel {conf['conn']} is down (IKE {f['ike_state']}); initiating", flush=True)
    r = subprocess.run(["swanctl", "--initiate", "--ike", conf["conn"], "--child", conf["child"],
                        "--timeout", "10"], capture_output=True, text=True)
    print((r.stdout + r.stderr).strip()[-2000:], flush=True)
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else "status"
    if cmd not in ("status", "metrics", "watch"):
        print(__doc__, file=sys.stderr)
        return 2
    conf = load_conf(os.environ.get("ARCHIVE_DR_TUNNEL_CONF", CONF_PATH))
    if cmd == "status":
        print(json.dumps(facts(conf), indent=1, sort_keys=True))
        return 0
    if cmd == "metrics":
        return cmd_metrics(conf)
    return cmd_watch(conf)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
