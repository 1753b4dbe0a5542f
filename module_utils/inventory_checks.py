"""Cross-host inventory checks: bad input refused before any host is changed.

Pure Python (stdlib only; no Ansible import). ``playbooks/validate.yml`` calls
:func:`inventory_errors` through ``filter_plugins/inventory_checks.py`` with the
variables of every inventory host (inventory values merged over the defaults of
the roles that apply to the host) and the inventory's groups; unit-tested in
``tests/unit/test_inventory_checks.py``.

Every problem is one line naming where the value lives and the variable:
``group_vars/<group>: <variable> ...`` when every host of a group (two or more
hosts) has the same value, else ``<host>: <variable> ...``. Secret values
(``SECRET_VARS``) are never part of a message, only their names.

:func:`spec_type_errors` is the strict half of the role argument specs:
``validate_argument_spec`` silently converts ``"a,b"`` to a list, ``"k=v"`` to
a dict and any number or list to a string; those conversions are refused here.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable


def _tunnel_model_module():
    """module_utils/vendor_firewall.py, the one tunnel model, loaded from beside this file: the
    filter plugin loads this file by path, so module_utils/ need not be on sys.path."""
    name = "archive_dr_vendor_firewall"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "vendor_firewall.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_vf = _tunnel_model_module()
# linux = roles/site_gateway, the others = library/vendor_firewall.py with templates/firewall/<platform>/.
FIREWALL_PLATFORMS = _vf.PLATFORMS_ALL
PSK_MIN_LENGTH = _vf.PSK_MIN_LENGTH
SECRET_VARS = ("site_gateway_psk", "gateway_ipsec_psk")
ADDRESS_VARS = ("ansible_host", "lan_address", "wan_address")
# What a host outside the checked set (ansible-playbook --limit) still contributes.
BASE_VARS = ADDRESS_VARS + ("site_name", "sites")
DNS_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# tc(8) rates: a number and a unit (bit, kbit, mibit, bps, mbps, ...).
RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*((?:[kmgt]i?)?(?:bit|bps))\s*$", re.I)
# restic forget at geo (backup_appliance_protected_systems, type files): counts of snapshots.
RETENTION_KEYS_FILES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
# Path variables that must be absolute and free of '.'/'..' components (per host, when set).
PATH_VARS = (
    "replica_data_root", "replica_files_path", "replica_repos_path", "replica_restore_root",
    "replica_source_file_store", "replica_source_backup_root",
    "backup_appliance_pgbackrest_repo_path", "backup_appliance_restic_repo_root",
    "backup_appliance_staging_root", "archive_system_file_store",
)
SCHEDULE_VARS = ("backup_appliance_deadman_schedule", "replica_repo_pull_schedule", "replica_deadman_schedule")
RETENTION_VARS = ("replica_files_retention", "replica_repo_retention")
# Their schema: retention by calendar time at miyun (replica_tool.retention_policy, docs/dr-history.md).
REPLICA_RETENTION_PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")
REPLICA_RETENTION_KEYS = ("keep_all_days",) + REPLICA_RETENTION_PERIODS + ("vanished_keep_days",)
WAN_RATE_VARS = ("site_gateway_wan_rate", "lab_wan_rate")
EXTRA_SUBNET_VARS = {"lab_wan_subnet": "the WAN", "lab_mgmt_subnet": "the management network"}

CalendarCheck = Callable[[list], dict]


# ------------------------------------------------------------------ helpers
def _net(value):
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        return None


def _addr(value):
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _is_int(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()) is not None


def _bad_path(value) -> str | None:
    """Why a path is refused, or None."""
    if not isinstance(value, str) or not value:
        return "is not a path"
    if not value.startswith("/"):
        return "is relative; give an absolute path"
    if any(part in (".", "..") for part in value.split("/")):
        return "contains a '.' or '..' component; give the plain absolute path"
    return None


def systemd_calendar_check(expressions: list) -> dict:
    """{expression: ok} by `systemd-analyze calendar` on this machine (the controller).

    Raises FileNotFoundError when the binary is missing: a schedule is never
    waved through unchecked.
    """
    exe = shutil.which("systemd-analyze")
    if exe is None:
        raise FileNotFoundError("systemd-analyze")
    exprs = sorted({str(e) for e in expressions})
    if not exprs:
        return {}
    # One call for all; only when that fails, one call per expression to find the bad ones.
    if subprocess.run([exe, "calendar", *exprs], capture_output=True, check=False).returncode == 0:
        return dict.fromkeys(exprs, True)
    return {e: subprocess.run([exe, "calendar", e], capture_output=True, check=False).returncode == 0
            for e in exprs}


class _Report:
    """Collects messages once each, names where a value lives."""

    def __init__(self, hostvars: dict, groups: dict):
        self.hostvars, self.groups, self.lines = hostvars, groups, []
        self._scopes: dict = {}

    def add(self, line: str):
        if line not in self.lines:
            self.lines.append(line)

    def scope(self, host: str, var: str) -> str:
        """group_vars/<g> if every host of a group (>= 2 hosts) holding `host` has the same value."""
        key = (host, var)
        if key in self._scopes:
            return self._scopes[key]
        value = self.hostvars[host].get(var)
        best, best_size = host, 1
        for group in sorted(self.groups):
            members = [h for h in self.groups[group] if h in self.hostvars]
            if group == "ungrouped" or host not in members or len(members) < 2 or len(members) <= best_size:
                continue
            if all(var in self.hostvars[h] and self.hostvars[h][var] == value for h in members):
                best, best_size = f"group_vars/{group}", len(members)
        self._scopes[key] = best
        return best

    def at(self, host: str, var: str, text: str):
        self.add(f"{self.scope(host, var)}: {text}")


def _hosts_with(hostvars: dict, var: str) -> Iterable[str]:
    return [h for h in sorted(hostvars) if var in hostvars[h] and hostvars[h][var] is not None]


# ------------------------------------------------------------------ checks
def _check_access(r: _Report):
    for host in sorted(r.hostvars):
        for var, why in (("baseline_admin_ssh_keys", "nobody could log in once sshd is key-only"),
                         ("baseline_controller_addresses", "SSH would be accepted from nowhere")):
            if var in r.hostvars[host] and r.hostvars[host][var] == []:
                r.at(host, var, f"{var} is empty; {why}")


def _check_names(r: _Report):
    for host in sorted(r.hostvars):
        if not DNS_LABEL_RE.match(host):
            r.add(f"{host}: inventory host name {host!r} is not a valid DNS label "
                  "(letters, digits and '-', 1-63 characters, no '-' at either end)")
    for host in _hosts_with(r.hostvars, "baseline_hostname"):
        name = r.hostvars[host]["baseline_hostname"]
        if not isinstance(name, str) or len(name) > 253 or not all(DNS_LABEL_RE.match(p) for p in name.split(".")):
            r.at(host, "baseline_hostname", f"baseline_hostname {name!r} is not a valid DNS name "
                 "(dot-separated labels of letters, digits and '-', no '-' at either end)")


def _check_sites(r: _Report) -> dict:
    """Site membership, subnets, overlaps; returns {site: network} of the valid subnets."""
    nets: dict = {}
    site_groups = sorted(g for g in r.groups if g.startswith("site_"))
    for host in sorted(r.hostvars):
        mine = [g for g in site_groups if host in r.groups[g]]
        if len(mine) != 1:
            r.add(f"{host}: must be in exactly one site_* group (is in {', '.join(mine) or 'none'})")
    for host in _hosts_with(r.hostvars, "sites"):
        sites = r.hostvars[host]["sites"]
        if not isinstance(sites, dict) or not sites:
            r.at(host, "sites", "sites must map each site name to {lan_subnet, gateway_host}")
            continue
        host_nets = {}
        for name in sorted(sites):
            site = sites[name]
            if not isinstance(site, dict):
                r.at(host, "sites", f"sites.{name} must be a mapping with lan_subnet and gateway_host")
                continue
            net = _net(site.get("lan_subnet"))
            if net is None:
                r.at(host, "sites", f"sites.{name}.lan_subnet {site.get('lan_subnet')!r} is not a network "
                     "address in CIDR form (e.g. 10.20.1.0/24, host bits zero)")
            else:
                host_nets[name] = net
            gw = site.get("gateway_host")
            if gw not in r.hostvars:
                r.at(host, "sites", f"sites.{name}.gateway_host {gw!r} is not an inventory host")
            elif gw not in r.groups.get("gateways", []):
                r.at(host, "sites", f"sites.{name}.gateway_host {gw} is not in group gateways")
        names = sorted(host_nets)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if host_nets[a].overlaps(host_nets[b]):
                    r.at(host, "sites", f"sites.{a}.lan_subnet {host_nets[a]} overlaps sites.{b}.lan_subnet "
                         f"{host_nets[b]}; the tunnel cannot route between them")
        for var, what in EXTRA_SUBNET_VARS.items():
            if var not in r.hostvars[host]:
                continue
            extra = _net(r.hostvars[host][var])
            if extra is None:
                r.at(host, var, f"{var} {r.hostvars[host][var]!r} is not a network address in CIDR form")
                continue
            for name in names:
                if extra.overlaps(host_nets[name]):
                    r.at(host, var, f"{var} {extra} ({what}) overlaps sites.{name}.lan_subnet {host_nets[name]}")
        if not nets:
            nets = host_nets
    return nets


def _check_site_of_host(r: _Report):
    for host in sorted(r.hostvars):
        hv = r.hostvars[host]
        site, sites = hv.get("site_name"), hv.get("sites")
        if not isinstance(sites, dict) or site is None:
            continue
        if site not in sites:
            r.at(host, "site_name", f"site_name {site!r} is not a site of sites ({', '.join(sorted(sites))})")
            continue
        net = _net((sites[site] or {}).get("lan_subnet") if isinstance(sites[site], dict) else None)
        ip = _addr(hv.get("lan_address"))
        if net is not None and ip is not None and ip not in net:
            r.add(f"{host}: lan_address {ip} is not in site {site}'s lan_subnet {net}")


def _check_addresses(r: _Report, nets: dict):
    seen: dict = {}
    for host in sorted(r.hostvars):
        hv = r.hostvars[host]
        mine: dict = {}
        for var in ADDRESS_VARS:
            if var not in hv or hv[var] in (None, ""):
                continue
            raw = str(hv[var]).strip()
            ip = _addr(raw)
            if ip is None and var != "ansible_host":
                r.add(f"{host}: {var} {raw!r} is not an IP address")
                continue
            key = str(ip) if ip is not None else raw.lower()
            if key in mine:
                # ansible_host may be the host's own LAN address (no management network).
                if not (var == "lan_address" and mine[key] == "ansible_host") and \
                        not (var == "wan_address" and mine[key] == "ansible_host"):
                    r.add(f"{host}: {var} {key} is also this host's {mine[key]}")
                continue
            mine[key] = var
            if key in seen:
                other_host, other_var = seen[key]
                r.add(f"{host}: {var} {key} is already {other_host}'s {other_var} (duplicate address)")
            else:
                seen[key] = (host, var)
    wan_nets = {}
    for host in _hosts_with(r.hostvars, "lab_wan_subnet"):
        if _net(r.hostvars[host]["lab_wan_subnet"]) is not None:
            wan_nets[host] = _net(r.hostvars[host]["lab_wan_subnet"])
    for host in _hosts_with(r.hostvars, "wan_address"):
        ip = _addr(r.hostvars[host]["wan_address"])
        if ip is None:
            continue
        inside = [name for name in sorted(nets) if ip in nets[name]]
        for name in inside:
            r.add(f"{host}: wan_address {ip} is inside site {name}'s LAN {nets[name]}; "
                  "the gateway's WAN address must be outside every site LAN")
        if not inside and host in wan_nets and ip not in wan_nets[host]:
            r.add(f"{host}: wan_address {ip} is outside the WAN lab_wan_subnet {wan_nets[host]}")


def _check_flows(r: _Report):
    for host in _hosts_with(r.hostvars, "dr_flows"):
        flows = r.hostvars[host]["dr_flows"]
        if not isinstance(flows, list):
            r.at(host, "dr_flows", "dr_flows must be a list of {name, src, dst, port, proto}")
            continue
        names = set()
        for i, flow in enumerate(flows):
            if not isinstance(flow, dict):
                r.at(host, "dr_flows", f"dr_flows[{i}] must be a mapping {{name, src, dst, port, proto}}")
                continue
            label = f"dr_flows[{i}] ({flow.get('name', '?')})"
            missing = [k for k in ("name", "src", "dst", "port", "proto") if k not in flow]
            if missing:
                r.at(host, "dr_flows", f"{label} lacks {', '.join(missing)}")
            if "name" in flow:
                if flow["name"] in names:
                    r.at(host, "dr_flows", f"{label} name {flow['name']!r} is used by another flow")
                names.add(flow["name"])
            for end in ("src", "dst"):
                if end not in flow:
                    continue
                if flow[end] not in r.hostvars:
                    r.at(host, "dr_flows", f"{label} {end} {flow[end]!r} is not an inventory host")
                elif not r.hostvars[flow[end]].get("lan_address"):
                    r.at(host, "dr_flows", f"{label} {end} {flow[end]} has no lan_address")
            if "port" in flow:
                port = flow["port"]
                if not _is_int(port) or not 1 <= int(port) <= 65535:
                    r.at(host, "dr_flows", f"{label} port {port!r} is outside 1-65535")
            if "proto" in flow and str(flow["proto"]).lower() not in ("tcp", "udp"):
                r.at(host, "dr_flows", f"{label} proto {flow['proto']!r} must be tcp or udp")


def _retention_errors(where: str, retention, allowed: Iterable[str] | None) -> list:
    if not isinstance(retention, dict) or not retention:
        return [f"{where} must give counts, each >= 1 (got {retention!r})"]
    out = []
    for key in sorted(retention):
        value = retention[key]
        if allowed is not None and key not in allowed:
            out.append(f"{where}.{key} is not a retention count ({', '.join(allowed)})")
        elif not _is_int(value):
            out.append(f"{where}.{key} {value!r} is not a whole number")
        elif int(value) <= 0:
            out.append(f"{where}.{key} is {int(value)}; every retention count must be >= 1 "
                       "(0 would keep nothing)")
    return out


def _replica_retention_errors(var: str, retention) -> list:
    """replica_files_retention / replica_repo_retention: {keep_all_days >= 1, counts of calendar
    periods >= 0 with one >= 1, yearly may be 'permanent'}; 'last' (counted in pulls) is refused."""
    keys = ", ".join(REPLICA_RETENTION_KEYS)
    if not isinstance(retention, dict) or not retention:
        return [f"{var} must give {keys} (keep_all_days >= 1, at least one period >= 1; a retention of 0 "
                f"keeps no history) (got {retention!r})"]
    out = []
    for key in sorted(retention, key=str):
        value = retention[key]
        if key == "last":
            out.append(f"{var}.last (a number of snapshots) is no longer supported: counted in pulls, a flood of "
                       f"fresh pulls pushes old history out; retention is by calendar time ({keys})")
        elif key not in REPLICA_RETENTION_KEYS:
            out.append(f"{var}.{key} is not a retention key ({keys})")
        elif key == "yearly" and value == "permanent":
            continue
        elif not _is_int(value):
            out.append(f"{var}.{key} {value!r} is not a whole number" + (" or 'permanent'" if key == "yearly" else ""))
        elif int(value) < 0:
            out.append(f"{var}.{key} is {int(value)}; a count of calendar periods must be >= 0")
    if out:
        return out
    if "vanished_keep_days" in retention and int(retention["vanished_keep_days"]) < 1:
        out.append(f"{var}.vanished_keep_days is {int(retention['vanished_keep_days'])}; give >= 1 days, or leave it "
                   "out to keep vanished restore points for ever")
    if "keep_all_days" not in retention:
        out.append(f"{var}.keep_all_days is missing (every snapshot younger than this many days is kept; >= 1)")
    elif int(retention["keep_all_days"]) < 1:
        out.append(f"{var}.keep_all_days is {int(retention['keep_all_days'])}; it must be >= 1 (a retention of 0 "
                   "would let a flood of pulls expire what was kept)")
    periods = [retention[k] for k in REPLICA_RETENTION_PERIODS if k in retention]
    if not any(v == "permanent" or int(v) > 0 for v in periods):
        out.append(f"{var} keeps no calendar period; give at least one of {', '.join(REPLICA_RETENTION_PERIODS)} "
                   ">= 1 (a retention of 0 keeps no history)")
    return out


def _check_protected_systems(r: _Report, schedules: list):
    for host in sorted(r.hostvars):
        systems = r.hostvars[host].get("backup_appliance_protected_systems")
        if systems is None:
            continue
        var = "backup_appliance_protected_systems"
        if not isinstance(systems, list):
            continue  # the argument spec reports the type
        if not systems:
            r.at(host, var, f"{var} is empty; backup.yml would remove every backup timer")
        names = set()
        for i, s in enumerate(systems):
            if not isinstance(s, dict):
                continue
            label = f"{var}[{i}] ({s.get('name', '?')})"
            if s.get("name") in names:
                r.at(host, var, f"{label} name is used by another protected system")
            names.add(s.get("name"))
            if "name" in s and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(s["name"])):
                r.at(host, var, f"{label} name must be lowercase letters, digits and '-'")
            if "host" in s and s["host"] not in r.hostvars:
                r.at(host, var, f"{label} host {s['host']!r} is not an inventory host")
            paths = s.get("paths")
            if isinstance(paths, list):
                if not paths:
                    r.at(host, var, f"{label} paths is empty")
                for j, p in enumerate(paths):
                    why = _bad_path(p)
                    if why:
                        r.at(host, var, f"{label} paths[{j}] {p!r} {why}")
            if "retention" in s:
                allowed = RETENTION_KEYS_FILES if s.get("type") == "files" else ("full", "diff")
                for msg in _retention_errors(f"{label} retention", s["retention"], allowed):
                    r.at(host, var, msg)
                if s.get("type") == "postgresql" and isinstance(s["retention"], dict) \
                        and "full" not in s["retention"]:
                    r.at(host, var, f"{label} retention.full is missing (postgresql needs a full count >= 1)")
            sched = s.get("schedule")
            if isinstance(sched, dict):
                need = "full" if s.get("type") == "postgresql" else "snapshot" if s.get("type") == "files" else None
                if need and need not in sched:
                    r.at(host, var, f"{label} schedule.{need} is missing")
                for job in sorted(sched):
                    schedules.append((r.scope(host, var), f"{label} schedule.{job}", sched[job]))


def _check_role_values(r: _Report, schedules: list):
    for host in sorted(r.hostvars):
        hv = r.hostvars[host]
        for var in RETENTION_VARS:
            if var in hv:
                for msg in _replica_retention_errors(var, hv[var]):
                    r.at(host, var, msg)
        for var in PATH_VARS:
            if var in hv and hv[var] not in (None, ""):
                why = _bad_path(hv[var])
                if why:
                    r.at(host, var, f"{var} {hv[var]!r} {why}")
        for var in SCHEDULE_VARS:
            if var in hv:
                schedules.append((r.scope(host, var), var, hv[var]))
        pools = hv.get("storage_pools")
        if isinstance(pools, list):
            for i, pool in enumerate(pools):
                if not isinstance(pool, dict) or not isinstance(pool.get("volumes"), list):
                    continue
                for j, vol in enumerate(pool["volumes"]):
                    if isinstance(vol, dict) and vol.get("mount_point") not in (None, ""):
                        why = _bad_path(vol["mount_point"])
                        if why:
                            r.at(host, "storage_pools", f"storage_pools[{i}] ({pool.get('name', '?')}) "
                                 f"volumes[{j}] ({vol.get('name', '?')}) mount_point {vol['mount_point']!r} {why}")


def _check_gateways(r: _Report):
    gateways = set(r.groups.get("gateways", []))
    for host in sorted(r.hostvars):
        hv = r.hostvars[host]
        if host in gateways or "gateway_platform" in hv:
            platform = hv.get("gateway_platform", "linux")
            if platform not in FIREWALL_PLATFORMS:
                r.at(host, "gateway_platform", f"gateway_platform {platform!r} is not supported "
                     f"({', '.join(FIREWALL_PLATFORMS)})")
        for var in WAN_RATE_VARS:
            if var not in hv or hv[var] in (None, "") and var == "site_gateway_wan_rate":
                continue
            rate = hv[var]
            m = RATE_RE.match(str(rate))
            if m is None:
                r.at(host, var, f"{var} {rate!r} is not a tc rate (a number and a unit, e.g. 100mbit)")
            elif float(m.group(1)) == 0:
                r.at(host, var, f"{var} {rate!r} is zero; use \"\" for no shaping")
        if host in gateways or any(v in hv for v in SECRET_VARS):
            auth = hv.get("site_gateway_auth", hv.get("gateway_ipsec_auth", "cert"))
            for var in SECRET_VARS:
                if var not in hv:
                    continue
                psk = hv[var]
                if (auth == "psk" or psk) and len(str(psk or "")) < PSK_MIN_LENGTH:
                    r.at(host, var, f"{var} (vault secret) is shorter than {PSK_MIN_LENGTH} characters")
                break  # site_gateway_psk is gateway_ipsec_psk by default: report one of them


def _check_schedules(r: _Report, schedules: list, calendar_check: CalendarCheck | None):
    if not schedules:
        return
    bad_type = [(s, label, v) for s, label, v in schedules if not isinstance(v, str) or not v.strip()]
    for scope, label, value in bad_type:
        r.add(f"{scope}: {label} {value!r} is not a systemd calendar expression")
    exprs = [v for _, _, v in schedules if isinstance(v, str) and v.strip()]
    try:
        ok = (calendar_check or systemd_calendar_check)(exprs)
    except FileNotFoundError:
        r.add("controller: systemd-analyze is not installed; it is needed to check the schedules "
              "(apt-get install systemd), no schedule was checked")
        return
    for scope, label, value in schedules:
        if isinstance(value, str) and value.strip() and not ok.get(value, False):
            r.add(f"{scope}: {label} {value!r} is not a valid systemd calendar expression "
                  "(systemd-analyze calendar refuses it)")


def inventory_errors(hostvars: dict, groups: dict, calendar_check: CalendarCheck | None = None,
                     host_errors: dict | None = None) -> list:
    """Every cross-host problem of the inventory, one line each (never a secret value).

    hostvars: {host: {variable: value}} for every inventory host, inventory values merged
    over the defaults of the roles that apply to that host. groups: {group: [hosts]}.
    calendar_check: {expression: ok} for a list of OnCalendar expressions (default:
    systemd-analyze calendar on this machine). host_errors: {host: [[variable, text]]},
    problems found per host (argument specs), reported first under the same scope rule.
    """
    r = _Report(hostvars or {}, groups or {})
    for host in sorted(host_errors or {}):
        for var, text in host_errors[host] or []:
            if var and host in r.hostvars and var in r.hostvars[host]:
                r.at(host, var, text)
            else:
                r.add(f"{host}: {text}")
    schedules: list = []
    _check_names(r)
    _check_access(r)
    nets = _check_sites(r)
    _check_site_of_host(r)
    _check_addresses(r, nets)
    _check_flows(r)
    _check_protected_systems(r, schedules)
    _check_role_values(r, schedules)
    _check_gateways(r)
    _check_schedules(r, schedules, calendar_check)
    return r.lines


# ------------------------------------------------------------------ strict argument types
_TYPE_NAMES = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "a list", dict: "a mapping"}


def _type_name(value) -> str:
    for t, name in _TYPE_NAMES.items():
        if isinstance(value, t):
            return name
    return type(value).__name__


def _strict(spec: dict, value, where: str, out: list):
    kind = spec.get("type", "str")
    secret = spec.get("no_log", False)
    shown = "" if secret or isinstance(value, (list, dict)) else f" ({value!r})"
    if kind in ("str", "path") and value is not None and not isinstance(value, str):
        hint = ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            hint = " (quote it, e.g. \"0750\": unquoted 0750 is the number 488)" if where.endswith("mode") \
                else " (quote it)"
        out.append(f"{where} is {_type_name(value)}{shown}, the role expects a string{hint}")
    elif kind == "list" and isinstance(value, str):
        out.append(f"{where} is a string{shown}, the role expects a list (YAML '- item' lines or [a, b])")
    elif kind == "dict" and isinstance(value, str):
        out.append(f"{where} is a string{shown}, the role expects a mapping")
    if kind == "list" and isinstance(value, list):
        elements = spec.get("elements")
        for i, item in enumerate(value):
            if elements in ("str", "path", "dict", "list"):
                _strict({"type": elements, "no_log": secret, "options": spec.get("options")}, item,
                        f"{where}[{i}]", out)
    if kind == "dict" and isinstance(value, dict) and spec.get("options"):
        for key, sub in spec["options"].items():
            if key in value:
                _strict(sub or {}, value[key], f"{where}.{key}", out)


def spec_type_errors(values: dict, options: dict) -> list:
    """[[variable, text]]: values the argument spec would accept only by converting them."""
    out: list = []
    for name in sorted(values or {}):
        if name in (options or {}):
            found: list = []
            _strict(options[name] or {}, values[name], name, found)
            out.extend([name, line] for line in found)
    return out


def argument_spec_messages(role: str, errors: Iterable[str]) -> list:
    """[[variable or None, text]]: validate_argument_spec's errors as single lines."""
    out = []
    for err in errors or []:
        text = re.sub(r"\s+", " ", str(err))
        text = re.sub(r":? ?<class '[^']*'>", "", text).strip()
        m = re.search(r"(?:argument|option|parameter) '([^']+)'", text)
        out.append([m.group(1) if m else None, f"role {role} argument spec: {text}"])
    return out
