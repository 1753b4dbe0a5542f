"""tests/lab/conftest.py decides once whether the lab is up: skip (developer) or fail (ARCHIVE_DR_LAB_REQUIRED=1).

Run with pytester against two stand-in lab tests; the lab's state is faked, no container is touched.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.lab import labkit

pytest_plugins = ["pytester"]

LAB_CONFTEST = Path(__file__).resolve().parents[1] / "lab" / "conftest.py"

LAB_TESTS = """
import pytest

RAN = []

@pytest.fixture(scope="module")
def converged():
    RAN.append("converge")          # stands for a module fixture that runs playbooks
    return True

def test_first(converged):
    pass

def test_second():
    pass
"""


@pytest.fixture
def lab_suite(pytester, monkeypatch):
    # the conftest sets these in os.environ: let monkeypatch restore them afterwards
    monkeypatch.setenv("ANSIBLE_FORCE_COLOR", "0")
    monkeypatch.setenv("ANSIBLE_NOCOLOR", "1")
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(LAB_CONFTEST.read_text())
    pytester.makepyfile(test_lab_standin=LAB_TESTS)
    return pytester


def test_lab_down_skips_every_lab_test_with_the_reason(lab_suite, monkeypatch):
    monkeypatch.delenv("ARCHIVE_DR_LAB_REQUIRED", raising=False)
    monkeypatch.setattr(labkit, "lab_state", lambda: (False, "not running: geo-archive"))
    result = lab_suite.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*the lab is not up (not running: geo-archive)*"])


def test_lab_down_with_lab_required_fails_the_first_test_and_stops(lab_suite, monkeypatch):
    monkeypatch.setenv("ARCHIVE_DR_LAB_REQUIRED", "1")
    monkeypatch.setattr(labkit, "lab_state", lambda: (False, "not running: geo-archive"))
    result = lab_suite.runpytest()
    result.assert_outcomes(errors=1)             # the first test, at setup; the session stops there
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ARCHIVE_DR_LAB_REQUIRED=1 but the lab is not up (not running: geo-archive)*"])
    result.stdout.no_fnmatch_line("*test_second*PASSED*")


def test_lab_up_runs_the_tests_marked_lab(lab_suite, monkeypatch):
    monkeypatch.setenv("ARCHIVE_DR_LAB_REQUIRED", "1")
    monkeypatch.setattr(labkit, "lab_state", lambda: (True, ""))
    lab_suite.runpytest().assert_outcomes(passed=2)
    lab_suite.runpytest("-m", "not lab").assert_outcomes(deselected=2)


def test_lab_state_names_the_hosts_that_are_down(monkeypatch):
    class Proc:
        def __init__(self, out):
            self.returncode, self.stdout = 0, out

    monkeypatch.setattr(labkit.subprocess, "run",
                        lambda argv, **kw: Proc("false\n" if argv[-1] in ("geo-fw", "miyun-store") else "true\n"))
    assert labkit.lab_state() == (False, "not running: geo-fw, miyun-store")
    monkeypatch.setattr(labkit.subprocess, "run", lambda argv, **kw: Proc("true\n"))
    assert labkit.lab_state() == (True, "")

    def missing(argv, **kw):
        raise FileNotFoundError(argv[0])
    monkeypatch.setattr(labkit.subprocess, "run", missing)
    assert labkit.lab_state() == (False, "podman is not installed")
