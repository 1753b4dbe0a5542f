#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: generate the deterministic lab archive on the target host."""
from __future__ import annotations

DOCUMENTATION = r"""
module: archive_seed
short_description: Generate deterministic scanned-voucher PDFs and archive_item metadata (lab only)
description:
  - Runs module_utils/archive_seed.py on the target, so hundreds of MB of lab
    data need not be copied from the controller. Output under O(out_dir):
    C(files/), C(archive_item.csv), C(archive_item.copy.sql) (psql COPY script),
    C(summary.json).
  - Idempotent - when C(summary.json) records the same seed, items and
    total_size and the manifest is unchanged, nothing is regenerated.
  - Check mode returns the plan (items, expected bytes) without writing.
options:
  out_dir: {type: path, required: true}
  items: {type: int}
  seed: {type: str, default: "1"}
  total_size: {description: "e.g. 300M, 2G", type: str}
  workers: {type: int}
  force: {description: Regenerate even if present, type: bool, default: false}
"""

RETURN = r"""
summary: {description: generator summary (items, pages, total_bytes, seconds, manifest paths), type: dict, returned: always}
"""

import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.archive_seed import generate, parse_size, plan_items


def main():
    m = AnsibleModule(argument_spec=dict(
        out_dir=dict(type="path", required=True), items=dict(type="int"),
        seed=dict(type="str", default="1"), total_size=dict(type="str"),
        workers=dict(type="int"), force=dict(type="bool", default=False)),
        supports_check_mode=True)
    p = m.params
    try:
        total = parse_size(p["total_size"])
    except ValueError:
        m.fail_json(msg="total_size %r does not parse (use e.g. 300M, 2G)" % p["total_size"])
    if p["items"] is not None and p["items"] < 1:
        m.fail_json(msg="items must be >= 1")
    want = {"seed": p["seed"], "items": p["items"], "total_size": total}
    sfile = os.path.join(p["out_dir"], "summary.json")
    if os.path.exists(sfile) and not p["force"]:
        try:
            with open(sfile, encoding="utf-8") as f:
                cur = json.load(f)
            with open(cur["manifest_csv"], "rb") as f:
                same_manifest = hashlib.sha256(f.read()).hexdigest() == cur.get("manifest_sha256")
            if same_manifest and cur.get("request") == want:
                m.exit_json(changed=False, summary=cur)
        except (OSError, ValueError, KeyError):
            pass
    if m.check_mode:
        specs = plan_items(p["items"], p["seed"], total)
        m.exit_json(changed=True, summary={"items": len(specs), "expected_bytes": sum(s["size"] for s in specs)},
                    diff={"before": "", "after": "generate %d items under %s\n" % (len(specs), p["out_dir"])})
    s = generate(p["out_dir"], items=p["items"], seed=p["seed"], total_size=total, workers=p["workers"])
    s["request"] = want
    with open(sfile, "w", encoding="utf-8") as f:
        json.dump(s, f, ensure_ascii=False, indent=2)
    m.exit_json(changed=True, summary=s)


if __name__ == "__main__":
    main()
