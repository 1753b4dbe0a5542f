"""Drill, inspection and evidence reports: JSON result -> Markdown + self-contained HTML.

``python -m archive_dr.report inspection --raw RAW.json --out reports/``
    build the inspection result from the per-host ``dr_inspect`` results the
    playbook gathered (updates the capacity history, computes the growth
    forecast), write ``inspection-<stamp>.{json,md,html}``; exit 2 when a
    finding is critical, 0 otherwise.
``python -m archive_dr.report render RESULT.json [--out DIR]``
    (re-)render any result (kind: inspection, drill, evidence).

HTML pages carry their CSS inline and draw their charts as inline SVG made
here in Python: no script, font, image or stylesheet is loaded from anywhere.
Templates: ``templates/reports/<kind>.{md,html}.j2``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2

from archive_dr import paths
from archive_dr.fixity import load

TEMPLATES = paths.ROOT / "templates" / "reports"
DEFAULT_REPORTS = paths.REPORTS
_insp = load("dr_inspect")

SEV_ORDER = {"critical": 0, "warning": 1, "info": 2}
COLORS = {"ok": "#2e7d32", "warn": "#ef6c00", "crit": "#c62828", "grid": "#d0d7de", "text": "#1f2328",
          "muted": "#656d76", "bar": "#0969da", "forecast": "#8250df", "none": "#8c959f", "declare": "#0969da"}
DASH = "—"                       # what a missing value shows as, everywhere (never "None")
# The CJK fonts the pages ask for, in order (fonts-noto-cjk on Debian; WenQuanYi where that is installed).
FONT_STACK = ('"Noto Sans CJK SC", "Noto Sans CJK", "Source Han Sans SC", "WenQuanYi Micro Hei", '
              '"WenQuanYi Zen Hei", sans-serif')
SVG_FONT = FONT_STACK.replace('"', "'")


# ------------------------------------------------------------------ formatting
def _none(v):
    return v is None or isinstance(v, jinja2.Undefined)


def iso(ts):
    if _none(ts):
        return DASH
    return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def iso_ms(ts):
    """A timestamp with milliseconds (RPO figures are measured at that resolution)."""
    if _none(ts):
        return DASH
    d = dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).astimezone()
    return d.strftime("%Y-%m-%d %H:%M:%S.") + "%03d" % (d.microsecond // 1000) + d.strftime(" %z")


def hms(ts):
    """The time of day of a timestamp (the date is in the report's header)."""
    if _none(ts):
        return DASH
    return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).astimezone().strftime("%H:%M:%S")


def human_bytes(n):
    if _none(n):
        return DASH
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%.1f PiB" % n


def human_seconds(s):
    """Seconds for a reader: sub-second figures keep their milliseconds (no rounding to whole seconds)."""
    if _none(s):
        return DASH
    s = float(s)
    if s == 0:
        return "0 s"
    if abs(s) < 0.001:
        return "%.0f µs" % (s * 1e6)
    if abs(s) < 1:
        return "%.3f s" % s
    if abs(s) < 10:
        return "%.2f s" % s
    if abs(s) < 120:
        return "%.1f s" % s
    if abs(s) < 7200:
        return "%.1f min" % (s / 60)
    if abs(s) < 172800:
        return "%.1f h" % (s / 3600)
    return "%.1f d" % (s / 86400)


def figure_text(fig):
    """An RPO figure ({"seconds", "measured", "bound"}, or a bare number from an older report) for a reader."""
    if isinstance(fig, (int, float)):
        return human_seconds(fig)
    if not isinstance(fig, dict) or _none(fig.get("seconds")):
        return "未测 not measured"
    if fig.get("measured"):
        return human_seconds(fig["seconds"])
    if fig.get("bound") == "lower":
        return "≥ %s（下限，未实测 lower bound, not measured）" % human_seconds(fig["seconds"])
    return "未测 not measured"


def _e(s):
    return html.escape(str(DASH if s is None else s), quote=True)


def _finalize(v):
    return DASH if _none(v) else v


# ------------------------------------------------------------------ metric names -> words (inspection)
REPLICA_JOBS = {"files": ("文件副本", "the file replica"),
                "pgbackrest": ("数据库备份副本", "the pgBackRest repository copy"),
                "restic": ("文件备份副本", "the restic repository copy")}
# name -> (Chinese, English, unit); {zh}/{en} stand for the job (label "job") in words.
METRIC_LABELS = {
    "archive_dr_replica_age_seconds": ("{zh}距上次成功同步", "age of {en}'s last successful pull", "seconds"),
    "archive_dr_replica_stale": ("{zh}同步过期", "{en} overdue (dead-man)", "flag"),
    "archive_dr_replica_last_success_timestamp_seconds": ("{zh}上次成功同步", "last successful pull of {en}",
                                                          "timestamp"),
    "archive_dr_replica_last_outcome_success": ("{zh}最近一次同步成功", "last pull of {en} succeeded", "flag"),
    "archive_dr_replica_consecutive_failures": ("{zh}连续失败次数", "failed pulls of {en} since its last success",
                                                "count"),
    "archive_dr_replica_snapshots": ("{zh}只读快照数", "read-only snapshots of {en}", "count"),
    "archive_dr_replica_last_snapshot_timestamp_seconds": ("{zh}最新快照", "newest snapshot of {en}", "timestamp"),
    "archive_dr_replica_last_pull_bytes_received": ("{zh}上次同步接收", "bytes the last pull of {en} received",
                                                    "bytes"),
    "archive_dr_replica_standby_lag_seconds": ("热备库回放落后", "standby replay behind the primary", "seconds"),
    "archive_dr_replica_standby_lag_bytes": ("热备库未回放的 WAL", "WAL not yet received or replayed by the standby",
                                             "bytes"),
    "archive_dr_replica_standby_stale": ("热备库过期或未流复制", "standby stale or not streaming (dead-man)", "flag"),
    "archive_dr_replica_standby_streaming": ("热备库流复制中", "standby streaming", "flag"),
    "archive_dr_replica_standby_in_recovery": ("热备库处于备库状态", "standby still a standby (not promoted)", "flag"),
}
_METRIC_ITEM = re.compile(r"^(archive_dr_[a-z0-9_]+)(?:\{(.*)\})?$")


