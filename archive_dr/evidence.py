"""Evidence pack (使用情况报告): drills and inspections of a period, with the indicator table.

``archive-dr evidence --from 2026-01-01 --to 2026-06-30 [--reports reports/] [--out DIR]``

Reads the drill and inspection results (``reports/{drill,inspection}-*.json``)
whose finish time falls in the period, and writes
``reports/evidence-<from>_<to>/`` with ``evidence-<from>_<to>.{json,md,html}``
and a copy of every report it cites. Indicators, each measured vs the target
in the inventory (``dr_targets``):

* RTO and RPO: the worst drill of the period (timeliness, 时效指标);
* backup success rate: successful job runs / all job runs (journal counts
  collected by each inspection since the previous one);
* verification coverage: protected systems whose verify/check job succeeded
  within its threshold, at every inspection (the lowest is reported);
* restore tests run: drills (each ends with a restore and the four-property check);
* four-property checks passed / run;
* drills and inspections done vs the schedule;
* issues found and repaired: critical and warning findings, repaired when a
  later inspection no longer reports them.

And the DR history of the period (灾备历史), from what each inspection read on
the hosts since the previous one (``dr_history``, ``alerts``), every event
counted once however many inspections saw it: quarantines and the operator
releases that ended them (who, when, why, into which snapshot), the
verification runs per job (worst outcome, damaged snapshots) and the alerts
Alertmanager sent (fired / resolved per alert).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path

from archive_dr import audit, paths, report
from archive_dr.inventory import Inventory


def _day(s):
    return dt.datetime.strptime(s, "%Y-%m-%d").date()


def _ts_day(ts):
    return dt.datetime.fromtimestamp(float(ts)).date()


def load_targets(inventory):
    """dr_targets of the inventory (its ordered sources), templated; no vault needed."""
    return Inventory(paths.sources(inventory, []), vault=False).group_vars("all", ["dr_targets"]).get("dr_targets", {})


def collect(reports_dir, start, end):
    """(drills, inspections) results whose finish date is within [start, end], oldest first."""
    drills, inspections = [], []
    for p in sorted(Path(reports_dir).glob("*.json")):
        if not p.name.startswith(("drill-", "inspection-")):
            continue
        try:
            r = json.loads(p.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if not (start <= _ts_day(r.get("finished") or 0) <= end):
            continue
        r["_path"] = p
        (drills if r.get("kind") == "drill" else inspections if r.get("kind") == "inspection" else []).append(r)
    key = lambda r: float(r.get("finished") or 0)  # noqa: E731
    return sorted(drills, key=key), sorted(inspections, key=key)


def issues(inspections):
    """Critical/warning findings across the period's inspections, repaired when a later one no longer has them."""
    seen = {}
    for insp in inspections:
        keys = set()
        for f in insp["findings"]:
            if f["severity"] not in ("critical", "warning"):
                continue
            k = (f["host"], f["check"], str(f["item"]))
            keys.add(k)
            if k not in seen or seen[k].get("repaired"):
                seen[k] = {"host": f["host"], "check": f["check"], "item": str(f["item"]), "severity": f["severity"],
                           "message": f["message"], "first_seen": insp["id"], "repaired": False}
        for k, x in seen.items():
            if k not in keys and not x["repaired"]:
                x["repaired"] = True
                x["resolved_in"] = insp["id"]
    return sorted(seen.values(), key=lambda x: (x["first_seen"], x["host"], x["check"], x["item"]))


def _pct(a, b):
    return None if not b else 100.0 * a / b


