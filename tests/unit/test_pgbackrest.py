"""pgBackRest info parsing and the stanza plan (module_utils/pgbackrest.py)."""
import json

import pytest

from archive_dr.fixity import load

pb = load("pgbackrest")


def info(code, message, backups=0, name="archive-db"):
    return json.dumps([{"name": name, "status": {"code": code, "message": message}, "backup": [{}] * backups}])


def test_missing_stanza_plans_create():
    i = pb.parse_info(info(1, "missing stanza path"), "archive-db")
    assert not i["exists"] and pb.stanza_plan(i) == ["stanza-create"]
    assert pb.stanza_plan(pb.parse_info(info(3, "missing stanza data"), "archive-db")) == ["stanza-create"]


def test_existing_stanza_plans_nothing():
    assert pb.stanza_plan(pb.parse_info(info(2, "no valid backups"), "archive-db")) == []
    i = pb.parse_info(info(0, "ok", backups=3), "archive-db")
    assert i["exists"] and i["backups"] == 3 and pb.stanza_plan(i) == []


def test_unlisted_stanza_is_missing():
    assert pb.stanza_plan(pb.parse_info(info(0, "ok", name="other"), "archive-db")) == ["stanza-create"]
    assert pb.stanza_plan(pb.parse_info("[]", "archive-db")) == ["stanza-create"]


def test_error_states_need_an_operator():
    with pytest.raises(ValueError, match="code 99"):
        pb.stanza_plan(pb.parse_info(info(99, "other"), "archive-db"))
    with pytest.raises(ValueError):
        pb.stanza_plan(pb.parse_info(info(0, "ok"), "archive-db"), state="absent")


def test_backup_label_time():
    assert pb.backup_label_time("20240101-010203F_20240102-030405I") == "2024-01-02 03:04:05"
    assert pb.backup_label_time("20240101-010203F") == "2024-01-01 01:02:03"
