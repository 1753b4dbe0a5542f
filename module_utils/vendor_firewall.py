"""Vendor firewall configuration: model, rendering, hierarchy diff, rollback plan.

Pure Python (jinja2 + stdlib); no Ansible or netmiko import. Used by
``library/vendor_firewall.py`` and unit-tested in ``tests/unit/test_vendor_firewall.py``.

Variable model (the same one the Linux ``site_gateway`` role reads; documented
for technicians in docs/vendor-change.md):

    gateway_platform   host var: linux | huawei | hp_comware | hillstone_stoneos
                       (vendor values are netmiko device_type names)
    site_name          host var: the site this gateway serves (geo | miyun)
    dr_sites           {site: {lan: CIDR, wan: gateway WAN address}}
    dr_site_hosts      {host name: LAN address}  (hosts that appear in flows)
    dr_flows           [{name, src, dst, port, proto}]  src/dst are dr_site_hosts keys
    gateway_wan_interface      the device interface facing the WAN
    gateway_ipsec_auth         psk | cert
    gateway_ipsec_psk          the pre-shared key (Ansible Vault), when auth=psk
    gateway_ipsec_cert         {pki_domain, local_id, peer_id} when auth=cert
                               (certificate already enrolled on the device)

The module receives these as parameters: platform, local_site, sites,
site_hosts, flows, wan_interface, ipsec.

Diff engine: our own indentation-based hierarchy (``Node``), not hier_config.
hier_config 3.7.1 ships HUAWEI_VRP and HP_COMWARE5 drivers but no Hillstone, and we
need three things it does not give us uniformly: secret lines that devices
display encrypted (compared by presence, never by value), ordered security
policies (a new permit must land before the final deny), and an exact-text
rollback plan (remove what was added, re-add what was removed).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

PLATFORMS_ALL = ("linux", "huawei", "hp_comware", "hillstone_stoneos")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$")


class VendorFirewallError(ValueError):
    """Bad input, detected before any device is touched."""


@dataclass(frozen=True)
class Platform:
    name: str
    indent: int                      # spaces per level in the device's display
    negate: str                      # "undo " / "no "
    section_exit: str                # "quit" / "exit"
    show_cmd: str                    # command that prints the running config
    save_cmd: str
    save_confirm: bool
    save_response: str
    error_re: str                    # a pushed line was rejected
    secret_re: str                   # lines compared by presence only, never printed
    ordered_re: str                  # sections whose children's order matters
    skip_re: str                     # display lines that carry no configuration
    separator_re: str = r"^#\s*$"    # resets the hierarchy to the root (VRP/Comware)
    negate_rewrites: tuple = ()      # (regex, replacement) for the negated text
    managed_rule_re: str = r"^rule name dr-"  # our rules (header or a child line)
    end_marker: str = "return"       # last line of a complete display
    identity_re: str = r"^sysname "  # a complete display names the device


PLATFORMS: dict[str, Platform] = {
    "huawei": Platform(
        name="huawei", indent=1, negate="undo ", section_exit="quit",
        show_cmd="display current-configuration",
        save_cmd="save", save_confirm=True, save_response="y",
        error_re=r"^\s*Error:.*$",
        secret_re=r"^pre-shared-key\b",
        ordered_re=r"^security-policy$",
        skip_re=r"^(!.*|return|\d{4}-\d\d-\d\d .*)$",
    ),
    "hp_comware": Platform(
        name="hp_comware", indent=1, negate="undo ", section_exit="quit",
        show_cmd="display current-configuration",
        # netmiko's HPComware.save_config default; plain `save` asks three questions
        save_cmd="save force", save_confirm=False, save_response="",
        error_re=r"^\s*%\s.*$",
        secret_re=r"^pre-shared-key\b",
        ordered_re=r"^security-policy ip$",
        skip_re=r"^(return|\d{4}-\d\d-\d\d .*)$",
        negate_rewrites=((r"^rule (\d+) name \S+$", r"rule \1"),),
        managed_rule_re=r"^rule \d+ name dr-",
    ),
    "hillstone_stoneos": Platform(
        name="hillstone_stoneos", indent=2, negate="no ", section_exit="exit",
        show_cmd="show configuration",
        save_cmd="save", save_confirm=True, save_response="y",
        error_re=r"^\s*(Error:|\^-+).*$",
        secret_re=r"^pre-share\b",
        ordered_re=r"^policy-global$",
        skip_re=r"^(!.*|exit|end|Building configuration.*|Running configuration:.*|config-version .*)$",
        separator_re=r"^$a",  # never: StoneOS closes sections with `exit`
        end_marker="end", identity_re=r"^hostname ", managed_rule_re=r'^name "dr-',
    ),
}


# --------------------------------------------------------------------------- hierarchy

@dataclass
class Node:
    text: str
    children: list["Node"] = field(default_factory=list)

    def find(self, key, keyfn) -> "Node | None":
        for c in self.children:
            if keyfn(c.text) == key:
                return c
        return None

    def lines(self, indent: int, depth: int = 0) -> list[str]:
        out = []
        for c in self.children:
            out.append(" " * (indent * depth) + c.text)
            out.extend(c.lines(indent, depth + 1))
        return out


def parse(text: str, platform: Platform) -> Node:
    """Parse a device's running-config display into a hierarchy.

    Huawei VRP / Comware print global leaf commands indented by one space right
    after a ``#`` separator (`` sysname X``); those are root children, not
    children of the previous section.  StoneOS closes sections with ``exit``.
    """
    root = Node("")
    stack: list[tuple[int, Node]] = [(-1, root)]
    skip = re.compile(platform.skip_re)
    sep = re.compile(platform.separator_re)
    after_sep_base: int | None = None   # indent of root leaves in a `#` block
    for raw in text.replace("\r", "").split("\n"):
        line = raw.rstrip()
        if not line.strip():
            continue
        if sep.match(line.strip()):
            stack = [(-1, root)]
            after_sep_base = None
            continue
        if skip.match(line.strip()):
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = " ".join(line.split())
        if len(stack) == 1 and indent > 0:
            # a global leaf inside a `#` block: treat its indent as the root level
            after_sep_base = indent if after_sep_base is None else after_sep_base
        if after_sep_base is not None and len(stack) == 1 and indent == after_sep_base:
            indent = 0
            node = Node(body)
            root.children.append(node)
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else root
        node = Node(body)
        parent.children.append(node)
        stack.append((indent, node))
    return root


def clean_display(output: str, platform: Platform) -> str | None:
    """The running-config display without a stray echo/prompt before it, or None when
    the output is not one complete display (no identity line or no end marker)."""
    lines = output.replace("\r", "").split("\n")
    for i, ln in enumerate(lines[:5]):
        if platform.show_cmd in ln:
            lines = lines[i + 1:]
            break
    body = [ln.strip() for ln in lines if ln.strip()]
    if not body or body[-1] != platform.end_marker:
        return None
    if not any(re.match(platform.identity_re, ln) for ln in body):
        return None
    return "\n".join(lines).strip("\n") + "\n"


# --------------------------------------------------------------------------- model

@dataclass
class Model:
    platform: Platform
    local_site: str
    peer_site: str
    local_lan: ipaddress.IPv4Network
    peer_lan: ipaddress.IPv4Network
    local_wan: str
    peer_wan: str
    wan_interface: str
    hosts: list[dict]
    flows: list[dict]
    ipsec: dict


def _net(value, what):
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError as e:
        raise VendorFirewallError(f"{what}: {value!r} is not a network address ({e})") from None


def _addr(value, what):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        raise VendorFirewallError(f"{what}: {value!r} is not an IP address") from None


def build_model(platform, local_site, sites, site_hosts, flows, wan_interface, ipsec) -> Model:
    """Validate the inventory model; every error here is raised before connecting."""
    if platform not in PLATFORMS:
        if platform == "linux":
            raise VendorFirewallError(
                "gateway_platform 'linux' is handled by the site_gateway role, not vendor_firewall")
        raise VendorFirewallError(
            f"unknown platform {platform!r}; expected one of {', '.join(sorted(PLATFORMS))}")
    plat = PLATFORMS[platform]
    if not isinstance(sites, dict) or len(sites) != 2:
        raise VendorFirewallError(f"sites must name exactly two sites, got {list(sites or {})}")
    if local_site not in sites:
        raise VendorFirewallError(f"local_site {local_site!r} is not in sites {sorted(sites)}")
    nets = {}
    for name, s in sites.items():
        if not NAME_RE.match(str(name)):
            raise VendorFirewallError(f"site name {name!r} is not a plain name")
        if not isinstance(s, dict) or "lan" not in s or "wan" not in s:
            raise VendorFirewallError(f"site {name!r} needs 'lan' (CIDR) and 'wan' (gateway address)")
        nets[name] = _net(s["lan"], f"site {name} lan")
        _addr(s["wan"], f"site {name} wan")
    a, b = list(nets)
    if nets[a].overlaps(nets[b]):
        raise VendorFirewallError(
            f"site subnets overlap: {a} {nets[a]} and {b} {nets[b]}; the tunnel cannot route between them")
    peer_site = b if local_site == a else a
    hosts = {}
    for hname, haddr in (site_hosts or {}).items():
        if not NAME_RE.match(str(hname)):
            raise VendorFirewallError(f"host name {hname!r} is not a plain name")
        ip = _addr(haddr, f"host {hname}")
        site = next((s for s, n in nets.items() if ip in n), None)
        if site is None:
            raise VendorFirewallError(f"host {hname} address {ip} is in no site LAN ({', '.join(f'{s} {n}' for s, n in nets.items())})")
        hosts[hname] = {"name": hname, "address": str(ip), "site": site}
    if not flows:
        raise VendorFirewallError("flows is empty: a tunnel gateway with no declared flow would pass nothing")
    out_flows, used, seen = [], {}, set()
    for i, f in enumerate(flows):
        for k in ("name", "src", "dst", "port", "proto"):
            if k not in f:
                raise VendorFirewallError(f"flow #{i} lacks {k!r}: {f}")
        if not NAME_RE.match(str(f["name"])) or f["name"] in seen:
            raise VendorFirewallError(f"flow name {f['name']!r} is not a plain unique name")
        seen.add(f["name"])
        for end in ("src", "dst"):
            if f[end] not in hosts:
                raise VendorFirewallError(
                    f"flow {f['name']}: {end} {f[end]!r} is not a known host (site hosts: {', '.join(sorted(hosts)) or 'none'})")
        proto = str(f["proto"]).lower()
        if proto not in ("tcp", "udp"):
            raise VendorFirewallError(f"flow {f['name']}: proto {f['proto']!r} must be tcp or udp")
        try:
            port = int(f["port"])
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            raise VendorFirewallError(f"flow {f['name']}: port {f['port']!r} out of range")
        src, dst = hosts[f["src"]], hosts[f["dst"]]
        if src["site"] == dst["site"]:
            raise VendorFirewallError(f"flow {f['name']}: {src['name']} and {dst['name']} are both at {src['site']}; it does not cross the tunnel")
        used[src["name"]] = src
        used[dst["name"]] = dst
        out_flows.append({"name": f["name"], "src": src, "dst": dst, "port": port, "proto": proto,
                          "direction": "outbound" if src["site"] == local_site else "inbound",
                          "index": len(out_flows) + 1})
    if not wan_interface:
        raise VendorFirewallError("wan_interface is required (the device interface facing the WAN)")
    ipsec = dict(ipsec or {})
    auth = ipsec.get("auth", "psk")
    if auth == "psk":
        if not ipsec.get("psk"):
            raise VendorFirewallError("ipsec auth is psk but no pre-shared key was given (gateway_ipsec_psk)")
        if len(str(ipsec["psk"])) < 16 or re.search(r"\s|\"", str(ipsec["psk"])):
            raise VendorFirewallError("pre-shared key must be at least 16 characters without spaces or quotes")
    elif auth == "cert":
        cert = ipsec.get("cert") or {}
        missing = [k for k in ("pki_domain", "local_id", "peer_id") if not cert.get(k)]
        if missing:
            raise VendorFirewallError(f"ipsec auth is cert but gateway_ipsec_cert lacks {', '.join(missing)}")
    else:
        raise VendorFirewallError(f"ipsec auth {auth!r} must be psk or cert")
    ipsec["auth"] = auth
    return Model(
        platform=plat, local_site=local_site, peer_site=peer_site,
        local_lan=nets[local_site], peer_lan=nets[peer_site],
        local_wan=str(sites[local_site]["wan"]), peer_wan=str(sites[peer_site]["wan"]),
        wan_interface=str(wan_interface), hosts=sorted(used.values(), key=lambda h: h["name"]),
        flows=out_flows, ipsec=ipsec,
    )


def _net_ctx(n: ipaddress.IPv4Network) -> dict:
    return {"cidr": str(n), "network": str(n.network_address), "prefixlen": n.prefixlen,
            "netmask": str(n.netmask), "wildcard": str(n.hostmask)}


def render(model: Model, template_dir: str) -> str:
    import jinja2

    base = Path(template_dir) / model.platform.name
    if not (base / "main.j2").is_file():
        raise VendorFirewallError(f"no template {base / 'main.j2'}")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(base)),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    ctx = {
        "local": {"site": model.local_site, "lan": _net_ctx(model.local_lan), "wan": model.local_wan},
        "peer": {"site": model.peer_site, "lan": _net_ctx(model.peer_lan), "wan": model.peer_wan},
        "wan_interface": model.wan_interface, "hosts": model.hosts, "flows": model.flows,
        "ipsec": model.ipsec, "prefix": "dr",
        "services": sorted({(f["proto"], f["port"]) for f in model.flows}),
    }
    try:
        return env.get_template("main.j2").render(**ctx)
    except jinja2.TemplateError as e:
        raise VendorFirewallError(f"template {base}: {e}") from None


def required_headers(model: Model) -> list[str]:
    """Regexes for the section headers the intended config must contain."""
    p = model.platform.name
    hosts = [h["name"] for h in model.hosts]
    if p == "huawei":
        req = [r"^ike proposal ", r"^ike peer ", r"^ipsec proposal ", r"^ipsec policy ",
               r"^security-policy$", rf"^ip address-set dr-lan-{model.local_site} ",
               rf"^ip address-set dr-lan-{model.peer_site} "]
        req += [rf"^ip address-set dr-h-{re.escape(h)} " for h in hosts]
    elif p == "hp_comware":
        req = [r"^ikev2 proposal ", r"^ikev2 profile ", r"^ipsec transform-set ", r"^ipsec policy ",
               r"^security-policy ip$", rf"^object-group ip address dr-lan-{model.local_site}$",
               rf"^object-group ip address dr-lan-{model.peer_site}$"]
        req += [rf"^object-group ip address dr-h-{re.escape(h)}$" for h in hosts]
    else:
        req = [r"^ikev2 proposal ", r"^ikev2 peer ", r"^ikev2 ipsec-proposal ", r"^tunnel ipsec ",
               r"^policy-global$", rf'^address "dr-lan-{model.local_site}"$',
               rf'^address "dr-lan-{model.peer_site}"$']
        req += [rf'^address "dr-h-{re.escape(h)}"$' for h in hosts]
    return req


def intended(model: Model, template_dir: str) -> Node:
    """Render and parse the intended config; refuse one that lacks required sections."""
    text = render(model, template_dir)
    tree = parse(text, model.platform)
    if not tree.children:
        raise VendorFirewallError(
            f"template {model.platform.name}/main.j2 rendered an empty configuration: refusing an empty change set")
    heads = [c.text for c in tree.children]
    missing = [r for r in required_headers(model) if not any(re.search(r, h) for h in heads)]
    # one security rule per flow plus the final deny
    pol = next((c for c in tree.children if re.match(model.platform.ordered_re, c.text)), None)
    nrules = len(pol.children) if pol else 0
    if pol is not None and nrules < len(model.flows) + 1:
        missing.append(f"{len(model.flows)} flow rules + final deny in {pol.text!r} (found {nrules})")
    if missing:
        raise VendorFirewallError(
            f"template {model.platform.name}/main.j2 renders no section for: {'; '.join(missing)}")
    return tree


# --------------------------------------------------------------------------- plan

def secret_key(platform: Platform):
    sec = re.compile(platform.secret_re)

    def key(text: str) -> str:
        m = sec.match(text)
        return m.group(0) if m else text
    return key


def exact_key(text: str) -> str:
    return text


def negation(text: str, platform: Platform) -> str:
    if text.startswith(platform.negate):
        return text[len(platform.negate):]
    for rx, rep in platform.negate_rewrites:
        if re.match(rx, text):
            text = re.sub(rx, rep, text)
            break
    return platform.negate + text


def _full(node: Node, depth: int, platform: Platform) -> list[tuple[int, str, str]]:
    out = [(depth, "+", node.text)]
    for c in node.children:
        out += _full(c, depth + 1, platform)
    if node.children:
        out.append((depth + 1, "=", platform.section_exit))
    return out


def _plan(cur: Node, want: Node, depth: int, platform: Platform, keyfn, remove_extra: bool):
    """Steps (depth, op, text); op '+' add, '-' negate, '=' navigate (enter/exit)."""
    steps: list[tuple[int, str, str]] = []
    ordered = bool(want.text) and re.match(platform.ordered_re, want.text) is not None
    wkeys = [keyfn(c.text) for c in want.children]
    if remove_extra:
        for c in cur.children:
            if keyfn(c.text) not in wkeys:
                steps.append((depth, "-", negation(c.text, platform)))
    start = len(want.children)
    if ordered and not remove_extra:
        # a flow taken out of the inventory: its `dr-` rule goes; the site's own rules stay
        managed = re.compile(platform.managed_rule_re)
        for c in cur.children:
            ours = managed.match(c.text) or any(managed.match(k.text) for k in c.children)
            if ours and keyfn(c.text) not in wkeys:
                steps.append((depth, "-", negation(c.text, platform)))
    if ordered:
        # intended children must appear in the device's list in the intended order;
        # from the first one that is missing or out of order, remove the present ones
        # and re-add the tail in order (a new permit lands before the final deny)
        ckeys = [keyfn(c.text) for c in cur.children]
        last = -1
        for i, k in enumerate(wkeys):
            pos = ckeys.index(k) if k in ckeys else None
            if pos is None or pos < last:
                start = i
                break
            last = pos
        for c in want.children[start:]:
            if keyfn(c.text) in ckeys:
                steps.append((depth, "-", negation(cur.find(keyfn(c.text), keyfn).text, platform)))
    for i, w in enumerate(want.children):
        if i >= start:
            steps += _full(w, depth, platform)
            continue
        c = cur.find(keyfn(w.text), keyfn)
        if c is None:
            steps += _full(w, depth, platform)
        elif w.children or (remove_extra and c.children) or re.match(platform.ordered_re, w.text):
            sub = _plan(c, w, depth + 1, platform, keyfn, remove_extra)
            if sub:
                steps.append((depth, "=", w.text))
                steps += sub
                steps.append((depth + 1, "=", platform.section_exit))
    return steps


def plan_change(running: Node, want: Node, platform: Platform):
    """Only missing or different lines, in device syntax and order, with navigation."""
    return _plan(running, want, 0, platform, secret_key(platform), remove_extra=False)


def plan_restore(running: Node, backup: Node, platform: Platform):
    """Exact-text plan that turns `running` back into `backup` (remove extras, re-add missing)."""
    return _plan(running, backup, 0, platform, exact_key, remove_extra=True)


def commands(steps, platform: Platform) -> list[str]:
    """The lines to send with send_config_set (indented for readability)."""
    return [" " * (platform.indent * d) + t for d, _op, t in steps]


def show(steps, platform: Platform) -> str:
    """Human diff: `+` added, `-` removed, context lines unmarked; secrets masked."""
    sec = re.compile(platform.secret_re)
    out = []
    for d, op, t in steps:
        if t == platform.section_exit and op == "=":
            continue
        if sec.match(t) or (t.startswith(platform.negate) and sec.match(t[len(platform.negate):])):
            t = sec.match(t.removeprefix(platform.negate)).group(0) + " ******"
        mark = {"+": "+ ", "-": "- ", "=": "  "}[op]
        out.append(mark + " " * (platform.indent * d) + t)
    return "\n".join(out) + ("\n" if out else "")


def changed_lines(steps) -> int:
    return sum(1 for _d, op, _t in steps if op in "+-")


def canonical(tree: Node, platform: Platform) -> str:
    return "\n".join(tree.lines(platform.indent)) + "\n"
