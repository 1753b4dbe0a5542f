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
import os
import sys
import time
from pathlib import Path

import jinja2

from archive_dr.fixity import load

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates" / "reports"
DEFAULT_REPORTS = ROOT / "reports"
_insp = load("dr_inspect")

SEV_ORDER = {"critical": 0, "warning": 1, "info": 2}
COLORS = {"ok": "#2e7d32", "warn": "#ef6c00", "crit": "#c62828", "grid": "#d0d7de", "text": "#1f2328",
          "muted": "#656d76", "bar": "#0969da", "forecast": "#8250df"}


# ------------------------------------------------------------------ formatting
def _none(v):
    return v is None or isinstance(v, jinja2.Undefined)


def iso(ts):
    if _none(ts):
        return "-"
    return dt.datetime.fromtimestamp(float(ts), dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def human_bytes(n):
    if _none(n):
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return ("%d %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024.0
    return "%.1f PiB" % n


def human_seconds(s):
    if _none(s):
        return "-"
    s = float(s)
    if abs(s) < 120:
        return "%.1f s" % s
    if abs(s) < 7200:
        return "%.1f min" % (s / 60)
    if abs(s) < 172800:
        return "%.1f h" % (s / 3600)
    return "%.1f d" % (s / 86400)


def _e(s):
    return html.escape(str(s), quote=True)


# ------------------------------------------------------------------ SVG charts
def svg_timeline(phases, rto_target=None, title="Drill phases vs RTO target"):
    """Gantt-like bars of phases (seconds from declaration) with the RTO target as a line."""
    phases = [p for p in phases if p.get("seconds") is not None]
    t0 = min((p["start"] for p in phases), default=0)
    end = max((p["end"] - t0 for p in phases), default=0)
    span = max(end, float(rto_target or 0), 1.0) * 1.08
    label_w, chart_w, row_h, top = 230, 560, 26, 34
    h = top + row_h * len(phases) + 40
    w = label_w + chart_w + 90
    sx = lambda v: label_w + chart_w * (v / span)  # noqa: E731
    out = ['<svg xmlns="http://www.w3.org/2000/svg" class="chart timeline" role="img" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (w, h, w, h),
           '<title>%s</title>' % _e(title),
           '<text x="4" y="16" font-weight="bold" fill="%s">%s</text>' % (COLORS["text"], _e(title))]
    for i in range(6):
        v = span * i / 5
        x = sx(v)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>' % (x, top - 6, x, h - 30, COLORS["grid"]))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="%s">%s</text>'
                   % (x, h - 14, COLORS["muted"], _e(human_seconds(v))))
    for i, p in enumerate(phases):
        y = top + i * row_h
        x0, x1 = sx(p["start"] - t0), sx(p["end"] - t0)
        color = COLORS["ok"] if p.get("ok", True) else COLORS["crit"]
        out.append('<text x="4" y="%d" fill="%s">%s</text>' % (y + 15, COLORS["text"], _e(p.get("label") or p["name"])))
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" rx="2"><title>%s: %s</title></rect>'
                   % (x0, y + 3, max(x1 - x0, 1.5), row_h - 8, color, _e(p["name"]), _e(human_seconds(p["seconds"]))))
        out.append('<text x="%.1f" y="%d" fill="%s">%s</text>' % (x1 + 4, y + 15, COLORS["muted"],
                                                                 _e(human_seconds(p["seconds"]))))
    if rto_target:
        x = sx(float(rto_target))
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="6 4"/>'
                   % (x, top - 10, x, h - 30, COLORS["crit"]))
        out.append('<text x="%.1f" y="%d" text-anchor="end" fill="%s">RTO target %s</text>'
                   % (x - 4, top - 12, COLORS["crit"], _e(human_seconds(rto_target))))
    out.append("</svg>")
    return "\n".join(out)


