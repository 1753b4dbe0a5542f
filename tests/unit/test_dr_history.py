"""DR history decisions of module_utils/dr_history.py: restore points from the tools' JSON, the
quarantine gate, the file-tree gate, calendar retention and the verification rotation."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random

import pytest

from archive_dr.fixity import load

dh = load("dr_history")

UTC = dt.timezone.utc
CST = dt.timezone(dt.timedelta(hours=8))


def ts(*a, tz=UTC):
    return dt.datetime(*a, tzinfo=tz)


# ---------------------------------------------------------------- pgBackRest info JSON
def pg_set(label, ttype, start, stop, prior=None, reference=None, size=20162900, delta=8428, repo_size=2369186,
           repo_key=1, **extra):
    """One backup set as `pgbackrest info --output=json` prints it (field layout of pgBackRest's
    own command/info test expectations)."""
    b = {"archive": {"start": "000000010000000000000002", "stop": "000000010000000000000003"},
         "backrest": {"format": 5, "version": "2.54.2"},
         "database": {"id": 1, "repo-key": repo_key},
         "info": {"delta": delta, "repository": {"delta": 346, "size": repo_size}, "size": size},
         "label": label, "prior": prior, "reference": reference,
         "timestamp": {"start": start, "stop": stop}, "type": ttype}
    b.update(extra)
    return b


def pg_info(backups, name="archive-db", code=0):
    return json.dumps([{"archive": [{"database": {"id": 1, "repo-key": 1}, "id": "15-1",
                                     "max": "000000010000000000000009", "min": "000000010000000000000001"}],
                        "backup": backups, "cipher": "aes-256-cbc",
                        "db": [{"id": 1, "repo-key": 1, "system-id": 7311234567890123456, "version": "15"}],
                        "name": name,
                        "repo": [{"cipher": "aes-256-cbc", "key": 1, "status": {"code": code, "message": "ok"}}],
                        "status": {"code": code, "lock": {"backup": {"held": False}}, "message": "ok"}}])


SAMPLE_SETS = [
    pg_set("20241117-010002F", "full", 1731805202, 1731805260, size=26897000, delta=26897000),
    pg_set("20241117-010002F_20241118-010003D", "diff", 1731891603, 1731891610, prior="20241117-010002F",
           reference=["20241117-010002F"]),
    pg_set("20241117-010002F_20241118-080004I", "incr", 1731916804, 1731916807,
           prior="20241117-010002F_20241118-010003D",
           reference=["20241117-010002F", "20241117-010002F_20241118-010003D"],
           lsn={"start": "0/9000028", "stop": "0/9000100"},
           annotation={"source": "scheduled"}, error=False),
]


def test_pgbackrest_info_gives_one_point_per_backup_set():
    pts = dh.parse_pgbackrest_info(pg_info(SAMPLE_SETS))
    assert [p.label for p in pts] == [b["label"] for b in SAMPLE_SETS]
    full, diff, incr = pts
    assert full.kind == "pgbackrest" and full.id == "archive-db:20241117-010002F" and full.series == "archive-db"
    assert full.time == ts(2024, 11, 17, 1, 1, 0) and full.time.tzinfo == UTC      # timestamp.stop
    assert (full.detail, diff.detail, incr.detail) == ("full", "diff", "incr")
    assert full.parent is None and incr.parent == "20241117-010002F_20241118-010003D"
    assert len({p.fingerprint for p in pts}) == 3 and all(p.fingerprint.startswith("sha256:") for p in pts)


def test_pgbackrest_stanza_filter_repo_key_and_empty_stanza():
    text = json.dumps(json.loads(pg_info(SAMPLE_SETS[:1])) + json.loads(pg_info([], name="other", code=2)))
    assert [p.series for p in dh.parse_pgbackrest_info(text)] == ["archive-db"]
    assert dh.parse_pgbackrest_info(text, stanza="other") == []
    two = dh.parse_pgbackrest_info(pg_info([pg_set("20241117-010002F", "full", 1, 2, repo_key=2)]))
    assert two[0].id == "archive-db:repo2:20241117-010002F"


def _fp(**change):
    b = json.loads(json.dumps(SAMPLE_SETS[2]))
    for path, value in change.items():
        node = b
        keys = path.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return dh.parse_pgbackrest_info(pg_info([b]))[0].fingerprint


def test_pgbackrest_fingerprint_follows_the_immutable_fields_only():
    base = _fp()
    for change in ({"info__size": 1}, {"info__repository__size": 1}, {"timestamp__stop": 1731916808},
                   {"prior": "20241117-010002F"}, {"lsn__stop": "0/9000200"}, {"archive__stop": "00000001000000000000000A"},
                   {"type": "full"}):
        assert _fp(**change) != base, change
    # annotate is a legitimate later change; the writing version and the error flag are no content
    assert _fp(annotation={"source": "operator"}) == base
    assert _fp(backrest__version="2.55") == base and _fp(error=True) == base


@pytest.mark.parametrize("text", ["{", "{}", json.dumps([{"backup": []}]),
                                  pg_info([{"type": "full"}]),
                                  pg_info([pg_set("x", "full", "soon", "later")])])
def test_pgbackrest_malformed_output_is_an_error(text):
    with pytest.raises(ValueError):
        dh.parse_pgbackrest_info(text)


# ---------------------------------------------------------------- restic snapshots JSON
def restic_snap(sid, time, tree, parent=None, original=None, paths=("/srv/backup/staging/archive-files",)):
    s = {"time": time, "parent": parent, "tree": tree, "paths": list(paths), "hostname": "geo-backup",
         "username": "root", "uid": 0, "gid": 0, "tags": ["archive-files"], "program_version": "restic 0.16.4",
         "summary": {"files_new": 3, "total_files_processed": 120}, "id": sid, "short_id": sid[:8]}
    if original:
        s["original"] = original
    return s


def hexid(n):
    return "%064x" % (n * 0x9E3779B97F4A7C15 % (1 << 256))


def test_restic_snapshots_parse_time_zone_nanoseconds_and_tree():
    snaps = [restic_snap(hexid(1), "2024-11-18T02:00:01.123456789+08:00", "aa" * 32),
             restic_snap(hexid(2), "2024-11-18T05:00:00Z", "bb" * 32, parent=hexid(1))]
    pts = dh.parse_restic_snapshots(json.dumps(snaps), repo="archive-files")
    assert [p.id for p in pts] == [hexid(1), hexid(2)]
    a, b = pts
    assert a.time == ts(2024, 11, 17, 18, 0, 1, 123456) and b.time == ts(2024, 11, 18, 5)
    assert a.fingerprint == "aa" * 32 and a.label == hexid(1)[:8] and b.parent == hexid(1)
    assert a.kind == "restic" and a.series == "archive-files" and a.detail == "/srv/backup/staging/archive-files"
    # without a repository name the series is host and paths
    assert dh.parse_restic_snapshots(json.dumps(snaps))[0].series == "geo-backup:/srv/backup/staging/archive-files"


def test_restic_group_by_output_and_original():
    grouped = [{"group_key": {"hostname": "geo-backup", "paths": None, "tags": None},
                "snapshots": [restic_snap(hexid(3), "2024-11-18T02:00:00+08:00", "cc" * 32, original=hexid(9))]}]
    (p,) = dh.parse_restic_snapshots(json.dumps(grouped))
    assert p.original == hexid(9) and p.time == ts(2024, 11, 17, 18)


@pytest.mark.parametrize("snap", [{"id": "x", "time": "2024-11-18T02:00:00Z"},
                                  {"id": "x", "tree": "t", "time": "2024-11-18T02:00:00"},   # no zone
                                  {"tree": "t", "time": "2024-11-18T02:00:00Z"}])
def test_restic_malformed_snapshot_is_an_error(snap):
    with pytest.raises(ValueError):
        dh.parse_restic_snapshots(json.dumps([snap]))


def test_restore_point_needs_an_aware_time_and_roundtrips_through_json():
    with pytest.raises(ValueError):
        dh.RestorePoint("restic", "x", dt.datetime(2024, 1, 1), "t")
    pts = dh.parse_pgbackrest_info(pg_info(SAMPLE_SETS)) + dh.parse_restic_snapshots(json.dumps(
        [restic_snap(hexid(4), "2024-11-18T02:00:00+08:00", "dd" * 32, original=hexid(5))]), repo="files")
    back = dh.load_points(dh.dump_points(pts))
    assert sorted(back, key=lambda p: p.id) == sorted(pts, key=lambda p: p.id)
    with pytest.raises(ValueError):
        dh.load_points(json.dumps([{"id": "x", "surprise": 1}]))


# ---------------------------------------------------------------- quarantine gate
def rp(pid, time, fp=None, series="s", **kw):
    return dh.RestorePoint("restic", pid, time, fp or "tree-" + pid, series=series, **kw)


NOW = ts(2024, 11, 20, 12)


def twice_daily(days, end=NOW, series="s"):
    """Restic snapshots at 02:00 and 13:00 UTC for `days` days up to `end`."""
    out = []
    d = end - dt.timedelta(days=days)
    while d <= end:
        for h in (2, 13):
            t = d.replace(hour=h, minute=0, second=0, microsecond=0)
            if t <= end:
                out.append(rp("%s-%s" % (series, t.strftime("%Y%m%d%H")), t, series=series))
        d += dt.timedelta(days=1)
    return out


def codes(findings, severity=None):
    return sorted({f.code for f in findings if severity is None or f.severity == severity})


def test_first_pull_is_a_baseline_warning_only():
    f = dh.gate([], twice_daily(3), NOW)
    assert codes(f) == ["baseline"] and not dh.quarantined(f)
    assert dh.gate([], [], NOW) == []


def test_ordinary_pull_with_one_new_point_passes():
    prev = twice_daily(10, end=NOW - dt.timedelta(hours=12))
    pulled = prev + [rp("s-new", NOW - dt.timedelta(minutes=30))]
    assert dh.gate(prev, pulled, NOW) == []
    assert dh.gate(prev, prev, NOW) == []


def test_source_retention_expiring_old_points_is_a_warning():
    prev = twice_daily(20)
    pulled = [p for p in prev if p.time >= NOW - dt.timedelta(days=14)]
    f = dh.gate(prev, pulled, NOW)
    assert codes(f) == ["expired"] and not dh.quarantined(f)
    assert set(f[0].points) == {p.id for p in prev} - {p.id for p in pulled}


def test_forget_keep_last_1_is_critical():
    prev = twice_daily(10)
    f = dh.gate(prev, prev[-1:], NOW)
    assert dh.quarantined(f) and {"vanished", "mass-vanish"} <= set(codes(f, dh.CRITICAL))
    vanished = next(x for x in f if x.code == "vanished")
    assert "s-2024111913" in vanished.points and "s-2024111913" in vanished.message


def test_newest_point_vanishing_is_critical_even_when_old():
    prev = twice_daily(20, end=NOW - dt.timedelta(days=10))
    f = dh.gate(prev, prev[:-1], NOW)
    assert codes(f, dh.CRITICAL) == ["vanished"] and f[0].points == (prev[-1].id,)


def test_a_young_point_deleted_is_critical():
    prev = twice_daily(10)
    victim = prev[-3]                      # a day old, geo's retention keeps it for days
    f = dh.gate(prev, [p for p in prev if p is not victim], NOW)
    assert codes(f, dh.CRITICAL) == ["vanished"] and f[0].points == (victim.id,)


def pg_week_chain(sunday):
    """A production week of archive-db (inventory schedule): full Sunday 01:00, diff Mon..Sat
    01:00, incr 08..20 hourly on the latest full/diff."""
    def lab(t, kind):
        return t.strftime("%Y%m%d-%H%M%S") + kind

    full_t = sunday.replace(hour=1)
    full = lab(full_t, "F")
    sets = [pg_set(full, "full", int(full_t.timestamp()), int(full_t.timestamp()) + 300)]
    base, prior = full, full
    for day in range(7):
        d = sunday + dt.timedelta(days=day)
        if day:
            t = d.replace(hour=1)
            label = "%s_%s" % (full, lab(t, "D"))
            sets.append(pg_set(label, "diff", int(t.timestamp()), int(t.timestamp()) + 60, prior=prior,
                               reference=[full]))
            base = prior = label
        for h in range(8, 21):
            t = d.replace(hour=h)
            label = "%s_%s" % (full, lab(t, "I"))
            sets.append(pg_set(label, "incr", int(t.timestamp()), int(t.timestamp()) + 20, prior=prior,
                               reference=sorted({full, base})))
            prior = label
    return sets


def test_weekly_pgbackrest_full_expiry_passes_and_an_expire_attack_does_not():
    w1, w2 = pg_week_chain(ts(2024, 11, 3)), pg_week_chain(ts(2024, 11, 10))
    w3 = pg_week_chain(ts(2024, 11, 17))[:1]
    now = ts(2024, 11, 17, 2)
    prev = dh.parse_pgbackrest_info(pg_info(w1 + w2 + w3))
    expired = dh.parse_pgbackrest_info(pg_info(w2 + w3))          # retention full=2 expired week 1
    f = dh.gate(prev, expired, now)
    assert codes(f) == ["expired"] and len(f[0].points) == len(w1) == 98
    # root on geo-backup: pgbackrest expire --repo1-retention-full=1 right after the new full
    attacked = dh.parse_pgbackrest_info(pg_info(w3))
    f = dh.gate(prev, attacked, now)
    assert {"vanished", "mass-vanish"} <= set(codes(f, dh.CRITICAL))


def test_same_id_with_other_content_is_rewritten():
    prev = dh.parse_pgbackrest_info(pg_info(SAMPLE_SETS))
    forged = json.loads(json.dumps(SAMPLE_SETS))
    forged[0]["info"]["size"] = 1024
    f = dh.gate(prev, dh.parse_pgbackrest_info(pg_info(forged)), NOW)
    assert codes(f) == ["rewritten"] and f[0].points == ("archive-db:20241117-010002F",)
    assert "20241117-010002F" in f[0].message


def test_restic_rewrite_replacing_a_snapshot_is_rewritten_not_vanished():
    prev = twice_daily(5)
    old = prev[-4]
    copy = rp("rewritten-copy", old.time, fp="other-tree", original=old.id)
    f = dh.gate(prev, [p for p in prev if p is not old] + [copy], NOW)
    assert codes(f) == ["rewritten"] and set(f[0].points) == {old.id, "rewritten-copy"}
    assert "->" in f[0].message


def test_future_points_beyond_the_clock_skew_are_critical():
    prev = twice_daily(3)
    near = rp("near", NOW + dt.timedelta(minutes=5))
    far = rp("far", NOW + dt.timedelta(days=400))
    f = dh.gate(prev, prev + [near, far], NOW)
    assert codes(f) == ["future"] and f[0].points == ("far",)
    assert codes(dh.gate([], [far], NOW), dh.CRITICAL) == ["future"]


def test_fake_snapshot_flood_is_a_burst():
    prev = twice_daily(10, end=NOW - dt.timedelta(hours=1))
    flood = [rp("fake-%05d" % i, NOW - dt.timedelta(minutes=50) + dt.timedelta(milliseconds=i * 100))
             for i in range(10000)]
    f = dh.gate(prev, prev + flood, NOW)
    assert codes(f) == ["burst"] and len(f[0].points) == 10000 and "10000 new" in f[0].message


def test_catch_up_after_an_outage_is_no_burst():
    # three days without the WAN: 14 pgBackRest points a day arrive at once
    prev = twice_daily(10, end=NOW - dt.timedelta(days=3))
    since = prev[-1].time
    caught = [rp("late-%d" % i, since + dt.timedelta(minutes=100 * (i + 1))) for i in range(42)]
    assert dh.gate(prev, prev + caught, NOW) == []
    # the allowance counts from the last accepted pull when it is given
    assert codes(dh.gate(prev, prev + caught, NOW, last_accepted=NOW - dt.timedelta(minutes=15))) == ["burst"]


def test_backdated_new_points_are_critical_but_a_new_series_is_not():
    prev = twice_daily(10)
    back = rp("backdated", NOW - dt.timedelta(days=40))
    other = rp("other-repo", NOW - dt.timedelta(days=40), series="new-repo")
    f = dh.gate(prev, prev + [back, other], NOW)
    assert codes(f, dh.CRITICAL) == ["backdated"] and f[0].points == ("backdated",)
    assert codes(f, dh.WARNING) == ["new-series"]


def test_duplicate_ids_in_a_pull_are_critical():
    prev = twice_daily(2)
    assert codes(dh.gate(prev, prev + [prev[-1]], NOW), dh.CRITICAL) == ["duplicate"]


def test_gate_policy_and_now_are_validated():
    with pytest.raises(ValueError):
        dh.GatePolicy(max_vanished_share=0)
    with pytest.raises(ValueError):
        dh.GatePolicy(clock_skew=dt.timedelta(seconds=-1))
    with pytest.raises(ValueError):
        dh.gate([], [], dt.datetime(2024, 1, 1))


def test_findings_are_ordered_critical_first_and_printable():
    prev = twice_daily(20)
    f = dh.gate(prev, prev[-1:] + [rp("far", NOW + dt.timedelta(days=1))], NOW)
    sev = [x.severity for x in f]
    assert sev == sorted(sev, key=lambda s: s != dh.CRITICAL) and dh.WARNING in sev
    assert str(f[0]).startswith("CRITICAL ")


# ---------------------------------------------------------------- file-tree gate
RNG = random.Random(14)
RANDOM_64K = RNG.randbytes(65536)


def test_shannon_entropy():
    assert dh.shannon_entropy(b"") == 0.0 and dh.shannon_entropy(b"aaaa") == 0.0
    assert dh.shannon_entropy(b"abab") == pytest.approx(1.0)
    assert dh.shannon_entropy(bytes(range(256)) * 4) == pytest.approx(8.0)
    assert dh.shannon_entropy(RANDOM_64K) > 7.99
    assert dh.shannon_entropy(b"%PDF-1.7 accounting voucher " * 200) < 5
    # why short samples are not judged: 1 KiB of random bytes stays below the 7.9 threshold
    assert dh.shannon_entropy(RANDOM_64K[:1024]) < 7.9 <= dh.shannon_entropy(RANDOM_64K[:4096])


PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"
PDF_TAIL = b"startxref\n116\n%%EOF\n"


@pytest.mark.parametrize("path,head,tail,want", [
    ("a/b/voucher.pdf", PDF_HEAD, None, True),
    ("a/b/VOUCHER.PDF", PDF_HEAD, PDF_TAIL, True),
    ("v.pdf", PDF_HEAD, PDF_TAIL + b"\x00" * 100, True),           # junk after %%EOF within 1 KiB
    ("v.pdf", PDF_HEAD, RANDOM_64K[-2048:], False),                # header kept, body encrypted
    ("v.pdf", RANDOM_64K[:64], PDF_TAIL, False),
    ("v.pdf", b"", None, False),
    ("scan.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF", None, True),
    ("scan.jpeg", b"\x89PNG\r\n\x1a\n", None, False),
    ("scan.png", b"\x89PNG\r\n\x1a\n\x00\x00", None, True),
    ("scan.tif", b"II*\x00\x08\x00", None, True),
    ("scan.tiff", b"MM\x00*\x00\x00", None, True),
    ("scan.tiff", b"%PDF-1.4", None, False),
    ("meta.xml", b"\xef\xbb\xbf  <?xml version='1.0'?>", None, True),
    ("meta.xml", "\ufeff<?xml version='1.0'?>".encode("utf-16-le"), None, True),
    ("meta.xml", RANDOM_64K[:32] + b"<", None, False),
    ("invoice.ofd", b"PK\x03\x04\x14\x00", None, True),
    ("invoice.ofd", b"PK\x05\x06", None, False),                   # an empty zip is no OFD document
    ("notes.txt", RANDOM_64K[:64], None, None),
    ("README", b"x", None, None),
])
def test_format_ok(path, head, tail, want):
    assert dh.format_ok(path, head, tail) is want


def chg(path, old=1000, new=1000, head=PDF_HEAD, tail=PDF_TAIL, **kw):
    return dh.FileChange(path, old, new, head, tail, **kw)


def test_entropy_is_a_second_signal_after_the_format_check():
    v = dh.content_verdict
    # scanned PDFs are already near 8 bits/byte: no jump, nothing to say
    assert v(chg("s.pdf", old_entropy=7.95, new_entropy=7.97)) is None
    # a valid PDF re-saved with compressed streams: a warning, never quarantine on its own
    assert v(chg("t.pdf", old_entropy=5.1, sample=RANDOM_64K)) == "entropy-format-ok"
    # unknown type: the jump is the only signal
    assert v(chg("ledger.dat", head=b"", tail=None, old_entropy=4.5, sample=RANDOM_64K)) == "entropy"
    assert v(chg("ledger.dat", head=b"", tail=None, old_entropy=7.6, sample=RANDOM_64K)) is None  # not clearly lower
    assert v(chg("ledger.dat", head=b"", tail=None, old_entropy=4.5, sample=RANDOM_64K[:1024])) is None  # too short
    # a broken format decides without any entropy
    assert v(chg("x.pdf", head=RANDOM_64K[:16])) == "format"
    assert v(chg("gone.pdf", new=None, head=b"")) is None


def test_a_normal_day_of_new_scans_passes():
    changes = [chg("2024/%04d.pdf" % i, old=None, new=3_300_000, old_entropy=None, new_entropy=7.97)
               for i in range(40)]
    assert dh.file_change_findings(changes, total_files=67_335) == []


def test_ransomware_mass_rewrite_is_critical():
    changes = [chg("2019/%05d.pdf" % i, old=3_300_000, new=3_300_016, head=RANDOM_64K[i:i + 64],
                   tail=RANDOM_64K[-1024:], old_entropy=7.96, sample=RANDOM_64K) for i in range(1000)]
    f = dh.file_change_findings(changes, total_files=67_335)
    assert codes(f, dh.CRITICAL) == ["mass-change", "suspicious-content"]
    assert "1000 of 67335" in f[0].message and "2019/00000.pdf" in f[0].message


def test_slow_ransomware_keeping_pdf_headers_is_caught_by_the_tail():
    # intermittent encryption: header intact, the rest (and %%EOF) encrypted; 4 files in one pull
    bad = [chg("2020/%d.pdf" % i, tail=RANDOM_64K[-1024:]) for i in range(4)]
    good = [chg("2024/%d.pdf" % i, old=None) for i in range(6)]
    f = dh.file_change_findings(bad + good, total_files=67_335)
    assert codes(f) == ["suspicious-content"] and dh.quarantined(f)
    assert set(f[0].points) == {c.path for c in bad}


def test_one_bad_scan_is_a_warning():
    f = dh.file_change_findings([chg("2024/bad.pdf", old=None, head=b"<html>")] +
                                [chg("2024/%d.pdf" % i, old=None) for i in range(39)], total_files=67_335)
    assert codes(f) == ["suspicious-content"] and not dh.quarantined(f)


def test_mass_deletion_counts_as_change_without_content():
    gone = [chg("2018/%d.pdf" % i, new=None, head=b"", tail=None) for i in range(2000)]
    f = dh.file_change_findings(gone, total_files=67_335)
    assert codes(f) == ["mass-change"]
    # without the tree's size only the content is judged
    assert dh.file_change_findings(gone) == []
    # a small tree: the share counts only from min_changed files on
    assert dh.file_change_findings(gone[:49], total_files=100) == []
    assert codes(dh.file_change_findings(gone[:50], total_files=100)) == ["mass-change"]


def test_file_policy_is_validated():
    with pytest.raises(ValueError):
        dh.FilePolicy(max_changed_share=0)
    with pytest.raises(ValueError):
        dh.FilePolicy(high_entropy=9)


# ---------------------------------------------------------------- retention by calendar time
def daily_points(start, end, hour=18, prefix="p"):
    """One point a day at `hour` UTC (02:00 Beijing the next day) from start to end (dates)."""
    out, d = [], start
    while d <= end:
        t = dt.datetime(d.year, d.month, d.day, hour, tzinfo=UTC)
        out.append(dh.RestorePoint("pull", "%s-%s" % (prefix, t.strftime("%Y%m%dT%H")), t, ""))
        d += dt.timedelta(days=1)
    return out


def ids(points):
    return {p.id for p in points}


def test_retention_policy_is_validated():
    with pytest.raises(ValueError):
        dh.RetentionPolicy(min_age_keep=dt.timedelta(hours=6))
    with pytest.raises(ValueError):
        dh.RetentionPolicy(daily=-1)
    with pytest.raises(ValueError):
        dh.RetentionPolicy(weekly=1.5)
    assert dh.RetentionPolicy(min_age_keep=None).min_age_keep is None
    assert dh.RetentionPolicy(yearly=None).yearly is None          # permanent: every calendar year
    with pytest.raises(ValueError, match="daily must be an integer >= 0"):
        dh.RetentionPolicy(daily=None)                              # only yearly may be unlimited


def test_daily_buckets_are_calendar_days_counted_from_now():
    now = ts(2024, 6, 30, 12, tz=CST)
    pts = []
    for day in range(1, 31):                        # three points each June day (Beijing time)
        for h in (3, 9, 15):
            t = ts(2024, 6, day, h, tz=CST)
            if t <= now:
                pts.append(dh.RestorePoint("pull", t.strftime("%d-%H"), t, ""))
    pol = dh.RetentionPolicy(daily=14, weekly=0, monthly=0, yearly=0)
    keep, expire, why = dh.retention_plan(pts, pol, now)
    # newest of each of the last 14 calendar days (17..30 June), plus everything younger than a day
    # 29-09 is 27 h old: the newest point older than the floor is the anchor
    want = {"%02d-15" % d for d in range(17, 30)} | {"30-03", "30-09", "29-15", "29-09"}
    assert ids(keep) == want and ids(keep) | ids(expire) == ids(pts)
    assert "daily 2024-06-17" in why["17-15"] and any(r.startswith("floor") for r in why["30-03"])
    assert why["29-09"] == ["anchor: newest point older than 1 day(s)"]
    assert why["16-15"] == ["expired: older than 1 day(s) and not the newest of any kept bucket"]


def test_a_gap_in_pulls_does_not_stretch_the_window():
    # counted by pulls, "daily 14" would keep 14 days *with* pulls however old; by calendar the
    # window ends 14 days back whatever happened in between
    now = ts(2024, 6, 30, 12)
    pts = daily_points(dt.date(2024, 5, 1), dt.date(2024, 5, 20)) + daily_points(dt.date(2024, 6, 29), dt.date(2024, 6, 29))
    keep, expire, _ = dh.retention_plan(pts, dh.RetentionPolicy(daily=14, weekly=0, monthly=0, yearly=0), now)
    assert ids(keep) == {"p-20240629T18", "p-20240520T18"}     # the newest, and the anchor
    assert len(expire) == 19


def test_weeks_are_iso_weeks_and_months_follow_beijing_time():
    now = ts(2025, 1, 2, 12)
    pts = [dh.RestorePoint("pull", "dec29", ts(2024, 12, 29, 10), ""),   # Sunday: ISO 2024-W52
           dh.RestorePoint("pull", "dec30", ts(2024, 12, 30, 10), ""),   # Monday: ISO 2025-W01
           dh.RestorePoint("pull", "mar31", ts(2024, 3, 31, 17), ""),    # 2024-04-01 01:00 in Beijing
           dh.RestorePoint("pull", "mar30", ts(2024, 3, 30, 10), "")]
    _, _, why = dh.retention_plan(pts, dh.RetentionPolicy(daily=0, weekly=2, monthly=12, yearly=0), now)
    assert "weekly 2024-W52" in why["dec29"] and "weekly 2025-W01" in why["dec30"]
    assert "monthly 2024-04" in why["mar31"] and "monthly 2024-03" in why["mar30"]


def test_statutory_floor_and_permanent():
    now = ts(2024, 6, 30, 12)
    pts = [dh.RestorePoint("pull", "y%d-%02d" % (y, m), ts(y, m, 15), "") for y in range(2010, 2025) for m in (3, 9)
           if ts(y, m, 15) <= now]
    pol = dh.RetentionPolicy(daily=0, weekly=0, monthly=0, yearly=0, min_age_keep=dt.timedelta(days=3653))
    keep, expire, _ = dh.retention_plan(pts, pol, now)
    assert all(now - p.time < dt.timedelta(days=3653) for p in keep if p.id != "y2014-03")
    assert all(now - p.time >= dt.timedelta(days=3653) for p in expire) and len(expire) == 8
    keep, expire, why = dh.retention_plan(pts, dataclasses.replace(pol, min_age_keep=None), now)
    assert expire == [] and why["y2010-03"] == ["permanent: no expiry"]


def test_yearly_none_keeps_the_newest_point_of_every_calendar_year():
    now = ts(2024, 6, 30, 12)
    pts = [dh.RestorePoint("pull", "y%d-%02d" % (y, m), ts(y, m, 15), "") for y in range(1990, 2025) for m in (3, 9)
           if ts(y, m, 15) <= now]
    pol = dh.RetentionPolicy(daily=0, weekly=0, monthly=0, yearly=None)
    keep, expire, why = dh.retention_plan(pts, pol, now)
    assert ids(keep) == {"y%d-09" % y for y in range(1990, 2024)} | {"y2024-03"}
    assert why["y1990-09"] == ["yearly 1990"] and ids(expire) == {"y%d-03" % y for y in range(1990, 2024)}
    # a number is the statutory period: 30 calendar years counted back from now (1995..2024)
    keep30, _, _ = dh.retention_plan(pts, dataclasses.replace(pol, yearly=30), now)
    assert ids(keep30) == {"y%d-09" % y for y in range(1995, 2024)} | {"y2024-03"}
    # years follow Beijing time: 31 Dec 2023 20:00 UTC is 2024 there, so it is not 2023's newest
    eve = dh.RestorePoint("pull", "eve", ts(2023, 12, 31, 20), "")
    keep, expire, why = dh.retention_plan(pts + [eve], pol, now)
    assert "eve" in ids(expire) and why["y2023-09"] == ["yearly 2023"]


def test_frozen_expires_nothing():
    now = ts(2024, 6, 30, 12)
    pts = daily_points(dt.date(2020, 1, 1), dt.date(2024, 6, 29))
    keep, expire, why = dh.retention_plan(pts, dh.RetentionPolicy(), now, frozen=True)
    assert expire == [] and len(keep) == len(pts)
    assert why[pts[0].id] == ["frozen: quarantine active, nothing expires"]


def test_future_points_are_kept_and_fill_no_bucket():
    now = ts(2024, 6, 30, 12)
    pts = daily_points(dt.date(2024, 6, 1), dt.date(2024, 6, 29)) + [
        dh.RestorePoint("pull", "future", ts(2031, 1, 1), "")]
    keep, _, why = dh.retention_plan(pts, dh.RetentionPolicy(), now)
    assert "future" in ids(keep) and not any(r.split()[0] in dh.PERIODS for r in why["future"])
    assert "daily 2024-06-30" in why["p-20240629T18"]          # 18:00 UTC = 02:00 Beijing next day


def test_retention_input_errors():
    p = dh.RestorePoint("pull", "a", NOW, "")
    with pytest.raises(ValueError):
        dh.retention_plan([p, p], dh.RetentionPolicy(), NOW)
    with pytest.raises(ValueError):
        dh.retention_plan([p], dh.RetentionPolicy(), dt.datetime(2024, 1, 1))
    assert dh.retention_plan([], dh.RetentionPolicy(), NOW) == ([], [], {})


@pytest.mark.parametrize("floor_days", [1, 30])
def test_a_flood_younger_than_the_floor_never_pushes_out_a_kept_point(floor_days):
    now = ts(2024, 6, 30, 12)
    real = daily_points(dt.date(2022, 1, 1), dt.date(2024, 6, 30)) + [
        dh.RestorePoint("pull", "late-today", now - dt.timedelta(minutes=5), "")]
    pol = dh.RetentionPolicy(min_age_keep=dt.timedelta(days=floor_days))
    keep0, _, why0 = dh.retention_plan(real, pol, now)
    long_term = {pid for pid, r in why0.items() if any(x.split()[0] in ("monthly", "yearly") for x in r)}
    assert len(long_term) >= 12
    window = dt.timedelta(days=floor_days) - dt.timedelta(seconds=1)
    flood = [dh.RestorePoint("restic", "fake-%05d" % i, now - window * (i / 10000), "junk") for i in range(10000)]
    keep1, expire1, why1 = dh.retention_plan(real + flood, pol, now)
    assert ids(keep0) <= ids(keep1)
    assert long_term <= ids(keep1) and not ids(expire1) & ids(keep0)
    assert len(flood) == 10000 and ids(flood) <= ids(keep1)    # all younger than the floor


def test_a_backdated_flood_is_why_the_gate_freezes_retention():
    now = ts(2024, 6, 30, 12)
    real = daily_points(dt.date(2023, 1, 1), dt.date(2024, 6, 29))
    pol = dh.RetentionPolicy()
    keep0, _, why0 = dh.retention_plan(real, pol, now)
    # restic backup --time: one empty snapshot slightly newer than each kept monthly point
    fakes = [dh.RestorePoint("restic", "fake-" + p.id, p.time + dt.timedelta(minutes=1), "empty")
             for p in keep0 if any(r.startswith("monthly") for r in why0[p.id])]
    keep1, _, _ = dh.retention_plan(real + fakes, pol, now)
    assert not ids(keep0) <= ids(keep1)                        # unfrozen, the fakes win their buckets
    prev = real
    assert "backdated" in codes(dh.gate(prev, prev + fakes, now), dh.CRITICAL)
    keep2, expire2, _ = dh.retention_plan(real + fakes, pol, now, frozen=True)
    assert expire2 == [] and ids(keep0) <= ids(keep2)


def _simulate(days, attack_day=None, flood=10000):
    """Daily pulls (02:00 Beijing), retention applied after each; expiry is final."""
    pol = dh.RetentionPolicy(daily=14, weekly=8, monthly=12, yearly=10, min_age_keep=dt.timedelta(days=1))
    held, history = [], []
    for day in days:
        t = ts(day.year, day.month, day.day, 2, tz=CST)
        held.append(dh.RestorePoint("pull", "real-%s" % day.isoformat(), t, ""))
        if day == attack_day:
            held += [dh.RestorePoint("pull", "fake-%05d" % i, t + dt.timedelta(hours=10, seconds=i), "junk")
                     for i in range(flood)]
        now = ts(day.year, day.month, day.day, 3, tz=CST) if day != attack_day else t + dt.timedelta(hours=14)
        keep, _, _ = dh.retention_plan(held, pol, now)
        held = keep
        history.append((day, {p.id for p in held if p.id.startswith("real-")}))
    return held, history


def test_thirteen_months_of_daily_pulls_with_a_flood_in_the_middle():
    start = dt.date(2024, 1, 1)
    days = [start + dt.timedelta(days=i) for i in range((dt.date(2025, 1, 31) - start).days + 1)]
    attack = dt.date(2024, 7, 16)
    held, history = _simulate(days, attack)
    _, control = _simulate(days)
    # the newest real point of every month before the attack
    monthly = {}
    for d in days:
        if d < attack:
            monthly[(d.year, d.month)] = "real-" + d.isoformat()
    assert len(monthly) == 7                                   # Jan..Jul 2024 (July: up to the 15th)
    for (day, real_kept), (_, control_kept) in zip(history, control):
        # every pre-attack monthly point within the monthly horizon (the last 12 months) is held
        for (y, m), pid in monthly.items():
            if (pid <= "real-" + day.isoformat() and (day.year * 12 + day.month) - (y * 12 + m) < 12
                    and (y, m) != (attack.year, attack.month)):
                assert pid in real_kept, (day, pid)
        # and the flood costs nothing but the attack day's own daily slot
        assert control_kept - real_kept <= {"real-" + attack.isoformat()}, day
    final = {p.id for p in held}
    assert {monthly[(2024, m)] for m in range(2, 7)} <= final
    assert monthly[(2024, 1)] not in final and monthly[(2024, 1)] not in control[-1][1]   # 13 months: beyond 12
    assert sum(pid.startswith("fake-") for pid in final) == 0                # the flood is gone, history is not


# ---------------------------------------------------------------- verification rotation
def test_read_data_subset_reads_every_pack_exactly_once_per_period():
    rng = random.Random(1)
    packs = [rng.randbytes(32) for _ in range(5000)]
    for t in (1, 7, 28, 30, 256):
        for first in (dt.date(2024, 2, 26), dt.date(2025, 12, 31)):
            reads = pack_reads(packs, [dh.read_data_subset(first + dt.timedelta(days=i), t) for i in range(t)])
            assert set(reads.values()) == {1}, t


def pack_reads(packs, args):
    """How often each pack is read under restic's n/t selection (first id byte mod t == n - 1)."""
    reads = {p: 0 for p in packs}
    for a in args:
        n, t = map(int, a.split("/"))
        assert 1 <= n <= t <= 256
        for p in packs:
            if p[0] % t == n - 1:
                reads[p] += 1
    return reads