def metric_unit(name):
    spec = METRIC_LABELS.get(name)
    if spec:
        return spec[2]
    return ("timestamp" if name.endswith("_timestamp_seconds") else "seconds" if name.endswith("_seconds")
            else "bytes" if name.endswith("_bytes") else "value")


def metric_label(name, labels=None, short=False):
    """Words for a Prometheus series: the label table, else the name spelled out (never the raw series).
    ``short``: the Chinese words only (chart rows), when the table has them."""
    labels = dict(labels or {})
    job = labels.pop("job", None)
    spec = METRIC_LABELS.get(name)
    if spec:
        zh, en = REPLICA_JOBS.get(job, (("作业 %s " % job) if job else "", ("the %s job" % job) if job else "the job"))
        text = spec[0].format(zh=zh, en=en) if short else "%s %s" % (spec[0].format(zh=zh, en=en),
                                                                      spec[1].format(zh=zh, en=en))
    else:
        words = re.sub(r"^archive_dr_", "", name)
        words = re.sub(r"_(timestamp_seconds|seconds|bytes|total)$", "", words).replace("_", " ")
        unit = metric_unit(name)
        text = words + ("" if unit == "value" else " (%s)" % unit) + ((" of job %s" % job) if job else "")
    if labels:
        text += " (%s)" % ", ".join("%s %s" % kv for kv in sorted(labels.items()))
    return text


def metric_value(name, v):
    """A gauge's value in its unit's words."""
    if _none(v):
        return DASH
    unit = metric_unit(name)
    v = float(v)
    if unit == "seconds":
        return "从未 never" if v < 0 else human_seconds(v)
    if unit == "timestamp":
        return "从未 never" if v <= 0 else iso(v)
    if unit == "bytes":
        return human_bytes(v)
    if unit == "flag":
        return "是 yes" if v >= 0.5 else "否 no"
    if unit == "count":
        return "%d" % v
    return "%g" % v


def parse_metric_item(item):
    """``name{k=v,...}`` (how dr_inspect names a gauge in a finding) -> (name, labels) or None."""
    m = _METRIC_ITEM.match(str(item or ""))
    if not m:
        return None
    labels = dict(kv.split("=", 1) for kv in (m.group(2) or "").split(",") if "=" in kv)
    return m.group(1), labels


def finding_item(f):
    parsed = parse_metric_item(f.get("item"))
    return metric_label(*parsed) if parsed else f.get("item")


def finding_message(f):
    """A finding's message; one about a gauge is said in words (label, value and threshold in their unit)."""
    parsed = parse_metric_item(f.get("item"))
    if parsed and not _none(f.get("value")) and not _none(f.get("threshold")):
        name, labels = parsed
        return "%s：%s，超过阈值 above %s" % (metric_label(name, labels), metric_value(name, f["value"]),
                                          metric_value(name, f["threshold"]))
    return f.get("message")


def pg_state(x):
    """A PostgreSQL cluster's replication state in words. Lag is WAL bytes, not the age of the last replayed
    transaction: an idle primary commits nothing, so a standby that replayed everything it received is caught up."""
    if x.get("error"):
        return "查询失败 query failed: %s" % x["error"]
    if "in_recovery" not in x:
        return x.get("status") or DASH
    if x["in_recovery"]:
        recv = x.get("wal_receiver")
        gap = x.get("replay_gap_bytes")
        s = "备库 standby · WAL 接收 receiver %s" % (recv or "未运行 not running")
        if gap is None:
            return s + " · 回放差距未知 replay gap unknown"
        if gap <= 0:
            return s + " · 已追平 caught up (all WAL received has been replayed)"
        return s + " · 落后 behind: %s received, not yet replayed" % human_bytes(gap)
    reps = x.get("replicas") or []
    if not reps:
        return "主库 primary · 无备库 no standby connected"
    parts = []
    for r in reps:
        lag = r.get("lag_bytes")
        parts.append("%s %s, %s" % (r.get("name") or r.get("client") or "?", r.get("state") or DASH,
                                    "已追平 caught up" if lag is not None and float(lag) <= 0 else
                                    ("落后 %s behind" % human_bytes(lag)) if lag is not None else "lag unknown"))
    return "主库 primary · 备库 standby: " + "; ".join(parts)


# ------------------------------------------------------------------ SVG charts
def _svg_open(cls, w, h, title, size=12):
    return ['<svg xmlns="http://www.w3.org/2000/svg" class="chart %s" role="img" width="%d" height="%d" '
            'viewBox="0 0 %d %d" font-family="%s" font-size="%d">' % (cls, w, h, w, h, SVG_FONT, size),
            '<title>%s</title>' % _e(title),
            '<text x="4" y="16" font-weight="bold" fill="%s">%s</text>' % (COLORS["text"], _e(title))]


