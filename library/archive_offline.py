#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: offline Blu-ray volume sets (plan, ISO, par2, read-back, register)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: archive_offline
short_description: Build and re-check offline Blu-ray volume sets of the archive
description:
  - C(state=present) plans volume sets from O(snapshot) (first-fit decreasing,
    files never split), writes one ISO per disc with xorriso (C(-md5 on)),
    appends par2 recovery data after the filesystem, verifies every image by
    reading it back (embedded MD5, SHA-256 + SM3 of every file against the
    manifest, par2 verify) and records the media in the register under O(out_dir).
    Idempotent - a snapshot whose content is already in the register is not rebuilt.
  - C(state=recheck) re-verifies the media due (next_check_due <= today) and
    updates the register; fails when a medium fails unless O(fail_on_error=false).
  - Check mode returns the plan (volumes, files, bytes) and changes nothing.
  - Needs xorriso and par2 on the host.
options:
  state: {type: str, choices: [present, recheck], default: present}
  snapshot: {description: Read-only snapshot directory to archive (state=present), type: path}
  out_dir: {description: Where images, manifests and the media register go, type: path, required: true}
  media_size: {description: Bytes per disc (BD-R DL default), type: int, default: 50050629632}
  redundancy_pct: {description: par2 redundancy in percent of the image, type: float, default: 5.0}
  max_source_blocks: {description: par2 source blocks per image (speed vs damage granularity), type: int, default: 2000}
  metadata: {description: archive_item CSV/JSON; snapshot hashes must match it, type: path}
  prefix: {type: str, default: AKJ}
  check_interval_days: {type: int, default: 365}
  fail_on_error: {type: bool, default: true}
"""

RETURN = r"""
set_id: {type: str, returned: state=present}
plan: {description: volumes with files and bytes, type: dict, returned: when built or in check mode}
volumes: {description: register entries of the set, type: list, returned: state=present}
checked: {description: results of the re-check, type: list, returned: state=recheck}
due: {description: labels due for re-check after this run, type: list, returned: always}
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.archive_offline import (
    REGISTER, OfflineError, build_set, due_for_recheck, load_register, recheck,
)


def main():
    m = AnsibleModule(argument_spec=dict(
        state=dict(type="str", choices=["present", "recheck"], default="present"),
        snapshot=dict(type="path"), out_dir=dict(type="path", required=True),
        media_size=dict(type="int", default=50050629632),
        redundancy_pct=dict(type="float", default=5.0),
        max_source_blocks=dict(type="int", default=2000),
        metadata=dict(type="path"), prefix=dict(type="str", default="AKJ"),
        check_interval_days=dict(type="int", default=365),
        fail_on_error=dict(type="bool", default=True)),
        required_if=[("state", "present", ("snapshot",))],
        supports_check_mode=True)
    p = m.params
    if p["media_size"] < 1024 * 1024:
        m.fail_json(msg="media_size %d is too small" % p["media_size"])
    if not 0 < p["redundancy_pct"] <= 100:
        m.fail_json(msg="redundancy_pct must be in (0, 100]")
    if p["check_interval_days"] < 1:
        m.fail_json(msg="check_interval_days must be >= 1")
    if p["state"] == "present" and not os.path.isdir(p["snapshot"]):
        m.fail_json(msg="snapshot %s is not a directory" % p["snapshot"])
    missing = [t for t in ("xorriso", "par2") if not shutil.which(t)]
    if missing and not m.check_mode:
        m.fail_json(msg="missing tools on the host: %s" % ", ".join(missing))
    reg_path = os.path.join(p["out_dir"], REGISTER)
    try:
        if p["state"] == "present":
            res = build_set(p["snapshot"], p["out_dir"], p["media_size"], p["redundancy_pct"], p["prefix"],
                            p["metadata"], p["check_interval_days"], None, p["max_source_blocks"],
                            check_mode=m.check_mode)
            out = dict(changed=res["changed"], set_id=res.get("set_id") or res["plan"]["set_id"],
                       plan=res.get("plan"), volumes=res.get("volumes", []))
            if m.check_mode and res["changed"]:
                out["diff"] = {"before": "", "after": "".join(
                    "%s: %d files, %d bytes\n" % (v["label"], v["files"], v["bytes"]) for v in res["plan"]["volumes"])}
        else:
            res = recheck(reg_path, check_mode=m.check_mode)
            out = dict(changed=res["changed"], checked=res["checked"])
            if not res["ok"] and p["fail_on_error"]:
                bad = [c["label"] for c in res["checked"] if not c.get("ok", True)]
                m.fail_json(msg="offline media failed re-check: %s" % ", ".join(bad), **out)
    except OfflineError as e:
        m.fail_json(msg=str(e))
    out["due"] = [x["label"] for x in due_for_recheck(load_register(reg_path))] if os.path.exists(reg_path) else []
    m.exit_json(**out)


if __name__ == "__main__":
    main()
