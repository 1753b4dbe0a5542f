"""Unit tests for module_utils/inventory_checks.py: operators' mistakes, each refused in one exact line."""
from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path

import pytest

from archive_dr.paths import ROOT  # noqa: E402  (the one project root)
sys.path.insert(0, str(ROOT / "module_utils"))

import inventory_checks as ic  # noqa: E402

GROUPS = {
    "all": ["geo-archive", "geo-backup", "geo-fw", "miyun-store", "miyun-fw"],
    "ungrouped": [],
    "site_geo": ["geo-archive", "geo-backup", "geo-fw"],
    "site_miyun": ["miyun-store", "miyun-fw"],
    "archive_hosts": ["geo-archive"],
    "backup_appliances": ["geo-backup"],
    "storage_servers": ["geo-backup", "miyun-store"],
    "gateways": ["geo-fw", "miyun-fw"],
}
SITES = {"geo": {"lan_subnet": "10.20.1.0/24", "gateway_host": "geo-fw"},
         "miyun": {"lan_subnet": "10.30.1.0/24", "gateway_host": "miyun-fw"}}
FLOWS = [{"name": "pg-stream", "src": "miyun-store", "dst": "geo-archive", "port": 5432, "proto": "tcp"},
         {"name": "archive-pull", "src": "miyun-store", "dst": "geo-archive", "port": 22, "proto": "tcp"},
         {"name": "backup-pull", "src": "miyun-store", "dst": "geo-backup", "port": 22, "proto": "tcp"},
         {"name": "depot", "src": "miyun-store", "dst": "geo-backup", "port": 8080, "proto": "tcp"}]
PROTECTED = [
    {"name": "archive-db", "type": "postgresql", "host": "geo-archive", "paths": ["/var/lib/postgresql/15/main"],
     "schedule": {"full": "Sun *-*-* 01:00", "diff": "Mon..Sat *-*-* 01:00", "incr": "*-*-* 08..20:00",
                  "verify": "Sat *-*-* 04:00"},
     "retention": {"full": 2, "diff": 7}},
    {"name": "archive-files", "type": "files", "host": "geo-archive", "paths": ["/srv/archive"],
     "schedule": {"snapshot": "*-*-* 02,13:00", "check": "*-*-* 05:00"},
     "retention": {"last": 10, "daily": 14, "weekly": 8, "monthly": 12, "yearly": 10}},
]
PSK = "a-vault-generated-psk-of-40-characters-x"


def common(site, host_no):
    return {"ansible_host": f"192.168.0.{host_no}", "site_name": site, "sites": copy.deepcopy(SITES),
            "dr_flows": copy.deepcopy(FLOWS), "lab_wan_subnet": "172.16.3.0/24", "lab_mgmt_subnet": "192.168.0.0/24",
            "lab_wan_rate": "100mbit", "baseline_hostname": None, "baseline_admin_ssh_keys": ["ssh-ed25519 AAAA admin"],
            "baseline_controller_addresses": ["192.168.0.1"]}


