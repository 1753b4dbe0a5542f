"""Lab probes for the site-to-site tunnel (used by tests/lab/test_tunnel*.py and bench/tunnel.py).

Everything runs through `podman exec` on the lab containers; nothing here changes a
host except `restart_and_time`, which restarts one gateway container.
"""
from __future__ import annotations

import json
import os
import subprocess
import time

from archive_dr import paths

ENV = dict(os.environ, CONTAINERS_CONF=str(paths.CONTAINERS_CONF))

GEO_ARCHIVE, GEO_BACKUP, MIYUN_STORE = "198.18.1.11", "198.18.1.12", "198.18.2.21"
GEO_FW_WAN, MIYUN_FW_WAN = "198.18.3.1", "198.18.3.2"


def podman(*args, timeout=60, check=False) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=check)


def lab_up() -> bool:
    try:
        return all(podman("container", "exists", c, timeout=20).returncode == 0
                   for c in ("geo-fw", "miyun-fw", "geo-archive", "geo-backup", "miyun-store"))
    except (OSError, subprocess.SubprocessError):
        return False


def sh(container: str, script: str, timeout=60) -> subprocess.CompletedProcess:
    return podman("exec", container, "bash", "-c", script, timeout=timeout)


def connects(src: str, addr: str, port: int, wait: float = 3.0) -> bool:
    """A TCP handshake from container src to addr:port completes within `wait` seconds."""
    r = sh(src, f"timeout {wait} bash -c 'exec 3<>/dev/tcp/{addr}/{port}'", timeout=wait + 30)
    return r.returncode == 0


def counter(gw: str, name: str) -> int:
    r = sh(gw, f"nft -j list counter inet site_gateway {name}")
    for item in json.loads(r.stdout)["nftables"]:
        if "counter" in item:
            return int(item["counter"]["packets"])
    raise AssertionError(f"no counter {name} on {gw}: {r.stderr}")


def tunnel_status(gw: str) -> dict:
    r = sh(gw, "/usr/local/sbin/archive-dr-tunnel status")
    return json.loads(r.stdout)


def wait_until(pred, timeout: float, step: float = 0.2) -> float | None:
    """Seconds until pred() is true, or None after timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def restart_and_time(gw: str, timeout: float = 120) -> dict:
    """Restart a gateway container; time until the declared flow connects again."""
    assert connects("miyun-store", GEO_ARCHIVE, 5432), "flow must work before the restart"
    t0 = time.monotonic()
    podman("restart", "-t", "10", gw, timeout=120, check=True)
    t_back = time.monotonic() - t0
    rec = wait_until(lambda: connects("miyun-store", GEO_ARCHIVE, 5432, wait=1.0), timeout, step=0.1)
    total = None if rec is None else t_back + rec
    return {"gateway": gw, "container_restart_s": round(t_back, 2),
            "traffic_after_container_up_s": None if rec is None else round(rec, 2),
            "traffic_after_restart_command_s": None if total is None else round(total, 2)}
