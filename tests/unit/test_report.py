"""archive_dr/report.py and archive_dr/evidence.py: results, history, forecast, Markdown/HTML (no lab)."""
from __future__ import annotations

import json
import xml.dom.minidom
from html import unescape

from archive_dr import evidence, report
from tests.unit.reportdata import DAY, NOW, drill_result, healthy, raw, rpo_fig


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
    paths = report.write(res, tmp_path, pdf=False)
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
    d["phases"][2]["log"] = "drill-d120-logs/03-recover.log"
    paths = report.write(d, tmp_path, pdf=False)
    assert "pdf" not in paths
    html = paths["html"].read_text()
    md = paths["md"].read_text()
    assert html.count("<svg ") == 2 and "RTO target 10.0 min" in html
    # summary first: result, RTO/RPO against targets, level and its basis, then the phases
    order = [html.index(x) for x in ("结论 Result", "RTO 实测", "RPO 实测", "GB/T 20988 等级", "等级依据",
                                     'id="phases"')]
    assert order == sorted(order)
    assert "| 恢复 recover at miyun (promote-miyun.yml) |" in md and "miyun promoted in 3.9 s" in md
    assert '<a href="drill-d120-logs/03-recover.log">03-recover.log</a>' in html
    assert "[03-recover.log](drill-d120-logs/03-recover.log)" in md
    assert "自宣告起 since declaration" in html and "宣告前 before" in html
    assert "stop" in html and "async" in html                   # disaster method and replication mode
    for text in (html, md):
        assert "None" not in text and "PLAY [" not in text and "TASK [" not in text


def test_drill_with_a_lower_bound_does_not_pass(tmp_path):
    d = drill_result(120, 3.5, files=rpo_fig(60.0, False, "lower", note="no heartbeat of this drill was recovered"))
    assert d["passed"] is False and d["rpo_met"] is False and d["level"]["level"] is None
    paths = report.write(d, tmp_path, pdf=False)
    html, md = paths["html"].read_text(), paths["md"].read_text()
    for text in (html, md):
        assert "≥ 60.0 s（下限，未实测 lower bound, not measured）" in text and "不通过 FAIL" in text
        assert "未实测，不判定为达标" in text and "None" not in text
    assert "≥ 60.0 s lower bound, not measured" in html        # the chart says so too


def test_timeline_zooms_to_the_drill_and_names_a_far_target():
    phases = [{"name": "a", "start": 0.0, "end": 1.0, "seconds": 1.0, "ok": True},
              {"name": "b", "start": 1.0, "end": 13.8, "seconds": 12.8, "ok": True}]
    svg = report.svg_timeline(phases, 14400, "t", declared=1.0, rto_end=12.8)
    xml.dom.minidom.parseString(svg)
    assert "RTO target 4.0 h → off this axis" in svg and "宣告 declared" in svg
    import re
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"', svg)]
    assert max(widths) > 400                                   # 12.8 s fills the axis, no sliver
    near = report.svg_timeline(phases, 20, "t")
    assert "RTO target 20.0 s" in near and "off this axis" not in near


def test_vs_target_chart_is_logarithmic():
    svg = report.svg_vs_target([{"label": "RTO", "value": 8.4, "target": 14400},
                                {"label": "RPO", "value": 0.0, "target": 900},
                                {"label": "RPO files", "value": 60.0, "measured": False, "target": 900},
                                {"label": "x", "value": None, "target": 900}], "t")
    xml.dom.minidom.parseString(svg)
    assert "对数刻度 logarithmic scale" in svg and "8.40 s / 目标 4.0 h" in svg and "0 s / 目标 15.0 min" in svg
    assert "≥ 60.0 s lower bound, not measured" in svg and "未测 not measured" in svg


def test_formatting_never_says_none():
    assert report.human_seconds(None) == report.iso(None) == report.human_bytes(None) == "—"
    assert report.human_seconds(0) == "0 s" and report.human_seconds(0.2234) == "0.223 s"
    assert report.human_seconds(7.006) == "7.01 s" and report.human_seconds(-5.691e-06) == "-6 µs"
    assert report.figure_text({"seconds": None, "measured": False, "bound": None}) == "未测 not measured"
    assert report.figure_text(3.5) == "3.50 s"


