"""tests/conftest.py: under CI=true a skipped test is a failure (no silent skips), run with pytester."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

SKIPPING = """
import pytest

@pytest.fixture
def needs_tool():
    pytest.skip("fixture: tool missing")

@pytest.mark.skipif(True, reason="marker: tool missing")
def test_skipif_marker():
    pass

@pytest.mark.skip(reason="plain skip marker")
def test_skip_marker():
    pass

def test_skip_in_body():
    pytest.skip("body: vault missing")

def test_skip_in_fixture(needs_tool):
    pass

@pytest.mark.skip(reason="CI cannot have: a tape drive")
def test_declared_exception():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_xfail():
    assert False

def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_suite=SKIPPING)
    return pytester


def test_under_ci_every_skip_is_a_failure_with_its_reason(suite, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest("-rA")
    result.assert_outcomes(passed=1, failed=4, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines_random([
        "FAILED test_suite.py::test_skipif_marker - skipped under CI: marker: tool missing",
        "FAILED test_suite.py::test_skip_marker - skipped under CI: plain skip marker",
        "FAILED test_suite.py::test_skip_in_body - skipped under CI: body: vault missing",
        "FAILED test_suite.py::test_skip_in_fixture - skipped under CI: fixture: tool missing",
        "SKIPPED [[]1[]] test_suite.py:*: CI cannot have: a tape drive",
    ])


def test_without_ci_skips_stay_skips(suite, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = suite.runpytest()
    result.assert_outcomes(passed=1, skipped=5, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


@pytest.mark.parametrize("value", ["false", "1", ""])
def test_only_ci_true_turns_skips_into_failures(suite, monkeypatch, value):
    monkeypatch.setenv("CI", value)
    suite.runpytest().assert_outcomes(passed=1, skipped=5, xfailed=1)


def test_under_ci_a_module_skipped_at_collection_is_an_error(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_module_skip="""
import pytest
pytest.skip("module: chromium missing", allow_module_level=True)

def test_never_runs():
    pass
""")
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*skipped under CI: module: chromium missing*"])
    monkeypatch.delenv("CI")
    pytester.runpytest().assert_outcomes(skipped=1)
