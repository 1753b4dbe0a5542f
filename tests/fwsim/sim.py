"""SSH firewall simulator for Huawei USG, H3C SecPath (Comware), Hillstone StoneOS and Juniper SRX.

Faithful where a change can go wrong (issue 17): per-view command grammar from the
vendors' command references (a line the device would refuse is refused, with the
device's error text and the caret under the offending word), reference checks (a line
naming an object that does not exist, or deleting an object still in use, is refused),
`[Y/N]` save dialogs, paging (`---- More ----` until netmiko's session_preparation turns
it off), an idle timeout, a read-only `monitor` account, the display in the device's own
order, and for Junos (`juniper_junos`) a candidate configuration with `show | compare`,
`rollback N`, a commit check-out of references and `commit confirmed N` that the device
rolls back by itself unless confirmed (``FirewallSim(..., minute=1.0)``: seconds per
minute, for tests). ``sim.quirks.add("keep_old")``: single-valued lines are appended
instead of replaced (the module's read-back must notice). ``sim.errors`` lists every
error the device answered; ``sim.internal`` simulator bugs (must stay empty).

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
            (None, r"profile type (ips|av) name (\S+)", "profile-{0}-{1}"),
            (r"security-policy", r"rule name (\S+)", "policy-security-rule-{0}"),
        ],
        "kinds": {"ip address-set": "addr", "ike proposal": "ike-proposal", "ike peer": "ike-peer",
                  "ipsec proposal": "ipsec-proposal", "ipsec policy": "ipsec-policy", "acl number": "acl",
                  "security-policy": "policy", "interface": "interface", "profile type": "profile",
                  "rule name": "rule"},
        "root_leaves": [r"sysname \S+", r"clock timezone .*", r"info-center .*", r"ip route-static .*",
                        r"firewall zone .*"],
        "single": [r"address \d+", r"action", r"encryption-algorithm", r"dh", r"authentication-algorithm",
                   r"integrity-algorithm", r"prf", r"ike-proposal", r"pre-shared-key", r"remote-address",
                   r"esp authentication-algorithm", r"esp encryption-algorithm", r"security acl",
                   r"ike-peer", r"proposal", r"pfs", r"sa duration time-based", r"ipsec policy",
                   r"ip address", r"sysname", r"dpd type", r"rule \d+", r"profile ips", r"profile av"],
        "stored_negations": [r"undo version \d"],
        "secret": (r"pre-shared-key (?:cipher )?(\S+)",
                   lambda v: f"pre-shared-key {v}" if v.startswith("%^%#")
                   else f"pre-shared-key %^%#{_hash(v)}%^%#"),
        "save": [("save", "The current configuration will be written to the device. Continue? [Y/N]:",
                  "Now saving the current configuration to the slot 0.\r\nInfo: Save the configuration successfully.")],
        "grammar": {
            "root": ["sysname \\S+", "clock timezone ...", "info-center ...", "ip route-static ...",
                     "firewall zone ..."],
            "addr": ["address \\d+ \\S+ mask \\d+", "description ..."],
            "ike-proposal": ["encryption-algorithm (aes-128|aes-192|aes-256|3des|des)", "dh (group1|group2|group5|group14|group15|group16|group19|group20|group21)",
                             "authentication-algorithm (md5|sha1|sha2-256|sha2-384|sha2-512)",
                             "integrity-algorithm (hmac-md5-96|hmac-sha1-96|hmac-sha2-256|hmac-sha2-384|hmac-sha2-512|aes-xcbc-mac-96)",
                             "prf (hmac-md5|hmac-sha1|hmac-sha2-256|hmac-sha2-384|hmac-sha2-512|aes-xcbc-128)",
                             "authentication-method (pre-share|rsa-signature|digital-envelope)"],
            "ike-peer": ["version (1|2)", "ike-proposal \\d+", "pre-shared-key cipher \\S+", "pre-shared-key \\S+",
                         "pki realm \\S+", "local-id-type (ip|fqdn|user-fqdn|dn)", "local-id \\S+", "remote-id \\S+",
                         "remote-address \\S+", "dpd type (periodic|on-demand)"],
            "ipsec-proposal": ["esp authentication-algorithm (md5|sha1|sha2-256|sha2-384|sha2-512|sm3)",
                               "esp encryption-algorithm (des|3des|aes-128|aes-192|aes-256|sm1|sm4)",
                               "transform (esp|ah|ah-esp)", "encapsulation-mode (tunnel|transport)"],
            "ipsec-policy": ["security acl \\d+", "ike-peer \\S+", "proposal \\S+",
                             "pfs (dh-group1|dh-group2|dh-group5|dh-group14|dh-group15|dh-group16|dh-group19|dh-group20|dh-group21)",
                             "sa duration (time-based|traffic-based) \\d+"],
            "acl": ["rule \\d+ (permit|deny) ip source \\S+ \\S+ destination \\S+ \\S+", "description ..."],
            "policy": ["default action (permit|deny)"],
            "rule": ["source-zone \\S+", "destination-zone \\S+", "source-address address-set \\S+",
                     "destination-address address-set \\S+", "source-address \\S+ mask \\S+",
                     "service protocol (tcp|udp|icmp) destination-port \\d+", "service \\S+", "action (permit|deny)",
                     "profile (av|ips|url-filter|file-block|data-filter|mail-filter) \\S+", "description ..."],
            "interface": ["ip address \\S+ \\S+", "ipsec policy \\S+", "description ...", "shutdown",
                          "service-manage ..."],
            "profile": ["description ...", "signature-set ...", "http-detect ...", "protocol ..."],
        },
        # (referencing line, header of the object it names); {} is the name
        "refs": [(r"(?:source|destination)-address address-set (\S+)", "ip address-set {} type object"),
                 (r"profile ips (\S+)", "profile type ips name {}"), (r"profile av (\S+)", "profile type av name {}"),
                 (r"security acl (\d+)", "acl number {}"), (r"ike-peer (\S+)", "ike peer {}"),
                 (r"proposal (\S+)", "ipsec proposal {}"), (r"ike-proposal (\d+)", "ike proposal {}"),
                 (r"ipsec policy (\S+)", r"ipsec policy {} \d+ isakmp")],
        "builtin_objects": ["profile type ips name default", "profile type av name default"],
        "err_noobj": "Error: The specified object does not exist.",
        "err_inuse": "Error: The object is being referenced and cannot be deleted.",
        "err_incomplete": "Error: Incomplete command found at '^' position.",
        "err_wrong": "Error: Wrong parameter found at '^' position.",
        "caret": "vrp",
        "more": "  ---- More ----",
        "seed": [
            "sysname {h}",
            "clock timezone Beijing add 08:00:00",
            ("profile type ips name site-ips", ["description site attack protection"]),
            ("profile type av name site-av", ["description site antivirus"]),
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
        "err_unknown": " % Unrecognized command found at '^' position.",
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
            (None, r"app-profile (\S+)", "app-profile-{0}"),
            (None, r"ips policy (\S+)", "ips-policy-{0}"),
            (None, r"anti-virus policy (\S+)", "anti-virus-policy-{0}"),
            (r"ikev2 keychain \S+", r"peer (\S+)", "ikev2-keychain-peer-{0}"),
            (r"security-policy ip", r"rule (\d+) name (\S+)", "security-policy-ip-{0}-{1}"),
        ],
        "kinds": {"object-group ip": "obj-ip", "object-group service": "obj-svc", "acl advanced": "acl",
                  "ipsec transform-set": "ts", "ikev2 proposal": "ikev2-proposal", "ikev2 policy": "ikev2-policy",
                  "ikev2 keychain": "keychain", "peer": "kc-peer", "ikev2 profile": "ikev2-profile",
                  "ipsec policy": "ipsec-policy", "security-policy ip": "policy", "interface": "interface",
                  "app-profile": "app-profile", "ips policy": "profile", "anti-virus policy": "profile",
                  "rule": "rule"},
        "grammar": {
            "root": ["sysname \\S+", "clock timezone ...", "ip route-static ..."],
            "obj-ip": ["\\d+ network subnet \\S+ \\S+", "\\d+ network host address \\S+", "\\d+ network range \\S+ \\S+",
                       "description ..."],
            "obj-svc": ["\\d+ service (tcp|udp) destination eq \\d+", "description ..."],
            "acl": ["rule \\d+ (permit|deny) ip source \\S+ \\S+ destination \\S+ \\S+", "description ..."],
            "ts": ["esp encryption-algorithm (des-cbc|3des-cbc|aes-cbc-128|aes-cbc-192|aes-cbc-256|aes-gcm-128|aes-gcm-256|sm4-cbc)",
                   "esp authentication-algorithm (md5|sha1|sha256|sha384|sha512|sm3)",
                   "pfs (dh-group1|dh-group2|dh-group5|dh-group14|dh-group19|dh-group20)",
                   "protocol (esp|ah|ah-esp)", "encapsulation-mode (tunnel|transport)"],
            "ikev2-proposal": ["encryption (3des-cbc|aes-cbc-128|aes-cbc-192|aes-cbc-256|aes-ctr-256|des-cbc)",
                               "integrity (md5|sha1|sha256|sha384|sha512)", "prf (md5|sha1|sha256|sha384|sha512)",
                               "dh (group1|group2|group5|group14|group19|group20)"],
            "ikev2-policy": ["proposal \\S+", "match local address ..."],
            "keychain": [],
            "kc-peer": ["address \\S+ \\d+", "identity address \\S+", "pre-shared-key (plaintext|ciphertext) \\S+",
                        "hostname \\S+"],
            "ikev2-profile": ["authentication-method (local|remote) (pre-share|dsa-signature|rsa-signature|ecdsa-signature)",
                              "keychain \\S+", "match remote identity address \\S+ \\d+", "match remote identity fqdn \\S+",
                              "certificate domain \\S+", "identity local (fqdn|address) \\S+",
                              "dpd interval \\d+ (periodic|on-demand)"],
            "ipsec-policy": ["transform-set \\S+", "security acl \\d+", "local-address \\S+", "remote-address \\S+",
                             "ikev2-profile \\S+", "sa duration time-based \\d+"],
            "policy": [],
            "rule": ["action (pass|drop)", "source-zone \\S+", "destination-zone \\S+", "source-ip \\S+",
                     "destination-ip \\S+", "service \\S+", "profile \\S+", "logging enable", "counting enable",
                     "description ..."],
            "interface": ["ip address \\S+ \\S+", "ipsec apply policy \\S+", "description ...", "shutdown"],
            "app-profile": ["ips apply policy \\S+ mode (protect|alert)", "anti-virus apply policy \\S+ mode (protect|alert)",
                            "url-filter apply policy \\S+"],
            "profile": ["description ...", "signature ...", "exception ..."],
        },
        "refs": [(r"(?:source|destination)-ip (\S+)", "object-group ip address {}"),
                 (r"service (dr-\S+)", "object-group service {}"), (r"profile (\S+)", "app-profile {}"),
                 (r"ips apply policy (\S+) .*", "ips policy {}"), (r"anti-virus apply policy (\S+) .*", "anti-virus policy {}"),
                 (r"transform-set (\S+)", "ipsec transform-set {}"), (r"security acl (\d+)", "acl advanced {}"),
                 (r"ikev2-profile (\S+)", "ikev2 profile {}"), (r"keychain (\S+)", "ikev2 keychain {}"),
                 (r"proposal (\S+)", "ikev2 proposal {}"), (r"ipsec apply policy (\S+)", r"ipsec policy {} \d+ isakmp")],
        "builtin_objects": ["ips policy default", "anti-virus policy default"],
        "err_noobj": " % The specified object does not exist.",
        "err_inuse": " % The object is being used and cannot be deleted.",
        "err_incomplete": " % Incomplete command found at '^' position.",
        "err_wrong": " % Wrong parameter found at '^' position.",
        "caret": "vrp",
        "more": "---- More ----",
        "root_leaves": [r"sysname \S+", r"clock timezone .*", r"ip route-static .*"],
        "single": [r"\d+", r"rule \d+", r"esp encryption-algorithm", r"esp authentication-algorithm", r"pfs",
                   r"encryption", r"integrity", r"prf", r"dh", r"proposal", r"address", r"identity address",
                   r"pre-shared-key", r"keychain", r"dpd", r"transform-set", r"security acl",
                   r"local-address", r"remote-address", r"ikev2-profile", r"sa duration time-based",
                   r"ipsec apply policy", r"action", r"sysname", r"ip address", r"profile",
                   r"ips apply policy", r"anti-virus apply policy"],
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
            ("ips policy site-ips", ["description site attack protection"]),
            ("anti-virus policy site-av", ["description site antivirus"]),
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
            (None, r'ips profile "?([^"]+)"?', "ips-profile"),
            (None, r'av-profile "?([^"]+)"?', "av-profile"),
            (r"policy-global", r"rule id (\d+)", "policy-rule"),
        ],
        "kinds": {"address": "addr", "service": "service", "ikev2 proposal": "ikev2-proposal",
                  "ikev2 ipsec-proposal": "ikev2-ipsec-proposal", "ikev2 peer": "ikev2-peer",
                  "ikev2 profile": "ikev2-profile", "tunnel ipsec": "tunnel", "policy-global": "policy",
                  "interface": "interface", "zone": "zone", "ips profile": "profile", "av-profile": "profile",
                  "rule id": "rule"},
        "grammar": {
            "root": ["hostname \\S+", "clock zone \\S+", "ip vrouter ...", "admin user ..."],
            "addr": ["ip \\S+/\\d+", "ip \\S+ \\S+", "range \\S+ \\S+", "description ..."],
            "service": ["(tcp|udp) dst-port \\d+", "(tcp|udp) dst-port \\d+ \\d+", "description ..."],
            "ikev2-proposal": ["encryption (3des|des|aes|aes-192|aes-256)", "integrity (md5|sha|sha256|sha384|sha512)",
                               "prf (md5|sha|sha256|sha384|sha512)", "group (1|2|5|14|15|16|19|20|21)", "lifetime \\d+"],
            "ikev2-ipsec-proposal": ["protocol (esp|ah)", "hash (md5|sha|sha256|sha384|sha512|null)",
                                     "encryption (3des|des|aes|aes-192|aes-256|null)", "group (nopfs|1|2|5|14|15|16|19|20|21)",
                                     "lifetime \\d+"],
            "ikev2-peer": ["interface \\S+", "ikev2-proposal \\S+", "peer \\S+", "local-id ..."],
            "ikev2-profile": ["auth (local|remote) (pre-share|rsa-sig|dsa-sig)", "pre-share \\S+",
                              "remote id (ip|fqdn|asn1dn) \\S+", "local id (ip|fqdn|asn1dn) \\S+", "trust-domain \\S+"],
            "tunnel": ["ikev2-peer \\S+", "ikev2-profile \\S+", "ipsec-proposal \\S+",
                       "id local \\S+ remote \\S+ service any", "auto-connect"],
            "policy": [],
            "rule": ["action (permit|deny)", "action (tunnel|fromtunnel) \\S+", "src-zone \\S+", "dst-zone \\S+",
                     "src-addr \\S+", "dst-addr \\S+", "service \\S+", "name \\S+", "av \\S+", "ips \\S+",
                     "log ...", "description ..."],
            "interface": ["zone \\S+", "ip address \\S+ \\S+", "manage ..."],
            "zone": ["..."],
            "profile": ["description ...", "..."],
        },
        "refs": [(r'(?:src|dst)-addr "?([^"\s]+)"?', 'address "{}"'), (r'service "?(dr-[^"\s]+)"?', 'service "{}"'),
                 (r'av "?([^"\s]+)"?', 'av-profile "{}"'), (r'ips "?([^"\s]+)"?', 'ips profile "{}"'),
                 (r'ikev2-peer "?([^"\s]+)"?', 'ikev2 peer "{}"'), (r'ikev2-profile "?([^"\s]+)"?', 'ikev2 profile "{}"'),
                 (r'ipsec-proposal "?([^"\s]+)"?', 'ikev2 ipsec-proposal "{}"'),
                 (r'ikev2-proposal "?([^"\s]+)"?', 'ikev2 proposal "{}"')],
        "builtin_objects": ['av-profile "predef_default"', 'ips profile "predef_default"'],
        "err_noobj": "Error: The referenced object does not exist",
        "err_inuse": "Error: The entry is referenced and cannot be deleted",
        "err_incomplete": "                ^-----incomplete command",
        "err_wrong": "                ^-----invalid parameter",
        "caret": "stoneos",
        "more": " --More-- ",
        "root_leaves": [r"hostname \S+", r"clock zone .*", r"ip vrouter .*", r"admin user .*"],
        "single": [r"ip", r"encryption", r"integrity", r"prf", r"group", r"hash", r"protocol", r"lifetime",
                   r"interface", r"ikev2-proposal", r"peer", r"pre-share", r"remote id", r"local id",
                   r"ikev2-peer", r"ikev2-profile", r"ipsec-proposal", r"id", r"action", r"name",
                   r"hostname", r"zone", r"trust-domain", r"av", r"ips"],
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
            ('ips profile "site-ips"', ["description site-attack-protection"]),
            ('av-profile "site-av"', ["description site-antivirus"]),
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
                 username: str = "admin", password: str = "fwsim-pass", idle_timeout: float = 600.0,
                 minute: float = 60.0):
        if platform not in PROFILES and platform != "juniper_junos":
            raise ValueError(f"unknown platform {platform}")
        self.platform = platform
        self.p = PROFILES.get(platform) or JUNOS
        self.hostname = hostname or self.p["hostname"]
        self.username, self.password = username, password
        # privilege levels: admin configures (VRP level 15 / Comware network-admin /
        # StoneOS admin / Junos super-user); monitor may only display (level 1, network-operator)
        self.users = {username: (password, 15), "monitor": ("fwsim-monitor", 1)}
        self.idle_timeout = idle_timeout     # seconds without input before the device logs out
        self.minute = minute                 # seconds per Junos `commit confirmed` minute (tests scale it)
        # quirks: "keep_old" = single-valued lines append instead of replacing (a broken device or
        # a sloppy simulator: the module's read-back must catch it)
        self.quirks: set[str] = set()
        self.lock = threading.RLock()
        self.running = Line("")
        self._seed(self.running, self.p["seed"])
        self.saved = copy.deepcopy(self.running)
        self.fault: dict | None = None
        self.stats = {"connections": 0, "config_lines": 0, "saves": 0, "faults_fired": 0,
                      "errors": 0, "commits": 0, "auto_rollbacks": 0}
        self.errors: list[str] = []
        self.internal: list[str] = []         # simulator bugs (tests assert this stays empty)
        if platform == "juniper_junos":
            self.junos = _JunosDB(self)
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
            if self.platform == "juniper_junos":
                return self.junos.display(self.junos.committed)
            return self._display(self.running)

    def saved_text(self) -> str:
        with self.lock:
            if self.platform == "juniper_junos":   # committed is saved: Junos has no separate save
                return self.junos.display(self.junos.committed)
            return self._display(self.saved)

    # ------------------------------------------------------------------ tree
    def _seed(self, node: Line, items):
        if self.platform == "juniper_junos":
            return
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

    def view_kind(self, node: Line | None) -> str:
        """The grammar view a configuration line opens (the longest header prefix it starts with)."""
        if node is None or node.text == "":
            return "root"
        best = ""
        for k in self.p["kinds"]:
            if (node.text == k or node.text.startswith(k + " ")) and len(k) > len(best):
                best = k
        return self.p["kinds"].get(best, "")

    def _ordered(self, node: Line) -> list[Line]:
        """Like the devices, display a view's lines in the command reference's order (not the
        order they were typed in); sub-views (rules) keep their configured order."""
        pats = self.p["grammar"].get(self.view_kind(node), [])
        kinds = list(dict.fromkeys(self.p["kinds"].values()))

        def key(ik):
            i, k = ik
            if k.section:   # top level: grouped by feature, like the devices; within a view: as configured
                return (1, kinds.index(self.view_kind(k)) if node.text == "" and self.view_kind(k) in kinds else 0, i)
            toks = k.text.split(" ")
            for j, pat in enumerate(pats):
                if _tokmatch(pat, toks)[0]:
                    return (0, j, i)
            return (0, len(pats), i)
        return [k for _i, k in sorted(enumerate(node.kids), key=key)]

    def _display(self, root: Line) -> str:
        ind = self.p["indent"]
        out: list[str] = []

        def walk(n: Line, d: int):
            for k in self._ordered(n):
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
            chan.settimeout(self.idle_timeout)
            level = self.users.get(tr.get_username(), ("", 1))[1]
            cls = _JunosSession if self.platform == "juniper_junos" else _Session
            cls(self, chan, level).run()
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
        ok = username in self.sim.users and password == self.sim.users[username][0]
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


def _tokmatch(pattern: str, toks: list[str]) -> tuple[bool, int]:
    """Match command tokens against a space-separated token pattern (each token a regex;
    `...` = one or more further tokens). Returns (full match, tokens matched)."""
    pts = pattern.split(" ")
    n = 0
    for i, pt in enumerate(pts):
        if pt == "...":
            return (len(toks) > i, len(toks) if len(toks) > i else i)
        if i >= len(toks):
            return False, n
        if not re.fullmatch(pt, toks[i]):
            return False, n
        n += 1
    return n == len(toks), n


def _is_literal(pt: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_-]+", pt) is not None


class _Session:
    PAGE = 24

    def __init__(self, sim: FirewallSim, chan, level: int = 15):
        self.sim, self.chan, self.p = sim, chan, sim.p
        self.level = level
        self.config = False
        self.stack: list[Line] = []       # open views below the root in config mode
        self.pending: tuple | None = None  # (kind, state) of a save dialog
        self.paging = True                 # until the paging-disable command
        self.more: list[str] | None = None # lines still to show after `---- More ----`

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
            return f"{h}# " if self.level >= 3 else f"{h}> "
        if not self.stack:
            return f"{h}(config)# "
        return f"{h}(config-{self.stack[-1].view})# "

    def send(self, s: str):
        self.chan.sendall(s.encode())

    def emit(self, out: str):
        """Command output, paged like the device when paging is on."""
        lines = out.split("\r\n") if out else []
        if self.paging and len(lines) > self.PAGE:
            self.send("\r\n".join(lines[:self.PAGE]) + "\r\n" + self.p["more"])
            self.more = lines[self.PAGE:]
            return
        self.send((out + "\r\n" if out else "") + self.prompt())

    def more_key(self, ch: str):
        self.send("\r" + " " * len(self.p["more"]) + "\r")
        if ch in "qQ\x03":
            self.more = None
            self.send(self.prompt())
            return
        n = 1 if ch in "\r\n" else self.PAGE
        chunk, self.more = self.more[:n], self.more[n:]
        if self.more:
            self.send("\r\n".join(chunk) + "\r\n" + self.p["more"])
        else:
            self.more = None
            self.send("\r\n".join(chunk) + "\r\n" + self.prompt())

    def run(self):
        self.send(self.p["banner"] + "\r\n" + self.prompt())
        buf, last = "", ""
        while True:
            try:
                data = self.chan.recv(4096)
            except socket.timeout:
                self.send("\r\n" + self.p.get("idle_msg", "") + "\r\n")
                self.chan.close()
                return
            if not data:
                return
            echo = []
            for ch in data.decode("utf-8", "replace"):
                if ch == "\x00":               # netmiko's is_alive() probe: devices ignore NUL
                    continue
                if self.more is not None:
                    self.more_key(ch)
                    continue
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
                    except Exception as e:   # a simulator bug: visible in sim.internal, never silent
                        self.sim.internal.append(f"{buf!r}: {type(e).__name__}: {e}")
                        out = "Error: simulator internal error"
                    buf = ""
                    if out is None:          # logout
                        self.chan.close()
                        return
                    self.emit(out)
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

    # errors ----------------------------------------------------------------
    def error(self, kind: str, cmd: str, tok: int) -> str:
        """The device's error with the caret under the offending token."""
        toks = cmd.split(" ")
        col = len(" ".join(toks[:tok])) + (1 if tok else 0)
        if tok >= len(toks):
            col = len(cmd) + 1
        pad = " " * (len(self.prompt()) + col)
        self.sim.stats["errors"] += 1
        if self.p["caret"] == "vrp":
            msg = {"unknown": self.p["err_unknown"], "incomplete": self.p["err_incomplete"],
                   "wrong": self.p["err_wrong"]}[kind]
            out = pad + "^\r\n" + msg
        else:
            word = toks[tok] if tok < len(toks) else ""
            out = pad + {"unknown": f"^-----unrecognized keyword {word}", "incomplete": "^-----incomplete command",
                         "wrong": f"^-----invalid parameter {word}"}[kind] + "\r\nError: Invalid input"
        self.sim.errors.append(out)
        return out

    def config_line_fault(self, cmd: str, message: str) -> str | None:
        """Count one configuration line; when the armed fault hits it, fire the fault once:
        disconnect, or the device's error text (returned). None when the line goes through."""
        self.sim.stats["config_lines"] += 1
        f = self.sim.fault
        if not f:
            return None
        f["seen"] = f.get("seen", 0) + 1
        if not (("line" in f and f["seen"] == f["line"]) or ("match" in f and re.search(f["match"], cmd))):
            return None
        self.sim.fault = None
        self.sim.stats["faults_fired"] += 1
        if f.get("action") == "disconnect":
            raise _Disconnect()
        return self.plain_error(message)

    def plain_error(self, msg: str) -> str:
        self.sim.stats["errors"] += 1
        self.sim.errors.append(msg)
        return msg

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
                self.paging = False
                return self.p["paging"][cmd]
            if cmd in self.p["show_running"]:
                return self.sim._display(self.sim.running)
            if cmd in self.p["show_saved"]:
                return self.sim._display(self.sim.saved)
            for scmd, question, done in self.p["save"]:
                if cmd == scmd and (not self.config or self.p["style"] == "vrp"):
                    if self.level < 3:
                        return self.error("unknown", cmd, 0)
                    if question is None:
                        self.do_save()
                        return done
                    self.pending = ("save", scmd, done)
                    self.send(question)
                    return ""
            if not self.config:
                if cmd == self.p["enter"]:
                    if self.level < 3:     # a monitor-level user has no configuration commands
                        return self.error("unknown", cmd, 0)
                    self.config = True
                    return self.p["enter_msg"]
                if cmd in ("quit", "exit", "logout"):
                    return None
                if cmd.startswith(("display ", "show ")):
                    return ""
                return self.error("unknown", cmd, 0)
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

    # grammar and references ------------------------------------------------
    def patterns(self, cur: Line) -> list[str]:
        """Token patterns valid in this view: its leaves and the headers of its sub-views."""
        pats = list(self.p["grammar"].get(self.sim.view_kind(cur if self.stack else None), []))
        for ptn, rx, _view in self.p["headers"]:
            if (ptn is None and not self.stack) or (ptn and self.stack and re.fullmatch(ptn, cur.text)):
                pats.append(rx)
        return pats

    def check(self, cur: Line, cmd: str) -> str | None:
        """None when the view's grammar accepts cmd, else the device's error."""
        toks = cmd.split(" ")
        best, best_pat = -1, ""
        for pat in self.patterns(cur):
            full, n = _tokmatch(pat, toks)
            if full:
                return None
            if n > best:
                best, best_pat = n, pat
        if best == len(toks):
            return self.error("incomplete", cmd, best)
        pts = best_pat.split(" ")
        lit = best <= 0 or best >= len(pts) or _is_literal(pts[best])
        return self.error("unknown" if lit else "wrong", cmd, max(best, 0))

    def _object_exists(self, header_rx: str) -> bool:
        norm = lambda t: t.replace('"', "")
        if any(re.fullmatch(norm(header_rx), norm(b)) for b in self.p.get("builtin_objects", [])):
            return True
        return any(k.section and re.fullmatch(norm(header_rx), norm(k.text)) for k in self.sim.running.kids)

    def missing_reference(self, cmd: str) -> str | None:
        for rx, fmt in self.p.get("refs", []):
            m = re.fullmatch(rx, cmd)
            if m:
                name = m.group(1)
                if not self._object_exists(fmt.format(re.escape(name))):
                    return self.plain_error(self.p["err_noobj"])
        return None

    def referenced(self, section: Line) -> bool:
        """Is a root section named by a line elsewhere in the configuration?"""
        norm = lambda t: t.replace('"', "")

        def walk(n: Line):
            for k in n.kids:
                if k is section:
                    continue
                if not k.section:
                    for rx, fmt in self.p.get("refs", []):
                        m = re.fullmatch(rx, k.text)
                        if m and re.fullmatch(norm(fmt.format(re.escape(m.group(1)))), norm(section.text)):
                            return True
                if walk(k):
                    return True
            return False
        return walk(self.sim.running)

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
        fault = self.config_line_fault(cmd, p["err_fault"])
        if fault is not None:
            return fault
        cur = self.stack[-1] if self.stack else self.sim.running
        neg = p["negate"] + " "
        if cmd.startswith(neg) and not any(re.fullmatch(r, cmd) for r in p["stored_negations"]):
            target = cmd[len(neg):]
            for k in cur.kids:
                if k.text == target or k.text.startswith(target + " "):
                    if k.section and not self.stack and self.referenced(k):
                        return self.plain_error(p["err_inuse"])
                    cur.kids.remove(k)
                    return ""
            err = self.check(cur, target)
            if err:
                return err
            return self.plain_error(p["err_missing"])
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
        body = cmd[len(neg):] if cmd.startswith(neg) else cmd
        err = self.check(cur, body)
        if err:
            return err
        if self.stack:
            err = self.missing_reference(cmd)
            if err:
                return err
        m = re.fullmatch(p["secret"][0], cmd)
        if m:
            cmd = p["secret"][1](m.group(1))
        # a default restored: `version 1` removes a stored `undo version 1`
        if (neg + cmd) in [k.text for k in cur.kids]:
            cur.kids = [k for k in cur.kids if k.text != neg + cmd]
            return ""
        if any(k.text == cmd for k in cur.kids):
            return ""
        if "keep_old" not in self.sim.quirks:
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


