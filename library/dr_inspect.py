#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ansible module: read one host's state for the monthly inspection (read-only)."""
from __future__ import annotations

DOCUMENTATION = r"""
module: dr_inspect
short_description: Collect a host's state for the monthly inspection and evaluate it into findings
description:
  - Reads filesystems (statvfs of every real filesystem, the storage role's facts),
    backup/verify/pull job status of every C(backup_status.py)-style config and
    the state of each job's timer, PostgreSQL replication, Prometheus textfile
    gauges, tunnel facts and certificate expiry, C(chronyc tracking), failed
    units, C(sshd -T), the nftables input policy, listening sockets, offline
    media registers and optionally lynis (bounded by a timeout).
  - Reads the DR history since C(job_history_since) (the previous inspection),
    that is the operator releases (C(<status_dir>/<job>.releases.jsonl)) and verification
    runs (C(<status_dir>/<job>.verify.jsonl)) of every job of C(job_configs),
    and the alert notifications of the alert log
    (C(<alert_log_dir>/alerts.jsonl)). Missing logs are empty; lines that do not
    parse are counted and skipped; sizes are bounded (newest kept, the rest counted
    as dropped).
  - Never changes anything (C(changed=false)); check mode collects too.
  - Findings have a severity (critical, warning, info); the module never fails
    on findings, the playbook decides after the report is written.
options:
  host: {description: Host name used in the findings., type: str}
  storage_facts_file: {type: path, default: /var/lib/archive-dr/storage-facts.json}
  job_configs:
    description: Globs of job configs (C({status_dir, jobs})) as written by the backup appliance (C(*-jobs.json)) and
      the replica role (C(replica.json), its pulls); each job is health-checked and its status directory holds the
      release and verification logs of the DR history.
    type: list
    elements: str
    default: [/etc/archive-dr/*-jobs.json, /etc/archive-dr/replica.json]
  job_history_since:
    description: Count job runs (journal) and read the DR history (releases, verifications, alerts) since this Unix time
      (default 31 days ago).
    type: int
  alert_log_dir:
    description: Directory of the alert log C(alerts.jsonl) that Alertmanager's local webhook receiver writes
      (roles/monitoring); the notifications since C(job_history_since) are read, one entry per alert (at most 500,
      the newest kept). No log there (a host without Alertmanager) is no alerts.
    type: path
    default: /var/lib/archive-dr/alerts
  textfile_dirs: {type: list, elements: path, default: [/var/lib/prometheus/node-exporter, /var/lib/archive-dr/metrics]}
  metric_prefixes: {type: list, elements: str, default: [archive_dr_]}
  tunnel_helper: {type: path, default: /usr/local/sbin/archive-dr-tunnel}
  tunnel_state_file: {type: path, default: /var/lib/archive-dr/tunnel.json}
  certificates: {description: Extra certificate globs to watch for expiry., type: list, elements: str, default: []}
  media_registers: {description: Offline media register globs (media-register.json)., type: list, elements: str, default: []}
  lynis_timeout: {description: Run lynis with this timeout in seconds (0 = do not run)., type: int, default: 0}
  thresholds: {description: Overrides of module_utils/dr_inspect.DEFAULT_THRESHOLDS., type: dict, default: {}}
"""

EXAMPLES = r"""
- name: Inspect
  dr_inspect:
    media_registers: [/srv/offline-archive/media-register.json]
    thresholds: {fs_used_pct_crit: 90, cert_days_crit: 30}
  register: inspection
"""

RETURN = r"""
collected:
  description: What was read on the host; C(dr_history) ({since, configs, jobs -> {job, quarantine, verify,
    damaged_snapshots, releases, verify_runs, ...}}) and C(alerts) ({log, present, since, entries -> {received, status,
    alertname, severity, instance, job, summary, starts_at}, dropped, malformed}) carry the DR history.
  type: dict
  returned: always
findings: {description: "List of {severity, host, check, item, message, value, threshold}", type: list, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.dr_inspect import collect, evaluate


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str"),
            storage_facts_file=dict(type="path", default="/var/lib/archive-dr/storage-facts.json"),
            job_configs=dict(type="list", elements="str",
                             default=["/etc/archive-dr/*-jobs.json", "/etc/archive-dr/replica.json"]),
            job_history_since=dict(type="int"),
            alert_log_dir=dict(type="path", default="/var/lib/archive-dr/alerts"),
            textfile_dirs=dict(type="list", elements="path",
                               default=["/var/lib/prometheus/node-exporter", "/var/lib/archive-dr/metrics"]),
            metric_prefixes=dict(type="list", elements="str", default=["archive_dr_"]),
            tunnel_helper=dict(type="path", default="/usr/local/sbin/archive-dr-tunnel"),
            tunnel_state_file=dict(type="path", default="/var/lib/archive-dr/tunnel.json"),
            certificates=dict(type="list", elements="str", default=[]),
            media_registers=dict(type="list", elements="str", default=[]),
            lynis_timeout=dict(type="int", default=0),
            thresholds=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    collected = collect(p)
    findings = evaluate(p.get("host") or "", collected, p["thresholds"])
    module.exit_json(changed=False, collected=collected, findings=findings)


if __name__ == "__main__":
    main()
