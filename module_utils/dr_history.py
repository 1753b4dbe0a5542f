#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""DR history that production cannot destroy and that never rots unnoticed (stdlib only, pure).

The decisions the DR site (miyun) takes about what it pulled from production (geo); no I/O,
no Ansible, Python 3.11 stdlib, so it runs next to ``replica_tool.py`` on Debian 12:

- **Restore points** from the tools' own JSON: ``pgbackrest info --output=json``
  (:func:`parse_pgbackrest_info`) and ``restic snapshots --json`` (:func:`parse_restic_snapshots`),
  as :class:`RestorePoint` (kind, id, aware UTC time, fingerprint). :func:`dump_points` /
  :func:`load_points` keep the accepted set between pulls.
- **Quarantine gate** (:func:`gate`): compares a pull's restore points with the newest accepted
  set. Critical findings (vanished, rewritten, future, burst, backdated, ...) mean: do not accept
  this pull as history and freeze retention.
- **File-tree gate** (:func:`file_change_findings`): a mass rewrite of the file replica
  (ransomware) by share of changed files, format checks (:func:`format_ok`) and, as a second
  signal only, a jump in Shannon entropy (:func:`shannon_entropy`).
- **Retention by calendar time** (:func:`retention_plan`): grandfather-father-son buckets
  counted from ``now`` in calendar days / ISO weeks / months / years, ``yearly`` the per-system
  statutory period (``None`` = permanent), everything younger than ``min_age_keep`` kept,
  ``frozen`` while quarantined. Points younger than ``min_age_keep`` can never push out a point
  that was kept (see the proof in the docstring).
- **Verification rotation** (:func:`read_data_subset`, :func:`verification_cost`) for
  ``restic check --read-data-subset=n/t``.

See docs/dr-history.md for what each check answers and why the defaults are what they are.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass

UTC = dt.timezone.utc
# Beijing has had no daylight saving time since 1991: a fixed offset is exact and needs no tzdata.
BEIJING = dt.timezone(dt.timedelta(hours=8), "CST")

CRITICAL = "critical"
WARNING = "warning"

# pgBackRest backup-set fields that are written once, when the backup completes: if any of them
# differs for the same label, the set was rewritten (or its backup.info forged). Left out on
# purpose: "annotation" (changed legitimately by `pgbackrest annotate`), "error" (a flag), and
# "backrest" (the writing version; not part of what would be restored).
PGBACKREST_FINGERPRINT_FIELDS = ("label", "type", "timestamp", "prior", "reference", "archive", "lsn",
                                 "info", "database")


# ---------------------------------------------------------------- restore points
@dataclass(frozen=True)
class RestorePoint:
    """One restore point: a pgBackRest backup set or a restic snapshot (or any point with a time).

    ``time`` is an aware datetime, normalised to UTC. ``fingerprint`` is what would change if the
    point were rewritten (pgBackRest: a hash of the set's immutable fields; restic: the tree id).
    ``series`` groups points that are ordered in time (a stanza, a restic repository).
    """

    kind: str
    id: str
    time: dt.datetime
    fingerprint: str
    series: str = ""
    label: str = ""          # human name: pgBackRest label, restic short id
    parent: str | None = None    # pgBackRest prior / restic parent
    original: str | None = None  # restic: the snapshot this one was rewritten from (rewrite, tag)
    detail: str = ""         # backup type (full/diff/incr) or restic paths

    def __post_init__(self):
        if not isinstance(self.time, dt.datetime) or self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("restore point %s: time must be an aware datetime, got %r" % (self.id, self.time))
        object.__setattr__(self, "time", self.time.astimezone(UTC))

    @property
    def name(self):
        return self.label or self.id


def _canonical_hash(obj):
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _load_json(text, what):
    try:
        return json.loads(text) if isinstance(text, (str, bytes, bytearray)) else text
    except ValueError as e:
        raise ValueError("%s: not JSON: %s" % (what, e)) from None


