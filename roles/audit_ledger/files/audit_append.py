#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""The miyun side of the audit trail: the only way a controller writes to the ledger.

Installed as ``/usr/local/lib/archive-dr/audit_append.py`` with ``audit_ledger.py`` beside it, and
run as the forced command of the append-only SSH account (``command="...",restrict`` in its
authorized_keys), so whatever the client asks for, this program runs. What the client asked for
is in ``$SSH_ORIGINAL_COMMAND``:

    (empty) or ``append``   read ONE JSON record on stdin, validate it, append it; print the receipt
                            {"seq", "hash", "time"} as JSON
    ``verify``              check the chain; exit 1 and print the problems when it is broken
    ``dump``                print the ledger as it is (the controller verifies and lists it)

Run by hand (or by the verify timer) the same verbs are options: ``--verify``, ``--dump``.
Exit status: 0 done, 1 broken chain / ledger error, 2 rejected record or unknown verb.
The entry's seq, time, prev and hash are assigned here, never taken from the client.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audit_ledger  # noqa: E402  (installed beside this program)

DEFAULT_LEDGER = "/var/lib/archive-dr/audit/ledger.jsonl"
MAX_BYTES = 1024 * 1024
# field: type(s) every record must carry
REQUIRED = {"kind": str, "operator": dict, "controller": str, "started": str, "finished": str, "result": str}
KINDS = ("playbook-run",)


class Rejected(ValueError):
    pass


def validate(data: bytes, max_bytes: int = MAX_BYTES) -> dict:
    """The record in ``data`` (one JSON object with the required fields) or Rejected."""
    if len(data) > max_bytes:
        raise Rejected("record larger than %d bytes" % max_bytes)
    if not data.strip():
        raise Rejected("no record on stdin")
    try:
        rec = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Rejected("not JSON: %s" % e)
    if not isinstance(rec, dict):
        raise Rejected("a record is a JSON object")
    for name, typ in REQUIRED.items():
        if name not in rec:
            raise Rejected("field %r missing" % name)
        if not isinstance(rec[name], typ):
            raise Rejected("field %r is not a %s" % (name, typ.__name__))
    if rec["kind"] not in KINDS:
        raise Rejected("kind %r is not one of %s" % (rec["kind"], ", ".join(KINDS)))
    if not isinstance(rec["operator"].get("user"), str) or not rec["operator"]["user"]:
        raise Rejected("operator.user missing")
    return rec


def do_append(ledger: str, stdin, stdout, max_bytes: int = MAX_BYTES, environ=None) -> int:
    data = stdin.read(max_bytes + 1)
    try:
        rec = validate(data, max_bytes)
    except Rejected as e:
        print("audit_append: rejected: %s" % e, file=sys.stderr)
        return 2
    # who delivered it, as sshd saw it (the client cannot set this)
    conn = (os.environ if environ is None else environ).get("SSH_CONNECTION", "").split()
    rec = dict(rec, received_from=conn[0] if conn else "local")
    try:
        e = audit_ledger.append(ledger, rec)
    except audit_ledger.LedgerError as ex:
        print("audit_append: %s" % ex, file=sys.stderr)
        return 1
    stdout.write(json.dumps({"seq": e["seq"], "hash": e["hash"], "time": e["time"]}) + "\n")
    return 0


def do_verify(ledger: str, stdout) -> int:
    if not os.path.exists(ledger):
        stdout.write("ok: %s is empty (no entry yet)\n" % ledger)
        return 0
    problems = audit_ledger.verify(ledger)
    if problems:
        stdout.write("BROKEN: %s\n" % ledger)
        for p in problems:
            stdout.write("  %s\n" % p)
        return 1
    h = audit_ledger.head(ledger)
    stdout.write("ok: %s, %s\n" % (ledger, "seq 1..%d, head %s" % (h["seq"], h["hash"]) if h else "no entry yet"))
    return 0


def do_dump(ledger: str, stdout) -> int:
    if os.path.exists(ledger):
        with open(ledger, "rb") as f:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    break
                stdout.write(chunk)
    return 0


def main(argv=None, stdin=None, stdout=None, environ=None) -> int:
    environ = os.environ if environ is None else environ
    p = argparse.ArgumentParser(prog="audit_append.py", description=__doc__.splitlines()[0])
    p.add_argument("--ledger", default=environ.get("ARCHIVE_DR_AUDIT_LEDGER", DEFAULT_LEDGER))
    p.add_argument("--max-bytes", type=int, default=MAX_BYTES)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--verify", action="store_true", help="check the chain; exit 1 when broken")
    g.add_argument("--dump", action="store_true", help="print the ledger")
    a = p.parse_args(argv)
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout_text = stdout if stdout is not None else sys.stdout
    verb = "verify" if a.verify else "dump" if a.dump else None
    if verb is None:
        asked = environ.get("SSH_ORIGINAL_COMMAND", "").strip()
        verb = asked or "append"
        if verb not in ("append", "verify", "dump"):
            print("audit_append: unknown request %r (append, verify, dump)" % asked[:80], file=sys.stderr)
            return 2
    if verb == "verify":
        return do_verify(a.ledger, stdout_text)
    if verb == "dump":
        out = getattr(stdout_text, "buffer", stdout_text)
        rc = do_dump(a.ledger, out)
        out.flush()
        return rc
    return do_append(a.ledger, stdin, stdout_text, a.max_bytes, environ)


if __name__ == "__main__":
    sys.exit(main())
