"""Filters for baseline's nftables_dropin entry point: drop-in files from the openings that
roles publish as data (``<role>_nftables_dropins``, passed by the playbooks as
``baseline_nftables_dropins``).

Pure Python (stdlib); unit-tested in tests/unit/test_baseline_nftables.py.
"""
from __future__ import annotations

import ipaddress
import re

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
INTERFACE_RE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
PROTOS = ("tcp", "udp")
STATES = ("present", "absent")
BASE_CHAIN = "inet baseline input"


class DropinError(ValueError):
    """A drop-in that cannot be written; raised before any host is changed."""


def _source(value, where):
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise DropinError(f"{where}: source {value!r} is not an address or network") from None
    family = "ip6" if net.version == 6 else "ip"
    # nft lists a one-address network without its prefix length
    listed = str(net.network_address) if net.num_addresses == 1 else str(net)
    return family, str(value), listed


def _ports(value, where):
    ports = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for port in ports:
        try:
            number = int(port)
        except (TypeError, ValueError):
            number = 0
        if isinstance(port, bool) or not 1 <= number <= 65535:
            raise DropinError(f"{where}: port {port!r} is not between 1 and 65535")
        out.append(number)
    if not out:
        raise DropinError(f"{where}: no port")
    return str(out[0]) if len(out) == 1 else "{ " + ", ".join(map(str, out)) + " }"


def allow_rules(dropin):
    """[(rule as written, rule as `nft list` prints it)] of a drop-in's ``allow`` entries, one per
    source (in order: the chain's rule order is the file's)."""
    rules = []
    for i, allow in enumerate(dropin.get("allow") or []):
        where = f"drop-in {dropin.get('name')} allow[{i}]"
        if not isinstance(allow, dict):
            raise DropinError(f"{where}: {allow!r} is not a mapping")
        proto = str(allow.get("proto", "tcp"))
        if proto not in PROTOS:
            raise DropinError(f"{where}: proto {proto!r} must be tcp or udp")
        interface = str(allow.get("interface") or "")
        if interface and not INTERFACE_RE.match(interface):
            raise DropinError(f"{where}: interface {interface!r} is not an interface name")
        sources = allow.get("sources")
        if not isinstance(sources, (list, tuple)):
            raise DropinError(f"{where}: sources {sources!r} is not a list")
        ports = _ports(allow.get("ports"), where)
        prefix = f'iifname "{interface}" ' if interface else ""
        tail = f"{proto} dport {ports} accept"
        for source in sources:
            family, written, listed = _source(source, where)
            rules.append((f"{prefix}{family} saddr {written} {tail}", f"{prefix}{family} saddr {listed} {tail}"))
    return rules


def dropin_files(dropins, directory="/etc/nftables.d"):
    """One entry per drop-in: {name, path, state, content, listed, table}.

    ``listed`` are the rules as ``nft list ruleset`` prints them and ``table`` the table a
    whole-ruleset drop-in defines: the drop-in is loaded when all of them are there.
    """
    files, seen = [], set()
    for i, dropin in enumerate(dropins or []):
        if not isinstance(dropin, dict):
            raise DropinError(f"baseline_nftables_dropins[{i}]: {dropin!r} is not a mapping")
        name = str(dropin.get("name", ""))
        if not NAME_RE.match(name):
            raise DropinError(f"baseline_nftables_dropins[{i}]: name {name!r} is not a plain file name")
        order = dropin.get("order", 50)
        if isinstance(order, bool) or not isinstance(order, int) or not 0 <= order <= 99:
            raise DropinError(f"drop-in {name}: order {order!r} must be a number from 0 to 99")
        path = f"{directory}/{order:02d}-{name}.nft"
        if path in seen:
            raise DropinError(f"drop-in {name}: {path} is declared twice")
        seen.add(path)
        state = dropin.get("state", "present")
        if state not in STATES:
            raise DropinError(f"drop-in {name}: state {state!r} must be present or absent")
        content = str(dropin.get("content") or "")
        allow = dropin.get("allow") or []
        table = str(dropin.get("table") or "")
        if state == "present" and bool(content) == bool(allow):
            raise DropinError(f"drop-in {name}: give either allow entries or content, not {'both' if content else 'neither'}")
        if content and not re.match(r"^[A-Za-z0-9_]+$", table):
            raise DropinError(f"drop-in {name}: content needs table, the inet table it defines "
                              "(how the drop-in is known to be loaded)")
        comment = str(dropin.get("comment") or "").strip()
        lines = [f"# Managed by archive-dr ({name}){': ' + comment if comment else '.'}"]
        listed = []
        if content:
            lines.append(content.rstrip("\n"))
        else:
            for written, shown in allow_rules(dropin):
                lines.append(f"add rule {BASE_CHAIN} {written}")
                listed.append(shown)
        files.append({"name": name, "path": path, "state": state, "content": "\n".join(lines) + "\n",
                      "listed": listed, "table": table if content else ""})
    return files


def dropins_missing(files, ruleset):
    """Names of the present drop-ins whose rules or table the loaded ruleset lacks."""
    missing = []
    for f in files:
        if f["state"] != "present":
            continue
        if any(rule not in ruleset for rule in f["listed"]) or \
                (f["table"] and f"table inet {f['table']} {{" not in ruleset):
            missing.append(f["name"])
    return missing


class FilterModule:
    def filters(self):
        return {"baseline_nftables_dropin_files": dropin_files,
                "baseline_nftables_dropins_missing": dropins_missing}