def inventory():
    """The variables validate.yml hands over for a correct two-site inventory (role defaults merged)."""
    hv = {
        "geo-archive": {**common("geo", 11), "lan_address": "10.20.1.11", "archive_system_file_store": "/srv/archive"},
        "geo-backup": {**common("geo", 12), "lan_address": "10.20.1.12",
                       "backup_appliance_protected_systems": copy.deepcopy(PROTECTED),
                       "backup_appliance_deadman_schedule": "*:0/15",
                       "backup_appliance_pgbackrest_repo_path": "/srv/backup/pgbackrest",
                       "backup_appliance_restic_repo_root": "/srv/backup/restic",
                       "backup_appliance_staging_root": "/srv/backup/staging",
                       "storage_pools": [{"name": "backup", "disks": ["/dev/disk/by-id/wwn-1"],
                                          "volumes": [{"name": "backup", "mount_point": "/srv/backup"},
                                                      {"name": "restore", "mount_point": "/srv/restore"}]}]},
        "geo-fw": {**common("geo", 13), "lan_address": "10.20.1.1", "wan_address": "172.16.3.1",
                   "gateway_platform": "linux", "site_gateway_wan_rate": "100mbit", "site_gateway_auth": "cert",
                   "site_gateway_psk": PSK, "gateway_ipsec_psk": PSK},
        "miyun-store": {**common("miyun", 21), "lan_address": "10.30.1.21",
                        "replica_files_retention": {"keep_all_days": 2, "hourly": 48, "daily": 31, "weekly": 8,
                                                    "monthly": 12, "yearly": "permanent"},
                        "replica_repo_retention": {"keep_all_days": 1, "daily": 14, "weekly": 8, "monthly": 12,
                                                   "yearly": 10},
                        "replica_data_root": "/srv/dr", "replica_files_path": "/srv/dr/files",
                        "replica_repos_path": "/srv/dr/repos", "replica_restore_root": "/srv/dr/restore",
                        "replica_repo_pull_schedule": "*:0/15", "replica_deadman_schedule": "*:0/5",
                        "storage_pools": [{"name": "dr", "disks": ["/dev/disk/by-id/wwn-2", "/dev/disk/by-id/wwn-3"],
                                           "volumes": [{"name": "dr", "mount_point": "/srv/dr"}]}]},
        "miyun-fw": {**common("miyun", 23), "lan_address": "10.30.1.1", "wan_address": "172.16.3.2",
                     "gateway_platform": "linux", "site_gateway_wan_rate": "100mbit", "site_gateway_auth": "cert",
                     "site_gateway_psk": PSK, "gateway_ipsec_psk": PSK},
    }
    for host, name in zip(hv, hv):
        hv[host]["baseline_hostname"] = name
    return hv


def on_all(var, value):
    """A group_vars/all mistake: the same value on every host."""
    def change(hv, groups):
        for host in hv:
            hv[host][var] = copy.deepcopy(value)
    return change


def on_group(group, var, value):
    def change(hv, groups):
        for host in groups[group]:
            hv[host][var] = copy.deepcopy(value)
    return change


def on_host(host, var, value):
    def change(hv, groups):
        hv[host][var] = copy.deepcopy(value)
    return change


def edit(fn):
    """Change the inventory in place with fn(hv, groups)."""
    return fn


def sites_with(**over):
    s = copy.deepcopy(SITES)
    for key, value in over.items():
        site, field = key.split("__")
        s[site][field] = value
    return s


def flows_with(index, **over):
    f = copy.deepcopy(FLOWS)
    f[index].update(over)
    return f


def protected_with(index, **over):
    p = copy.deepcopy(PROTECTED)
    p[index].update(over)
    return p


def rename_host(old, new):
    def change(hv, groups):
        hv[new] = hv.pop(old)
        for values in hv.values():
            for flow in values["dr_flows"]:
                flow.update({end: new for end in ("src", "dst") if flow[end] == old})
            for system in values.get(PA, []):
                system.update({"host": new} if system["host"] == old else {})
        for members in groups.values():
            if old in members:
                members[members.index(old)] = new
    return change