# --------------------------------------------------------------------------- Junos
# Juniper SRX: candidate configuration, `commit` with a check-out of references,
# `commit confirmed N` with a device-side rollback after N minutes (sim.minute seconds
# each), `rollback N`, `show | compare`, `show configuration | display set`.

JUNOS = {
    "hostname": "SRX-GEO",
    "grammar": [
        "version \\S+", "system host-name \\S+", "system services ssh", "system login user \\S+ class \\S+",
        "interfaces \\S+ unit \\d+ family inet address \\S+", "interfaces \\S+ unit \\d+ family inet",
        "security address-book global address \\S+ \\S+/\\d+",
        "applications application \\S+ protocol (tcp|udp|icmp)", "applications application \\S+ destination-port \\d+",
        "security zones security-zone \\S+ interfaces \\S+",
        "security zones security-zone \\S+ host-inbound-traffic system-services \\S+",
        "security ike proposal \\S+ authentication-method (pre-shared-keys|rsa-signatures|ecdsa-signatures-256)",
        "security ike proposal \\S+ dh-group (group1|group2|group5|group14|group15|group16|group19|group20|group21)",
        "security ike proposal \\S+ authentication-algorithm (md5|sha1|sha-256|sha-384)",
        "security ike proposal \\S+ encryption-algorithm (3des-cbc|aes-128-cbc|aes-192-cbc|aes-256-cbc|aes-128-gcm|aes-256-gcm)",
        "security ike proposal \\S+ lifetime-seconds \\d+",
        "security ike policy \\S+ proposals \\S+", "security ike policy \\S+ pre-shared-key ascii-text \\S+",
        "security ike policy \\S+ certificate local-certificate \\S+",
        "security ike gateway \\S+ ike-policy \\S+", "security ike gateway \\S+ address \\S+",
        "security ike gateway \\S+ external-interface \\S+", "security ike gateway \\S+ version (v1-only|v2-only)",
        "security ipsec proposal \\S+ protocol (esp|ah)",
        "security ipsec proposal \\S+ authentication-algorithm (hmac-md5-96|hmac-sha1-96|hmac-sha-256-128|hmac-sha-256-96)",
        "security ipsec proposal \\S+ encryption-algorithm (3des-cbc|aes-128-cbc|aes-192-cbc|aes-256-cbc|aes-128-gcm|aes-256-gcm)",
        "security ipsec proposal \\S+ lifetime-seconds \\d+",
        "security ipsec policy \\S+ perfect-forward-secrecy keys (group1|group2|group5|group14|group19|group20)",
        "security ipsec policy \\S+ proposals \\S+",
        "security ipsec vpn \\S+ bind-interface \\S+", "security ipsec vpn \\S+ ike gateway \\S+",
        "security ipsec vpn \\S+ ike ipsec-policy \\S+", "security ipsec vpn \\S+ establish-tunnels (immediately|on-traffic)",
        "security policies from-zone \\S+ to-zone \\S+ policy \\S+ match (source-address|destination-address|application) \\S+",
        "security policies from-zone \\S+ to-zone \\S+ policy \\S+ then (permit|deny|reject)",
        "security policies from-zone \\S+ to-zone \\S+ policy \\S+ then permit application-services (idp-policy|utm-policy) \\S+",
        "security policies from-zone \\S+ to-zone \\S+ policy \\S+ then log session-close",
        "security policies global policy \\S+ match (source-address|destination-address|application|from-zone|to-zone) \\S+",
        "security policies global policy \\S+ then (permit|deny|reject)",
        "security idp idp-policy \\S+ ...", "security idp active-policy \\S+", "security utm utm-policy \\S+ ...",
        "security screen ids-option \\S+ ...",
    ],
    # single-valued leaves: a new value replaces the old one
    "single": [r"(applications application \S+ (?:protocol|destination-port)) \S+",
               r"(security address-book global address \S+) \S+",
               r"(security ike (?:proposal|policy|gateway) \S+ (?:authentication-method|dh-group|authentication-algorithm|"
               r"encryption-algorithm|lifetime-seconds|ike-policy|address|external-interface|version|proposals|"
               r"pre-shared-key ascii-text)) \S+",
               r"(security ipsec (?:proposal|policy|vpn) \S+ (?:protocol|authentication-algorithm|encryption-algorithm|"
               r"lifetime-seconds|perfect-forward-secrecy keys|proposals|bind-interface|ike gateway|ike ipsec-policy|"
               r"establish-tunnels)) \S+",
               r"(system host-name) \S+",
               r"(security policies .* then permit application-services (?:idp-policy|utm-policy)) \S+"],
    # commit check-out: (statement regex naming an object, statement prefix that defines it, what)
    "refs": [(r"security policies .* match (?:source|destination)-address (\S+)", "security address-book global address {} ", "address"),
             (r"security policies .* match application (\S+)", "applications application {} ", "application"),
             (r"security policies from-zone (\S+) .*", "security zones security-zone {} ", "zone"),
             (r"security policies from-zone \S+ to-zone (\S+) .*", "security zones security-zone {} ", "zone"),
             (r"security policies .* idp-policy (\S+)", "security idp idp-policy {} ", "idp-policy"),
             (r"security policies .* utm-policy (\S+)", "security utm utm-policy {} ", "utm-policy"),
             (r"security ike policy \S+ proposals (\S+)", "security ike proposal {} ", "ike proposal"),
             (r"security ike gateway \S+ ike-policy (\S+)", "security ike policy {} ", "ike policy"),
             (r"security ipsec policy \S+ proposals (\S+)", "security ipsec proposal {} ", "ipsec proposal"),
             (r"security ipsec vpn \S+ ike gateway (\S+)", "security ike gateway {} ", "ike gateway"),
             (r"security ipsec vpn \S+ ike ipsec-policy (\S+)", "security ipsec policy {} ", "ipsec policy")],
    "seed": [
        "version 21.4R3-S5", "system host-name {h}", "system services ssh",
        "interfaces ge-0/0/0 unit 0 family inet address 192.0.2.1/24",
        "interfaces ge-0/0/1 unit 0 family inet address 203.0.113.1/24",
        "security zones security-zone trust interfaces ge-0/0/0.0",
        "security zones security-zone untrust interfaces ge-0/0/1.0",
        "security idp idp-policy site-ips rulebase-ips rule r1 then action recommended",
        "security idp active-policy site-ips",
        "security utm utm-policy site-av anti-virus http-profile junos-av-defaults",
        "security policies from-zone trust to-zone untrust policy site-mgmt match source-address any",
        "security policies from-zone trust to-zone untrust policy site-mgmt match destination-address any",
        "security policies from-zone trust to-zone untrust policy site-mgmt match application junos-ssh",
        "security policies from-zone trust to-zone untrust policy site-mgmt then permit",
    ],
    "more": "---(more)---",
}