def parse_pgbackrest_info(text, stanza=None):
    """Restore points from ``pgbackrest info --output=json`` (text, or the already loaded list).

    The output is a list of stanzas ``{"name", "status", "backup": [...], ...}``; each backup set
    has ``label``, ``type`` (full/diff/incr), ``timestamp: {start, stop}`` (Unix seconds),
    ``prior``, ``reference``, ``archive``, ``info: {size, delta, repository: {...}}``,
    ``database: {id, repo-key}``. The point's time is ``timestamp.stop`` (the set is consistent
    from then on), its id ``STANZA:LABEL`` (``STANZA:repoN:LABEL`` for a repository key other
    than 1). Only ``stanza`` when given.
    """
    data = _load_json(text, "pgbackrest info")
    if not isinstance(data, list):
        raise ValueError("pgbackrest info: expected a list of stanzas")
    points = []
    for entry in data:
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError("pgbackrest info: stanza without a name")
        if stanza is not None and entry["name"] != stanza:
            continue
        for b in entry.get("backup") or []:
            label = b.get("label") if isinstance(b, dict) else None
            ts = b.get("timestamp") if isinstance(b, dict) else None
            if not label or not isinstance(ts, dict):
                raise ValueError("pgbackrest info %s: backup set without label or timestamp" % entry["name"])
            stop = ts.get("stop") if ts.get("stop") is not None else ts.get("start")
            if not isinstance(stop, (int, float)) or isinstance(stop, bool):
                raise ValueError("pgbackrest info %s: backup %s has no numeric timestamp" % (entry["name"], label))
            repo_key = (b.get("database") or {}).get("repo-key", 1)
            pid = ("%s:%s" % (entry["name"], label) if repo_key in (1, None)
                   else "%s:repo%s:%s" % (entry["name"], repo_key, label))
            points.append(RestorePoint(
                kind="pgbackrest", id=pid, time=dt.datetime.fromtimestamp(stop, UTC),
                fingerprint=_canonical_hash({k: b.get(k) for k in PGBACKREST_FINGERPRINT_FIELDS}),
                series=entry["name"], label=label, parent=b.get("prior"), detail=str(b.get("type") or "")))
    return sorted(points, key=lambda p: (p.time, p.id))


_FRACTION = re.compile(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)?$")


