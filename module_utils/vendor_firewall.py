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

# linux = roles/site_gateway; the others are PLATFORMS (library/vendor_firewall.py).
# module_utils/inventory_checks.py reads both constants from here.
PLATFORMS_ALL = ("linux", "huawei", "hp_comware", "hillstone_stoneos", "juniper_junos")
# Shortest pre-shared key accepted anywhere (vendor devices, Linux gateways, inventory checks).
PSK_MIN_LENGTH = 20
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
    owned_re: str = r"dr-"           # root sections that are entirely ours (compared exactly)
    single_re: tuple = ()            # single-valued lines: a new value replaces the old one
    rank_re: tuple = ()              # root sections in dependency order (referenced objects first)
    flat: bool = False               # `set ...` statements, no hierarchy (Junos `display set`)
    candidate: bool = False          # candidate configuration + commit confirmed (Junos)
    managed_line_re: str = ""        # flat platforms: the statements that are ours
    ips_re: str = ""                 # a rule's attack-protection (IPS) profile line
    av_re: str = ""                  # a rule's antivirus profile line


PLATFORMS: dict[str, Platform] = {
    "huawei": Platform(
        name="huawei", indent=1, negate="undo ", section_exit="quit",
        show_cmd="display current-configuration",
        save_cmd="save", save_confirm=True, save_response="y",
        error_re=r"^\s*Error:.*$",
        secret_re=r"^pre-shared-key\b",
        ordered_re=r"^security-policy$",
        skip_re=r"^(!.*|return|\d{4}-\d\d-\d\d .*)$",
        owned_re=r"dr-|^acl number 3900$|^ike proposal 10$",
        single_re=(r"action", r"address \d+", r"encryption-algorithm", r"dh", r"authentication-algorithm",
                   r"integrity-algorithm", r"prf", r"ike-proposal", r"pre-shared-key", r"remote-address",
                   r"esp authentication-algorithm", r"esp encryption-algorithm", r"security acl", r"ike-peer",
                   r"proposal", r"pfs", r"sa duration time-based", r"rule \d+", r"dpd type",
                   r"profile ips", r"profile av", r"ipsec policy"),
        rank_re=(r"^ip address-set ", r"^profile type ", r"^acl ", r"^ike proposal ", r"^ike peer ",
                 r"^ipsec proposal ", r"^ipsec policy ", r"^interface ", r"^security-policy$"),
        ips_re=r"^profile ips \S+$", av_re=r"^profile av \S+$",
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
        negate_rewrites=((r"^rule (\d+) name \S+$", r"rule \1"), (r"^(\d+) .*$", r"\1")),
        managed_rule_re=r"^rule \d+ name dr-",
        owned_re=r"dr-|^acl advanced 3900$",
        single_re=(r"\d+", r"rule \d+", r"action", r"esp encryption-algorithm", r"esp authentication-algorithm",
                   r"pfs", r"encryption", r"integrity", r"prf", r"dh", r"proposal", r"address",
                   r"identity address", r"pre-shared-key", r"keychain", r"transform-set", r"security acl",
                   r"local-address", r"remote-address", r"ikev2-profile", r"sa duration time-based",
                   r"ipsec apply policy", r"profile", r"ips apply policy", r"anti-virus apply policy"),
        rank_re=(r"^object-group ", r"^ips policy |^anti-virus policy ", r"^app-profile ", r"^acl ",
                 r"^ipsec transform-set ", r"^ikev2 proposal ", r"^ikev2 policy ", r"^ikev2 keychain ",
                 r"^ikev2 profile ", r"^ipsec policy ", r"^interface ", r"^security-policy ip$"),
        ips_re=r"^profile dr-utm$", av_re=r"^profile dr-utm$",
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
        single_re=(r"action", r"name", r"src-zone", r"dst-zone", r"encryption", r"integrity", r"prf",
                   r"group", r"hash", r"protocol", r"lifetime", r"interface", r"ikev2-proposal", r"peer",
                   r"pre-share", r"remote id", r"local id", r"ikev2-peer", r"ikev2-profile",
                   r"ipsec-proposal", r"id", r"trust-domain", r"ips", r"av"),
        rank_re=(r'^address ', r'^service ', r'^ips profile |^av-profile ', r'^ikev2 proposal ',
                 r'^ikev2 ipsec-proposal ', r'^ikev2 peer ', r'^ikev2 profile ', r'^tunnel ipsec ',
                 r'^interface ', r'^policy-global$'),
        ips_re=r'^ips "\S+"$', av_re=r'^av "\S+"$',
    ),
    # Juniper SRX (Junos): candidate configuration, `commit confirmed N` with an automatic
    # rollback, read as `show configuration | display set` (one statement per line).
    "juniper_junos": Platform(
        name="juniper_junos", indent=0, negate="delete ", section_exit="",
        show_cmd="show configuration | display set | no-more",
        save_cmd="", save_confirm=False, save_response="",
        error_re=r"^\s*(syntax error.*|error:.*|unknown command.*|missing argument.*|invalid value.*)$",
        secret_re=r"^set security ike policy \S+ pre-shared-key\b",
        ordered_re=r"^$a",  # never: permits and the global final deny are in separate lists
        skip_re=r"^(\{.*\}|\[edit.*\])$",
        separator_re=r"^$a", end_marker="", identity_re=r"^set system host-name ",
        managed_rule_re=r"^$a", owned_re=r"^$a", flat=True, candidate=True,
        managed_line_re=r".*\bdr-|^set interfaces st0 unit 0 ",
        single_re=(r"set applications application \S+ (?:protocol|destination-port)",
                   r"set security address-book global address \S+",
                   r"set security ike gateway \S+ (?:address|external-interface|ike-policy|version)",
                   r"set security ike policy \S+ (?:proposals|pre-shared-key)",
                   r"set security ike proposal \S+ (?:authentication-method|dh-group|authentication-algorithm|encryption-algorithm|lifetime-seconds)",
                   r"set security ipsec proposal \S+ (?:protocol|authentication-algorithm|encryption-algorithm|lifetime-seconds)",
                   r"set security ipsec policy \S+ (?:proposals|perfect-forward-secrecy keys)",
                   r"set security ipsec vpn \S+ (?:bind-interface|ike gateway|ike ipsec-policy)",
                   r"set security policies from-zone \S+ to-zone \S+ policy \S+ then permit application-services (?:idp-policy|utm-policy)"),
        ips_re=r".* then permit application-services idp-policy \S+$",
        av_re=r".* then permit application-services utm-policy \S+$",
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
    if not body or (platform.end_marker and body[-1] != platform.end_marker):
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
    profiles: dict = field(default_factory=dict)


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


PROFILE_KINDS = ("ips", "av")


def tunnel_model(local_site, sites, site_hosts, flows) -> tuple[dict | None, list[str]]:
    """The platform-independent tunnel model and every problem in it, in input order.

    Returns ``(model, errors)``; ``model`` is None when ``errors`` is not empty. The model:
    ``{local_site, peer_site, nets: {site: network}, wans: {site: address}, hosts: [used hosts],
    flows: [{name, src, dst, port, proto, direction, index}]}`` with ``direction`` ``outbound``
    when ``src`` is at ``local_site``. Vendor devices (:func:`build_model`) and the Linux
    gateways (filter_plugins/site_gateway.py) both read it.
    """
    errors: list[str] = []

    def check(fn, *args):
        try:
            return fn(*args)
        except VendorFirewallError as e:
            errors.append(str(e))
            return None

    if not isinstance(sites, dict) or len(sites) != 2:
        return None, [f"sites must name exactly two sites, got {list(sites or {})}"]
    if local_site not in sites:
        errors.append(f"local_site {local_site!r} is not in sites {sorted(sites)}")
    nets, wans = {}, {}
    for name, s in sites.items():
        if not NAME_RE.match(str(name)):
            errors.append(f"site name {name!r} is not a plain name")
            continue
        if not isinstance(s, dict) or "lan" not in s or "wan" not in s:
            errors.append(f"site {name!r} needs 'lan' (CIDR) and 'wan' (gateway address)")
            continue
        net = check(_net, s["lan"], f"site {name} lan")
        wan = check(_addr, s["wan"], f"site {name} wan")
        if net is not None:
            nets[name] = net
        if wan is not None:
            wans[name] = str(wan)
    if len(nets) == 2:
        a, b = list(nets)
        if nets[a].overlaps(nets[b]):
            errors.append(f"site subnets overlap: {a} {nets[a]} and {b} {nets[b]}; "
                          "the tunnel cannot route between them")
    hosts = {}
    for hname, haddr in (site_hosts or {}).items():
        if not NAME_RE.match(str(hname)):
            errors.append(f"host name {hname!r} is not a plain name")
            continue
        ip = check(_addr, haddr, f"host {hname}")
        if ip is None:
            continue
        site = next((s for s, n in nets.items() if ip in n), None)
        if site is None and len(nets) == 2:
            errors.append(f"host {hname} address {ip} is in no site LAN "
                          f"({', '.join(f'{s} {n}' for s, n in nets.items())})")
        hosts[hname] = {"name": hname, "address": str(ip), "site": site}
    if not flows:
        errors.append("flows is empty: a tunnel gateway with no declared flow would pass nothing")
    out_flows, used, seen = [], {}, set()
    for i, f in enumerate(flows or []):
        missing = [k for k in ("name", "src", "dst", "port", "proto") if k not in f]
        if missing:
            errors.append(f"flow #{i} lacks {missing[0]!r}: {f}")
            continue
        if not NAME_RE.match(str(f["name"])) or f["name"] in seen:
            errors.append(f"flow name {f['name']!r} is not a plain unique name")
        seen.add(f["name"])
        unknown = [end for end in ("src", "dst") if f[end] not in hosts]
        for end in unknown:
            errors.append(f"flow {f['name']}: {end} {f[end]!r} is not a known host "
                          f"(site hosts: {', '.join(sorted(hosts)) or 'none'})")
        proto = str(f["proto"]).lower()
        if proto not in ("tcp", "udp"):
            errors.append(f"flow {f['name']}: proto {f['proto']!r} must be tcp or udp")
        try:
            port = int(f["port"])
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            errors.append(f"flow {f['name']}: port {f['port']!r} out of range")
        if unknown:
            continue
        src, dst = hosts[f["src"]], hosts[f["dst"]]
        if src["site"] is not None and src["site"] == dst["site"]:
            errors.append(f"flow {f['name']}: {src['name']} and {dst['name']} are both at {src['site']}; "
                          "it does not cross the tunnel")
        used[src["name"]] = src
        used[dst["name"]] = dst
        out_flows.append({"name": f["name"], "src": src, "dst": dst, "port": port, "proto": proto,
                          "direction": "outbound" if src["site"] == local_site else "inbound",
                          "index": len(out_flows) + 1})
    if errors:
        return None, errors
    peer_site = next(s for s in sites if s != local_site)
    return {"local_site": local_site, "peer_site": peer_site, "nets": nets, "wans": wans,
            "hosts": sorted(used.values(), key=lambda h: h["name"]), "flows": out_flows}, []


def psk_errors(psk) -> list[str]:
    """Problems of a pre-shared key, never containing its value."""
    if not psk:
        return ["ipsec auth is psk but no pre-shared key was given (gateway_ipsec_psk)"]
    if len(str(psk)) < PSK_MIN_LENGTH or re.search(r"\s|\"", str(psk)):
        return [f"pre-shared key must be at least {PSK_MIN_LENGTH} characters without spaces or quotes"]
    return []


def build_model(platform, local_site, sites, site_hosts, flows, wan_interface, ipsec,
                profiles=None) -> Model:
    """Validate the inventory model; every error here is raised before connecting."""
    if platform not in PLATFORMS:
        if platform == "linux":
            raise VendorFirewallError(
                "gateway_platform 'linux' is handled by the site_gateway role, not vendor_firewall")
        raise VendorFirewallError(
            f"unknown platform {platform!r}; expected one of {', '.join(sorted(PLATFORMS))}")
    plat = PLATFORMS[platform]
    tunnel, errors = tunnel_model(local_site, sites, site_hosts, flows)
    if errors:
        raise VendorFirewallError(errors[0])
    if not wan_interface:
        raise VendorFirewallError("wan_interface is required (the device interface facing the WAN)")
    ipsec = dict(ipsec or {})
    auth = ipsec.get("auth", "psk")
    if auth == "psk":
        for problem in psk_errors(ipsec.get("psk")):
            raise VendorFirewallError(problem)
    elif auth == "cert":
        cert = ipsec.get("cert") or {}
        missing = [k for k in ("pki_domain", "local_id", "peer_id") if not cert.get(k)]
        if missing:
            raise VendorFirewallError(f"ipsec auth is cert but gateway_ipsec_cert lacks {', '.join(missing)}")
    else:
        raise VendorFirewallError(f"ipsec auth {auth!r} must be psk or cert")
    ipsec["auth"] = auth
    profiles = dict(profiles or {})
    missing = [k for k in PROFILE_KINDS if not profiles.get(k)]
    if missing:
        raise VendorFirewallError(
            f"security profiles not declared: {', '.join(missing)} (vendor_fw_security_profiles: "
            "{ips: <attack-protection profile>, av: <antivirus profile>}, profiles that exist on the device)")
    unknown = sorted(set(profiles) - set(PROFILE_KINDS))
    if unknown:
        raise VendorFirewallError(f"security profiles: unknown kind(s) {', '.join(unknown)}; expected ips, av")
    for k in PROFILE_KINDS:
        if not NAME_RE.match(str(profiles[k])):
            raise VendorFirewallError(f"security profile {k} {profiles[k]!r} is not a plain name")
    peer_site = tunnel["peer_site"]
    return Model(
        platform=plat, local_site=local_site, peer_site=peer_site,
        local_lan=tunnel["nets"][local_site], peer_lan=tunnel["nets"][peer_site],
        local_wan=tunnel["wans"][local_site], peer_wan=tunnel["wans"][peer_site],
        wan_interface=str(wan_interface), hosts=tunnel["hosts"],
        flows=tunnel["flows"], ipsec=ipsec, profiles={k: str(profiles[k]) for k in PROFILE_KINDS},
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
        "profiles": model.profiles,
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
    elif p == "juniper_junos":
        req = [r"^set security ike proposal dr-", r"^set security ike gateway dr-", r"^set security ipsec vpn dr-",
               r"^set security policies global policy dr-tunnel-deny ",
               rf"^set security address-book global address dr-lan-{model.local_site} ",
               rf"^set security address-book global address dr-lan-{model.peer_site} "]
        req += [rf"^set security address-book global address dr-h-{re.escape(h)} " for h in hosts]
        req += [rf"^set security policies from-zone \S+ to-zone \S+ policy dr-{re.escape(f['name'])} "
                for f in model.flows]
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
    missing += profile_problems(tree, model)
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
    if platform.flat:
        return "delete " + text[4:] if text.startswith("set ") else text
    if text.startswith(platform.negate):
        return text[len(platform.negate):]
    for rx, rep in platform.negate_rewrites:
        if re.match(rx, text):
            text = re.sub(rx, rep, text)
            break
    return platform.negate + text


def single_key(text: str, platform: Platform) -> str | None:
    """The key of a single-valued line (the device replaces the old value), else None."""
    for rx in platform.single_re:
        m = re.match(rf"^({rx})(\s|$)", text)
        if m:
            return m.group(1)
    return None


def owned(text: str, platform: Platform) -> bool:
    """A root section that is entirely ours (named dr-..., or our ACL/proposal number)."""
    return bool(re.search(platform.owned_re, text))


def managed_rule(node: Node, platform: Platform) -> bool:
    rx = re.compile(platform.managed_rule_re)
    return bool(rx.match(node.text) or any(rx.match(k.text) for k in node.children))


def rank(text: str, platform: Platform) -> int:
    """Dependency rank of a root section: referenced objects first, bindings and policies last."""
    for i, rx in enumerate(platform.rank_re):
        if re.match(rx, text):
            return i
    return len(platform.rank_re) // 2


def _full(node: Node, depth: int, platform: Platform) -> list[tuple[int, str, str]]:
    out = [(depth, "+", node.text)]
    for c in node.children:
        out += _full(c, depth + 1, platform)
    if node.children:
        out.append((depth + 1, "=", platform.section_exit))
    return out


def _extras(cur: Node, want: Node, platform: Platform, keyfn) -> list[Node]:
    """Lines of `cur` that `want` does not have and that a new value does not replace."""
    wkeys = {keyfn(c.text) for c in want.children}
    ckeys = {keyfn(c.text) for c in cur.children}
    # only a value that will be pushed replaces the old one; when the intended value is
    # already there next to another one, the other one is removed explicitly
    wsingle = {single_key(c.text, platform) for c in want.children if keyfn(c.text) not in ckeys} - {None}
    out = []
    for c in cur.children:
        if keyfn(c.text) in wkeys:
            continue
        sk = single_key(c.text, platform)
        if sk is not None and sk in wsingle and not c.children:
            continue    # `action deny` replaces `action permit`: no undo of the old value
        out.append(c)
    return out


def _plan(cur: Node, want: Node, depth: int, platform: Platform, keyfn, exact: bool):
    """Steps (depth, op, text) below one section; op '+' add, '-' negate, '=' navigate.

    ``exact``: the section is ours (or we restore a backup): lines the intended section
    does not have are removed. Otherwise intended lines are added and, in the ordered
    policy section, our own rules are kept in the intended order and undeclared ones go.
    """
    removals: list[tuple[int, str, str]] = []
    adds: list[tuple[int, str, str]] = []
    ordered = bool(want.text) and re.match(platform.ordered_re, want.text) is not None
    wkeys = [keyfn(c.text) for c in want.children]
    if exact:
        for c in _extras(cur, want, platform, keyfn):
            removals.append((depth, "-", negation(c.text, platform)))
    elif ordered:
        # a flow taken out of the inventory: its `dr-` rule goes; the site's own rules stay
        for c in cur.children:
            if managed_rule(c, platform) and keyfn(c.text) not in wkeys:
                removals.append((depth, "-", negation(c.text, platform)))
    start = len(want.children)
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
                removals.append((depth, "-", negation(cur.find(keyfn(c.text), keyfn).text, platform)))
    for i, w in enumerate(want.children):
        if i >= start:
            adds += _full(w, depth, platform)
            continue
        c = cur.find(keyfn(w.text), keyfn)
        if c is None:
            adds += _full(w, depth, platform)
        elif w.children or c.children or ordered:
            sub_exact = exact or (ordered and managed_rule(w, platform))
            sub = _plan(c, w, depth + 1, platform, keyfn, sub_exact)
            if sub:
                adds.append((depth, "=", w.text))
                adds += sub
                adds.append((depth + 1, "=", platform.section_exit))
    # ordered lists: removals first (the tail is re-added); elsewhere the new value goes in
    # before the old one is taken out (no moment with neither, e.g. a rule with no service)
    return removals + adds if ordered else adds + removals


def _root_plan(cur: Node, want: Node, platform: Platform, keyfn, exact: bool):
    """Dependency order. Phase 1, referenced objects first: new and changed sections
    (their own child removals included: a rule stops referencing an object here). Phase 2,
    in reverse: deletion of whole sections (rules and bindings before the objects)."""
    if platform.flat:
        managed = re.compile(platform.managed_line_re)
        wkeys = {keyfn(c.text) for c in want.children}
        ckeys = {keyfn(c.text) for c in cur.children}
        scope = Node("", [c for c in cur.children if exact or managed.match(c.text)])
        dels = [(0, "-", negation(c.text, platform)) for c in _extras(scope, want, platform, keyfn)
                if keyfn(c.text) not in wkeys]
        adds = [(0, "+", w.text) for w in want.children if keyfn(w.text) not in ckeys]
        return dels + adds    # one candidate, committed at once: order within it is free
    edits: list[tuple[int, list]] = []
    deletes: list[tuple[int, list]] = []
    wkeys = [keyfn(c.text) for c in want.children]
    for c in cur.children:
        if keyfn(c.text) not in wkeys and (exact or owned(c.text, platform)):
            if exact and single_key(c.text, platform) in {
                    single_key(w.text, platform) for w in want.children
                    if keyfn(w.text) not in {keyfn(x.text) for x in cur.children}} - {None}:
                continue
            deletes.append((rank(c.text, platform), [(0, "-", negation(c.text, platform))]))
    for w in want.children:
        c = cur.find(keyfn(w.text), keyfn)
        if c is None:
            edits.append((rank(w.text, platform), _full(w, 0, platform)))
        elif w.children or c.children or re.match(platform.ordered_re, w.text):
            sub = _plan(c, w, 1, platform, keyfn, exact or owned(w.text, platform))
            if sub:
                edits.append((rank(w.text, platform),
                              [(0, "=", w.text)] + sub + [(1, "=", platform.section_exit)]))
    steps = []
    for _r, s in sorted(edits, key=lambda e: e[0]):
        steps += s
    for _r, s in sorted(deletes, key=lambda e: -e[0]):
        steps += s
    return steps


def plan_change(running: Node, want: Node, platform: Platform):
    """Missing, different and superseded lines, in device syntax and dependency order."""
    return _root_plan(running, want, platform, secret_key(platform), exact=False)


def plan_restore(running: Node, backup: Node, platform: Platform):
    """Exact-text plan that turns `running` back into `backup`, in dependency order."""
    return _root_plan(running, backup, platform, exact_key, exact=True)


def _same(cur: Node, want: Node, keyfn) -> bool:
    ck = sorted(keyfn(c.text) for c in cur.children)
    wk = sorted(keyfn(c.text) for c in want.children)
    if ck != wk:
        return False
    return all(_same(cur.find(keyfn(w.text), keyfn), w, keyfn) for w in want.children)


def verify(running: Node, want: Node, platform: Platform, model: "Model | None" = None) -> list[str]:
    """Read-back: every managed section equals the intended one (missing AND extra lines
    are failures); in shared sections (interfaces, the site's policy list) our lines are
    present and our rules are exactly the intended ones, in the intended order."""
    keyfn = secret_key(platform)
    problems: list[str] = []
    if platform.flat:
        managed = re.compile(platform.managed_line_re)
        have = [keyfn(c.text) for c in running.children if managed.match(c.text)]
        wanted = [keyfn(c.text) for c in want.children]
        problems += [f"missing: {k}" for k in wanted if k not in have]
        problems += [f"extra: {k}" for k in have if k not in wanted]
        return problems + (profile_problems(running, model) if model else [])
    wkeys = [keyfn(w.text) for w in want.children]
    for c in running.children:
        if owned(c.text, platform) and keyfn(c.text) not in wkeys:
            problems.append(f"extra section: {c.text}")
    for w in want.children:
        c = running.find(keyfn(w.text), keyfn)
        if c is None:
            problems.append(f"missing section: {w.text}")
        elif owned(w.text, platform):
            if not _same(c, w, keyfn):
                problems.append(f"section differs: {w.text}: device has "
                                f"{[keyfn(x) for x in c.lines(platform.indent)]}")
        elif re.match(platform.ordered_re, w.text):
            ours = [x for x in c.children if managed_rule(x, platform)]
            wr = [x for x in w.children if managed_rule(x, platform)]
            if [keyfn(x.text) for x in ours] != [keyfn(x.text) for x in wr]:
                problems.append(f"{w.text}: our rules are {[x.text for x in ours]}, intended {[x.text for x in wr]}")
            else:
                for x, y in zip(ours, wr):
                    if not _same(x, y, keyfn):
                        problems.append(f"{w.text}: rule {x.text!r} differs: device has "
                                        f"{[k.text for k in x.children]}, intended {[k.text for k in y.children]}")
        else:
            missing = [ln for ln in vfplan_lines(_plan(c, w, 1, platform, keyfn, False)) if ln]
            if missing:
                problems.append(f"{w.text}: missing {missing}")
    return problems + (profile_problems(running, model) if model else [])


def vfplan_lines(steps) -> list[str]:
    return [t for _d, op, t in steps if op == "+"]


def profile_problems(tree: Node, model: "Model") -> list[str]:
    """Every permit rule of ours carries the declared attack-protection and antivirus profile."""
    plat = model.platform
    prof = model.profiles
    out = []
    if plat.flat:
        for f in model.flows:
            base = f"set security policies from-zone "
            lines = [c.text for c in tree.children if c.text.startswith(base) and f" policy dr-{f['name']} " in c.text]
            for kind, rx in (("ips", plat.ips_re), ("av", plat.av_re)):
                if not any(re.match(rx, ln) and ln.endswith(" " + prof[kind]) for ln in lines):
                    out.append(f"rule dr-{f['name']}: no {kind} profile {prof[kind]}")
        return out
    pol = next((c for c in tree.children if re.match(plat.ordered_re, c.text)), None)
    rules = [r for r in (pol.children if pol else []) if managed_rule(r, plat)]
    for f in model.flows:
        rule = next((r for r in rules if f"dr-{f['name']}" in r.text
                     or any(f'dr-{f["name"]}"' in k.text for k in r.children)), None)
        if rule is None:
            out.append(f"rule dr-{f['name']}: missing")
            continue
        for kind, rx in (("ips", plat.ips_re), ("av", plat.av_re)):
            if not any(re.match(rx, k.text) for k in rule.children):
                out.append(f"rule dr-{f['name']}: no {kind} profile")
    return out


def commands(steps, platform: Platform) -> list[str]:
    """The lines to send with send_config_set (indented for readability)."""
    return [" " * (platform.indent * d) + t for d, _op, t in steps if t]


def show(steps, platform: Platform) -> str:
    """Human diff: `+` added, `-` removed, context lines unmarked; secrets masked."""
    sec = re.compile(platform.secret_re)
    out = []
    for d, op, t in steps:
        if t == platform.section_exit and op == "=":
            continue
        deleting = platform.flat and t.startswith("delete ")
        plain = ("set " + t[7:]) if deleting else (t[len(platform.negate):] if t.startswith(platform.negate) else t)
        m = sec.match(plain)
        if m:
            shown = m.group(0)
            if deleting:
                shown = "delete " + shown[4:]
            elif plain is not t:
                shown = platform.negate + shown
            t = shown + " ******"
        mark = {"+": "+ ", "-": "- ", "=": "  "}[op]
        out.append(mark + " " * (platform.indent * d) + t)
    return "\n".join(out) + ("\n" if out else "")


def changed_lines(steps) -> int:
    return sum(1 for _d, op, _t in steps if op in "+-")


def canonical(tree: Node, platform: Platform) -> str:
    return "\n".join(tree.lines(platform.indent)) + "\n"
