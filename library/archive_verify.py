#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: the archive's four-property check (read-only)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: archive_verify
short_description: Four-property check (authenticity, integrity, usability, security) of the archive file store
description:
  - Hashes every file (SHA-256 and SM3, one read), compares with the metadata
    (PostgreSQL table via psql COPY, or a CSV/JSON manifest on the target),
    checks that every row has its file and vice versa and that archive numbers
    have no gaps, parses every file as its format (stdlib PDF parser, plus
    C(qpdf --check) when installed), runs an optional malware-scan hook and
    reports foreign files.
  - Never changes anything; always C(changed=false). Fails when a property
    fails unless O(fail_on_error=false).
options:
  root: {description: File store root; file_path in metadata is relative to it., type: path, required: true}
  manifest: {description: CSV/JSON manifest on the target (alternative to O(db)), type: path}
  db:
    description: PostgreSQL connection (read through psql, libpq environment; password never on argv).
    type: dict
    suboptions:
      dbname: {type: str, required: true}
      host: {type: str}
      port: {type: int}
      user: {type: str}
      password: {type: str, no_log: true}
      table: {type: str, default: archive_item}
      where: {type: str}
  psql: {description: psql executable, type: str, default: psql}
  scan_command:
    description:
      - "Scan hook; C({root}) = once for the tree, C({path}) = per file."
      - "Each C(PATH: SIGNATURE FOUND) line of its output (clamscan) names an infected file (relative to O(root))."
    type: raw
  scan_timeout: {description: Seconds one scanner process may run (a tree scan of the whole archive takes hours)., type: int, default: 86400}
  scan_ok_codes: {type: list, elements: int, default: [0]}
  scan_infected_codes: {type: list, elements: int, default: [1]}
  require_scan: {type: bool, default: false}
  usability: {type: str, choices: [auto, stdlib, qpdf, both], default: auto}
  exclude: {description: Relative directories to skip, type: list, elements: str, default: []}
  workers: {type: int}
  max_report: {description: Maximum failures listed per property, type: int, default: 500}
  fail_on_error: {type: bool, default: true}
"""

EXAMPLES = r"""
- name: Four-property check of the restored archive
  archive_verify:
    root: /srv/archive
    db: {dbname: archive, user: postgres}
    scan_command: clamscan --no-summary --infected --recursive --database=/var/lib/archive-dr/clamav {root}
  become: true
  become_user: postgres
"""

RETURN = r"""
result: {description: Full machine-readable result (properties with failures), type: dict, returned: always}
summary: {description: Short bilingual human summary, type: str, returned: always}
passed: {description: True when all four properties pass, type: bool, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.archive_fixity import load_manifest
from ansible.module_utils.archive_verify import rows_from_postgres, summary_text, verify


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            manifest=dict(type="path"),
            db=dict(type="dict", options=dict(
                dbname=dict(type="str", required=True), host=dict(type="str"), port=dict(type="int"),
                user=dict(type="str"), password=dict(type="str", no_log=True),
                table=dict(type="str", default="archive_item"), where=dict(type="str"))),
            psql=dict(type="str", default="psql"),
            scan_command=dict(type="raw"),
            scan_timeout=dict(type="int", default=86400),
            scan_ok_codes=dict(type="list", elements="int", default=[0]),
            scan_infected_codes=dict(type="list", elements="int", default=[1]),
            require_scan=dict(type="bool", default=False),
            usability=dict(type="str", choices=["auto", "stdlib", "qpdf", "both"], default="auto"),
            exclude=dict(type="list", elements="str", default=[]),
            workers=dict(type="int"),
            max_report=dict(type="int", default=500),
            fail_on_error=dict(type="bool", default=True),
        ),
        required_one_of=[("manifest", "db")],
        mutually_exclusive=[("manifest", "db")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p["manifest"]:
            rows = load_manifest(p["manifest"])
        else:
            d = p["db"]
            rows = rows_from_postgres(d["dbname"], d.get("host"), d.get("port"), d.get("user"),
                                      d.get("password"), d.get("table") or "archive_item",
                                      d.get("where"), p["psql"])
        res = verify(p["root"], rows, scan_command=p["scan_command"],
                     scan_ok_codes=tuple(p["scan_ok_codes"]),
                     scan_infected_codes=tuple(p["scan_infected_codes"]),
                     usability=p["usability"], workers=p["workers"], exclude=p["exclude"],
                     require_scan=p["require_scan"], max_report=p["max_report"],
                     scan_timeout=p["scan_timeout"])
    except (OSError, RuntimeError, ValueError) as e:
        module.fail_json(msg="four-property check could not run: %s" % e, changed=False)
    text = summary_text(res)
    out = dict(changed=False, result=res, summary=text, passed=res["ok"])
    if not res["ok"] and p["fail_on_error"]:
        failed = [k for k, v in res["properties"].items() if not v["ok"]]
        module.fail_json(msg="four-property check failed: %s" % ", ".join(failed), **out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