def _junos_hash(v: str) -> str:
    return '"$9$' + _hash(v, 28).replace("/", "x").replace("+", "y") + '"'


class _JunosDB:
    def __init__(self, sim: FirewallSim):
        self.sim = sim
        self.committed = [s.format(h=sim.hostname) for s in JUNOS["seed"]]
        self.candidate = list(self.committed)
        self.history: list[list[str]] = []      # rollback 1 = history[0]
        self.timer: threading.Timer | None = None
        self.deadline = 0.0

    @staticmethod
    def display(stmts: list[str]) -> str:
        return "\r\n".join("set " + s for s in stmts)

    def insert(self, stmts: list[str], new: str) -> None:
        """Statements stay grouped by hierarchy, as `display set` prints them."""
        t = new.split(" ")
        best, pos = 0, len(stmts)
        for i, s in enumerate(stmts):
            u = s.split(" ")
            n = 0
            while n < min(len(t), len(u)) and t[n] == u[n]:
                n += 1
            if n >= best and n > 0:
                best, pos = n, i + 1
        stmts.insert(pos, new)

    def set(self, stmt: str) -> str | None:
        c = self.candidate
        m = re.fullmatch(r"(security ike policy \S+ pre-shared-key ascii-text) (\S+)", stmt)
        if m and not m.group(2).startswith('"$9$'):
            stmt = f"{m.group(1)} {_junos_hash(m.group(2))}"
        if stmt in c:
            return None
        if any(s.startswith(stmt + " ") for s in c):
            return None                         # implied by a deeper statement
        c[:] = [s for s in c if not stmt.startswith(s + " ")]   # a deeper statement implies this one
        m = re.fullmatch(r"(.* then) (permit|deny|reject)( .*)?", stmt)
        if m:   # the policy action is a choice
            c[:] = [s for s in c if not (s.startswith(m.group(1) + " ") and s.split(" ")[len(m.group(1).split(" "))] != m.group(2))]
        if "keep_old" not in self.sim.quirks:
            for rx in JUNOS["single"]:
                mm = re.fullmatch(rx, stmt)
                if mm:
                    for i, s in enumerate(c):
                        ms = re.fullmatch(rx, s)
                        if ms and ms.group(1) == mm.group(1):
                            c[i] = stmt
                            return None
        self.insert(c, stmt)
        return None

    def delete(self, path: str) -> str | None:
        before = len(self.candidate)
        self.candidate[:] = [s for s in self.candidate if not (s == path or s.startswith(path + " "))]
        return None if len(self.candidate) < before else "warning: statement not found"

    def check_out(self, stmts: list[str]) -> str | None:
        errs = []
        for s in stmts:
            for rx, prefix, what in JUNOS["refs"]:
                m = re.fullmatch(rx, s)
                if not m:
                    continue
                name = m.group(1)
                if name == "any" or name.startswith("junos-"):
                    continue
                if not any(x.startswith(prefix.format(name)) for x in stmts):
                    path, leaf = s.rsplit(" ", 2)[0], " ".join(s.split(" ")[-2:])
                    errs.append(f"[edit {path}]\r\n  '{leaf}'\r\n    Referenced {what} '{name}' is not defined")
        if errs:
            return "\r\n".join(errs[:3]) + "\r\nerror: configuration check-out failed"
        return None

    def commit(self, confirmed_minutes: int | None) -> str:
        err = self.check_out(self.candidate)
        if err:
            self.sim.stats["errors"] += 1
            self.sim.errors.append(err)
            return err
        if self.timer:
            self.timer.cancel()
            self.timer = None
        if self.candidate != self.committed:
            self.history.insert(0, list(self.committed))
        self.committed = list(self.candidate)
        self.sim.stats["commits"] += 1
        self.sim.stats["config_lines"] += 0
        if confirmed_minutes:
            self.deadline = time.time() + confirmed_minutes * self.sim.minute
            self.timer = threading.Timer(confirmed_minutes * self.sim.minute, self.auto_rollback)
            self.timer.daemon = True
            self.timer.start()
            return (f"commit confirmed will be automatically rolled back in {confirmed_minutes} minutes unless confirmed\r\n"
                    f"commit complete\r\n\r\n# commit confirmed will be rolled back in {confirmed_minutes} minutes")
        return "commit complete"

    def auto_rollback(self):
        with self.sim.lock:
            if self.timer is None or not self.history:
                return
            self.timer = None
            prev = self.history[0]
            self.history.insert(0, list(self.committed))
            self.committed = list(prev)
            self.candidate = list(prev)
            self.sim.stats["auto_rollbacks"] += 1
            self.sim.log.append("[device] commit confirmed not confirmed: rolled back")

    def compare(self) -> str:
        out = []
        for s in self.committed:
            if s not in self.candidate:
                out.append("-   set " + s)
        for s in self.candidate:
            if s not in self.committed:
                out.append("+   set " + s)
        return "[edit]\r\n" + "\r\n".join(out) if out else ""