PA = "backup_appliance_protected_systems"
MISTAKES = [
    # ---------------------------------------------------------------- addresses
    ("lan address copied from the neighbour", on_host("geo-backup", "lan_address", "10.20.1.11"),
     "geo-backup: lan_address 10.20.1.11 is already geo-archive's lan_address (duplicate address)"),
    ("management address copied", on_host("miyun-store", "ansible_host", "192.168.0.11"),
     "miyun-store: ansible_host 192.168.0.11 is already geo-archive's ansible_host (duplicate address)"),
    ("both gateways with one WAN address", on_host("miyun-fw", "wan_address", "172.16.3.1"),
     "miyun-fw: wan_address 172.16.3.1 is already geo-fw's wan_address (duplicate address)"),
    ("gateway WAN address is another host's LAN address", on_host("miyun-fw", "wan_address", "10.20.1.12"),
     ["miyun-fw: wan_address 10.20.1.12 is already geo-backup's lan_address (duplicate address)",
      "miyun-fw: wan_address 10.20.1.12 is inside site geo's LAN 10.20.1.0/24; "
      "the gateway's WAN address must be outside every site LAN"]),
    ("lan address typo out of range", on_host("geo-archive", "lan_address", "10.20.1.311"),
     "geo-archive: lan_address '10.20.1.311' is not an IP address"),
    ("lan address with a prefix length", on_host("geo-archive", "lan_address", "10.20.1.11/24"),
     "geo-archive: lan_address '10.20.1.11/24' is not an IP address"),
    ("host in the other site's LAN", on_host("miyun-store", "lan_address", "10.20.1.21"),
     "miyun-store: lan_address 10.20.1.21 is not in site miyun's lan_subnet 10.30.1.0/24"),
    ("same address as LAN and WAN on one gateway", on_host("geo-fw", "wan_address", "10.20.1.1"),
     ["geo-fw: wan_address 10.20.1.1 is also this host's lan_address",
      "geo-fw: wan_address 10.20.1.1 is inside site geo's LAN 10.20.1.0/24; "
      "the gateway's WAN address must be outside every site LAN"]),
    # ---------------------------------------------------------------- subnets
    ("both sites in one LAN", on_all("sites", sites_with(miyun__lan_subnet="10.20.1.0/24")),
     ["group_vars/all: sites.geo.lan_subnet 10.20.1.0/24 overlaps sites.miyun.lan_subnet 10.20.1.0/24; "
      "the tunnel cannot route between them",
      "miyun-fw: lan_address 10.30.1.1 is not in site miyun's lan_subnet 10.20.1.0/24",
      "miyun-store: lan_address 10.30.1.21 is not in site miyun's lan_subnet 10.20.1.0/24"]),
    ("a /16 that swallows the other site", on_all("sites", sites_with(geo__lan_subnet="10.0.0.0/8")),
     "group_vars/all: sites.geo.lan_subnet 10.0.0.0/8 overlaps sites.miyun.lan_subnet 10.30.1.0/24; "
     "the tunnel cannot route between them"),
    ("subnet written with a host address", on_all("sites", sites_with(geo__lan_subnet="10.20.1.1/24")),
     "group_vars/all: sites.geo.lan_subnet '10.20.1.1/24' is not a network address in CIDR form "
     "(e.g. 10.20.1.0/24, host bits zero)"),
    ("subnet without a prefix length", on_all("sites", sites_with(miyun__lan_subnet="10.30.1.0/")),
     "group_vars/all: sites.miyun.lan_subnet '10.30.1.0/' is not a network address in CIDR form "
     "(e.g. 10.20.1.0/24, host bits zero)"),
    ("WAN range overlapping a site LAN", on_all("lab_wan_subnet", "10.30.0.0/16"),
     ["group_vars/all: lab_wan_subnet 10.30.0.0/16 (the WAN) overlaps sites.miyun.lan_subnet 10.30.1.0/24",
      "geo-fw: wan_address 172.16.3.1 is outside the WAN lab_wan_subnet 10.30.0.0/16",
      "miyun-fw: wan_address 172.16.3.2 is outside the WAN lab_wan_subnet 10.30.0.0/16"]),
    ("management range overlapping a site LAN", on_all("lab_mgmt_subnet", "10.20.0.0/16"),
     "group_vars/all: lab_mgmt_subnet 10.20.0.0/16 (the management network) overlaps sites.geo.lan_subnet 10.20.1.0/24"),
    ("gateway WAN address inside a LAN", on_host("geo-fw", "wan_address", "10.30.1.254"),
     "geo-fw: wan_address 10.30.1.254 is inside site miyun's LAN 10.30.1.0/24; "
     "the gateway's WAN address must be outside every site LAN"),
    ("gateway WAN address outside the WAN", on_host("miyun-fw", "wan_address", "172.16.4.2"),
     "miyun-fw: wan_address 172.16.4.2 is outside the WAN lab_wan_subnet 172.16.3.0/24"),
    ("site gateway that is not a gateway", on_all("sites", sites_with(miyun__gateway_host="miyun-store")),
     "group_vars/all: sites.miyun.gateway_host miyun-store is not in group gateways"),
    ("site gateway misspelt", on_all("sites", sites_with(geo__gateway_host="geo_fw")),
     "group_vars/all: sites.geo.gateway_host 'geo_fw' is not an inventory host"),
    ("site_name that is no site", on_group("site_miyun", "site_name", "beijing"),
     "group_vars/site_miyun: site_name 'beijing' is not a site of sites (geo, miyun)"),
    # ---------------------------------------------------------------- flows
    ("flow to a misspelt host", on_all("dr_flows", flows_with(2, dst="geo-bakup")),
     "group_vars/all: dr_flows[2] (backup-pull) dst 'geo-bakup' is not an inventory host"),
    ("flow from a host that does not exist", on_all("dr_flows", flows_with(0, src="miyun-db")),
     "group_vars/all: dr_flows[0] (pg-stream) src 'miyun-db' is not an inventory host"),
    ("flow port out of range", on_all("dr_flows", flows_with(3, port=80800)),
     "group_vars/all: dr_flows[3] (depot) port 80800 is outside 1-65535"),
    ("flow port 0", on_all("dr_flows", flows_with(1, port=0)),
     "group_vars/all: dr_flows[1] (archive-pull) port 0 is outside 1-65535"),
    ("flow port given as a service name", on_all("dr_flows", flows_with(1, port="ssh")),
     "group_vars/all: dr_flows[1] (archive-pull) port 'ssh' is outside 1-65535"),
    ("flow with a port range", on_all("dr_flows", flows_with(0, port="5432-5433")),
     "group_vars/all: dr_flows[0] (pg-stream) port '5432-5433' is outside 1-65535"),
    ("flow protocol icmp", on_all("dr_flows", flows_with(0, proto="icmp")),
     "group_vars/all: dr_flows[0] (pg-stream) proto 'icmp' must be tcp or udp"),
    ("two flows with one name", on_all("dr_flows", flows_with(3, name="backup-pull")),
     "group_vars/all: dr_flows[3] (backup-pull) name 'backup-pull' is used by another flow"),
    ("flow without a destination", on_all("dr_flows", [{k: v for k, v in FLOWS[0].items() if k != "dst"}]),
     "group_vars/all: dr_flows[0] (pg-stream) lacks dst"),
    # ---------------------------------------------------------------- retention
    ("database full retention 0", on_group("backup_appliances", PA, protected_with(0, retention={"full": 0, "diff": 7})),
     f"geo-backup: {PA}[0] (archive-db) retention.full is 0; every retention count must be >= 1 (0 would keep nothing)"),
    ("file retention negative", on_group("backup_appliances", PA, protected_with(
        1, retention={"last": 10, "daily": -1})),
     f"geo-backup: {PA}[1] (archive-files) retention.daily is -1; every retention count must be >= 1 "
     "(0 would keep nothing)"),
    ("file retention with a unit", on_group("backup_appliances", PA, protected_with(1, retention={"daily": "14d"})),
     f"geo-backup: {PA}[1] (archive-files) retention.daily '14d' is not a whole number"),
    ("file retention key from pgBackRest", on_group("backup_appliances", PA, protected_with(1, retention={"full": 2})),
     f"geo-backup: {PA}[1] (archive-files) retention.full is not a retention count "
     "(last, hourly, daily, weekly, monthly, yearly)"),
    ("database retention without full", on_group("backup_appliances", PA, protected_with(0, retention={"diff": 7})),
     f"geo-backup: {PA}[0] (archive-db) retention.full is missing (postgresql needs a full count >= 1)"),
    ("replica snapshot retention still counted in pulls", on_host(
        "miyun-store", "replica_files_retention", {"last": 60, "hourly": 48, "daily": 31, "weekly": 8, "monthly": 12}),
     "miyun-store: replica_files_retention.last (a number of snapshots) is no longer supported: counted in pulls, "
     "a flood of fresh pulls pushes old history out; retention is by calendar time "
     "(keep_all_days, hourly, daily, weekly, monthly, yearly, vanished_keep_days)"),
    ("replica snapshot retention keeps no day", on_host("miyun-store", "replica_files_retention",
                                                        {"keep_all_days": 0, "daily": 31}),
     "miyun-store: replica_files_retention.keep_all_days is 0; it must be >= 1 (a retention of 0 would let a flood "
     "of pulls expire what was kept)"),
    ("replica snapshot retention without keep_all_days", on_host("miyun-store", "replica_files_retention",
                                                                 {"daily": 31, "yearly": 30}),
     "miyun-store: replica_files_retention.keep_all_days is missing (every snapshot younger than this many days "
     "is kept; >= 1)"),
    ("replica repository retention empty", on_host("miyun-store", "replica_repo_retention", {}),
     "miyun-store: replica_repo_retention must give keep_all_days, hourly, daily, weekly, monthly, yearly, vanished_keep_days "
     "(keep_all_days >= 1, at least one period >= 1; a retention of 0 keeps no history) (got {})"),
    ("replica repository retention with every period 0", on_host("miyun-store", "replica_repo_retention",
                                                                 {"keep_all_days": 1, "daily": 0, "yearly": "0"}),
     "miyun-store: replica_repo_retention keeps no calendar period; give at least one of hourly, daily, weekly, "
     "monthly, yearly >= 1 (a retention of 0 keeps no history)"),
    ("replica retention negative", on_host("miyun-store", "replica_repo_retention", {"keep_all_days": 1, "weekly": -8}),
     "miyun-store: replica_repo_retention.weekly is -8; a count of calendar periods must be >= 0"),
    ("replica retention permanent for a month", on_host("miyun-store", "replica_repo_retention",
                                                        {"keep_all_days": 1, "monthly": "permanent"}),
     "miyun-store: replica_repo_retention.monthly 'permanent' is not a whole number"),
    ("replica retention yearly misspelt", on_host("miyun-store", "replica_repo_retention",
                                                  {"keep_all_days": 1, "yearly": "forever"}),
     "miyun-store: replica_repo_retention.yearly 'forever' is not a whole number or 'permanent'"),
    ("replica retention in restic's words", on_host("miyun-store", "replica_repo_retention",
                                                    {"keep_all_days": 1, "keep-daily": 14}),
     "miyun-store: replica_repo_retention.keep-daily is not a retention key "
     "(keep_all_days, hourly, daily, weekly, monthly, yearly, vanished_keep_days)"),
    # ---------------------------------------------------------------- protected systems
    ("protected systems emptied", on_group("backup_appliances", PA, []),
     f"geo-backup: {PA} is empty; backup.yml would remove every backup timer"),
    ("protected system on a misspelt host", on_group("backup_appliances", PA, protected_with(0, host="geo-archve")),
     f"geo-backup: {PA}[0] (archive-db) host 'geo-archve' is not an inventory host"),
    ("two protected systems with one name", on_group("backup_appliances", PA, protected_with(1, name="archive-db")),
     f"geo-backup: {PA}[1] (archive-db) name is used by another protected system"),
    ("protected system name with an underscore", on_group("backup_appliances", PA, protected_with(1, name="archive_files")),
     f"geo-backup: {PA}[1] (archive_files) name must be lowercase letters, digits and '-'"),
    ("database without a full schedule", on_group("backup_appliances", PA, protected_with(0, schedule={"diff": "daily"})),
     f"geo-backup: {PA}[0] (archive-db) schedule.full is missing"),
    # ---------------------------------------------------------------- paths
    ("relative protected path", on_group("backup_appliances", PA, protected_with(1, paths=["srv/archive"])),
     f"geo-backup: {PA}[1] (archive-files) paths[0] 'srv/archive' is relative; give an absolute path"),
    ("protected path with ..", on_group("backup_appliances", PA, protected_with(1, paths=["/srv/archive/../etc"])),
     f"geo-backup: {PA}[1] (archive-files) paths[0] '/srv/archive/../etc' contains a '.' or '..' component; "
     "give the plain absolute path"),
    ("protected system with no paths", on_group("backup_appliances", PA, protected_with(1, paths=[])),
     f"geo-backup: {PA}[1] (archive-files) paths is empty"),
    ("relative mount point", edit(lambda hv, g: hv["geo-backup"]["storage_pools"][0]["volumes"][1].update(
        mount_point="srv/restore")),
     "geo-backup: storage_pools[0] (backup) volumes[1] (restore) mount_point 'srv/restore' is relative; "
     "give an absolute path"),
    ("mount point with ..", edit(lambda hv, g: hv["miyun-store"]["storage_pools"][0]["volumes"][0].update(
        mount_point="/srv/dr/../data")),
     "miyun-store: storage_pools[0] (dr) volumes[0] (dr) mount_point '/srv/dr/../data' contains a '.' or '..' "
     "component; give the plain absolute path"),
    ("relative replica path", on_host("miyun-store", "replica_files_path", "dr/files"),
     "miyun-store: replica_files_path 'dr/files' is relative; give an absolute path"),
    ("replica restore root with ..", on_host("miyun-store", "replica_restore_root", "/srv/dr/../restore"),
     "miyun-store: replica_restore_root '/srv/dr/../restore' contains a '.' or '..' component; "
     "give the plain absolute path"),
    ("relative repository path", on_host("geo-backup", "backup_appliance_pgbackrest_repo_path", "./pgbackrest"),
     "geo-backup: backup_appliance_pgbackrest_repo_path './pgbackrest' is relative; give an absolute path"),
    # ---------------------------------------------------------------- schedules
    ("cron syntax instead of OnCalendar", on_group("backup_appliances", PA, protected_with(
        0, schedule={"full": "0 1 * * 0", "verify": "Sat *-*-* 04:00"})),
     f"geo-backup: {PA}[0] (archive-db) schedule.full '0 1 * * 0' is not a valid systemd calendar expression "
     "(systemd-analyze calendar refuses it)"),
    ("hour 25", on_group("backup_appliances", PA, protected_with(1, schedule={"snapshot": "*-*-* 25:00"})),
     f"geo-backup: {PA}[1] (archive-files) schedule.snapshot '*-*-* 25:00' is not a valid systemd calendar "
     "expression (systemd-analyze calendar refuses it)"),
    ("misspelt weekday", on_group("backup_appliances", PA, protected_with(
        0, schedule={"full": "Sonday *-*-* 01:00"})),
     f"geo-backup: {PA}[0] (archive-db) schedule.full 'Sonday *-*-* 01:00' is not a valid systemd calendar "
     "expression (systemd-analyze calendar refuses it)"),
    ("repository pull every 15 minutes written as a time span", on_host("miyun-store", "replica_repo_pull_schedule", "15min"),
     "miyun-store: replica_repo_pull_schedule '15min' is not a valid systemd calendar expression "
     "(systemd-analyze calendar refuses it)"),
    ("dead-man schedule empty", on_host("geo-backup", "backup_appliance_deadman_schedule", ""),
     "geo-backup: backup_appliance_deadman_schedule '' is not a systemd calendar expression"),
    # ---------------------------------------------------------------- names
    ("host name with an underscore", rename_host("geo-archive", "geo_archive"),
     "geo_archive: inventory host name 'geo_archive' is not a valid DNS label "
     "(letters, digits and '-', 1-63 characters, no '-' at either end)"),
    ("host name ending in -", rename_host("miyun-store", "miyun-store-"),
     "miyun-store-: inventory host name 'miyun-store-' is not a valid DNS label "
     "(letters, digits and '-', 1-63 characters, no '-' at either end)"),
    ("hostname with a space", on_host("geo-backup", "baseline_hostname", "geo backup"),
     "geo-backup: baseline_hostname 'geo backup' is not a valid DNS name "
     "(dot-separated labels of letters, digits and '-', no '-' at either end)"),
    ("host in both sites", edit(lambda hv, g: g["site_miyun"].append("geo-fw")),
     "geo-fw: must be in exactly one site_* group (is in site_geo, site_miyun)"),
    ("host in no site", edit(lambda hv, g: g["site_geo"].remove("geo-backup")),
     "geo-backup: must be in exactly one site_* group (is in none)"),
    # ---------------------------------------------------------------- gateways
    ("unknown firewall platform", on_host("miyun-fw", "gateway_platform", "cisco_asa"),
     "miyun-fw: gateway_platform 'cisco_asa' is not supported (linux, huawei, hp_comware, hillstone_stoneos, juniper_junos)"),
    ("firewall platform as a vendor name", on_group("gateways", "gateway_platform", "Huawei USG"),
     "group_vars/gateways: gateway_platform 'Huawei USG' is not supported (linux, huawei, hp_comware, hillstone_stoneos, juniper_junos)"),
    ("WAN rate 0", on_group("gateways", "site_gateway_wan_rate", "0mbit"),
     "group_vars/gateways: site_gateway_wan_rate '0mbit' is zero; use \"\" for no shaping"),
    ("WAN rate in words", on_group("gateways", "site_gateway_wan_rate", "100 Mbps link"),
     "group_vars/gateways: site_gateway_wan_rate '100 Mbps link' is not a tc rate (a number and a unit, e.g. 100mbit)"),
    ("WAN rate without a unit", on_group("gateways", "site_gateway_wan_rate", "100"),
     "group_vars/gateways: site_gateway_wan_rate '100' is not a tc rate (a number and a unit, e.g. 100mbit)"),
    ("lab WAN rate in MB/s", on_all("lab_wan_rate", "12.5MB/s"),
     "group_vars/all: lab_wan_rate '12.5MB/s' is not a tc rate (a number and a unit, e.g. 100mbit)"),
    ("PSK too short", edit(lambda hv, g: [hv[h].update(site_gateway_auth="psk", site_gateway_psk="Secret123",
                                                       gateway_ipsec_psk="Secret123") for h in g["gateways"]]),
     "group_vars/gateways: site_gateway_psk (vault secret) is shorter than 20 characters"),
    ("PSK auth without a PSK", edit(lambda hv, g: [hv[h].update(site_gateway_auth="psk", site_gateway_psk="",
                                                                gateway_ipsec_psk="") for h in g["gateways"]]),
     "group_vars/gateways: site_gateway_psk (vault secret) is shorter than 20 characters"),
    # ---------------------------------------------------------------- access
    ("admin keys emptied", on_all("baseline_admin_ssh_keys", []),
     "group_vars/all: baseline_admin_ssh_keys is empty; nobody could log in once sshd is key-only"),
    ("no controller address", on_all("baseline_controller_addresses", []),
     "group_vars/all: baseline_controller_addresses is empty; SSH would be accepted from nowhere"),
]

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


