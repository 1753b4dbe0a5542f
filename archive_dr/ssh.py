"""The one way the controller runs a command on a host over SSH (lab, rebuild, drill, evidence, tests).

Options as ansible.cfg's ssh_connection: batch mode, no host key checks (rebuilt hosts get new keys and
the controller trusts the inventory's address, as Ansible does with host_key_checking = false).
"""
from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

# Variables an SshTarget is made from (archive_dr.inventory reads them, templated).
TARGET_VARS = ["ansible_host", "ansible_user", "ansible_port", "ansible_ssh_private_key_file"]


@dataclasses.dataclass(frozen=True)
class SshTarget:
    address: str
    user: str = "root"
    key: str | None = None
    port: int | None = None

    @classmethod
    def from_vars(cls, name: str, values: dict) -> "SshTarget":
        """From a host's inventory variables (TARGET_VARS); the host name when ansible_host is unset."""
        port = values.get("ansible_port")
        return cls(address=str(values.get("ansible_host") or name), user=str(values.get("ansible_user") or "root"),
                   key=str(values["ansible_ssh_private_key_file"]) if values.get("ansible_ssh_private_key_file")
                   else None, port=int(port) if port else None)


def ssh_argv(target: SshTarget, connect_timeout: int = 5, persist: Path | str | None = None) -> list[str]:
    """ssh's argv up to the destination; append the remote command.

    ``persist``: a ControlPath for a master connection kept for two minutes (a heartbeat's one
    connection instead of a handshake per second)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={connect_timeout}"]
    if persist:
        argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={persist}", "-o", "ControlPersist=120"]
    if target.key:
        argv += ["-i", target.key]
    if target.port:
        argv += ["-p", str(target.port)]
    return argv + [f"{target.user}@{target.address}"]


def ssh_run(target: SshTarget, command: str, timeout: float = 30, connect_timeout: int = 5) -> subprocess.CompletedProcess:
    """Run ``command`` on the target; a timeout is exit status 255 with "timeout" on stderr, never an exception."""
    argv = ssh_argv(target, connect_timeout) + [command]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 255, "", f"timeout after {timeout:.0f}s")
