"""Offline volume sets with a small media size: packing, read-back,
corruption detected and repaired by par2, register and re-check, playbook."""
import csv
import datetime as dt
import json
import os
import shutil

import pytest

from archive_dr import offline as O, runner, seed

MEDIA = 3 * 2**20
DAY = dt.date(2025, 3, 1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    src = tmp_path_factory.mktemp("snap")
    seed.generate(str(src), items=14, seed="o1", total_size=5 * 2**20, workers=2)
    out = tmp_path_factory.mktemp("offline")
    res = O.build_set(str(src / "files"), str(out), media_size=MEDIA, redundancy_pct=10,
                      metadata=str(src / "archive_item.csv"), check_interval_days=90, today=DAY,
                      max_source_blocks=300)
    return src, out, res


def test_plan_first_fit_decreasing_never_splits():
    files = [("f%02d" % i, s) for i, s in enumerate([700, 600, 500, 400, 300, 200, 100] * 3)]
    vols, cap = O.plan_volumes([(p, s * 1024) for p, s in files], media_size=4 * 2**20, redundancy_pct=5)
    placed = [p for v in vols for p, _ in v]
    assert sorted(placed) == sorted(p for p, _ in files)          # each file exactly once
    for v in vols:
        assert sum(O._o.file_cost(s) for _, s in v) <= cap
    with pytest.raises(O.OfflineError, match="larger than one disc"):
        O.plan_volumes([("huge", 10 * 2**20)], media_size=4 * 2**20)


def test_set_built_every_file_once_sizes_within_media(built):
    src, out, res = built
    vols = res["volumes"]
    assert res["changed"] and len(vols) >= 3
    with open(src / "archive_item.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    seen = []
    for v in vols:
        assert os.path.getsize(v["image"]) == v["image_bytes"] <= MEDIA
        assert v["ecc"]["offset"] + v["ecc"]["length"] == v["image_bytes"]
        with open(v["manifest"], encoding="utf-8") as f:
            man = list(csv.DictReader(f))
        seen += [r["path"] for r in man]
        assert all(r["archive_no"] and len(r["sm3"]) == 64 for r in man)
    assert sorted(seen) == sorted(r["file_path"] for r in rows)
    with open(out / res["set_id"] / "SET-MANIFEST.csv", encoding="utf-8") as f:
        setman = list(csv.DictReader(f))
    assert {r["path"]: r["sha256"] for r in setman} == {r["file_path"]: r["sha256"] for r in rows}
    reg = json.loads((out / "media-register.json").read_text())
    assert [m["status"] for m in reg["media"]] == ["verified"] * len(vols)
    assert reg["media"][0]["next_check_due"] == "2025-05-30"
    assert (out / "media-register.csv").exists()


def test_readback_and_idempotent(built):
    src, out, res = built
    for v in res["volumes"]:
        r = O.verify_image(v["image"], v["manifest"], v["ecc"])
        assert r["ok"] and r["md5"] == "match" and r["par2"]["status"] == "ok", r
        assert r["files_checked"] == v["files"]
    again = O.build_set(str(src / "files"), str(out), media_size=MEDIA, redundancy_pct=10, today=DAY)
    assert again["changed"] is False and again["set_id"] == res["set_id"]


def test_corrupted_image_detected_and_repaired(built, tmp_path):
    _, _, res = built
    v = res["volumes"][0]
    img = tmp_path / "damaged.iso"
    shutil.copy(v["image"], img)
    ext = O._o.file_extents(str(img))
    lba = next(e[0][1] for p, e in ext.items() if p.endswith(".pdf"))
    with open(img, "r+b") as f:          # wipe 3 sectors inside a file's data
        f.seek(lba * 2048 + 4096)
        f.write(b"\0" * 3 * 2048)
    r = O.verify_image(str(img), v["manifest"], v["ecc"])
    assert not r["ok"] and r["md5"] == "MISMATCH"
    assert any("hash mismatch" in e for e in r["errors"]) and r["par2"]["status"] == "repairable"
    fix = O.repair_image(str(img), v["ecc"])
    assert fix["status"] == "repaired", fix
    r2 = O.verify_image(str(img), v["manifest"], v["ecc"])
    assert r2["ok"], r2["errors"]
    assert open(img, "rb").read() == open(v["image"], "rb").read()    # bit-identical again


def test_damage_beyond_ecc_is_reported(built, tmp_path):
    _, _, res = built
    v = res["volumes"][1]
    img = tmp_path / "wrecked.iso"
    shutil.copy(v["image"], img)
    with open(img, "r+b") as f:          # wipe 60 % of the filesystem: far beyond 10 % redundancy
        f.seek(64 * 2048)
        f.write(b"\xff" * int(v["ecc"]["iso_bytes"] * 0.6))
    r = O.verify_image(str(img), v["manifest"], v["ecc"])
    assert not r["ok"] and r["par2"]["status"].startswith("NOT repairable")
    assert O.repair_image(str(img), v["ecc"])["status"].startswith("repair FAILED")


def test_register_due_and_recheck(built, tmp_path):
    _, out, res = built
    reg_path = tmp_path / "media-register.json"
    shutil.copy(out / "media-register.json", reg_path)
    reg = O.load_register(str(reg_path))
    assert O.due_for_recheck(reg, DAY) == []
    assert len(O.due_for_recheck(reg, dt.date(2025, 6, 1))) == len(res["volumes"])
    r = O.recheck(str(reg_path), today=dt.date(2025, 6, 1))
    assert r["ok"] and r["changed"] and len(r["checked"]) == len(res["volumes"])
    reg = O.load_register(str(reg_path))
    assert {m["next_check_due"] for m in reg["media"]} == {"2025-08-30"}
    assert O.main(["due", str(reg_path), "--today", "2025-07-01"]) == 0
    assert O.main(["due", str(reg_path), "--today", "2025-09-01"]) == 1


def test_playbook_build_check_idempotent(tmp_path):
    src = tmp_path / "snap"
    seed.generate(str(src), items=8, seed="pb", total_size=2 * 2**20, workers=1)
    extra = {"offline_archive_hosts": "localhost", "offline_archive_install_packages": False,
             "offline_archive_snapshot": str(src / "files"), "offline_archive_output_dir": str(tmp_path / "o"),
             "offline_archive_media_size": 1800000, "offline_archive_max_source_blocks": 200,
             "offline_archive_metadata": str(src / "archive_item.csv"), "ansible_connection": "local"}

    def run(check_ok=True, diff=False, **more):
        result = runner.run_playbook("offline-archive.yml", ["localhost,"], {**extra, **more}, check=diff, diff=diff,
                                     data_dir=tmp_path / "runner")
        if check_ok:
            assert result.ok, result.stdout[-3000:]
        return result

    planned = run(diff=True)
    diffs = json.dumps([(e["event_data"].get("res") or {}).get("diff") for e in planned.events
                        if e["event"] == "runner_on_ok"])
    assert "_V01: " in diffs and "_V02: " in diffs      # the plan, shown as diff
    assert not (tmp_path / "o" / "media-register.json").exists()
    first = run()
    assert first.stats["localhost"].changed >= 1, first.stdout[-1500:]   # the first run builds
    reg = json.loads((tmp_path / "o" / "media-register.json").read_text())
    assert len(reg["media"]) >= 2
    second = run()
    assert second.stats["localhost"].changed == 0, second.stdout[-1500:]
    assert run(offline_archive_action="recheck").stats["localhost"].changed == 0
    bad = run(check_ok=False, offline_archive_redundancy_pct=0)
    assert not bad.ok and "redundancy" in " ".join(bad.failure_messages())