@needs_systemd
def test_a_correct_inventory_passes():
    assert ic.inventory_errors(inventory(), copy.deepcopy(GROUPS)) == []


@needs_systemd
@pytest.mark.parametrize("change, expected", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_mistake_is_refused_in_one_line(change, expected):
    hv, groups = inventory(), copy.deepcopy(GROUPS)
    change(hv, groups)
    assert ic.inventory_errors(hv, groups) == (expected if isinstance(expected, list) else [expected])


def test_at_least_forty_mistakes():
    assert len(MISTAKES) >= 40
    assert len({m[0] for m in MISTAKES}) == len(MISTAKES)


@needs_systemd
def test_every_mistake_at_once():
    hv, groups = inventory(), copy.deepcopy(GROUPS)
    for name, change, _ in MISTAKES:
        if name in ("flow to a misspelt host", "database full retention 0", "unknown firewall platform"):
            change(hv, groups)
    errors = ic.inventory_errors(hv, groups)
    assert len(errors) == 3
    assert all("\n" not in e for e in errors)


def test_psk_value_is_never_printed():
    hv, groups = inventory(), copy.deepcopy(GROUPS)
    for host in groups["gateways"]:
        hv[host].update(site_gateway_auth="psk", site_gateway_psk="TopSecret-17chars", gateway_ipsec_psk="TopSecret-17chars")
    errors = ic.inventory_errors(hv, groups, calendar_check=lambda exprs: dict.fromkeys(exprs, True))
    assert errors and not any("TopSecret" in e for e in errors)


def test_missing_systemd_analyze_is_an_error_not_a_skip(monkeypatch):
    monkeypatch.setattr(ic.shutil, "which", lambda name: None)
    assert ic.inventory_errors(inventory(), copy.deepcopy(GROUPS)) == [
        "controller: systemd-analyze is not installed; it is needed to check the schedules "
        "(apt-get install systemd), no schedule was checked"]


def test_supported_platforms_match_the_vendor_module():
    import vendor_firewall as vf
    assert set(ic.FIREWALL_PLATFORMS) == set(vf.PLATFORMS_ALL)
    assert set(ic.FIREWALL_PLATFORMS) - {"linux"} == {p.name for p in (ROOT / "templates" / "firewall").iterdir()}


@pytest.mark.parametrize("values, expected", [
    ({"storage_smartd_devices": "/dev/sda"},
     ["storage_smartd_devices is a string ('/dev/sda'), the role expects a list (YAML '- item' lines or [a, b])"]),
    ({"baseline_journal_max_use": ["512M"]}, ["baseline_journal_max_use is a list, the role expects a string"]),
    ({"storage_pools": [{"name": "dr", "volumes": [{"name": "dr", "mode": 488}]}]},
     ["storage_pools[0].volumes[0].mode is a number (488), the role expects a string "
      "(quote it, e.g. \"0750\": unquoted 0750 is the number 488)"]),
    ({"site_gateway_psk": 12345678901234567890},
     ["site_gateway_psk is a number, the role expects a string (quote it)"]),
    ({"storage_pools": [], "baseline_ntp_servers": ["10.0.0.1"]}, []),
])
def test_spec_conversions_are_refused(values, expected):
    options = {
        "storage_smartd_devices": {"type": "list", "elements": "str"},
        "baseline_journal_max_use": {"type": "str"},
        "baseline_ntp_servers": {"type": "list", "elements": "str"},
        "site_gateway_psk": {"type": "str", "no_log": True},
        "storage_pools": {"type": "list", "elements": "dict", "options": {
            "name": {"type": "str"},
            "volumes": {"type": "list", "elements": "dict", "options": {"mode": {"type": "str"}}}}},
    }
    assert [text for _, text in ic.spec_type_errors(values, options)] == expected


def test_argument_spec_messages_are_one_line_without_class_names():
    err = ("argument 'storage_pools' is of type dict and we were unable to convert to list: "
           "<class 'ansible.module_utils._internal._datatag._AnsibleTaggedDict'> cannot be\n converted to a list")
    assert ic.argument_spec_messages("storage", [err]) == [
        ["storage_pools", "role storage argument spec: argument 'storage_pools' is of type dict and we were unable "
                          "to convert to list cannot be converted to a list"]]
