#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: make sure a pgBackRest stanza exists (plan first, then apply)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: pgbackrest_stanza
short_description: Create a pgBackRest stanza when it does not exist
description:
  - Reads C(pgbackrest info --output=json); runs C(stanza-create) only when the
    stanza is missing, so it is idempotent and checkable (check mode returns the plan).
  - Fails without changing anything when the stanza needs an operator (e.g. a
    cipher or database system-id mismatch).
  - Run it as the repository owner (C(become_user)) on the repository host.
options:
  stanza: {description: Stanza name, type: str, required: true}
  state: {type: str, choices: [present], default: present}
  config: {description: pgbackrest.conf path (default = pgBackRest's own default), type: path}
  executable: {type: str, default: pgbackrest}
"""

EXAMPLES = r"""
- name: Create the stanza
  pgbackrest_stanza:
    stanza: archive
  become: true
  become_user: pgbackrest
"""

RETURN = r"""
info: {description: parsed status before the change, type: dict, returned: always}
plan: {description: actions (empty when nothing to do), type: list, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgbackrest import parse_info, stanza_plan


def main():
    m = AnsibleModule(argument_spec=dict(
        stanza=dict(type="str", required=True), state=dict(type="str", choices=["present"], default="present"),
        config=dict(type="path"), executable=dict(type="str", default="pgbackrest")),
        supports_check_mode=True)
    p = m.params
    base = [m.get_bin_path(p["executable"], required=True)]
    if p["config"]:
        base.append("--config=%s" % p["config"])
    base.append("--stanza=%s" % p["stanza"])
    rc, out, err = m.run_command(base + ["--output=json", "info"])
    if rc != 0:
        m.fail_json(msg="pgbackrest info failed (rc=%d): %s" % (rc, err.strip() or out.strip()))
    try:
        info = parse_info(out, p["stanza"])
        plan = stanza_plan(info, p["state"])
    except ValueError as e:
        m.fail_json(msg="stanza %s: %s" % (p["stanza"], e))
    diff = {"before": "stanza %s: %s\n" % (p["stanza"], info["message"] or "ok"),
            "after": "stanza %s: %s\n" % (p["stanza"], "created" if plan else info["message"] or "ok")}
    if not plan or m.check_mode:
        m.exit_json(changed=bool(plan), info=info, plan=plan, diff=diff)
    rc, out, err = m.run_command(base + ["--log-level-console=info", "stanza-create"])
    if rc != 0:
        m.fail_json(msg="stanza-create failed (rc=%d): %s" % (rc, err.strip() or out.strip()), info=info, plan=plan)
    m.exit_json(changed=True, info=info, plan=plan, diff=diff, stdout=out)


if __name__ == "__main__":
    main()