def svg_timeline(phases, rto_target=None, title="Drill phases", declared=None, rto_end=None):
    """Gantt-like bars of the phases on a linear axis zoomed to the drill (from its first phase), the declaration
    and the end of the RTO marked. The RTO target is drawn on the axis when it is within 3× the drill's span;
    beyond that it would squash the phases into slivers, so the chart names it at the right edge instead."""
    phases = [p for p in phases if p.get("seconds") is not None]
    t0 = min((p["start"] for p in phases), default=0)
    end = max((p["end"] - t0 for p in phases), default=0)
    target = float(rto_target) if rto_target else None
    on_scale = target is not None and target + ((declared - t0) if declared else 0) <= 3 * max(end, 1.0)
    span = max(end, (target + ((declared - t0) if declared else 0)) if on_scale else 0, 1.0) * 1.06
    label_w, chart_w, row_h, top = 270, 520, 26, 40
    h = top + row_h * len(phases) + 44
    w = label_w + chart_w + 90
    sx = lambda v: label_w + chart_w * (v / span)  # noqa: E731
    out = _svg_open("timeline", w, h, title)
    for i in range(6):
        v = span * i / 5
        x = sx(v)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (x, top - 6, x, h - 34, COLORS["grid"]))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>'
                   % (x, h - 20, COLORS["muted"], _e(human_seconds(v))))
    out.append('<text x="%d" y="%d" fill="%s">自演练开始 since drill start (linear, zoomed to the drill)</text>'
               % (label_w, h - 4, COLORS["muted"]))
    for i, p in enumerate(phases):
        y = top + i * row_h
        x0, x1 = sx(p["start"] - t0), sx(p["end"] - t0)
        color = COLORS["ok"] if p.get("ok", True) else COLORS["crit"]
        out.append('<text x="4" y="%d" fill="%s">%s</text>' % (y + 15, COLORS["text"], _e(p.get("label") or p["name"])))
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" rx="2"><title>%s: %s</title></rect>'
                   % (x0, y + 3, max(x1 - x0, 2.0), row_h - 8, color, _e(p["name"]), _e(human_seconds(p["seconds"]))))
        out.append('<text x="%.1f" y="%d" fill="%s">%s</text>' % (max(x1, x0 + 2) + 4, y + 15, COLORS["muted"],
                                                                 _e(human_seconds(p["seconds"]))))
    if declared is not None:
        x = sx(declared - t0)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="3 3"/>'
                   % (x, top - 14, x, h - 34, COLORS["declare"]))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="%s">宣告 declared</text>'
                   % (x, top - 16, COLORS["declare"]))
        if rto_end is not None:
            xe = sx(declared - t0 + float(rto_end))
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5"/>'
                       % (x, top - 8, xe, top - 8, COLORS["declare"]))
            out.append('<text x="%.1f" y="%d" fill="%s">RTO %s</text>' % (xe + 4, top - 4, COLORS["declare"],
                                                                         _e(human_seconds(rto_end))))
    if target is not None:
        if on_scale:
            x = sx(target + ((declared - t0) if declared is not None else 0))
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" '
                       'stroke-dasharray="6 4"/>' % (x, top - 10, x, h - 34, COLORS["crit"]))
            out.append('<text x="%.1f" y="%d" text-anchor="end" fill="%s">RTO target %s</text>'
                       % (x - 4, 30, COLORS["crit"], _e(human_seconds(target))))
        else:
            out.append('<text x="%d" y="%d" text-anchor="end" fill="%s">RTO target %s → off this axis (%.0f× the '
                       'drill)</text>' % (w - 6, 16, COLORS["crit"], _e(human_seconds(target)),
                                          target / max(end, 1e-3)))
    out.append("</svg>")
    return "\n".join(out)


_NICE = [0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400]


def svg_vs_target(items, title="Measured vs target"):
    """Measured seconds against their targets on a logarithmic axis, so 8 s and a 4 h target are both
    readable. Item: {"label", "value", "target", "bound": None|"lower", "measured": bool}; 0 sits at the
    axis' left end and says "0 s"; an unmeasured figure shows as such (a lower bound with "≥")."""
    vals = [float(v) for it in items for v in (it.get("value"), it.get("target")) if v is not None and float(v) > 0]
    lo = min([0.1] + [v / 2 for v in vals])
    hi = max([60.0] + [v * 2 for v in vals])
    lo = max([n for n in _NICE if n <= lo] or [_NICE[0]])
    hi = min([n for n in _NICE if n >= hi] or [_NICE[-1]])
    label_w, chart_w, row_h, top = 250, 440, 30, 34
    h = top + row_h * max(len(items), 1) + 44
    w = label_w + chart_w + 330
    lg = math.log10

    def sx(v):
        v = min(max(float(v), lo), hi)
        return label_w + chart_w * (lg(v) - lg(lo)) / (lg(hi) - lg(lo))

    out = _svg_open("vs-target", w, h, title)
    for n in _NICE:
        if lo <= n <= hi:
            x = sx(n)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (x, top - 4, x, h - 34,
                                                                                  COLORS["grid"]))
            out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>'
                       % (x, h - 20, COLORS["muted"], _e(human_seconds(n))))
    out.append('<text x="%d" y="%d" fill="%s">对数刻度 logarithmic scale · 红线 = 目标 red mark = target</text>'
               % (label_w, h - 4, COLORS["muted"]))
    if not items:
        out.append('<text x="4" y="%d" fill="%s">无数据 no data</text>' % (top + 16, COLORS["muted"]))
    for i, it in enumerate(items):
        y = top + i * row_h
        v, t = it.get("value"), it.get("target")
        out.append('<text x="4" y="%d" fill="%s">%s</text>' % (y + 18, COLORS["text"], _e(it["label"])))
        measured = it.get("measured", v is not None)
        if v is None:
            out.append('<text x="%d" y="%d" fill="%s">未测 not measured</text>' % (label_w + 4, y + 18, COLORS["none"]))
            text = "未测 not measured"
        else:
            met = t is not None and measured and float(v) <= float(t)
            color = (COLORS["ok"] if met else COLORS["crit"]) if measured else COLORS["none"]
            x = sx(v) if float(v) > 0 else label_w + 3
            out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s" rx="2"%s><title>%s</title></rect>'
                       % (label_w, y + 6, max(x - label_w, 3), row_h - 12, color,
                          "" if measured else ' fill-opacity="0.45"', _e(it["label"])))
            if not measured:
                out.append('<text x="%.1f" y="%d" fill="%s">▶</text>' % (x + 1, y + 19, COLORS["none"]))
            text = (human_seconds(v) if measured else "≥ %s lower bound, not measured" % human_seconds(v))
        if t is not None:
            xt = sx(t)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2.5"/>'
                       % (xt, y + 2, xt, y + row_h - 2, COLORS["crit"]))
        out.append('<text x="%d" y="%d" fill="%s">%s / 目标 %s</text>'
                   % (label_w + chart_w + 8, y + 18, COLORS["muted"], _e(text), _e(human_seconds(t))))
    out.append("</svg>")
    return "\n".join(out)