def svg_age_bars(items, title="Age vs threshold"):
    """One bar per item: age as a fraction of its threshold (line at 100 %)."""
    label_w, chart_w, row_h, top = 300, 420, 22, 30
    h = top + row_h * max(len(items), 1) + 30
    w = label_w + chart_w + 150
    cap = 1.5
    sx = lambda r: label_w + chart_w * min(r, cap) / cap  # noqa: E731
    out = ['<svg xmlns="http://www.w3.org/2000/svg" class="chart ages" role="img" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' % (w, h, w, h),
           '<title>%s</title>' % _e(title),
           '<text x="4" y="16" font-weight="bold" fill="%s">%s</text>' % (COLORS["text"], _e(title))]
    if not items:
        out.append('<text x="4" y="%d" fill="%s">no data</text>' % (top + 14, COLORS["muted"]))
    for i, it in enumerate(items):
        y = top + i * row_h
        age, thr = it.get("age"), it.get("threshold")
        out.append('<text x="4" y="%d" fill="%s">%s</text>' % (y + 14, COLORS["text"], _e(it["label"])))
        if age is None:
            out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>' % (label_w, y + 3, chart_w, row_h - 7,
                                                                                     COLORS["crit"]))
            out.append('<text x="%d" y="%d" fill="#fff">never</text>' % (label_w + 6, y + 14))
            continue
        r = age / thr if thr else 0
        color = COLORS["ok"] if r < 0.8 else COLORS["warn"] if r <= 1 else COLORS["crit"]
        out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s" rx="2"><title>%s</title></rect>'
                   % (label_w, y + 3, max(sx(r) - label_w, 1.5), row_h - 7, color, _e(it["label"])))
        out.append('<text x="%d" y="%d" fill="%s">%s / %s</text>' % (label_w + chart_w + 6, y + 14, COLORS["muted"],
                                                                     _e(human_seconds(age)),
                                                                     _e(human_seconds(thr) if thr else "-")))
    x1 = sx(1.0)
    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="4 3"/>'
               % (x1, top - 4, x1, h - 24, COLORS["crit"]))
    out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="%s">threshold</text>' % (x1, h - 8, COLORS["crit"]))
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
    out = ['<svg xmlns="http://www.w3.org/2000/svg" class="chart capacity" role="img" width="%d" height="%d" '
           'viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">' % (w, h, w, h),
           '<title>%s</title>' % _e(title),
           '<text x="4" y="16" font-weight="bold" font-size="12" fill="%s">%s</text>' % (COLORS["text"], _e(title))]
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
            "certificates": certs, "media": media, "time_sync": timesync}


# ------------------------------------------------------------------ rendering
def _env():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined)
    env.filters.update(iso=iso, bytes=human_bytes, secs=human_seconds, e=_e,
                       pct=lambda v: "-" if _none(v) else "%.1f%%" % v,
                       md=lambda s: str(s).replace("|", "\\|").replace("\n", " "))
    return env


def charts(result):
    kind = result["kind"]
    out = {}
    if kind == "inspection":
        items = [{"label": "%s %s" % (j["host"], j["job"]), "age": j["age"], "threshold": j.get("max_age")}
                 for j in result["jobs"] if j.get("max_age")]
        out["jobs"] = svg_age_bars(items, "Backup / verify / pull jobs: age of last success vs threshold")
        rep = [{"label": "%s %s" % (r["host"], r["metric"]), "age": r["value"], "threshold": r.get("crit") or r.get("warn")}
               for r in result["replication"] if "metric" in r]
        out["replication"] = svg_age_bars(rep, "Replication lags and ages vs threshold") if rep else ""
        out["capacity"] = [svg_capacity(c, "%s %s" % (c["host"], c["mount_point"])) for c in result["capacity"]]
    elif kind == "drill":
        out["timeline"] = svg_timeline(result["phases"], result["targets"].get("rto_seconds"),
                                       "Drill %s: phases vs RTO target" % result["scenario"])
        rpo = result.get("rpo") or {}
        items = [{"label": k, "age": rpo.get(k), "threshold": result["targets"].get("rpo_seconds")}
                 for k in ("db_seconds", "files_seconds") if k in rpo]
        out["rpo"] = svg_age_bars(items, "RPO measured vs target")
    elif kind == "evidence":
        out["rto"] = svg_age_bars([{"label": "%s %s" % (d["id"], d["scenario"]), "age": d.get("rto_seconds"),
                                    "threshold": d.get("rto_target")} for d in result["drills"]],
                                  "Drill RTO vs target")
        out["rpo"] = svg_age_bars([{"label": "%s %s" % (d["id"], d["scenario"]), "age": d.get("rpo_seconds"),
                                    "threshold": d.get("rpo_target")} for d in result["drills"]],
                                  "Drill RPO vs target")
    return out


def render_markdown(result):
    return _env().get_template("%s.md.j2" % result["kind"]).render(r=result, now=time.time())


def render_html(result):
    env = _env()
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return env.get_template("%s.html.j2" % result["kind"]).render(r=result, c=charts(result), css=css, now=time.time())


def write(result, out_dir=DEFAULT_REPORTS):
    """Write <kind>-<id>.{json,md,html} into out_dir; return the three paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / ("%s-%s" % (result["kind"], result["id"]))
    paths = {"json": base.with_suffix(".json"), "md": base.with_suffix(".md"), "html": base.with_suffix(".html")}
    paths["json"].write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(render_markdown(result), encoding="utf-8")
    paths["html"].write_text(render_html(result), encoding="utf-8")
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
