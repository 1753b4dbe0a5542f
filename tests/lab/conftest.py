"""Fixtures for tests against the running two-site lab (archive-dr lab up).

Whether the lab is up is decided here, once per session, for every test under tests/lab
(no per-module skipif): when it is not,

- with ARCHIVE_DR_LAB_REQUIRED=1 (molecule/two-site/verify.yml sets it) the first lab
  test fails and the session stops: a lab run whose lab is missing has tested nothing;
- otherwise the lab tests are skipped with the reason (a developer running `pytest`
  from the repository root without a lab). Under CI=true a skip is a failure anyway
  (tests/conftest.py).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

# The logs the lab tests print carry no colour codes, whatever the caller set (molecule exports
# ANSIBLE_FORCE_COLOR=1 to everything it runs, pytest included).
# Set before the test modules and labkit are imported, so every ENV they build inherits it.
os.environ["ANSIBLE_FORCE_COLOR"] = "0"
os.environ["ANSIBLE_NOCOLOR"] = "1"

from tests.lab import labkit  # noqa: E402

LAB_REQUIRED = os.environ.get("ARCHIVE_DR_LAB_REQUIRED") == "1"


def pytest_itemcollected(item):
    if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
        item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session", autouse=True)
def lab_is_up(request):
    """Session-scoped and autouse: set up before any module fixture of a lab test (they converge the lab)."""
    up, why = labkit.lab_state()
    if up:
        return
    if LAB_REQUIRED:
        request.session.shouldfail = "the lab is not up (ARCHIVE_DR_LAB_REQUIRED=1)"
        pytest.fail("ARCHIVE_DR_LAB_REQUIRED=1 but the lab is not up (%s); bring it up with "
                    "`archive-dr lab up` and converge it (make lab)" % why, pytrace=False)
    pytest.skip("the lab is not up (%s): `make lab` first; ARCHIVE_DR_LAB_REQUIRED=1 makes this a failure" % why)


@pytest.fixture(scope="session")
def podman_exec():
    def _exec(host: str, command: str, timeout: int = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", "exec", host, "bash", "-c", command], env=labkit.ENV,
                              capture_output=True, text=True, timeout=timeout)
    return _exec


@pytest.fixture(scope="session")
def ansible():
    """Ansible on the lab inventory through the runner layer: ``ansible.playbook(name, *args)`` takes
    ansible-playbook-style arguments and returns (PlaybookResult, stats per host); ``ansible.module(hosts,
    module, args, become=False)`` returns the PlaybookResult whose ``task_result(module, host)`` is the answer."""
    from archive_dr import runner

    class Ansible:
        @staticmethod
        def playbook(name: str, *args: str, timeout: int = 1200):
            return labkit.play_recap(name, *args, timeout=timeout)

        @staticmethod
        def module(hosts: str, module: str, args: str | dict = "", become: bool = False, timeout: int = 300):
            return runner.run_module(module, args, hosts, labkit.INVENTORY, become=become, timeout=timeout)
    return Ansible()