def svg_age_bars(items, title="Age vs threshold"):
    """One bar per item: age as a fraction of its threshold (line at 100 %). An item that never ran is red,
    unless it is not due yet (``pending``: grey)."""
    label_w, chart_w, row_h, top = 330, 400, 22, 30
    h = top + row_h * max(len(items), 1) + 30
    w = label_w + chart_w + 170
    cap = 1.5
    sx = lambda r: label_w + chart_w * min(r, cap) / cap  # noqa: E731
    out = _svg_open("ages", w, h, title)
    if not items:
        out.append('<text x="4" y="%d" fill="%s">无数据 no data</text>' % (top + 14, COLORS["muted"]))
    for i, it in enumerate(items):
        y = top + i * row_h
        age, thr = it.get("age"), it.get("threshold")
        out.append('<text x="4" y="%d" fill="%s">%s</text>' % (y + 14, COLORS["text"], _e(it["label"])))
        if age is None or age < 0:
            pending = it.get("pending")
            out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>' % (
                label_w, y + 3, chart_w if not pending else chart_w // 3, row_h - 7,
                COLORS["none"] if pending else COLORS["crit"]))
            out.append('<text x="%d" y="%d" fill="#fff">%s</text>' % (label_w + 6, y + 14,
                                                                     "尚未到期 not due yet" if pending else "从未 never"))
            continue
        r = age / thr if thr else 0
        color = COLORS["ok"] if r < 0.8 else COLORS["warn"] if r <= 1 else COLORS["crit"]
        out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s" rx="2"><title>%s</title></rect>'
                   % (label_w, y + 3, max(sx(r) - label_w, 2.0), row_h - 7, color, _e(it["label"])))
        fmt = it.get("fmt") or human_seconds
        out.append('<text x="%d" y="%d" fill="%s">%s / %s</text>' % (label_w + chart_w + 6, y + 14, COLORS["muted"],
                                                                     _e(fmt(age)), _e(fmt(thr) if thr else DASH)))
    x1 = sx(1.0)
    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 3"/>'
               % (x1, top - 4, x1, h - 24, COLORS["crit"]))
    out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="%s">阈值 threshold</text>'
               % (x1, h - 8, COLORS["crit"]))
    out.append("</svg>")
    return "\n".join(out)