def test_read_data_subset_limits():
    assert dh.read_data_subset(dt.date(2024, 1, 1), 1) == "1/1"
    assert dh.read_data_subset(dt.date(2024, 1, 2), 7) != dh.read_data_subset(dt.date(2024, 1, 1), 7)
    assert dh.read_data_subset(dt.date(2024, 1, 8), 7) == dh.read_data_subset(dt.date(2024, 1, 1), 7)
    for bad in (0, 257):
        with pytest.raises(ValueError):
            dh.read_data_subset(dt.date(2024, 1, 1), bad)
    with pytest.raises(ValueError):
        dh.read_data_subset(dt.datetime(2024, 1, 1, tzinfo=UTC), 7)


def test_verification_cost_for_the_real_archive():
    gb = 10 ** 9
    c = dh.verification_cost(219 * gb, 7)
    assert c["bytes_per_day"] == pytest.approx(31.29 * gb, rel=1e-3)
    assert c["bytes_per_day_max"] == pytest.approx(219 * gb * 37 / 256, rel=1e-6)   # 256 = 36 * 7 + 4
    assert c["share_per_week"] == 1.0 and c["full_reads_per_year"] == pytest.approx(52.14, rel=1e-3)
    c = dh.verification_cost(219 * gb, 28)
    assert c["bytes_per_day"] == pytest.approx(7.82 * gb, rel=1e-3) and c["share_per_week"] == 0.25
    assert c["bytes_per_week"] == pytest.approx(54.75 * gb, rel=1e-6)
    assert dh.verification_cost(0, 30)["bytes_per_day"] == 0
    with pytest.raises(ValueError):
        dh.verification_cost(-1, 7)
    with pytest.raises(ValueError):
        dh.verification_cost(1, 0)


