"""The HTML reports render in headless Chromium (Debian `chromium`) with nothing loaded from elsewhere.

For each kind of report (inspection, drill, evidence): --dump-dom must return a
DOM with the inline SVG charts, Chromium's log (--enable-logging=stderr --v=0)
must show no failed load, and a screenshot is written next to the page
(kept under reports/screenshots/ when ARCHIVE_DR_KEEP_SCREENSHOTS is set).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from archive_dr import evidence, report
from tests.unit.reportdata import DAY, NOW, drill_result, raw

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=1", "--window-size=1200,1800"]
FILE_LOAD = re.compile(r"FileURLLoader::Start: (\S+)")


def extra_loads(stderr, page_url):
    """Resources Chromium loaded besides the page itself (--v=1 logs every file:// load)."""
    return [m.group(1) for m in FILE_LOAD.finditer(stderr) if m.group(1) != page_url]


def chromium(args, profile, timeout=90):
    assert CHROMIUM, "chromium is not installed (scripts/install-deps.sh installs it)"
    p = subprocess.run([CHROMIUM, *FLAGS, "--user-data-dir=%s" % profile, *args], capture_output=True,
                       text=True, timeout=timeout)
    return p


def pages(tmp_path):
    rep = tmp_path / "reports"
    hist = tmp_path / "h.json"
    res = None
    for i in range(4):
        res = report.build_inspection(raw(NOW + i * DAY, (300 + 120 * i) << 20), hist, now=NOW + i * DAY)
    ins = report.write(res, rep)["html"]
    drl = report.write(drill_result(240, 2.0), rep)["html"]
    import datetime as dt
    day = dt.date.fromtimestamp(NOW)
    ev = evidence.write(evidence.build(rep, day, day + dt.timedelta(days=5),
                                       {"rto_seconds": 600, "rpo_seconds": 60, "backup_success_rate_pct": 98,
                                        "verification_coverage_pct": 100}), tmp_path / "ev")["html"]
    return {"inspection": (ins, 2), "drill": (drl, 2), "evidence": (ev, 2)}


@pytest.mark.parametrize("kind", ["inspection", "drill", "evidence"])
def test_report_renders_in_headless_chromium(tmp_path, kind):
    page, min_svgs = pages(tmp_path)[kind]
    url = Path(page).resolve().as_uri()
    dom = chromium(["--dump-dom", url], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") >= min_svgs
    assert "<h1>" in dom.stdout and "</html>" in dom.stdout
    assert FILE_LOAD.search(dom.stderr), "chromium did not log the page load: the check below would be vacuous"
    assert extra_loads(dom.stderr, url) == []
    shot = tmp_path / ("%s.png" % kind)
    sc = chromium(["--screenshot=%s" % shot, url], tmp_path / "profile-shot")
    assert sc.returncode == 0, sc.stderr[-2000:]
    assert shot.stat().st_size > 20000               # a rendered page, not a blank one
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert extra_loads(sc.stderr, url) == []
    if os.environ.get("ARCHIVE_DR_KEEP_SCREENSHOTS"):
        dest = Path(__file__).resolve().parents[2] / "reports" / "screenshots"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, dest / shot.name)


def test_a_missing_resource_would_be_detected(tmp_path):
    """The log check is not vacuous: a page that references an image shows the extra load."""
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><h1>x</h1><img src="missing.png"></body></html>')
    p = chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert extra_loads(p.stderr, page.as_uri()) == [(tmp_path / "missing.png").as_uri()]