def svg_capacity(series, title):
    """Used bytes over time, capacity line, least-squares forecast to full (or +90 days)."""
    pts = sorted((float(t), float(u)) for t, u in series["points"])
    cap = float(series.get("capacity") or series.get("capacity_bytes") or 1)
    fc = series.get("forecast") or {}
    w, h, left, right, top, bottom = 520, 220, 70, 16, 28, 40
    t_first = pts[0][0] if pts else time.time()
    t_last = pts[-1][0] if pts else t_first
    horizon = t_last + 86400 * 90
    if fc.get("days_until_full") is not None:
        horizon = t_last + 86400 * min(fc["days_until_full"] * 1.1 + 1, 3650)
    if fc.get("bytes_per_day") is None:
        horizon = max(t_last + 60, t_first + 60)
    tmin, tmax = t_first, max(horizon, t_first + 1)
    sx = lambda t: left + (w - left - right) * (t - tmin) / (tmax - tmin)  # noqa: E731
    sy = lambda u: top + (h - top - bottom) * (1 - u / cap)  # noqa: E731
    out = _svg_open("capacity", w, h, title, size=11)
    for i in range(5):
        u = cap * i / 4
        y = sy(u)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>' % (left, y, w - right, y, COLORS["grid"]))
        out.append('<text x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>' % (left - 4, y + 4, COLORS["muted"],
                                                                                    _e(human_bytes(u))))
    out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="2"/>'
               % (left, sy(cap), w - right, sy(cap), COLORS["crit"]))
    for t in (tmin, (tmin + tmax) / 2, tmax):
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>'
                   % (sx(t), h - bottom + 16, COLORS["muted"],
                      _e(dt.datetime.fromtimestamp(t, dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M"))))
    if pts:
        path = " ".join("%s%.1f,%.1f" % ("M" if i == 0 else "L", sx(t), sy(u)) for i, (t, u) in enumerate(pts))
        out.append('<path d="%s" fill="none" stroke="%s" stroke-width="2"/>' % (path, COLORS["bar"]))
        for t, u in pts:
            out.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' % (sx(t), sy(u), COLORS["bar"]))
    if fc.get("bytes_per_day") and pts:
        t0, u0 = pts[-1]
        t1 = tmax
        u1 = min(cap, u0 + fc["bytes_per_day"] * (t1 - t0) / 86400.0)
        if fc.get("days_until_full") is not None:
            t1 = t0 + fc["days_until_full"] * 86400.0
            u1 = cap
        out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2" stroke-dasharray="6 4"/>'
                   % (sx(t0), sy(u0), sx(min(t1, tmax)), sy(u1), COLORS["forecast"]))
    note = ("full in %.0f days" % fc["days_until_full"]) if fc.get("days_until_full") is not None else (
        "no growth" if fc.get("bytes_per_day") is not None else "trend needs ≥ 2 samples")
    out.append('<text x="%d" y="%d" fill="%s">%s · %d samples</text>' % (left, h - 6, COLORS["forecast"], _e(note),
                                                                        len(pts)))
    out.append("</svg>")
    return "\n".join(out)


# ------------------------------------------------------------------ inspection
def _history_load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"series": {}}


def _history_save(path, hist):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = str(path) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(hist, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def build_inspection(raw, history_path=None, now=None, keep_days=400):
    """The inspection result from the playbook's raw per-host results (updates the history file)."""
    now = time.time() if now is None else now
    thresholds = dict(_insp.DEFAULT_THRESHOLDS)
    thresholds.update(raw.get("thresholds") or {})
    hosts = raw["hosts"]
    findings, jobs, replication, tunnels, certs, capacity, media, timesync = [], [], [], [], [], [], [], []
    dr_history, alerts, alerts_dropped = [], [], 0
    hist = _history_load(history_path) if history_path else {"series": {}}
    unreachable = []
    for name in sorted(hosts):
        h = hosts[name]
        if h.get("unreachable") or h.get("failed") or "collected" not in h:
            unreachable.append(name)
            findings.append({"severity": "critical", "host": name, "check": "reachability", "item": name,
                             "message": "host could not be inspected: %s" % (h.get("msg") or "unreachable")[:300],
                             "value": None, "threshold": None})
            continue
        c = h["collected"]
        findings.extend(h.get("findings", []))
        for fs in c.get("filesystems", []):
            key = "%s:%s" % (name, fs["mount_point"])
            s = hist["series"].setdefault(key, {"points": []})
            s["capacity"] = fs["capacity_bytes"]
            s["points"] = [p for p in s["points"] if p[0] >= now - keep_days * 86400] + [[c["time"], fs["used_bytes"]]]
            fc = _insp.forecast(s["points"], fs["capacity_bytes"], thresholds["forecast_min_samples"])
            findings.extend(_insp.forecast_findings(name, fs["mount_point"], fc, thresholds))
            capacity.append(dict(fs, host=name, key=key, forecast=fc, points=s["points"]))
        for j in c.get("jobs", []):
            age = (c["time"] - float(j["last_success"])) if j.get("last_success") else None
            jobs.append(dict(j, host=name, age=age))
        for cl in c.get("postgres") or []:
            replication.append(dict(cl, host=name))
        for g in c.get("metrics", []):
            spec = (thresholds.get("metric_thresholds") or {}).get(g["name"])
            if spec:
                replication.append({"host": name, "metric": g["name"], "labels": g["labels"], "value": g["value"],
                                    "warn": spec.get("warn"), "crit": spec.get("crit")})
        if c.get("tunnel") is not None:
            tunnels.append(dict(c["tunnel"], host=name))
        for ce in c.get("certificates", []):
            days = (ce["not_after"] - c["time"]) / 86400.0 if ce.get("not_after") else None
            certs.append(dict(ce, host=name, days_left=None if days is None else round(days, 1)))
        for m in c.get("media", []):
            media.append(dict(m, host=name))
        timesync.append(dict(c.get("time_sync") or {}, host=name, failed_units=c.get("failed_units", [])))
        # the DR history since the previous inspection (releases, verification runs, alerts): the evidence pack's
        dr_history.extend(dict(h, host=name) for h in (c.get("dr_history") or {}).get("jobs") or [])
        alerts.extend(dict(a, host=name) for a in (c.get("alerts") or {}).get("entries") or [])
        alerts_dropped += int((c.get("alerts") or {}).get("dropped") or 0)
    if history_path:
        hist["updated"] = now
        _history_save(history_path, hist)
    findings.sort(key=lambda f: (SEV_ORDER.get(f["severity"], 9), f["host"], f["check"], str(f["item"])))
    counts = {s: sum(1 for f in findings if f["severity"] == s) for s in _insp.SEVERITIES}
    return {"kind": "inspection", "id": raw.get("id") or time.strftime("%Y%m%dT%H%M%S", time.localtime(now)),
            "started": raw.get("started", now), "finished": now, "inventory": raw.get("inventory"),
            "thresholds": thresholds, "hosts": sorted(hosts), "unreachable": unreachable,
            "findings": findings, "counts": counts, "passed": counts["critical"] == 0,
            "capacity": capacity, "jobs": jobs, "replication": replication, "tunnels": tunnels,
            "certificates": certs, "media": media, "time_sync": timesync,
            "dr_history": dr_history, "alerts": alerts, "alerts_dropped": alerts_dropped}


# ------------------------------------------------------------------ rendering
def _env():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined,
                             finalize=_finalize)
    env.filters.update(iso=iso, iso_ms=iso_ms, hms=hms, bytes=human_bytes, secs=human_seconds, e=_e, fig=figure_text,
                       pct=lambda v: DASH if _none(v) else "%.1f%%" % v,
                       dash=lambda v: DASH if _none(v) or v == "" else v,
                       md=lambda s: str(DASH if _none(s) else s).replace("|", "\\|").replace("\n", " "),
                       metric=lambda x: metric_label(x.get("metric"), x.get("labels")),
                       metric_value=metric_value, finding_item=finding_item, finding_message=finding_message,
                       pg_state=pg_state)
    return env


def drill_view(r):
    """What the drill templates show, computed once: the summary lines and one row per phase."""
    declared = r.get("declared")
    rows = []
    for p in r.get("phases") or []:
        since = None
        if declared is not None and p.get("end") is not None:
            since = human_seconds(p["end"] - declared) if p["end"] >= declared - 1e-6 else "宣告前 before"
        rows.append({"label": p.get("label") or p.get("name"), "name": p.get("name"), "start": p.get("start"),
                     "seconds": p.get("seconds"), "since": since if declared is not None else (
                         human_seconds(p["end"] - r["phases"][0]["start"]) if p.get("end") is not None else DASH),
                     "ok": p.get("ok"), "detail": p.get("detail") or DASH, "log": p.get("log")})
    rpo = r.get("rpo") or {}
    figs = []
    for key, zh in (("database", "数据库 database"), ("files", "文件 files")):
        f = rpo.get(key)
        if f is None and ("db_seconds" if key == "database" else "files_seconds") in rpo:   # an older report
            v = rpo.get("db_seconds" if key == "database" else "files_seconds")
            f = {"seconds": v, "measured": v is not None, "bound": None}
        if f is not None:
            figs.append(dict(f, key=key, label=zh, text=figure_text(f)))
    overall = rpo.get("overall") or ({"seconds": r.get("rpo_seconds"), "measured": r.get("rpo_seconds") is not None,
                                      "bound": None})
    level = r.get("level") or {}
    since_title = ("自宣告起 since declaration (phase end)" if declared is not None
                   else "自演练开始 since drill start (phase end)")
    return {"rows": rows, "figures": figs, "overall": overall, "overall_text": figure_text(overall),
            "since_title": since_title, "level": level.get("level"),
            "level_text": ("第 %s 级 level %s" % (level["level"], level["level"])) if level.get("level") not in (
                None, "") else "无 none", "disaster": r.get("disaster") or {}, "replication": r.get("replication") or {}}


def charts(result):
    kind = result["kind"]
    out = {}
    if kind == "inspection":
        items = [{"label": "%s %s" % (j["host"], j["job"]), "age": j["age"], "threshold": j.get("max_age"),
                  "pending": j.get("age") is None and j.get("first_due") is not None
                  and float(j["first_due"]) + float(j.get("max_age") or 0) > float(result.get("finished") or 0)}
                 for j in result["jobs"] if j.get("max_age")]
        out["jobs"] = svg_age_bars(items, "备份、校验与拉取作业 jobs: age of the last success vs threshold")
        rep = []
        for r in result["replication"]:
            if "metric" not in r or metric_unit(r["metric"]) not in ("seconds", "bytes"):
                continue
            unit = metric_unit(r["metric"])
            rep.append({"label": "%s %s" % (r["host"], metric_label(r["metric"], r.get("labels"), short=True)),
                        "age": r["value"], "threshold": r.get("crit") or r.get("warn"),
                        "fmt": human_seconds if unit == "seconds" else human_bytes})
        out["replication"] = svg_age_bars(rep, "复制 replication: lags and ages vs threshold") if rep else ""
        out["capacity"] = [svg_capacity(c, "%s %s" % (c["host"], c["mount_point"])) for c in result["capacity"]]
    elif kind == "drill":
        v = drill_view(result)
        out["timeline"] = svg_timeline(result["phases"], result["targets"].get("rto_seconds"),
                                       "演练 %s 阶段 phases" % result["scenario"], declared=result.get("declared"),
                                       rto_end=result.get("rto_seconds"))
        items = [{"label": "RTO 恢复时间", "value": result.get("rto_seconds"), "measured": True,
                  "target": result["targets"].get("rto_seconds")}]
        for f in v["figures"]:
            items.append({"label": "RPO %s" % f["label"], "value": f.get("seconds"), "measured": f.get("measured"),
                          "target": result["targets"].get("rpo_seconds")})
        out["rpo"] = svg_vs_target(items, "RTO / RPO 实测与目标 measured vs target")
    elif kind == "evidence":
        out["rto"] = svg_vs_target([{"label": "%s %s" % (d["id"], d["scenario"]), "value": d.get("rto_seconds"),
                                     "target": d.get("rto_target")} for d in result["drills"]],
                                   "演练 RTO 与目标 drill RTO vs target")
        out["rpo"] = svg_vs_target([{"label": "%s %s" % (d["id"], d["scenario"]),
                                     "value": d.get("rpo_seconds") if d.get("rpo_seconds") is not None
                                     else d.get("rpo_bound"), "measured": d.get("rpo_seconds") is not None,
                                     "target": d.get("rpo_target")} for d in result["drills"]],
                                   "演练 RPO 与目标 drill RPO vs target")
    return out


def _context(result):
    ctx = {"r": result, "now": time.time()}
    if result["kind"] == "drill":
        ctx["v"] = drill_view(result)
    return ctx


# The evidence pack's DR history (灾备历史: quarantines and releases, verification, alerts), rendered after
# the kind's own template (Markdown: at the end; HTML: before the page footer) when the result carries it.
_HISTORY_HEAD = """{% set h = r.dr_history %}
{% set words = {"ok": "正常 ok", "repaired": "已修复 repaired", "damaged": "损坏 damaged"} %}
{% set released = h.releases | selectattr("released_at", "ne", none) | list | length %}
"""
HISTORY_MD = _HISTORY_HEAD + """
## 灾备历史 DR history

本期间隔离 {{ h.releases | length }} 次（已放行 {{ released }} 次），校验作业 {{ h.verification | length }} 个，告警通知 {{ h.notifications }} 条；依据各次巡检在主机上读取的放行、校验与告警日志，同一事件只计一次 (each event counted once).

### 隔离与放行 Quarantines and operator releases

{% if h.releases %}
| 作业 job | 主机 host | 隔离起始 held since | 隔离原因 findings | 放行时间 released at | 放行人 by | 放行理由 reason | 快照 snapshot |
|---|---|---|---|---|---|---|---|
{% for x in h.releases %}
| {{ x.job }} | {{ x.host | dash }} | {{ x.held_since | iso }} | {{ x.findings | join("; ") | md }} | {% if x.released_at is not none %}{{ x.released_at | iso }}{% else %}未放行 still held ({{ x.held_at }}){% endif %} | {{ x.by | md }} | {{ x.reason | md }} | {{ x.snapshot | dash }} |
{% endfor %}
{% else %}
本期无隔离 no quarantine in this period.
{% endif %}

### 校验结果 Verification runs

{% if h.verification %}
| 主机 host | 作业 job | 校验次数 runs | 正常 ok | 已修复 repaired | 损坏 damaged | 最差结果 worst | 最近一次 last run | 损坏快照 damaged snapshots |
|---|---|---:|---:|---:|---:|---|---|---|
{% for v in h.verification %}
| {{ v.host | dash }} | {{ v.job }} | {{ v.runs }} | {{ v.ok }} | {{ v.repaired }} | {{ v.damaged }} | {{ words.get(v.worst, v.worst) | dash }} | {{ v.last | iso }} | {{ v.damaged_snapshots | join(", ") | dash }} |
{% endfor %}
{% else %}
本期无校验记录 no verification run in this period.
{% endif %}

### 告警 Alerts sent

{% if h.alerts %}
| 告警 alert | 级别 severity | 实例 instance | 作业 job | 触发 fired | 恢复 resolved | 通知 notifications | 首次 first | 最近 last |
|---|---|---|---|---:|---:|---:|---|---|
{% for a in h.alerts %}
| {{ a.alertname | md }} | {{ a.severity | dash }} | {{ a.instance | md }} | {{ a.job | md }} | {{ a.fired }} | {{ a.resolved }} | {{ a.notifications }} | {{ a.first | iso }} | {{ a.last | iso }} |
{% endfor %}

触发与恢复按告警事件 (startsAt) 计，同一事件的重复通知只计一次 (fired / resolved count alert episodes; repeated notifications of one episode count once).
{% else %}
本期无告警 no alert sent in this period.
{% endif %}
{% if h.dropped.releases or h.dropped.verify_runs or h.dropped.alerts %}

巡检未保留的较早记录 older records the inspections did not keep (size limits): {{ h.dropped.releases }} releases, {{ h.dropped.verify_runs }} verification runs, {{ h.dropped.alerts }} alert entries.
{% endif %}
"""
HISTORY_HTML = _HISTORY_HEAD + """
<h2>灾备历史 DR history</h2>
<p>本期间隔离 {{ h.releases | length }} 次（已放行 {{ released }} 次），校验作业 {{ h.verification | length }} 个，告警通知 {{ h.notifications }} 条；依据各次巡检在主机上读取的放行、校验与告警日志，同一事件只计一次 (each event counted once).</p>

<h3>隔离与放行 Quarantines and operator releases</h3>
{% if h.releases %}
<table id="releases"><tr><th>作业 job</th><th>主机 host</th><th>隔离起始 held since</th><th>隔离原因 findings</th><th>放行时间 released at</th><th>放行人 by</th><th>放行理由 reason</th><th>快照 snapshot</th></tr>
{% for x in h.releases %}
<tr><td>{{ x.job | e }}</td><td>{{ x.host | dash | e }}</td><td>{{ x.held_since | iso }}</td><td class="outcome">{{ x.findings | join("; ") | dash | e }}</td>{% if x.released_at is not none %}<td>{{ x.released_at | iso }}</td>{% else %}<td class="bad">未放行 still held ({{ x.held_at | e }})</td>{% endif %}<td>{{ x.by | e }}</td><td>{{ x.reason | e }}</td><td>{{ x.snapshot | dash | e }}</td></tr>
{% endfor %}
</table>
{% else %}
<p class="muted">本期无隔离 no quarantine in this period.</p>
{% endif %}

<h3>校验结果 Verification runs</h3>
{% if h.verification %}
<table id="verification"><tr><th>主机 host</th><th>作业 job</th><th class="num">校验次数 runs</th><th class="num">正常 ok</th><th class="num">已修复 repaired</th><th class="num">损坏 damaged</th><th>最差结果 worst</th><th>最近一次 last run</th><th>损坏快照 damaged snapshots</th></tr>
{% for v in h.verification %}
<tr><td>{{ v.host | dash | e }}</td><td>{{ v.job | e }}</td><td class="num">{{ v.runs }}</td><td class="num">{{ v.ok }}</td><td class="num">{{ v.repaired }}</td><td class="num">{{ v.damaged }}</td><td class="{{ {'ok': 'ok', 'repaired': 'sev-warning', 'damaged': 'bad'}.get(v.worst, '') }}">{{ words.get(v.worst, v.worst) | dash | e }}</td><td>{{ v.last | iso }}</td><td>{{ v.damaged_snapshots | join(", ") | dash | e }}</td></tr>
{% endfor %}
</table>
{% else %}
<p class="muted">本期无校验记录 no verification run in this period.</p>
{% endif %}

<h3>告警 Alerts sent</h3>
{% if h.alerts %}
<table id="alerts"><tr><th>告警 alert</th><th>级别 severity</th><th>实例 instance</th><th>作业 job</th><th class="num">触发 fired</th><th class="num">恢复 resolved</th><th class="num">通知 notifications</th><th>首次 first</th><th>最近 last</th></tr>
{% for a in h.alerts %}
<tr class="sev-{{ a.severity | e }}"><td>{{ a.alertname | e }}</td><td>{{ a.severity | e }}</td><td>{{ a.instance | e }}</td><td>{{ a.job | e }}</td><td class="num">{{ a.fired }}</td><td class="num">{{ a.resolved }}</td><td class="num">{{ a.notifications }}</td><td>{{ a.first | iso }}</td><td>{{ a.last | iso }}</td></tr>
{% endfor %}
</table>
<p class="muted">触发与恢复按告警事件 (startsAt) 计，同一事件的重复通知只计一次 (fired / resolved count alert episodes; repeated notifications of one episode count once).</p>
{% else %}
<p class="muted">本期无告警 no alert sent in this period.</p>
{% endif %}
{% if h.dropped.releases or h.dropped.verify_runs or h.dropped.alerts %}
<p class="muted">巡检未保留的较早记录 older records the inspections did not keep (size limits): {{ h.dropped.releases }} releases, {{ h.dropped.verify_runs }} verification runs, {{ h.dropped.alerts }} alert entries.</p>
{% endif %}
"""


def _history(env, result, fmt):
    """The DR history section of an evidence result ("" for a result without one, e.g. an older pack)."""
    if result.get("kind") != "evidence" or not result.get("dr_history"):
        return ""
    return env.from_string(HISTORY_MD if fmt == "md" else HISTORY_HTML).render(**_context(result))


def render_markdown(result):
    env = _env()
    return env.get_template("%s.md.j2" % result["kind"]).render(**_context(result)) + _history(env, result, "md")


def render_html(result, pdf_name=None):
    env = _env()
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    page = env.get_template("%s.html.j2" % result["kind"]).render(c=charts(result), css=css, pdf=pdf_name,
                                                                  **_context(result))
    section = _history(env, result, "html")
    if section:
        head, footer, tail = page.rpartition("<footer>")
        page = head + section + footer + tail if footer else page + section
    return page


# ------------------------------------------------------------------ headless Chromium (PDF for the paper file)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(args, profile=None, timeout=120, flags=()):
    """Run headless Chromium once (a fresh profile unless given); the CompletedProcess (text)."""
    exe = chromium_path()
    if not exe:
        raise FileNotFoundError("chromium is not installed (scripts/install-deps.sh installs it)")
    with tempfile.TemporaryDirectory(prefix="archive-dr-chromium-") as tmp:
        return subprocess.run([exe, *CHROMIUM_FLAGS, *flags, "--user-data-dir=%s" % (profile or tmp), *args],
                              capture_output=True, text=True, timeout=timeout)


def print_pdf(html_path, pdf_path, profile=None, timeout=120):
    """Print a report page to PDF (A4, from the page's print CSS); True when the PDF was written."""
    pdf_path = Path(pdf_path)
    tmp = pdf_path.with_name(pdf_path.name + ".part")
    p = chromium(["--no-pdf-header-footer", "--print-to-pdf=%s" % tmp, Path(html_path).resolve().as_uri()],
                 profile, timeout)
    if p.returncode != 0 or not tmp.exists() or tmp.read_bytes()[:5] != b"%PDF-":
        tmp.unlink(missing_ok=True)
        return False
    os.replace(tmp, pdf_path)
    return True


def write(result, out_dir=DEFAULT_REPORTS, pdf=None):
    """Write <kind>-<id>.{json,md,html} into out_dir, and .pdf when Chromium is there (``pdf``: None = when
    Chromium is installed, False = never, True = always, failing if it cannot); return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / ("%s-%s" % (result["kind"], result["id"]))
    paths = {"json": base.with_suffix(".json"), "md": base.with_suffix(".md"), "html": base.with_suffix(".html")}
    want_pdf = (chromium_path() is not None) if pdf is None else bool(pdf)
    paths["json"].write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(result), encoding="utf-8")
    paths["html"].write_text(render_html(result, base.with_suffix(".pdf").name if want_pdf else None),
                             encoding="utf-8")
    if want_pdf:
        try:
            ok = print_pdf(paths["html"], base.with_suffix(".pdf"))
        except (OSError, subprocess.SubprocessError):
            ok = False
        if ok:
            paths["pdf"] = base.with_suffix(".pdf")
        else:                                   # no dangling link to a PDF that is not there
            paths["html"].write_text(render_html(result, None), encoding="utf-8")
        if not ok and pdf:
            raise RuntimeError("chromium could not print %s to PDF" % paths["html"])
        elif not ok:
            print("warning: no PDF for %s (chromium failed)" % paths["html"], file=sys.stderr)
    return paths


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m archive_dr.report", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)
    i = sub.add_parser("inspection", help="build + write the inspection report from raw host results")
    i.add_argument("--raw", required=True)
    i.add_argument("--history", default=str(DEFAULT_REPORTS / "history" / "capacity.json"))
    i.add_argument("--out", default=str(DEFAULT_REPORTS))
    r = sub.add_parser("render", help="render a result JSON as Markdown and HTML")
    r.add_argument("result")
    r.add_argument("--out")
    a = p.parse_args(argv)
    if a.verb == "inspection":
        with open(a.raw, encoding="utf-8") as f:
            raw = json.load(f)
        res = build_inspection(raw, a.history)
        paths = write(res, a.out)
        cn = res["counts"]
        for fnd in res["findings"]:
            if fnd["severity"] != "info":
                print("%-8s %-12s %-12s %s" % (fnd["severity"].upper(), fnd["host"], fnd["check"], fnd["message"]))
        print("inspection %s: %d critical, %d warning, %d info" % (res["id"], cn["critical"], cn["warning"], cn["info"]))
        print(json.dumps({k: str(v) for k, v in paths.items()}))
        return 2 if cn["critical"] else 0
    with open(a.result, encoding="utf-8") as f:
        res = json.load(f)
    paths = write(res, a.out or os.path.dirname(os.path.abspath(a.result)))
    print(json.dumps({k: str(v) for k, v in paths.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