def pgb(label, minutes_ago, kind):
    return dh.RestorePoint("pgbackrest", "archive-db:" + label, NOW - dt.timedelta(minutes=minutes_ago), "fp-" + label,
                           series="archive-db", label=label, detail=kind)


def test_the_sources_retention_full_explains_a_whole_chain_expiring_between_two_pulls():
    """Two fulls made between two pulls (the lab's tests do that within minutes): geo's
    repo1-retention-full=2 removes every older set, young and many. Known retention: a warning."""
    prev = [pgb("F1", 30, "full"), pgb("F1_D1", 25, "diff"), pgb("F1_I1", 20, "incr"), pgb("F2", 15, "full"),
            pgb("F2_I1", 10, "incr")]
    pulled = [pgb("F3", 5, "full"), pgb("F3_I1", 4, "incr"), pgb("F3_I2", 3, "incr"), pgb("F4", 1, "full")]
    policy = dh.GatePolicy(source_min_age=dt.timedelta(0), source_retention_full=2)
    f = dh.gate(prev, pulled, NOW, policy)
    assert not dh.quarantined(f) and codes(f) == ["expired"], f
    # the same pull judged without the source's retention: a purge
    assert "mass-vanish" in codes(dh.gate(prev, pulled, NOW, dh.GatePolicy(source_min_age=dt.timedelta(0))))
    # expire --repo1-retention-full=1 at geo: one full left, fewer than the source keeps
    attacked = [pgb("F4", 1, "full")]
    f = dh.gate(pulled, attacked, NOW, policy)
    assert "mass-vanish" in codes(f, dh.CRITICAL) and dh.quarantined(f)
    assert dh.retention_superseded([pgb("F2", 15, "full")], attacked, 2) == set()
    assert dh.retention_superseded([pgb("F2", 15, "full")], pulled, 0) == set()
    with pytest.raises(ValueError):
        dh.GatePolicy(source_retention_full=-1)
