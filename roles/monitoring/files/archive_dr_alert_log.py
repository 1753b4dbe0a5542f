#!/usr/bin/env python3
"""The alert log: Alertmanager's webhook receiver at the monitoring server (stdlib only).

Every notification Alertmanager sends (webhook payload version 4) is appended as one JSON
line to ``<dir>/alerts.jsonl`` with the time it arrived, and one line per alert goes to the
journal. The log is what the inspection and the evidence pack read to show which alerts were
raised and resolved, and when; it is independent of whether the mail relay delivered.

    archive_dr_alert_log.py serve --listen 127.0.0.1:9095 --dir /var/lib/archive-dr/alerts
    archive_dr_alert_log.py list  --dir /var/lib/archive-dr/alerts [--since UNIX_TIME]
"""
import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_NAME = "alerts.jsonl"
MAX_BODY = 1 << 20


def summarise(payload):
    """One line per alert of a webhook payload: 'firing critical ArchiveDrX job=y: summary'."""
    lines = []
    for alert in payload.get("alerts") or []:
        labels = alert.get("labels") or {}
        where = " ".join("%s=%s" % (k, v) for k, v in sorted(labels.items())
                         if k not in ("alertname", "severity"))
        lines.append("%s %s %s %s: %s" % (alert.get("status", "?"), labels.get("severity", "-"),
                                          labels.get("alertname", "?"), where,
                                          (alert.get("annotations") or {}).get("summary", "")))
    return lines


def append(log_dir, payload, received=None):
    """Append one notification as a JSON line (fsynced: an alert log that loses lines is none)."""
    record = {"received": time.time() if received is None else received, "payload": payload}
    path = os.path.join(log_dir, LOG_NAME)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def read_log(log_dir, since=0.0):
    """The notifications received at or after ``since`` (lines that do not parse are skipped)."""
    out = []
    try:
        with open(os.path.join(log_dir, LOG_NAME), encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if float(rec.get("received", 0)) >= since:
                    out.append(rec)
    except FileNotFoundError:
        pass
    return out


def make_handler(log_dir):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                self.send_error(400, "body missing or larger than %d bytes" % MAX_BODY)
                return
            try:
                payload = json.loads(self.rfile.read(length))
                if not isinstance(payload, dict):
                    raise ValueError("not an object")
            except ValueError as e:
                self.send_error(400, "not a JSON object: %s" % e)
                return
            append(log_dir, payload)
            for line in summarise(payload):
                print("alert: " + line, flush=True)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, fmt, *args):  # the journal gets the alerts, not the access log
            pass

    return Handler


def main(argv=None):
    p = argparse.ArgumentParser(prog="archive_dr_alert_log.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="receive Alertmanager's webhook notifications")
    s.add_argument("--listen", default="127.0.0.1:9095")
    s.add_argument("--dir", required=True)
    ls = sub.add_parser("list", help="print the logged alerts, one line each")
    ls.add_argument("--dir", required=True)
    ls.add_argument("--since", type=float, default=0.0)
    a = p.parse_args(argv)
    if a.cmd == "list":
        for rec in read_log(a.dir, a.since):
            for line in summarise(rec["payload"]):
                print("%s %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec["received"])), line))
        return 0
    host, _, port = a.listen.rpartition(":")
    os.makedirs(a.dir, exist_ok=True)
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), make_handler(a.dir))
    print("alert log: listening on %s, writing %s" % (a.listen, os.path.join(a.dir, LOG_NAME)), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
