#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: initialise a local restic repository once (plan first, then apply)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: restic_repo
short_description: Initialise a restic repository on a local path when it does not exist
description:
  - Plans from the path - absent or empty means C(restic init), an existing
    repository is opened with the password (C(restic cat config)) to prove the
    password works, anything else fails (never initialises over other data).
  - Check mode returns the plan as the diff.
options:
  repository: {description: Local repository path, type: path, required: true}
  password_file: {description: File holding the repository password, type: path, required: true, no_log: false}
  executable: {type: str, default: restic}
"""

EXAMPLES = r"""
- name: Initialise the repository
  restic_repo:
    repository: /srv/backup/restic/archive-files
    password_file: /etc/archive-dr/restic.pass
"""

RETURN = r"""
plan: {description: actions (empty when nothing to do), type: list, returned: always}
state: {description: absent, repo or foreign before the change, type: str, returned: always}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.restic import local_repo_state, repo_plan


def main():
    m = AnsibleModule(argument_spec=dict(
        repository=dict(type="path", required=True), password_file=dict(type="path", required=True, no_log=False),
        executable=dict(type="str", default="restic")), supports_check_mode=True)
    p = m.params
    exe = m.get_bin_path(p["executable"], required=True)
    env = {"RESTIC_REPOSITORY": p["repository"], "RESTIC_PASSWORD_FILE": p["password_file"],
           "RESTIC_CACHE_DIR": "/var/cache/restic"}
    state = local_repo_state(p["repository"])
    try:
        plan = repo_plan(state)
    except ValueError as e:
        m.fail_json(msg="%s: %s" % (p["repository"], e), state=state)
    if not plan:
        rc, out, err = m.run_command([exe, "--no-lock", "cat", "config"], environ_update=env)
        if rc != 0:
            m.fail_json(msg="%s: repository exists but cannot be opened with the password (rc=%d): %s"
                        % (p["repository"], rc, err.strip()), state=state, plan=plan)
        m.exit_json(changed=False, plan=plan, state=state)
    diff = {"before": "%s: %s\n" % (p["repository"], state), "after": "%s: restic repository\n" % p["repository"]}
    if m.check_mode:
        m.exit_json(changed=True, plan=plan, state=state, diff=diff)
    if not os.path.isfile(p["password_file"]):
        m.fail_json(msg="password file %s is missing" % p["password_file"])
    rc, out, err = m.run_command([exe, "init"], environ_update=env)
    if rc != 0:
        m.fail_json(msg="restic init failed (rc=%d): %s" % (rc, err.strip()), state=state, plan=plan)
    m.exit_json(changed=True, plan=plan, state=state, diff=diff, stdout=out)


if __name__ == "__main__":
    main()
