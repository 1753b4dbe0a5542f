"""`lab smoke`: what runs where (active archive-dr units per host) and which units failed."""
from __future__ import annotations

import re

from archive_dr.lab.containers import ssh
from archive_dr.lab.spec import LabSpec

SMOKE_UNITS = re.compile(r"^(postgresql@|pgbackrest|restic|archive-dr|strongswan|chrony|nftables|ssh\.|smartd|srv-)")

def smoke(spec: LabSpec) -> tuple[list[dict], bool]:
    """What runs where: active archive-dr units per host, failed units, LAN reachability."""
    rows, healthy = [], True
    for host in spec.hosts:
        proc = ssh(spec, host, "systemctl list-units --no-legend --plain --state=active "
                               "--type=service,timer,mount; echo ---; systemctl --failed --no-legend --plain")
        if proc.returncode != 0:
            rows.append({"host": host.name, "site": host.site, "running": "UNREACHABLE", "failed": "-"})
            healthy = False
            continue
        active, _, failed = proc.stdout.partition("---")
        units = sorted({line.split()[0] for line in active.splitlines()
                        if line.strip() and SMOKE_UNITS.match(line.split()[0])})
        failed_units = [line.split()[0] for line in failed.splitlines() if line.strip()]
        healthy &= not failed_units
        rows.append({"host": host.name, "site": host.site, "running": " ".join(units) or "-",
                     "failed": " ".join(failed_units) or "none"})
    return rows, healthy
