"""Fixtures for tests against the running two-site lab (archive-dr lab up)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = str(ROOT / "lab" / "containers.conf")
LAB_HOSTS = ["geo-archive", "geo-backup", "geo-fw", "miyun-store", "miyun-fw"]

# The lab tests read ansible-playbook's output (PLAY RECAP): no colour codes, whatever the
# caller set (molecule exports ANSIBLE_FORCE_COLOR=1 to everything it runs, pytest included).
# Set before the test modules are imported, so every ENV they build inherits it.
os.environ["ANSIBLE_FORCE_COLOR"] = "0"
os.environ["ANSIBLE_NOCOLOR"] = "1"


def lab_running() -> bool:
    env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF)
    for host in LAB_HOSTS:
        proc = subprocess.run(["podman", "container", "inspect", "-f", "{{.State.Running}}", host],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0 or proc.stdout.strip() != "true":
            return False
    return True


def pytest_collection_modifyitems(config, items):
    if lab_running():
        return
    skip = pytest.mark.skip(reason="the lab is not running (archive-dr lab up)")
    for item in items:
        if "lab" in item.keywords:
            item.add_marker(skip)


def pytest_itemcollected(item):
    if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
        item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def podman_exec():
    env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF)

    def _exec(host: str, command: str, timeout: int = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", "exec", host, "bash", "-c", command], env=env,
                              capture_output=True, text=True, timeout=timeout)
    return _exec


@pytest.fixture(scope="session")
def ansible():
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0",
               CONTAINERS_CONF=CONTAINERS_CONF)
    bindir = Path(os.sys.executable).parent

    def _run(*args: str, tool: str = "ansible-playbook", timeout: int = 1200) -> subprocess.CompletedProcess:
        return subprocess.run([str(bindir / tool), *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
    return _run