def test_metric_labels_are_words():
    assert report.metric_label("archive_dr_replica_age_seconds", {"job": "files"}) == \
        "文件副本距上次成功同步 age of the file replica's last successful pull"
    assert report.metric_label("archive_dr_replica_standby_lag_seconds", {}).startswith("热备库回放落后")
    fallback = report.metric_label("archive_dr_replica_new_thing_bytes", {"job": "x", "site": "geo"})
    assert fallback == "replica new thing (bytes) of job x (site geo)"
    assert report.metric_value("archive_dr_replica_age_seconds", -1) == "从未 never"
    assert report.metric_value("archive_dr_replica_stale", 0.0) == "否 no"
    assert report.metric_value("archive_dr_replica_age_seconds", None) == "—"
    f = {"item": "archive_dr_replica_age_seconds{job=files}", "value": 4000.0, "threshold": 3600,
         "message": "archive_dr_replica_age_seconds{job=files} = 4000 > 3600"}
    assert report.finding_item(f).startswith("文件副本距上次成功同步")
    assert report.finding_message(f) == ("文件副本距上次成功同步 age of the file replica's last successful pull："
                                         "66.7 min，超过阈值 above 60.0 min")


def test_replication_lag_is_bytes_and_caught_up():
    idle_standby = {"in_recovery": True, "wal_receiver": "streaming", "replay_gap_bytes": 0.0,
                    "replay_age_seconds": 792.0, "status": "online,recovery"}
    assert "已追平 caught up" in report.pg_state(idle_standby) and "13.2 min" not in report.pg_state(idle_standby)
    assert "1.0 MiB received, not yet replayed" in report.pg_state(dict(idle_standby, replay_gap_bytes=1 << 20))
    primary = {"in_recovery": False, "replicas": [{"name": "miyun_store", "state": "streaming", "lag_bytes": 0}]}
    assert report.pg_state(primary) == "主库 primary · 备库 standby: miyun_store streaming, 已追平 caught up"


def test_inspection_shows_words_not_series(tmp_path):
    c = healthy()
    c["metrics"] = [{"name": "archive_dr_replica_age_seconds", "labels": {"job": "files"}, "value": 4000.0},
                    {"name": "archive_dr_replica_stale", "labels": {"job": "files"}, "value": 0.0}]
    c["postgres"] = [{"version": "15", "cluster": "main", "port": 5432, "status": "online,recovery",
                      "in_recovery": True, "replicas": [], "wal_receiver": "streaming", "replay_gap_bytes": 0.0,
                      "replay_age_seconds": 792.0}]
    from archive_dr.fixity import load
    ins = load("dr_inspect")
    thr = {"metric_thresholds": {"archive_dr_replica_age_seconds": {"warn": 3600, "crit": 7200},
                                 "archive_dr_replica_stale": {"crit": 0.5}}}
    t = dict(ins.DEFAULT_THRESHOLDS, **thr)
    r = {"id": "w", "started": NOW, "thresholds": thr,
         "hosts": {"miyun-store": {"collected": c, "findings": ins.evaluate("miyun-store", c, t)}}}
    paths = report.write(report.build_inspection(r, None, now=NOW), tmp_path, pdf=False)
    html, md = unescape(paths["html"].read_text()), paths["md"].read_text()
    for text in (html, md):
        assert "文件副本距上次成功同步 age of the file replica's last successful pull" in text
        assert "{'job'" not in text and "None" not in text and "replay 13" not in text
        assert "已追平 caught up" in text
    assert "archive_dr_replica_age_seconds" not in html.split("<h2>复制")[0]   # the findings table too
    assert '"Noto Sans CJK SC"' in html and "WenQuanYi" in html and "sans-serif" in html


def test_evidence_indicators_and_repairs(tmp_path):
    rep = tmp_path / "reports"
    report.write(drill_result(120, 3.5), rep, pdf=False)
    report.write(drill_result(700, 90), rep, pdf=False)
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
        report.write(report.build_inspection(r, None, now=c["time"]), rep, pdf=False)
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
    paths = evidence.write(res, tmp_path / "ev", pdf=False)
    assert (tmp_path / "ev" / "drill-d700.html").exists()
    assert "87.50% (7/8)" in paths["md"].read_text()
