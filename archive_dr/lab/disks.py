"""The lab's disks: image files on loop devices, seen in the containers as /dev/disk/by-id/lab-<name>."""
from __future__ import annotations

from pathlib import Path

from archive_dr.errors import LabError
from archive_dr.lab.machine import run
from archive_dr.lab.spec import Disk, HostSpec, LabSpec


def disk_file(spec: LabSpec, host: HostSpec, disk: Disk) -> Path:
    return spec.state_dir / "disks" / f"{host.name}-{disk.name}.img"

def loop_for(path: Path) -> str | None:
    proc = run(["losetup", "-j", str(path), "-n", "-O", "NAME"], check=False)
    names = proc.stdout.split()
    return names[0] if names else None

def ensure_disks(spec: LabSpec, host: HostSpec, blank: bool = False) -> dict[str, str]:
    """Attach the host's disk images to loop devices; returns disk name -> /dev/loopN."""
    attached = {}
    for disk in host.disks:
        path = disk_file(spec, host, disk)
        path.parent.mkdir(parents=True, exist_ok=True)
        if blank:
            release_disk(path)
            path.unlink(missing_ok=True)
        if not path.exists():
            with path.open("wb") as handle:
                handle.truncate(disk.size)
        device = loop_for(path) or run(["losetup", "-f", "--show", str(path)]).stdout.strip()
        attached[disk.name] = device
    return attached

def release_disk(path: Path) -> None:
    while (device := loop_for(path)) is not None:
        run(["losetup", "-d", device], check=False)
        if loop_for(path) == device:
            raise LabError(f"cannot detach {device} ({path}); is it still mounted?")
