"""What `archive-dr lab up` needs on this machine, checked before it creates anything.

One table, shared with tests/unit/test_dependencies.py, which checks that every entry names
the Debian package that really provides the command and that scripts/install-deps.sh
installs it.
"""
from __future__ import annotations

import dataclasses
import os
import shutil

# Where podman looks for its helper binaries (containers.conf helper_binaries_dir default).
PODMAN_HELPER_DIRS = "/usr/local/libexec/podman:/usr/local/lib/podman:/usr/libexec/podman:/usr/lib/podman"
SBIN_DIRS = "/usr/local/sbin:/usr/sbin:/sbin"


@dataclasses.dataclass(frozen=True)
class Prerequisite:
    package: str            # the Debian package that provides the command
    why: str = ""           # said only when our code does not run the command itself
    helper: bool = False    # a podman helper binary, found in PODMAN_HELPER_DIRS, not on PATH


# command -> what provides it. The order is the order of the error message.
PREREQUISITES: dict[str, Prerequisite] = {
    "podman": Prerequisite("podman"),
    "runc": Prerequisite("runc", "podman runs the lab containers with it (lab/containers.conf)"),
    "netavark": Prerequisite("netavark", "podman's network backend", helper=True),
    "iptables": Prerequisite("iptables", "netavark needs it"),
    "debootstrap": Prerequisite("debootstrap"),
    "ip": Prerequisite("iproute2"),
    "tc": Prerequisite("iproute2"),
    "bridge": Prerequisite("iproute2"),
    "nft": Prerequisite("nftables"),
    "losetup": Prerequisite("mount"),
    "nsenter": Prerequisite("util-linux"),
    "ssh": Prerequisite("openssh-client"),
    "ssh-keygen": Prerequisite("openssh-client"),
}

# What `archive-dr lab images` (build_images) needs; `lab up` needs all of PREREQUISITES.
IMAGES = ("podman", "runc", "netavark", "iptables", "debootstrap")


def locate(command: str) -> str | None:
    """The path of a prerequisite on this machine, or None."""
    entry = PREREQUISITES.get(command)
    if entry is not None and entry.helper:
        return shutil.which(command, path=PODMAN_HELPER_DIRS)
    path = os.environ.get("PATH", os.defpath)
    return shutil.which(command, path=f"{path}{os.pathsep}{SBIN_DIRS}")


def missing(commands=None) -> list[str]:
    """The prerequisites (all of PREREQUISITES unless given) that this machine lacks, in table order."""
    wanted = set(PREREQUISITES if commands is None else commands)
    return [name for name in PREREQUISITES if name in wanted and locate(name) is None]


def message(names: list[str]) -> str:
    parts = []
    for name in names:
        entry = PREREQUISITES[name]
        parts.append(f"{name} (package {entry.package}{', ' + entry.why if entry.why else ''})")
    return f"missing prerequisites: {', '.join(parts)} — run scripts/install-deps.sh"


def require(commands=None, error: type[Exception] = RuntimeError) -> None:
    """Raise ``error`` with one line naming every missing prerequisite."""
    names = missing(commands)
    if names:
        raise error(message(names))
