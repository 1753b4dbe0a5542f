"""The two-site lab: five systemd containers, their networks and disks, on one machine.

Everything the lab builds is named from the lab inventory and labelled ``archive-dr.lab``, so
``down`` removes exactly what ``up`` made. One module per job: spec (the inventory read and
checked), machine (this machine's commands, apt sources, routes), images, networks, disks,
containers (hosts, cabling, SSH), state (what is recorded and reported), smoke, and lifecycle
(up, destroy, down).
"""
from archive_dr.errors import LabError
from archive_dr.lab.containers import ensure_ssh_key, ssh, ssh_target
from archive_dr.lab.images import build_images
from archive_dr.lab.lifecycle import destroy, down, up
from archive_dr.lab.machine import apt_mirror, check_ranges, write_apt_facts
from archive_dr.lab.smoke import smoke
from archive_dr.lab.spec import HostSpec, LabSpec, load_spec
from archive_dr.lab.state import STATE_FILE, format_table, recorded_inventory, status

__all__ = ["LabError", "HostSpec", "LabSpec", "load_spec", "up", "down", "destroy", "status", "format_table",
           "smoke", "ssh", "ssh_target", "ensure_ssh_key", "write_apt_facts", "build_images", "apt_mirror",
           "check_ranges", "recorded_inventory", "STATE_FILE"]