def parse_rfc3339(value):
    """Aware UTC datetime from restic's RFC 3339 time (nanoseconds, offset or Z)."""
    m = _FRACTION.match(value or "")
    if not m or not m.group(3):
        raise ValueError("not an RFC 3339 time with a time zone: %r" % (value,))
    frac = (m.group(2) or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat("%s.%s%s" % (m.group(1), frac, zone)).astimezone(UTC)


def parse_restic_snapshots(text, repo=""):
    """Restore points from ``restic snapshots --json`` (also its ``--group-by`` form).

    Each snapshot has ``id``, ``short_id``, ``time`` (RFC 3339 with zone), ``tree``, ``paths``,
    ``hostname``, ``tags``, ``parent``, and ``original`` after ``rewrite``/``tag``. A snapshot's id is
    the hash of its own file, so the tree is its fingerprint. ``repo`` names the series (one
    restic repository per protected system); without it, ``hostname:paths``.
    """
    data = _load_json(text, "restic snapshots")
    if not isinstance(data, list):
        raise ValueError("restic snapshots: expected a list")
    snaps = []
    for item in data:
        if isinstance(item, dict) and isinstance(item.get("snapshots"), list) and "id" not in item:
            snaps.extend(item["snapshots"])     # --group-by: [{"group_key": ..., "snapshots": [...]}]
        else:
            snaps.append(item)
    points = []
    for s in snaps:
        if not isinstance(s, dict) or not s.get("id") or not s.get("tree") or not s.get("time"):
            raise ValueError("restic snapshots: entry without id, tree or time: %r" % (s,))
        paths = list(s.get("paths") or [])
        points.append(RestorePoint(
            kind="restic", id=s["id"], time=parse_rfc3339(s["time"]), fingerprint=s["tree"],
            series=repo or "%s:%s" % (s.get("hostname", ""), ",".join(paths)),
            label=s.get("short_id") or s["id"][:8], parent=s.get("parent"), original=s.get("original"),
            detail=",".join(paths)))
    return sorted(points, key=lambda p: (p.time, p.id))


def dump_points(points):
    """JSON text of restore points (to keep the newest accepted set between pulls)."""
    rows = []
    for p in sorted(points, key=lambda p: (p.time, p.id)):
        d = dataclasses.asdict(p)
        d["time"] = p.time.isoformat()
        rows.append(d)
    return json.dumps(rows, indent=1, sort_keys=True) + "\n"


def load_points(text):
    """Restore points from :func:`dump_points` text."""
    rows = _load_json(text, "restore points")
    if not isinstance(rows, list):
        raise ValueError("restore points: expected a list")
    fields = {f.name for f in dataclasses.fields(RestorePoint)}
    out = []
    for r in rows:
        if not isinstance(r, dict) or set(r) - fields:
            raise ValueError("restore points: unexpected entry %r" % (r,))
        r = dict(r, time=dt.datetime.fromisoformat(r["time"]))
        out.append(RestorePoint(**r))
    return out


# ---------------------------------------------------------------- findings
@dataclass(frozen=True)
class Finding:
    """One result of a gate. ``critical`` quarantines the pull (and freezes retention);
    ``warning`` is recorded and shown, nothing more."""

    severity: str
    code: str
    message: str
    points: tuple = ()

    def __str__(self):
        return "%s %s: %s" % (self.severity.upper(), self.code, self.message)


def quarantined(findings):
    """True when any finding is critical."""
    return any(f.severity == CRITICAL for f in findings)


def _names(points, limit=5):
    pts = sorted(points, key=lambda p: (p.time, p.id))
    shown = ["%s (%s)" % (p.name, p.time.strftime("%Y-%m-%d %H:%M:%SZ")) for p in pts[:limit]]
    more = len(pts) - len(shown)
    return ", ".join(shown) + (" and %d more" % more if more > 0 else "")


def _finding(severity, code, text, points):
    pts = list(points)
    return Finding(severity, code, "%s: %s" % (text, _names(pts)), tuple(sorted(p.id for p in pts)))


def _aware(now):
    if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now.astimezone(UTC)


def _by_id(points):
    out, dup = {}, []
    for p in points:
        if p.id in out:
            dup.append(p)
        out[p.id] = p
    return out, dup


def _fmt_td(td):
    s = int(td.total_seconds())
    if s % 86400 == 0:
        return "%d day(s)" % (s // 86400)
    if s % 3600 == 0:
        return "%d h" % (s // 3600)
    return "%d min" % (s // 60) if s % 60 == 0 else "%d s" % s


# ---------------------------------------------------------------- quarantine gate
@dataclass(frozen=True)
class GatePolicy:
    """Limits of the quarantine gate (defaults fit the production schedules in
    inventory/production/group_vars/backup_appliances.yml; see docs/dr-history.md).

    clock_skew: tolerance between geo's and miyun's clocks (both NTP-synced): 10 min.
    source_min_age: geo's own retention never expires a point younger than this (pgBackRest
        full 2 / diff 7 keeps a week and more; restic keep-last 10 at two snapshots a day keeps
        five days), so a younger point that vanishes was deleted, not expired: 3 days.
    max_vanished_share / mass_vanish_min: more than this share of the accepted points gone in
        one pull (and at least this many) is a purge such as ``forget --keep-last 1``; a weekly
        pgBackRest full expiring its old chain removes about half: 0.6 and 3.
    burst_base / max_new_per_day: new points allowed since the last accepted pull:
        base + per_day x elapsed days. Production makes at most 14 (pgBackRest) or 2 (restic)
        a day: 10 + 48/day leaves room for catch-up pulls and manual backups, not for a flood.
    """

    clock_skew: dt.timedelta = dt.timedelta(minutes=10)
    source_min_age: dt.timedelta = dt.timedelta(days=3)
    max_vanished_share: float = 0.6
    mass_vanish_min: int = 3
    burst_base: int = 10
    max_new_per_day: float = 48.0
    # pgBackRest's repo1-retention-full at the source (0 = not known): a pull that still holds that
    # many full backups may have lost every older set to retention, however young or many they were
    source_retention_full: int = 0

    def __post_init__(self):
        if self.clock_skew < dt.timedelta(0) or self.source_min_age < dt.timedelta(0):
            raise ValueError("gate policy: clock_skew and source_min_age must be >= 0")
        if not 0 < self.max_vanished_share <= 1:
            raise ValueError("gate policy: max_vanished_share must be in (0, 1]")
        if self.source_retention_full < 0:
            raise ValueError("gate policy: source_retention_full must be >= 0 (0 = not known)")
        if self.mass_vanish_min < 1 or self.burst_base < 0 or self.max_new_per_day < 0:
            raise ValueError("gate policy: mass_vanish_min >= 1, burst_base and max_new_per_day >= 0")


def gate(previous_points, pulled_points, now, policy=None, *, last_accepted=None):
    """Findings for a pull (pure): ``previous_points`` from the newest accepted snapshot at the
    DR site, ``pulled_points`` read from the copy just pulled. Any critical finding means:
    keep the pull out of history and freeze retention until an operator has looked.

    Critical: a point vanished while younger than ``source_min_age``, or the newest accepted
    point of its series vanished (no retention removes the newest); more than
    ``max_vanished_share`` of the accepted points gone at once (mass-vanish); a point with the same
    id but another fingerprint, or a restic snapshot replacing an accepted one (``original``)
    (rewritten); a point in the future beyond ``clock_skew`` (future); more new points than
    ``burst_base + max_new_per_day`` x days since ``last_accepted`` (default: the newest accepted
    point) (burst); a new point older than the newest accepted one of its series (backdated);
    the same id twice (duplicate). Warnings: points expired at the source as its retention
    would (expired), a new series, the first pull (baseline).
    """
    policy = policy or GatePolicy()
    now = _aware(now)
    prev, _ = _by_id(previous_points)
    pulled, dup = _by_id(pulled_points)
    findings = []
    if dup:
        findings.append(_finding(CRITICAL, "duplicate", "the pull lists the same restore point more than once", dup))
    future = [p for p in pulled.values() if p.time > now + policy.clock_skew]
    if future:
        findings.append(_finding(CRITICAL, "future", "restore points dated after now + %s (clock skew allowance)"
                                 % _fmt_td(policy.clock_skew), future))
    if not prev:
        if pulled:
            findings.append(_finding(WARNING, "baseline", "first pull, %d restore point(s) accepted without history"
                                     % len(pulled), pulled.values()))
        return _ordered(findings)

    gone = [p for pid, p in prev.items() if pid not in pulled]
    new = [p for pid, p in pulled.items() if pid not in prev]

    changed = [pulled[pid] for pid, p in prev.items() if pid in pulled and pulled[pid].fingerprint != p.fingerprint]
    if changed:
        findings.append(_finding(CRITICAL, "rewritten", "restore points changed content under the same id", changed))
    gone_ids = {p.id for p in gone}
    replacing = [p for p in new if p.original and p.original in gone_ids]
    if replacing:
        findings.append(Finding(CRITICAL, "rewritten", "restore points replaced by rewritten copies: %s" % ", ".join(
            "%s -> %s" % (prev[p.original].name, p.name) for p in sorted(replacing, key=lambda p: (p.time, p.id))),
            tuple(sorted({p.id for p in replacing} | {p.original for p in replacing}))))
    replaced = {p.original for p in replacing}

    superseded = retention_superseded(gone, pulled.values(), policy.source_retention_full)
    gone = [p for p in gone if p.id not in superseded]
    if superseded:
        findings.append(_finding(WARNING, "expired", "restore points older than the %d newest full backups the "
                                 "source keeps (its retention)" % policy.source_retention_full,
                                 [prev[i] for i in superseded]))

    newest = {}
    for p in prev.values():
        if p.series not in newest or (p.time, p.id) > (newest[p.series].time, newest[p.series].id):
            newest[p.series] = p
    deleted, expired = [], []
    for p in gone:
        if p.id in replaced:
            continue
        if newest[p.series].id == p.id or now - p.time < policy.source_min_age:
            deleted.append(p)
        else:
            expired.append(p)
    if deleted:
        findings.append(_finding(CRITICAL, "vanished", "restore points gone from the pull that no retention at the "
                                 "source removes (the newest of their series, or younger than %s)"
                                 % _fmt_td(policy.source_min_age), deleted))
    if expired:
        findings.append(_finding(WARNING, "expired", "restore points expired at the source (older than %s)"
                                 % _fmt_td(policy.source_min_age), expired))
    if len(gone) >= policy.mass_vanish_min and len(gone) > policy.max_vanished_share * len(prev):
        findings.append(_finding(CRITICAL, "mass-vanish", "%d of %d accepted restore points gone in one pull "
                                 "(limit %.0f%%)" % (len(gone), len(prev), 100 * policy.max_vanished_share), gone))

    replacing_ids = {p.id for p in replacing}
    fresh = [p for p in new if p.id not in replacing_ids]
    backdated = [p for p in fresh if p.series in newest and p.time < newest[p.series].time - policy.clock_skew]
    if backdated:
        findings.append(_finding(CRITICAL, "backdated", "new restore points older than the newest accepted one "
                                 "of their series", backdated))
    new_series = sorted({p.series for p in fresh if p.series not in newest})
    if new_series:
        findings.append(_finding(WARNING, "new-series", "restore points of a series not seen before (%s)"
                                 % ", ".join(new_series), [p for p in fresh if p.series not in newest]))
    since = _aware(last_accepted) if last_accepted is not None else max(p.time for p in prev.values())
    days = max(0.0, (now - since).total_seconds() / 86400.0)
    allowed = policy.burst_base + math.ceil(policy.max_new_per_day * days)
    if len(new) > allowed:
        findings.append(_finding(CRITICAL, "burst", "%d new restore points since %s, at most %d allowed "
                                 "(%d + %g a day)" % (len(new), since.strftime("%Y-%m-%d %H:%M:%SZ"), allowed,
                                                      policy.burst_base, policy.max_new_per_day), new))
    return _ordered(findings)


def retention_superseded(gone, pulled, retention_full):
    """Ids of the vanished pgBackRest sets that the source's own ``repo1-retention-full`` removed (pure):
    the pull still holds at least ``retention_full`` full backups of the set's stanza, and the set is
    older than the oldest of those. A purge (``expire --repo1-retention-full=1``) leaves fewer fulls
    than the source keeps, so nothing it removed is superseded. 0: retention not known, none."""
    if retention_full <= 0:
        return set()
    fulls = {}
    for p in pulled:
        if p.kind == "pgbackrest" and p.detail == "full":
            fulls.setdefault(p.series, []).append(p.time)
    out = set()
    for p in gone:
        kept = sorted(fulls.get(p.series, []), reverse=True)
        if p.kind == "pgbackrest" and len(kept) >= retention_full and p.time < kept[retention_full - 1]:
            out.add(p.id)
    return out


def _ordered(findings):
    return sorted(findings, key=lambda f: (f.severity != CRITICAL, f.code))


# ---------------------------------------------------------------- file-tree gate
def shannon_entropy(data):
    """Shannon entropy of ``data`` in bits per byte (0.0 for empty data, at most 8.0)."""
    n = len(data)
    if not n:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values()) + 0.0


_MAGIC = {
    ".pdf": (b"%PDF-",),
    ".jpg": (b"\xff\xd8\xff",),
    ".jpeg": (b"\xff\xd8\xff",),
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),     # TIFF and BigTIFF, both byte orders
    ".tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".gif": (b"GIF87a", b"GIF89a"),
    ".ofd": (b"PK\x03\x04",),                                      # OFD (GB/T 33190) is a ZIP container
    ".zip": (b"PK\x03\x04", b"PK\x05\x06"),
}
PDF_EOF_WINDOW = 1024   # readers accept %%EOF within the last 1024 bytes (trailing junk after it is common)


def format_ok(path, head, tail=None):
    """Does the content match the file's type by its extension? True / False, or None when the
    type is unknown (nothing to judge). ``head``: the first bytes (at least 16, or the whole
    file); ``tail``: the last bytes when known (PDF: ``%%EOF`` must be within the last 1024)."""
    name = str(path).lower()
    ext = name[name.rfind("."):] if "." in name.rsplit("/", 1)[-1] else ""
    head = bytes(head or b"")
    if ext == ".xml":
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            text = head[2:].decode("utf-16-le" if head[:2] == b"\xff\xfe" else "utf-16-be", "ignore")
            return text.lstrip().startswith("<")
        return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<")
    magic = _MAGIC.get(ext)
    if magic is None:
        return None
    if not head.startswith(magic):
        return False
    if ext == ".pdf" and tail is not None:
        return b"%%EOF" in bytes(tail)[-PDF_EOF_WINDOW:]
    return True


@dataclass(frozen=True)
class FileChange:
    """One changed file of a pull. ``old_size`` None = added, ``new_size`` None = deleted.
    ``head``/``tail``: first/last bytes of the new content; ``new_entropy`` or a ``sample`` of the
    new content to compute it; ``old_entropy`` of the previous version when known."""

    path: str
    old_size: int | None
    new_size: int | None
    head: bytes = b""
    tail: bytes | None = None
    old_entropy: float | None = None
    new_entropy: float | None = None
    sample: bytes | None = None

    @property
    def change(self):
        return "added" if self.old_size is None else "deleted" if self.new_size is None else "modified"


@dataclass(frozen=True)
class FilePolicy:
    """Limits of the file-tree gate (see docs/dr-history.md).

    max_changed_share / min_changed: an archive of accounting records grows by new files; existing
        files change rarely. More than 1 % of the tree's files modified or deleted in one pull
        (and at least 50 files) is a mass rewrite.
    max_suspicious / min_suspicious: more than 10 % of the changed files with new content failing
        their format check (at least 3) is ransomware, not a bad scan.
    high_entropy / entropy_jump: 7.9 bits/byte is encrypted or random data; "clearly lower" is at
        least 0.5 below it. min_entropy_sample: a sample shorter than 4 KiB cannot reach 7.9
        even when random (the estimate lacks about 255/(2 n ln 2) bits), so it is not judged.
    """

    max_changed_share: float = 0.01
    min_changed: int = 50
    max_suspicious: float = 0.10
    min_suspicious: int = 3
    high_entropy: float = 7.9
    entropy_jump: float = 0.5
    min_entropy_sample: int = 4096

    def __post_init__(self):
        if not (0 < self.max_changed_share <= 1 and 0 < self.max_suspicious <= 1):
            raise ValueError("file policy: shares must be in (0, 1]")
        if self.min_changed < 1 or self.min_suspicious < 1 or not 0 < self.high_entropy <= 8:
            raise ValueError("file policy: min_changed, min_suspicious >= 1, high_entropy in (0, 8]")


def _new_entropy(c, policy):
    if c.new_entropy is not None:
        return c.new_entropy
    if c.sample is not None and len(c.sample) >= policy.min_entropy_sample:
        return shannon_entropy(c.sample)
    return None


def content_verdict(change, policy=None):
    """'format' (fails its format check), 'entropy' (unknown type, entropy jumped to random),
    'entropy-format-ok' (valid format, entropy jumped: a warning only), or None."""
    policy = policy or FilePolicy()
    if change.new_size is None:
        return None
    ok = format_ok(change.path, change.head, change.tail)
    if ok is False:
        return "format"
    new_h = _new_entropy(change, policy)
    jumped = (new_h is not None and change.old_entropy is not None and new_h >= policy.high_entropy
              and change.old_entropy <= policy.high_entropy - policy.entropy_jump)
    if not jumped:
        return None
    # The format check decides; entropy is only a second signal. Scanned PDFs carry DCT/Flate
    # streams whose entropy is already ~7.9-8.0, and re-saving a text PDF with compressed streams
    # makes a legitimate jump, so for a file whose format is valid a jump is only a warning.
    # For a type we cannot check, a jump from clearly lower to random-looking is the only signal.
    return "entropy-format-ok" if ok else "entropy"


def file_change_findings(changes, policy=None, total_files=None):
    """Findings for one pull of the file replica (pure). ``total_files``: files in the tree
    before the pull (the mass-change share needs it; without it only the content is judged).

    Critical: more than ``max_changed_share`` of the tree's files modified or deleted (mass-change);
    more than ``max_suspicious`` of the changed files with new content failing their format check
    or, for unknown types, jumping to random-looking entropy (suspicious-content). Fewer
    suspicious files than that are a warning, as is a valid file whose entropy jumped.
    """
    policy = policy or FilePolicy()
    changes = list(changes)
    findings = []
    touched = [c for c in changes if c.old_size is not None]
    if total_files and len(touched) >= policy.min_changed and len(touched) > policy.max_changed_share * total_files:
        findings.append(Finding(CRITICAL, "mass-change", "%d of %d files modified or deleted in one pull (limit %.1f%%): %s"
                                % (len(touched), total_files, 100 * policy.max_changed_share, _paths(touched)),
                                tuple(sorted(c.path for c in touched))))
    with_content = [c for c in changes if c.new_size is not None]
    verdicts = [(c, content_verdict(c, policy)) for c in with_content]
    bad = [c for c, v in verdicts if v in ("format", "entropy")]
    if bad:
        critical = len(bad) >= policy.min_suspicious and len(bad) > policy.max_suspicious * len(with_content)
        findings.append(Finding(CRITICAL if critical else WARNING, "suspicious-content",
                                "%d of %d changed files fail their format check or turned random (limit %.0f%%): %s"
                                % (len(bad), len(with_content), 100 * policy.max_suspicious, _paths(bad)),
                                tuple(sorted(c.path for c in bad))))
    jumped = [c for c, v in verdicts if v == "entropy-format-ok"]
    if jumped:
        findings.append(Finding(WARNING, "entropy", "valid files whose entropy jumped to >= %.1f bits/byte: %s"
                                % (policy.high_entropy, _paths(jumped)), tuple(sorted(c.path for c in jumped))))
    return _ordered(findings)


def _paths(changes, limit=5):
    paths = sorted(c.path for c in changes)
    more = len(paths) - limit
    return ", ".join(paths[:limit]) + (" and %d more" % more if more > 0 else "")


# ---------------------------------------------------------------- retention by calendar time
@dataclass(frozen=True)
class RetentionPolicy:
    """Grandfather-father-son retention in calendar time, decided at the DR site.

    hourly/daily/weekly/monthly/yearly: keep the newest point of each of the last N calendar
        hours / days / ISO weeks / months / years, counted from ``now`` (the current one
        included), never by the number of pulls or of buckets that happen to have points.
        Defaults mirror replica_repo_retention (daily 14, weekly 8, monthly 12, yearly 10).
        ``yearly`` is the per-system statutory period: 10 or 30 years for accounting records, or
        None = permanent (the newest point of every calendar year is kept forever).
    min_age_keep: nothing younger is ever expired (the replica's ``keep_all_days``); None =
        never expire anything. At least one day: then a flood of any size within a day can
        never push out a point that was kept (docstring of retention_plan).
    tz: the calendar the buckets follow (Beijing time).
    """

    hourly: int = 0
    daily: int = 14
    weekly: int = 8
    monthly: int = 12
    yearly: int | None = 10
    min_age_keep: dt.timedelta | None = dt.timedelta(days=1)
    tz: dt.tzinfo = BEIJING

    def __post_init__(self):
        for name in PERIODS:
            v = getattr(self, name)
            if v is None and name == "yearly":
                continue    # permanent: every calendar year
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError("retention: %s must be an integer >= 0%s, got %r"
                                 % (name, " (or None = permanent)" if name == "yearly" else "", v))
        if self.min_age_keep is not None and self.min_age_keep < dt.timedelta(days=1):
            raise ValueError("retention: min_age_keep must be at least 1 day (or None = permanent): a shorter "
                             "floor lets a flood of new points push kept history out")


PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")


def _bucket(local, period):
    """(key, label) of a local datetime's calendar bucket; keys of one period are consecutive integers."""
    d = local.date()
    if period == "hourly":
        return d.toordinal() * 24 + local.hour, local.strftime("%Y-%m-%d %H:00")
    if period == "daily":
        return d.toordinal(), d.isoformat()
    if period == "weekly":
        y, w, _ = d.isocalendar()
        return (d.toordinal() - d.weekday()) // 7, "%04d-W%02d" % (y, w)
    if period == "monthly":
        return d.year * 12 + d.month - 1, "%04d-%02d" % (d.year, d.month)
    return d.year, "%04d" % d.year


def retention_plan(points, policy=None, now=None, frozen=False):
    """(keep, expire, reasons) for restore points or pull snapshots (pure; lists sorted by time,
    ``reasons`` maps every id to why it is kept or expired).

    A point is kept when any of these holds:
    - frozen: a quarantine is active; nothing is expired;
    - floor: it is younger than ``min_age_keep`` (always, when that is None);
    - newest: it is the newest point;
    - anchor: it is the newest point older than the floor;
    - a bucket: it is the newest point of one of the last N hours/days/ISO weeks/months/years
      of the calendar, counted back from ``now`` (a bucket without points is still counted);
      ``yearly=None``: of every calendar year up to now (permanent).

    Flood guarantee: adding any number of points younger than the floor never expires a point
    that was kept. Proof: such points change no bucket they are not in, and the floor and the
    anchor do not move (they are younger than the floor). A kept point q that loses its bucket B
    to a new point f is either younger than the floor (kept), or older: then no point older than
    the floor lies between q and f (it would lie in the interval B and be B's newest instead of
    q), so q is the anchor. A flood of *backdated* points is the gate's "backdated" finding, and
    a quarantine freezes retention.
    """
    policy = policy or RetentionPolicy()
    now = _aware(now if now is not None else dt.datetime.now(UTC))
    pts, dup = _by_id(points)
    if dup:
        raise ValueError("retention: duplicate ids: %s" % ", ".join(sorted({p.id for p in dup})[:5]))
    pts = sorted(pts.values(), key=lambda p: (p.time, p.id))
    reasons = {p.id: [] for p in pts}
    if frozen:
        for p in pts:
            reasons[p.id].append("frozen: quarantine active, nothing expires")
        return list(pts), [], reasons
    floor = policy.min_age_keep
    for p in pts:
        if floor is None:
            reasons[p.id].append("permanent: no expiry")
        elif now - p.time < floor:
            reasons[p.id].append("floor: younger than %s" % _fmt_td(floor))
    if pts:
        reasons[pts[-1].id].append("newest")
    if floor is not None:
        settled = [p for p in pts if now - p.time >= floor]
        if settled:
            reasons[settled[-1].id].append("anchor: newest point older than %s" % _fmt_td(floor))
    local_now = now.astimezone(policy.tz)
    for period in PERIODS:
        n = getattr(policy, period)
        if n == 0:
            continue
        current, _ = _bucket(local_now, period)
        best = {}
        for p in pts:   # ascending: the last one seen in a bucket is its newest
            key, label = _bucket(p.time.astimezone(policy.tz), period)
            if (n is None or current - n < key) and key <= current:     # None: no lower bound
                best[key] = (p, label)
        for p, label in best.values():
            reasons[p.id].append("%s %s" % (period, label))
    keep = [p for p in pts if reasons[p.id]]
    expire = [p for p in pts if not reasons[p.id]]
    for p in expire:
        reasons[p.id].append("expired: older than %s and not the newest of any kept bucket" % _fmt_td(floor))
    return keep, expire, reasons


# ---------------------------------------------------------------- verification rotation
RESTIC_SUBSETS_MAX = 256    # restic check: --read-data-subset=n/t needs 1 <= n <= t <= 256


def read_data_subset(day, period_days):
    """``restic check --read-data-subset`` argument ``n/t`` for ``day`` (a date).

    restic puts a pack into subset n of t when the first byte of its id modulo t is n - 1
    (cmd_check.go), so the t subsets partition the packs, and t <= 256. With t = period_days
    and n = day's ordinal mod t + 1, any period_days consecutive days name every subset once:
    every pack present for the whole period is read exactly once (a pack written during the
    period is read in this period or the next one).
    """
    t = int(period_days)
    if not 1 <= t <= RESTIC_SUBSETS_MAX:
        raise ValueError("period_days must be 1..%d (restic's limit for n/t)" % RESTIC_SUBSETS_MAX)
    if isinstance(day, dt.datetime):
        raise ValueError("day must be a date, not a datetime (which time zone's day?)")
    return "%d/%d" % (day.toordinal() % t + 1, t)


def verification_cost(repo_bytes, period_days):
    """What a full read every ``period_days`` costs: average and largest daily read (subsets
    follow the first byte of the pack id: t not dividing 256 makes some subsets ceil(256/t)/256
    of the data), the share of the repository read per day and per week, full cycles a year."""
    t = int(period_days)
    if not 1 <= t <= RESTIC_SUBSETS_MAX:
        raise ValueError("period_days must be 1..%d (restic's limit for n/t)" % RESTIC_SUBSETS_MAX)
    if repo_bytes < 0:
        raise ValueError("repo_bytes must be >= 0")
    return {
        "repo_bytes": int(repo_bytes),
        "period_days": t,
        "bytes_per_day": int(math.ceil(repo_bytes / t)),
        "bytes_per_day_max": int(math.ceil(repo_bytes * math.ceil(RESTIC_SUBSETS_MAX / t) / RESTIC_SUBSETS_MAX)),
        "share_per_day": 1.0 / t,
        "share_per_week": min(1.0, 7.0 / t),
        "bytes_per_week": int(math.ceil(repo_bytes * min(1.0, 7.0 / t))),
        "full_reads_per_year": 365.0 / t,
    }
