"""archive_dr/report.py and archive_dr/evidence.py: results, history, forecast, Markdown/HTML (no lab)."""
from __future__ import annotations

import json
import xml.dom.minidom

from archive_dr import evidence, report
from tests.unit.reportdata import DAY, NOW, drill_result, healthy, raw


def test_inspection_history_forecast_and_unreachable(tmp_path):
    hist = tmp_path / "history" / "capacity.json"
    res = None
    for i in range(5):                                     # 100 MiB/day on a 2 GiB volume
        res = report.build_inspection(raw(NOW + i * DAY, (200 + 100 * i) << 20), hist, now=NOW + i * DAY)
    cap = res["capacity"][0]
    assert len(cap["points"]) == 5
    assert abs(cap["forecast"]["bytes_per_day"] - (100 << 20)) < 1
    assert abs(cap["forecast"]["days_until_full"] - ((2048 - 600) / 100)) < 0.01
    crit = [(f["host"], f["check"]) for f in res["findings"] if f["severity"] == "critical"]
    assert ("geo-fw", "reachability") in crit and ("miyun-store", "forecast") in crit
    assert res["passed"] is False and res["unreachable"] == ["geo-fw"]
    assert json.loads(hist.read_text())["series"]["miyun-store:/srv/dr"]["capacity"] == 2 << 30


def test_write_markdown_html_svg(tmp_path):
    res = report.build_inspection(raw(NOW, 300 << 20), tmp_path / "h.json", now=NOW)
    paths = report.write(res, tmp_path)
    md = paths["md"].read_text()
    assert "| critical | geo-fw | reachability |" in md
    assert "archive-db-full" in md
    html = paths["html"].read_text()
    bare = html.replace('xmlns="http://www.w3.org/2000/svg"', "")     # a namespace name, not a resource
    for ref in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert ref not in bare, ref
    svgs = html.count("<svg ")
    assert svgs == 2                                       # jobs + one capacity chart (no replica metrics)
    start = html.index("<svg ")
    xml.dom.minidom.parseString(html[start:html.index("</svg>", start) + 6])


def test_drill_render(tmp_path):
    d = drill_result(120, 3.5)
    paths = report.write(d, tmp_path)
    html = paths["html"].read_text()
    assert html.count("<svg ") == 2 and "RTO target 10.0 min" in html
    assert "| promote |" in paths["md"].read_text()


def test_evidence_indicators_and_repairs(tmp_path):
    rep = tmp_path / "reports"
    report.write(drill_result(120, 3.5), rep)
    report.write(drill_result(700, 90), rep)
    bad = healthy(time=NOW + DAY)
    bad["jobs"][0].update(runs_ok=3, runs_failed=1, last_success=NOW + DAY - 3600)
    good = healthy(time=NOW + 2 * DAY)
    good["jobs"][0].update(runs_ok=4, runs_failed=0, last_success=NOW + 2 * DAY - 3600)
    from archive_dr.fixity import load
    ins = load("dr_inspect")
    for i, c in enumerate((bad, good)):
        c["failed_units"] = ["x.service"] if i == 0 else []
        r = {"id": "i%d" % i, "started": c["time"], "thresholds": {},
             "hosts": {"h": {"collected": c, "findings": ins.evaluate("h", c)}}}
        report.write(report.build_inspection(r, None, now=c["time"]), rep)
    import datetime as dt
    day = dt.date.fromtimestamp(NOW)
    res = evidence.build(rep, day, day + dt.timedelta(days=3),
                         {"rto_seconds": 600, "rpo_seconds": 60, "backup_success_rate_pct": 98,
                          "verification_coverage_pct": 100, "restore_tests_per_period": 1})
    ind = {i["name"]: i for i in res["indicators"]}
    rto = next(v for k, v in ind.items() if k.startswith("RTO"))
    assert rto["measured"] == 700 and rto["met"] is False
    rate = ind["备份作业成功率"]
    assert abs(rate["measured"] - 87.5) < 1e-9 and rate["met"] is False
    assert res["issues"] == [{"host": "h", "check": "units", "item": "x.service", "severity": "warning",
                              "message": "unit x.service has failed", "first_seen": "i0", "repaired": True,
                              "resolved_in": "i1"}]
    paths = evidence.write(res, tmp_path / "ev")
    assert (tmp_path / "ev" / "drill-d700.html").exists()
    assert "87.50% (7/8)" in paths["md"].read_text()
