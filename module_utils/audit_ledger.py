#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Append-only, hash-chained JSON-lines ledger (the audit trail of every change; stdlib only).

Used on the controller (callback_plugins/archive_dr_audit.py, archive_dr/audit.py) and at miyun
(roles/audit_ledger/files/audit_append.py, installed beside this file). One entry a line::

    {"seq": 7, "time": "2026-03-02T08:15:04.120391+00:00", "prev": "<hash of seq 6>",
     "record": {...}, "hash": "<sha256 of the canonical JSON of the entry without its hash>"}

The appender assigns seq, time, prev and hash itself (under an exclusive lock), so a writer that
can only hand over records (the miyun forced command) cannot shape the chain. ``verify`` names
the first broken seq: an altered entry (hash), a deleted, inserted or reordered one (seq/prev), a
torn or non-JSON line. A cut tail is invisible to the chain alone: ``verify(anchors=...)`` checks
receipts ((seq, hash) pairs kept elsewhere, e.g. the controller's) against it.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os

GENESIS = "0" * 64
FIELDS = ("seq", "time", "prev", "record", "hash")
# the longest line the reader accepts (a record is capped well below by its writers)
MAX_LINE = 16 * 1024 * 1024


class LedgerError(Exception):
    """The ledger cannot be appended to (its last line is torn or altered)."""


def canonical(obj) -> bytes:
    """The bytes an entry's hash is computed over: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in entry.items() if k != "hash"})).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def _last_line(fd: int) -> bytes:
    """The file's last line (without its newline); b"" for an empty file. Raises on a torn tail."""
    size = os.fstat(fd).st_size
    if size == 0:
        return b""
    if os.pread(fd, 1, size - 1) != b"\n":
        raise LedgerError("the ledger ends with an incomplete line (torn write or tampering): "
                          "run verify, nothing appended")
    pos, chunk, buf = size - 1, 65536, b""
    while pos > 0:
        start = max(0, pos - chunk)
        buf = os.pread(fd, pos - start, start) + buf
        pos = start
        nl = buf.rfind(b"\n")
        if nl >= 0:
            return buf[nl + 1:]
        if len(buf) > MAX_LINE:
            raise LedgerError("the ledger's last line is longer than %d bytes" % MAX_LINE)
    return buf


def append(path, record: dict, now: str | None = None) -> dict:
    """Append ``record`` as the next entry; returns the entry (seq, time, prev, hash).

    Exclusive flock for the whole read-last/append, one write, fsync. The file is created 0640."""
    if not isinstance(record, dict):
        raise TypeError("a ledger record is a JSON object")
    path = os.fspath(path)
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, mode=0o750, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last = _last_line(fd)
        if last:
            try:
                prev = json.loads(last)
                seq, prev_hash = int(prev["seq"]), str(prev["hash"])
            except (ValueError, KeyError, TypeError):
                raise LedgerError("the ledger's last line is not an entry: run verify, nothing appended")
            if entry_hash(prev) != prev_hash:
                raise LedgerError("the ledger's last entry (seq %d) does not match its hash: run verify, "
                                  "nothing appended" % seq)
        else:
            seq, prev_hash = 0, GENESIS
        entry = {"seq": seq + 1, "time": now or _now(), "prev": prev_hash, "record": record}
        entry["hash"] = entry_hash(entry)
        data = canonical(entry) + b"\n"
        if len(data) > MAX_LINE:
            raise LedgerError("record too large (%d bytes)" % len(data))
        os.write(fd, data)
        os.fsync(fd)
        return entry
    finally:
        os.close(fd)  # releases the lock


def read_lines(path):
    """(line number, raw bytes) of every line; the last one may lack its newline (torn)."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            yield n, raw


def verify(path, anchors=()) -> list[str]:
    """Problems of the chain, first broken seq first; [] when intact.

    ``anchors``: (seq, hash) receipts that must be in the ledger (a cut or rewritten tail)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return ["%s: no ledger" % path]
    problems: list[str] = []
    expect_seq, expect_prev = 1, GENESIS
    seen: dict[int, str] = {}
    for n, raw in read_lines(path):
        if not raw.endswith(b"\n"):
            problems.append("line %d (seq %d expected): incomplete last line (torn write or truncation)"
                            % (n, expect_seq))
            break
        try:
            e = json.loads(raw)
            if not isinstance(e, dict) or set(e) != set(FIELDS):
                raise ValueError("fields %s" % sorted(e) if isinstance(e, dict) else "not an object")
            seq = e["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool):
                raise ValueError("seq is not an integer")
        except ValueError as ex:
            problems.append("line %d (seq %d expected): not a ledger entry (%s)" % (n, expect_seq, ex))
            expect_seq += 1
            expect_prev = None      # unknown: the next entry's prev cannot be checked
            continue
        if entry_hash(e) != e["hash"]:
            problems.append("seq %d (line %d): altered, its hash does not match its content" % (seq, n))
        if seq != expect_seq:
            how = "entries deleted before it" if seq > expect_seq else "reordered or duplicated"
            problems.append("seq %d (line %d): seq %d expected (%s)" % (seq, n, expect_seq, how))
        elif expect_prev is not None and e["prev"] != expect_prev:
            problems.append("seq %d (line %d): prev does not match the hash of the entry before it "
                            "(an entry replaced, inserted or reordered)" % (seq, n))
        seen[seq] = e["hash"]
        # continue the chain from this entry: one deletion is one problem, not one per later entry
        expect_seq, expect_prev = seq + 1, e["hash"]
    for seq, h in anchors:
        if seen.get(int(seq)) != h:
            problems.append("seq %s: receipt %s... %s" % (seq, str(h)[:12], "not in the ledger (tail cut?)"
                                                          if int(seq) not in seen else "differs from the ledger"))
    return problems


def head(path) -> dict | None:
    """The last entry (seq, hash, time) or None for an empty/missing ledger."""
    last = None
    for e in _parsed(path):
        last = e
    return None if last is None else {"seq": last["seq"], "hash": last["hash"], "time": last["time"]}


def _parsed(path):
    if not os.path.exists(path):
        return
    for _n, raw in read_lines(path):
        try:
            e = json.loads(raw)
        except ValueError:
            continue
        if isinstance(e, dict) and isinstance(e.get("record"), dict) and "time" in e:
            yield e


def parse_time(value) -> _dt.datetime:
    """An aware UTC datetime from an ISO string, a datetime (naive: UTC) or a date (its midnight UTC)."""
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif isinstance(value, _dt.date) and not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc)


def entries(path, since=None, until=None) -> list[dict]:
    """Entries whose time is in [since, until]; a date ``until`` includes that whole day (UTC)."""
    lo = parse_time(since) if since is not None else None
    hi = None
    if until is not None:
        hi = parse_time(until)
        if isinstance(until, _dt.date) and not isinstance(until, _dt.datetime):
            hi += _dt.timedelta(days=1) - _dt.timedelta(microseconds=1)
    out = []
    for e in _parsed(path):
        try:
            t = parse_time(e["time"])
        except (ValueError, TypeError):
            continue
        if (lo is None or t >= lo) and (hi is None or t <= hi):
            out.append(e)
    return out
