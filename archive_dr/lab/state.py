"""What the lab records (.lab/state.json: its inventory, images, hosts) and what it reports (lab status)."""
from __future__ import annotations

import json
from pathlib import Path

from archive_dr.lab.containers import container_state
from archive_dr.lab.disks import disk_file, loop_for
from archive_dr.lab.spec import LabSpec

STATE_FILE = "state.json"


def write_state(spec: LabSpec, tags: dict[str, str]) -> None:
    state = {"inventory": [str(source) for source in spec.inventory], "images": tags,
             "hosts": {h.name: {"mgmt": str(h.mgmt_address)} for h in spec.hosts}}
    (spec.state_dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def recorded_inventory(state_dir: Path) -> list[Path] | None:
    """The inventory `lab up` recorded (its ordered sources), or None when there is no lab."""
    try:
        recorded = json.loads((Path(state_dir) / STATE_FILE).read_text()).get("inventory")
    except (OSError, ValueError):
        return None
    if not recorded:
        return None
    return [Path(source) for source in ([recorded] if isinstance(recorded, str) else recorded)]


def status(spec: LabSpec) -> list[dict]:
    rows = []
    for host in spec.hosts:
        info = container_state(host.name)
        state = "absent" if info is None else info["State"]["Status"]
        disks = []
        for disk in host.disks:
            device = loop_for(disk_file(spec, host, disk))
            disks.append(f"{disk.name}={device or '-'}({disk.size // 2**20}M)")
        rows.append({"host": host.name, "site": host.site, "state": state,
                     "mgmt": str(host.mgmt_address),
                     "addresses": " ".join(f"{i.name}={i.address}" for i in host.interfaces),
                     "disks": " ".join(disks) or "-"})
    return rows

def format_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)