class _JunosSession(_Session):
    def __init__(self, sim, chan, level=15):
        super().__init__(sim, chan, level)
        self.db: _JunosDB = sim.junos
        self.p = dict(JUNOS, banner="--- JUNOS 21.4R3-S5 Kernel 64-bit  JNPR-12.1-20230321.be2c7a8_buil\r\n",
                      idle_msg="Session timed out")
        self.user = sim.username if level >= 3 else "monitor"

    def prompt(self) -> str:
        if self.pending:
            return ""
        if self.config:
            return f"\r\n[edit]\r\n{self.user}@{self.sim.hostname}# "
        return f"{self.user}@{self.sim.hostname}> "

    def syntax_error(self, cmd: str, tok: int) -> str:
        toks = cmd.split(" ")
        col = len(" ".join(toks[:tok])) + (1 if tok else 0)
        pad = " " * (len(f"{self.user}@{self.sim.hostname}# ") + col)
        out = pad + "^\r\nsyntax error." if tok < len(toks) else pad + "^\r\nmissing argument."
        self.sim.stats["errors"] += 1
        self.sim.errors.append(out)
        return out

    def answer(self, cmd: str):
        self.pending = None
        if cmd.lower() in ("", "yes", "y"):
            self.config = False
            return "Exiting configuration mode"
        return ""

    def line(self, raw: str):
        cmd = " ".join(raw.split())
        with self.sim.lock:
            self.sim.log.append(cmd)
            if self.pending:
                return self.answer(cmd)
            if not cmd:
                return ""
            if cmd.startswith("set cli "):
                self.paging = self.paging and cmd != "set cli screen-length 0"
                return {"set cli screen-width 511": "Screen width set to 511",
                        "set cli complete-on-space off": "Disabling complete-on-space",
                        "set cli screen-length 0": "Screen length set to 0"}.get(cmd, "")
            if not self.config:
                if cmd in ("show configuration | display set", "show configuration | display set | no-more"):
                    return self.db.display(self.db.committed)
                if cmd.startswith("show "):
                    return ""
                if cmd in ("configure", "edit"):
                    if self.level < 3:
                        return self.plain_error("error: permission denied")
                    self.config = True
                    pending = ("\r\n# commit confirmed will be rolled back in "
                               f"{max(1, int((self.db.deadline - time.time()) / self.sim.minute + 0.99))} minutes"
                               if self.db.timer else "")
                    return "Entering configuration mode" + pending
                if cmd in ("exit", "quit", "logout"):
                    return None
                return self.plain_error(" " * (len(self.prompt()) + 0) + "^\r\nunknown command.")
            return self.config_line(cmd)

    def config_line(self, cmd: str):
        db = self.db
        if cmd in ("exit configuration-mode", "exit", "quit"):
            if db.candidate != db.committed:
                self.pending = ("exit",)
                self.send("The configuration has been changed but not committed\r\n"
                          "Exit with uncommitted changes? [yes,no] (yes) ")
                return ""
            self.config = False
            return "Exiting configuration mode"
        if cmd in ("show | compare", "show|compare"):
            return db.compare()
        if cmd in ("show | display set", "show | display set | no-more"):
            return db.display(db.candidate)
        if cmd == "top":
            return ""
        m = re.fullmatch(r"commit( check| confirmed(?: (\d+))?)?( and-quit)?(?: comment \".*\")?", cmd)
        if m:
            if m.group(1) == " check":
                return db.check_out(db.candidate) or "configuration check succeeds"
            minutes = int(m.group(2) or 10) if m.group(1) and "confirmed" in m.group(1) else None
            out = db.commit(minutes)
            if m.group(3) and "error" not in out:
                self.config = False
                out += "\r\nExiting configuration mode"
            return out
        m = re.fullmatch(r"rollback(?: (\d+))?", cmd)
        if m:
            n = int(m.group(1) or 0)
            if n == 0:
                db.candidate = list(db.committed)
            elif n <= len(db.history):
                db.candidate = list(db.history[n - 1])
            else:
                return self.plain_error("error: Cannot find rollback file")
            return "load complete"
        fault = self.config_line_fault(cmd, "error: simulated fault: statement not applied")
        if fault is not None:
            return fault
        verb, _, stmt = cmd.partition(" ")
        if verb not in ("set", "delete"):
            return self.syntax_error(cmd, 0)
        toks = stmt.split(" ")
        best = 0
        for pat in JUNOS["grammar"]:
            full, n = _tokmatch(pat, toks)
            if full or (verb == "delete" and n == len(toks)):
                break
            best = max(best, n)
        else:
            return self.syntax_error(cmd, best + 1)
        if verb == "delete":
            return db.delete(stmt) or ""
        return db.set(stmt) or ""