def indicators(drills, inspections, targets, start, end):
    out = []

    def add(name, category, target, measured, met, target_text, measured_text, source):
        out.append({"name": name, "category": category, "target": target, "measured": measured, "met": met,
                    "target_text": target_text, "measured_text": measured_text, "source": source})

    rto_t, rpo_t = targets.get("rto_seconds"), targets.get("rpo_seconds")
    destructive = [d for d in drills if d.get("rto_seconds") is not None]
    if destructive:
        worst = max(destructive, key=lambda d: d["rto_seconds"])
        add("RTO 恢复时间 (最差一次演练)", "时效", rto_t, worst["rto_seconds"], worst["rto_seconds"] <= rto_t,
            report.human_seconds(rto_t), report.human_seconds(worst["rto_seconds"]), "drill %s" % worst["id"])
    else:
        add("RTO 恢复时间", "时效", rto_t, None, None, report.human_seconds(rto_t), "本期无演练", report.DASH)
    with_rpo = [d for d in drills if d.get("rpo_seconds") is not None]
    # drills whose RPO was not measured (only a lower bound, or nothing): they count against the indicator,
    # never for it — the worst RPO of the period is unknown while one of them is there
    unmeasured = [d for d in drills if d.get("rpo_seconds") is None and d.get("rto_seconds") is not None]
    bounds = [rpo_bound(d) for d in unmeasured]
    if with_rpo or unmeasured:
        worst = max(with_rpo, key=lambda d: d["rpo_seconds"]) if with_rpo else None
        met = worst["rpo_seconds"] <= rpo_t if worst else None
        text = report.human_seconds(worst["rpo_seconds"]) if worst else "未实测 not measured"
        source = "drill %s" % worst["id"] if worst else ""
        if unmeasured:
            text += "；%d 次演练 RPO 未实测 not measured (%s)" % (len(unmeasured), ", ".join(
                "≥ %s" % report.human_seconds(b) if b is not None else "unknown" for b in bounds))
            source = "; ".join(x for x in (source, "not measured: " + ", ".join(d["id"] for d in unmeasured)) if x)
            met = False if any(b is not None and b > rpo_t for b in bounds) or met is False else None
        add("RPO 数据丢失 (最差一次演练)", "时效", rpo_t, worst["rpo_seconds"] if worst else None, met,
            report.human_seconds(rpo_t), text, source)
    else:
        add("RPO 数据丢失", "时效", rpo_t, None, None, report.human_seconds(rpo_t), "本期无演练", report.DASH)
    # backup success rate from the journal counts of each inspection
    ok = bad = 0
    for insp in inspections:
        for j in insp.get("jobs", []):
            ok += int(j.get("runs_ok") or 0)
            bad += int(j.get("runs_failed") or 0)
    rate = _pct(ok, ok + bad)
    t = targets.get("backup_success_rate_pct")
    add("备份作业成功率", "质量", t, rate, None if rate is None else rate >= t, "≥ %.1f%%" % t,
        report.DASH if rate is None else "%.2f%% (%d/%d)" % (rate, ok, ok + bad), "%d inspections (journal)" % len(inspections))
    # verification coverage
    covs = []
    for insp in inspections:
        systems = {j.get("system") for j in insp.get("jobs", []) if j.get("system")}
        verified = {j.get("system") for j in insp.get("jobs", [])
                    if j.get("kind") in ("verify", "check") and j.get("age") is not None and j.get("max_age")
                    and j["age"] <= j["max_age"] and j.get("outcome") == "success"}
        if systems:
            covs.append((_pct(len(verified & systems), len(systems)), insp["id"]))
    t = targets.get("verification_coverage_pct")
    if covs:
        low = min(covs)
        add("校验覆盖率 (最低一次巡检)", "质量", t, low[0], low[0] >= t, "%.0f%%" % t, "%.0f%%" % low[0],
            "inspection %s" % low[1])
    else:
        add("校验覆盖率", "质量", t, None, None, "%.0f%%" % t, "本期无巡检数据", report.DASH)
    # restore tests
    t = targets.get("restore_tests_per_period", 1)
    add("恢复测试次数 (演练)", "数量", t, len(drills), len(drills) >= t, "≥ %d" % t, str(len(drills)),
        ", ".join(d["id"] for d in drills) or report.DASH)
    checks = [v for d in drills for v in d.get("verify", [])]
    passed = sum(1 for v in checks if v.get("passed"))
    add("四性检测通过", "质量", len(checks), passed, passed == len(checks) if checks else None,
        "%d/%d" % (len(checks), len(checks)), "%d/%d" % (passed, len(checks)), "drills")
    days = (end - start).days + 1
    exp_insp = max(1, days // int(targets.get("inspection_interval_days", 31)))
    add("月度巡检次数", "数量", exp_insp, len(inspections), len(inspections) >= exp_insp, "≥ %d" % exp_insp,
        str(len(inspections)), "reports")
    exp_drill = max(1, days // int(targets.get("drill_interval_days", 183)))
    add("灾备演练次数", "数量", exp_drill, len(drills), len(drills) >= exp_drill, "≥ %d" % exp_drill, str(len(drills)),
        "reports")
    iss = issues(inspections)
    rep = sum(1 for x in iss if x["repaired"])
    add("发现问题 / 已修复", "效益", len(iss), rep, rep == len(iss) if iss else None, "全部修复",
        "%d / %d" % (len(iss), rep), "inspections")
    return out, iss


OUTCOME_RANK = {"ok": 0, "repaired": 1, "damaged": 2}      # verification outcomes, worst last


def _in(ts, start, end):
    return ts is not None and start <= _ts_day(ts) <= end


def history(inspections, start, end):
    """The DR history of the period from the inspections' ``dr_history`` (per host and job) and ``alerts``
    (and, for the verification, their ``jobs``). Each event is counted once: a release by (job, time), a
    verification run by (job, time), a quarantine by (job, since), an alert notification by what it says.

    * ``releases``: one row per quarantine, released (by, reason, snapshot, released_at) or still held at
      the last inspection that saw it (``held_at``); releases of the period, quarantines seen held in it;
    * ``verification``: per host and job, the runs of the period by outcome, the worst, the damaged snapshots;
    * ``alerts``: per alert (name, severity, instance, job), the firing and resolved episodes (an episode is
      one ``startsAt``: Alertmanager repeats a firing notification until it resolves), notifications, first/last.
    """
    releases, held, runs, damaged, notes = {}, {}, {}, {}, {}
    dropped = {"releases": 0, "verify_runs": 0, "alerts": 0}
    for insp in inspections:
        for h in insp.get("dr_history") or []:
            job, host = h.get("job"), h.get("host")
            for r in h.get("releases") or []:
                if _in(r.get("time"), start, end):
                    releases.setdefault((job, float(r["time"])), dict(r, job=job, host=host, seen_in=insp["id"]))
            for v in h.get("verify_runs") or []:
                if _in(v.get("time"), start, end):
                    runs.setdefault((job, float(v["time"])), dict(v, job=job, host=host))
            dropped["releases"] += int(h.get("releases_dropped") or 0)
            dropped["verify_runs"] += int(h.get("verify_runs_dropped") or 0)
        for j in list(insp.get("dr_history") or []) + list(insp.get("jobs") or []):
            job, host = j.get("job"), j.get("host")
            q = j.get("quarantine")
            if isinstance(q, dict) and q.get("since") is not None:
                held[(job, float(q["since"]))] = {"job": job, "host": host, "since": float(q["since"]),
                                                   "findings": list(q.get("findings") or []), "held_at": insp["id"]}
            v = j.get("verify")
            if isinstance(v, dict) and _in(v.get("time"), start, end):
                runs.setdefault((job, float(v["time"])), dict(v, job=job, host=host))
            if j.get("damaged_snapshots"):
                damaged.setdefault((host, job), set()).update(j["damaged_snapshots"])
        for a in insp.get("alerts") or []:
            if _in(a.get("received"), start, end):
                notes.setdefault(tuple(a.get(k) for k in ("received", "status", "alertname", "severity", "instance",
                                                          "job", "starts_at")), a)
        dropped["alerts"] += int(insp.get("alerts_dropped") or 0)
    return {"releases": _release_rows(releases, held), "verification": _verify_rows(runs, damaged),
            "alerts": _alert_rows(notes.values()), "notifications": len(notes), "dropped": dropped}


def _release_rows(releases, held):
    rows, ended = [], set()
    for (job, t), r in sorted(releases.items(), key=lambda kv: kv[0][1]):
        q = r.get("quarantine") or {}
        if q.get("since") is not None:
            ended.add((job, float(q["since"])))
        rows.append({"job": job, "host": r.get("host"), "held_since": q.get("since"),
                     "findings": list(q.get("findings") or []), "released_at": t, "by": r.get("by"),
                     "reason": r.get("reason"), "snapshot": r.get("snapshot"), "held_at": None,
                     "seen_in": r.get("seen_in")})
    for key, q in sorted(held.items(), key=lambda kv: kv[0][1]):
        if key not in ended:
            rows.append({"job": q["job"], "host": q["host"], "held_since": q["since"], "findings": q["findings"],
                         "released_at": None, "by": None, "reason": None, "snapshot": None, "held_at": q["held_at"],
                         "seen_in": q["held_at"]})
    return rows


def _verify_rows(runs, damaged):
    per = {}
    for v in runs.values():
        per.setdefault((v.get("host"), v.get("job")), []).append(v)
    rows = []
    for host, job in sorted(set(per) | set(damaged), key=lambda k: (str(k[0]), str(k[1]))):
        vs = sorted(per.get((host, job), []), key=lambda v: float(v["time"]))
        count = {o: sum(1 for v in vs if v.get("outcome") == o) for o in OUTCOME_RANK}
        names = set(damaged.get((host, job), ())) | {v["snapshot"] for v in vs
                                                    if v.get("snapshot") and v.get("snapshot_damaged")}
        outcomes = [v.get("outcome") for v in vs]
        rows.append({"host": host, "job": job, "runs": len(vs), "ok": count["ok"], "repaired": count["repaired"],
                     "damaged": count["damaged"], "other": len(vs) - sum(count.values()),
                     "worst": max(outcomes, key=lambda o: OUTCOME_RANK.get(o, len(OUTCOME_RANK))) if outcomes else None,
                     "first": vs[0]["time"] if vs else None, "last": vs[-1]["time"] if vs else None,
                     "last_outcome": outcomes[-1] if outcomes else None, "damaged_snapshots": sorted(names)})
    return rows


def _episodes(notes, status):
    """Alert episodes (one ``startsAt``, else one notification) with a notification of this status."""
    return len({a.get("starts_at") or a["received"] for a in notes if a.get("status") == status})


def _alert_rows(notes):
    per = {}
    for a in notes:
        per.setdefault(tuple(a.get(k) for k in ("alertname", "severity", "instance", "job")), []).append(a)
    rows = []
    for (name, severity, instance, job), xs in sorted(per.items(), key=lambda kv: tuple(str(x) for x in kv[0])):
        rows.append({"alertname": name, "severity": severity, "instance": instance, "job": job,
                     "fired": _episodes(xs, "firing"), "resolved": _episodes(xs, "resolved"), "notifications": len(xs),
                     "first": min(float(a["received"]) for a in xs), "last": max(float(a["received"]) for a in xs)})
    return rows


def rpo_bound(d):
    """The lower bound of a drill's RPO when it was not measured (None when there is none)."""
    overall = (d.get("rpo") or {}).get("overall") or {}
    return overall.get("seconds") if overall.get("bound") == "lower" else None


def build(reports_dir, start, end, targets):
    drills, inspections = collect(reports_dir, start, end)
    ind, iss = indicators(drills, inspections, targets, start, end)

    def rel(r, ext):
        return r["_path"].with_suffix(ext).name

    return {
        "kind": "evidence", "id": "%s_%s" % (start.isoformat(), end.isoformat()),
        "period": {"from": start.isoformat(), "to": end.isoformat()}, "generated": time.time(),
        "finished": time.time(), "targets": targets, "indicators": ind, "issues": iss,
        "drills": [{"id": d["id"], "scenario": d["scenario"], "mode": d.get("mode"), "rto_seconds": d.get("rto_seconds"),
                    "rpo_seconds": d.get("rpo_seconds"), "rpo_bound": rpo_bound(d),
                    "rto_target": d["targets"].get("rto_seconds"),
                    "rpo_target": d["targets"].get("rpo_seconds"), "passed": d.get("passed"),
                    "verify_total": len(d.get("verify", [])),
                    "verify_passed": sum(1 for v in d.get("verify", []) if v.get("passed")),
                    "level": (d.get("level") or {}).get("level"), "html": rel(d, ".html"), "md": rel(d, ".md")}
                   for d in drills],
        "dr_history": history(inspections, start, end),
        "inspections": [{"id": i["id"], "finished": i["finished"], "critical": i["counts"]["critical"],
                         "warning": i["counts"]["warning"], "passed": i["passed"], "html": rel(i, ".html"),
                         "md": rel(i, ".md")} for i in inspections],
        "_sources": [str(r["_path"]) for r in drills + inspections],
    }


def write(result, out_dir, pdf=None):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for src in result.pop("_sources", []):
        for ext in (".json", ".md", ".html", ".pdf"):
            p = Path(src).with_suffix(ext)
            if p.exists():
                shutil.copy2(p, out_dir / p.name)
        logs = Path(src).with_name(Path(src).stem + "-logs")        # a drill's full phase logs
        if logs.is_dir():
            shutil.copytree(logs, out_dir / logs.name, dirs_exist_ok=True)
    return report.write(result, out_dir, pdf=pdf)


def main(argv=None):
    p = argparse.ArgumentParser(prog="archive-dr evidence", description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="start", required=True, type=_day, help="first day (YYYY-MM-DD)")
    p.add_argument("--to", dest="end", required=True, type=_day, help="last day (YYYY-MM-DD)")
    p.add_argument("--reports", default=str(paths.REPORTS), help="where drill/inspection reports are")
    p.add_argument("--inventory", action="append",
                   help="an inventory source with dr_targets, repeatable in order (default: the lab inventory)")
    p.add_argument("--out", help="output directory (default: <reports>/evidence-<from>_<to>)")
    a = p.parse_args(argv)
    if a.end < a.start:
        p.error("--to is before --from")
    inventory = paths.sources(a.inventory, paths.default_lab_inventory())
    res = build(a.reports, a.start, a.end, load_targets(inventory))
    out = a.out or str(Path(a.reports) / ("evidence-%s" % res["id"]))
    res["audit"] = audit.section(a.start, a.end, work_dir=out, inventory=inventory)
    written = write(res, out)
    written.update({"audit-" + k: v for k, v in audit.write(res["audit"], out, res["id"]).items()})
    for i in res["indicators"]:
        print("%-28s target %-12s measured %-22s %s" % (i["name"], i["target_text"], i["measured_text"],
                                                         "-" if i["met"] is None else ("met" if i["met"] else "NOT MET")))
    trail = res["audit"]
    print("audit trail: %d runs, %d changed tasks, chain %s" % (
        trail["runs"], trail["changed_tasks"],
        "intact" if trail["verified"] else "NOT VERIFIED: " + "; ".join(trail["problems"])))
    print(json.dumps({k: str(v) for k, v in written.items()}, ensure_ascii=False))
    return 0 if trail["verified"] else 1


if __name__ == "__main__":
    sys.exit(main())
