"""Hooks for every test directory.

No silent skips in CI: when the environment has CI=true, a skipped test is a failure
("skipped under CI: <reason>"), and so is a skipped module at collection. CI installs
every tool (scripts/install-deps.sh), generates the lab keys (make unit) and brings the
lab up (molecule/two-site), so a skip there means that something CI claims to test did
not run. The only exception is a skip whose reason starts with one of
CI_CANNOT_HAVE_PREFIXES: a condition CI cannot have by construction (for instance
hardware no CI machine has). Nothing uses it today; keep it that way where possible.

Self-contained on purpose (os and pytest only): tests/unit/test_ci_skips.py runs this
file as the conftest of a pytester session.
"""
from __future__ import annotations

import os

import pytest

# A skip reason starting with one of these is allowed under CI=true.
CI_CANNOT_HAVE_PREFIXES: tuple[str, ...] = ("CI cannot have: ",)


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _skip_reason(longrepr) -> str:
    # A skip's longrepr is (path, lineno, "Skipped: <reason>").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def _fail_if_skipped(report):
    if not (_under_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report.longrepr)
    if reason.startswith(CI_CANNOT_HAVE_PREFIXES):
        return
    report.outcome = "failed"
    report.longrepr = "skipped under CI: %s" % reason
    report.skipped_under_ci = True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_if_skipped(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _fail_if_skipped(report)
    return report


def pytest_report_teststatus(report, config):
    # A skip in setup (skipif marker, fixture) would otherwise show as an error: it is a failed test.
    if getattr(report, "skipped_under_ci", False) and report.when == "setup":
        return "failed", "F", "FAILED"
    return None
